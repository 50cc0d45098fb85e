//! [`TieredStore`]: a fast cache in front of a durable store.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime},
};

use super::{
    breaker::{Breaker, CacheState},
    Durable, LoadedFrom, StaleMark,
};
use crate::{telemetry, Cache, Clock, Record, Store, StoreError, SystemClock, TokenHash};

/// A cache (Redis, [`MemoryStore`](crate::store::MemoryStore)) in front of a durable store
/// (PostgreSQL, SQLite), behaving as one [`Store`].
///
/// # Guarantees
///
/// - **No acknowledged write is lost.** A write returns `Ok` only once the durable store
///   has it. Updates are conditional on the version they were based on, so a write based
///   on a stale read (from a cache that missed a write, for any reason) is refused by the
///   durable store instead of replacing newer data; [`apply_changes`] then re-reads the
///   durable store and re-applies only the request's own changes.
/// - **The cache only moves forward.** Every cache write carries the record's version and
///   is refused over the same or a newer one ([`Cache::put`]); a delete leaves a tombstone
///   for [`tombstone_ttl`](TieredStoreBuilder::tombstone_ttl) that refuses refills. So
///   neither a late refill nor writes arriving out of order leave the cache older than
///   the database. A cache write also carries a deadline (with
///   [`RedisStore`](crate::store::RedisStore): its response timeout and 5 s, by the
///   server's clock): one held in a frozen server until its tombstone expired is refused
///   when the server thaws.
/// - **A restarted cache comes back cold, not stale.** Entries the cache brings back from
///   before a restart (a snapshot, an append-only file, a promoted replica) read as misses
///   ([`RedisStore`](crate::store::RedisStore) tags entries with the server's `run_id`).
/// - **Missed cache writes are repaired from the data, not from memory.** When a durable
///   write succeeds but the cache cannot be updated, the key goes into the durable store's
///   repair log ([`Durable`]) before the write is acknowledged. Whichever instance reaches
///   the cache first (at start-up, after every outage, and every
///   [`repair_interval`](TieredStoreBuilder::repair_interval) while it trusts the cache)
///   refreshes those keys from the durable store before trusting the cache again, so a
///   killed or restarted instance loses nothing that the repair needs.
///
/// **When a stale read is possible**: only during a partial partition, where one instance
/// cannot reach the cache and writes around it while another instance still reads it. An
/// instance reads the repair log before it reads its cache again once
/// [`repair_interval`](TieredStoreBuilder::repair_interval) (default 1 s) has passed since
/// its last pass, so it serves the older version of those sessions for at most that long
/// after the write. A write it bases on such a read is refused by the version check and
/// re-applied on the durable copy: changes to other keys survive, while a new value for the
/// same key, computed from the older one, replaces it (as two concurrent writes of one key
/// do). After a cache outage that every instance saw, nothing stale is read at all: the
/// repair runs before the cache is trusted.
///
/// # Rules
///
/// - **Read**: try the cache; on a miss, read the durable store and put what it found into
///   the cache (forward only). A hit costs one cache command and no durable query; a miss
///   one cache read, one durable query and one cache write.
/// - **Write** (`create`, `update`, `touch`, `delete`): the durable store first, then the
///   cache. A save costs one durable statement and one cache command (with
///   [`WriteQueue`](crate::store::WriteQueue), saves of one session that queue up share
///   one).
/// - **Periodic pass**: once per `repair_interval`, the first operation reads the repair
///   log (one statement; usually empty) before the cache is read again.
/// - **Durable store fails**: the write fails with its error (typically
///   [`StoreError::Unavailable`]); the cache entry is invalidated where the cache answers.
/// - **Cache fails**: the request is served from the durable store, and the failure is
///   logged and counted ([`TierStats::cache_errors`]), never returned. A circuit breaker
///   then skips the cache for [`retry_after`](TieredStoreBuilder::retry_after) (doubling
///   up to [`max_retry_after`](TieredStoreBuilder::max_retry_after) while it keeps
///   failing) and a background task probes it, so an outage costs requests no waiting.
///   Writes while the cache is skipped cost one more durable statement (the repair log).
///   Once a probe answers, the repair pass runs, then the cache is trusted again.
/// - A cache entry that does not decode is treated as a miss.
/// - `cleanup` cleans the durable store; the cache expires entries by itself.
///
/// # Example
///
/// The embedded default: an in-process cache in front of SQLite (here in memory). The
/// first load misses the cache, reads the durable copy and refills the cache; the second
/// is a hit.
///
/// ```
/// # #[cfg(feature = "sqlite")]
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::{Duration, SystemTime};
/// use session_core::{
///     store::{MemoryStore, SqliteStore, TieredStore},
///     Record, SessionToken, Store,
/// };
///
/// let durable = SqliteStore::connect("sqlite::memory:").await?;
/// let store = TieredStore::new(MemoryStore::new(), durable.clone());
///
/// let key = SessionToken::generate()?.hash();
/// let now = SystemTime::now();
/// let mut record = Record::new(now, now + Duration::from_secs(60));
/// record.insert("visits", &1)?;
/// durable.create(&key, &record).await?; // written around the cache
///
/// assert!(store.load(&key).await?.is_some()); // miss: read from SQLite, cache refilled
/// assert!(store.load(&key).await?.is_some()); // hit
/// let stats = store.stats();
/// assert_eq!((stats.cache_misses, stats.cache_hits), (1, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// [`apply_changes`]: crate::store::apply_changes
#[derive(Debug)]
pub struct TieredStore<C, D> {
    inner: Arc<Inner<C, D>>,
}

