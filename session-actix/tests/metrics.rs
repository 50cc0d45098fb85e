//! The metrics of a scripted sequence, read through `metrics-util`'s debugging recorder
//! (installed for this test binary alone).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::{collections::HashMap, time::Duration};

use actix_web::{cookie::Key, http::StatusCode};
use common::{token_of, Client};
use metrics_util::debugging::DebuggingRecorder;
use session_core::{
    store::{Faulty, TieredStore},
    telemetry, Store,
};

fn expect(got: &HashMap<String, u64>, wanted: &[(&str, u64)]) {
    let wanted: HashMap<String, u64> = wanted.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect();
    assert_eq!(got, &wanted);
}

#[actix_web::test]
async fn a_scripted_sequence_counts_what_happened() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    // The layer's own metrics, on the memory store.
    let f = common::memory().await.unwrap();
    let key = Key::generate();
    let every = Duration::from_secs(300);
    let app = common::app(common::layer(&f, &key, |b| b.token_rotation(every))).await;
    let mut client = Client::new();
    client.get(&app, "/count").await;
    expect(&common::take_metrics(&snapshotter), &[]);

    client.post(&app, "/inc").await;
    expect(
        &common::take_metrics(&snapshotter),
        &[(telemetry::CREATED, 1), (telemetry::RECORD_BYTES, 1)],
    );

    let mut thief = client.clone();
    thief.user_agent = "curl/8.0".into();
    thief.get(&app, "/count").await;
    client.post(&app, "/inc").await;
    expect(
        &common::take_metrics(&snapshotter),
        &[
            ("session_refused_total{reason=binding_mismatch}", 1),
            ("session_theft_signals_total{kind=binding_mismatch}", 1),
            (telemetry::RECORD_BYTES, 1),
        ],
    );

    let old = client.clone();
    f.clock.advance(every + Duration::from_secs(1));
    client.get(&app, "/count").await;
    let mut laggard = old;
    laggard.get(&app, "/count").await;
    expect(
        &common::take_metrics(&snapshotter),
        &[
            (telemetry::ROTATIONS, 1),
            (telemetry::RECORD_BYTES, 1),
            (telemetry::GRACE_FORWARDS, 1),
        ],
    );

    client.post(&app, "/logout").await;
    expect(
        &common::take_metrics(&snapshotter),
        &[(telemetry::ENDED, 1)],
    );

    // A sign-in renews the id; past the absolute timeout, a session in use is refused
    // (and ended).
    let app = common::app(common::layer(&f, &key, |b| {
        b.idle_timeout(Duration::from_secs(1200))
            .absolute_timeout(Duration::from_secs(3600))
            .no_token_rotation()
    }))
    .await;
    let mut client = Client::new();
    client.post(&app, "/inc").await;
    common::take_metrics(&snapshotter);
    client.post(&app, "/login").await;
    expect(
        &common::take_metrics(&snapshotter),
        &[(telemetry::RENEWED, 1), (telemetry::RECORD_BYTES, 1)],
    );
    for _ in 0..5 {
        f.clock.advance(Duration::from_secs(600));
        client.get(&app, "/count").await;
    }
    common::take_metrics(&snapshotter);
    f.clock.advance(Duration::from_secs(601));
    client.get(&app, "/count").await;
    expect(
        &common::take_metrics(&snapshotter),
        &[
            ("session_refused_total{reason=absolute_timeout}", 1),
            (telemetry::ENDED, 1),
        ],
    );

    // The tiered store's: hits, misses, the refill, and each tier's latency.
    let Some(f) = common::tiered().await else {
        return;
    };
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    let mut client = Client::new();
    client.post(&app, "/inc").await;
    common::take_metrics(&snapshotter);
    client.get(&app, "/count").await;
    let hash = token_of(&key, client.cookie.as_ref().unwrap()).hash();
    f.store.cache().inner().delete(&hash).await.unwrap();
    client.get(&app, "/count").await;
    let got = common::take_metrics(&snapshotter);
    for (name, n) in [
        (telemetry::CACHE_HITS, 1),
        (telemetry::CACHE_MISSES, 1),
        ("session_store_duration_seconds{tier=cache,op=load}", 2),
        ("session_store_duration_seconds{tier=durable,op=load}", 1),
    ] {
        assert_eq!(got.get(name), Some(&n), "{name}: {got:?}");
    }
    assert!(!got.contains_key(telemetry::CACHE_ERRORS), "{got:?}");

    // Faults, on real servers behind a switch: the cache stops answering (errors, then
    // the breaker opens: one outage, and calls skipped), a write made meanwhile is logged
    // for repair and repaired once the cache answers again; the durable store failing
    // counts its errors.
    let clock = f.clock.clone();
    let (cache, durable) = (
        Faulty::new(f.store.cache().inner().clone()),
        Faulty::new(f.store.durable().inner().clone()),
    );
    let store = TieredStore::builder(cache.clone(), durable.clone())
        .clock(clock.clone())
        .retry_after(Duration::from_millis(20))
        .max_retry_after(Duration::from_millis(40))
        .repair_interval(Duration::from_secs(3600))
        .build();
    let layer = session_actix::SessionLayer::builder(store, key.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let app = common::app(layer).await;
    let mut client = Client::new();
    client.post(&app, "/inc").await;
    common::take_metrics(&snapshotter);
    cache.set_down(true);
    for _ in 0..3 {
        client.post(&app, "/inc").await;
    }
    let got = common::take_metrics(&snapshotter);
    assert_eq!(got.get(telemetry::CACHE_OUTAGES), Some(&1), "{got:?}");
    assert!(
        got.keys().any(|k| k.starts_with(telemetry::CACHE_ERRORS)),
        "{got:?}"
    );
    assert!(got.contains_key(telemetry::CACHE_SKIPPED), "{got:?}");
    cache.set_down(false);
    let mut repaired = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(client.get(&app, "/count").await.status, StatusCode::OK);
        repaired += common::take_metrics(&snapshotter)
            .get(telemetry::CACHE_REPAIRED)
            .copied()
            .unwrap_or(0);
        if repaired > 0 {
            break;
        }
    }
    assert!(
        repaired >= 1,
        "the session written during the outage was repaired"
    );
    assert_eq!(client.get(&app, "/count").await.body, "4");
    durable.set_down(true);
    let failed = client.post(&app, "/inc").await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    let got = common::take_metrics(&snapshotter);
    assert!(
        got.keys().any(|k| k.starts_with(telemetry::DURABLE_ERRORS)),
        "{got:?}"
    );
    durable.set_down(false);
}
