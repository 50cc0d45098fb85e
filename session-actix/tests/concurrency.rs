//! Parallel requests with one cookie, over a real server with two worker threads: changes
//! to different keys all survive (the delta writes under the version check).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::{net::TcpListener, sync::mpsc, thread, time::Duration};

use actix_session::Session;
use actix_web::{cookie::Key, web, App, HttpServer};
use session_actix::SessionLayer;
use session_core::{
    store::{MemoryStore, TieredStore},
    testing, ManualClock, Store,
};

const PARALLEL: usize = 20;
const ROUNDS: u32 = 5;

/// Starts a two-worker server over the store `make` builds (inside the server's runtime);
/// returns its port, or `None` if the store's services are missing (a skip).
fn serve<S, F, Fut>(make: F) -> Option<u16>
where
    S: Store + Clone + Send,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Option<S>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (ready, started) = mpsc::channel();
    thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let Some(store) = make().await else {
                ready.send(false).unwrap();
                return;
            };
            let layer = SessionLayer::builder(store, Key::generate())
                .cookie_secure(false)
                .no_token_rotation()
                .build()
                .unwrap();
            let server = HttpServer::new(move || {
                App::new()
                    .wrap(layer.clone())
                    .route(
                        "/start",
                        web::post().to(|session: Session| async move {
                            session.insert("started", true).unwrap();
                            "ok"
                        }),
                    )
                    .route(
                        "/inc/{field}",
                        web::post().to(|session: Session, field: web::Path<String>| async move {
                            let key = format!("f{field}");
                            let n = session.get::<u32>(&key).unwrap().unwrap_or(0) + 1;
                            session.insert(&key, n).unwrap();
                            n.to_string()
                        }),
                    )
                    .route(
                        "/get/{field}",
                        web::get().to(|session: Session, field: web::Path<String>| async move {
                            let key = format!("f{field}");
                            session.get::<u32>(&key).unwrap().unwrap_or(0).to_string()
                        }),
                    )
            })
            .workers(2)
            .listen(listener)
            .unwrap()
            .run();
            ready.send(true).unwrap();
            let _ = server.await;
        });
    });
    started
        .recv_timeout(Duration::from_secs(30))
        .unwrap()
        .then_some(port)
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .build()
}

/// Twenty parallel increments of twenty different keys, five rounds, one cookie: every
/// acknowledged increment is there at the end.
fn parallel_increments_of_different_keys_all_survive(port: u16) {
    let base = format!("http://127.0.0.1:{port}");
    let start = agent().post(&format!("{base}/start")).call().unwrap();
    let cookie = start
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let mut acknowledged = [0u32; PARALLEL];
    for _ in 0..ROUNDS {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(PARALLEL));
        let requests: Vec<_> = (0..PARALLEL)
            .map(|i| {
                let (base, cookie, barrier) = (base.clone(), cookie.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    agent()
                        .post(&format!("{base}/inc/{i}"))
                        .set("cookie", &cookie)
                        .call()
                        .is_ok()
                })
            })
            .collect();
        for (i, request) in requests.into_iter().enumerate() {
            if request.join().unwrap() {
                acknowledged[i] += 1;
            }
        }
    }
    let mut lost = 0;
    for (i, acked) in acknowledged.iter().enumerate() {
        assert_eq!(*acked, ROUNDS, "field {i}: every request answered 200");
        let stored: u32 = agent()
            .get(&format!("{base}/get/{i}"))
            .set("cookie", &cookie)
            .call()
            .unwrap()
            .into_string()
            .unwrap()
            .parse()
            .unwrap();
        lost += acked - stored.min(*acked);
    }
    assert_eq!(lost, 0, "acknowledged increments lost");
}

#[test]
fn memory_store() {
    let port = serve(|| async { Some(MemoryStore::new()) }).unwrap();
    parallel_increments_of_different_keys_all_survive(port);
}

#[test]
fn redis_postgres_store() {
    let Some(port) = serve(|| async {
        let clock = ManualClock::starting_now();
        let cache = testing::redis_store(&clock).await?;
        let durable = testing::postgres_store(&clock).await?;
        // Real time for the session layer; the stores' clock is only used for expiry.
        let _ = clock;
        Some(TieredStore::new(cache, durable))
    }) else {
        return;
    };
    parallel_increments_of_different_keys_all_survive(port);
}
