//! The near-cache against real Redis servers (a private one per test, a private cluster):
//! a hit costs no command, another instance's write reaches every copy, a lost tracking
//! connection or a restart drops every copy, and the cross-instance delay is measured.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, Instant};

use common::private_redis::PrivateRedis;
use session_core::{
    clock::Clock,
    store::{Counted, NearCache, PostgresStore, RedisStore, TieredStore},
    testing::cluster::LocalCluster,
    Cache, ManualClock, Record, SessionToken, Store, SystemClock, TokenHash,
};

/// `INFO commandstats` of `redis`: calls of every command but `INFO` itself.
async fn commands(redis: &PrivateRedis) -> u64 {
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    stats
        .lines()
        .filter(|line| line.starts_with("cmdstat_") && !line.starts_with("cmdstat_info:"))
        .filter_map(|line| {
            let calls = line.split("calls=").nth(1)?;
            calls.split(',').next()?.parse::<u64>().ok()
        })
        .sum()
}

fn redis_at(url: &str, prefix: &str) -> RedisStore {
    RedisStore::builder(url)
        .key_prefix(prefix)
        .clock(SystemClock)
        .build()
        .unwrap()
}

/// A near-cache whose heartbeat does not send commands while a test counts them.
fn near(redis: RedisStore) -> NearCache {
    NearCache::builder(redis)
        .heartbeat(Duration::from_secs(3600))
        .build()
}

fn record(version: u64, value: &str) -> Record {
    let now = std::time::SystemTime::now();
    let mut record = Record::new(now, now + Duration::from_secs(600));
    record.version = version;
    record.state.insert(
        "value".into(),
        serde_json::value::to_raw_value(value).unwrap(),
    );
    record
}

fn value(record: &Record) -> String {
    serde_json::from_str(record.state["value"].get()).unwrap()
}

fn key() -> TokenHash {
    SessionToken::generate().unwrap().hash()
}