impl<C, D> Clone for TieredStore<C, D> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

#[derive(Debug)]
struct Inner<C, D> {
    cache: C,
    durable: D,
    breaker: Breaker,
    /// The start-up probe and first page of the repair log, which every operation waits
    /// for.
    started: tokio::sync::OnceCell<()>,
    /// Held by the periodic repair pass, which runs before the cache is read again.
    pass: tokio::sync::Mutex<()>,
    repair_interval: Duration,
    tombstone_ttl: Duration,
    clock: Arc<dyn Clock>,
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    skipped: AtomicU64,
    repaired: AtomicU64,
}

/// Counters of a [`TieredStore`], since it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierStats {
    /// Loads answered by the cache.
    pub cache_hits: u64,
    /// Loads that went to the durable store.
    pub cache_misses: u64,
    /// Cache operations that failed (and were served from the durable store).
    pub cache_errors: u64,
    /// Cache operations skipped because the breaker was open.
    pub cache_skipped: u64,
    /// Keys repaired from the durable repair log.
    pub repaired: u64,
    /// Where the cache stands now.
    pub cache_state: CacheState,
}

/// Builds a [`TieredStore`].
#[derive(Debug)]
#[must_use]
pub struct TieredStoreBuilder<C, D> {
    cache: C,
    durable: D,
    retry_after: Duration,
    max_retry_after: Duration,
    repair_interval: Duration,
    tombstone_ttl: Duration,
    clock: Arc<dyn Clock>,
}

impl<C: Cache, D: Durable> TieredStoreBuilder<C, D> {
    /// How long the cache is skipped after a failure before a background probe tries it
    /// again; doubles with every failed probe. Default: 250 ms, so a short blip costs
    /// little and an outage costs requests nothing.
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = delay;
        self
    }

    /// The longest wait between probes of a cache that keeps failing (a probe runs in the
    /// background and costs one command). Default: 1 s, so a returning cache is trusted
    /// again within about a second.
    pub fn max_retry_after(mut self, delay: Duration) -> Self {
        self.max_retry_after = delay;
        self
    }

    /// How often an instance that trusts the cache reads the durable repair log (one
    /// statement, in the background), which bounds how long a partial partition can serve
    /// stale reads. Default: 1 s.
    pub fn repair_interval(mut self, interval: Duration) -> Self {
        self.repair_interval = interval;
        self
    }

    /// How long a deleted key's tombstone refuses cache refills: longer than a durable
    /// read can take (see [`SqlStoreBuilder::timeout`](crate::store::SqlStoreBuilder::timeout)),
    /// and longer than the cache's write deadline (a Redis cache's response timeout and
    /// 5 s). Default: 30 s.
    pub fn tombstone_ttl(mut self, ttl: Duration) -> Self {
        self.tombstone_ttl = ttl;
        self
    }

    /// The clock for tombstone expiry. Default: [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the store. Its first operation repairs the cache from the durable repair log
    /// before trusting it.
    #[must_use]
    pub fn build(self) -> TieredStore<C, D> {
        TieredStore {
            inner: Arc::new(Inner {
                cache: self.cache,
                durable: self.durable,
                breaker: Breaker::new(self.retry_after, self.max_retry_after),
                started: tokio::sync::OnceCell::new(),
                pass: tokio::sync::Mutex::new(()),
                repair_interval: self.repair_interval,
                tombstone_ttl: self.tombstone_ttl,
                clock: self.clock,
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                skipped: AtomicU64::new(0),
                repaired: AtomicU64::new(0),
            }),
        }
    }
}

