//! The rotation × logout races over a real server with two worker threads (real
//! concurrency, real time), with a store wrapper that holds one request at its load while
//! others run.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::{net::TcpListener, sync::mpsc, thread, time::Duration};

use actix_session::Session;
use actix_web::{cookie::Key, web, App, HttpServer};
use session_actix::{CookieCodec, CookieContentSecurity, SessionLayer};
use session_core::{
    store::{Held, HoldAt, MemoryStore, PostgresStore, RedisStore, TieredStore},
    testing, ManualClock, SessionToken, Store,
};

const ROTATION: Duration = Duration::from_secs(2);

/// Whether nothing of a session is left under `key`: no record, or a logout's data-less
/// marker.
async fn ended<S: Store>(store: &S, key: &session_core::TokenHash) -> bool {
    match store.load(key).await.unwrap() {
        None => true,
        Some(record) => record.meta.ended && record.state.is_empty(),
    }
}
const GRACE: Duration = Duration::from_secs(1);

/// Starts a two-worker server over `Held(make())`, rotation every [`ROTATION`]; returns its
/// port and the held wrapper, or `None` if the store's services are missing (a skip).
fn serve<S, F, Fut>(key: Key, make: F) -> Option<(u16, Held<S>)>
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
                ready.send(None).unwrap();
                return;
            };
            let held = Held::new(store);
            let layer = SessionLayer::builder(held.clone(), key)
                .cookie_secure(false)
                .token_rotation(ROTATION)
                .rotation_grace(GRACE)
                .build()
                .unwrap();
            let server = HttpServer::new(move || {
                App::new()
                    .wrap(layer.clone())
                    .route(
                        "/inc",
                        web::post().to(|session: Session| async move {
                            let n = session.get::<u32>("count").unwrap().unwrap_or(0) + 1;
                            session.insert("count", n).unwrap();
                            n.to_string()
                        }),
                    )
                    .route(
                        "/count",
                        web::get().to(|session: Session| async move {
                            session
                                .get::<u32>("count")
                                .unwrap()
                                .unwrap_or(0)
                                .to_string()
                        }),
                    )
                    .route(
                        "/logout",
                        web::post().to(|session: Session| async move {
                            session.purge();
                            "bye"
                        }),
                    )
            })
            .workers(2)
            .listen(listener)
            .unwrap()
            .run();
            ready.send(Some(held)).unwrap();
            let _ = server.await;
        });
    });
    started
        .recv_timeout(Duration::from_secs(30))
        .unwrap()
        .map(|held| (port, held))
}

/// One request with `cookie` (the `name=value` pair); the body and the session cookie the
/// response set, if any.
fn send(port: u16, method: &str, path: &str, cookie: &str) -> (String, Option<String>) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .build();
    let reply = agent
        .request(method, &format!("http://127.0.0.1:{port}{path}"))
        .set("User-Agent", "race test")
        .set("Cookie", cookie)
        .call()
        .unwrap();
    let set = reply
        .all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("session="))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned);
    (reply.into_string().unwrap(), set)
}

fn token(key: &Key, pair: &str) -> SessionToken {
    let codec = CookieCodec::server_side(key, "session", CookieContentSecurity::Private);
    codec
        .open_id(pair.trim_start_matches("session="))
        .expect("a session cookie of this key")
}

/// A logout that loaded the session (id T0) before another request rotated T0 to T1 ends
/// T1 too; the client's new id opens nothing afterwards, and the store holds neither id.
async fn logout_racing_a_rotation<S: Store + Clone + Send + 'static>(
    key: Key,
    port: u16,
    held: Held<S>,
) {
    let (body, first) = tokio::task::spawn_blocking(move || send(port, "POST", "/inc", ""))
        .await
        .unwrap();
    assert_eq!(body, "1");
    let first = first.expect("a session cookie");
    tokio::time::sleep(ROTATION + Duration::from_millis(200)).await;

    // The logout is held right after its load...
    held.arm(HoldAt::AfterLoad);
    let cookie = first.clone();
    let logout = tokio::task::spawn_blocking(move || send(port, "POST", "/logout", &cookie));
    tokio::time::timeout(Duration::from_secs(10), held.reached())
        .await
        .expect("the logout reached its load");
    // ...while another request of the page rotates the id (on the other worker)...
    let cookie = first.clone();
    let (body, rotated) = tokio::task::spawn_blocking(move || send(port, "GET", "/count", &cookie))
        .await
        .unwrap();
    assert_eq!(body, "1");
    let rotated = rotated.expect("rotated: a new id");
    assert_ne!(token(&key, &rotated), token(&key, &first));
    // ...then the logout finishes.
    held.release();
    let (body, _) = tokio::time::timeout(Duration::from_secs(10), logout)
        .await
        .expect("the logout finished")
        .unwrap();
    assert_eq!(body, "bye");

    for id in [token(&key, &first), token(&key, &rotated)] {
        assert!(ended(held.inner(), &id.hash()).await, "ended");
    }
    let (body, _) = tokio::task::spawn_blocking(move || send(port, "GET", "/count", &rotated))
        .await
        .unwrap();
    assert_eq!(body, "0", "the rotated id survived the logout");
}

