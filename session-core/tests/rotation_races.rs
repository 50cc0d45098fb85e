//! A refresh that loaded a session before another request rotated it: the refresh must
//! not hand the client its old id again (after the grace window that id is a replay,
//! and under `TheftResponse::Revoke` it would end the session of its rightful owner).
//! Real concurrency (a multi-threaded runtime) over every store, the refresh held
//! between its load and its touch while the rotation completes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::{sync::Arc, time::Duration};

use serde_json::value::to_raw_value;
use session_core::{
    lifecycle::{
        users::UserKey, CookieAction, Finish, Outcome, Plan, RotationKey, Sessions, SessionsConfig,
        TheftResponse,
    },
    store::{CleanupPolicy, Held, HoldAt, MemoryStore, TieredStore},
    testing, Changes, Clock, ManualClock, SessionToken, Store,
};

const ROTATION_SECRET: [u8; 32] = [9; 32];
const GRACE: Duration = Duration::from_secs(5);

fn sessions_over<S: Store>(store: S) -> Arc<Sessions<S>> {
    Arc::new(Sessions::new(
        Arc::new(store),
        SessionsConfig {
            rotation: RotationKey::new(&ROTATION_SECRET),
            users: UserKey::standard(),
            previous_rotations: Vec::new(),
            rotates: true,
            grace: GRACE,
            absolute_timeout: None,
            max_user_sessions: 50,
            idle_timeout: Duration::from_secs(600),
            cleanup: CleanupPolicy::new(0, 100),
            max_record_bytes: 64 * 1024,
            theft: TheftResponse::Revoke,
        },
    ))
}

fn plan(finish: Finish) -> Plan {
    Plan {
        finish,
        end_old: false,
        cookie: CookieAction::Set,
    }
}

fn live_token(outcome: Option<Outcome>) -> SessionToken {
    match outcome {
        Some(Outcome::Live(token, _)) => token,
        other => panic!("the session did not live: {other:?}"),
    }
}

async fn refresh_racing_a_rotation<S: Store + Clone>(store: S, clock: ManualClock) {
    let held = Held::new(store);
    let sessions = sessions_over(held.clone());
    let mut changes = Changes::new();
    changes.set("count", to_raw_value(&1).unwrap());
    let old = live_token(
        sessions
            .carry_out(&plan(Finish::Create), None, changes, None, clock.now())
            .await
            .unwrap(),
    );
    let successor = RotationKey::new(&ROTATION_SECRET).successor(&old).unwrap();

    // The refresh loads the session and is held before it returns...
    held.arm(HoldAt::AfterLoad);
    let refresh = tokio::spawn({
        let (sessions, old, now) = (Arc::clone(&sessions), old.clone(), clock.now());
        async move {
            let loaded = sessions.load(old, now).await.unwrap().unwrap();
            sessions
                .carry_out(
                    &plan(Finish::Touch),
                    Some(loaded),
                    Changes::new(),
                    None,
                    now,
                )
                .await
                .unwrap()
        }
    });
    tokio::time::timeout(Duration::from_secs(10), held.reached())
        .await
        .expect("the refresh reached its load");

    // ...while another request of the same page rotates it.
    let loaded = sessions
        .load(old.clone(), clock.now())
        .await
        .unwrap()
        .unwrap();
    let rotated = live_token(
        sessions
            .carry_out(
                &plan(Finish::Rotate),
                Some(loaded),
                Changes::new(),
                None,
                clock.now(),
            )
            .await
            .unwrap(),
    );
    assert_eq!(rotated.hash(), successor.hash());

    held.release();
    let refreshed = live_token(
        tokio::time::timeout(Duration::from_secs(10), refresh)
            .await
            .expect("the refresh finished")
            .unwrap(),
    );
    assert_eq!(
        refreshed.hash(),
        successor.hash(),
        "the refresh hands out the successor, never the rotated-away id"
    );

    // Past the grace window the client, holding what the refresh gave it, still gets in
    // (no replay, no revocation), and the old id forwards nowhere.
    clock.advance(GRACE + Duration::from_secs(1));
    let again = sessions
        .load(refreshed, clock.now())
        .await
        .unwrap()
        .expect("the client's id still opens its session");
    assert_eq!(again.record.get::<u32>("count").unwrap(), Some(1));
    assert!(sessions.load(old, clock.now()).await.unwrap().is_none());
}

async fn memory() -> Option<(MemoryStore, ManualClock)> {
    let clock = ManualClock::starting_now();
    Some((MemoryStore::builder().clock(clock.clone()).build(), clock))
}

async fn redis() -> Option<(session_core::store::RedisStore, ManualClock)> {
    let clock = ManualClock::starting_now();
    Some((testing::redis_store(&clock).await?, clock))
}

async fn postgres() -> Option<(session_core::store::PostgresStore, ManualClock)> {
    let clock = ManualClock::starting_now();
    Some((testing::postgres_store(&clock).await?, clock))
}

async fn sqlite() -> Option<(session_core::store::SqliteStore, ManualClock)> {
    let clock = ManualClock::starting_now();
    Some((common::sqlite_store(&clock).await, clock))
}

type Tiered = TieredStore<session_core::store::RedisStore, session_core::store::PostgresStore>;

async fn tiered() -> Option<(Tiered, ManualClock)> {
    let clock = ManualClock::starting_now();
    let cache = testing::redis_store(&clock).await?;
    let durable = testing::postgres_store(&clock).await?;
    let store = TieredStore::builder(cache, durable)
        .clock(clock.clone())
        .repair_interval(Duration::from_secs(3600))
        .build();
    Some((store, clock))
}

macro_rules! races {
    ($($name:ident: $fixture:ident),*) => {$(
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_refresh_racing_a_rotation_keeps_the_successor() {
                let Some((store, clock)) = $fixture().await else { return };
                refresh_racing_a_rotation(store, clock).await;
            }
        }
    )*};
}

races!(
    memory_store: memory,
    redis_store: redis,
    postgres_store: postgres,
    sqlite_store: sqlite,
    tiered_redis_postgres: tiered
);
