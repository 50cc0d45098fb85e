//! `clean_check_percent` (cleanup on a share of writes) and the background cleanup task.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::{sync::Arc, time::Duration};

use session_core::{
    store::{spawn_cleanup, CleanupPolicy, Counted, SqliteStore},
    Clock, ManualClock, Record, SessionToken, Store,
};

async fn row_count(store: &SqliteStore) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Inserts `n` records that expire in a minute, in one transaction.
async fn fill(store: &SqliteStore, clock: &ManualClock, n: usize) {
    let now = clock.now();
    let record = Record::new(now, now + Duration::from_secs(60));
    for _ in 0..n {
        assert!(store
            .create(&SessionToken::generate().unwrap().hash(), &record)
            .await
            .unwrap());
    }
}

#[tokio::test]
async fn policy_cleans_a_bounded_batch_on_writes() {
    let clock = ManualClock::starting_now();
    let store = common::sqlite_store(&clock).await;
    fill(&store, &clock, 25).await;
    clock.advance(Duration::from_secs(120));
    let counted = Counted::new(store.clone());

    assert_eq!(CleanupPolicy::disabled().after_write(&counted).await, None);
    assert_eq!(counted.counts().cleanup, 0, "0% never cleans");

    let always = CleanupPolicy::new(100, 10);
    assert_eq!(always.after_write(&counted).await, Some(10));
    assert_eq!(row_count(&store).await, 15, "bounded by the batch");
    assert_eq!(always.after_write(&counted).await, Some(10));
    assert_eq!(always.after_write(&counted).await, Some(5));
    assert_eq!(row_count(&store).await, 0);
}

#[tokio::test]
async fn policy_runs_on_about_its_share_of_writes() {
    let clock = ManualClock::starting_now();
    let counted = Counted::new(common::sqlite_store(&clock).await);
    let policy = CleanupPolicy::new(20, 10);
    for _ in 0..1000 {
        policy.after_write(&counted).await;
    }
    // Binomial(1000, 0.2): mean 200, sd 12.6.
    let runs = counted.counts().cleanup;
    assert!((120..280).contains(&runs), "{runs}");
}

#[tokio::test]
async fn background_task_drains_a_backlog_in_batches_and_keeps_live_rows() {
    let clock = ManualClock::starting_now();
    let store = common::sqlite_store(&clock).await;
    fill(&store, &clock, 250).await;
    clock.advance(Duration::from_secs(120));
    let live = SessionToken::generate().unwrap().hash();
    let now = clock.now();
    assert!(store
        .create(&live, &Record::new(now, now + Duration::from_secs(600)))
        .await
        .unwrap());

    let counted = Arc::new(Counted::new(store.clone()));
    let task = spawn_cleanup(Arc::clone(&counted), Duration::from_millis(20), 100);
    for _ in 0..200 {
        if row_count(&store).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.stop();
    assert_eq!(row_count(&store).await, 1);
    assert!(store.load(&live).await.unwrap().is_some());
    assert!(counted.counts().cleanup >= 3, "250 rows in batches of 100");
}
