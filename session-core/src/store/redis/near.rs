//! [`NearCache`]: an in-process tier in front of a [`RedisStore`], kept coherent by Redis's
//! server-assisted client-side caching.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::{Duration, Instant, SystemTime},
};

use moka::{sync::Cache as MokaCache, Expiry};

use super::{tracking, RedisStore};
use crate::{store::memory::weight, Cache, Clock, Record, StoreError, TokenHash};

/// An in-process copy of what a [`RedisStore`] holds, in front of it: a read the copy
/// can answer costs no Redis command at all.
///
/// The copy stays coherent with Redis across every instance of the application. A
/// tracking connection to each Redis node asks the server to report every change of a key
/// under the store's prefix (`CLIENT TRACKING ON BCAST PREFIX …`, RESP3); whichever
/// instance writes, the server tells every other one, which drops its copy.
///
/// # The contract
///
/// - A request sees its own instance's writes: a write through this cache drops the local
///   copy before and after it reaches Redis, so the next read asks Redis.
/// - Another instance's write is seen as soon as its invalidation arrives: on one host,
///   0.15–0.4 ms at the median, 1.4 ms at the 99th percentile with one reader (measured in
///   BENCHMARKS.md; more under load). Until then the other instance may serve its copy of
///   the previous version. A read that was on its way to Redis when an invalidation came
///   in is not kept, and a copy never goes back to an older version.
/// - Copies are served only while the tracking connections are known to work. A lost
///   tracking connection (a Redis restart, a failover, a network cut) and a change of the
///   cluster's topology make every copy unservable before anything is served again; a
///   tracking connection that silently stops answering is noticed within
///   [`heartbeat`](NearCacheBuilder::heartbeat) plus the store's response timeout, which
///   bounds how long a copy can outlive a write nobody was told about. On a cluster the
///   heartbeat also reads the slots again: a node that joined (and is not tracked yet)
///   is noticed within a heartbeat, and as soon as this instance's own commands meet it.
/// - Every node must be reachable for copies to be served (an unreachable replica would
///   not report what it replicates once promoted): with one down, reads go to Redis.
/// - A copy never outlives the record's own expiry, nor [`max_ttl`](NearCacheBuilder::max_ttl).
/// - The cache is bounded in bytes ([`max_bytes`](NearCacheBuilder::max_bytes)).
///
/// Build it inside a Tokio runtime (it spawns the task that keeps the tracking
/// connections); the task ends when the last clone of the cache is dropped.
///
/// # Example
///
/// ```no_run
/// # async fn run() -> Result<(), session_core::StoreError> {
/// use session_core::store::{NearCache, PostgresStore, RedisStore, TieredStore};
///
/// let redis = RedisStore::new("redis://127.0.0.1:6379")?;
/// let postgres = PostgresStore::connect("postgres://localhost/app").await?;
/// // Three tiers: this process, then Redis, then PostgreSQL.
/// let sessions = TieredStore::new(NearCache::new(redis), postgres);
/// # drop(sessions);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct NearCache {
    redis: RedisStore,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for NearCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NearCache")
            .field("redis", &self.redis)
            .field("entries", &self.shared.entries.entry_count())
            .finish_non_exhaustive()
    }
}

/// Builds a [`NearCache`].
#[derive(Debug)]
#[must_use]
pub struct NearCacheBuilder {
    redis: RedisStore,
    max_bytes: u64,
    max_ttl: Duration,
    heartbeat: Duration,
}

/// Default capacity of a [`NearCache`]: 64 MiB of records.
pub const DEFAULT_NEAR_MAX_BYTES: u64 = 64 * 1024 * 1024;

impl NearCacheBuilder {
    /// The most bytes of records (about their encoded size) to keep. Default: 64 MiB.
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The longest a copy is kept, however long its record lives. Default: 5 minutes.
    pub fn max_ttl(mut self, max_ttl: Duration) -> Self {
        self.max_ttl = max_ttl;
        self
    }

