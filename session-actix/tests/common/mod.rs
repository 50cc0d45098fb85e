//! Test harness: stores (memory; tiered Redis + PostgreSQL), a test app, and a client that
//! keeps its cookie like a browser.
#![allow(dead_code, unreachable_pub)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use actix_web::{
    body::MessageBody,
    cookie::{Cookie, Key},
    dev::{Service, ServiceResponse},
    http::{header, StatusCode},
    test, web, App, HttpResponse,
};
use session_actix::{
    CookieCodec, CookieContentSecurity, Flash, Level, Session, SessionAccessor, SessionInfo,
    SessionLayer, SessionLayerBuilder, SessionStart, Typed,
};
use session_core::{
    session,
    store::{
        Counted, Durable, MemoryStore, OpCounts, PostgresStore, RedisStore, SqliteStore,
        TieredStore,
    },
    testing, Cache, ManualClock, Store,
};

pub const UA: &str = "Mozilla/5.0 (test browser)";

/// What a test needs from a store.
pub struct Fixture<S> {
    pub store: S,
    pub clock: ManualClock,
    /// Operations since the last call, per tier: (cache, durable). A single-tier store
    /// reports itself as the cache.
    pub costs: Arc<dyn Fn() -> (OpCounts, OpCounts) + Send + Sync>,
}

pub type MemoryFixture = Fixture<Counted<MemoryStore>>;
pub type TieredFixtureStore = TieredStore<Counted<RedisStore>, Counted<PostgresStore>>;
pub type TieredFixture = Fixture<TieredFixtureStore>;

pub async fn memory() -> Option<MemoryFixture> {
    let clock = ManualClock::starting_now();
    let store = MemoryStore::builder().clock(clock.clone()).build();
    Some(single(store, clock))
}

pub async fn tiered() -> Option<TieredFixture> {
    let clock = ManualClock::starting_now();
    let cache = testing::redis_store(&clock).await?;
    let durable = testing::postgres_store(&clock).await?;
    Some(two_tiers(cache, durable, clock))
}

/// A tiered fixture over `cache` and `durable`, each counted.
fn two_tiers<C, D>(
    cache: C,
    durable: D,
    clock: ManualClock,
) -> Fixture<TieredStore<Counted<C>, Counted<D>>>
where
    C: Cache + Clone,
    D: Durable + Clone,
{
    let (cache, durable) = (Counted::new(cache), Counted::new(durable));
    let (c, d) = (cache.clone(), durable.clone());
    Fixture {
        // The periodic repair pass (one SQL statement a second) stays out of the counts.
        store: TieredStore::builder(cache, durable)
            .clock(clock.clone())
            .repair_interval(Duration::from_secs(3600))
            .build(),
        clock,
        costs: Arc::new(move || (c.take_counts(), d.take_counts())),
    }
}

/// A single-tier fixture over `store` (its counts reported as the cache's).
fn single<S: Store + Clone>(store: S, clock: ManualClock) -> Fixture<Counted<S>> {
    let store = Counted::new(store);
    let counted = store.clone();
    Fixture {
        store,
        clock,
        costs: Arc::new(move || (counted.take_counts(), OpCounts::default())),
    }
}

pub async fn redis() -> Option<Fixture<Counted<RedisStore>>> {
    let clock = ManualClock::starting_now();
    let store = testing::redis_store(&clock).await?;
    Some(single(store, clock))
}

pub async fn postgres() -> Option<Fixture<Counted<PostgresStore>>> {
    let clock = ManualClock::starting_now();
    let store = testing::postgres_store(&clock).await?;
    Some(single(store, clock))
}

/// A SQLite store on a private in-memory database.
async fn sqlite_store(clock: &ManualClock) -> SqliteStore {
    let opened = SqliteStore::connect("sqlite::memory:")
        .await
        .expect("an in-memory SQLite database");
    let store = SqliteStore::builder(opened.pool().clone())
        .clock(clock.clone())
        .build()
        .expect("the default table name");
    store.migrate().await.expect("migrate");
    store
}

pub async fn sqlite() -> Option<Fixture<Counted<SqliteStore>>> {
    let clock = ManualClock::starting_now();
    let store = sqlite_store(&clock).await;
    Some(single(store, clock))
}

pub type TieredSqliteStore = TieredStore<Counted<MemoryStore>, Counted<SqliteStore>>;

/// The embedded default: the in-process cache in front of SQLite.
pub async fn tiered_sqlite() -> Option<Fixture<TieredSqliteStore>> {
    let clock = ManualClock::starting_now();
    let cache = MemoryStore::builder().clock(clock.clone()).build();
    let durable = sqlite_store(&clock).await;
    Some(two_tiers(cache, durable, clock))
}

/// The typed state the test app uses.
#[session]
#[derive(Debug, Default)]
pub struct Profile {
    #[session(default)]
    pub visits: u32,
    #[session(default)]
    pub name: String,
}

