//! Ending a user's sessions while one of them is in the middle of a rotation or a renewal:
//! the session never survives, whichever step the racing request is held at. Requests in
//! flight across a renewal (a sign-in): a logout ends the renewed session, a write lands
//! in it, and the index matches what lives. Real
//! concurrency (a multi-threaded runtime), over the memory store and the tiered Redis +
//! PostgreSQL store, with a wrapper that holds one write of the racing request.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::{sync::Arc, time::Duration};

use serde_json::value::to_raw_value;
use session_core::{
    lifecycle::{
        users::{Principal, UserKey, USER_KEY},
        CookieAction, Finish, Outcome, Plan, RotationKey, Sessions, SessionsConfig, TheftResponse,
    },
    store::{Held, MemoryStore, TieredStore},
    testing, Changes, Clock, ManualClock, SessionToken, Store, StoreError,
};

const ROTATION_SECRET: [u8; 32] = [7; 32];

fn config() -> SessionsConfig {
    common::sessions_config(&ROTATION_SECRET)
}

fn sessions_over<S: Store>(store: Held<S>) -> Arc<Sessions<Held<S>>> {
    Arc::new(Sessions::new(Arc::new(store), config()))
}

fn plan(finish: Finish) -> Plan {
    Plan {
        finish,
        end_old: false,
        cookie: CookieAction::Set,
    }
}

/// Signs `user` in on a new session holding `count`; its id.
async fn sign_in<S: Store>(
    sessions: &Sessions<S>,
    user: &str,
    count: u32,
    clock: &ManualClock,
) -> SessionToken {
    let mut changes = Changes::new();
    let principal = Principal::attach(user, Some("curl/8")).unwrap();
    changes.set(USER_KEY, to_raw_value(&principal).unwrap());
    changes.set("count", to_raw_value(&count).unwrap());
    match sessions
        .carry_out(&plan(Finish::Create), None, changes, None, clock.now())
        .await
        .unwrap()
    {
        Some(Outcome::Live(token, _)) => token,
        other => panic!("not created: {other:?}"),
    }
}

async fn entry_of<S: Store>(
    sessions: &Sessions<S>,
    token: &SessionToken,
    clock: &ManualClock,
) -> String {
    let loaded = sessions
        .load(token.clone(), clock.now())
        .await
        .unwrap()
        .unwrap();
    Principal::of(&loaded.record.state).unwrap().entry
}

/// Whether anything of a session lives under `token` (a marker does not count).
async fn live<S: Store>(store: &S, token: &SessionToken) -> bool {
    store
        .reload(&token.hash())
        .await
        .unwrap()
        .is_some_and(|record| !record.meta.ended)
}

#[derive(Debug, Clone, Copy)]
enum Race {
    /// A rotation held before it writes its index entry (naming the successor).
    RotationAtIndex,
    /// A rotation held after it created the successor, before it claims the old id.
    RotationAtForward,
    /// A renewal (a second sign-in) held before it writes its index entry.
    RenewAtIndex,
}

async fn end_others_racing<S: Store + Clone>(store: S, clock: ManualClock, race: Race) {
    let held = Held::new(store);
    let sessions = sessions_over(held.clone());
    let user = format!(
        "racer-{}",
        SessionToken::generate().unwrap().hash().as_str()
    );
    let current = sign_in(&sessions, &user, 0, &clock).await;
    let victim = sign_in(&sessions, &user, 1, &clock).await;
    let successor = RotationKey::new(&ROTATION_SECRET)
        .successor(&victim)
        .unwrap();
    let loaded = sessions
        .load(victim.clone(), clock.now())
        .await
        .unwrap()
        .unwrap();

    let (finish, held_key) = match race {
        Race::RotationAtIndex => (Finish::Rotate, UserKey::standard().index_of(&user)),
        Race::RotationAtForward => (Finish::Rotate, victim.hash()),
        Race::RenewAtIndex => (Finish::Renew, UserKey::standard().index_of(&user)),
    };
    held.arm_update_of(held_key);
    let mut changes = Changes::new();
    changes.set("count", to_raw_value(&2).unwrap());
    let racing = tokio::spawn({
        let (sessions, now) = (Arc::clone(&sessions), clock.now());
        async move {
            sessions
                .carry_out(&plan(finish), Some(loaded), changes, None, now)
                .await
                .unwrap()
        }
    });
    tokio::time::timeout(Duration::from_secs(10), held.reached())
        .await
        .expect("the racing request reached the held write");

    let keep = entry_of(&sessions, &current, &clock).await;
    let ended = sessions
        .end_user_sessions(&user, Some(&keep), clock.now())
        .await
        .unwrap();
    assert_eq!(ended, 1, "{race:?}");
    held.release();
    let outcome = tokio::time::timeout(Duration::from_secs(10), racing)
        .await
        .expect("the racing request finished")
        .unwrap();
    assert_eq!(
        outcome,
        Some(Outcome::Ended),
        "{race:?}: the racing request ends"
    );

    let store = held.inner();
    assert!(!live(store, &victim).await, "{race:?}: the old id");
    assert!(!live(store, &successor).await, "{race:?}: the successor");
    assert!(
        sessions
            .load(victim.clone(), clock.now())
            .await
            .unwrap()
            .is_none(),
        "{race:?}: no tier serves it"
    );
    assert!(sessions
        .load(successor, clock.now())
        .await
        .unwrap()
        .is_none());
    let listed = sessions
        .user_sessions(&user, None, clock.now())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{race:?}: {listed:?}");
    assert_eq!(listed[0].id, keep);
    assert!(live(store, &current).await, "{race:?}: the kept one lives");
}