/// How many repair-log marks one page holds, and how many pages one pass reads at most
/// (a pass that stops short leaves the cache untrusted and resumes later).
const REPAIR_PAGE: usize = 100;
const REPAIR_PAGES: usize = 10_000;

/// What a durable write asks of the cache.
#[derive(Clone, Copy)]
enum Mirror<'a> {
    Put(&'a Record),
    Invalidate,
}

impl<C: Cache, D: Durable> TieredStore<C, D> {
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
            retry_after: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(1),
            repair_interval: Duration::from_secs(1),
            tombstone_ttl: Duration::from_secs(30),
            clock: Arc::new(SystemClock),
        }
    }

    /// The cache tier.
    pub fn cache(&self) -> &C {
        &self.inner.cache
    }

    /// The durable tier.
    pub fn durable(&self) -> &D {
        &self.inner.durable
    }

    /// Counters since the store was built.
    #[must_use]
    pub fn stats(&self) -> TierStats {
        let s = &self.inner;
        TierStats {
            cache_hits: s.hits.load(Ordering::Relaxed),
            cache_misses: s.misses.load(Ordering::Relaxed),
            cache_errors: s.errors.load(Ordering::Relaxed),
            cache_skipped: s.skipped.load(Ordering::Relaxed),
            repaired: s.repaired.load(Ordering::Relaxed),
            cache_state: s.breaker.state(),
        }
    }

    /// Probes the cache if it is not trusted, and runs a whole repair pass now; the cache
    /// is trusted once the pass reached the end of the repair log. What the background task
    /// does; for start-up code that wants the cache trusted before serving, and for tests.
    ///
    /// # Errors
    ///
    /// The cache's or the durable store's error if either failed (the cache then stays
    /// skipped until a later probe).
    pub async fn repair(&self) -> Result<(), StoreError> {
        self.ready().await;
        self.inner.recover().await
    }

    /// Waits for the start-up check, runs the periodic repair pass when it is due, and
    /// starts the background recovery of a skipped cache when its probe is due.
    async fn ready(&self) {
        let inner = &self.inner;
        inner.started.get_or_init(|| inner.start()).await;
        if !inner.breaker.due() {
            return;
        }
        match inner.breaker.state() {
            CacheState::Closed => {
                // Another instance may have written around the cache since the last pass:
                // read the repair log before the cache is read again. One statement, once
                // per interval; concurrent requests wait for the same pass.
                let _pass = inner.pass.lock().await;
                if inner.breaker.state() == CacheState::Closed && inner.breaker.due() {
                    if let Err(err) = inner.repair_pass(REPAIR_PAGES).await {
                        tracing::warn!(error = %err, "session cache repair pass failed; not trusting the cache");
                        inner.breaker.trip();
                    }
                }
            }
            CacheState::Open => Inner::spawn_recovery(inner),
            CacheState::HalfOpen => {}
        }
    }
}

/// A recovery task's claim on the breaker, given back on drop.
struct Claimed<C, D>(Arc<Inner<C, D>>);

impl<C, D> Drop for Claimed<C, D> {
    fn drop(&mut self) {
        self.0.breaker.release();
    }
}

impl<C: Cache, D: Durable> Inner<C, D> {
    /// At start-up: probe the cache and read the first page of the repair log inline (an
    /// empty log, the usual case, costs one statement); a longer repair continues in the
    /// background while reads go to the durable store.
    async fn start(&self) {
        if let Err(err) = self.cache.probe().await {
            self.cache_failed("probe", &err);
            return;
        }
        self.breaker.half_open();
        match self.repair_pass(1).await {
            Ok(true) => self.breaker.close(self.repair_interval),
            Ok(false) => {
                self.breaker.trip_now();
            }
            Err(err) => {
                tracing::warn!(error = %err, "session cache not trusted at start-up");
                self.breaker.trip();
            }
        }
    }

    /// Starts [`recover`](Self::recover) in the background, if its probe is due and no
    /// other task runs it.
    fn spawn_recovery(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.breaker.try_claim() {
            return;
        }
        // Released when the task ends, or is dropped unfinished with its runtime.
        let claim = Claimed(Arc::clone(self));
        runtime.spawn(async move {
            if let Err(err) = claim.0.recover().await {
                tracing::debug!(error = %err, "session cache recovery deferred");
            }
        });
    }

    fn cache_failed(&self, op: &'static str, err: &StoreError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        telemetry::count_with(telemetry::CACHE_ERRORS, "op", op);
        self.breaker.trip();
        tracing::warn!(op, error = %err, "session cache failed; skipping it until it answers again");
    }

