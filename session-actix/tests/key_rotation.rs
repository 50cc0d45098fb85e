//! Cookie key rotation: a current key and previous ones. Cookies of a previous key are
//! accepted and moved to the current key at once; removing a key ends only the sessions
//! that still used it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use actix_web::cookie::Key;
use common::{both_stores, token_of, Client, Fixture};
use session_actix::{CookieCodec, CookieContentSecurity, SessionLayer};
use session_core::{ManualClock, Store};

fn opens_with(key: &Key, value: &str) -> bool {
    CookieCodec::server_side(key, "session", CookieContentSecurity::Private)
        .open_id(value)
        .is_some()
}

async fn an_old_key_cookie_moves_to_the_new_key<S: Store + Clone>(f: Fixture<S>) {
    let (old, new) = (Key::generate(), Key::generate());
    let before = common::app(common::layer(&f, &old, |b| b)).await;
    let mut moved = Client::new();
    moved.post(&before, "/inc").await;
    let mut idle = Client::new();
    idle.post(&before, "/inc").await;
    idle.post(&before, "/inc").await;
    let old_cookie = moved.cookie.clone().unwrap();

    // Step 1: the new key is current, the old one previous.
    let during = common::app(common::layer(&f, &new, |b| b.previous_keys([old.clone()]))).await;
    let reply = moved.get(&during, "/count").await;
    assert_eq!(reply.body, "1", "accepted");
    let cookie = reply.set_cookie.expect("re-issued");
    assert!(opens_with(&new, cookie.value()), "under the new key");
    assert!(!opens_with(&old, cookie.value()), "and only under it");
    assert_ne!(
        token_of(&new, &cookie),
        token_of(&old, &old_cookie),
        "a fresh id"
    );
    let reply = moved.get(&during, "/count").await;
    assert_eq!(reply.body, "1");
    assert!(
        reply.set_cookie.is_none(),
        "moved once; then as any session"
    );
    assert_eq!(moved.post(&during, "/inc").await.body, "2");
    // The old cookie is a rotated-away id now: it leads nowhere after the grace window.
    f.clock.advance(Duration::from_secs(60));

    // Step 3: the old key is removed. The moved session lives on (its binding moved too);
    // the one idle since step 1 starts afresh.
    let after = common::app(common::layer(&f, &new, |b| b)).await;
    assert_eq!(moved.get(&after, "/count").await.body, "2");
    assert_eq!(idle.get(&after, "/count").await.body, "0");
    let mut replay = moved.clone();
    replay.cookie = Some(old_cookie);
    assert_eq!(replay.get(&after, "/count").await.body, "0");
}

/// A logout through an old-key id in its grace window, on the new layer, ends the
/// successor an old-key rotation gave it: forwards are followed, and families ended,
/// under every key.
async fn a_logout_ends_families_of_previous_keys<S: Store + Clone>(f: Fixture<S>) {
    let (old, new) = (Key::generate(), Key::generate());
    let every = Duration::from_secs(300);
    let before = common::app(common::layer(&f, &old, |b| b.token_rotation(every))).await;
    let mut client = Client::new();
    client.post(&before, "/inc").await;
    let mut other_tab = client.clone();
    f.clock.advance(every + Duration::from_secs(1));
    let rotated = client
        .get(&before, "/count")
        .await
        .set_cookie
        .expect("rotated");
    let successor = token_of(&old, &rotated);

    let during = common::app(common::layer(&f, &new, |b| {
        b.token_rotation(every).previous_keys([old.clone()])
    }))
    .await;
    // The other tab still holds the first id: it logs out.
    assert_eq!(other_tab.post(&during, "/logout").await.body, "bye");
    assert!(
        common::ended(&f.store, &successor.hash()).await,
        "the old-key successor is ended"
    );
    assert_eq!(
        client.get(&during, "/count").await.body,
        "0",
        "logged out everywhere"
    );
}

/// A chain that mixes keys (an old-key rotation t0 → t1, then the new-key layer moves t1
/// → t2): a logout through t0 ends t2, the session the client holds.
async fn a_logout_ends_a_chain_that_mixes_keys<S: Store + Clone>(f: Fixture<S>) {
    let (old, new) = (Key::generate(), Key::generate());
    let every = Duration::from_secs(300);
    let before = common::app(common::layer(&f, &old, |b| b.token_rotation(every))).await;
    let mut client = Client::new();
    client.post(&before, "/inc").await;
    let mut first_tab = client.clone();
    f.clock.advance(every + Duration::from_secs(1));
    client.get(&before, "/count").await; // t0 -> t1, under the old key

    let during = common::app(common::layer(&f, &new, |b| {
        b.token_rotation(every).previous_keys([old.clone()])
    }))
    .await;
    let moved = client.get(&during, "/count").await; // t1 -> t2, under the new key
    let t2 = token_of(&new, &moved.set_cookie.expect("moved to the new key"));
    assert_eq!(first_tab.post(&during, "/logout").await.body, "bye");
    assert!(common::ended(&f.store, &t2.hash()).await, "t2 ended");
    assert_eq!(client.get(&during, "/count").await.body, "0");
}

both_stores!(
    an_old_key_cookie_moves_to_the_new_key,
    a_logout_ends_families_of_previous_keys,
    a_logout_ends_a_chain_that_mixes_keys
);

#[actix_web::test]
async fn cookie_only_sessions_move_to_the_new_key() {
    let clock = ManualClock::starting_now();
    let (old, new) = (Key::generate(), Key::generate());
    let layer = |current: &Key, previous: Vec<Key>| {
        SessionLayer::cookie_only(current.clone())
            .clock(clock.clone())
            .previous_keys(previous)
            .build()
            .unwrap()
    };
    let before = common::app(layer(&old, vec![])).await;
    let mut client = Client::new();
    client.post(&before, "/inc").await;
    let old_cookie = client.cookie.clone().unwrap();

    let during = common::app(layer(&new, vec![old.clone()])).await;
    let reply = client.get(&during, "/count").await;
    assert_eq!(reply.body, "1");
    let cookie = reply.set_cookie.expect("re-sealed under the new key");
    let data = |key: &Key, value: &str| {
        CookieCodec::cookie_only(key, "session", CookieContentSecurity::Private)
            .open(value)
            .is_some()
    };
    assert!(data(&new, cookie.value()) && !data(&old, cookie.value()));

    let after = common::app(layer(&new, vec![])).await;
    assert_eq!(
        client.get(&after, "/count").await.body,
        "1",
        "moved, so kept"
    );
    let mut replay = client.clone();
    replay.cookie = Some(old_cookie);
    assert_eq!(replay.get(&after, "/count").await.body, "0");
}
