//! [`LoadedFrom`]: which tier answered a load.

/// Which tier answered a [`Store::load_from`](crate::Store::load_from): what a diagnostics
/// page or a log line says about where a session's state came from.
///
/// Only [`TieredStore`](crate::store::TieredStore) tells the tiers apart; a single-tier store
/// answers [`Store`](Self::Store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadedFrom {
    /// A store of one tier (memory, Redis, SQL) answered.
    Store,
    /// The cache tier had the record: no durable query.
    Cache,
    /// The cache did not have it: read from the durable store and put back in the cache.
    Refilled,
    /// The cache was skipped (circuit breaker open) or failed: read from the durable store
    /// alone.
    Durable,
    /// No store: the record came in the cookie itself (a cookie-only session layer).
    Cookie,
}

impl LoadedFrom {
    /// A short description: `"cache hit"`, `"database read, cache refilled"`, ….
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::Store => "read from the store",
            Self::Cache => "cache hit",
            Self::Refilled => "cache miss: read from the database, put back in the cache",
            Self::Durable => "cache unavailable: read from the database",
            Self::Cookie => "read from the cookie",
        }
    }
}
