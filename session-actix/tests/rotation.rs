//! Periodic id rotation with a grace window, single-flight, and renew at login.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use actix_web::{cookie::Key, test::TestRequest};
use common::{both_stores, token_of, Client, Fixture};
use session_core::{
    store::{Held, HoldAt},
    Store,
};

const EVERY: Duration = Duration::from_secs(300);
const GRACE: Duration = Duration::from_secs(10);

async fn rotates_with_grace_then_old_id_stops_working<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| {
        b.token_rotation(EVERY).rotation_grace(GRACE)
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
    // What remains under it is a marker without data, kept to recognise a replay.
    let marker = f.store.load(&old_token.hash()).await.unwrap().unwrap();
    assert!(marker.state.is_empty() && marker.meta.successor().is_some());
    assert_eq!(client.get(&app, "/count").await.body, "2");
}

async fn concurrent_rotations_converge_on_one_successor<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b.token_rotation(EVERY))).await;
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
    assert!(common::ended(&f.store, &token_of(&key, &before).hash()).await);
}

async fn logout_through_a_grace_forward_ends_the_session<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b.token_rotation(EVERY))).await;
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

/// A thief with a rotated-away cookie, inside its grace window, from another browser: the
/// session is refused, and the response must not hand out the owner's current id (the
/// grace forward's successor) — only remove the cookie.
async fn a_refused_forward_never_reveals_the_successor<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| {
        b.token_rotation(EVERY).rotation_grace(GRACE)
    }))
    .await;
    let mut owner = Client::new();
    owner.post(&app, "/inc").await;
    let stolen = owner.cookie.clone().unwrap();
    f.clock.advance(EVERY + Duration::from_secs(1));
    let current = token_of(&key, &owner.get(&app, "/count").await.set_cookie.unwrap());

    let mut thief = Client::new();
    thief.user_agent = "curl/8.0".into();
    thief.cookie = Some(stolen);
    for path in ["/count", "/public"] {
        let reply = thief.clone().get(&app, path).await;
        assert_eq!(reply.status.as_u16(), 200);
        if let Some(cookie) = &reply.set_cookie {
            assert_eq!(cookie.value(), "", "{path}: only a removal, never an id");
        }
    }
    // Even a thief whose request stores something gets a fresh session of its own.
    let reply = thief.clone().post(&app, "/inc").await;
    assert_eq!(reply.body, "1");
    let fresh = token_of(&key, &reply.set_cookie.unwrap());
    assert_ne!(fresh, current);
    assert_eq!(
        owner.get(&app, "/count").await.body,
        "1",
        "the owner keeps theirs"
    );
}

both_stores!(
    rotates_with_grace_then_old_id_stops_working,
    concurrent_rotations_converge_on_one_successor,
    renew_at_login_rotates_without_grace,
    logout_through_a_grace_forward_ends_the_session,
    a_refused_forward_never_reveals_the_successor,
);

/// The test app over `f`'s store wrapped in a [`Held`], with rotation due: a session with
/// count = 1 whose id is older than the rotation period.
async fn held_app<S: Store + Clone>(
    f: &Fixture<S>,
    key: &Key,
) -> (
    Held<S>,
    impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
    Client,
) {
    let held = Held::new(f.store.clone());
    let layer = session_actix::SessionLayer::builder(held.clone(), key.clone())
        .clock(f.clock.clone())
        .token_rotation(EVERY)
        .rotation_grace(GRACE)
        .build()
        .unwrap();
    let app = common::app(layer).await;
    let mut client = Client::new();
    assert_eq!(client.post(&app, "/inc").await.body, "1");
    f.clock.advance(EVERY + Duration::from_secs(1));
    (held, app, client)
}

/// A logout that loaded the session before another request rotated its id ends the
/// session the client now holds as well (the whole family), and no request in flight
/// across the rotation and the logout brings it back.
async fn a_logout_racing_a_rotation_ends_the_successor_too<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let (held, app, mut client) = held_app(&f, &key).await;

    // The logout loads the session (old id T0) and is held there...
    let logout_tab = client.clone();
    held.arm(HoldAt::AfterLoad);
    let logout = logout_tab.send_without_keeping(&app, TestRequest::post().uri("/logout"));
    let mut logout = std::pin::pin!(logout);
    tokio::select! {
        _ = &mut logout => panic!("the logout should be held at its load"),
        () = held.reached() => {}
    }
    // ...while another request of the page rotates T0 to T1 and hands the client T1...
    let reply = client.get(&app, "/count").await;
    assert_eq!(reply.body, "1");
    let successor = reply.set_cookie.expect("rotated");
    assert_ne!(
        token_of(&key, &successor),
        token_of(&key, logout_tab.cookie.as_ref().unwrap())
    );
    // ...then the logout finishes.
    held.release();
    assert_eq!(logout.await.body, "bye");
    // The client's new id is logged out too.
    assert_eq!(
        client.get(&app, "/count").await.body,
        "0",
        "the successor survived the logout"
    );
    assert!(common::ended(&f.store, &token_of(&key, &successor).hash()).await);
}

/// A slow request that loaded the session before a rotation and a logout does not bring
/// the session back when it finishes (it must not re-create the deleted successor).
async fn a_slow_request_across_a_rotation_and_a_logout_does_not_revive_it<S: Store + Clone>(
    f: Fixture<S>,
) {
    let key = Key::generate();
    let (held, app, mut client) = held_app(&f, &key).await;

    // A slow read-only request loads the session with T0, rotation due, and is held...
    let slow_tab = client.clone();
    held.arm(HoldAt::AfterLoad);
    let slow = slow_tab.send_without_keeping(&app, TestRequest::get().uri("/count"));
    let mut slow = std::pin::pin!(slow);
    tokio::select! {
        _ = &mut slow => panic!("the slow request should be held at its load"),
        () = held.reached() => {}
    }
    // ...another request rotates T0 to T1, and the user logs out with T1...
    let rotated = client
        .get(&app, "/count")
        .await
        .set_cookie
        .expect("rotated");
    let successor = token_of(&key, &rotated).hash();
    assert_eq!(client.post(&app, "/logout").await.body, "bye");
    assert!(common::ended(&f.store, &successor).await, "logged out");
    // ...then the slow request goes on, and is held again before its next write: the
    // ended successor holds nothing even then, not even for an instant (the logout's
    // marker keeps the rotation from creating it again).
    held.release();
    held.arm(HoldAt::BeforeUpdate);
    tokio::select! {
        _ = &mut slow => panic!("the slow request writes once more (its rotation claim or a save)"),
        () = held.reached() => {}
    }
    assert!(
        common::ended(&f.store, &successor).await,
        "the successor was re-created with the pre-logout state"
    );
    held.release();
    let reply = slow.await;
    assert_eq!(reply.body, "1", "it read the state it loaded");
    assert!(
        common::ended(&f.store, &successor).await,
        "the deleted successor was not re-created"
    );
    // Whatever cookie it handed out opens no session.
    if let Some(cookie) = reply.set_cookie {
        let mut after = client.clone();
        after.cookie = Some(cookie);
        assert_eq!(after.get(&app, "/count").await.body, "0", "logged in again");
    }
    assert_eq!(client.get(&app, "/count").await.body, "0");
}

mod family {
    use super::*;
    both_stores!(
        a_logout_racing_a_rotation_ends_the_successor_too,
        a_slow_request_across_a_rotation_and_a_logout_does_not_revive_it
    );
}