async fn tracking(cache: &NearCache) {
    assert!(
        cache.wait_tracking(Duration::from_secs(10)).await,
        "the near-cache did not start tracking"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_costs_no_redis_command_and_no_sql_statement() {
    let Some(redis) = PrivateRedis::start().await else {
        return;
    };
    let clock = ManualClock::starting_now();
    let Some(durable) = common::postgres_store(&clock).await else {
        return;
    };
    let durable = Counted::new(durable);
    let cache = near(redis_at(&redis.url(), "s:"));
    tracking(&cache).await;
    let tier = TieredStore::new(cache.clone(), durable.clone());
    let key = key();
    let created = Record::new(clock.now(), clock.now() + Duration::from_secs(600));
    assert!(tier.create(&key, &created).await.unwrap());
    // A read fills the copy from Redis. (The server reports the create to this instance
    // too, which may drop a copy filled before the report arrived: read until one stays.)
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(tier.load(&key).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(50)).await;
        if cache.len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no copy stays");
    }
    let before = (commands(&redis).await, durable.counts());
    for _ in 0..100 {
        assert_eq!(tier.load(&key).await.unwrap().unwrap().version, 1);
    }
    let after = (commands(&redis).await, durable.counts());
    assert_eq!(after.0 - before.0, 0, "Redis commands for 100 hits");
    assert_eq!(after.1, before.1, "durable store calls for 100 hits");
    // Not a cache that never asks: a write through it makes the next read ask Redis.
    let mut next = tier.load(&key).await.unwrap().unwrap().next_version();
    next.expires_at = clock.now() + Duration::from_secs(600);
    assert!(tier.update(&key, 1, &next).await.unwrap());
    let before = commands(&redis).await;
    assert_eq!(tier.load(&key).await.unwrap().unwrap().version, 2);
    assert!(
        commands(&redis).await > before,
        "a read after a write asks Redis"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instances_write_reaches_every_copy() {
    let Some(redis) = PrivateRedis::start().await else {
        return;
    };
    let a = NearCache::new(redis_at(&redis.url(), "s:"));
    let b = NearCache::new(redis_at(&redis.url(), "s:"));
    tracking(&a).await;
    tracking(&b).await;
    let key = key();
    Cache::put(&a, &key, &record(1, "one")).await.unwrap();
    // Both hold a copy of version 1.
    assert_eq!(value(&Cache::get(&a, &key).await.unwrap().unwrap()), "one");
    assert_eq!(value(&Cache::get(&b, &key).await.unwrap().unwrap()), "one");
    // (A's write is reported to B too, which may drop a copy B filled before the report
    // arrived: read until one stays.)
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.len() != 1 {
        assert_eq!(value(&Cache::get(&b, &key).await.unwrap().unwrap()), "one");
        assert!(Instant::now() < deadline, "B keeps no copy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A writes version 2: B's copy goes as soon as the server's message arrives.
    Cache::put(&a, &key, &record(2, "two")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = value(&Cache::get(&b, &key).await.unwrap().unwrap());
        if seen == "two" {
            break;
        }
        assert!(Instant::now() < deadline, "B still serves the old copy");
        tokio::task::yield_now().await;
    }
    // Once seen, never the old one again.
    for _ in 0..200 {
        assert_eq!(value(&Cache::get(&b, &key).await.unwrap().unwrap()), "two");
    }
    // An invalidation (a delete) reaches B too.
    Cache::invalidate(
        &a,
        &key,
        std::time::SystemTime::now() + Duration::from_secs(30),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Cache::get(&b, &key).await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "B still serves a deleted session"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_drops_every_copy_before_any_is_served_again() {
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let a = NearCache::builder(redis_at(&redis.url(), "s:"))
        .heartbeat(Duration::from_millis(50))
        .build();
    let b = NearCache::builder(redis_at(&redis.url(), "s:"))
        .heartbeat(Duration::from_millis(50))
        .build();
    tracking(&a).await;
    tracking(&b).await;
    let key = key();
    Cache::put(&a, &key, &record(1, "one")).await.unwrap();
    for cache in [&a, &b] {
        assert!(Cache::get(cache, &key).await.unwrap().is_some());
    }
    // Redis restarts from its append-only file (same data, a new run_id): while it is
    // down and until tracking is back, nothing is served from the copies.
    redis.stop().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.is_tracking() || b.is_tracking() {
        assert!(Instant::now() < deadline, "tracking not lost after a stop");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for cache in [&a, &b] {
        assert!(
            Cache::get(cache, &key).await.is_err(),
            "served a copy while Redis is down"
        );
    }
    redis.restart().await;
    tracking(&a).await;
    tracking(&b).await;
    for cache in [&a, &b] {
        assert_eq!(cache.len(), 0, "copies survived the restart");
        // The entry came back with the old run_id: a miss, as for any cache read.
        assert!(Cache::get(cache, &key).await.unwrap().is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_tracking_connection_stops_the_copies() {
    let Some(redis) = PrivateRedis::start().await else {
        return;
    };
    let a = NearCache::builder(
        RedisStore::builder(redis.url())
            .key_prefix("s:")
            .response_timeout(Duration::from_millis(200))
            .build()
            .unwrap(),
    )
    .heartbeat(Duration::from_millis(50))
    .build();
    tracking(&a).await;
    let key = key();
    Cache::put(&a, &key, &record(1, "one")).await.unwrap();
    // The server reports our own write too, which may drop the copy once more: read until
    // the copy stays.
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.len() != 1 {
        assert!(Cache::get(&a, &key).await.unwrap().is_some());
        assert!(Instant::now() < deadline, "no copy kept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    redis.pause();
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.is_tracking() {
        assert!(Instant::now() < deadline, "a frozen server still trusted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    redis.resume();
    tracking(&a).await;
    assert_eq!(a.len(), 0, "copies survived a lost heartbeat");
}

/// Write on A, read on B: how long B serves the old copy (reported in BENCHMARKS.md),
/// while readers on B race each other: a read that starts after another read returned
/// version n never returns an older one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_instance_invalidation_delay() {
    use std::sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    };
    let Some(redis) = PrivateRedis::start().await else {
        return;
    };
    let a = NearCache::new(redis_at(&redis.url(), "s:"));
    let b = NearCache::new(redis_at(&redis.url(), "s:"));
    tracking(&a).await;
    tracking(&b).await;
    let key = key();
    Cache::put(&a, &key, &record(1, "1")).await.unwrap();
    // The highest version any reader on B has returned, and reads that went back.
    let seen = Arc::new(AtomicU64::new(0));
    let backwards = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (b, key) = (b.clone(), key.clone());
            let (seen, backwards, stop) = (seen.clone(), backwards.clone(), stop.clone());
            tokio::spawn(async move {
                let mut reads = 0u64;
                while !stop.load(Ordering::SeqCst) && reads < 5_000_000 {
                    let before = seen.load(Ordering::SeqCst);
                    let version = Cache::get(&b, &key).await.unwrap().unwrap().version;
                    if version < before {
                        backwards.fetch_add(1, Ordering::SeqCst);
                    }
                    seen.fetch_max(version, Ordering::SeqCst);
                    reads += 1;
                    tokio::task::yield_now().await;
                }
                reads
            })
        })
        .collect();
    const WRITES: u64 = 1_000;
    let mut delays = Vec::with_capacity(WRITES as usize);
    for version in 2..=WRITES + 1 {
        let text = version.to_string();
        Cache::put(&a, &key, &record(version, &text)).await.unwrap();
        let written = Instant::now();
        let deadline = written + Duration::from_secs(5);
        while seen.load(Ordering::SeqCst) < version {
            assert!(
                Instant::now() < deadline,
                "version {version} never reached B"
            );
            tokio::task::yield_now().await;
        }
        delays.push(written.elapsed());
    }
    stop.store(true, Ordering::SeqCst);
    let mut reads = 0;
    for reader in readers {
        reads += reader.await.unwrap();
    }
    assert_eq!(
        backwards.load(Ordering::SeqCst),
        0,
        "reads on B older than one already returned"
    );
    assert!(reads > WRITES, "the readers ran: {reads} reads");
    delays.sort();
    let at = |q: f64| delays[((delays.len() as f64 - 1.0) * q) as usize];
    eprintln!(
        "near-cache invalidation delay over {WRITES} writes ({reads} concurrent reads on B): \
         p50 {:?}, p99 {:?}, max {:?}",
        at(0.5),
        at(0.99),
        delays[delays.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_write_reaches_every_copy_and_a_failover_drops_them() {
    let cluster = match LocalCluster::start(3, 1).await {
        Ok(cluster) => cluster,
        Err(err) => {
            common::unavailable("a local Redis Cluster", &err);
            return;
        }
    };
    let mut cluster = cluster;
    let store = || {
        RedisStore::cluster_builder(cluster.urls())
            .key_prefix("s:")
            .response_timeout(Duration::from_millis(300))
            .build()
            .unwrap()
    };
    let a = NearCache::builder(store())
        .heartbeat(Duration::from_millis(50))
        .build();
    let b = NearCache::builder(store())
        .heartbeat(Duration::from_millis(50))
        .build();
    tracking(&a).await;
    tracking(&b).await;
    let keys: Vec<TokenHash> = (0..20).map(|_| key()).collect();
    for key in &keys {
        Cache::put(&a, key, &record(1, "one")).await.unwrap();
        assert!(Cache::get(&b, key).await.unwrap().is_some());
    }
    // The heartbeat reads the slots again each time; an unchanged layout keeps the copies.
    // (A's writes are reported to B after B may have filled its copies: fill again.)
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.len() != keys.len() as u64 {
        for key in &keys {
            assert!(Cache::get(&b, key).await.unwrap().is_some());
        }
        assert!(Instant::now() < deadline, "B keeps no copies");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(b.is_tracking(), "tracking lost with the layout unchanged");
    assert_eq!(
        b.len(),
        keys.len() as u64,
        "copies dropped with the layout unchanged"
    );
    for key in &keys {
        Cache::put(&a, key, &record(2, "two")).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for key in &keys {
        while Cache::get(&b, key).await.unwrap().unwrap().version != 2 {
            assert!(
                Instant::now() < deadline,
                "B serves an old copy on the cluster"
            );
            tokio::task::yield_now().await;
        }
    }
    // Kill the master of the first key: its replica takes over; both caches drop every
    // copy, and afterwards nothing stale is served.
    let redis_key = a.redis().redis_key(&keys[0]);
    let port = cluster.nodes[0].port;
    let master = cluster.master_of(port, redis_key.as_bytes()).await.unwrap();
    cluster.kill(master).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.is_tracking() || b.is_tracking() {
        assert!(Instant::now() < deadline, "tracking survived a dead master");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Until the failover, writes of that slot fail; then they land on the new master.
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(err) = Cache::put(&a, &keys[0], &record(3, "three")).await {
        assert!(Instant::now() < deadline, "no failover: {err}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracking(&a).await;
    tracking(&b).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Cache::get(&b, &keys[0]).await {
            Ok(Some(record)) if record.version == 3 => break,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "B never saw the write after the failover"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for key in &keys[1..] {
        if let Some(record) = Cache::get(&b, key).await.unwrap() {
            assert_eq!(record.version, 2, "a stale copy after the failover");
        }
    }
}

/// Two instances of three tiers (near-cache, Redis, PostgreSQL) with a client alternating
/// between them while it writes, and a Redis restart in the middle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tiers_on_postgres() {
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let clock = ManualClock::starting_now();
    let Some(durable) = common::postgres_store(&clock).await else {
        return;
    };
    let durable: PostgresStore = durable;
    let instance = |url: String| {
        let redis = RedisStore::builder(url)
            .key_prefix("s:")
            .response_timeout(Duration::from_millis(300))
            .connection_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let cache = NearCache::builder(redis)
            .heartbeat(Duration::from_millis(50))
            .build();
        TieredStore::builder(cache, durable.clone())
            .retry_after(Duration::from_millis(50))
            .max_retry_after(Duration::from_millis(200))
            .repair_interval(Duration::from_millis(200))
            .build()
    };
    let a = instance(redis.url());
    let b = instance(redis.url());
    tracking(a.cache()).await;
    tracking(b.cache()).await;
    let key = key();
    let created = Record::new(clock.now(), clock.now() + Duration::from_secs(600));
    assert!(a.create(&key, &created).await.unwrap());
    let mut version = 1;
    // A client alternating between the instances while it writes sees every write.
    for round in 0..60 {
        if round == 30 {
            // Both hold a copy now; Redis restarts (same data from its append-only file,
            // a new run_id): both drop every copy, and the client goes on.
            let deadline = Instant::now() + Duration::from_secs(5);
            while a.cache().len() + b.cache().len() == 0 {
                assert_eq!(a.load(&key).await.unwrap().unwrap().version, version);
                assert!(Instant::now() < deadline, "no copies before the restart");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            redis.stop().await;
            let deadline = Instant::now() + Duration::from_secs(5);
            while a.cache().is_tracking() || b.cache().is_tracking() {
                assert!(Instant::now() < deadline, "tracking survived the stop");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(a.cache().len() + b.cache().len(), 0, "copies survived");
            redis.restart().await;
        }
        let (writer, reader) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let current = writer.load(&key).await.unwrap().unwrap();
        assert_eq!(current.version, version, "round {round}: a stale read");
        let mut next = current.next_version();
        next.expires_at = clock.now() + Duration::from_secs(600);
        assert!(writer.update(&key, version, &next).await.unwrap());
        version += 1;
        let deadline = Instant::now() + Duration::from_secs(5);
        while reader.load(&key).await.unwrap().unwrap().version != version {
            assert!(Instant::now() < deadline, "round {round}: never reached");
            tokio::task::yield_now().await;
        }
    }
    // Back on all three tiers: the copies serve again.
    tracking(a.cache()).await;
    common::until_repaired(&a).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.cache().is_empty() {
        assert_eq!(a.load(&key).await.unwrap().unwrap().version, version);
        assert!(Instant::now() < deadline, "no copy after the restart");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_cache_closes_its_connections_at_once() {
    let Some(redis) = PrivateRedis::start().await else {
        return;
    };
    let clients = || async {
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query_async(&mut redis.conn().await)
            .await
            .unwrap();
        info.lines()
            .find_map(|line| line.strip_prefix("connected_clients:"))
            .unwrap()
            .trim()
            .parse::<u32>()
            .unwrap()
    };
    let before = clients().await;
    let cache = near(redis_at(&redis.url(), "s:")); // a heartbeat of an hour
    tracking(&cache).await;
    assert!(Cache::get(&cache, &key()).await.unwrap().is_none());
    assert!(
        clients().await >= before + 2,
        "a data and a tracking connection"
    );
    drop(cache);
    let deadline = Instant::now() + Duration::from_secs(5);
    while clients().await > before {
        assert!(Instant::now() < deadline, "connections outlived the cache");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
