//! The PostgreSQL backend of [`SqlStore`].

use sqlx::{postgres::PgPoolOptions, Postgres};

use super::{impl_sql_store, Dialect, SqlStore};
use crate::StoreError;

/// Sessions in PostgreSQL.
pub type PostgresStore = SqlStore<Postgres>;

impl super::private::Sealed for PostgresStore {}

impl Dialect for PostgresStore {
    const PLACEHOLDER: char = '$';
    const COLUMN_TYPES: (&'static str, &'static str) = ("BYTEA", "BIGINT");
    const CLEANUP_LOCK: &'static str = " FOR UPDATE SKIP LOCKED";
    const ADD_COLUMN: &'static str = "ADD COLUMN IF NOT EXISTS";
    const LAYOUT_CURRENT: Option<&'static str> = Some(
        "SELECT (SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1) \
         AND attname IN ('expires_hour', 'version') AND NOT attisdropped) = 2 \
         AND to_regclass($2) IS NOT NULL AND to_regclass($3) IS NULL \
         AND to_regclass($4) IS NOT NULL",
    );
    // The two-key form, in a space of its own: no clash with an application's locks.
    const MIGRATION_LOCK: Option<&'static str> =
        Some("SELECT pg_advisory_lock(hashtext('session_core.migrate'), hashtext($1))");
}

impl PostgresStore {
    /// Connects a pool to `url` (`postgres://…`), builds a store on the default table and
    /// runs [`migrate`](Self::migrate).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the database cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            // A checkout must not cost a round trip: the pool closes broken connections
            // when a statement on them fails.
            .test_before_acquire(false)
            .acquire_timeout(super::DEFAULT_TIMEOUT)
            .connect(url)
            .await?;
        let store = Self::new(pool)?;
        store.migrate().await?;
        Ok(store)
    }
}

impl_sql_store!(Postgres);
