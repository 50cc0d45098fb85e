//! TieredStore behaviour: refills, counted cost, cache outages, durable outages.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, SystemTime},
};

use common::private_redis::PrivateRedis;
use session_core::{
    store::{Counted, Faulty, MemoryStore, OpCounts, RedisStore, SqliteStore, TieredStore},
    Cache, ManualClock, Record, SessionToken, Store, StoreError, TokenHash,
};
use tokio::sync::Notify;

fn record(value: &str) -> Record {
    let now = SystemTime::now();
    let mut record = Record::new(now, now + Duration::from_secs(600));
    record.insert("value", value).unwrap();
    record
}

fn value(record: &Option<Record>) -> Option<String> {
    record
        .as_ref()
        .map(|r| r.get::<String>("value").unwrap().unwrap())
}

type CountedTier = TieredStore<Counted<MemoryStore>, Counted<SqliteStore>>;

async fn counted_tier() -> CountedTier {
    let clock = ManualClock::starting_now();
    TieredStore::new(
        Counted::new(MemoryStore::new()),
        Counted::new(common::sqlite_store(&clock).await),
    )
}

fn reset(tier: &CountedTier) {
    tier.cache().take_counts();
    tier.durable().take_counts();
}

#[tokio::test]
async fn cache_hit_costs_one_cache_read_and_no_sql() {
    let tier = counted_tier().await;
    let key = SessionToken::generate().unwrap().hash();
    assert!(tier.create(&key, &record("a")).await.unwrap());
    reset(&tier);
    assert_eq!(value(&tier.load(&key).await.unwrap()).as_deref(), Some("a"));
    assert_eq!(
        tier.cache().counts(),
        OpCounts {
            load: 1,
            ..OpCounts::default()
        }
    );
    assert_eq!(
        tier.durable().counts(),
        OpCounts::default(),
        "no SQL on a hit"
    );
    assert_eq!(tier.stats().cache_hits, 1);
}

#[tokio::test]
async fn save_costs_one_sql_statement_and_one_cache_command() {
    let tier = counted_tier().await;
    let key = SessionToken::generate().unwrap().hash();
    reset(&tier);
    assert!(tier.create(&key, &record("a")).await.unwrap());
    assert_eq!(
        tier.durable().take_counts(),
        OpCounts {
            create: 1,
            ..OpCounts::default()
        }
    );
    assert_eq!(
        tier.cache().take_counts(),
        OpCounts {
            put: 1,
            ..OpCounts::default()
        }
    );
    assert!(tier.update(&key, &record("b")).await.unwrap());
    assert_eq!(
        tier.durable().take_counts(),
        OpCounts {
            update: 1,
            ..OpCounts::default()
        }
    );
    assert_eq!(
        tier.cache().take_counts(),
        OpCounts {
            put: 1,
            ..OpCounts::default()
        }
    );
}

#[tokio::test]
async fn cache_miss_repopulates_the_cache() {
    let tier = counted_tier().await;
    let key = SessionToken::generate().unwrap().hash();
    assert!(tier.create(&key, &record("a")).await.unwrap());
    tier.cache().inner().delete(&key).await.unwrap(); // evicted
    reset(&tier);
    assert_eq!(value(&tier.load(&key).await.unwrap()).as_deref(), Some("a"));
    assert_eq!(tier.durable().take_counts().load, 1);
    assert_eq!(
        tier.cache().take_counts(),
        OpCounts {
            load: 1,
            create: 1,
            ..OpCounts::default()
        },
        "the refill writes only where the key is absent"
    );
    let cached = tier.cache().inner().load(&key).await.unwrap();
    assert_eq!(value(&cached).as_deref(), Some("a"), "refilled");
    // The refill carries the remaining lifetime, not a new one.
    assert_eq!(
        cached.unwrap().expires_at,
        tier.durable().load(&key).await.unwrap().unwrap().expires_at
    );
    tier.durable().take_counts();
    tier.load(&key).await.unwrap();
    assert_eq!(tier.durable().counts().load, 0, "second read is a hit");
}

#[tokio::test]
async fn put_overwrites_a_key_already_in_the_cache() {
    // `put` is a plain SET: it works whether or not the key exists (mirrored writes, and
    // refills of keys whose cache entry may be stale).
    let cache = MemoryStore::new();
    let key = SessionToken::generate().unwrap().hash();
    cache.put(&key, &record("old")).await.unwrap();
    cache.put(&key, &record("new")).await.unwrap();
    assert_eq!(
        value(&cache.load(&key).await.unwrap()).as_deref(),
        Some("new")
    );
}