/// A rotation that completed before the ending: its successor is what the entry names,
/// and it is ended (in every tier).
async fn end_after_rotation<S: Store + Clone>(store: S, clock: ManualClock) {
    let sessions = sessions_over(Held::new(store));
    let user = format!(
        "rotated-{}",
        SessionToken::generate().unwrap().hash().as_str()
    );
    let victim = sign_in(&sessions, &user, 1, &clock).await;
    let loaded = sessions
        .load(victim.clone(), clock.now())
        .await
        .unwrap()
        .unwrap();
    let Some(Outcome::Live(rotated, _)) = sessions
        .carry_out(
            &plan(Finish::Rotate),
            Some(loaded),
            Changes::new(),
            None,
            clock.now(),
        )
        .await
        .unwrap()
    else {
        panic!("rotated");
    };
    assert_ne!(rotated, victim);
    // The successor is used, and outlives the forward the old id left (grace + idle
    // timeout): the entry reaches it all the same.
    clock.advance(Duration::from_secs(8 * 60));
    let mut changes = Changes::new();
    changes.set("count", to_raw_value(&2).unwrap());
    let loaded = sessions
        .load(rotated.clone(), clock.now())
        .await
        .unwrap()
        .unwrap();
    let written = sessions
        .carry_out(
            &plan(Finish::Write),
            Some(loaded),
            changes,
            None,
            clock.now(),
        )
        .await
        .unwrap();
    assert!(matches!(written, Some(Outcome::Live(ref token, _)) if *token == rotated));
    clock.advance(Duration::from_secs(8 * 60));
    assert!(
        sessions
            .load(victim.clone(), clock.now())
            .await
            .unwrap()
            .is_none(),
        "forward gone"
    );
    assert!(sessions
        .load(rotated.clone(), clock.now())
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        sessions
            .user_sessions(&user, None, clock.now())
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        sessions
            .end_user_sessions(&user, None, clock.now())
            .await
            .unwrap(),
        1
    );
    assert!(sessions.load(rotated, clock.now()).await.unwrap().is_none());
    assert!(sessions.load(victim, clock.now()).await.unwrap().is_none());
}

