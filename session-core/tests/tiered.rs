//! TieredStore behaviour: refills, counted cost, versions under concurrency, cache outages
//! (real Redis servers killed, frozen, restarted from snapshots), durable outages.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use common::{private_redis::PrivateRedis, proxy, proxy::Proxy};
use serde_json::value::to_raw_value;
use session_core::{
    store::{
        apply_changes, Applied, CacheState, Counted, Durable, Faulty, Held, HoldAt, MemoryStore,
        OpCounts, RedisStore, SqliteStore, TieredStore,
    },
    Cache, Changes, ManualClock, Record, SessionToken, Store, TokenHash,
};

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

/// `base`'s next version with `value` set.
fn next(base: &Record, value: &str) -> Record {
    let mut next = base.next_version();
    next.insert("value", value).unwrap();
    next
}

fn key() -> TokenHash {
    SessionToken::generate().unwrap().hash()
}

type CountedTier = TieredStore<Counted<MemoryStore>, Counted<SqliteStore>>;

async fn counted_tier() -> CountedTier {
    let clock = ManualClock::starting_now();
    let tier = TieredStore::builder(
        Counted::new(MemoryStore::new()),
        Counted::new(common::sqlite_store(&clock).await),
    )
    // The periodic repair pass (one statement a second) stays out of the counts.
    .repair_interval(Duration::from_secs(3600))
    .build();
    tier.repair().await.unwrap(); // the start-up pass, before anything is counted
    tier
}

fn reset(tier: &CountedTier) {
    tier.cache().take_counts();
    tier.durable().take_counts();
}

