//! The [`Store`] and [`Cache`] traits: what every backend implements.

use std::{future::Future, time::SystemTime};

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
/// - **Concurrent writers**: each method is atomic on its own; two `update`s of one key
///   race and the last one wins. There is no read-modify-write transaction across methods.
/// - **No resurrection**: only `create` brings a key into existence. A record deleted while
///   a slow request was working on it stays deleted when that request saves.
///
/// # Writing a store
///
/// Implement the six methods with the semantics above and run the conformance suite in this
/// repository's `session-core/tests/` against it.
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

    /// Replaces the live record under `key`, with the record's new expiry.
    ///
    /// Returns `false`, writing nothing, if there is no live record under `key` (it expired
    /// or was deleted): an update never brings a session back.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the backend cannot answer.
    fn update(
        &self,
        key: &TokenHash,
        record: &Record,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Moves the expiry of the live record under `key` to `expires_at`, leaving its data as
    /// it is. Returns `false` if there is no live record.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the backend cannot answer.
    fn touch(
        &self,
        key: &TokenHash,
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

/// A [`Store`] fit to be the cache tier of a
/// [`TieredStore`](crate::store::TieredStore): it can also write a record unconditionally.
pub trait Cache: Store {
    /// Writes `record` under `key` whether or not the key exists (a plain `SET` with
    /// expiry). Used to mirror durable writes, and to refill keys whose cache entry may be
    /// stale; other refills use [`Store::create`], which leaves a newer entry alone.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the backend cannot answer.
    fn put(
        &self,
        key: &TokenHash,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