/// Two requests of one session renew it (a sign-in submitted twice): the session forks,
/// each renewal keeping the fresh session it created from the state it saw, and ending
/// the user's sessions ends both.
async fn a_session_renewed_twice<S: Store + Clone>(store: S, clock: ManualClock) {
    let sessions = sessions_over(Held::new(store));
    let user = format!(
        "forked-{}",
        SessionToken::generate().unwrap().hash().as_str()
    );
    let token = sign_in(&sessions, &user, 1, &clock).await;
    let first = sessions
        .load(token.clone(), clock.now())
        .await
        .unwrap()
        .unwrap();
    let second = first.clone();
    let renewal = plan(Finish::Renew);
    let renew = |loaded, key: &str| {
        let mut changes = Changes::new();
        changes.set(key, to_raw_value(&true).unwrap());
        sessions.carry_out(&renewal, Some(loaded), changes, None, clock.now())
    };
    let mut forks = Vec::new();
    for (loaded, key) in [(first, "a"), (second, "b")] {
        let Some(Outcome::Live(fork, _)) = renew(loaded, key).await.unwrap() else {
            panic!("renewed");
        };
        let record = sessions
            .load(fork.clone(), clock.now())
            .await
            .unwrap()
            .expect("the fork lives")
            .record;
        assert_eq!(record.get::<bool>(key).unwrap(), Some(true));
        forks.push(fork);
    }
    assert!(sessions.load(token, clock.now()).await.unwrap().is_none());
    // One branch is used and rotates again and again while the other idles: the entry
    // keeps the idle branch's key all the same.
    let mut active = forks[0].clone();
    for _ in 0..12 {
        let loaded = sessions
            .load(active.clone(), clock.now())
            .await
            .unwrap()
            .unwrap();
        let rotated = sessions
            .carry_out(
                &plan(Finish::Rotate),
                Some(loaded),
                Changes::new(),
                None,
                clock.now(),
            )
            .await
            .unwrap();
        let Some(Outcome::Live(next, _)) = rotated else {
            panic!("rotated: {rotated:?}");
        };
        active = next;
        clock.advance(Duration::from_secs(10));
    }
    forks[0] = active;
    assert_eq!(
        sessions
            .end_user_sessions(&user, None, clock.now())
            .await
            .unwrap(),
        1,
        "one entry: a forked session counts once"
    );
    for fork in forks {
        assert!(sessions.load(fork, clock.now()).await.unwrap().is_none());
    }
}

