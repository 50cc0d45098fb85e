//! [`Faulty`]: a store wrapper that fails on command, for testing failure paths.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::SystemTime,
};

use super::LoadedFrom;
use crate::{
    store::{Durable, StaleMark},
    Cache, Record, Store, StoreError, TokenHash,
};

/// Wraps a store and, while switched [`down`](Self::set_down), fails every operation with
/// [`StoreError::Unavailable`] without reaching the inner store. For tests of failure paths
/// that a real server cannot produce on demand. Clones share the switch.
#[derive(Debug, Clone)]
pub struct Faulty<S> {
    inner: S,
    down: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("injected fault: store is down")]
struct InjectedFault;

impl<S> Faulty<S> {
    /// Wraps `inner`, up.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            down: Arc::default(),
        }
    }

    /// Switches the store down (`true`) or up.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::unavailable(InjectedFault))
        } else {
            Ok(())
        }
    }
}

impl<S: Store> Store for Faulty<S> {
    async fn load(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        self.check()?;
        self.inner.load(key).await
    }

    async fn load_from(&self, key: &TokenHash) -> Result<(Option<Record>, LoadedFrom), StoreError> {
        self.check()?;
        self.inner.load_from(key).await
    }

    async fn create(&self, key: &TokenHash, record: &Record) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.create(key, record).await
    }

    async fn update(
        &self,
        key: &TokenHash,
        expected: u64,
        record: &Record,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.update(key, expected, record).await
    }

    async fn reload(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        self.check()?;
        self.inner.reload(key).await
    }

    async fn touch(
        &self,
        key: &TokenHash,
        expected: u64,
        expires_at: SystemTime,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.touch(key, expected, expires_at).await
    }

    async fn delete(&self, key: &TokenHash) -> Result<(), StoreError> {
        self.check()?;
        self.inner.delete(key).await
    }

    async fn cleanup(&self, limit: usize) -> Result<usize, StoreError> {
        self.check()?;
        self.inner.cleanup(limit).await
    }
}

impl<S: Cache> Cache for Faulty<S> {
    async fn get(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        self.check()?;
        self.inner.get(key).await
    }

    async fn put(&self, key: &TokenHash, record: &Record) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put(key, record).await
    }

    async fn touch(
        &self,
        key: &TokenHash,
        expected: u64,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        self.check()?;
        Cache::touch(&self.inner, key, expected, expires_at).await
    }

    async fn invalidate(&self, key: &TokenHash, until: SystemTime) -> Result<(), StoreError> {
        self.check()?;
        self.inner.invalidate(key, until).await
    }

    async fn probe(&self) -> Result<(), StoreError> {
        self.check()?;
        self.inner.probe().await
    }
}

impl<S: Durable> Durable for Faulty<S> {
    async fn mark_stale(&self, key: &TokenHash) -> Result<(), StoreError> {
        self.check()?;
        self.inner.mark_stale(key).await
    }

    async fn stale_marks(
        &self,
        after: Option<&TokenHash>,
        limit: usize,
    ) -> Result<Vec<StaleMark>, StoreError> {
        self.check()?;
        self.inner.stale_marks(after, limit).await
    }

    async fn clear_stale(&self, mark: &StaleMark) -> Result<(), StoreError> {
        self.check()?;
        self.inner.clear_stale(mark).await
    }
}
