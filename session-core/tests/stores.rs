//! The conformance suite against every store: memory, Redis, PostgreSQL, SQLite, and the
//! tiered combinations memory+SQLite and Redis+PostgreSQL; Redis also as a Redis Cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;

use session_core::{
    cache_conformance,
    clock::Clock,
    store::{MemoryStore, NearCache, PostgresStore, RedisStore, SqliteStore, TieredStore},
    store_conformance as conformance,
    testing::{
        cache_conformance::CacheFixture,
        conformance::{Fixture, Plant},
    },
    Cache, ManualClock, TokenHash,
};

fn far_future() -> i64 {
    i64::MAX / 2
}

fn plant_memory(store: &MemoryStore, clock: &ManualClock) -> Plant {
    let (store, clock) = (store.clone(), clock.clone());
    Arc::new(move |key: TokenHash, bytes: Vec<u8>| {
        store.insert_raw(
            &key,
            &bytes,
            clock.now() + std::time::Duration::from_secs(60),
        );
        Box::pin(async {})
    })
}

fn plant_redis(store: &RedisStore) -> Plant {
    let store = store.clone();
    Arc::new(move |key: TokenHash, bytes: Vec<u8>| {
        let redis_key = store.redis_key(&key);
        Box::pin(async move {
            let client = redis::Client::open(common::redis_url()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            // A valid expiry prefix (far future) and a garbage record.
            let mut value = format!("{:016x}", u64::MAX / 4).into_bytes();
            value.extend_from_slice(&bytes);
            redis::cmd("SET")
                .arg(redis_key)
                .arg(value)
                .arg("EX")
                .arg(60)
                .query_async::<()>(&mut conn)
                .await
                .unwrap();
        })
    })
}

/// Plants on the node that serves the key, following the seed's `MOVED`.
fn plant_cluster(store: &RedisStore, urls: Vec<String>) -> Plant {
    let store = store.clone();
    Arc::new(move |key: TokenHash, bytes: Vec<u8>| {
        let redis_key = store.redis_key(&key);
        let mut url = urls[0].clone();
        Box::pin(async move {
            let mut value = format!("{:016x}", u64::MAX / 4).into_bytes();
            value.extend_from_slice(&bytes);
            for _ in 0..3 {
                let client = redis::Client::open(url.as_str()).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                let planted = redis::cmd("SET")
                    .arg(&redis_key)
                    .arg(&value)
                    .arg("EX")
                    .arg(60)
                    .query_async::<()>(&mut conn)
                    .await;
                match planted {
                    Ok(()) => return,
                    Err(err) => {
                        let (addr, _slot) = err.redirect_node().expect("a MOVED reply");
                        url = format!("redis://{addr}");
                    }
                }
            }
            panic!("no cluster node accepted {redis_key}");
        })
    })
}

fn plant_postgres(store: &PostgresStore) -> Plant {
    let store = store.clone();
    Arc::new(move |key: TokenHash, bytes: Vec<u8>| {
        let store = store.clone();
        Box::pin(async move {
            sqlx::query(&format!(
                "INSERT INTO {} (id, data, expires_at) VALUES ($1, $2, $3)",
                store.table_name()
            ))
            .bind(key.as_str())
            .bind(bytes)
            .bind(far_future())
            .execute(store.pool())
            .await
            .unwrap();
        })
    })
}

fn plant_sqlite(store: &SqliteStore) -> Plant {
    let store = store.clone();
    Arc::new(move |key: TokenHash, bytes: Vec<u8>| {
        let store = store.clone();
        Box::pin(async move {
            sqlx::query(&format!(
                "INSERT INTO {} (id, data, expires_at) VALUES (?1, ?2, ?3)",
                store.table_name()
            ))
            .bind(key.as_str())
            .bind(bytes)
            .bind(far_future())
            .execute(store.pool())
            .await
            .unwrap();
        })
    })
}

async fn memory() -> Option<Fixture<MemoryStore>> {
    let clock = ManualClock::starting_now();
    let store = MemoryStore::builder().clock(clock.clone()).build();
    let plant = plant_memory(&store, &clock);
    Some(
        Fixture::new(store, clock)
            .plant(move |key, bytes| plant(key, bytes))
            .update_checks_clock(true)
            .cleanup_reclaims(false),
    )
}

async fn redis() -> Option<Fixture<RedisStore>> {
    let clock = ManualClock::starting_now();
    let store = common::redis_store(&clock).await?;
    let plant = plant_redis(&store);
    Some(
        Fixture::new(store, clock)
            .plant(move |key, bytes| plant(key, bytes))
            .update_checks_clock(false)
            .cleanup_reclaims(false),
    )
}

async fn redis_cluster() -> Option<Fixture<RedisStore>> {
    let clock = ManualClock::starting_now();
    let store = session_core::testing::redis_cluster_store(&clock).await?;
    let urls = session_core::testing::cluster::cluster_urls().await?;
    let plant = plant_cluster(&store, urls);
    Some(
        Fixture::new(store, clock)
            .plant(move |key, bytes| plant(key, bytes))
            .update_checks_clock(false)
            .cleanup_reclaims(false),
    )
}

async fn postgres() -> Option<Fixture<PostgresStore>> {
    let clock = ManualClock::starting_now();
    let store = common::postgres_store(&clock).await?;
    let plant = plant_postgres(&store);
    Some(
        Fixture::new(store, clock)
            .plant(move |key, bytes| plant(key, bytes))
            .update_checks_clock(true)
            .cleanup_reclaims(true),
    )
}

async fn sqlite() -> Option<Fixture<SqliteStore>> {
    let clock = ManualClock::starting_now();
    let store = common::sqlite_store(&clock).await;
    let plant = plant_sqlite(&store);
    Some(
        Fixture::new(store, clock)
            .plant(move |key, bytes| plant(key, bytes))
            .update_checks_clock(true)
            .cleanup_reclaims(true),
    )
}

async fn tiered_memory_sqlite() -> Option<Fixture<TieredStore<MemoryStore, SqliteStore>>> {
    let clock = ManualClock::starting_now();
    let durable = common::sqlite_store(&clock).await;
    let cache = MemoryStore::builder().clock(clock.clone()).build();
    let plant = plant_sqlite(&durable);
    Some(
        Fixture::new(
            TieredStore::builder(cache, durable)
                .clock(clock.clone())
                .build(),
            clock,
        )
        .plant(move |key, bytes| plant(key, bytes))
        .update_checks_clock(true)
        .cleanup_reclaims(true),
    )
}

/// A tiered store of `cache` in front of a fresh PostgreSQL schema, on `clock`.
fn tiered_over_postgres<C: Cache>(
    cache: C,
    durable: PostgresStore,
    clock: ManualClock,
) -> Fixture<TieredStore<C, PostgresStore>> {
    let plant = plant_postgres(&durable);
    Fixture::new(
        TieredStore::builder(cache, durable)
            .clock(clock.clone())
            .build(),
        clock,
    )
    .plant(move |key, bytes| plant(key, bytes))
    .update_checks_clock(true)
    .cleanup_reclaims(true)
}

async fn tiered_redis_postgres() -> Option<Fixture<TieredStore<RedisStore, PostgresStore>>> {
    let clock = ManualClock::starting_now();
    let durable = common::postgres_store(&clock).await?;
    let cache = common::redis_store(&clock).await?;
    Some(tiered_over_postgres(cache, durable, clock))
}

async fn tiered_cluster_postgres() -> Option<Fixture<TieredStore<RedisStore, PostgresStore>>> {
    let clock = ManualClock::starting_now();
    let durable = common::postgres_store(&clock).await?;
    let cache = session_core::testing::redis_cluster_store(&clock).await?;
    Some(tiered_over_postgres(cache, durable, clock))
}

conformance!(memory_store, memory());
conformance!(redis_cluster_store, redis_cluster());
conformance!(tiered_cluster_postgres_store, tiered_cluster_postgres());
conformance!(redis_store, redis());
conformance!(postgres_store, postgres());
conformance!(sqlite_store, sqlite());
conformance!(tiered_memory_sqlite_store, tiered_memory_sqlite());
conformance!(tiered_redis_postgres_store, tiered_redis_postgres());

async fn memory_cache() -> Option<CacheFixture<MemoryStore>> {
    let clock = ManualClock::starting_now();
    let cache = MemoryStore::builder().clock(clock.clone()).build();
    Some(CacheFixture::new(cache, clock))
}

async fn redis_cache() -> Option<CacheFixture<RedisStore>> {
    let clock = ManualClock::starting_now();
    let cache = common::redis_store(&clock).await?;
    Some(CacheFixture::new(cache, clock))
}

async fn redis_cluster_cache() -> Option<CacheFixture<RedisStore>> {
    let clock = ManualClock::starting_now();
    let cache = session_core::testing::redis_cluster_store(&clock).await?;
    Some(CacheFixture::new(cache, clock))
}

/// The near-cache in front of Redis, tracking (so that copies are served).
async fn near_cache() -> Option<CacheFixture<NearCache>> {
    let clock = ManualClock::starting_now();
    let cache = NearCache::new(common::redis_store(&clock).await?);
    assert!(
        cache
            .wait_tracking(std::time::Duration::from_secs(10))
            .await
    );
    Some(CacheFixture::new(cache, clock))
}

async fn tiered_near_postgres() -> Option<Fixture<TieredStore<NearCache, PostgresStore>>> {
    let clock = ManualClock::starting_now();
    let durable = common::postgres_store(&clock).await?;
    let cache = NearCache::new(common::redis_store(&clock).await?);
    assert!(
        cache
            .wait_tracking(std::time::Duration::from_secs(10))
            .await
    );
    Some(tiered_over_postgres(cache, durable, clock))
}

conformance!(tiered_near_postgres_store, tiered_near_postgres());
cache_conformance!(near_cache_tier, near_cache());
cache_conformance!(memory_cache_tier, memory_cache());
cache_conformance!(redis_cluster_cache_tier, redis_cluster_cache());
cache_conformance!(redis_cache_tier, redis_cache());