/// A slow read-only request that loaded the session (T0, rotation due) before another
/// request rotated it to T1 and the user logged out with T1 does not bring the session back
/// when it finishes: no id it could hand out opens a session afterwards.
async fn slow_request_across_rotation_and_logout<S: Store + Clone + Send + 'static>(
    key: Key,
    port: u16,
    held: Held<S>,
) {
    let (_, first) = tokio::task::spawn_blocking(move || send(port, "POST", "/inc", ""))
        .await
        .unwrap();
    let first = first.expect("a session cookie");
    tokio::time::sleep(ROTATION + Duration::from_millis(200)).await;

    held.arm(HoldAt::AfterLoad);
    let cookie = first.clone();
    let slow = tokio::task::spawn_blocking(move || send(port, "GET", "/count", &cookie));
    tokio::time::timeout(Duration::from_secs(10), held.reached())
        .await
        .expect("the slow request reached its load");
    let cookie = first.clone();
    let (_, rotated) = tokio::task::spawn_blocking(move || send(port, "GET", "/count", &cookie))
        .await
        .unwrap();
    let rotated = rotated.expect("rotated");
    let cookie = rotated.clone();
    let (body, _) = tokio::task::spawn_blocking(move || send(port, "POST", "/logout", &cookie))
        .await
        .unwrap();
    assert_eq!(body, "bye");
    held.release();
    let (body, handed_out) = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .expect("the slow request finished")
        .unwrap();
    assert_eq!(body, "1", "it read the state it loaded");

    let mut ids = vec![first, rotated];
    // The slow request either leaves the cookie alone or removes it (`session=`); it never
    // hands out an id.
    ids.extend(handed_out.filter(|pair| pair != "session="));
    for pair in ids {
        // At most the grace forward of the id the logout did not name (T0 → T1) is left,
        // holding nothing and leading to no record.
        if let Some(left) = held.inner().load(&token(&key, &pair).hash()).await.unwrap() {
            assert!(
                left.state.is_empty(),
                "a logged-out id holds a session again"
            );
            if !left.meta.ended {
                let successor = left.meta.successor().expect("only a forward is left");
                assert!(ended(held.inner(), &successor).await);
            }
        }
        let (body, _) = tokio::task::spawn_blocking(move || send(port, "GET", "/count", &pair))
            .await
            .unwrap();
        assert_eq!(body, "0", "logged in again");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_memory_store() {
    let key = Key::generate();
    let (port, held) = serve(key.clone(), || async { Some(MemoryStore::new()) }).unwrap();
    slow_request_across_rotation_and_logout(key, port, held).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_redis_postgres_store() {
    let key = Key::generate();
    let Some((port, held)) = serve(key.clone(), tiered) else {
        return;
    };
    slow_request_across_rotation_and_logout(key, port, held).await;
}

/// Redis in front of PostgreSQL, each test in its own prefix / table; `None` if either is
/// missing (a skip).
async fn tiered() -> Option<TieredStore<RedisStore, PostgresStore>> {
    // The stores' clock only bounds expiry; the layer runs on real time.
    let clock = ManualClock::starting_now();
    let cache = testing::redis_store(&clock).await?;
    let durable = testing::postgres_store(&clock).await?;
    Some(TieredStore::new(cache, durable))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store() {
    let key = Key::generate();
    let (port, held) = serve(key.clone(), || async { Some(MemoryStore::new()) }).unwrap();
    logout_racing_a_rotation(key, port, held).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_postgres_store() {
    let key = Key::generate();
    let Some((port, held)) = serve(key.clone(), tiered) else {
        return;
    };
    logout_racing_a_rotation(key, port, held).await;
}
