//! Periodic id rotation with a grace window, single-flight, and renew at login.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use actix_web::{cookie::Key, test::TestRequest};
use common::{both_stores, token_of, Client, Fixture};
use session_core::Store;

const EVERY: Duration = Duration::from_secs(300);
const GRACE: Duration = Duration::from_secs(10);

async fn rotates_with_grace_then_old_id_stops_working<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| {
        b.token_rotation(Some(EVERY)).rotation_grace(GRACE)
    }))
    .await;
    let mut client = Client::new();
    client.post(&app, "/inc").await;
    let old = client.cookie.clone().unwrap();
    let old_token = token_of(&key, &old);

    f.clock.advance(EVERY + Duration::from_secs(1));
    let reply = client.get(&app, "/count").await;
    assert_eq!(reply.body, "1");
    let new = reply.set_cookie.expect("rotated id issued");
    let new_token = token_of(&key, &new);
    assert_ne!(new_token, old_token);

    // Within the grace window, a request still carrying the old id (another tab, a
    // concurrent request of the page) keeps the session and is handed the new id.
    f.clock.advance(GRACE / 2);
    let mut laggard = client.clone();
    laggard.cookie = Some(old.clone());
    let reply = laggard.post(&app, "/inc").await;
    assert_eq!(reply.body, "2", "old id resolves to the same session");
    assert_eq!(token_of(&key, &reply.set_cookie.unwrap()), new_token);
    assert_eq!(
        client.get(&app, "/count").await.body,
        "2",
        "one session, not two"
    );

    // After the grace window the old id is dead.
    f.clock.advance(GRACE);
    let mut late = client.clone();
    late.cookie = Some(old);
    assert_eq!(late.get(&app, "/count").await.body, "0");
    assert_eq!(f.store.load(&old_token.hash()).await.unwrap(), None);
    assert_eq!(client.get(&app, "/count").await.body, "2");
}

async fn concurrent_rotations_converge_on_one_successor<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b.token_rotation(Some(EVERY)))).await;
    let mut client = Client::new();
    client.post(&app, "/inc").await;
    f.clock.advance(EVERY + Duration::from_secs(1));
    // Several requests of one page, all with the due id, at once.
    let requests =
        (0..6).map(|_| client.send_without_keeping(&app, TestRequest::get().uri("/count")));
    let replies = futures::future::join_all(requests).await;
    let successors: std::collections::HashSet<String> = replies
        .iter()
        .map(|r| {
            token_of(&key, r.set_cookie.as_ref().expect("new id"))
                .as_str()
                .to_owned()
        })
        .collect();
    assert_eq!(successors.len(), 1, "one successor id, not several");
    for reply in &replies {
        assert_eq!(reply.body, "1");
    }
}

async fn renew_at_login_rotates_without_grace<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    let mut client = Client::new();
    client.post(&app, "/inc").await;
    let before = client.cookie.clone().unwrap();
    client.post(&app, "/login").await;
    let after = client.cookie.clone().unwrap();
    assert_ne!(token_of(&key, &before), token_of(&key, &after));
    assert_eq!(
        client.get(&app, "/count").await.body,
        "1",
        "state kept across renew"
    );
    // The pre-login id is gone at once.
    let mut old = client.clone();
    old.cookie = Some(before.clone());
    assert_eq!(old.get(&app, "/count").await.body, "0");
    assert_eq!(
        f.store.load(&token_of(&key, &before).hash()).await.unwrap(),
        None
    );
}

async fn logout_through_a_grace_forward_ends_the_session<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b.token_rotation(Some(EVERY)))).await;
    let mut client = Client::new();
    client.post(&app, "/inc").await;
    let old = client.cookie.clone().unwrap();
    f.clock.advance(EVERY + Duration::from_secs(1));
    client.get(&app, "/count").await; // rotates
    let mut laggard = client.clone();
    laggard.cookie = Some(old);
    laggard.post(&app, "/logout").await;
    assert_eq!(
        client.get(&app, "/count").await.body,
        "0",
        "successor deleted too"
    );
}

both_stores!(
    rotates_with_grace_then_old_id_stops_working,
    concurrent_rotations_converge_on_one_successor,
    renew_at_login_rotates_without_grace,
    logout_through_a_grace_forward_ends_the_session,
);
