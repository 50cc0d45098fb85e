//! [`MemoryStore`]: an in-process store on moka, the embedded cache tier.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use moka::{ops::compute::Op, sync::Cache as MokaCache, Expiry};

use crate::{
    clock::{from_millis, to_millis},
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
}

#[derive(Clone)]
struct Entry {
    /// The record, or why the bytes given to [`MemoryStore::insert_raw`] do not decode.
    record: Result<Arc<Record>, Arc<str>>,
    /// What the entry weighs against the capacity: about its encoded size.
    weight: u32,
    expires_ms: u64,
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
        let record = Record::decode(bytes, expires_at)
            .map(Arc::new)
            .map_err(|err| Arc::from(err.to_string()));
        self.cache.insert(
            key.clone(),
            Entry {
                record,
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
            record: Ok(Arc::new(record)),
        })
    }

    /// Atomically replaces a live entry with `f(entry)`; `false` if none is live.
    fn replace_live(&self, key: &TokenHash, f: impl FnOnce(Entry) -> Entry) -> bool {
        let now = self.now_ms();
        let mut replaced = false;
        self.cache
            .entry(key.clone())
            .and_compute_with(|current| match current {
                Some(entry) if entry.value().expires_ms > now => {
                    replaced = true;
                    Op::Put(f(entry.into_value()))
                }
                _ => Op::Nop,
            });
        replaced
    }
}

impl Store for MemoryStore {
    async fn load(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        match self.cache.get(key) {
            Some(entry) if entry.expires_ms > self.now_ms() => match entry.record {
                Ok(record) => {
                    let mut record = Record::clone(&record);
                    record.expires_at = from_millis(entry.expires_ms);
                    Ok(Some(record))
                }
                Err(err) => Err(StoreError::corrupt(CorruptEntry(err))),
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
                Some(entry) if entry.value().expires_ms > now => Op::Nop,
                _ => {
                    created = true;
                    Op::Put(new)
                }
            });
        Ok(created)
    }

    async fn update(&self, key: &TokenHash, record: &Record) -> Result<bool, StoreError> {
        let new = Self::entry(record)?;
        Ok(self.replace_live(key, |_| new))
    }

    async fn touch(&self, key: &TokenHash, expires_at: SystemTime) -> Result<bool, StoreError> {
        let expires_ms = to_millis(expires_at);
        Ok(self.replace_live(key, |entry| Entry {
            expires_ms,
            ..entry
        }))
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
    async fn put(&self, key: &TokenHash, record: &Record) -> Result<(), StoreError> {
        self.cache.insert(key.clone(), Self::entry(record)?);
        Ok(())
    }
}

/// About the encoded size of `record`, without encoding it: what an entry weighs.
fn weight(record: &Record) -> u32 {
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
