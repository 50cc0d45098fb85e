//! [`DynStore`]: any [`Store`], its type erased, for storage chosen at run time.

use std::{future::Future, pin::Pin, sync::Arc, time::SystemTime};

use super::LoadedFrom;
use crate::{Record, Store, StoreError, TokenHash};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Any [`Store`], behind one type: for applications that pick their storage from
/// configuration. Cloning is cheap (an `Arc`); each call costs one boxed future on top of
/// the store's own work.
///
/// ```
/// use session_core::store::{DynStore, MemoryStore, SqliteStore, TieredStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), session_core::StoreError> {
/// let embedded = std::env::var_os("DATABASE_URL").is_none();
/// let store = if embedded {
///     DynStore::new(TieredStore::new(MemoryStore::new(), SqliteStore::connect("sqlite::memory:").await?))
/// } else {
///     DynStore::new(MemoryStore::new()) // e.g. a TieredStore of RedisStore and PostgresStore
/// };
/// // `store` is one type either way: hand it to `SessionLayer::builder`.
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct DynStore {
    inner: Arc<dyn ErasedStore>,
}

impl DynStore {
    /// Erases the type of `store`.
    pub fn new(store: impl Store) -> Self {
        Self {
            inner: Arc::new(store),
        }
    }
}

impl std::fmt::Debug for DynStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynStore").finish_non_exhaustive()
    }
}

/// [`Store`] with boxed futures, so it can be a trait object.
trait ErasedStore: Send + Sync + 'static {
    fn load<'a>(&'a self, key: &'a TokenHash) -> BoxFuture<'a, Option<Record>>;
    fn load_from<'a>(&'a self, key: &'a TokenHash) -> BoxFuture<'a, (Option<Record>, LoadedFrom)>;
    fn reload<'a>(&'a self, key: &'a TokenHash) -> BoxFuture<'a, Option<Record>>;
    fn create<'a>(&'a self, key: &'a TokenHash, record: &'a Record) -> BoxFuture<'a, bool>;
    fn update<'a>(
        &'a self,
        key: &'a TokenHash,
        expected: u64,
        record: &'a Record,
    ) -> BoxFuture<'a, bool>;
    fn touch<'a>(
        &'a self,
        key: &'a TokenHash,
        expected: u64,
        expires_at: SystemTime,
    ) -> BoxFuture<'a, bool>;
    fn delete<'a>(&'a self, key: &'a TokenHash) -> BoxFuture<'a, ()>;
    fn cleanup(&self, limit: usize) -> BoxFuture<'_, usize>;
}

impl<S: Store> ErasedStore for S {
    fn load<'a>(&'a self, key: &'a TokenHash) -> BoxFuture<'a, Option<Record>> {
        Box::pin(Store::load(self, key))
    }

    fn load_from<'a>(&'a self, key: &'a TokenHash) -> BoxFuture<'a, (Option<Record>, LoadedFrom)> {
        Box::pin(Store::load_from(self, key))
    }

    fn reload<'a>(&'a self, key: &'a TokenHash) -> BoxFuture<'a, Option<Record>> {
        Box::pin(Store::reload(self, key))
    }

    fn create<'a>(&'a self, key: &'a TokenHash, record: &'a Record) -> BoxFuture<'a, bool> {
        Box::pin(Store::create(self, key, record))
    }

    fn update<'a>(
        &'a self,
        key: &'a TokenHash,
        expected: u64,
        record: &'a Record,
    ) -> BoxFuture<'a, bool> {
        Box::pin(Store::update(self, key, expected, record))
    }

    fn touch<'a>(
        &'a self,
        key: &'a TokenHash,
        expected: u64,
        expires_at: SystemTime,
    ) -> BoxFuture<'a, bool> {
        Box::pin(Store::touch(self, key, expected, expires_at))
    }

    fn delete<'a>(&'a self, key: &'a TokenHash) -> BoxFuture<'a, ()> {
        Box::pin(Store::delete(self, key))
    }

    fn cleanup(&self, limit: usize) -> BoxFuture<'_, usize> {
        Box::pin(Store::cleanup(self, limit))
    }
}

impl Store for DynStore {
    async fn load(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        self.inner.load(key).await
    }

    async fn load_from(&self, key: &TokenHash) -> Result<(Option<Record>, LoadedFrom), StoreError> {
        self.inner.load_from(key).await
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
        self.inner.update(key, expected, record).await
    }

    async fn reload(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        self.inner.reload(key).await
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

#[cfg(all(test, feature = "memory"))]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::DynStore;
    use crate::{store::MemoryStore, Record, SessionToken, Store};

    #[tokio::test]
    async fn forwards_every_call_to_the_erased_store() -> Result<(), Box<dyn std::error::Error>> {
        let store = DynStore::new(MemoryStore::new());
        let key = SessionToken::generate()?.hash();
        let now = SystemTime::now();
        let record = Record::new(now, now + Duration::from_secs(60));
        assert!(store.create(&key, &record).await?);
        assert!(
            !store.create(&key, &record).await?,
            "a live key is never overwritten"
        );
        let loaded = store.load(&key).await?.ok_or("created record loads")?;
        let mut next = loaded.next_version();
        next.insert("n", &1)?;
        assert!(store.update(&key, loaded.version, &next).await?);
        let reloaded = store.reload(&key).await?.ok_or("updated record reloads")?;
        assert_eq!(reloaded.get::<u32>("n")?, Some(1));
        assert!(
            !store
                .touch(&key, loaded.version, now + Duration::from_secs(120))
                .await?,
            "a touch based on an older version is refused"
        );
        assert!(
            store
                .touch(&key, reloaded.version, now + Duration::from_secs(120))
                .await?
        );
        store.delete(&key).await?;
        assert!(store.load(&key).await?.is_none());
        assert_eq!(store.cleanup(10).await?, 0);
        Ok(())
    }
}
