//! Flash messages: set in one request, read exactly once in a later one.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use actix_web::{cookie::Key, http::StatusCode};
use common::{both_stores, Client, Fixture};
use session_core::Store;

async fn read_exactly_once_with_levels<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    let mut client = Client::new();
    assert_eq!(client.post(&app, "/flash").await.body, "queued");
    assert_eq!(
        client.get(&app, "/flash").await.body,
        "success:saved|error:but mind the gap"
    );
    assert_eq!(client.get(&app, "/flash").await.body, "", "read once");
    // Another client never sees them.
    let mut other = Client::new();
    other.post(&app, "/flash").await;
    assert_eq!(client.get(&app, "/flash").await.body, "");
}

async fn disabled_flash_is_an_error<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b.integrate_flash(false))).await;
    assert_eq!(
        Client::new().get(&app, "/flash").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

both_stores!(read_exactly_once_with_levels, disabled_flash_is_an_error);
