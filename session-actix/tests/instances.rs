//! Two app instances, each with its own stores (a near-cache in front of Redis, then
//! PostgreSQL) on the same servers: a browser alternating between them while it writes
//! sees every write, and a read on the other instance right after a write never serves
//! the old copy once the invalidation arrived.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, Instant};

use actix_web::cookie::Key;
use common::Client;
use session_actix::SessionLayer;
use session_core::{
    store::{NearCache, PostgresStore, TieredStore},
    testing, ManualClock,
};

type Instance = TieredStore<NearCache, PostgresStore>;

async fn instances() -> Option<(Instance, Instance, ManualClock)> {
    let clock = ManualClock::starting_now();
    let redis = testing::redis_store(&clock).await?;
    let durable = testing::postgres_store(&clock).await?;
    // Two stores of their own over the same Redis prefix and the same table, as two
    // processes would have.
    let other_redis = session_core::store::RedisStore::builder(testing::redis_url())
        .key_prefix(redis.key_prefix())
        .clock(clock.clone())
        .build()
        .unwrap();
    let a = TieredStore::new(NearCache::new(redis), durable.clone());
    let b = TieredStore::new(NearCache::new(other_redis), durable);
    for instance in [&a, &b] {
        assert!(
            instance
                .cache()
                .wait_tracking(Duration::from_secs(10))
                .await
        );
    }
    Some((a, b, clock))
}

fn layer(store: &Instance, key: &Key, clock: &ManualClock) -> SessionLayer<Instance> {
    SessionLayer::builder(store.clone(), key.clone())
        .clock(clock.clone())
        .build()
        .unwrap()
}

#[actix_web::test]
async fn a_browser_alternating_between_instances_sees_every_write() {
    let Some((a, b, clock)) = instances().await else {
        return;
    };
    let key = Key::generate();
    let app_a = common::app(layer(&a, &key, &clock)).await;
    let app_b = common::app(layer(&b, &key, &clock)).await;
    let mut browser = Client::new();
    let mut delays = Vec::new();
    for n in 1..=100u32 {
        // Write on one instance…
        let reply = if n % 2 == 0 {
            browser.post(&app_a, "/inc").await
        } else {
            browser.post(&app_b, "/inc").await
        };
        assert_eq!(reply.body, n.to_string(), "write {n}");
        let written = Instant::now();
        // …then read on the other until it shows the write (bounded); never an older
        // count once it did.
        let deadline = written + Duration::from_secs(5);
        loop {
            let reply = if n % 2 == 0 {
                browser.get(&app_b, "/count").await
            } else {
                browser.get(&app_a, "/count").await
            };
            let seen: u32 = reply.body.parse().unwrap();
            assert!(seen <= n, "read {seen} after write {n}");
            if seen == n {
                delays.push(written.elapsed());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "write {n} never reached the other instance"
            );
        }
        for app in [&app_a, &app_b] {
            let reply = browser.get(app, "/count").await;
            assert_eq!(reply.body, n.to_string(), "a stale read after write {n}");
        }
    }
    delays.sort();
    eprintln!(
        "write on one instance, read on the other: p50 {:?}, max {:?}",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    // Reads are served by the copies: both instances come to hold the session (each
    // instance's own last write drops its copy once more when the server reports it).
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.cache().len() != 1 || b.cache().len() != 1 {
        for app in [&app_a, &app_b] {
            assert_eq!(browser.get(app, "/count").await.body, "100");
        }
        assert!(Instant::now() < deadline, "no copies held");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
