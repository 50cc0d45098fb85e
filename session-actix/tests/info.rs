//! `SessionInfo`: how a request's session began and which tier answered its load.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use actix_web::cookie::Key;
use common::Client;
use session_core::Store;

/// `start|short id|version` as the test app's `/info` prints it.
fn parts(body: &str) -> (String, String, String) {
    let mut it = body.split('|').map(str::to_owned);
    (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
}

#[actix_web::test]
async fn a_single_tier_store_reports_itself_and_the_record_version() {
    let f = common::memory().await.unwrap();
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    let mut client = Client::new();
    assert_eq!(client.get(&app, "/info").await.body, "new||");
    client.post(&app, "/inc").await;
    let (from, short, version) = parts(&client.get(&app, "/info").await.body);
    assert_eq!(from, "Store");
    let hash = common::token_of(&key, client.cookie.as_ref().unwrap()).hash();
    assert_eq!(
        short,
        hash.as_str()[..8],
        "the start of the store key, never the id"
    );
    let v1: u64 = version.parse().unwrap();
    client.post(&app, "/inc").await;
    let (_, _, version) = parts(&client.get(&app, "/info").await.body);
    assert!(
        version.parse::<u64>().unwrap() > v1,
        "every write moves the version"
    );
}

#[actix_web::test]
async fn a_tiered_store_says_whether_the_cache_answered() {
    let Some(f) = common::tiered().await else {
        return;
    };
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    let mut client = Client::new();
    client.post(&app, "/inc").await;
    assert_eq!(
        parts(&client.get(&app, "/info").await.body).0,
        "Cache",
        "written through"
    );

    let hash = common::token_of(&key, client.cookie.as_ref().unwrap()).hash();
    f.store.cache().inner().delete(&hash).await.unwrap();
    assert_eq!(
        parts(&client.get(&app, "/info").await.body).0,
        "Refilled",
        "a miss reads PostgreSQL and refills Redis"
    );
    assert_eq!(parts(&client.get(&app, "/info").await.body).0, "Cache");
}
