//! `session-bench instructions <variant> <requests>`: serves `requests` reads in process
//! (no sockets) so that `valgrind --tool=callgrind` can count what the session layer
//! costs per request, free of the kernel's and the machine's noise. See BENCHMARKS.md.

use std::time::Duration;

use actix_session::{
    storage::{CookieSessionStore, LoadError, SaveError, SessionKey, SessionStore, UpdateError},
    SessionMiddleware,
};
use actix_web::{
    cookie::{time, Cookie, Key},
    test, web, App,
};
use session_actix::SessionLayer;
use session_core::{store::MemoryStore, SessionToken};

/// Runs `requests` reads of `variant` after one write that creates the session.
pub(crate) async fn run(variant: &str, requests: u64) -> Result<(), String> {
    let key = Key::derive_from(&[7u8; 64]);
    match variant {
        "bare-actix" => {
            let app =
                test::init_service(App::new().route("/read", web::get().to(|| async { "0" })))
                    .await;
            drive(&app, requests).await
        }
        "actix-session-cookie" => {
            let app = test::init_service(
                App::new()
                    .wrap(SessionMiddleware::new(CookieSessionStore::default(), key))
                    .configure(crate::servers::routes),
            )
            .await;
            drive(&app, requests).await
        }
        "actix-session-floor" => {
            let app = test::init_service(
                App::new()
                    .wrap(SessionMiddleware::new(FixedStore, key))
                    .configure(crate::servers::routes),
            )
            .await;
            drive(&app, requests).await
        }
        "ours-memory" => {
            let layer = SessionLayer::builder(MemoryStore::new(), key)
                .cookie_secure(false)
                .clean_check_percent(0)
                .idle_timeout(Duration::from_secs(3600))
                .build()
                .map_err(|e| e.to_string())?;
            let app =
                test::init_service(App::new().wrap(layer).configure(crate::servers::routes)).await;
            drive(&app, requests).await
        }
        other => Err(format!("no in-process variant {other}")),
    }
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

async fn drive<S, B>(app: &S, requests: u64) -> Result<(), String>
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
    for _ in 0..requests {
        let mut req = test::TestRequest::get().uri("/read").peer_addr(peer);
        if let Some(cookie) = &cookie {
            req = req.cookie(cookie.clone());
        }
        let res = test::call_service(app, req.to_request()).await;
        if !res.status().is_success() {
            return Err(format!("read answered {}", res.status()));
        }
    }
    if requests > 0 {
        let elapsed = started.elapsed();
        eprintln!(
            "{:.0} ns/request",
            elapsed.as_nanos() as f64 / requests as f64
        );
    }
    Ok(())
}
