//! Stores never see the raw token: neither Redis nor the SQL table contains it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, SystemTime};

use session_core::{store::TieredStore, ManualClock, Record, SessionToken, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_and_postgres_hold_only_the_hash() {
    let clock = ManualClock::starting_now();
    let Some(durable) = common::postgres_store(&clock).await else {
        return;
    };
    let Some(cache) = common::redis_store(&clock).await else {
        return;
    };
    let tier = TieredStore::new(cache.clone(), durable.clone());

    let token = SessionToken::generate().unwrap();
    let now = SystemTime::now();
    let mut record = Record::new(now, now + Duration::from_secs(60));
    record.insert("user", "alice").unwrap();
    assert!(tier.create(&token.hash(), &record).await.unwrap());

    // Redis: every key under this test's prefix, and every value.
    let client = redis::Client::open(common::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pattern = format!(
        "{}*",
        cache.redis_key(&token.hash()).split(':').next().unwrap()
    );
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys, [cache.redis_key(&token.hash())]);
    for key in &keys {
        assert!(!key.contains(token.as_str()));
        let value: Vec<u8> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!String::from_utf8_lossy(&value).contains(token.as_str()));
        assert!(
            String::from_utf8_lossy(&value).contains("alice"),
            "the record is there"
        );
    }

    // PostgreSQL: the whole table, as text.
    let rows: Vec<(String, Vec<u8>)> =
        sqlx::query_as(&format!("SELECT id, data FROM {}", durable.table_name()))
            .fetch_all(durable.pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, token.hash().as_str());
    for (id, data) in rows {
        assert!(!id.contains(token.as_str()));
        assert!(!String::from_utf8_lossy(&data).contains(token.as_str()));
    }
}

#[tokio::test]
async fn sqlite_holds_only_the_hash() {
    let clock = ManualClock::starting_now();
    let store = common::sqlite_store(&clock).await;
    let token = SessionToken::generate().unwrap();
    let now = SystemTime::now();
    assert!(store
        .create(
            &token.hash(),
            &Record::new(now, now + Duration::from_secs(60))
        )
        .await
        .unwrap());
    let dump: Vec<(String, Vec<u8>)> = sqlx::query_as("SELECT id, data FROM sessions")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(dump.len(), 1);
    assert_eq!(dump[0].0.len(), 64);
    assert!(!dump[0].0.contains(token.as_str()));
    assert!(!String::from_utf8_lossy(&dump[0].1).contains(token.as_str()));
}
