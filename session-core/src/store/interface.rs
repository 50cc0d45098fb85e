//! The [`Store`] and [`Cache`] traits: what every backend implements.

use std::{future::Future, time::SystemTime};

use super::LoadedFrom;
use crate::{Record, StoreError, TokenHash};

/// Where sessions live: a key/value store of [`Record`]s with expiry.
///
/// Keys are [`TokenHash`]es, never raw tokens. Every implementation in this crate runs each
/// method as a single command or statement against its backend, so one request costs a
/// known, countable number of round trips.
///
/// # Contract
///
/// - **Expiry**: a record whose `expires_at` is at or before the store's clock is gone for
///   every method: `load` returns `None`, `update` and `touch` return `false`, and `create`
///   may reuse its key. Backends also expire records on their own (TTLs), and `cleanup`
///   reclaims what remains.
/// - **Versions**: every record carries a [`version`](Record::version). `update` is
///   conditional: it applies only while the stored record still has the version the write
///   was based on, so a write based on a stale read can never replace newer data. Callers
///   that lose that race reload with [`reload`](Store::reload) and re-apply their changes
///   ([`apply_changes`](crate::store::apply_changes) does exactly that).
/// - **Atomicity**: each method is atomic on its own, one command or statement. There is
///   no transaction across methods.
/// - **No resurrection**: only `create` brings a key into existence. A record deleted while
///   a slow request was working on it stays deleted when that request saves.
///
/// # Writing a store
///
/// Implement the methods with the semantics above and run the conformance suite against
/// it: `session_core::testing::conformance` (feature `testing`) has a complete example.
pub trait Store: Send + Sync + 'static {
    /// Loads the live record under `key`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the backend cannot answer; [`StoreError::Corrupt`] if
    /// the stored bytes do not decode. A missing or expired key is `Ok(None)`, not an error.
    fn load(
        &self,
        key: &TokenHash,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send;

    /// [`load`](Store::load), and which tier answered. The session layer loads through
    /// this, so that a request can tell where its state came from
    /// ([`LoadedFrom`]); only a tiered store needs to implement it, the default answers
    /// [`LoadedFrom::Store`].
    ///
    /// # Errors
    ///
    /// As [`load`](Store::load).
    fn load_from(
        &self,
        key: &TokenHash,
    ) -> impl Future<Output = Result<(Option<Record>, LoadedFrom), StoreError>> + Send {
        async move { Ok((self.load(key).await?, LoadedFrom::Store)) }
    }

    /// Inserts a new record; never overwrites a live one.
    ///
    /// Returns `false` if a live record already holds `key` (a collision): nothing was
    /// written, and the caller should draw a new token.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the backend cannot answer.
    fn create(
        &self,
        key: &TokenHash,
        record: &Record,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces the live record under `key` by `record` (with its new expiry and version),
    /// if the stored record's version is still `expected`: one conditional statement.
    ///
    /// `record.version` must be newer than `expected`; callers write
    /// [`base.next_version()`](Record::next_version) of the record they loaded.
    ///
    /// Returns `false`, writing nothing, if there is no live record under `key` (it expired
    /// or was deleted: an update never brings a session back), or if another write changed
    /// it since (a version other than `expected`). [`reload`](Store::reload) tells which.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the backend cannot answer.
    fn update(
        &self,
        key: &TokenHash,
        expected: u64,
        record: &Record,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Loads the live record under `key` from the store of record, bypassing any cache
    /// tier: what a writer whose conditional `update` failed reads before it retries.
    /// The same as [`load`](Store::load) for a store without tiers.
    ///
    /// # Errors
    ///
    /// As [`load`](Store::load).
    fn reload(
        &self,
        key: &TokenHash,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send {
        self.load(key)
    }

    /// Moves the expiry of the live record under `key` to `expires_at`, leaving its data as
    /// it is, if its version is still `expected` (the one the caller loaded). Returns
    /// `false` if there is no live record, or it has another version: written or rotated
    /// meanwhile, it is for the caller to load again and decide.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the backend cannot answer.
    fn touch(
        &self,
        key: &TokenHash,
        expected: u64,
        expires_at: SystemTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes the record under `key`. Deleting a missing key is not an error.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the backend cannot answer.
    fn delete(&self, key: &TokenHash) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes at most `limit` expired records and returns how many it deleted.
    ///
    /// Stores whose backend expires records by itself (memory, Redis) may return `0`. A
    /// caller that wants everything gone calls again until the result is below `limit`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the backend cannot answer.
    fn cleanup(&self, limit: usize) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// The cache tier of a [`TieredStore`](crate::store::TieredStore): a fast copy of what the
/// durable store holds, that only ever moves forward.
///
/// # Contract
///
/// - **Forward only**: [`put`](Cache::put) writes a record only over an older version of it
///   (or an absent key); a slow writer holding an older version never replaces a newer one,
///   whatever order the writes arrive in. Atomic: a script in Redis, a compute in memory.
/// - **Tombstones**: [`invalidate`](Cache::invalidate) leaves a marker that refuses every
///   `put` of the key until it expires, so a refill that read the durable store before a
///   delete cannot put the deleted record back.
/// - **Generations**: a cache that restarted (or was restored from a snapshot, or failed
///   over to a replica) must not serve what it held before: entries written before the
///   restart read as absent ([`RedisStore`](crate::store::RedisStore) tags each entry with
///   the server's `run_id`).
/// - Expired entries read as absent, by the cache's clock.
pub trait Cache: Send + Sync + 'static {
    /// The cached record under `key`; `None` if absent, expired, a tombstone, or written
    /// before the cache restarted.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the cache cannot answer; [`StoreError::Corrupt`] if
    /// the entry does not decode.
    fn get(
        &self,
        key: &TokenHash,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send;

    /// Writes `record` under `key` unless the cache holds the same or a newer version of
    /// it, or a tombstone. Not writing is not an error.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the cache cannot answer.
    fn put(
        &self,
        key: &TokenHash,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Moves the expiry of the cached entry under `key`, if there is a live one of version
    /// `expected` (a newer one, e.g. a forward a rotation left, keeps its own expiry).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the cache cannot answer.
    fn touch(
        &self,
        key: &TokenHash,
        expected: u64,
        expires_at: SystemTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Replaces whatever is cached under `key` by a tombstone that lives until `until`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the cache cannot answer.
    fn invalidate(
        &self,
        key: &TokenHash,
        until: SystemTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Checks that the cache answers (connecting if needed); what a circuit breaker's
    /// probe calls before the cache is trusted again.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the cache cannot answer.
    fn probe(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A mark in a [`Durable`] store's repair log: the cache entry of `key` may be stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleMark {
    /// The session whose cache entry may be stale.
    pub key: TokenHash,
    /// A random value drawn anew by every mark of the key, so that clearing a mark that
    /// was read never clears a newer one (a counter restarting after a clear could repeat).
    pub seq: i64,
}

/// A fresh [`StaleMark::seq`].
///
/// # Errors
///
/// [`StoreError::Unavailable`] if the operating system's random source fails.
pub fn stale_seq() -> Result<i64, StoreError> {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| StoreError::unavailable("the random source failed"))?;
    Ok(i64::from_le_bytes(bytes))
}

/// A [`Store`] fit to be the durable tier of a [`TieredStore`](crate::store::TieredStore):
/// it also keeps a small repair log of keys whose cache entry may be stale.
///
/// The log is written only on the outage path (a durable write succeeded but the cache
/// could not be updated) and read by whichever instance reaches the cache first, so the
/// repair does not depend on the memory of the process that saw the outage.
pub trait Durable: Store {
    /// Records that the cache entry of `key` may be stale (an upsert with a new
    /// [`stale_seq`]).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the backend cannot answer.
    fn mark_stale(&self, key: &TokenHash) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` marks whose key sorts after `after` (all, for `None`), in key order:
    /// one page of the log. Rows that name no valid key are removed, not returned.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the backend cannot answer.
    fn stale_marks(
        &self,
        after: Option<&TokenHash>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StaleMark>, StoreError>> + Send;

    /// Removes `mark`, if it was not marked again since it was read (same `seq`).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the backend cannot answer.
    fn clear_stale(&self, mark: &StaleMark) -> impl Future<Output = Result<(), StoreError>> + Send;
}
