//! Cookie-only sessions (actix-session's CookieSessionStore) under the same layer.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use actix_web::cookie::Key;
use common::Client;
use session_actix::SessionLayer;
use session_core::ManualClock;

#[actix_web::test]
async fn binding_timeouts_and_flash_apply_to_cookie_sessions() {
    let clock = ManualClock::starting_now();
    let key = Key::generate();
    let layer = SessionLayer::cookie_only(key.clone())
        .clock(clock.clone())
        .idle_timeout(Duration::from_secs(600))
        .check_ip(true)
        .build()
        .unwrap();
    let app = common::app(layer).await;

    let mut client = Client::new();
    assert_eq!(client.post(&app, "/inc").await.body, "1");
    assert_eq!(client.post(&app, "/inc").await.body, "2");
    // The data is in the cookie, as JSON, encrypted.
    let cookie = client.cookie.clone().unwrap();
    assert!(!cookie.value().contains("count"));

    // Binding.
    let mut thief = client.clone();
    thief.peer.set_ip("192.0.2.99".parse().unwrap());
    assert_eq!(thief.get(&app, "/count").await.body, "0");

    // Flash.
    client.post(&app, "/flash").await;
    assert_eq!(
        client.get(&app, "/flash").await.body,
        "success:saved|error:but mind the gap"
    );
    assert_eq!(client.get(&app, "/flash").await.body, "");

    // Idle timeout: the cookie itself is not trusted past it.
    clock.advance(Duration::from_secs(601));
    assert_eq!(client.get(&app, "/count").await.body, "0");
}
