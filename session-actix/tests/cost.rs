//! Counted cost: what a request costs the store, asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use actix_web::cookie::Key;
use common::{both_stores, Client, Fixture};
use session_core::{store::OpCounts, Store};

async fn unchanged_session_costs_one_read_and_no_write<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| {
        b.idle_timeout(Duration::from_secs(3600))
    }))
    .await;
    let mut client = Client::new();
    client.post(&app, "/inc").await;
    client.get(&app, "/count").await; // warms the cache after the write
    (f.costs)();
    for _ in 0..5 {
        f.clock.advance(Duration::from_secs(60)); // well inside the refresh window (15 min)
        let reply = client.get(&app, "/count").await;
        assert_eq!(reply.body, "1");
        assert!(reply.set_cookie.is_none(), "no cookie re-issued");
        let (cache, durable) = (f.costs)();
        assert_eq!(
            cache,
            OpCounts {
                load: 1,
                ..OpCounts::default()
            },
            "one cache read"
        );
        assert_eq!(
            durable,
            OpCounts::default(),
            "nothing from the durable tier"
        );
    }
}

async fn refresh_writes_at_most_once_per_quarter_idle<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| {
        b.idle_timeout(Duration::from_secs(3600))
            .token_rotation(None)
    }))
    .await;
    let mut client = Client::new();
    client.post(&app, "/inc").await;
    (f.costs)();
    let mut writes = 0;
    // Two hours of requests a minute apart: the session never idles out, and its expiry
    // is extended about every 15 minutes.
    for _ in 0..120 {
        f.clock.advance(Duration::from_secs(60));
        assert_eq!(client.get(&app, "/count").await.body, "1");
        let (cache, durable) = (f.costs)();
        writes += durable.writes().max(cache.writes().min(1));
    }
    assert!(
        (7..=9).contains(&writes),
        "{writes} refresh writes in 2 h of 15 min windows"
    );
}

async fn a_save_costs_one_write_per_tier<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b.clean_check_percent(0))).await;
    let mut client = Client::new();
    client.post(&app, "/inc").await;
    (f.costs)();
    client.post(&app, "/inc").await;
    let (cache, durable) = (f.costs)();
    if durable == OpCounts::default() {
        // Single-tier store: one read, one update.
        assert_eq!(
            cache,
            OpCounts {
                load: 1,
                update: 1,
                ..OpCounts::default()
            }
        );
    } else {
        assert_eq!(
            cache,
            OpCounts {
                load: 1,
                put: 1,
                ..OpCounts::default()
            }
        );
        assert_eq!(
            durable,
            OpCounts {
                update: 1,
                ..OpCounts::default()
            }
        );
    }
}

both_stores!(
    unchanged_session_costs_one_read_and_no_write,
    refresh_writes_at_most_once_per_quarter_idle,
    a_save_costs_one_write_per_tier,
);

async fn clean_check_percent_runs_cleanup_on_writes<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let always = common::app(common::layer(&f, &key, |b| b.clean_check_percent(100))).await;
    let never = common::app(common::layer(&f, &key, |b| b.clean_check_percent(0))).await;
    (f.costs)();
    Client::new().post(&always, "/inc").await;
    let (cache, durable) = (f.costs)();
    assert_eq!(
        cache.cleanup + durable.cleanup,
        1,
        "100 %: every write cleans"
    );
    Client::new().post(&never, "/inc").await;
    let (cache, durable) = (f.costs)();
    assert_eq!(cache.cleanup + durable.cleanup, 0, "0 %: never");
}

mod cleanup {
    use super::*;
    both_stores!(clean_check_percent_runs_cleanup_on_writes);
}
