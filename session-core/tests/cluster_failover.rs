//! A tiered store on a private Redis Cluster (three masters, one replica each) in front
//! of PostgreSQL, while a master dies under load: no request fails, and nothing stale is
//! read, during the failover or after it. With and without the near-cache on top. And a
//! master that comes back from an old snapshot serves nothing of it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use session_core::{
    clock::Clock,
    store::{NearCache, PostgresStore, RedisStore, TieredStore},
    testing::cluster::LocalCluster,
    Cache, Record, SessionToken, Store, SystemClock, TokenHash,
};

const CLIENTS: usize = 4;
const KEYS_PER_CLIENT: usize = 6;

fn cluster_store(cluster: &LocalCluster) -> RedisStore {
    RedisStore::cluster_builder(cluster.urls())
        .key_prefix("failover:")
        .response_timeout(Duration::from_millis(300))
        .connection_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
}

fn tier<C: Cache>(cache: C, durable: PostgresStore) -> TieredStore<C, PostgresStore> {
    TieredStore::builder(cache, durable)
        .retry_after(Duration::from_millis(50))
        .max_retry_after(Duration::from_millis(200))
        .repair_interval(Duration::from_millis(200))
        .build()
}

async fn setup() -> Option<(LocalCluster, PostgresStore)> {
    let clock = session_core::ManualClock::starting_now();
    let durable = common::postgres_store(&clock).await?;
    // The durable store decides expiry by the system clock, as the cache does here.
    let durable = PostgresStore::builder(durable.pool().clone())
        .table_name(durable.table_name())
        .clock(SystemClock)
        .build()
        .unwrap();
    match LocalCluster::start(3, 1).await {
        Ok(cluster) => Some((cluster, durable)),
        Err(err) => {
            common::unavailable("a local Redis Cluster", &err);
            None
        }
    }
}

/// Clients update and read their own keys while a master dies; every call must succeed
/// and every read must return the version last written.
async fn under_failover<C: Cache + Clone>(
    mut cluster: LocalCluster,
    tier: TieredStore<C, PostgresStore>,
    victim_key: impl Fn(&TokenHash) -> String,
) {
    let keys: Vec<Vec<TokenHash>> = (0..CLIENTS)
        .map(|_| {
            (0..KEYS_PER_CLIENT)
                .map(|_| SessionToken::generate().unwrap().hash())
                .collect()
        })
        .collect();
    let now = SystemClock.now();
    for key in keys.iter().flatten() {
        let record = Record::new(now, now + Duration::from_secs(600));
        assert!(tier.create(key, &record).await.unwrap());
    }
    // Kill the master of the first key once the clients run.
    let victim = cluster
        .master_of(cluster.nodes[0].port, victim_key(&keys[0][0]).as_bytes())
        .await
        .unwrap();
    let stop_at = Instant::now() + Duration::from_secs(8);
    let clients: Vec<_> = keys
        .iter()
        .cloned()
        .enumerate()
        .map(|(client, keys)| {
            let tier = tier.clone();
            tokio::spawn(async move {
                let mut versions = vec![1u64; keys.len()];
                let mut rounds = 0u32;
                while Instant::now() < stop_at && rounds < 5_000 {
                    for (key, version) in keys.iter().zip(versions.iter_mut()) {
                        let loaded = tier
                            .load(key)
                            .await
                            .unwrap_or_else(|err| panic!("client {client}: load failed: {err}"))
                            .expect("live");
                        assert_eq!(loaded.version, *version, "client {client}: a stale read");
                        let mut next = loaded.next_version();
                        next.expires_at = SystemClock.now() + Duration::from_secs(600);
                        let written = tier
                            .update(key, *version, &next)
                            .await
                            .unwrap_or_else(|err| panic!("client {client}: update failed: {err}"));
                        assert!(written, "client {client}: a conflict on its own key");
                        *version += 1;
                    }
                    rounds += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (keys, versions)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.kill(victim).await;
    let mut expected = Vec::new();
    for client in clients {
        expected.push(client.await.unwrap());
    }
    // After the failover settled: the cache is trusted again, and every read is current.
    common::until_repaired(&tier).await;
    for (keys, versions) in &expected {
        for (key, version) in keys.iter().zip(versions) {
            assert_eq!(tier.load(key).await.unwrap().unwrap().version, *version);
        }
    }
    assert!(
        expected
            .iter()
            .all(|(_, versions)| versions.iter().all(|v| *v > 20)),
        "the clients made progress through the failover: {expected:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_dies_under_load_and_no_request_fails() {
    let Some((cluster, durable)) = setup().await else {
        return;
    };
    let cache = cluster_store(&cluster);
    let redis = cache.clone();
    under_failover(cluster, tier(cache, durable), move |key| {
        redis.redis_key(key)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_dies_under_load_behind_a_near_cache() {
    let Some((cluster, durable)) = setup().await else {
        return;
    };
    let near = NearCache::builder(cluster_store(&cluster))
        .heartbeat(Duration::from_millis(100))
        .build();
    assert!(near.wait_tracking(Duration::from_secs(10)).await);
    let redis = near.redis().clone();
    let near = Arc::new(near);
    under_failover(cluster, tier((*near).clone(), durable), move |key| {
        redis.redis_key(key)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_back_from_an_old_snapshot_serves_nothing_stale() {
    let clock = session_core::ManualClock::starting_now();
    let Some(durable) = common::postgres_store(&clock).await else {
        return;
    };
    let durable = PostgresStore::builder(durable.pool().clone())
        .table_name(durable.table_name())
        .clock(SystemClock)
        .build()
        .unwrap();
    let mut cluster = match LocalCluster::start(3, 0).await {
        Ok(cluster) => cluster,
        Err(err) => {
            common::unavailable("a local Redis Cluster", &err);
            return;
        }
    };
    let cache = cluster_store(&cluster);
    let tier = tier(cache.clone(), durable);
    let key = SessionToken::generate().unwrap().hash();
    let now = SystemClock.now();
    assert!(tier
        .create(&key, &Record::new(now, now + Duration::from_secs(600)))
        .await
        .unwrap());
    let master = cluster
        .master_of(cluster.nodes[0].port, cache.redis_key(&key).as_bytes())
        .await
        .unwrap();
    // The snapshot holds version 1; the cache and the database then move to version 2.
    assert_eq!(tier.load(&key).await.unwrap().unwrap().version, 1);
    cluster.snapshot(master).await.unwrap();
    let next = tier.load(&key).await.unwrap().unwrap().next_version();
    assert!(tier.update(&key, 1, &next).await.unwrap());
    assert_eq!(tier.load(&key).await.unwrap().unwrap().version, 2);
    cluster.kill(master).await;
    cluster.restart(master).await.unwrap();
    cluster.wait_healthy(3).await.unwrap();
    // The node holds version 1 again (what the reads below must not serve).
    let raw: Vec<u8> = redis::cmd("GET")
        .arg(cache.redis_key(&key))
        .query_async(
            &mut redis::Client::open(format!("redis://127.0.0.1:{master}"))
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        &raw[16..32],
        b"0000000000000001",
        "the snapshot's copy is back"
    );
    // Its copy of version 1 came back with the old run_id: a miss, never served.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let version = tier.load(&key).await.unwrap().unwrap().version;
        assert_eq!(version, 2, "a stale read from the restored master");
        if tier.stats().cache_state == session_core::store::CacheState::Closed
            && Cache::get(tier.cache(), &key).await.is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the cluster did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    common::until_repaired(&tier).await;
    assert_eq!(tier.load(&key).await.unwrap().unwrap().version, 2);
}
