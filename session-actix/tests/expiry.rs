//! Idle and absolute timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use actix_web::cookie::Key;
use common::{both_stores, token_of, Client, Fixture};
use session_core::Store;

const IDLE: Duration = Duration::from_secs(1200);

async fn idle_timeout_slides_with_activity<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| {
        b.idle_timeout(IDLE).no_token_rotation()
    }))
    .await;
    let mut client = Client::new();
    client.post(&app, "/inc").await;
    // Active every 10 minutes for two hours: never idles out.
    for _ in 0..12 {
        f.clock.advance(IDLE / 2);
        assert_eq!(client.get(&app, "/count").await.body, "1");
    }
    // Then idle for longer than the timeout.
    f.clock.advance(IDLE + Duration::from_secs(1));
    assert_eq!(client.get(&app, "/count").await.body, "0", "idled out");
    let token = token_of(&key, client.cookie.as_ref().unwrap());
    assert_eq!(f.store.load(&token.hash()).await.unwrap(), None);
}

async fn absolute_timeout_ends_even_an_active_session<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| {
        b.idle_timeout(IDLE)
            .absolute_timeout(Duration::from_secs(3600))
            .no_token_rotation()
    }))
    .await;
    let mut client = Client::new();
    client.post(&app, "/inc").await;
    let first = token_of(&key, client.cookie.as_ref().unwrap());
    for _ in 0..5 {
        f.clock.advance(Duration::from_secs(600));
        assert_eq!(client.get(&app, "/count").await.body, "1");
    }
    f.clock.advance(Duration::from_secs(601));
    assert_eq!(
        client.get(&app, "/count").await.body,
        "0",
        "absolute limit reached"
    );
    assert_eq!(client.post(&app, "/inc").await.body, "1", "fresh session");
    assert_ne!(
        token_of(&key, client.cookie.as_ref().unwrap()),
        first,
        "new id"
    );
    assert!(
        f.store
            .load(&first.hash())
            .await
            .unwrap()
            .is_none_or(|record| record.meta.ended),
        "old one ended"
    );
}

both_stores!(
    idle_timeout_slides_with_activity,
    absolute_timeout_ends_even_an_active_session
);
