//! A PostgreSQL that stops answering (packets dropped, no reset), through the whole layer:
//! a write answers the opaque 500 within the store's timeout instead of hanging for the
//! partition, a read the cache holds is still served, and the layer works again once the
//! partition heals. Real Redis and PostgreSQL, the database behind a TCP proxy that stops
//! forwarding.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;
#[path = "../../session-core/tests/common/proxy.rs"]
#[allow(dead_code, unreachable_pub)] // shared with session-core's tests, which use it all
mod proxy;

use std::time::{Duration, Instant};

use actix_web::{cookie::Key, http::StatusCode};
use common::Client;
use session_core::{store::TieredStore, testing, ManualClock};

#[actix_web::test]
async fn a_silent_database_answers_writes_with_a_500_within_the_timeout() {
    let clock = ManualClock::starting_now();
    let (Some(cache), Some(direct)) = (
        testing::redis_store(&clock).await,
        testing::postgres_store(&clock).await,
    ) else {
        return;
    };
    let timeout = Duration::from_millis(500);
    let (proxy, durable) =
        proxy::proxied_postgres(&testing::database_url(), &direct, &clock, timeout).await;
    let store = TieredStore::builder(cache, durable)
        .clock(clock.clone())
        .repair_interval(Duration::from_secs(3600))
        .build();
    let key = Key::generate();
    let layer = session_actix::SessionLayer::builder(store, key)
        .clock(clock.clone())
        .cookie_secure(false)
        .build()
        .unwrap();
    let app = common::app(layer).await;
    let mut client = Client::new();
    assert_eq!(client.post(&app, "/inc").await.body, "1");
    assert_eq!(client.post(&app, "/inc").await.body, "2", "statements warm");
    let mut reader = Client::new();
    assert_eq!(reader.post(&app, "/inc").await.body, "1");
    assert_eq!(reader.get(&app, "/count").await.body, "1", "cached");

    proxy.set_blackhole(true);
    let start = Instant::now();
    let refused = client.post(&app, "/inc").await;
    let took = start.elapsed();
    assert_eq!(refused.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        !refused.body.contains("unavailable") && !refused.body.contains("postgres"),
        "opaque: {}",
        refused.body
    );
    assert!(
        took < timeout * 4,
        "answered after {took:?}, timeout {timeout:?}"
    );
    // A read the cache holds needs no statement: another session is still served...
    assert_eq!(reader.get(&app, "/count").await.body, "1");
    // ...but not the one whose write failed: that write may still land, so its cached
    // copy was dropped, and its read waits for the database (and fails within the
    // timeout too).
    let start = Instant::now();
    let unsure = client.get(&app, "/count").await;
    assert_eq!(unsure.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(start.elapsed() < timeout * 4);

    proxy.set_blackhole(false);
    // The partition heals; the write that was refused was not acknowledged (it may still
    // land, under its version check), and the next ones are.
    let mut healed = None;
    for _ in 0..40 {
        let reply = client.post(&app, "/inc").await;
        if reply.status == StatusCode::OK {
            healed = Some(reply.body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let healed: u32 = healed.expect("the layer works again").parse().unwrap();
    assert!(matches!(healed, 3 | 4), "{healed}");
    assert_eq!(client.get(&app, "/count").await.body, healed.to_string());
}

/// A refresh (a read that only moves the session's expiry) while the database is down:
/// it acknowledges nothing, so the request is served from the cache and the session keeps
/// the expiry it had, instead of the refresh turning a cached read into a 500.
#[actix_web::test]
async fn a_refresh_with_the_database_down_serves_the_request() {
    use session_core::store::Faulty;

    let clock = ManualClock::starting_now();
    let (Some(cache), Some(durable)) = (
        testing::redis_store(&clock).await,
        testing::postgres_store(&clock).await,
    ) else {
        return;
    };
    let durable = Faulty::new(durable);
    let store = TieredStore::builder(cache, durable.clone())
        .clock(clock.clone())
        .repair_interval(Duration::from_secs(3600))
        .build();
    let layer = session_actix::SessionLayer::builder(store, Key::generate())
        .clock(clock.clone())
        .cookie_secure(false)
        .idle_timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    let app = common::app(layer).await;
    let mut client = Client::new();
    assert_eq!(client.post(&app, "/inc").await.body, "1");
    // Past a quarter of the idle timeout: the next read refreshes.
    clock.advance(Duration::from_secs(200));
    durable.set_down(true);
    let read = client.get(&app, "/count").await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, "1");
    // A write is refused (it would be acknowledged), opaquely.
    let write = client.post(&app, "/inc").await;
    assert_eq!(write.status, StatusCode::INTERNAL_SERVER_ERROR);
    durable.set_down(false);
    assert_eq!(client.post(&app, "/inc").await.body, "2");
}
