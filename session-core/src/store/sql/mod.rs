//! [`SqlStore`]: sessions in PostgreSQL or SQLite through sqlx, one statement per operation.

use std::{fmt, future::Future, sync::Arc, time::Duration};

use crate::{Clock, StoreError, SystemClock};

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// The default table name of a [`SqlStore`].
pub const DEFAULT_TABLE: &str = "sessions";

/// Sessions in a SQL database: [`PostgresStore`] (`SqlStore<sqlx::Postgres>`) or
/// [`SqliteStore`] (`SqlStore<sqlx::Sqlite>`).
///
/// The table (name configurable, default `sessions`) has five columns: `id` (the token
/// hash, primary key), `data` (the encoded [`Record`](crate::Record)), `expires_at` (Unix
/// milliseconds), `expires_hour` (`expires_at` in whole hours, indexed for cleanup) and
/// `version` (the record's version, for the conditional update). A second table,
/// `<table>_stale` (`id`, `seq`), is the repair log of the [`Durable`](crate::store::Durable) trait: empty except
/// while a cache tier is unreachable. [`migrate`](Self::migrate) creates both, and upgrades
/// a table made by an earlier release (rows without a version read as version 0).
///
/// Only the hour is indexed, not the exact expiry: a write that moves the expiry within the
/// same hour changes no indexed column, so PostgreSQL updates the row in place (a "HOT"
/// update: no index writes, less WAL). With an index on `expires_at` itself every write
/// of a busy session would also write the index; the measured difference on a hot session
/// row is about 10% in writes per second (see BENCHMARKS.md).
///
/// Each operation is one statement:
///
/// | method    | statement                                                              |
/// |-----------|------------------------------------------------------------------------|
/// | `load`    | `SELECT data, expires_at … WHERE id = ? AND expires_at > now`          |
/// | `create`  | `INSERT … ON CONFLICT (id) DO UPDATE … WHERE expires_at <= now` (only an expired row is replaced) |
/// | `update`  | `UPDATE … SET data, expires_at, version WHERE id = ? AND version = ? AND expires_at > now` |
/// | `touch`   | `UPDATE … SET expires_at WHERE id = ? AND expires_at > now AND version = ?` |
/// | `delete`  | `DELETE … WHERE id = ?`                                                |
/// | `cleanup` | `DELETE … WHERE id IN (SELECT id … WHERE expires_hour <= now's hour AND expires_at <= now LIMIT n)` |
///
/// | `mark_stale`  | `INSERT INTO <table>_stale … ON CONFLICT (id) DO UPDATE SET seq = excluded.seq` |
/// | `stale_marks` | `SELECT id, seq FROM <table>_stale WHERE id > ? ORDER BY id LIMIT n` |
/// | `clear_stale` | `DELETE FROM <table>_stale WHERE id = ? AND seq = ?`                |
///
/// Every statement, pool checkout included, is bounded by the
/// [`timeout`](SqlStoreBuilder::timeout) (default 5 s): a database that stops answering
/// (packets dropped, no reset) costs a request at most that long, then
/// [`StoreError::Unavailable`].
///
/// "now" is the store's [`Clock`]. Cleanup deletes at most `n` rows per call, through the
/// hour index, so cleaning a million stale rows is many short statements that never hold
/// locks for long; on PostgreSQL concurrent cleaners skip each other's rows.
///
/// # Example
///
/// `connect` opens a pool and runs [`migrate`](Self::migrate); with a pool of your own, use
/// the builder (and call `migrate` once at start-up):
///
/// ```
/// # #[cfg(feature = "sqlite")]
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use session_core::store::SqliteStore;
///
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
/// let store = SqliteStore::builder(pool).table_name("app_sessions").build()?;
/// store.migrate().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// PostgreSQL is the same with [`PostgresStore::connect`]`("postgres://…")` or a
/// `sqlx::PgPool`.
pub struct SqlStore<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
    sql: Arc<Statements>,
    clock: Arc<dyn Clock>,
    timeout: Duration,
}

impl<DB: sqlx::Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            sql: Arc::clone(&self.sql),
            clock: Arc::clone(&self.clock),
            timeout: self.timeout,
        }
    }
}

/// The default bound on every statement of a [`SqlStore`], pool checkout included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A statement that did not finish within the store's timeout.
#[derive(Debug, thiserror::Error)]
#[error("database statement timed out after {0:?}")]
struct TimedOut(Duration);

