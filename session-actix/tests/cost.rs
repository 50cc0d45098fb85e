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
            .no_token_rotation()
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

/// Forged, random and tampered cookies never reach a store: a flood of them costs no store
/// call on either tier (so no SQL statement), and each gets an empty session.
async fn forged_cookies_cost_no_store_call<S: Store + Clone>(f: Fixture<S>) {
    use base64::Engine as _;
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    let mut owner = Client::new();
    owner.post(&app, "/inc").await;
    let genuine = owner.cookie.clone().unwrap();
    (f.costs)();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut values = Vec::new();
    for i in 0u8..100 {
        // Random bytes of a genuine cookie's length, with and without the version digit.
        let random: Vec<u8> = (0u8..71)
            .map(|j| i.wrapping_mul(31).wrapping_add(j.wrapping_mul(7)))
            .collect();
        values.push(b64.encode(&random));
        values.push(format!("1{}", b64.encode(&random)));
        // The genuine value with one character replaced by another (differs by construction).
        let mut bytes = genuine.value().as_bytes().to_vec();
        let at = usize::from(i) % bytes.len();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        values.push(String::from_utf8(bytes).unwrap());
    }
    // Well-formed ids, unsealed: the genuine one and random ones.
    values.push(common::token_of(&key, &genuine).as_str().to_owned());
    for _ in 0..20 {
        values.push(
            session_core::SessionToken::generate()
                .unwrap()
                .as_str()
                .to_owned(),
        );
    }
    // A cookie sealed under another key holding the genuine id.
    values.push(
        common::forge_cookie(&Key::generate(), common::token_of(&key, &genuine).as_str())
            .value()
            .to_owned(),
    );
    for value in values {
        assert_ne!(value, genuine.value());
        let mut client = Client::new();
        client.cookie = Some(actix_web::cookie::Cookie::new("session", value));
        assert_eq!(client.get(&app, "/count").await.body, "0");
    }
    let (cache, durable) = (f.costs)();
    assert_eq!(cache, OpCounts::default(), "no cache call");
    assert_eq!(durable, OpCounts::default(), "no durable call, no SQL");
    // The genuine cookie still works, through the store.
    assert_eq!(owner.get(&app, "/count").await.body, "1");
    assert_eq!((f.costs)().0.load, 1);
}

mod forged {
    use super::*;
    both_stores!(forged_cookies_cost_no_store_call);
}
