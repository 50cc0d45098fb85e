//! [`Counted`]: a store decorator that counts operations.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::SystemTime,
};

use super::LoadedFrom;
use crate::{
    store::{Durable, StaleMark},
    Cache, Record, Store, StoreError, TokenHash,
};

/// Wraps a store and counts calls per operation, for metrics and for tests that assert how
/// many backend round trips a request costs (each store in this crate issues one command or
/// statement per call).
///
/// Clones share their counters.
#[derive(Debug, Clone)]
pub struct Counted<S> {
    inner: S,
    counts: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    load: AtomicU64,
    create: AtomicU64,
    update: AtomicU64,
    touch: AtomicU64,
    delete: AtomicU64,
    cleanup: AtomicU64,
    put: AtomicU64,
    probe: AtomicU64,
    repair_log: AtomicU64,
}

/// A snapshot of a [`Counted`] store's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// `load` calls.
    pub load: u64,
    /// `create` calls.
    pub create: u64,
    /// `update` calls.
    pub update: u64,
    /// `touch` calls.
    pub touch: u64,
    /// `delete` calls.
    pub delete: u64,
    /// `cleanup` calls.
    pub cleanup: u64,
    /// `put` calls (caches only).
    pub put: u64,
    /// `probe` calls (caches only).
    pub probe: u64,
    /// Calls on the repair log (`mark_stale`, `stale_marks`, `clear_stale`; durable
    /// stores only).
    pub repair_log: u64,
}

impl OpCounts {
    /// All calls that write (`create`, `update`, `touch`, `delete`, `put`; a cache's
    /// `invalidate` counts as a `delete`).
    #[must_use]
    pub fn writes(&self) -> u64 {
        self.create + self.update + self.touch + self.delete + self.put
    }

    /// All calls.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.load + self.cleanup + self.probe + self.repair_log + self.writes()
    }
}

impl<S> Counted<S> {
    /// Wraps `inner`, with every counter at zero.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            counts: Arc::default(),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The counters so far.
    #[must_use]
    pub fn counts(&self) -> OpCounts {
        let c = &self.counts;
        OpCounts {
            load: c.load.load(Ordering::Relaxed),
            create: c.create.load(Ordering::Relaxed),
            update: c.update.load(Ordering::Relaxed),
            touch: c.touch.load(Ordering::Relaxed),
            delete: c.delete.load(Ordering::Relaxed),
            cleanup: c.cleanup.load(Ordering::Relaxed),
            put: c.put.load(Ordering::Relaxed),
            probe: c.probe.load(Ordering::Relaxed),
            repair_log: c.repair_log.load(Ordering::Relaxed),
        }
    }

    /// The counters so far, and sets them back to zero.
    pub fn take_counts(&self) -> OpCounts {
        let c = &self.counts;
        OpCounts {
            load: c.load.swap(0, Ordering::Relaxed),
            create: c.create.swap(0, Ordering::Relaxed),
            update: c.update.swap(0, Ordering::Relaxed),
            touch: c.touch.swap(0, Ordering::Relaxed),
            delete: c.delete.swap(0, Ordering::Relaxed),
            cleanup: c.cleanup.swap(0, Ordering::Relaxed),
            put: c.put.swap(0, Ordering::Relaxed),
            probe: c.probe.swap(0, Ordering::Relaxed),
            repair_log: c.repair_log.swap(0, Ordering::Relaxed),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl<S: Store> Store for Counted<S> {
    async fn load(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        bump(&self.counts.load);
        self.inner.load(key).await
    }

    async fn load_from(&self, key: &TokenHash) -> Result<(Option<Record>, LoadedFrom), StoreError> {
        bump(&self.counts.load);
        self.inner.load_from(key).await
    }

    async fn create(&self, key: &TokenHash, record: &Record) -> Result<bool, StoreError> {
        bump(&self.counts.create);
        self.inner.create(key, record).await
    }

    async fn update(
        &self,
        key: &TokenHash,
        expected: u64,
        record: &Record,
    ) -> Result<bool, StoreError> {
        bump(&self.counts.update);
        self.inner.update(key, expected, record).await
    }

    async fn reload(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        bump(&self.counts.load);
        self.inner.reload(key).await
    }

    async fn touch(
        &self,
        key: &TokenHash,
        expected: u64,
        expires_at: SystemTime,
    ) -> Result<bool, StoreError> {
        bump(&self.counts.touch);
        self.inner.touch(key, expected, expires_at).await
    }

    async fn delete(&self, key: &TokenHash) -> Result<(), StoreError> {
        bump(&self.counts.delete);
        self.inner.delete(key).await
    }

    async fn cleanup(&self, limit: usize) -> Result<usize, StoreError> {
        bump(&self.counts.cleanup);
        self.inner.cleanup(limit).await
    }
}

/// Cache calls count as `load` (`get`), `put`, `touch`, `delete` (`invalidate`) and
/// `probe`.
impl<S: Cache> Cache for Counted<S> {
    async fn get(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        bump(&self.counts.load);
        self.inner.get(key).await
    }

    async fn put(&self, key: &TokenHash, record: &Record) -> Result<(), StoreError> {
        bump(&self.counts.put);
        self.inner.put(key, record).await
    }

    async fn touch(
        &self,
        key: &TokenHash,
        expected: u64,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        bump(&self.counts.touch);
        Cache::touch(&self.inner, key, expected, expires_at).await
    }

    async fn invalidate(&self, key: &TokenHash, until: SystemTime) -> Result<(), StoreError> {
        bump(&self.counts.delete);
        self.inner.invalidate(key, until).await
    }

    async fn probe(&self) -> Result<(), StoreError> {
        bump(&self.counts.probe);
        self.inner.probe().await
    }
}

impl<S: Durable> Durable for Counted<S> {
    async fn mark_stale(&self, key: &TokenHash) -> Result<(), StoreError> {
        bump(&self.counts.repair_log);
        self.inner.mark_stale(key).await
    }

    async fn stale_marks(
        &self,
        after: Option<&TokenHash>,
        limit: usize,
    ) -> Result<Vec<StaleMark>, StoreError> {
        bump(&self.counts.repair_log);
        self.inner.stale_marks(after, limit).await
    }

    async fn clear_stale(&self, mark: &StaleMark) -> Result<(), StoreError> {
        bump(&self.counts.repair_log);
        self.inner.clear_stale(mark).await
    }
}