/// A layer with the defaults, except what `configure` changes, on the fixture's clock.
pub fn layer<S: Store + Clone>(
    fixture: &Fixture<S>,
    key: &Key,
    configure: impl FnOnce(SessionLayerBuilder<S>) -> SessionLayerBuilder<S>,
) -> SessionLayer<S> {
    let builder =
        SessionLayer::builder(fixture.store.clone(), key.clone()).clock(fixture.clock.clone());
    configure(builder).build().unwrap()
}

/// The test app: a handful of routes over `layer`.
pub async fn app<S: Store + Clone>(
    layer: SessionLayer<S>,
) -> impl Service<
    actix_http::Request,
    Response = ServiceResponse<impl MessageBody>,
    Error = actix_web::Error,
> {
    test::init_service(
        App::new()
            .wrap(layer)
            .route("/public", web::get().to(|| async { "ok" }))
            .route(
                "/count",
                web::get().to(|session: Session| async move {
                    let count = session.get::<u32>("count").unwrap_or_default().unwrap_or(0);
                    count.to_string()
                }),
            )
            .route(
                "/inc",
                web::post().to(|session: Session| async move {
                    let count = session.get::<u32>("count").unwrap_or_default().unwrap_or(0) + 1;
                    session.insert("count", count).unwrap();
                    count.to_string()
                }),
            )
            .route(
                "/login",
                web::post().to(|session: Session| async move {
                    session.renew();
                    session.insert("user", "alice").unwrap();
                    "logged in"
                }),
            )
            .route(
                "/logout",
                web::post().to(|session: Session| async move {
                    session.purge();
                    "bye"
                }),
            )
            .route(
                "/accessor/visit",
                web::post().to(|session: SessionAccessor| async move {
                    let profile = Profile::view(&session);
                    profile.update_visits(|visits| *visits += 1).unwrap();
                    profile.visits().unwrap().to_string()
                }),
            )
            .route(
                "/flash/more",
                web::post().to(|flash: Flash| async move {
                    flash.push(Level::Info, "and one more").unwrap();
                    "queued"
                }),
            )
            .route(
                "/flash/strict",
                web::get().to(
                    |flash: Flash,
                     query: web::Query<std::collections::HashMap<String, u32>>| async move {
                        format!("{}:{}", flash.messages().len(), query.len())
                    },
                ),
            )
            .route(
                "/signout",
                web::post().to(|session: Session, flash: Flash| async move {
                    session.purge();
                    flash.push(Level::Info, "signed out").unwrap();
                    "bye"
                }),
            )
            .route(
                "/info",
                web::get().to(|info: SessionInfo| async move {
                    let from = match info.start() {
                        SessionStart::New => "new".to_owned(),
                        SessionStart::Refused { reason } => format!("refused:{reason}"),
                        SessionStart::Continued { from, .. } => format!("{from:?}"),
                        _ => "other".to_owned(),
                    };
                    format!(
                        "{from}|{}|{}",
                        info.short_id().map(|id| id.to_string()).unwrap_or_default(),
                        info.version().map(|v| v.to_string()).unwrap_or_default()
                    )
                }),
            )
            .route(
                "/flash",
                web::post().to(|flash: Flash| async move {
                    flash.push(Level::Success, "saved").unwrap();
                    flash.push(Level::Error, "but mind the gap").unwrap();
                    "queued"
                }),
            )
            .route(
                "/flash",
                web::get().to(|flash: Flash| async move {
                    let texts: Vec<String> = flash
                        .messages()
                        .iter()
                        .map(|m| format!("{}:{}", m.level.as_str(), m.text))
                        .collect();
                    texts.join("|")
                }),
            )
            .route(
                "/profile",
                web::get().to(|profile: Typed<Profile>| async move {
                    format!("{}:{}", profile.visits, profile.name)
                }),
            )
            .route(
                "/profile/visit",
                web::post().to(|mut profile: Typed<Profile>| async move {
                    profile.visits += 1;
                    profile.visits.to_string()
                }),
            )
            .route(
                "/profile/same",
                web::post().to(|mut profile: Typed<Profile>| async move {
                    let name = profile.name.clone();
                    profile.name = name; // assigned, but unchanged
                    HttpResponse::Ok().finish()
                }),
            ),
    )
    .await
}

/// A browser: one cookie, one address, one User-Agent.
#[derive(Clone)]
pub struct Client {
    pub cookie: Option<Cookie<'static>>,
    pub peer: SocketAddr,
    pub user_agent: String,
    pub headers: Vec<(String, String)>,
}

/// What a response carried.
pub struct Reply {
    pub status: StatusCode,
    pub body: String,
    pub set_cookie: Option<Cookie<'static>>,
    pub headers: actix_web::http::header::HeaderMap,
}

impl Client {
    pub fn new() -> Self {
        Self::from_ip("203.0.113.7")
    }