/// A durable store whose next `load` stops after reading, until released: the window
/// between a cache miss's durable read and its refill, held open.
#[derive(Clone)]
struct Held<S> {
    inner: S,
    armed: Arc<AtomicBool>,
    loaded: Arc<Notify>,
    release: Arc<Notify>,
}

impl<S> Held<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            armed: Arc::new(AtomicBool::new(false)),
            loaded: Arc::new(Notify::new()),
            release: Arc::new(Notify::new()),
        }
    }
}

impl<S: Store> Store for Held<S> {
    async fn load(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        let found = self.inner.load(key).await;
        if self.armed.swap(false, Ordering::SeqCst) {
            self.loaded.notify_one();
            self.release.notified().await;
        }
        found
    }
    async fn create(&self, key: &TokenHash, record: &Record) -> Result<bool, StoreError> {
        self.inner.create(key, record).await
    }
    async fn update(&self, key: &TokenHash, record: &Record) -> Result<bool, StoreError> {
        self.inner.update(key, record).await
    }
    async fn touch(&self, key: &TokenHash, expires_at: SystemTime) -> Result<bool, StoreError> {
        self.inner.touch(key, expires_at).await
    }
    async fn delete(&self, key: &TokenHash) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn cleanup(&self, limit: usize) -> Result<usize, StoreError> {
        self.inner.cleanup(limit).await
    }
}

#[tokio::test]
async fn a_late_refill_never_replaces_a_newer_write() {
    let clock = ManualClock::starting_now();
    let durable = Held::new(common::sqlite_store(&clock).await);
    let tier = Arc::new(TieredStore::new(MemoryStore::new(), durable.clone()));
    let key = SessionToken::generate().unwrap().hash();
    assert!(tier.create(&key, &record("v1")).await.unwrap());
    tier.cache().delete(&key).await.unwrap(); // evicted

    // A read misses the cache and reads v1 from the durable store...
    durable.armed.store(true, Ordering::SeqCst);
    let reader = tokio::spawn({
        let (tier, key) = (Arc::clone(&tier), key.clone());
        async move { tier.load(&key).await }
    });
    durable.loaded.notified().await;
    // ...then a write of v2 is acknowledged (durable store and cache)...
    assert!(tier.update(&key, &record("v2")).await.unwrap());
    // ...and only then does the read refill the cache.
    durable.release.notify_one();
    let read = reader.await.unwrap().unwrap();
    assert_eq!(
        value(&read).as_deref(),
        Some("v1"),
        "it read before the write"
    );

    assert_eq!(
        value(&tier.cache().load(&key).await.unwrap()).as_deref(),
        Some("v2"),
        "the older read did not replace the acknowledged write in the cache"
    );
    assert_eq!(
        value(&tier.load(&key).await.unwrap()).as_deref(),
        Some("v2")
    );
}

#[tokio::test]
async fn corrupt_cache_entry_falls_back_to_the_durable_store() {
    let tier = counted_tier().await;
    let key = SessionToken::generate().unwrap().hash();
    assert!(tier.create(&key, &record("good")).await.unwrap());
    tier.cache().inner().insert_raw(
        &key,
        b"garbage",
        SystemTime::now() + Duration::from_secs(60),
    );
    assert_eq!(
        value(&tier.load(&key).await.unwrap()).as_deref(),
        Some("good")
    );
    assert_eq!(
        value(&tier.cache().inner().load(&key).await.unwrap()).as_deref(),
        Some("good")
    );
}

#[tokio::test]
async fn durable_down_fails_the_save_and_keeps_it_out_of_the_cache() {
    let clock = ManualClock::starting_now();
    let durable = Faulty::new(common::sqlite_store(&clock).await);
    let tier = TieredStore::new(MemoryStore::new(), durable.clone());
    let key = SessionToken::generate().unwrap().hash();
    assert!(tier.create(&key, &record("acknowledged")).await.unwrap());

    durable.set_down(true);
    let err = tier
        .update(&key, &record("unacknowledged"))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let cached = tier.cache().load(&key).await.unwrap();
    assert_ne!(value(&cached).as_deref(), Some("unacknowledged"));
    let fresh = SessionToken::generate().unwrap().hash();
    assert!(tier
        .create(&fresh, &record("new"))
        .await
        .unwrap_err()
        .is_unavailable());
    assert_eq!(tier.cache().load(&fresh).await.unwrap(), None);
    assert!(
        tier.load(&key).await.unwrap_err().is_unavailable(),
        "cache miss needs durable"
    );

    durable.set_down(false);
    assert_eq!(
        value(&tier.load(&key).await.unwrap()).as_deref(),
        Some("acknowledged")
    );
}