/// A replay of a rotated-away id after its grace window, with [`TheftResponse::Revoke`],
/// after the session was rotated and then renewed (a sign-in): the renewed session is
/// ended too.
async fn a_revoked_replay_across_a_renewal<S: Store + Clone>(store: S, clock: ManualClock) {
    let sessions = Arc::new(Sessions::new(
        Arc::new(Held::new(store)),
        SessionsConfig {
            theft: TheftResponse::Revoke,
            ..config()
        },
    ));
    let mut changes = Changes::new();
    changes.set("count", to_raw_value(&1).unwrap());
    let Some(Outcome::Live(old, _)) = sessions
        .carry_out(&plan(Finish::Create), None, changes, None, clock.now())
        .await
        .unwrap()
    else {
        panic!("created");
    };
    let step = |finish, token: SessionToken| {
        let sessions = Arc::clone(&sessions);
        let now = clock.now();
        async move {
            let loaded = sessions.load(token, now).await.unwrap().unwrap();
            match sessions
                .carry_out(&plan(finish), Some(loaded), Changes::new(), None, now)
                .await
                .unwrap()
            {
                Some(Outcome::Live(token, _)) => token,
                other => panic!("{finish:?}: {other:?}"),
            }
        }
    };
    let rotated = step(Finish::Rotate, old.clone()).await;
    let renewed = step(Finish::Renew, rotated).await;
    clock.advance(Duration::from_secs(6));
    assert!(sessions.load(old, clock.now()).await.unwrap().is_none());
    assert!(
        !live(sessions.store().inner(), &renewed).await,
        "the revocation reached the renewed session"
    );
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Across {
    /// A logout that loaded the session before a renewal, ending after it.
    Logout,
    /// A logout landing while the renewal is held between creating the fresh session and
    /// claiming the old one.
    LogoutHeld,
    /// A logout that stores a flash message (a fresh session for it), after the claim.
    LogoutWithFlash,
    /// A logout that loaded the session before a rotation, which another request renewed
    /// at its successor.
    LogoutAfterRotation,
    /// A write that loaded the session before a renewal, landing after it.
    Write,
    /// A refresh (no changes) that loaded the session before a renewal, after it.
    Touch,
    /// The same, when the refresh is due to extend the user's index (which writes).
    TouchDue,
    /// A detach landing while a renewal that keeps the principal is held before its claim.
    DetachHeld,
    /// A read through a rotated-away id in its grace window (its response hands out the
    /// successor's id) while the successor is renewed.
    ForwardedRead,
    /// A write landing while the renewal is held before its claim.
    WriteHeld,
    /// A detach that loaded the session before a renewal, landing after it.
    Detach,
    /// A second sign-in of the same session, after the first one's renewal.
    SignIn,
}

/// A request of a signed-in session (or, `signed_in` false, an anonymous one) that runs
/// across a renewal of it: nothing acknowledged is lost (a refused write is an error),
/// nothing written from before the renewal reaches the renewed session, an ended session
/// stays ended in every tier, and the index matches what lives.
async fn across_a_renewal<S: Store + Clone>(
    store: S,
    clock: ManualClock,
    across: Across,
    signed_in: bool,
) {
    let held = Held::new(store);
    let sessions = sessions_over(held.clone());
    let user = format!(
        "renewed-{}",
        SessionToken::generate().unwrap().hash().as_str()
    );
    let old = if signed_in {
        sign_in(&sessions, &user, 1, &clock).await
    } else {
        let mut changes = Changes::new();
        changes.set("count", to_raw_value(&1).unwrap());
        let created = sessions
            .carry_out(&plan(Finish::Create), None, changes, None, clock.now())
            .await
            .unwrap();
        let Some(Outcome::Live(token, _)) = created else {
            panic!("created");
        };
        token
    };
    let load = |token: SessionToken| {
        let sessions = Arc::clone(&sessions);
        let now = clock.now();
        async move { sessions.load(token, now).await.unwrap().unwrap() }
    };
    if across == Across::TouchDue {
        // Used halfway through its idle timeout, then past one since the sign-in: the
        // next request extends the index.
        clock.advance(Duration::from_secs(300));
        let used = sessions
            .carry_out(
                &plan(Finish::Write),
                Some(load(old.clone()).await),
                {
                    let mut changes = Changes::new();
                    changes.set("used", to_raw_value(&true).unwrap());
                    changes
                },
                None,
                clock.now(),
            )
            .await
            .unwrap();
        assert!(matches!(used, Some(Outcome::Live(..))));
        clock.advance(Duration::from_secs(330));
    }
    let mut for_other = load(old.clone()).await;
    // The id the renewal starts from: the old one, or its successor after a rotation.
    let rotated_first = matches!(across, Across::LogoutAfterRotation | Across::ForwardedRead);
    let renewing = if rotated_first {
        let rotation = sessions
            .carry_out(
                &plan(Finish::Rotate),
                Some(load(old.clone()).await),
                Changes::new(),
                None,
                clock.now(),
            )
            .await
            .unwrap();
        let Some(Outcome::Live(successor, _)) = rotation else {
            panic!("rotated");
        };
        successor
    } else {
        old.clone()
    };
    if across == Across::ForwardedRead {
        for_other = load(old.clone()).await;
        assert!(for_other.forwarded());
    }
    let for_renewal = load(renewing.clone()).await;
    let mut renewal_changes = Changes::new();
    renewal_changes.set("renewed", to_raw_value(&true).unwrap());
    let set = |key: &str| {
        let mut changes = Changes::new();
        changes.set(key, to_raw_value(&true).unwrap());
        changes
    };
    let (other_plan, other_changes) = match across {
        Across::Logout | Across::LogoutHeld | Across::LogoutAfterRotation => {
            (plan(Finish::End), Changes::new())
        }
        Across::LogoutWithFlash => (
            Plan {
                end_old: true,
                ..plan(Finish::Create)
            },
            set("flash"),
        ),
        Across::Write | Across::WriteHeld => (plan(Finish::Write), set("other")),
        Across::Touch | Across::TouchDue | Across::ForwardedRead => {
            (plan(Finish::Touch), Changes::new())
        }
        Across::Detach | Across::DetachHeld => {
            let mut changes = Changes::new();
            changes.remove(USER_KEY);
            (plan(Finish::Write), changes)
        }
        Across::SignIn => {
            let mut changes = Changes::new();
            let principal = Principal::attach(&user, Some("curl/8")).unwrap();
            changes.set(USER_KEY, to_raw_value(&principal).unwrap());
            (plan(Finish::Write), changes)
        }
    };
    let other = |now| {
        let sessions = Arc::clone(&sessions);
        async move {
            sessions
                .carry_out(&other_plan, Some(for_other), other_changes, None, now)
                .await
        }
    };
    let before_claim = matches!(
        across,
        Across::LogoutHeld | Across::WriteHeld | Across::DetachHeld
    );
    let (renewal, other) = if before_claim {
        held.arm_update_of(renewing.hash());
        let renewing = tokio::spawn({
            let (sessions, now) = (Arc::clone(&sessions), clock.now());
            async move {
                sessions
                    .carry_out(
                        &plan(Finish::Renew),
                        Some(for_renewal),
                        renewal_changes,
                        None,
                        now,
                    )
                    .await
            }
        });
        tokio::time::timeout(Duration::from_secs(10), held.reached())
            .await
            .expect("the renewal reached its claim");
        let other = other(clock.now()).await;
        held.release();
        let renewal = tokio::time::timeout(Duration::from_secs(10), renewing)
            .await
            .expect("the renewal finished")
            .unwrap();
        (renewal, other)
    } else {
        let renewal = sessions
            .carry_out(
                &plan(Finish::Renew),
                Some(for_renewal),
                renewal_changes,
                None,
                clock.now(),
            )
            .await;
        (renewal, other(clock.now()).await)
    };
    if across == Across::DetachHeld {
        // The detach landed first and let go of the entry, ending the renewal's fresh
        // session that held it: the renewal is refused, and the client keeps its id.
        assert!(
            matches!(renewal, Err(StoreError::Superseded)),
            "{renewal:?}"
        );
        let other = other.unwrap();
        assert!(
            matches!(other, Some(Outcome::Live(ref t, _)) if *t == old),
            "{other:?}"
        );
        let kept = sessions
            .load(old.clone(), clock.now())
            .await
            .unwrap()
            .expect("the detached session lives");
        assert_eq!(Principal::of(&kept.record.state), None);
        assert!(sessions
            .user_sessions(&user, None, clock.now())
            .await
            .unwrap()
            .is_empty());
        return;
    }
    let renewal = renewal.unwrap();
    let store = held.inner();
    // (A rotated-away id stays a forward for its grace window: it leads to the renewal's
    // marker, and loads as nothing.)
    assert!(
        across == Across::ForwardedRead || !live(store, &old).await,
        "{across:?}: the old id grants nothing"
    );
    assert!(sessions
        .load(old.clone(), clock.now())
        .await
        .unwrap()
        .is_none());
    let listed = || async {
        sessions
            .user_sessions(&user, None, clock.now())
            .await
            .unwrap()
            .len()
    };
    let renewed = match renewal {
        Some(Outcome::Live(token, _)) => Some(token),
        Some(Outcome::Ended) => None,
        other => panic!("{across:?}: renewal {other:?}"),
    };
    let state = match &renewed {
        Some(token) => sessions
            .load(token.clone(), clock.now())
            .await
            .unwrap()
            .map(|loaded| loaded.record),
        None => None,
    };
    let has = |key: &str| {
        state
            .as_ref()
            .and_then(|record| record.get::<bool>(key).unwrap())
            == Some(true)
    };
    let refused = |other: &Result<Option<Outcome>, StoreError>| {
        assert!(
            matches!(other, Err(StoreError::Superseded)),
            "{across:?}: refused, not silently dropped: {other:?}"
        );
    };
    match across {
        Across::Logout
        | Across::LogoutHeld
        | Across::LogoutAfterRotation
        | Across::LogoutWithFlash => {
            let other = other.unwrap();
            if across == Across::LogoutWithFlash {
                let Some(Outcome::Live(flash, _)) = other else {
                    panic!("{across:?}: {other:?}");
                };
                let fresh = sessions.load(flash, clock.now()).await.unwrap().unwrap();
                assert_eq!(fresh.record.get::<bool>("flash").unwrap(), Some(true));
                assert_eq!(fresh.record.get::<bool>("renewed").unwrap(), None);
                assert_eq!(Principal::of(&fresh.record.state), None);
            } else {
                assert_eq!(other, Some(Outcome::Ended), "{across:?}");
            }
            assert!(state.is_none(), "{across:?}: the renewed session ended too");
            if let Some(token) = &renewed {
                assert!(!live(store, token).await, "{across:?}: in every tier");
            }
            if signed_in {
                assert_eq!(listed().await, 0, "{across:?}: signed out");
            }
        }
        Across::Write => {
            refused(&other);
            assert!(has("renewed") && !has("other"), "{across:?}: {state:?}");
            assert_eq!(listed().await, usize::from(signed_in));
        }
        Across::Touch | Across::TouchDue | Across::ForwardedRead => {
            assert_eq!(other.unwrap(), Some(Outcome::Moved), "cookie left alone");
            assert!(has("renewed"));
        }
        Across::DetachHeld => unreachable!("checked above"),
        Across::Detach => {
            refused(&other);
            let record = state.as_ref().expect("the renewed session lives");
            assert!(Principal::of(&record.state).is_some(), "still attached");
            assert_eq!(listed().await, 1, "{across:?}: the index matches");
        }
        Across::WriteHeld => {
            assert!(matches!(other.unwrap(), Some(Outcome::Live(ref t, _)) if *t == old));
            assert!(
                has("renewed") && has("other"),
                "{across:?}: rebased: {state:?}"
            );
            assert_eq!(listed().await, usize::from(signed_in));
        }
        Across::SignIn => {
            // A fork: the sign-in keeps a session of its own, from the state it loaded;
            // the first renewal's session held the entry the sign-in replaced, and ends.
            let Ok(Some(Outcome::Live(forked, _))) = other else {
                panic!("{across:?}: {other:?}");
            };
            let fork = sessions.load(forked, clock.now()).await.unwrap().unwrap();
            assert_eq!(fork.record.get::<bool>("renewed").unwrap(), None);
            assert!(
                state.is_none(),
                "{across:?}: no session left without an entry"
            );
            assert_eq!(listed().await, 1, "one sign-in listed");
        }
    }
}

/// A request that extends the index (its session is due) while another request of the
/// same session detaches it: the detach stays, the extending request's own change lands,
/// and the session lives on, attached to no one.
async fn a_detach_racing_an_extension<S: Store + Clone>(store: S, clock: ManualClock) {
    let sessions = sessions_over(Held::new(store));
    let user = format!(
        "detached-{}",
        SessionToken::generate().unwrap().hash().as_str()
    );
    let token = sign_in(&sessions, &user, 1, &clock).await;
    let write = |loaded, key: &str, value| {
        let mut changes = Changes::new();
        if key == USER_KEY {
            changes.remove(USER_KEY);
        } else {
            changes.set(key, to_raw_value(&value).unwrap());
        }
        let sessions = Arc::clone(&sessions);
        let now = clock.now();
        async move {
            sessions
                .carry_out(&plan(Finish::Write), Some(loaded), changes, None, now)
                .await
                .unwrap()
        }
    };
    clock.advance(Duration::from_secs(300));
    let loaded = sessions
        .load(token.clone(), clock.now())
        .await
        .unwrap()
        .unwrap();
    write(loaded, "count", 2).await;
    clock.advance(Duration::from_secs(330)); // past an idle timeout since the sign-in
    let slow = sessions
        .load(token.clone(), clock.now())
        .await
        .unwrap()
        .unwrap();
    let detaching = sessions
        .load(token.clone(), clock.now())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        write(detaching, USER_KEY, 0).await,
        Some(Outcome::Live(..))
    ));
    assert!(matches!(
        write(slow, "count", 3).await,
        Some(Outcome::Live(..))
    ));
    let now = sessions
        .load(token, clock.now())
        .await
        .unwrap()
        .expect("lives");
    assert_eq!(now.record.get::<u32>("count").unwrap(), Some(3));
    assert_eq!(Principal::of(&now.record.state), None, "still detached");
    assert!(sessions
        .user_sessions(&user, None, clock.now())
        .await
        .unwrap()
        .is_empty());
}

