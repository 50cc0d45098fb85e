//! Sessions of a user across app instances and cache faults: the index lives in the data,
//! so a second instance (its own stores, its own memory) sees and ends what the first
//! signed in, and a Redis restored from an old snapshot, holding an old index and a
//! session since ended, lists and serves nothing that ended. Real Redis and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::{sync::Arc, time::Duration};

use common::private_redis::PrivateRedis;
use serde_json::value::to_raw_value;
use session_core::{
    lifecycle::{
        users::{Principal, USER_KEY},
        CookieAction, Finish, Outcome, Plan, Sessions,
    },
    store::{CacheState, PostgresStore, RedisStore, TieredStore},
    Changes, Clock, ManualClock, SessionToken,
};

type Tier = TieredStore<RedisStore, PostgresStore>;

/// One app instance: its own tiered store (its own breaker and repair state) over the
/// shared servers, and its own `Sessions`.
fn instance(redis_url: &str, durable: PostgresStore) -> Sessions<Tier> {
    let cache = RedisStore::builder(redis_url)
        .response_timeout(Duration::from_millis(300))
        .connection_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let store = TieredStore::builder(cache, durable)
        .retry_after(Duration::from_millis(50))
        .max_retry_after(Duration::from_millis(200))
        .repair_interval(Duration::from_millis(200))
        .build();
    Sessions::new(Arc::new(store), common::sessions_config(&[9; 32]))
}

/// Signs `user` in on a new session through `sessions`: its id and entry id.
async fn sign_in(
    sessions: &Sessions<Tier>,
    user: &str,
    clock: &ManualClock,
) -> (SessionToken, String) {
    let principal = Principal::attach(user, Some("curl/8")).unwrap();
    let mut changes = Changes::new();
    changes.set(USER_KEY, to_raw_value(&principal).unwrap());
    let plan = Plan {
        finish: Finish::Create,
        end_old: false,
        cookie: CookieAction::Set,
    };
    match sessions
        .carry_out(&plan, None, changes, None, clock.now())
        .await
        .unwrap()
    {
        Some(Outcome::Live(token, _)) => (token, principal.entry),
        other => panic!("not signed in: {other:?}"),
    }
}

async fn loads(sessions: &Sessions<Tier>, token: &SessionToken, clock: &ManualClock) -> bool {
    sessions
        .load(token.clone(), clock.now())
        .await
        .unwrap()
        .is_some()
}

async fn listed(sessions: &Sessions<Tier>, user: &str, clock: &ManualClock) -> Vec<String> {
    let mut ids: Vec<String> = sessions
        .user_sessions(user, None, clock.now())
        .await
        .unwrap()
        .into_iter()
        .map(|session| session.id)
        .collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn user() -> String {
    format!(
        "multi-{}",
        SessionToken::generate().unwrap().hash().as_str()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_index() {
    let clock = ManualClock::starting_now();
    let Some(first) = common::postgres_store(&clock).await else {
        return;
    };
    if let Err(err) = common::ping(&common::redis_url()).await {
        common::unavailable("Redis", &err);
        return;
    }
    // The same table, through a pool of its own, as another process would.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&common::database_url())
        .await
        .unwrap();
    let second = PostgresStore::builder(pool)
        .table_name(first.table_name())
        .clock(clock.clone())
        .build()
        .unwrap();
    let a = instance(&common::redis_url(), first);
    let b = instance(&common::redis_url(), second);
    let user = user();
    let (s1, e1) = sign_in(&a, &user, &clock).await;
    let (s2, e2) = sign_in(&a, &user, &clock).await;
    let (s3, e3) = sign_in(&b, &user, &clock).await;
    assert_eq!(
        listed(&b, &user, &clock).await,
        sorted(vec![e1.clone(), e2.clone(), e3.clone()]),
        "the second instance lists what the first signed in"
    );
    assert_eq!(
        listed(&a, &user, &clock).await,
        listed(&b, &user, &clock).await
    );
    // The first ends all but the session the second signed in.
    let ended = a
        .end_user_sessions(&user, Some(&e3), clock.now())
        .await
        .unwrap();
    assert_eq!(ended, 2);
    for token in [&s1, &s2] {
        assert!(
            !loads(&b, token, &clock).await,
            "ended for the other instance too"
        );
        assert!(!loads(&a, token, &clock).await);
    }
    assert!(loads(&b, &s3, &clock).await);
    assert_eq!(listed(&b, &user, &clock).await, vec![e3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_restored_with_an_old_index_lists_nothing_ended() {
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let clock = ManualClock::starting_now();
    let Some(durable) = common::postgres_store(&clock).await else {
        return;
    };
    let sessions = instance(&redis.url(), durable);
    let user = user();
    let (s1, e1) = sign_in(&sessions, &user, &clock).await;
    assert_eq!(listed(&sessions, &user, &clock).await, vec![e1.clone()]);
    assert!(loads(&sessions, &s1, &clock).await, "cached");
    redis.snapshot().await;
    // After the snapshot: two more sign-ins, and the first session ended.
    let (s2, e2) = sign_in(&sessions, &user, &clock).await;
    let (s3, e3) = sign_in(&sessions, &user, &clock).await;
    assert!(sessions
        .end_user_session(&user, &e1, clock.now())
        .await
        .unwrap());
    redis.restart_from_snapshot().await;
    // The restored Redis holds the old index (only s1) and s1 live.
    let store = sessions.store();
    common::until_repaired(store).await;
    assert_eq!(
        store.stats().cache_state,
        CacheState::Closed,
        "trusted again"
    );
    assert!(
        !loads(&sessions, &s1, &clock).await,
        "the ended session stays ended"
    );
    assert_eq!(
        listed(&sessions, &user, &clock).await,
        sorted(vec![e2, e3]),
        "the listing is the index of record, not the snapshot's"
    );
    assert_eq!(
        sessions
            .end_user_sessions(&user, None, clock.now())
            .await
            .unwrap(),
        2
    );
    for token in [&s2, &s3] {
        assert!(!loads(&sessions, token, &clock).await);
    }
}
