//! [`Held`]: a store wrapper that holds one call open at a chosen point, for race tests.

use std::{
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc, Mutex,
    },
    time::SystemTime,
};

use tokio::sync::Notify;

use super::LoadedFrom;
use crate::{
    store::{Durable, StaleMark},
    Record, Store, StoreError, TokenHash,
};

/// Where [`Held`] stops the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HoldAt {
    /// After the next `load` has read, before it returns: a request that loaded its
    /// session and has not finished (or a cache miss between its durable read and its
    /// refill).
    AfterLoad,
    /// Before the next `update` is sent: a save about to be written.
    BeforeUpdate,
}

const OFF: u8 = 0;
const AFTER_LOAD: u8 = 1;
const BEFORE_UPDATE: u8 = 2;

/// Wraps a store and, once [`arm`](Self::arm)ed, stops the next call at the chosen point
/// until [`release`](Self::release)d, so a test can run another request in the window
/// (a rotation, a logout, a concurrent write) and then let the first one finish. Clones
/// share the switch.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::{Duration, SystemTime};
/// use session_core::{store::{Held, HoldAt, MemoryStore}, Record, SessionToken, Store};
///
/// let store = Held::new(MemoryStore::new());
/// let key = SessionToken::generate()?.hash();
/// let now = SystemTime::now();
/// store.create(&key, &Record::new(now, now + Duration::from_secs(60))).await?;
///
/// store.arm(HoldAt::AfterLoad);
/// let slow = store.load(&key);
/// tokio::pin!(slow);
/// tokio::select! {
///     _ = &mut slow => unreachable!("held"),
///     () = store.reached() => {}
/// }
/// store.delete(&key).await?; // runs while the load is held
/// store.release();
/// assert!(slow.await?.is_some(), "it read before the delete");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Held<S> {
    inner: S,
    armed: Arc<AtomicU8>,
    /// With [`arm_update_of`](Held::arm_update_of): the key whose update to stop.
    armed_key: Arc<Mutex<Option<TokenHash>>>,
    reached: Arc<Notify>,
    release: Arc<Notify>,
}

impl<S> Held<S> {
    /// Wraps `inner`, not armed.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            armed: Arc::default(),
            armed_key: Arc::default(),
            reached: Arc::default(),
            release: Arc::default(),
        }
    }

    /// Stops the next call at `at`.
    pub fn arm(&self, at: HoldAt) {
        let point = match at {
            HoldAt::AfterLoad => AFTER_LOAD,
            HoldAt::BeforeUpdate => BEFORE_UPDATE,
        };
        self.armed.store(point, Ordering::SeqCst);
    }

    /// Stops the next `update` of `key` (before it is sent), letting every other call
    /// through: one step of a request that makes several writes.
    pub fn arm_update_of(&self, key: TokenHash) {
        if let Ok(mut armed) = self.armed_key.lock() {
            *armed = Some(key);
        }
    }

    /// Resolves once a call is held.
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the held call go on.
    pub fn release(&self) {
        self.release.notify_one();
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    async fn hold_if(&self, point: u8) {
        if self
            .armed
            .compare_exchange(point, OFF, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.reached.notify_one();
            self.release.notified().await;
        }
    }
}

impl<S: Store> Store for Held<S> {
    async fn load(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        let found = self.inner.load(key).await;
        self.hold_if(AFTER_LOAD).await;
        found
    }

    async fn load_from(&self, key: &TokenHash) -> Result<(Option<Record>, LoadedFrom), StoreError> {
        let found = self.inner.load_from(key).await;
        self.hold_if(AFTER_LOAD).await;
        found
    }

    async fn reload(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        self.inner.reload(key).await
    }

    async fn create(&self, key: &TokenHash, record: &Record) -> Result<bool, StoreError> {
        self.inner.create(key, record).await
    }

    async fn update(
        &self,
        key: &TokenHash,
        expected: u64,
        record: &Record,
    ) -> Result<bool, StoreError> {
        self.hold_if(BEFORE_UPDATE).await;
        let hold = self
            .armed_key
            .lock()
            .is_ok_and(|mut armed| armed.take_if(|armed| armed == key).is_some());
        if hold {
            self.reached.notify_one();
            self.release.notified().await;
        }
        self.inner.update(key, expected, record).await
    }

    async fn touch(
        &self,
        key: &TokenHash,
        expected: u64,
        expires_at: SystemTime,
    ) -> Result<bool, StoreError> {
        self.inner.touch(key, expected, expires_at).await
    }

    async fn delete(&self, key: &TokenHash) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }

    async fn cleanup(&self, limit: usize) -> Result<usize, StoreError> {
        self.inner.cleanup(limit).await
    }
}

impl<S: Durable> Durable for Held<S> {
    async fn mark_stale(&self, key: &TokenHash) -> Result<(), StoreError> {
        self.inner.mark_stale(key).await
    }

    async fn stale_marks(
        &self,
        after: Option<&TokenHash>,
        limit: usize,
    ) -> Result<Vec<StaleMark>, StoreError> {
        self.inner.stale_marks(after, limit).await
    }

    async fn clear_stale(&self, mark: &StaleMark) -> Result<(), StoreError> {
        self.inner.clear_stale(mark).await
    }
}