    /// Probe, repair, trust: the way back from an open breaker. Any failure leaves it
    /// open, with the next probe after the backoff.
    async fn recover(&self) -> Result<(), StoreError> {
        if self.breaker.state() == CacheState::Open {
            if let Err(err) = self.cache.probe().await {
                self.cache_failed("probe", &err);
                return Err(err);
            }
            self.breaker.half_open();
        }
        match self.repair_pass(REPAIR_PAGES).await {
            Ok(true) => {
                self.breaker.close(self.repair_interval);
                tracing::debug!("session cache trusted");
                Ok(())
            }
            Ok(false) => {
                self.breaker.trip_now();
                Ok(())
            }
            Err(err) => {
                self.breaker.trip();
                Err(err)
            }
        }
    }

    /// Refreshes every key in the durable repair log from the durable store, page by page
    /// in key order, clearing each mark unless it was marked again meanwhile. `true` once
    /// it reached the end of the log; `false` if it stopped after `pages` pages.
    async fn repair_pass(&self, pages: usize) -> Result<bool, StoreError> {
        self.breaker.schedule(self.repair_interval);
        let mut after: Option<TokenHash> = None;
        for _ in 0..pages {
            let marks = self
                .durable
                .stale_marks(after.as_ref(), REPAIR_PAGE)
                .await?;
            let Some(last) = marks.last() else {
                return Ok(true);
            };
            after = Some(last.key.clone());
            for mark in &marks {
                self.repair_one(mark).await?;
            }
            tracing::info!(keys = marks.len(), "session cache entries repaired");
        }
        Ok(false)
    }

    /// Puts the durable copy of one marked key into the cache (a tombstone if it is gone or
    /// unreadable), then clears the mark.
    async fn repair_one(&self, mark: &StaleMark) -> Result<(), StoreError> {
        let current = match self.durable.reload(&mark.key).await {
            Ok(current) => current,
            Err(err) if err.is_corrupt() => None,
            Err(err) => return Err(err),
        };
        let mirrored = match current {
            Some(record) => self.cache.put(&mark.key, &record).await,
            None => {
                self.cache
                    .invalidate(&mark.key, self.tombstone_until())
                    .await
            }
        };
        if let Err(err) = mirrored {
            self.cache_failed("repair", &err);
            return Err(err);
        }
        self.durable.clear_stale(mark).await?;
        self.repaired.fetch_add(1, Ordering::Relaxed);
        telemetry::count(telemetry::CACHE_REPAIRED);
        Ok(())
    }

    fn tombstone_until(&self) -> SystemTime {
        self.clock.now() + self.tombstone_ttl
    }

    async fn mirror_once(&self, key: &TokenHash, mirror: Mirror<'_>) -> Result<(), StoreError> {
        match mirror {
            Mirror::Put(record) => self.cache.put(key, record).await,
            Mirror::Invalidate => self.cache.invalidate(key, self.tombstone_until()).await,
        }
    }

    /// Brings the cache along after a durable write of `key`, or records in the durable
    /// repair log that it could not be (before the write is acknowledged).
    async fn mirror(&self, key: &TokenHash, mirror: Mirror<'_>) -> Result<(), StoreError> {
        if self.breaker.state() == CacheState::Open {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            telemetry::count(telemetry::CACHE_SKIPPED);
        } else {
            match timed(CACHE, WRITE, self.mirror_once(key, mirror)).await {
                Ok(()) => return Ok(()),
                Err(err) => self.cache_failed("write", &err),
            }
        }
        self.durable.mark_stale(key).await?;
        // A repair pass may have read the log before this mark and trusted the cache
        // since: then this write brings the cache along itself.
        if self.breaker.state() != CacheState::Open {
            if let Err(err) = self.mirror_once(key, mirror).await {
                self.cache_failed("write", &err);
            }
        }
        Ok(())
    }

    /// Puts what the durable store answered into the cache (forward only); whether the
    /// cache answered.
    async fn refill(&self, key: &TokenHash, record: &Record) -> bool {
        if self.breaker.state() == CacheState::Open {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            telemetry::count(telemetry::CACHE_SKIPPED);
            false
        } else if let Err(err) = self.cache.put(key, record).await {
            // The cache did not change: nothing to repair.
            self.cache_failed("refill", &err);
            false
        } else {
            true
        }
    }
}

/// Tier and operation labels of [`telemetry::STORE_DURATION`].
const CACHE: &str = "cache";
const DURABLE: &str = "durable";
const LOAD: &str = "load";
const WRITE: &str = "write";

