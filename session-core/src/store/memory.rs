//! [`MemoryStore`]: an in-process store on moka, the embedded cache tier.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant, SystemTime},
};

use moka::{ops::compute::Op, sync::Cache as MokaCache, Expiry};

use crate::{
    clock::{from_millis, to_millis},
    store::{Durable, StaleMark},
    Cache, Clock, Record, Store, StoreError, SystemClock, TokenHash,
};

/// An in-process, concurrent store with per-record expiry, built on [`moka`].
///
/// Records are kept decoded, so a load is a copy rather than a parse; memory use is still
/// bounded in bytes, each record weighed by the size of its encoded form.
///
/// This store is not durable and is not shared between processes: on its own it suits tests
/// and single-process development; in production it is the cache tier of a
/// [`TieredStore`](crate::store::TieredStore) in front of SQLite or PostgreSQL. When full,
/// it evicts the least useful records (moka's TinyLFU), which for a cache tier only costs a
/// durable read.
///
/// ```
/// # tokio_test_block_on(async {
/// use std::time::{Duration, SystemTime};
/// use session_core::{store::MemoryStore, Record, SessionToken, Store};
///
/// let store = MemoryStore::new();
/// let key = SessionToken::generate()?.hash();
/// let now = SystemTime::now();
/// let mut record = Record::new(now, now + Duration::from_secs(60));
/// record.insert("visits", &1)?;
/// assert!(store.create(&key, &record).await?);
/// assert_eq!(store.load(&key).await?.unwrap().get::<u32>("visits")?, Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    cache: MokaCache<TokenHash, Entry>,
    clock: Arc<dyn Clock>,
    /// The repair log, when this store stands in for a durable tier (tests).
    stale: Arc<Mutex<BTreeMap<TokenHash, i64>>>,
}

#[derive(Clone)]
struct Entry {
    kind: Kind,
    /// What the entry weighs against the capacity: about its encoded size.
    weight: u32,
    expires_ms: u64,
}

#[derive(Clone)]
enum Kind {
    Live(Arc<Record>),
    /// Why the bytes given to [`MemoryStore::insert_raw`] do not decode.
    Corrupt(Arc<str>),
    /// Left by [`Cache::invalidate`]: refuses every `put` until it expires.
    Tombstone,
}

impl Entry {
    fn live_version(&self) -> Option<u64> {
        match &self.kind {
            Kind::Live(record) => Some(record.version),
            Kind::Corrupt(_) | Kind::Tombstone => None,
        }
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds a [`MemoryStore`].
#[derive(Debug)]
#[must_use]
pub struct MemoryStoreBuilder {
    max_bytes: u64,
    clock: Arc<dyn Clock>,
}

/// Default capacity of a [`MemoryStore`]: 256 MiB of encoded records.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

impl MemoryStoreBuilder {
    /// The most encoded bytes (keys included) to keep before evicting. Default: 256 MiB.
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The clock that decides expiry. Default: [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the store.
    #[must_use]
    pub fn build(self) -> MemoryStore {
        let cache = MokaCache::builder()
            .max_capacity(self.max_bytes)
            .weigher(|key: &TokenHash, entry: &Entry| {
                u32::try_from(key.as_str().len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(entry.weight)
            })
            .expire_after(RecordExpiry {
                clock: Arc::clone(&self.clock),
            })
            .build();
        MemoryStore {
            cache,
            clock: self.clock,
            stale: Arc::default(),
        }
    }
}

impl MemoryStore {
    /// A store with the default settings.
    #[must_use]
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for a store with custom settings.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder {
            max_bytes: DEFAULT_MAX_BYTES,
            clock: Arc::new(SystemClock),
        }
    }

    /// Stores raw bytes under `key`, bypassing encoding. Only for tests that need corrupt
    /// data in the store.
    #[doc(hidden)]
    pub fn insert_raw(&self, key: &TokenHash, bytes: &[u8], expires_at: SystemTime) {
        let kind = match Record::decode(bytes, expires_at) {
            Ok(record) => Kind::Live(Arc::new(record)),
            // The cause alone: reading it back wraps it as `StoreError::Corrupt` again.
            Err(err) => Kind::Corrupt(Arc::from(
                std::error::Error::source(&err)
                    .map_or_else(|| err.to_string(), ToString::to_string),
            )),
        };
        self.cache.insert(
            key.clone(),
            Entry {
                kind,
                weight: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
                expires_ms: to_millis(expires_at),
            },
        );
    }

    fn now_ms(&self) -> u64 {
        to_millis(self.clock.now())
    }

    fn entry(record: &Record) -> Result<Entry, StoreError> {
        let mut record = record.clone();
        // Millisecond precision, as every store that keeps bytes has.
        record.created_at = from_millis(to_millis(record.created_at));
        Ok(Entry {
            weight: weight(&record),
            expires_ms: to_millis(record.expires_at),
            kind: Kind::Live(Arc::new(record)),
        })
    }

    /// Atomically replaces a live record's entry with `f(entry)` if `accept(version)`;
    /// `false` if there is no live record or `accept` refused it.
    fn replace_live(
        &self,
        key: &TokenHash,
        accept: impl FnOnce(u64) -> bool,
        f: impl FnOnce(Entry) -> Entry,
    ) -> bool {
        let now = self.now_ms();
        let mut replaced = false;
        self.cache
            .entry(key.clone())
            .and_compute_with(|current| match current {
                Some(entry)
                    if entry.value().expires_ms > now
                        && entry.value().live_version().is_some_and(accept) =>
                {
                    replaced = true;
                    Op::Put(f(entry.into_value()))
                }
                _ => Op::Nop,
            });
        replaced
    }

    fn lock_stale(&self) -> std::sync::MutexGuard<'_, BTreeMap<TokenHash, i64>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.stale.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    async fn load(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        match self.cache.get(key) {
            Some(entry) if entry.expires_ms > self.now_ms() => match entry.kind {
                Kind::Live(record) => {
                    let mut record = Record::clone(&record);
                    record.expires_at = from_millis(entry.expires_ms);
                    Ok(Some(record))
                }
                Kind::Corrupt(err) => Err(StoreError::corrupt(CorruptEntry(err))),
                Kind::Tombstone => Ok(None),
            },
            _ => Ok(None),
        }
    }

    async fn create(&self, key: &TokenHash, record: &Record) -> Result<bool, StoreError> {
        let new = Self::entry(record)?;
        let now = self.now_ms();
        let mut created = false;
        self.cache
            .entry(key.clone())
            .and_compute_with(|current| match current {
                Some(entry)
                    if entry.value().expires_ms > now
                        && !matches!(entry.value().kind, Kind::Tombstone) =>
                {
                    Op::Nop
                }
                _ => {
                    created = true;
                    Op::Put(new)
                }
            });
        Ok(created)
    }

    async fn update(
        &self,
        key: &TokenHash,
        expected: u64,
        record: &Record,
    ) -> Result<bool, StoreError> {
        let new = Self::entry(record)?;
        Ok(self.replace_live(key, |version| version == expected, |_| new))
    }

    async fn touch(
        &self,
        key: &TokenHash,
        expected: u64,
        expires_at: SystemTime,
    ) -> Result<bool, StoreError> {
        let expires_ms = to_millis(expires_at);
        Ok(self.replace_live(
            key,
            |version| version == expected,
            |entry| Entry {
                expires_ms,
                ..entry
            },
        ))
    }

    async fn delete(&self, key: &TokenHash) -> Result<(), StoreError> {
        self.cache.invalidate(key);
        Ok(())
    }

    async fn cleanup(&self, _limit: usize) -> Result<usize, StoreError> {
        // moka drops expired entries by itself; this only runs its pending maintenance.
        self.cache.run_pending_tasks();
        Ok(0)
    }
}

impl Cache for MemoryStore {
    async fn get(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        self.load(key).await
    }

