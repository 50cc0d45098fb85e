//! Theft signals: a rotated-away id replayed after its grace window, and a client that
//! does not match the binding. Logged and counted by default; with
//! `TheftResponse::Revoke`, the owner's session ends too. One test function: it installs
//! this binary's metrics recorder and captures its logs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use actix_web::cookie::Key;
use common::{token_of, Captured, Client, Fixture};
use metrics_util::debugging::{DebuggingRecorder, Snapshotter};
use session_actix::TheftResponse;
use session_core::Store;

const EVERY: Duration = Duration::from_secs(300);
const GRACE: Duration = Duration::from_secs(30);
const REPLAYED: &str = "session_theft_signals_total{kind=replayed_id}";
const MISMATCH: &str = "session_theft_signals_total{kind=binding_mismatch}";

/// The owner's session, rotated once: the owner holds the new id, `stolen` the old one.
async fn rotated_session<S: Store + Clone, A, B>(f: &Fixture<S>, app: &A) -> (Client, Client)
where
    A: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let mut owner = Client::new();
    owner.post(app, "/inc").await;
    let stolen = owner.clone();
    f.clock.advance(EVERY + Duration::from_secs(1));
    assert_eq!(owner.get(app, "/count").await.body, "1");
    (owner, stolen)
}

#[actix_web::test]
async fn theft_signals_are_logged_counted_and_revoke_by_policy() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let key = Key::generate();

    if let Some(f) = common::memory().await {
        script(&f, &key, &snapshotter, &captured).await;
    }
    if let Some(f) = common::tiered().await {
        script(&f, &key, &snapshotter, &captured).await;
    }
}

async fn script<S: Store + Clone>(
    f: &Fixture<S>,
    key: &Key,
    snapshotter: &Snapshotter,
    captured: &Captured,
) {
    // What this run logs (the binary's other runs log into the same capture).
    let logged_before = captured.text().len();
    {
        // Default (log): the replay is refused, counted and logged; the owner keeps theirs.
        let app = common::app(common::layer(f, key, |b| {
            b.token_rotation(EVERY).rotation_grace(GRACE)
        }))
        .await;
        let (mut owner, mut stolen) = rotated_session(f, &app).await;
        let stolen_id = token_of(key, stolen.cookie.as_ref().unwrap());
        common::take_metrics(snapshotter);
        f.clock.advance(GRACE + Duration::from_secs(1));
        assert_eq!(stolen.get(&app, "/count").await.body, "0", "refused");
        let got = common::take_metrics(snapshotter);
        assert_eq!(got.get(REPLAYED), Some(&1), "{got:?}");
        assert_eq!(got.get("session_revocations_total"), None, "{got:?}");
        assert_eq!(
            owner.get(&app, "/count").await.body,
            "1",
            "the owner keeps theirs"
        );

        // Revoke: the replay ends the owner's session too.
        let app = common::app(common::layer(f, key, |b| {
            b.token_rotation(EVERY)
                .rotation_grace(GRACE)
                .theft_response(TheftResponse::Revoke)
        }))
        .await;
        let (mut owner, mut stolen) = rotated_session(f, &app).await;
        let revoked_id = token_of(key, stolen.cookie.as_ref().unwrap());
        let current = token_of(key, owner.cookie.as_ref().unwrap());
        common::take_metrics(snapshotter);
        f.clock.advance(GRACE + Duration::from_secs(1));
        assert_eq!(stolen.get(&app, "/count").await.body, "0");
        let got = common::take_metrics(snapshotter);
        assert_eq!(got.get(REPLAYED), Some(&1), "{got:?}");
        assert_eq!(got.get("session_revocations_total"), Some(&1), "{got:?}");
        assert!(common::ended(&f.store, &current.hash()).await, "revoked");
        assert_eq!(
            owner.get(&app, "/count").await.body,
            "0",
            "the owner starts afresh"
        );

        // Revoke on a binding mismatch: the thief's request ends the owner's session.
        let mut owner = Client::new();
        owner.post(&app, "/inc").await;
        let mut thief = owner.clone();
        thief.user_agent = "curl/8.0".into();
        common::take_metrics(snapshotter);
        assert_eq!(thief.get(&app, "/count").await.body, "0");
        let got = common::take_metrics(snapshotter);
        assert_eq!(got.get(MISMATCH), Some(&1), "{got:?}");
        assert_eq!(got.get("session_revocations_total"), Some(&1), "{got:?}");
        assert_eq!(owner.get(&app, "/count").await.body, "0", "revoked");

        let logs = captured.text().split_off(logged_before);
        let warnings: Vec<&str> = logs
            .lines()
            .filter(|line| line.contains("possible theft"))
            .collect();
        assert_eq!(warnings.len(), 2, "one per replay: {logs}");
        assert!(
            warnings.iter().all(|line| line.contains("WARN")),
            "warnings: {warnings:?}"
        );
        assert!(warnings[1].contains("revoke=true"), "{warnings:?}");
        for id in [&stolen_id, &revoked_id, &current] {
            assert!(!logs.contains(id.as_str()), "never an id: {logs}");
        }
    }
}