/// Runs one tier's operation, recording how long it took (and a durable failure).
async fn timed<T>(
    tier: &'static str,
    op: &'static str,
    operation: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = std::time::Instant::now();
    let result = operation.await;
    telemetry::tier_duration(tier, op, started.elapsed());
    if tier == DURABLE && result.is_err() {
        telemetry::count_with(telemetry::DURABLE_ERRORS, "op", op);
    }
    result
}

impl<C: Cache, D: Durable> Store for TieredStore<C, D> {
    async fn load(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        Ok(self.load_from(key).await?.0)
    }

    async fn load_from(&self, key: &TokenHash) -> Result<(Option<Record>, LoadedFrom), StoreError> {
        self.ready().await;
        let s = &*self.inner;
        let mut cache_answered = false;
        if s.breaker.state() == CacheState::Closed {
            match timed(CACHE, LOAD, s.cache.get(key)).await {
                Ok(Some(record)) => {
                    s.hits.fetch_add(1, Ordering::Relaxed);
                    telemetry::count(telemetry::CACHE_HITS);
                    return Ok((Some(record), LoadedFrom::Cache));
                }
                Ok(None) => cache_answered = true,
                Err(err) if err.is_corrupt() => {
                    cache_answered = true;
                    tracing::warn!(error = %err, "corrupt session cache entry; reading the durable store");
                }
                Err(err) => s.cache_failed("load", &err),
            }
        } else {
            s.skipped.fetch_add(1, Ordering::Relaxed);
            telemetry::count(telemetry::CACHE_SKIPPED);
        }
        s.misses.fetch_add(1, Ordering::Relaxed);
        telemetry::count(telemetry::CACHE_MISSES);
        let found = timed(DURABLE, LOAD, s.durable.load(key)).await?;
        let mut from = LoadedFrom::Durable;
        if let Some(record) = &found {
            if s.refill(key, record).await && cache_answered {
                from = LoadedFrom::Refilled;
            }
        }
        Ok((found, from))
    }

    async fn reload(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        self.ready().await;
        let s = &*self.inner;
        let found = s.durable.reload(key).await?;
        if let Some(record) = &found {
            let _ = s.refill(key, record).await;
        }
        Ok(found)
    }

    async fn create(&self, key: &TokenHash, record: &Record) -> Result<bool, StoreError> {
        self.ready().await;
        let s = &*self.inner;
        if !timed(DURABLE, WRITE, s.durable.create(key, record)).await? {
            return Ok(false);
        }
        s.mirror(key, Mirror::Put(record)).await?;
        Ok(true)
    }

    async fn update(
        &self,
        key: &TokenHash,
        expected: u64,
        record: &Record,
    ) -> Result<bool, StoreError> {
        self.ready().await;
        let s = &*self.inner;
        match timed(DURABLE, WRITE, s.durable.update(key, expected, record)).await {
            Ok(true) => s.mirror(key, Mirror::Put(record)).await.map(|()| true),
            Ok(false) => Ok(false),
            Err(err) => {
                // It may have been applied: the cached copy is not to be trusted.
                if s.breaker.state() != CacheState::Open {
                    let _ = s.mirror_once(key, Mirror::Invalidate).await;
                }
                Err(err)
            }
        }
    }

    async fn touch(
        &self,
        key: &TokenHash,
        expected: u64,
        expires_at: SystemTime,
    ) -> Result<bool, StoreError> {
        self.ready().await;
        let s = &*self.inner;
        let touched = timed(DURABLE, WRITE, s.durable.touch(key, expected, expires_at)).await?;
        // A cache entry that keeps its older expiry only expires sooner: nothing to repair.
        if touched && s.breaker.state() != CacheState::Open {
            if let Err(err) = Cache::touch(&s.cache, key, expected, expires_at).await {
                s.cache_failed("touch", &err);
            }
        }
        Ok(touched)
    }

    async fn delete(&self, key: &TokenHash) -> Result<(), StoreError> {
        self.ready().await;
        let s = &*self.inner;
        if let Err(err) = timed(DURABLE, WRITE, s.durable.delete(key)).await {
            // It may have been applied: the cached copy is not to be trusted.
            if s.breaker.state() != CacheState::Open {
                let _ = s.mirror_once(key, Mirror::Invalidate).await;
            }
            return Err(err);
        }
        s.mirror(key, Mirror::Invalidate).await
    }

    async fn cleanup(&self, limit: usize) -> Result<usize, StoreError> {
        self.inner.durable.cleanup(limit).await
    }
}