#[tokio::test]
async fn cache_hit_costs_one_cache_read_and_no_sql() {
    let tier = counted_tier().await;
    let key = key();
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
    let key = key();
    reset(&tier);
    let v1 = record("a");
    assert!(tier.create(&key, &v1).await.unwrap());
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
    // The conditional update is the same single statement.
    assert!(tier.update(&key, 1, &next(&v1, "b")).await.unwrap());
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
    let key = key();
    assert!(tier.create(&key, &record("a")).await.unwrap());
    tier.cache().inner().delete(&key).await.unwrap(); // evicted
    reset(&tier);
    assert_eq!(value(&tier.load(&key).await.unwrap()).as_deref(), Some("a"));
    assert_eq!(tier.durable().take_counts().load, 1);
    assert_eq!(
        tier.cache().take_counts(),
        OpCounts {
            load: 1,
            put: 1,
            ..OpCounts::default()
        },
        "one read, one forward-only refill"
    );
    let cached = tier.cache().inner().get(&key).await.unwrap();
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

type HeldTier = Arc<TieredStore<MemoryStore, Held<SqliteStore>>>;

/// A tier whose next durable load is held, and a read of `key` started into that hold.
async fn read_held_open(
    key: &TokenHash,
) -> (
    HeldTier,
    Held<SqliteStore>,
    tokio::task::JoinHandle<Option<Record>>,
) {
    let clock = ManualClock::starting_now();
    let durable = Held::new(common::sqlite_store(&clock).await);
    let tier = Arc::new(TieredStore::new(MemoryStore::new(), durable.clone()));
    assert!(tier.create(key, &record("v1")).await.unwrap());
    Store::delete(tier.cache(), key).await.unwrap(); // evicted
    durable.arm(HoldAt::AfterLoad);
    let reader = tokio::spawn({
        let (tier, key) = (Arc::clone(&tier), key.clone());
        async move { tier.load(&key).await.unwrap() }
    });
    durable.reached().await;
    (tier, durable, reader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_refill_never_replaces_a_newer_write() {
    let key = key();
    // A read misses the cache and reads v1 from the durable store...
    let (tier, durable, reader) = read_held_open(&key).await;
    // ...then a write of v2 is acknowledged (durable store and cache)...
    let v1 = tier.durable().inner().load(&key).await.unwrap().unwrap();
    assert!(tier
        .update(&key, v1.version, &next(&v1, "v2"))
        .await
        .unwrap());
    // ...and only then does the read refill the cache.
    durable.release();
    assert_eq!(
        value(&reader.await.unwrap()).as_deref(),
        Some("v1"),
        "it read before the write"
    );
    assert_eq!(
        value(&tier.cache().get(&key).await.unwrap()).as_deref(),
        Some("v2"),
        "the older read did not replace the acknowledged write in the cache"
    );
    assert_eq!(
        value(&tier.load(&key).await.unwrap()).as_deref(),
        Some("v2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_refill_never_brings_back_a_deleted_session() {
    let key = key();
    let (tier, durable, reader) = read_held_open(&key).await;
    // The session is deleted (a logout) while the read holds v1...
    tier.delete(&key).await.unwrap();
    // ...and the read's refill lands afterwards: the tombstone refuses it.
    durable.release();
    assert_eq!(value(&reader.await.unwrap()).as_deref(), Some("v1"));
    assert_eq!(tier.cache().get(&key).await.unwrap(), None, "not put back");
    assert_eq!(
        tier.load(&key).await.unwrap(),
        None,
        "the session stays deleted"
    );
}

#[tokio::test]
async fn a_stale_read_cannot_overwrite_newer_data() {
    let tier = counted_tier().await;
    let key = key();
    let v1 = record("v1");
    assert!(tier.create(&key, &v1).await.unwrap());
    assert!(tier.update(&key, 1, &next(&v1, "v2")).await.unwrap());
    // A writer that still holds v1 (a stale read) loses, and nothing changes.
    assert!(!tier.update(&key, 1, &next(&v1, "from v1")).await.unwrap());
    assert_eq!(
        value(&tier.load(&key).await.unwrap()).as_deref(),
        Some("v2")
    );
    assert_eq!(
        value(&tier.durable().load(&key).await.unwrap()).as_deref(),
        Some("v2")
    );
}

#[tokio::test]
async fn corrupt_cache_entry_falls_back_to_the_durable_store() {
    let tier = counted_tier().await;
    let key = key();
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
        value(&tier.cache().inner().get(&key).await.unwrap()).as_deref(),
        Some("good")
    );
}

#[tokio::test]
async fn durable_down_fails_the_save_and_keeps_it_out_of_the_cache() {
    let clock = ManualClock::starting_now();
    let durable = Faulty::new(common::sqlite_store(&clock).await);
    let tier = TieredStore::new(MemoryStore::new(), durable.clone());
    let key = key();
    let v1 = record("acknowledged");
    assert!(tier.create(&key, &v1).await.unwrap());

    durable.set_down(true);
    let err = tier
        .update(&key, 1, &next(&v1, "unacknowledged"))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let cached = tier.cache().get(&key).await.unwrap();
    assert_ne!(value(&cached).as_deref(), Some("unacknowledged"));
    let fresh = SessionToken::generate().unwrap().hash();
    assert!(tier
        .create(&fresh, &record("new"))
        .await
        .unwrap_err()
        .is_unavailable());
    assert_eq!(tier.cache().get(&fresh).await.unwrap(), None);

    durable.set_down(false);
    assert_eq!(
        value(&tier.load(&key).await.unwrap()).as_deref(),
        Some("acknowledged")
    );
}

/// A tiered store over `redis` and a durable store, with a fast breaker.
fn tier_over<D: Durable>(redis: &PrivateRedis, durable: D) -> TieredStore<Counted<RedisStore>, D> {
    tier_at(&redis.url(), durable)
}

fn tier_at<D: Durable>(url: &str, durable: D) -> TieredStore<Counted<RedisStore>, D> {
    let cache = RedisStore::builder(url)
        .response_timeout(Duration::from_millis(300))
        .connection_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    TieredStore::builder(Counted::new(cache), durable)
        .retry_after(Duration::from_millis(50))
        .max_retry_after(Duration::from_millis(200))
        .repair_interval(Duration::from_millis(200))
        .build()
}

/// The counter of `key` as read through `store`.
async fn count(store: &impl Store, key: &TokenHash) -> u64 {
    store
        .load(key)
        .await
        .unwrap()
        .expect("live")
        .get::<u64>("n")
        .unwrap()
        .unwrap_or(0)
}

/// One client's increment: read, add one, save the change (retrying on conflict).
async fn increment(store: &impl Store, key: &TokenHash) -> u64 {
    let loaded = store.load(key).await.unwrap().expect("live");
    let n = loaded.get::<u64>("n").unwrap().unwrap_or(0) + 1;
    let mut changes = Changes::new();
    changes.set("n", to_raw_value(&n).unwrap());
    let expires = SystemTime::now() + Duration::from_secs(600);
    match apply_changes(store, key, loaded, &changes, expires)
        .await
        .unwrap()
    {
        Applied::Written { record, .. } => record.get::<u64>("n").unwrap().unwrap(),
        other => panic!("{other:?}"),
    }
}

const CLIENTS: usize = 32;

/// Each client reads the value it last saved (no stale read), and its next increment
/// lands on it (nothing lost).
async fn every_client_reads_its_latest_and_loses_nothing(
    store: &impl Store,
    keys: &[TokenHash],
    expected: &[u64],
) {
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            count(store, k).await,
            expected[i],
            "client {i}: no stale read"
        );
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            increment(store, k).await,
            expected[i] + 1,
            "client {i}: nothing lost"
        );
    }
}

async fn sessions(store: &impl Store) -> Vec<TokenHash> {
    let mut keys = Vec::new();
    for _ in 0..CLIENTS {
        let k = key();
        assert!(store.create(&k, &record("client")).await.unwrap());
        keys.push(k);
    }
    keys
}

/// The reproduction of the issue: two instances over one frozen Redis (it comes back with
/// its old data and its old `run_id`); the writing instance is dropped (killed) before
/// Redis returns; a third instance starts during the cut. Nothing acknowledged is lost,
/// and nothing stale is read once the repair has run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_a_frozen_cache_and_a_killed_writer_lose_nothing() {
    let Some(redis) = PrivateRedis::start().await else {
        return;
    };
    let clock = ManualClock::starting_now();
    let Some(durable) = common::postgres_store(&clock).await else {
        return;
    };
    let a = tier_over(&redis, durable.clone());
    let b = tier_over(&redis, durable.clone());
    let keys = sessions(&a).await;
    let mut expected = vec![0u64; CLIENTS];
    for _ in 0..3 {
        for (i, k) in keys.iter().enumerate() {
            expected[i] = increment(&a, k).await;
        }
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(count(&b, k).await, expected[i], "b reads a's writes");
    }

    redis.pause();
    // Writes during the cut land in PostgreSQL only, acknowledged.
    for _ in 0..2 {
        for (i, k) in keys.iter().enumerate() {
            expected[i] = increment(&a, k).await;
        }
    }
    assert!(a.stats().cache_errors >= 1);
    assert!(
        a.stats().cache_skipped >= CLIENTS as u64,
        "the breaker skips the cache: {:?}",
        a.stats()
    );
    assert!(
        !durable.stale_marks(None, 1).await.unwrap().is_empty(),
        "the misses are recorded durably"
    );
    drop(a); // killed before Redis returns
    let c = tier_over(&redis, durable.clone()); // started during the cut
    assert!(
        c.repair().await.is_err(),
        "c cannot trust a cache it cannot reach"
    );
    redis.resume();

    // b never saw the outage. Half the clients write through it right away: its first
    // request reads the repair log before trusting its cache again, so every increment
    // starts from a's last acknowledged value.
    let (early, late) = keys.split_at(CLIENTS / 2);
    for (i, k) in early.iter().enumerate() {
        assert_eq!(
            increment(&b, k).await,
            expected[i] + 1,
            "client {i}: an increment based on a stale read would lose a's writes"
        );
        expected[i] += 1;
    }
    common::until_repaired(&b).await;
    common::until_repaired(&c).await;
    // The other half only read, after the repair: nothing stale.
    for (j, k) in late.iter().enumerate() {
        let i = early.len() + j;
        assert_eq!(
            count(&b, k).await,
            expected[i],
            "b: client {i} read a stale value"
        );
        assert_eq!(
            count(&c, k).await,
            expected[i],
            "c: client {i} read a stale value"
        );
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(count(&b, k).await, expected[i], "b: client {i}");
        assert_eq!(count(&durable, k).await, expected[i], "durable: client {i}");
    }
    // And the clients carry on through c.
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(increment(&c, k).await, expected[i] + 1);
    }
}

