//! `session-bench instructions <variant> <requests> [write]`: serves `requests` reads (or
//! writes) in process
//! (no sockets) so that `valgrind --tool=callgrind` can count what the session layer
//! costs per request, free of the kernel's and the machine's noise. See BENCHMARKS.md.

use std::time::Duration;

use actix_session::{
    storage::{
        CookieSessionStore, LoadError, RedisSessionStore, SaveError, SessionKey, SessionStore,
        UpdateError,
    },
    SessionMiddleware,
};
use actix_web::{
    cookie::{time, Cookie, Key},
    test, web, App,
};
use session_actix::SessionLayer;
use session_core::{
    store::{MemoryStore, RedisStore},
    SessionToken, Store,
};

/// What to send: `requests` reads (`GET /read`), or writes (`POST /write`) if `write`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) requests: u64,
    pub(crate) write: bool,
}

impl Plan {
    fn method_and_path(self) -> (&'static str, &'static str) {
        if self.write {
            ("POST", "/write")
        } else {
            ("GET", "/read")
        }
    }
}

/// Runs the requests of `plan` on `variant` after one write that creates the session.
pub(crate) async fn run(variant: &str, plan: Plan) -> Result<(), String> {
    let key = Key::derive_from(&[7u8; 64]);
    match variant {
        "bare-actix" => {
            let app = test::init_service(
                App::new()
                    .route("/read", web::get().to(|| async { "0" }))
                    .route("/write", web::post().to(|| async { "0" })),
            )
            .await;
            drive(&app, plan).await
        }
        "actix-session-cookie" => actix_session(CookieSessionStore::default(), key, plan).await,
        "actix-session-floor" => actix_session(FixedStore, key, plan).await,
        "actix-session-redis" => {
            let prefix = format!("bench:{}:", std::process::id());
            let store = RedisSessionStore::builder(crate::env_urls().0)
                .cache_keygen(move |k| format!("{prefix}{k}"))
                .build()
                .await
                .map_err(|e| e.to_string())?;
            actix_session(store, key, plan).await
        }
        "ours-memory" => ours(MemoryStore::new(), key, plan).await,
        "ours-redis" => {
            let store = RedisStore::builder(&crate::env_urls().0)
                .key_prefix(format!("bench:{}:", std::process::id()))
                .build()
                .map_err(|e| e.to_string())?;
            ours(store, key, plan).await
        }
        "bare-axum" => {
            let app = axum::Router::new()
                .route("/read", axum::routing::get(|| async { "0" }))
                .route("/write", axum::routing::post(|| async { "0" }));
            drive_tower(app, plan).await
        }
        "tower-sessions-memory" => {
            let layer =
                tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default())
                    .with_secure(false);
            drive_tower(crate::servers::tower_app(layer), plan).await
        }
        other => Err(format!("no in-process variant {other}")),
    }
}

/// actix-session's own middleware over `store`.
async fn actix_session<St: SessionStore + 'static>(
    store: St,
    key: Key,
    plan: Plan,
) -> Result<(), String> {
    let app = test::init_service(
        App::new()
            .wrap(SessionMiddleware::new(store, key))
            .configure(crate::servers::routes),
    )
    .await;
    drive(&app, plan).await
}

/// This library's layer over `store`, with the defaults but for plain-HTTP cookies and no
/// cleanup, as in the load test.
async fn ours<S: Store>(store: S, key: Key, plan: Plan) -> Result<(), String> {
    let layer = SessionLayer::builder(store, key)
        .cookie_secure(false)
        .clean_check_percent(0)
        .idle_timeout(Duration::from_secs(3600))
        .build()
        .map_err(|e| e.to_string())?;
    let app = test::init_service(App::new().wrap(layer).configure(crate::servers::routes)).await;
    drive(&app, plan).await
}

/// actix-session over a store that does no work: a 256-bit id in the cookie, a fixed
/// state for every id. What any server-side store built on actix-session pays at least.
#[derive(Clone, Copy)]
struct FixedStore;

type State = std::collections::HashMap<String, String>;

impl SessionStore for FixedStore {
    async fn load(&self, _: &SessionKey) -> Result<Option<State>, LoadError> {
        Ok(Some(State::from([("n".to_owned(), "1".to_owned())])))
    }

    async fn save(&self, _: State, _: &time::Duration) -> Result<SessionKey, SaveError> {
        let token = SessionToken::generate().map_err(|e| SaveError::Other(e.into()))?;
        SessionKey::try_from(token.as_str().to_owned()).map_err(|e| SaveError::Other(e.into()))
    }

    async fn update(
        &self,
        key: SessionKey,
        _: State,
        _: &time::Duration,
    ) -> Result<SessionKey, UpdateError> {
        Ok(key)
    }

    async fn update_ttl(&self, _: &SessionKey, _: &time::Duration) -> Result<(), anyhow::Error> {
        Ok(())
    }

    async fn delete(&self, _: &SessionKey) -> Result<(), anyhow::Error> {
        Ok(())
    }
}

async fn drive<S, B>(app: &S, plan: Plan) -> Result<(), String>
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let peer = "127.0.0.1:40000".parse().map_err(|_| "peer address")?;
    let res = test::call_service(
        app,
        test::TestRequest::post()
            .uri("/write")
            .peer_addr(peer)
            .to_request(),
    )
    .await;
    let cookie: Option<Cookie<'static>> = res.response().cookies().next().map(Cookie::into_owned);
    let started = std::time::Instant::now();
    let (method, path) = plan.method_and_path();
    let method =
        actix_web::http::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    for _ in 0..plan.requests {
        let mut req = test::TestRequest::default()
            .method(method.clone())
            .uri(path)
            .peer_addr(peer);
        if let Some(cookie) = &cookie {
            req = req.cookie(cookie.clone());
        }
        let res = test::call_service(app, req.to_request()).await;
        if !res.status().is_success() {
            return Err(format!("{path} answered {}", res.status()));
        }
    }
    report(started, plan);
    Ok(())
}

fn report(started: std::time::Instant, plan: Plan) {
    if plan.requests > 0 {
        let elapsed = started.elapsed();
        eprintln!(
            "{:.0} ns/request",
            elapsed.as_nanos() as f64 / plan.requests as f64
        );
    }
}

/// As [`drive`], through an axum application (`tower::ServiceExt::oneshot`).
async fn drive_tower(app: axum::Router, plan: Plan) -> Result<(), String> {
    use axum::body::Body;
    use tower::ServiceExt as _;

    let request = |method: &str, uri: &str, cookie: Option<&str>| {
        let mut builder = axum::http::Request::builder().method(method).uri(uri);
        if let Some(cookie) = cookie {
            builder = builder.header("cookie", cookie);
        }
        builder.body(Body::empty()).map_err(|e| e.to_string())
    };
    let res = app
        .clone()
        .oneshot(request("POST", "/write", None)?)
        .await
        .map_err(|e| e.to_string())?;
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let (method, path) = plan.method_and_path();
    let started = std::time::Instant::now();
    for _ in 0..plan.requests {
        let res = app
            .clone()
            .oneshot(request(method, path, cookie.as_deref())?)
            .await
            .map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("{path} answered {}", res.status()));
        }
    }
    report(started, plan);
    Ok(())
}