    async fn put(&self, key: &TokenHash, record: &Record) -> Result<(), StoreError> {
        let new = Self::entry(record)?;
        let now = self.now_ms();
        self.cache
            .entry(key.clone())
            .and_compute_with(|current| match current {
                // Forward only: a live tombstone, or the same or a newer version, stays.
                Some(entry)
                    if entry.value().expires_ms > now
                        && match entry.value().kind {
                            Kind::Tombstone => true,
                            Kind::Live(ref cached) => cached.version >= record.version,
                            Kind::Corrupt(_) => false,
                        } =>
                {
                    Op::Nop
                }
                _ => Op::Put(new),
            });
        Ok(())
    }

    async fn touch(
        &self,
        key: &TokenHash,
        expected: u64,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        Store::touch(self, key, expected, expires_at)
            .await
            .map(drop)
    }

    async fn invalidate(&self, key: &TokenHash, until: SystemTime) -> Result<(), StoreError> {
        self.cache.insert(
            key.clone(),
            Entry {
                kind: Kind::Tombstone,
                weight: 16,
                expires_ms: to_millis(until),
            },
        );
        Ok(())
    }

    async fn probe(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The repair log in memory: for tests that use a memory store as the durable tier.
impl Durable for MemoryStore {
    async fn mark_stale(&self, key: &TokenHash) -> Result<(), StoreError> {
        let seq = super::stale_seq()?;
        self.lock_stale().insert(key.clone(), seq);
        Ok(())
    }

    async fn stale_marks(
        &self,
        after: Option<&TokenHash>,
        limit: usize,
    ) -> Result<Vec<StaleMark>, StoreError> {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(self
            .lock_stale()
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|(key, seq)| StaleMark {
                key: key.clone(),
                seq: *seq,
            })
            .collect())
    }

    async fn clear_stale(&self, mark: &StaleMark) -> Result<(), StoreError> {
        let mut stale = self.lock_stale();
        if stale.get(&mark.key) == Some(&mark.seq) {
            stale.remove(&mark.key);
        }
        Ok(())
    }
}

/// About the encoded size of `record`, without encoding it: what an entry weighs.
pub(crate) fn weight(record: &Record) -> u32 {
    let state: usize = record
        .state
        .iter()
        .map(|(key, value)| key.len() + value.get().len() + 4)
        .sum();
    let meta = [&record.meta.binding, &record.meta.successor]
        .iter()
        .map(|field| field.as_ref().map_or(0, |value| value.len() + 16))
        .sum::<usize>();
    // The envelope's fixed fields ({"v":1,"created":…,"meta":{…},"state":{}}).
    u32::try_from(state + meta + 64).unwrap_or(u32::MAX)
}

/// Bytes given to [`MemoryStore::insert_raw`] that do not decode.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct CorruptEntry(Arc<str>);

/// Tells moka when each entry expires, from the record's own expiry by the store's clock
/// (not the system's: a clock behind it would otherwise expire every entry at once).
struct RecordExpiry {
    clock: Arc<dyn Clock>,
}

impl RecordExpiry {
    fn remaining(&self, entry: &Entry) -> Option<Duration> {
        let now = to_millis(self.clock.now());
        Some(Duration::from_millis(entry.expires_ms.saturating_sub(now)))
    }
}

impl Expiry<TokenHash, Entry> for RecordExpiry {
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