async fn memory() -> Option<(MemoryStore, ManualClock)> {
    let clock = ManualClock::starting_now();
    Some((MemoryStore::builder().clock(clock.clone()).build(), clock))
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
            async fn a_rotation_held_at_its_index_write() {
                let Some((store, clock)) = $fixture().await else { return };
                end_others_racing(store, clock, Race::RotationAtIndex).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_rotation_held_at_its_forward() {
                let Some((store, clock)) = $fixture().await else { return };
                end_others_racing(store, clock, Race::RotationAtForward).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_renewal_held_at_its_index_write() {
                let Some((store, clock)) = $fixture().await else { return };
                end_others_racing(store, clock, Race::RenewAtIndex).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_session_renewed_twice() {
                let Some((store, clock)) = $fixture().await else { return };
                super::a_session_renewed_twice(store, clock).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_revoked_replay_across_a_renewal() {
                let Some((store, clock)) = $fixture().await else { return };
                super::a_revoked_replay_across_a_renewal(store, clock).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn across_renewals() {
                use Across::*;
                for across in [
                    Logout,
                    LogoutHeld,
                    LogoutWithFlash,
                    LogoutAfterRotation,
                    Write,
                    Touch,
                    TouchDue,
                    DetachHeld,
                    ForwardedRead,
                    WriteHeld,
                    Detach,
                    SignIn,
                ] {
                    for signed_in in [true, false] {
                        if !signed_in && matches!(across, Detach | DetachHeld | SignIn | TouchDue) {
                            continue;
                        }
                        let Some((store, clock)) = $fixture().await else { return };
                        across_a_renewal(store, clock, across, signed_in).await;
                    }
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_detach_racing_an_index_extension() {
                let Some((store, clock)) = $fixture().await else { return };
                a_detach_racing_an_extension(store, clock).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_completed_rotation() {
                let Some((store, clock)) = $fixture().await else { return };
                end_after_rotation(store, clock).await;
            }
        }
    )*};
}

races!(memory_store: memory, tiered_redis_postgres: tiered);
