//! `MemoryStore` follows the clock it is given, also when that clock is not the system's.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use session_core::{clock::Clock, store::MemoryStore, Record, SessionToken, Store};

/// A clock stopped on 2020-01-01, years behind the system's.
#[derive(Debug)]
struct Stopped;

impl Clock for Stopped {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_577_836_800)
    }
}

#[tokio::test]
async fn records_live_by_the_stores_clock() {
    let store = MemoryStore::builder().clock(Stopped).build();
    let key = SessionToken::generate().unwrap().hash();
    let now = Stopped.now();
    let mut record = Record::new(now, now + Duration::from_secs(3600));
    record.insert("n", &1).unwrap();
    assert!(store.create(&key, &record).await.unwrap());

    // By the store's clock the record has an hour to live, though by the system's clock it
    // expired years ago.
    let loaded = store
        .load(&key)
        .await
        .unwrap()
        .expect("live by the store's clock");
    assert_eq!(loaded.get::<u32>("n").unwrap(), Some(1));
    assert!(store
        .touch(&key, loaded.version, now + Duration::from_secs(7200))
        .await
        .unwrap());
    assert!(store.load(&key).await.unwrap().is_some());
}