/// Waits until the store's connection manager talks to the server again.
async fn until_reachable(store: &RedisStore) {
    let probe = SessionToken::generate().unwrap().hash();
    for _ in 0..100 {
        if store.load(&probe).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("redis did not come back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_cache_outage_serves_from_durable_and_never_serves_stale_after() {
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let clock = ManualClock::starting_now();
    let cache = RedisStore::builder(redis.url())
        .response_timeout(Duration::from_millis(300))
        .connection_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let tier = TieredStore::new(cache.clone(), common::sqlite_store(&clock).await);
    let key = SessionToken::generate().unwrap().hash();
    assert!(tier.create(&key, &record("v1")).await.unwrap());
    assert_eq!(
        value(&cache.load(&key).await.unwrap()).as_deref(),
        Some("v1")
    );

    redis.stop().await;
    // Reads and writes keep working from the durable store.
    assert!(tier.update(&key, &record("v2")).await.unwrap());
    assert_eq!(
        value(&tier.load(&key).await.unwrap()).as_deref(),
        Some("v2")
    );
    let during = SessionToken::generate().unwrap().hash();
    assert!(tier
        .create(&during, &record("made during outage"))
        .await
        .unwrap());
    assert_eq!(
        value(&tier.load(&during).await.unwrap()).as_deref(),
        Some("made during outage")
    );
    assert!(tier.stats().cache_errors >= 2);
    assert!(tier.stats().dirty_keys >= 1);

    redis.restart().await;
    until_reachable(&cache).await;
    // The returning cache still holds the old value (AOF): without invalidation, it would
    // be served.
    let mut conn = redis.conn().await;
    let raw: Option<Vec<u8>> = redis::cmd("GET")
        .arg(cache.redis_key(&key))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&raw.expect("stale entry survived")).contains("v1"));

    // Right after a restart the connection may still fail a command or two, so healing can
    // take a few requests; every one of them must read the new value, never the stale one.
    for _ in 0..50 {
        assert_eq!(
            value(&tier.load(&key).await.unwrap()).as_deref(),
            Some("v2"),
            "no stale read"
        );
        assert_eq!(
            value(&tier.load(&during).await.unwrap()).as_deref(),
            Some("made during outage")
        );
        if tier.stats().dirty_keys == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        tier.stats().dirty_keys,
        0,
        "stale keys invalidated once the cache is back"
    );
    assert_eq!(
        value(&cache.load(&key).await.unwrap()).as_deref(),
        Some("v2"),
        "refilled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_redis_command_per_load_and_per_save() {
    let Some(redis) = PrivateRedis::start().await else {
        return;
    };
    let store = RedisStore::new(redis.url()).unwrap();
    let key = SessionToken::generate().unwrap().hash();
    let mut conn = redis.conn().await;
    assert!(store.create(&key, &record("a")).await.unwrap());

    let stats = |conn: &mut redis::aio::MultiplexedConnection| {
        let mut conn = conn.clone();
        async move {
            let info: String = redis::cmd("INFO")
                .arg("commandstats")
                .query_async(&mut conn)
                .await
                .unwrap();
            redis::cmd("CONFIG")
                .arg("RESETSTAT")
                .query_async::<()>(&mut conn)
                .await
                .unwrap();
            // Our own INFO/CONFIG calls are not the store's.
            let mut calls: Vec<(String, u64)> = info
                .lines()
                .filter_map(|line| {
                    let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                    let calls = rest
                        .strip_prefix("calls=")?
                        .split(',')
                        .next()?
                        .parse()
                        .ok()?;
                    (!name.starts_with("info") && !name.starts_with("config"))
                        .then(|| (name.to_owned(), calls))
                })
                .collect();
            calls.sort();
            calls
        }
    };
    stats(&mut conn).await;
    store.load(&key).await.unwrap();
    assert_eq!(stats(&mut conn).await, [("get".to_owned(), 1)]);
    store.update(&key, &record("b")).await.unwrap();
    assert_eq!(stats(&mut conn).await, [("set".to_owned(), 1)]);
    store.put(&key, &record("c")).await.unwrap();
    assert_eq!(stats(&mut conn).await, [("set".to_owned(), 1)]);
}