/// A failover to a lagging replica: the address of the cache now leads to a replica that
/// stopped following before the last writes and was promoted. It holds older values,
/// replicated with the old primary's generation; under its own `run_id` they read as
/// misses, so nothing stale is read and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_replica_promoted_after_a_failover_is_cold_not_stale() {
    let Some(mut primary) = PrivateRedis::start().await else {
        return;
    };
    let Some(replica) = PrivateRedis::start().await else {
        return;
    };
    let clock = ManualClock::starting_now();
    let Some(durable) = common::postgres_store(&clock).await else {
        return;
    };
    let at = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let proxy = Proxy::start(at(primary.port)).await;
    let tier = tier_at(&format!("redis://127.0.0.1:{}", proxy.port), durable);
    let mut replica_conn = replica.conn().await;
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(primary.port)
        .query_async::<()>(&mut replica_conn)
        .await
        .unwrap();

    let keys = sessions(&tier).await;
    let mut expected = vec![0u64; CLIENTS];
    for (i, k) in keys.iter().enumerate() {
        expected[i] = increment(&tier, k).await;
    }
    // The replica has caught up with every entry...
    let last = tier.cache().inner().redis_key(&keys[CLIENTS - 1]);
    let mut primary_conn = primary.conn().await;
    let on_primary: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&last)
        .query_async(&mut primary_conn)
        .await
        .unwrap();
    // A full resynchronisation forks and ships a snapshot: seconds on a loaded machine.
    let mut synced = false;
    for _ in 0..1200 {
        let on_replica: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&last)
            .query_async(&mut replica_conn)
            .await
            .unwrap();
        if on_replica.is_some() && on_replica == on_primary {
            synced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(synced, "the replica followed the primary within 30 s");
    // ...then stops following (it lags), and the primary takes more writes.
    redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async::<()>(&mut replica_conn)
        .await
        .unwrap();
    for _ in 0..3 {
        for (i, k) in keys.iter().enumerate() {
            expected[i] = increment(&tier, k).await;
        }
    }
    // The failover: the cache's address leads to the promoted replica; the primary is gone.
    proxy.set_target(at(replica.port));
    primary.stop().await;
    let stale: Option<Vec<u8>> = redis::cmd("GET")
        .arg(tier.cache().inner().redis_key(&keys[0]))
        .query_async(&mut replica_conn)
        .await
        .unwrap();
    assert!(
        stale.is_some(),
        "the promoted replica holds the older entries"
    );

    common::until_repaired(&tier).await;
    every_client_reads_its_latest_and_loses_nothing(&tier, &keys, &expected).await;
    assert!(
        tier.stats().cache_hits > 0,
        "the new primary serves as the cache afterwards"
    );
}