/// Runs one statement, bounded by `timeout`.
async fn bounded<T>(
    timeout: Duration,
    statement: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, statement).await {
        Ok(result) => result.map_err(StoreError::from),
        Err(_) => Err(StoreError::unavailable(TimedOut(timeout))),
    }
}

impl<DB: sqlx::Database> fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("table", &self.sql.table)
            .finish_non_exhaustive()
    }
}

/// Builds a [`SqlStore`].
#[must_use]
pub struct SqlStoreBuilder<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
    table: String,
    clock: Arc<dyn Clock>,
    timeout: Duration,
}

impl<DB: sqlx::Database> fmt::Debug for SqlStoreBuilder<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStoreBuilder")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl<DB: sqlx::Database> SqlStoreBuilder<DB>
where
    SqlStore<DB>: Dialect,
{
    /// The sessions table, optionally schema-qualified (`auth.sessions`). Default:
    /// `sessions`.
    pub fn table_name(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// The clock that decides expiry. Default: [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The longest one statement may take, waiting for a pooled connection included, before
    /// it fails with [`StoreError::Unavailable`]. Default: 5 s ([`DEFAULT_TIMEOUT`]), long
    /// enough for a busy database and short enough that an unreachable one answers
    /// requests with an error instead of holding them.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Builds the store. Call [`SqlStore::migrate`] once before first use.
    ///
    /// # Errors
    ///
    /// [`StoreError::Config`] if the table name is not one or two plain identifiers
    /// (`[A-Za-z_][A-Za-z0-9_]*`, dot-separated): it is written into SQL text.
    pub fn build(self) -> Result<SqlStore<DB>, StoreError> {
        let sql = Statements::new::<SqlStore<DB>>(&self.table)?;
        Ok(SqlStore {
            pool: self.pool,
            sql: Arc::new(sql),
            clock: self.clock,
            timeout: self.timeout,
        })
    }
}

impl<DB: sqlx::Database> SqlStore<DB>
where
    Self: Dialect,
{
    /// A builder over an existing connection pool.
    pub fn builder(pool: sqlx::Pool<DB>) -> SqlStoreBuilder<DB> {
        SqlStoreBuilder {
            pool,
            table: DEFAULT_TABLE.to_owned(),
            clock: Arc::new(SystemClock),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A store on `pool` with the default table name.
    ///
    /// # Errors
    ///
    /// Never for the default table name; kept for symmetry with the builder.
    pub fn new(pool: sqlx::Pool<DB>) -> Result<Self, StoreError> {
        Self::builder(pool).build()
    }

    /// The connection pool.
    #[must_use]
    pub fn pool(&self) -> &sqlx::Pool<DB> {
        &self.pool
    }

    /// The table name, as written into SQL.
    #[must_use]
    pub fn table_name(&self) -> &str {
        &self.sql.table
    }
}

/// What differs between SQL backends. Sealed: implemented in this crate only.
pub trait Dialect: private::Sealed {
    /// How the n-th bind parameter is written (`$1`, `?1`).
    #[doc(hidden)]
    const PLACEHOLDER: char;
    /// Appended to cleanup's inner `SELECT` (row locking, where the backend has it).
    #[doc(hidden)]
    const CLEANUP_LOCK: &'static str;
    /// Column types of `data` and `expires_at` (also used for `expires_hour`).
    #[doc(hidden)]
    const COLUMN_TYPES: (&'static str, &'static str);
    /// `ADD COLUMN` with `IF NOT EXISTS` where the backend has it; without it, migration
    /// treats "duplicate column" as done.
    #[doc(hidden)]
    const ADD_COLUMN: &'static str;
    /// A query answering whether the table already has the current layout (binds: table,
    /// new index, old index, repair table, all as written into SQL), so that `migrate` at every start
    /// takes no table lock; `None` where DDL is cheap enough to run every time (SQLite).
    #[doc(hidden)]
    const LAYOUT_CURRENT: Option<&'static str>;
    /// Taken on the migration's own connection before it changes anything (bind: the
    /// table), held until that connection closes, so that instances migrating at once
    /// take turns; `None` where the backend serializes DDL itself (SQLite: one writer).
    #[doc(hidden)]
    const MIGRATION_LOCK: Option<&'static str>;
}

/// The granularity of the indexed `expires_hour` column, in milliseconds.
const HOUR_MS: u64 = 3_600_000;

/// The whole hour (since the Unix epoch) that `time` falls in, as stored in `expires_hour`.
fn hour_i64(time: std::time::SystemTime) -> i64 {
    i64::try_from(crate::clock::to_millis(time) / HOUR_MS).unwrap_or(i64::MAX)
}

mod private {
    pub trait Sealed {}
}

/// The SQL text of every operation, made once per store.
#[derive(Debug)]
struct Statements {
    table: String,
    /// The new and the old expiry index, schema-qualified as the table is.
    index_names: (String, String),
    create_table: String,
    add_hour_column: String,
    add_version_column: String,
    create_stale: String,
    stale_table: String,
    mark_stale: String,
    stale_marks: String,
    drop_stale: String,
    clear_stale: String,
    drop_old_index: String,
    create_index: String,
    load: String,
    create: String,
    update: String,
    touch: String,
    delete: String,
    cleanup: String,
}

impl Statements {
    fn new<D: Dialect>(table: &str) -> Result<Self, StoreError> {
        let (placeholder, cleanup_lock) = (D::PLACEHOLDER, D::CLEANUP_LOCK);
        let (data_type, expiry_type) = D::COLUMN_TYPES;
        let valid_ident = |part: &str| {
            let mut bytes = part.bytes();
            bytes
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        let parts: Vec<&str> = table.split('.').collect();
        if parts.len() > 2 || !parts.iter().all(|part| valid_ident(part)) {
            return Err(StoreError::Config(format!(
                "table name {table:?} is not an identifier or schema.identifier"
            )));
        }
        let bare = parts.last().copied().unwrap_or(table);
        let schema = if parts.len() == 2 {
            format!("{}.", parts[0])
        } else {
            String::new()
        };
        let add_column = D::ADD_COLUMN;
        let p = |n: u8| format!("{placeholder}{n}");
        let old_index = format!("{schema}{bare}_expires_at_idx");
        let stale = format!("{table}_stale");
        Ok(Self {
            add_version_column: format!(
                "ALTER TABLE {table} {add_column} version {expiry_type} NOT NULL DEFAULT 0"
            ),
            create_stale: format!(
                "CREATE TABLE IF NOT EXISTS {stale} \
                 (id TEXT PRIMARY KEY NOT NULL, seq {expiry_type} NOT NULL)"
            ),
            mark_stale: format!(
                "INSERT INTO {stale} (id, seq) VALUES ({}, {}) \
                 ON CONFLICT (id) DO UPDATE SET seq = excluded.seq",
                p(1),
                p(2)
            ),
            stale_marks: format!(
                "SELECT id, seq FROM {stale} WHERE id > {} ORDER BY id LIMIT {}",
                p(1),
                p(2)
            ),
            drop_stale: format!("DELETE FROM {stale} WHERE id = {}", p(1)),
            clear_stale: format!("DELETE FROM {stale} WHERE id = {} AND seq = {}", p(1), p(2)),
            stale_table: stale,
            table: table.to_owned(),
            // The index of earlier releases: it would make every expiry change an index write.
            drop_old_index: format!("DROP INDEX IF EXISTS {old_index}"),
            index_names: (format!("{schema}{bare}_expires_hour_idx"), old_index),
            create_table: format!(
                "CREATE TABLE IF NOT EXISTS {table} (\
                 id TEXT PRIMARY KEY NOT NULL, data {data_type} NOT NULL, \
                 expires_at {expiry_type} NOT NULL, expires_hour {expiry_type} NOT NULL DEFAULT 0, \
                 version {expiry_type} NOT NULL DEFAULT 0)"
            ),
            // Tables of earlier releases: rows without an hour read as hour 0, which cleanup
            // still finds (it filters on the exact expiry as well).
            add_hour_column: format!(
                "ALTER TABLE {table} {add_column} expires_hour {expiry_type} NOT NULL DEFAULT 0"
            ),
            create_index: format!(
                "CREATE INDEX IF NOT EXISTS {bare}_expires_hour_idx ON {table} (expires_hour)"
            ),
            load: format!(
                "SELECT data, expires_at, version FROM {table} WHERE id = {} AND expires_at > {}",
                p(1),
                p(2)
            ),
            create: format!(
                "INSERT INTO {table} AS cur (id, data, expires_at, expires_hour, version) \
                 VALUES ({}, {}, {}, {}, {}) \
                 ON CONFLICT (id) DO UPDATE SET data = excluded.data, \
                 expires_at = excluded.expires_at, expires_hour = excluded.expires_hour, \
                 version = excluded.version \
                 WHERE cur.expires_at <= {}",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6)
            ),
            update: format!(
                "UPDATE {table} SET data = {}, expires_at = {}, expires_hour = {}, version = {} \
                 WHERE id = {} AND version = {} AND expires_at > {}",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6),
                p(7)
            ),
            touch: format!(
                "UPDATE {table} SET expires_at = {}, expires_hour = {} \
                 WHERE id = {} AND expires_at > {} AND version = {}",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5)
            ),
            delete: format!("DELETE FROM {table} WHERE id = {}", p(1)),
            cleanup: format!(
                "DELETE FROM {table} WHERE id IN \
                 (SELECT id FROM {table} WHERE expires_hour <= {} AND expires_at <= {} \
                 LIMIT {}{cleanup_lock})",
                p(1),
                p(2),
                p(3)
            ),
        })
    }
}

/// A record version as the `BIGINT` the table stores.
fn version_i64(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

/// Unix milliseconds as the `BIGINT` the table stores.
fn millis_i64(time: std::time::SystemTime) -> i64 {
    i64::try_from(crate::clock::to_millis(time)).unwrap_or(i64::MAX)
}

/// Implements [`Store`](crate::Store) and [`Durable`](crate::store::Durable) for
/// `SqlStore<$db>`; the statements are shared, only types differ.
macro_rules! impl_sql_store {
    ($db:ty) => {
        impl $crate::store::SqlStore<$db> {
            /// Creates the sessions table, its expiry index and the repair log table if
            /// they do not exist, and upgrades a table made by an earlier release (adds
            /// `expires_hour` and `version`, replaces the `expires_at` index by the
            /// `expires_hour` one). Idempotent: safe to run at every start. On PostgreSQL
            /// a layout that is already current costs one catalog query and no table lock,
            /// so a restarting process never queues behind (or in front of) the
            /// application's transactions. Otherwise instances migrating at once take
            /// turns (on PostgreSQL, behind a session advisory lock on the table's name,
            /// on a connection of the migration's own); each statement commits on its own.
            ///
            /// # Errors
            ///
            /// [`StoreError::Unavailable`]($crate::StoreError::Unavailable) if the
            /// statements fail.
            pub async fn migrate(&self) -> Result<(), $crate::StoreError> {
                if self.layout_current(&self.pool).await? {
                    return Ok(());
                }
                let Some(lock) = <Self as super::Dialect>::MIGRATION_LOCK else {
                    let mut conn = self.pool.acquire().await?;
                    return self.change_layout(&mut conn).await;
                };
                // On a connection of its own, never returned to the pool (dropped, it
                // closes, and the server releases the lock): instances starting at once
                // take turns (`CREATE TABLE IF NOT EXISTS` racing itself fails on
                // PostgreSQL). Each statement commits on its own, so the table is locked
                // only as long as each one needs.
                let mut conn = self.pool.acquire().await?.detach();
                sqlx::query(lock)
                    .bind(&self.sql.table)
                    .execute(&mut conn)
                    .await?;
                // Another instance may have migrated while this one waited.
                if self.layout_current(&mut conn).await? {
                    return Ok(());
                }
                self.change_layout(&mut conn).await
            }

            /// The migration's statements, on `conn`.
            async fn change_layout(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
            ) -> Result<(), $crate::StoreError> {
                sqlx::query(&self.sql.create_table)
                    .execute(&mut *conn)
                    .await?;
                for add_column in [&self.sql.add_hour_column, &self.sql.add_version_column] {
                    if let Err(err) = sqlx::query(add_column).execute(&mut *conn).await {
                        // Backends without `ADD COLUMN IF NOT EXISTS` (SQLite): already there.
                        let duplicate = err
                            .as_database_error()
                            .is_some_and(|db| db.message().contains("duplicate column"));
                        if !duplicate {
                            return Err(err.into());
                        }
                    }
                }
                for ddl in [
                    &self.sql.drop_old_index,
                    &self.sql.create_index,
                    &self.sql.create_stale,
                ] {
                    sqlx::query(ddl).execute(&mut *conn).await?;
                }
                Ok(())
            }

            /// Whether the table already has the current layout (`false` where the
            /// backend cannot tell cheaply: SQLite, whose DDL is cheap).
            async fn layout_current<'c, E>(&self, executor: E) -> Result<bool, $crate::StoreError>
            where
                E: sqlx::Executor<'c, Database = $db>,
            {
                let Some(check) = <Self as super::Dialect>::LAYOUT_CURRENT else {
                    return Ok(false);
                };
                // DDL takes table locks even when it has nothing to do (ALTER TABLE …
                // IF NOT EXISTS takes an exclusive one); skip it when up to date.
                let (new_index, old_index) = &self.sql.index_names;
                let current: bool = sqlx::query_scalar(check)
                    .bind(&self.sql.table)
                    .bind(new_index)
                    .bind(old_index)
                    .bind(&self.sql.stale_table)
                    .fetch_one(executor)
                    .await?;
                Ok(current)
            }
        }

        impl $crate::Store for $crate::store::SqlStore<$db> {
            async fn load(
                &self,
                key: &$crate::TokenHash,
            ) -> Result<Option<$crate::Record>, $crate::StoreError> {
                let now = super::millis_i64(self.clock.now());
                let row: Option<(Vec<u8>, i64, i64)> = super::bounded(
                    self.timeout,
                    sqlx::query_as(&self.sql.load)
                        .bind(key.as_str())
                        .bind(now)
                        .fetch_optional(&self.pool),
                )
                .await?;
                row.map(|(data, expires_at, version)| {
                    let expires_ms = u64::try_from(expires_at).unwrap_or(0);
                    let mut record =
                        $crate::Record::decode(&data, $crate::clock::from_millis(expires_ms))?;
                    // The column is what the conditional update compares: it decides.
                    record.version = u64::try_from(version).unwrap_or(0);
                    Ok(record)
                })
                .transpose()
            }

            async fn create(
                &self,
                key: &$crate::TokenHash,
                record: &$crate::Record,
            ) -> Result<bool, $crate::StoreError> {
                let data = record.encode()?;
                let done = super::bounded(
                    self.timeout,
                    sqlx::query(&self.sql.create)
                        .bind(key.as_str())
                        .bind(data)
                        .bind(super::millis_i64(record.expires_at))
                        .bind(super::hour_i64(record.expires_at))
                        .bind(super::version_i64(record.version))
                        .bind(super::millis_i64(self.clock.now()))
                        .execute(&self.pool),
                )
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn update(
                &self,
                key: &$crate::TokenHash,
                expected: u64,
                record: &$crate::Record,
            ) -> Result<bool, $crate::StoreError> {
                let data = record.encode()?;
                let done = super::bounded(
                    self.timeout,
                    sqlx::query(&self.sql.update)
                        .bind(data)
                        .bind(super::millis_i64(record.expires_at))
                        .bind(super::hour_i64(record.expires_at))
                        .bind(super::version_i64(record.version))
                        .bind(key.as_str())
                        .bind(super::version_i64(expected))
                        .bind(super::millis_i64(self.clock.now()))
                        .execute(&self.pool),
                )
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn touch(
                &self,
                key: &$crate::TokenHash,
                expected: u64,
                expires_at: std::time::SystemTime,
            ) -> Result<bool, $crate::StoreError> {
                let done = super::bounded(
                    self.timeout,
                    sqlx::query(&self.sql.touch)
                        .bind(super::millis_i64(expires_at))
                        .bind(super::hour_i64(expires_at))
                        .bind(key.as_str())
                        .bind(super::millis_i64(self.clock.now()))
                        .bind(super::version_i64(expected))
                        .execute(&self.pool),
                )
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete(&self, key: &$crate::TokenHash) -> Result<(), $crate::StoreError> {
                super::bounded(
                    self.timeout,
                    sqlx::query(&self.sql.delete)
                        .bind(key.as_str())
                        .execute(&self.pool),
                )
                .await?;
                Ok(())
            }

            async fn cleanup(&self, limit: usize) -> Result<usize, $crate::StoreError> {
                let now = self.clock.now();
                let done = super::bounded(
                    self.timeout,
                    sqlx::query(&self.sql.cleanup)
                        .bind(super::hour_i64(now))
                        .bind(super::millis_i64(now))
                        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                        .execute(&self.pool),
                )
                .await?;
                Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
            }
        }

        impl $crate::store::Durable for $crate::store::SqlStore<$db> {
            async fn mark_stale(&self, key: &$crate::TokenHash) -> Result<(), $crate::StoreError> {
                let seq = $crate::store::stale_seq()?;
                super::bounded(
                    self.timeout,
                    sqlx::query(&self.sql.mark_stale)
                        .bind(key.as_str())
                        .bind(seq)
                        .execute(&self.pool),
                )
                .await?;
                Ok(())
            }

            async fn stale_marks(
                &self,
                after: Option<&$crate::TokenHash>,
                limit: usize,
            ) -> Result<Vec<$crate::store::StaleMark>, $crate::StoreError> {
                let mut after = after.map_or_else(String::new, |key| key.as_str().to_owned());
                let limit_i64 = i64::try_from(limit).unwrap_or(i64::MAX);
                // Rows this crate did not write are removed, then the page is read again.
                for _ in 0..64 {
                    let rows: Vec<(String, i64)> = super::bounded(
                        self.timeout,
                        sqlx::query_as(&self.sql.stale_marks)
                            .bind(&after)
                            .bind(limit_i64)
                            .fetch_all(&self.pool),
                    )
                    .await?;
                    let mut marks = Vec::with_capacity(rows.len());
                    let mut foreign = Vec::new();
                    for (id, seq) in rows {
                        match $crate::TokenHash::from_stored(&id) {
                            Some(key) => marks.push($crate::store::StaleMark { key, seq }),
                            None => foreign.push(id),
                        }
                    }
                    if foreign.is_empty() {
                        return Ok(marks);
                    }
                    for id in &foreign {
                        tracing::warn!("repair log row that names no session removed");
                        super::bounded(
                            self.timeout,
                            sqlx::query(&self.sql.drop_stale)
                                .bind(id)
                                .execute(&self.pool),
                        )
                        .await?;
                    }
                    if !marks.is_empty() {
                        return Ok(marks);
                    }
                    if let Some(last) = foreign.last() {
                        after.clone_from(last);
                    }
                }
                Ok(Vec::new())
            }

            async fn clear_stale(
                &self,
                mark: &$crate::store::StaleMark,
            ) -> Result<(), $crate::StoreError> {
                super::bounded(
                    self.timeout,
                    sqlx::query(&self.sql.clear_stale)
                        .bind(mark.key.as_str())
                        .bind(mark.seq)
                        .execute(&self.pool),
                )
                .await?;
                Ok(())
            }
        }
    };
}
use impl_sql_store;

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;
    impl private::Sealed for Fake {}
    impl Dialect for Fake {
        const PLACEHOLDER: char = '$';
        const CLEANUP_LOCK: &'static str = " FOR UPDATE SKIP LOCKED";
        const COLUMN_TYPES: (&'static str, &'static str) = ("BYTEA", "BIGINT");
        const ADD_COLUMN: &'static str = "ADD COLUMN IF NOT EXISTS";
        const LAYOUT_CURRENT: Option<&'static str> = None;
        const MIGRATION_LOCK: Option<&'static str> = None;
    }

    #[test]
    fn table_names_are_checked() {
        assert!(Statements::new::<Fake>("sessions").is_ok());
        assert!(Statements::new::<Fake>("auth.sessions_v2").is_ok());
        for bad in [
            "",
            "a.b.c",
            "1abc",
            "s; DROP TABLE x",
            "a-b",
            "\"quoted\"",
            "a.",
        ] {
            assert!(
                matches!(Statements::new::<Fake>(bad), Err(StoreError::Config(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn placeholders_follow_the_dialect() {
        let pg = Statements::new::<Fake>("auth.sessions").unwrap();
        assert!(pg.update.contains("version = $6 AND"));
        assert!(pg
            .mark_stale
            .starts_with("INSERT INTO auth.sessions_stale (id, seq)"));
        assert!(pg
            .stale_marks
            .contains("WHERE id > $1 ORDER BY id LIMIT $2"));
        assert!(pg.cleanup.ends_with("LIMIT $3 FOR UPDATE SKIP LOCKED)"));
        assert!(pg
            .create_index
            .contains("sessions_expires_hour_idx ON auth.sessions (expires_hour)"));
        assert_eq!(
            pg.drop_old_index,
            "DROP INDEX IF EXISTS auth.sessions_expires_at_idx"
        );
        assert!(pg
            .add_hour_column
            .contains("ADD COLUMN IF NOT EXISTS expires_hour"));
        assert!(pg.create_table.contains("data BYTEA NOT NULL"));
    }
}