    pub fn from_ip(ip: &str) -> Self {
        Self {
            cookie: None,
            peer: SocketAddr::new(ip.parse().unwrap(), 40000),
            user_agent: UA.to_owned(),
            headers: Vec::new(),
        }
    }

    pub async fn get<A, B>(&mut self, app: &A, path: &str) -> Reply
    where
        A: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: MessageBody,
    {
        self.send(app, test::TestRequest::get().uri(path)).await
    }

    pub async fn post<A, B>(&mut self, app: &A, path: &str) -> Reply
    where
        A: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: MessageBody,
    {
        self.send(app, test::TestRequest::post().uri(path)).await
    }

    pub async fn send<A, B>(&mut self, app: &A, req: test::TestRequest) -> Reply
    where
        A: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: MessageBody,
    {
        let reply = self.send_without_keeping(app, req).await;
        if let Some(cookie) = &reply.set_cookie {
            let removed = cookie.max_age() == Some(actix_web::cookie::time::Duration::ZERO);
            self.cookie = (!removed).then(|| cookie.clone());
        }
        reply
    }

    /// Sends without updating the stored cookie (a concurrent request of the same page).
    pub async fn send_without_keeping<A, B>(&self, app: &A, req: test::TestRequest) -> Reply
    where
        A: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: MessageBody,
    {
        let mut req = req
            .peer_addr(self.peer)
            .insert_header((header::USER_AGENT, self.user_agent.clone()));
        for (name, value) in &self.headers {
            req = req.append_header((name.clone(), value.clone()));
        }
        if let Some(cookie) = &self.cookie {
            req = req.cookie(cookie.clone());
        }
        let (status, headers, set_cookie, body) =
            match test::try_call_service(app, req.to_request()).await {
                Ok(res) => {
                    let status = res.status();
                    let headers = res.headers().clone();
                    let set_cookie = res
                        .response()
                        .cookies()
                        .find(|c| c.name() == "session")
                        .map(|c| c.into_owned());
                    let body = test::read_body(res).await.to_vec();
                    (status, headers, set_cookie, body)
                }
                // A middleware error: what actix-web would send.
                Err(err) => {
                    let res = err.error_response();
                    let status = res.status();
                    let headers = res.headers().clone();
                    let body = actix_web::body::to_bytes(res.into_body())
                        .await
                        .unwrap_or_default()
                        .to_vec();
                    (status, headers, None, body)
                }
            };
        Reply {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            set_cookie,
            headers,
        }
    }
}

/// A `tracing` writer that keeps what is logged, for tests that read the logs.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The metrics recorded since the last call, as `name{label=value}` → count (counters) or
/// number of samples (histograms); zeros left out.
pub fn take_metrics(
    snapshotter: &metrics_util::debugging::Snapshotter,
) -> std::collections::HashMap<String, u64> {
    use metrics_util::debugging::DebugValue;
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = if labels.is_empty() {
                key.name().to_owned()
            } else {
                format!("{}{{{}}}", key.name(), labels.join(","))
            };
            let n = match value {
                DebugValue::Counter(n) => n,
                DebugValue::Histogram(samples) => samples.len() as u64,
                DebugValue::Gauge(_) => 0,
            };
            (name, n)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Whether nothing of a session is left under `key`: no record, or the data-less marker a
/// logout leaves where ids rotate.
pub async fn ended<S: Store>(store: &S, key: &session_core::TokenHash) -> bool {
    match store.load(key).await.unwrap() {
        None => true,
        Some(record) => record.meta.ended && record.state.is_empty(),
    }
}

/// An encrypted session cookie holding `value`, as the server would make it with `key`: a
/// client that knows the key (or a test) can put any id in it.
pub fn forge_cookie(key: &Key, value: &str) -> Cookie<'static> {
    let codec = CookieCodec::server_side(key, "session", CookieContentSecurity::Private);
    let sealed = match session_core::SessionToken::try_from(value) {
        Ok(token) => codec.seal_id(&token),
        Err(_) => codec.seal(value.as_bytes()),
    };
    Cookie::new("session", sealed.unwrap())
}

/// The token inside an (encrypted) session cookie.
pub fn token_of(key: &Key, cookie: &Cookie<'static>) -> session_core::SessionToken {
    let codec = CookieCodec::server_side(key, "session", CookieContentSecurity::Private);
    codec
        .open_id(cookie.value())
        .expect("a session cookie of this key")
}

/// Runs an async test body against the memory store and the tiered Redis + PostgreSQL
/// store; a missing service skips the tiered run (fails under CI).
#[allow(unused_macros)]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory_store {
            $(
                #[actix_web::test]
                async fn $name() {
                    if let Some(fixture) = $crate::common::memory().await {
                        super::$name(fixture).await;
                    }
                }
            )*
        }
        mod tiered_redis_postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    if let Some(fixture) = $crate::common::tiered().await {
                        super::$name(fixture).await;
                    }
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use both_stores;