/// Redis restarted from a snapshot a few seconds old, with no request in the gap: it
/// comes back with old values under a new `run_id`, and they read as misses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_restored_from_an_old_snapshot_is_cold_not_stale() {
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let clock = ManualClock::starting_now();
    let Some(durable) = common::postgres_store(&clock).await else {
        return;
    };
    let tier = tier_over(&redis, durable.clone());
    let keys = sessions(&tier).await;
    let mut expected = vec![0u64; CLIENTS];
    for (i, k) in keys.iter().enumerate() {
        expected[i] = increment(&tier, k).await;
    }
    redis.snapshot().await;
    let old_run_id = redis.run_id().await;
    for _ in 0..5 {
        for (i, k) in keys.iter().enumerate() {
            expected[i] = increment(&tier, k).await;
        }
    }
    redis.restart_from_snapshot().await;
    assert_ne!(redis.run_id().await, old_run_id);
    // The old values are back in Redis...
    let mut conn = redis.conn().await;
    let raw: Option<Vec<u8>> = redis::cmd("GET")
        .arg(tier.cache().inner().redis_key(&keys[0]))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(raw.is_some(), "the snapshot brought the old entry back");
    // Once the store trusts the cache again, with the old entries in it...
    common::until_repaired(&tier).await;
    assert_eq!(tier.stats().cache_state, CacheState::Closed);
    // ...not one is read, and nothing is lost.
    every_client_reads_its_latest_and_loses_nothing(&tier, &keys, &expected).await;
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(count(&tier, k).await, expected[i] + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_cache_restarting_from_its_aof_serves_nothing_stale() {
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let clock = ManualClock::starting_now();
    let tier = tier_over(&redis, common::sqlite_store(&clock).await);
    let key = key();
    let v1 = record("v1");
    assert!(tier.create(&key, &v1).await.unwrap());

    redis.stop().await;
    assert!(tier.update(&key, 1, &next(&v1, "v2")).await.unwrap());
    assert_eq!(
        value(&tier.load(&key).await.unwrap()).as_deref(),
        Some("v2")
    );
    let during = SessionToken::generate().unwrap().hash();
    assert!(tier
        .create(&during, &record("made during outage"))
        .await
        .unwrap());

    redis.restart().await;
    for _ in 0..20 {
        assert_eq!(
            value(&tier.load(&key).await.unwrap()).as_deref(),
            Some("v2"),
            "no stale read"
        );
        assert_eq!(
            value(&tier.load(&during).await.unwrap()).as_deref(),
            Some("made during outage")
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    common::until_repaired(&tier).await;
    assert_eq!(
        value(&tier.cache().get(&key).await.unwrap()).as_deref(),
        Some("v2"),
        "refilled"
    );
}

/// While Redis does not answer (frozen: every command would wait for its timeout), the
/// breaker keeps requests away from it: only the probes in the background touch it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswering_cache_is_skipped_not_waited_for() {
    let Some(redis) = PrivateRedis::start().await else {
        return;
    };
    let clock = ManualClock::starting_now();
    let tier = tier_over(&redis, common::sqlite_store(&clock).await);
    let keys = sessions(&tier).await;
    redis.pause();
    tier.cache().take_counts();
    let mut slow = 0;
    for k in keys.iter().cycle().take(200) {
        let start = Instant::now();
        increment(&tier, k).await;
        if start.elapsed() >= Duration::from_millis(300) {
            slow += 1; // waited out a response timeout
        }
    }
    let counts = tier.cache().take_counts();
    redis.resume();
    // Only the first request meets the frozen server; the rest skip it. (Probes run in
    // the background and are counted separately.)
    assert!(slow <= 1, "{slow} of 200 requests waited for the cache");
    assert!(
        counts.load + counts.put <= 2,
        "cache calls during the outage: {counts:?}"
    );
    assert!(tier.stats().cache_skipped >= 300);
    common::until_repaired(&tier).await;
}

/// 500 trials of two concurrent requests of one session, both from the same loaded
/// version and changing different keys: both changes survive, and the cache ends on the
/// database's version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_of_one_session_lose_nothing_and_leave_tiers_agreeing() {
    let clock = ManualClock::starting_now();
    let (Some(cache), Some(durable)) = (
        common::redis_store(&clock).await,
        common::postgres_store(&clock).await,
    ) else {
        return;
    };
    let tier = Arc::new(TieredStore::new(cache, durable));
    for trial in 0..500 {
        let k = key();
        let now = session_core::Clock::now(&clock);
        let mut base = Record::new(now, now + Duration::from_secs(600));
        base.insert("a", &0).unwrap();
        base.insert("b", &0).unwrap();
        assert!(tier.create(&k, &base).await.unwrap());
        let loaded = tier.load(&k).await.unwrap().unwrap();
        let writers = ["a", "b"].map(|field| {
            let (tier, k, loaded) = (Arc::clone(&tier), k.clone(), loaded.clone());
            tokio::spawn(async move {
                let mut changes = Changes::new();
                changes.set(field, to_raw_value(&1).unwrap());
                let expires = loaded.expires_at;
                apply_changes(&*tier, &k, loaded, &changes, expires)
                    .await
                    .unwrap()
            })
        });
        for writer in writers {
            assert!(matches!(writer.await.unwrap(), Applied::Written { .. }));
        }
        let cached = tier.cache().get(&k).await.unwrap().expect("cached");
        let durable = tier.durable().load(&k).await.unwrap().unwrap();
        assert_eq!(durable.version, 3, "trial {trial}");
        assert_eq!(
            cached.version, durable.version,
            "trial {trial}: cache behind the database"
        );
        for field in ["a", "b"] {
            assert_eq!(
                durable.get::<u32>(field).unwrap(),
                Some(1),
                "trial {trial}: {field} lost"
            );
        }
    }
}

/// A PostgreSQL that stops answering (packets dropped, no reset) fails a write within the
/// store's timeout instead of holding it for the whole partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_database_fails_writes_within_the_timeout() {
    let clock = ManualClock::starting_now();
    let Some(direct) = common::postgres_store(&clock).await else {
        return;
    };
    let timeout = Duration::from_millis(500);
    let (proxy, store) =
        proxy::proxied_postgres(&common::database_url(), &direct, &clock, timeout).await;
    let k = key();
    let v1 = record("v1");
    assert!(store.create(&k, &v1).await.unwrap());
    // Warm the statements, so that what the partition holds back is the write itself.
    let warm = key();
    assert!(store.create(&warm, &v1).await.unwrap());
    assert!(store.update(&warm, 1, &next(&v1, "warm")).await.unwrap());

    proxy.set_blackhole(true);
    let start = Instant::now();
    let err = store.update(&k, 1, &next(&v1, "v2")).await.unwrap_err();
    let took = start.elapsed();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        took < timeout * 4,
        "answered after {took:?}, timeout {timeout:?}"
    );
    let err = store.load(&k).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");

    proxy.set_blackhole(false);
    // The partition heals: the store works again (a fresh connection if the old one broke).
    let mut healed = false;
    for _ in 0..40 {
        if let Ok(Some(found)) = store.load(&k).await {
            // The write was not acknowledged; held back by the partition, it may still
            // land once it heals (its version check still applies).
            let found = value(&Some(found));
            assert!(matches!(found.as_deref(), Some("v1" | "v2")), "{found:?}");
            healed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healed, "the store did not recover after the partition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_redis_command_per_load_and_per_save() {
    let Some(redis) = PrivateRedis::start().await else {
        return;
    };
    let store = RedisStore::new(redis.url()).unwrap();
    let key = key();
    let mut conn = redis.conn().await;
    let v1 = record("a");
    assert!(store.create(&key, &v1).await.unwrap());
    // The first run of each script loads it (NOSCRIPT, SCRIPT LOAD): warm them up.
    let other = SessionToken::generate().unwrap().hash();
    store.update(&other, 1, &next(&v1, "x")).await.unwrap();
    Cache::put(&store, &other, &v1).await.unwrap();

    // Per command since the last call; our own INFO/CONFIG calls are not the store's.
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
    let one = |name: &str| vec![(name.to_owned(), 1)];
    // A script is one command sent (EVALSHA); Redis also lists the commands it ran inside.
    let script = vec![
        ("evalsha".to_owned(), 1),
        ("getrange".to_owned(), 1),
        ("set".to_owned(), 1),
    ];
    stats(&mut conn).await;
    store.load(&key).await.unwrap();
    assert_eq!(stats(&mut conn).await, one("get"), "load");
    store.update(&key, 1, &next(&v1, "b")).await.unwrap();
    assert_eq!(stats(&mut conn).await, script, "conditional update");
    let mut v3 = next(&v1, "c");
    v3.version = 3;
    Cache::put(&store, &key, &v3).await.unwrap();
    // The put also reads the server's clock, for its deadline.
    let mut put = script.clone();
    put.push(("time".to_owned(), 1));
    assert_eq!(stats(&mut conn).await, put, "forward-only put");
    Cache::get(&store, &key).await.unwrap();
    assert_eq!(stats(&mut conn).await, one("get"), "cache get");
}

/// A refill queued in a frozen Redis behind a tombstone: while the server is stopped, the
/// tombstone's absolute expiry passes, so when it thaws the tombstone is already gone and
/// the late refill would land, serving a session that was deleted. A put carries a
/// deadline (its send time, the response timeout and a margin) that the script checks
/// against the server's clock: the late put is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refill_held_in_a_frozen_redis_past_its_tombstone_is_refused() {
    let Some(redis) = PrivateRedis::start().await else {
        return;
    };
    let cache = RedisStore::builder(redis.url())
        .response_timeout(Duration::from_millis(200))
        .connection_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let k = key();
    let v1 = record("v1");
    cache.put(&k, &v1).await.unwrap();
    assert!(cache.get(&k).await.unwrap().is_some());

    redis.pause();
    // A logout's tombstone, living one second, then a refill of the old version that read
    // the database before the delete: both wait in the frozen server's input.
    let until = SystemTime::now() + Duration::from_secs(1);
    let (invalidated, refilled) = tokio::join!(cache.invalidate(&k, until), cache.put(&k, &v1));
    assert!(
        invalidated.is_err() && refilled.is_err(),
        "frozen: both time out"
    );
    // Frozen past the tombstone's expiry and past the put's deadline.
    tokio::time::sleep(Duration::from_millis(6_500)).await;
    redis.resume();

    let mut found = None;
    for _ in 0..50 {
        match cache.get(&k).await {
            Ok(entry) => {
                found = Some(entry);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let found = found.expect("the server answers again");
    assert_eq!(value(&found), None, "the late refill landed: {found:?}");
}
