//! [`TieredStore`]: a fast cache in front of a durable store.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, SystemTime},
};

use crate::{clock::to_millis, Cache, Clock, Record, Store, StoreError, SystemClock, TokenHash};

/// A cache (Redis, [`MemoryStore`](crate::store::MemoryStore)) in front of a durable store
/// (PostgreSQL, SQLite), behaving as one [`Store`].
///
/// # Rules
///
/// - **Read**: try the cache; on a miss, read the durable store and write what it found
///   back into the cache with its remaining lifetime, only if the key is still absent there
///   (the cache's `create`: `SET … NX` in Redis). A write that lands between the durable
///   read and the refill has put a newer record in the cache, and the older one must not
///   replace it. A cache hit costs one cache command and no durable query; a miss one cache
///   read, one durable query and one cache write.
/// - **Write** (`create`, `update`, `touch`, `delete`): the durable store first, then the
///   cache. A save costs one durable statement and one cache command. A write is
///   acknowledged (returns `Ok`) only once the durable store has it.
/// - **Durable store fails**: the write fails with its error (typically
///   [`StoreError::Unavailable`]) and the key is dropped from the cache, so the cache never
///   holds a value that was not acknowledged.
/// - **Cache fails**: the request is served from the durable store; the failure is logged
///   (`tracing` warning) and counted ([`TierStats::cache_errors`]), never returned. Keys
///   written while the cache failed are remembered and not read from the cache; once the
///   cache answers again they are deleted from it before anything else, so a returning
///   cache never serves a stale record. If more keys than
///   [`max_dirty_keys`](TieredStoreBuilder::max_dirty_keys) go stale, the cache is bypassed
///   for reads for [`stale_horizon`](TieredStoreBuilder::stale_horizon), the longest time a
///   stale entry can live.
/// - A cache entry that does not decode is treated as a miss and deleted.
/// - `cleanup` cleans the durable store; the cache expires entries by itself.
///
/// Remaining race, as in every cache-aside design without versions in the cache: a read
/// that misses, reads the durable store, and refills the cache only after a concurrent
/// `delete` of the same key has emptied it, puts the deleted record back into the cache
/// until it expires. Writes to one session from concurrent requests already race (last
/// write wins).
///
/// Several application processes that share a cache each remember only their own stale
/// keys.
#[derive(Debug)]
pub struct TieredStore<C, D> {
    cache: C,
    durable: D,
    shared: Arc<Shared>,
}

impl<C: Clone, D: Clone> Clone for TieredStore<C, D> {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
            durable: self.durable.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

#[derive(Debug)]
struct Shared {
    /// Keys whose cache entry may be stale (a cache write failed).
    dirty: Mutex<HashSet<TokenHash>>,
    /// Fast check that `dirty` is non-empty.
    has_dirty: AtomicBool,
    /// Until when (Unix ms) reads bypass the cache after `dirty` overflowed.
    bypass_until_ms: AtomicU64,
    max_dirty: usize,
    stale_horizon: Duration,
    clock: Arc<dyn Clock>,
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
}

/// Counters of a [`TieredStore`], since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierStats {
    /// Loads answered by the cache.
    pub cache_hits: u64,
    /// Loads that went to the durable store.
    pub cache_misses: u64,
    /// Cache operations that failed (and were served from the durable store).
    pub cache_errors: u64,
    /// Keys currently kept out of the cache because a cache write failed.
    pub dirty_keys: usize,
}

/// Builds a [`TieredStore`].
#[derive(Debug)]
#[must_use]
pub struct TieredStoreBuilder<C, D> {
    cache: C,
    durable: D,
    max_dirty: usize,
    stale_horizon: Duration,
    clock: Arc<dyn Clock>,
}

impl<C: Cache, D: Store> TieredStoreBuilder<C, D> {
    /// How many stale keys to remember during a cache outage before bypassing the cache for
    /// reads altogether. Default: 100 000.
    pub fn max_dirty_keys(mut self, max: usize) -> Self {
        self.max_dirty = max;
        self
    }