    /// How often the tracking connections are checked (a `PING` on each). Default: 1 s.
    pub fn heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// Builds the cache and spawns its tracking task.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    #[must_use]
    pub fn build(self) -> NearCache {
        let shared = Arc::new(Shared::new(
            self.max_bytes,
            self.max_ttl,
            self.redis.clock.clone(),
        ));
        tokio::spawn(tracking::run(
            Arc::downgrade(&shared),
            shared.alive.subscribe(),
            self.redis.clone(),
            self.heartbeat,
        ));
        NearCache {
            redis: self.redis,
            shared,
        }
    }
}

/// Stripes of fill counters: a fill is kept only if no change of a key of its stripe was
/// reported while it was on its way.
const STRIPES: usize = 256;
/// The trust epoch while the tracking connections are not known to work.
pub(super) const UNTRUSTED: u64 = 0;

/// What the cache and its tracking task share.
pub(super) struct Shared {
    entries: MokaCache<TokenHash, Entry>,
    /// Per stripe, a counter bumped by every change of one of its keys.
    stripes: Box<[Mutex<u64>]>,
    /// The current trust epoch: [`UNTRUSTED`], or the number of the tracking session now
    /// working. A copy is served only if it was filled in the current epoch.
    trust: AtomicU64,
    epochs: AtomicU64,
    /// The cluster layout the tracking session tracks (0 on a single server): copies are
    /// served and kept only while the store routes by the same one.
    layout: AtomicU64,
    clock: Arc<dyn Clock>,
    /// Dropped with the cache: its tracking task stops at once, not at its next tick.
    alive: tokio::sync::watch::Sender<()>,
}

#[derive(Clone)]
struct Entry {
    record: Arc<Record>,
    /// The trust epoch the copy was filled in.
    epoch: u64,
    weight: u32,
}

/// Taken before a read of Redis: what must not have changed for its answer to be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ticket {
    epoch: u64,
    seen: u64,
    layout: u64,
}

impl Shared {
    fn new(max_bytes: u64, max_ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        let entries = MokaCache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &TokenHash, entry: &Entry| {
                u32::try_from(key.as_str().len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(entry.weight)
            })
            .expire_after(CopyExpiry {
                clock: clock.clone(),
                max_ttl,
            })
            .build();
        Self {
            entries,
            stripes: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
            trust: AtomicU64::new(UNTRUSTED),
            epochs: AtomicU64::new(UNTRUSTED),
            layout: AtomicU64::new(0),
            clock,
            alive: tokio::sync::watch::Sender::new(()),
        }
    }

    /// The copy of `key`, if it was filled in the current epoch and is live, and the store
    /// routes by the `layout` the tracking session tracks.
    fn served(&self, key: &TokenHash, layout: u64) -> Option<Record> {
        let epoch = self.epoch();
        if epoch == UNTRUSTED || layout != self.layout.load(Ordering::SeqCst) {
            return None;
        }
        let entry = self.entries.get(key)?;
        (entry.epoch == epoch && entry.record.expires_at > self.clock.now())
            .then(|| (*entry.record).clone())
    }

