//! WriteQueue: parallel saves of one session in one process take turns instead of
//! conflicting, and a write by another process is still caught by the version.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::{sync::Arc, time::Duration};

use serde_json::value::to_raw_value;
use session_core::{
    store::{Applied, Counted, Held, HoldAt, WriteQueue},
    Changes, Clock, ManualClock, Record, SessionToken, Store, StoreError,
};

/// One request's change: `key` set to `value`.
fn set(key: &str, value: impl serde::Serialize) -> Changes {
    let mut changes = Changes::new();
    changes.set(key, to_raw_value(&value).unwrap());
    changes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_saves_of_one_session_are_combined_not_conflicting() {
    let clock = ManualClock::starting_now();
    let store = Arc::new(Counted::new(common::sqlite_store(&clock).await));
    let queue = Arc::new(WriteQueue::default());
    let key = SessionToken::generate().unwrap().hash();
    let now = clock.now();
    let base = Record::new(now, now + Duration::from_secs(600));
    assert!(store.create(&key, &base).await.unwrap());
    store.take_counts();
    // 32 requests that all loaded version 1.
    let writers = (0..32).map(|i| {
        let (store, queue, key, base) = (
            Arc::clone(&store),
            Arc::clone(&queue),
            key.clone(),
            base.clone(),
        );
        tokio::spawn(async move {
            let expires = base.expires_at;
            queue
                .apply_changes(&*store, &key, base, set(&format!("k{i}"), i), expires)
                .await
                .unwrap()
        })
    });
    for writer in futures::future::join_all(writers).await {
        assert!(matches!(writer.unwrap(), Applied::Written { .. }));
    }
    let counts = store.take_counts();
    // Saves that queued up behind a write go out together in the next one: at most one
    // statement per save, never a failed one, never a reload.
    assert!((1..=32).contains(&counts.update), "{counts:?}");
    assert_eq!(counts.load, 0, "no conflict, no reload: {counts:?}");
    let last = store.load(&key).await.unwrap().unwrap();
    assert_eq!(last.version, 1 + counts.update, "every write succeeded");
    assert_eq!(last.state.len(), 32, "every change survived");
}

#[tokio::test]
async fn a_write_from_another_process_is_still_caught() {
    let clock = ManualClock::starting_now();
    let store = common::sqlite_store(&clock).await;
    let queue = WriteQueue::default();
    let key = SessionToken::generate().unwrap().hash();
    let now = clock.now();
    let base = Record::new(now, now + Duration::from_secs(600));
    assert!(store.create(&key, &base).await.unwrap());
    let expires = base.expires_at;
    queue
        .apply_changes(&store, &key, base.clone(), set("here", 1), expires)
        .await
        .unwrap();
    // Another process writes version 3 behind this queue's back.
    let mut other = store.load(&key).await.unwrap().unwrap().next_version();
    other.insert("there", &1).unwrap();
    assert!(store.update(&key, 2, &other).await.unwrap());
    // The queue's remembered version 2 is stale: the store refuses it, the retry merges.
    queue
        .apply_changes(&store, &key, base, set("again", 1), expires)
        .await
        .unwrap();
    let last = store.load(&key).await.unwrap().unwrap();
    assert_eq!(last.version, 4);
    for k in ["here", "there", "again"] {
        assert_eq!(last.get::<u32>(k).unwrap(), Some(1), "{k}");
    }
}

/// A request that is cancelled right after being handed the lane does not leave the lane
/// stuck: the next waiting request still gets written.
#[tokio::test]
async fn a_cancelled_waiter_does_not_block_the_lane() {
    let store = Held::new(session_core::store::MemoryStore::new());
    let queue = WriteQueue::new(1); // every session in one lane
    let key = SessionToken::generate().unwrap().hash();
    let now = std::time::SystemTime::now();
    let base = Record::new(now, now + Duration::from_secs(600));
    assert!(store.create(&key, &base).await.unwrap());
    let expires = base.expires_at;
    store.arm(HoldAt::BeforeUpdate);
    let mut a =
        std::pin::pin!(queue.apply_changes(&store, &key, base.clone(), set("a", 1), expires));
    tokio::select! {
        _ = &mut a => panic!("a should be held in its write"),
        () = store.reached() => {}
    }
    // b and c queue up behind a (polled once each, so they are waiting).
    let mut b = Box::pin(queue.apply_changes(&store, &key, base.clone(), set("b", 1), expires));
    let mut c =
        std::pin::pin!(queue.apply_changes(&store, &key, base.clone(), set("c", 1), expires));
    assert!(futures::poll!(&mut b).is_pending());
    assert!(futures::poll!(&mut c).is_pending());
    store.release();
    a.await.unwrap(); // hands the lane to b...
    drop(b); // ...which is cancelled before it ever runs
    let written = tokio::time::timeout(Duration::from_secs(5), c)
        .await
        .expect("the lane was left stuck")
        .unwrap();
    assert!(matches!(written, Applied::Written { .. }));
    let last = store.load(&key).await.unwrap().unwrap();
    assert_eq!(last.get::<u32>("c").unwrap(), Some(1));
    assert_eq!(
        last.get::<u32>("b").unwrap(),
        None,
        "the cancelled save is not written"
    );
}

/// The size limit holds for what is stored: changes that each fit, landing on a record
/// that another save made larger, are refused and write nothing.
#[tokio::test]
async fn the_size_limit_holds_for_the_merged_record() {
    let clock = ManualClock::starting_now();
    let store = common::sqlite_store(&clock).await;
    let queue = WriteQueue::default().max_record_bytes(32 * 1024);
    let key = SessionToken::generate().unwrap().hash();
    let now = clock.now();
    let base = Record::new(now, now + Duration::from_secs(600));
    assert!(store.create(&key, &base).await.unwrap());
    let big = |k: &str| set(k, "x".repeat(20 * 1024));
    let expires = base.expires_at;
    // Two requests that both loaded the small record: each fits alone.
    queue
        .apply_changes(&store, &key, base.clone(), big("a"), expires)
        .await
        .unwrap();
    let err = queue
        .apply_changes(&store, &key, base, big("b"), expires)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    let stored = store.load(&key).await.unwrap().unwrap();
    assert!(
        stored.get::<String>("b").unwrap().is_none(),
        "nothing written"
    );
    assert!(session_core::store::state_bytes(&stored) <= 32 * 1024);
}