    /// How long reads bypass the cache once more than `max_dirty_keys` went stale: set it to
    /// your longest session lifetime. Default: 24 hours.
    pub fn stale_horizon(mut self, horizon: Duration) -> Self {
        self.stale_horizon = horizon;
        self
    }

    /// The clock for the stale horizon. Default: [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the store.
    #[must_use]
    pub fn build(self) -> TieredStore<C, D> {
        TieredStore {
            cache: self.cache,
            durable: self.durable,
            shared: Arc::new(Shared {
                dirty: Mutex::new(HashSet::new()),
                has_dirty: AtomicBool::new(false),
                bypass_until_ms: AtomicU64::new(0),
                max_dirty: self.max_dirty,
                stale_horizon: self.stale_horizon,
                clock: self.clock,
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                errors: AtomicU64::new(0),
            }),
        }
    }
}

/// How many stale keys one request deletes from a returning cache, at most.
const HEAL_BATCH: usize = 64;

impl<C: Cache, D: Store> TieredStore<C, D> {
    /// A tiered store with the default settings.
    #[must_use]
    pub fn new(cache: C, durable: D) -> Self {
        Self::builder(cache, durable).build()
    }

    /// A builder for a tiered store.
    pub fn builder(cache: C, durable: D) -> TieredStoreBuilder<C, D> {
        TieredStoreBuilder {
            cache,
            durable,
            max_dirty: 100_000,
            stale_horizon: Duration::from_secs(24 * 60 * 60),
            clock: Arc::new(SystemClock),
        }
    }

    /// The cache tier.
    pub fn cache(&self) -> &C {
        &self.cache
    }

    /// The durable tier.
    pub fn durable(&self) -> &D {
        &self.durable
    }

    /// Counters since the store was built.
    #[must_use]
    pub fn stats(&self) -> TierStats {
        TierStats {
            cache_hits: self.shared.hits.load(Ordering::Relaxed),
            cache_misses: self.shared.misses.load(Ordering::Relaxed),
            cache_errors: self.shared.errors.load(Ordering::Relaxed),
            dirty_keys: self.lock_dirty().len(),
        }
    }

    fn lock_dirty(&self) -> std::sync::MutexGuard<'_, HashSet<TokenHash>> {
        // A panic while holding this lock cannot leave the set inconsistent.
        self.shared
            .dirty
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cache_failed(&self, op: &str, err: &StoreError) {
        self.shared.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(op, error = %err, "session cache failed; serving from the durable store");
    }

    /// Remembers that the cache entry of `key` may be stale.
    fn mark_dirty(&self, key: &TokenHash) {
        let mut dirty = self.lock_dirty();
        if dirty.len() < self.shared.max_dirty {
            dirty.insert(key.clone());
            self.shared.has_dirty.store(true, Ordering::Release);
        } else {
            let until = to_millis(self.shared.clock.now() + self.shared.stale_horizon);
            self.shared
                .bypass_until_ms
                .fetch_max(until, Ordering::AcqRel);
            tracing::error!("too many stale session cache keys; bypassing the cache for reads");
        }
    }

    fn forget_dirty(&self, key: &TokenHash) {
        if self.shared.has_dirty.load(Ordering::Acquire) {
            let mut dirty = self.lock_dirty();
            dirty.remove(key);
            self.shared
                .has_dirty
                .store(!dirty.is_empty(), Ordering::Release);
        }
    }

    /// Whether `key` may be read from the cache.
    fn cache_readable(&self, key: &TokenHash) -> bool {
        let bypass = self.shared.bypass_until_ms.load(Ordering::Acquire);
        if bypass != 0 && to_millis(self.shared.clock.now()) < bypass {
            return false;
        }
        !self.shared.has_dirty.load(Ordering::Acquire) || !self.lock_dirty().contains(key)
    }

