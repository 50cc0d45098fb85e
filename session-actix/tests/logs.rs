//! Session ids never appear in logs, whatever happens to the session.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use actix_web::cookie::Key;
use common::{forge_cookie, token_of, Captured, Client};
use session_actix::SessionLayer;
use session_core::{
    store::{Faulty, MemoryStore},
    ManualClock, SessionToken,
};

#[actix_web::test]
async fn no_session_id_in_any_log_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let clock = ManualClock::starting_now();
    let store = Faulty::new(MemoryStore::builder().clock(clock.clone()).build());
    let key = Key::generate();
    let layer = SessionLayer::builder(store.clone(), key.clone())
        .clock(clock.clone())
        .check_ip(true)
        .token_rotation(Duration::from_secs(60))
        .build()
        .unwrap();
    let app = common::app(layer).await;

    let mut tokens = Vec::new();
    let mut client = Client::new();
    client.post(&app, "/inc").await;
    tokens.push(token_of(&key, client.cookie.as_ref().unwrap()));
    // Rotation, and a grace forward.
    let old = client.cookie.clone().unwrap();
    clock.advance(Duration::from_secs(61));
    client.get(&app, "/count").await;
    tokens.push(token_of(&key, client.cookie.as_ref().unwrap()));
    let mut laggard = client.clone();
    laggard.cookie = Some(old);
    laggard.get(&app, "/count").await;
    // Binding mismatch.
    let mut thief = client.clone();
    thief.peer.set_ip("192.0.2.1".parse().unwrap());
    thief.post(&app, "/inc").await;
    tokens.push(token_of(&key, thief.cookie.as_ref().unwrap()));
    // A planted id, garbage, and a corrupt record.
    let planted = SessionToken::generate().unwrap();
    let mut planter = Client::new();
    planter.cookie = Some(forge_cookie(&key, planted.as_str()));
    planter.get(&app, "/count").await;
    tokens.push(planted);
    store.inner().insert_raw(
        &tokens[1].hash(),
        b"garbage",
        session_core::Clock::now(&clock) + Duration::from_secs(60),
    );
    client.get(&app, "/count").await;
    // The store down.
    store.set_down(true);
    client.get(&app, "/count").await;
    store.set_down(false);
    // Logout.
    client.post(&app, "/logout").await;

    let logs = captured.text();
    assert!(logs.contains("binding"), "the flow was logged: {logs}");
    assert!(logs.contains("corrupt"), "the flow was logged: {logs}");
    let hash = tokens[0].hash();
    let short = &hash.as_str()[..8];
    assert!(
        logs.contains(&format!("session{{session={short}}}")),
        "events carry the request's span with the session's short hash: {logs}"
    );
    for token in &tokens {
        assert!(
            !logs.contains(token.as_str()),
            "a session id leaked into the logs:\n{logs}"
        );
    }
}