    /// What a read of `key` from Redis must compare against before its answer is kept;
    /// `None` while copies are not trusted, or the store routes by another `layout` than
    /// the tracked one.
    fn ticket(&self, key: &TokenHash, layout: u64) -> Option<Ticket> {
        let epoch = self.epoch();
        if epoch == UNTRUSTED || layout != self.layout.load(Ordering::SeqCst) {
            return None;
        }
        let seen = *self
            .stripe(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Some(Ticket {
            epoch,
            seen,
            layout,
        })
    }

    /// Keeps `record` as the copy of `key`, unless a change of its stripe was reported,
    /// the trust changed, or the store's layout changed (to `layout`: the read may have
    /// gone to a node not tracked), since `ticket` was taken. Returns whether it was kept.
    fn fill(&self, key: &TokenHash, record: &Record, ticket: Ticket, layout: u64) -> bool {
        let counter = self
            .stripe(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *counter != ticket.seen || self.epoch() != ticket.epoch || layout != ticket.layout {
            return false;
        }
        // Forward only: a read that left before another, and came back after it, must not
        // replace a newer copy the other kept (before the invalidation of what the older
        // read saw has arrived, readers would otherwise see versions go back).
        if self
            .entries
            .get(key)
            .is_some_and(|copy| copy.epoch == ticket.epoch && copy.record.version > record.version)
        {
            return false;
        }
        self.entries.insert(
            key.clone(),
            Entry {
                record: Arc::new(record.clone()),
                epoch: ticket.epoch,
                weight: weight(record),
            },
        );
        true
    }

    fn stripe(&self, key: &TokenHash) -> &Mutex<u64> {
        // Token hashes are uniformly distributed hex: two digits pick a stripe.
        let index = key
            .as_str()
            .get(..2)
            .and_then(|digits| usize::from_str_radix(digits, 16).ok())
            .unwrap_or(0);
        &self.stripes[index % STRIPES]
    }

    /// Drops the copy of `key` and refuses every fill of its stripe now on its way.
    pub(super) fn forget(&self, key: &TokenHash) {
        let mut counter = self
            .stripe(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *counter = counter.wrapping_add(1);
        self.entries.invalidate(key);
    }

    /// Makes every copy unservable and stops serving until [`trust`](Self::trust).
    pub(super) fn distrust(&self) {
        self.trust.store(UNTRUSTED, Ordering::SeqCst);
        self.entries.invalidate_all();
    }

    /// Drops every copy and refuses every fill now on its way, keeping on serving what is
    /// filled from now on (the server flushed its keys).
    pub(super) fn flush(&self) {
        let mut counters: Vec<_> = self
            .stripes
            .iter()
            .map(|stripe| stripe.lock().unwrap_or_else(PoisonError::into_inner))
            .collect();
        for counter in &mut counters {
            **counter = counter.wrapping_add(1);
        }
        self.entries.invalidate_all();
    }

    /// A fresh trust epoch, for a tracking session that is about to start.
    pub(super) fn next_epoch(&self) -> u64 {
        self.epochs.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Starts serving copies filled from now on, in `epoch`, while the store routes by
    /// `layout`.
    pub(super) fn trust(&self, epoch: u64, layout: u64) {
        self.entries.invalidate_all();
        self.layout.store(layout, Ordering::SeqCst);
        self.trust.store(epoch, Ordering::SeqCst);
    }

    /// Stops serving, if the tracking session of `epoch` is the one in charge.
    pub(super) fn distrust_epoch(&self, epoch: u64) {
        if self
            .trust
            .compare_exchange(epoch, UNTRUSTED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.entries.invalidate_all();
        }
    }

    pub(super) fn epoch(&self) -> u64 {
        self.trust.load(Ordering::SeqCst)
    }
}

impl NearCache {
    /// A near-cache in front of `redis` with the default settings.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    #[must_use]
    pub fn new(redis: RedisStore) -> Self {
        Self::builder(redis).build()
    }

    /// A builder for a near-cache in front of `redis`.
    pub fn builder(redis: RedisStore) -> NearCacheBuilder {
        NearCacheBuilder {
            redis,
            max_bytes: DEFAULT_NEAR_MAX_BYTES,
            max_ttl: Duration::from_secs(300),
            heartbeat: Duration::from_secs(1),
        }
    }

    /// The Redis store behind the copies.
    #[must_use]
    pub fn redis(&self) -> &RedisStore {
        &self.redis
    }

    /// Whether copies are being served: the tracking connections work.
    #[must_use]
    pub fn is_tracking(&self) -> bool {
        self.shared.epoch() != UNTRUSTED
    }

    /// Waits until copies are served (the tracking connections are up), at most `within`.
    /// Returns whether they are.
    pub async fn wait_tracking(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while !self.is_tracking() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// The number of copies held (an estimate, as moka counts).
    #[must_use]
    pub fn len(&self) -> u64 {
        self.shared.entries.run_pending_tasks();
        self.shared.entries.entry_count()
    }

    /// Whether no copy is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Around a write through to Redis: the local copy is dropped before (no read serves it
    /// while the write is on its way) and after (a fill that read Redis before the write
    /// landed is not kept).
    async fn write_through<T>(
        &self,
        key: &TokenHash,
        write: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.shared.forget(key);
        let result = write.await;
        self.shared.forget(key);
        result
    }
}

impl Cache for NearCache {
    async fn get(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        let layout = self.redis.layout_version();
        if let Some(record) = self.shared.served(key, layout) {
            return Ok(Some(record));
        }
        let ticket = self.shared.ticket(key, layout);
        let found = Cache::get(&self.redis, key).await?;
        if let (Some(record), Some(ticket)) = (&found, ticket) {
            // A redirection during the read re-reads the slots: the layout tells.
            self.shared
                .fill(key, record, ticket, self.redis.layout_version());
        }
        Ok(found)
    }

    async fn put(&self, key: &TokenHash, record: &Record) -> Result<(), StoreError> {
        self.write_through(key, Cache::put(&self.redis, key, record))
            .await
    }

    async fn touch(
        &self,
        key: &TokenHash,
        expected: u64,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        self.write_through(key, Cache::touch(&self.redis, key, expected, expires_at))
            .await
    }

    async fn invalidate(&self, key: &TokenHash, until: SystemTime) -> Result<(), StoreError> {
        self.write_through(key, Cache::invalidate(&self.redis, key, until))
            .await
    }

    async fn probe(&self) -> Result<(), StoreError> {
        Cache::probe(&self.redis).await
    }
}

/// A copy lives as long as its record, and at most `max_ttl`.
struct CopyExpiry {
    clock: Arc<dyn Clock>,
    max_ttl: Duration,
}

impl CopyExpiry {
    fn remaining(&self, entry: &Entry) -> Option<Duration> {
        let left = entry
            .record
            .expires_at
            .duration_since(self.clock.now())
            .unwrap_or(Duration::ZERO);
        Some(left.min(self.max_ttl))
    }
}

impl Expiry<TokenHash, Entry> for CopyExpiry {
    fn expire_after_create(&self, _: &TokenHash, entry: &Entry, _: Instant) -> Option<Duration> {
        self.remaining(entry)
    }

    fn expire_after_update(
        &self,
        _: &TokenHash,
        entry: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.remaining(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ManualClock, SessionToken};

    fn shared(clock: &ManualClock) -> Shared {
        Shared::new(1 << 20, Duration::from_secs(300), Arc::new(clock.clone()))
    }

    fn record(clock: &ManualClock, version: u64) -> Record {
        let mut record = Record::new(clock.now(), clock.now() + Duration::from_secs(60));
        record.version = version;
        record
    }

    fn key() -> TokenHash {
        SessionToken::generate().unwrap().hash()
    }

    #[test]
    fn nothing_is_served_or_filled_before_tracking_works() {
        let clock = ManualClock::starting_now();
        let shared = shared(&clock);
        let key = key();
        assert_eq!(shared.ticket(&key, 0), None);
        assert!(shared.served(&key, 0).is_none());
    }

    #[test]
    fn a_fill_is_served_in_its_epoch_only() {
        let clock = ManualClock::starting_now();
        let shared = shared(&clock);
        let key = key();
        let epoch = shared.next_epoch();
        shared.trust(epoch, 0);
        let ticket = shared.ticket(&key, 0).unwrap();
        assert!(shared.fill(&key, &record(&clock, 3), ticket, 0));
        assert_eq!(shared.served(&key, 0).unwrap().version, 3);
        // A lost tracking connection: nothing is served, and a later epoch does not bring
        // the copy back (invalidations may have been missed meanwhile).
        shared.distrust_epoch(epoch);
        assert!(shared.served(&key, 0).is_none());
        shared.trust(shared.next_epoch(), 0);
        assert!(shared.served(&key, 0).is_none());
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_is_not_kept() {
        let clock = ManualClock::starting_now();
        let shared = shared(&clock);
        let key = key();
        shared.trust(shared.next_epoch(), 0);
        // The read left for Redis, then the server reported a change of the key.
        let ticket = shared.ticket(&key, 0).unwrap();
        shared.forget(&key);
        assert!(!shared.fill(&key, &record(&clock, 1), ticket, 0));
        assert!(shared.served(&key, 0).is_none());
        // The same across a flush, and across a lost connection in between.
        let ticket = shared.ticket(&key, 0).unwrap();
        shared.flush();
        assert!(!shared.fill(&key, &record(&clock, 1), ticket, 0));
        let epoch = shared.epoch();
        let ticket = shared.ticket(&key, 0).unwrap();
        shared.distrust_epoch(epoch);
        shared.trust(shared.next_epoch(), 0);
        assert!(!shared.fill(&key, &record(&clock, 1), ticket, 0));
        // A read that started after the change is kept.
        let ticket = shared.ticket(&key, 0).unwrap();
        assert!(shared.fill(&key, &record(&clock, 2), ticket, 0));
        assert_eq!(shared.served(&key, 0).unwrap().version, 2);
    }

    #[test]
    fn a_slower_read_does_not_replace_a_newer_copy() {
        let clock = ManualClock::starting_now();
        let shared = shared(&clock);
        let key = key();
        shared.trust(shared.next_epoch(), 0);
        // Two reads leave before any invalidation arrives; the later one saw version 2.
        let slow = shared.ticket(&key, 0).unwrap();
        let fast = shared.ticket(&key, 0).unwrap();
        assert!(shared.fill(&key, &record(&clock, 2), fast, 0));
        assert!(!shared.fill(&key, &record(&clock, 1), slow, 0));
        assert_eq!(shared.served(&key, 0).unwrap().version, 2);
    }

    #[test]
    fn forgetting_and_flushing_drop_copies() {
        let clock = ManualClock::starting_now();
        let shared = shared(&clock);
        let (a, b) = (key(), key());
        shared.trust(shared.next_epoch(), 0);
        for key in [&a, &b] {
            let ticket = shared.ticket(key, 0).unwrap();
            assert!(shared.fill(key, &record(&clock, 1), ticket, 0));
        }
        shared.forget(&a);
        assert!(shared.served(&a, 0).is_none());
        assert!(shared.served(&b, 0).is_some());
        shared.flush();
        assert!(shared.served(&b, 0).is_none());
    }

    #[test]
    fn a_copy_never_outlives_its_record() {
        let clock = ManualClock::starting_now();
        let shared = shared(&clock);
        let key = key();
        shared.trust(shared.next_epoch(), 0);
        let ticket = shared.ticket(&key, 0).unwrap();
        assert!(shared.fill(&key, &record(&clock, 1), ticket, 0));
        clock.advance(Duration::from_secs(61));
        assert!(shared.served(&key, 0).is_none());
    }

    #[test]
    fn nothing_is_served_or_kept_across_a_change_of_the_cluster_layout() {
        let clock = ManualClock::starting_now();
        let shared = shared(&clock);
        let key = key();
        shared.trust(shared.next_epoch(), 7);
        let ticket = shared.ticket(&key, 7).unwrap();
        assert!(shared.fill(&key, &record(&clock, 1), ticket, 7));
        assert!(shared.served(&key, 7).is_some());
        // The store read the slots again and routes by layout 8, which the tracking
        // session does not track yet.
        assert!(shared.served(&key, 8).is_none());
        assert_eq!(shared.ticket(&key, 8), None);
        // A read that was redirected on its way (the layout moved under it).
        let ticket = shared.ticket(&key, 7).unwrap();
        assert!(!shared.fill(&key, &record(&clock, 2), ticket, 8));
    }

    #[test]
    fn a_stale_disconnection_does_not_distrust_a_newer_session() {
        let clock = ManualClock::starting_now();
        let shared = shared(&clock);
        let old = shared.next_epoch();
        shared.trust(old, 0);
        let new = shared.next_epoch();
        shared.trust(new, 0);
        shared.distrust_epoch(old);
        assert_eq!(shared.epoch(), new);
    }
}