    /// Deletes some stale keys from the cache, if there are any and it answers.
    async fn heal(&self) {
        if !self.shared.has_dirty.load(Ordering::Acquire) {
            return;
        }
        let batch: Vec<TokenHash> = self.lock_dirty().iter().take(HEAL_BATCH).cloned().collect();
        for key in batch {
            match self.cache.delete(&key).await {
                Ok(()) => self.forget_dirty(&key),
                Err(err) => {
                    self.cache_failed("heal", &err);
                    return;
                }
            }
        }
        tracing::info!("session cache reachable again; stale keys invalidated");
    }

    /// A cache write failed: the entry of `key` may now be stale.
    fn cache_write_failed(&self, op: &str, key: &TokenHash, err: &StoreError) {
        self.cache_failed(op, err);
        self.mark_dirty(key);
    }

    /// Writes `record` into the cache after a durable write or read.
    async fn cache_put(&self, key: &TokenHash, record: &Record) {
        match self.cache.put(key, record).await {
            Ok(()) => self.forget_dirty(key),
            Err(err) => self.cache_write_failed("put", key, &err),
        }
    }

    /// Refills the cache after a miss, where `key` is still absent: a write that landed
    /// since the durable read has put a newer record there, which this one must not replace.
    async fn cache_refill(&self, key: &TokenHash, record: &Record) {
        if let Err(err) = self.cache.create(key, record).await {
            self.cache_write_failed("refill", key, &err);
        }
    }

    /// Drops `key` from the cache.
    async fn cache_delete(&self, key: &TokenHash) {
        match self.cache.delete(key).await {
            Ok(()) => self.forget_dirty(key),
            Err(err) => self.cache_write_failed("delete", key, &err),
        }
    }
}

impl<C: Cache, D: Store> Store for TieredStore<C, D> {
    async fn load(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        self.heal().await;
        if self.cache_readable(key) {
            match self.cache.load(key).await {
                Ok(Some(record)) => {
                    self.shared.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(record));
                }
                Ok(None) => {}
                Err(err) if err.is_corrupt() => {
                    tracing::warn!(error = %err, "corrupt session cache entry dropped");
                    self.cache_delete(key).await;
                }
                Err(err) => self.cache_failed("load", &err),
            }
        }
        self.shared.misses.fetch_add(1, Ordering::Relaxed);
        let found = self.durable.load(key).await?;
        // A key whose cache entry may be stale is overwritten; any other only refilled.
        match (&found, self.cache_readable(key)) {
            (Some(record), true) => self.cache_refill(key, record).await,
            (Some(record), false) => self.cache_put(key, record).await,
            (None, false) => self.cache_delete(key).await,
            (None, true) => {}
        }
        Ok(found)
    }

    async fn create(&self, key: &TokenHash, record: &Record) -> Result<bool, StoreError> {
        self.heal().await;
        if !self.durable.create(key, record).await? {
            return Ok(false);
        }
        self.cache_put(key, record).await;
        Ok(true)
    }

    async fn update(&self, key: &TokenHash, record: &Record) -> Result<bool, StoreError> {
        self.heal().await;
        let written = self.durable.update(key, record).await;
        // Mirror what the durable store acknowledged; anything else leaves the cache empty.
        if matches!(written, Ok(true)) {
            self.cache_put(key, record).await;
        } else {
            self.cache_delete(key).await;
        }
        written
    }

    async fn touch(&self, key: &TokenHash, expires_at: SystemTime) -> Result<bool, StoreError> {
        self.heal().await;
        let touched = self.durable.touch(key, expires_at).await;
        if matches!(touched, Ok(true)) {
            if let Err(err) = self.cache.touch(key, expires_at).await {
                self.cache_write_failed("touch", key, &err);
            }
        } else {
            self.cache_delete(key).await;
        }
        touched
    }

    async fn delete(&self, key: &TokenHash) -> Result<(), StoreError> {
        self.heal().await;
        let durable = self.durable.delete(key).await;
        self.cache_delete(key).await;
        durable
    }

    async fn cleanup(&self, limit: usize) -> Result<usize, StoreError> {
        self.durable.cleanup(limit).await
    }
}
