//! The SQLite backend of [`SqlStore`], the embedded default.

use std::{str::FromStr, time::Duration};

use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    Sqlite,
};

use super::{impl_sql_store, Dialect, SqlStore};
use crate::StoreError;

/// Sessions in SQLite.
pub type SqliteStore = SqlStore<Sqlite>;

impl super::private::Sealed for SqliteStore {}

impl Dialect for SqliteStore {
    const PLACEHOLDER: char = '?';
    const COLUMN_TYPES: (&'static str, &'static str) = ("BLOB", "INTEGER");
    const CLEANUP_LOCK: &'static str = "";
    const ADD_COLUMN: &'static str = "ADD COLUMN";
    const LAYOUT_CURRENT: Option<&'static str> = None;
    const MIGRATION_LOCK: Option<&'static str> = None;
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://sessions.db`, or
    /// `sqlite::memory:`), in WAL mode with a busy timeout, builds a store on the default
    /// table and runs [`migrate`](Self::migrate).
    ///
    /// # Errors
    ///
    /// [`StoreError::Config`] for a malformed URL, [`StoreError::Unavailable`] if the file
    /// cannot be opened.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = SqlitePoolOptions::new()
            .test_before_acquire(false)
            // An in-memory database lives in one connection; keep exactly that one.
            .max_connections(if in_memory { 1 } else { 8 })
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        let store = Self::new(pool)?;
        store.migrate().await?;
        Ok(store)
    }
}

impl_sql_store!(Sqlite);
