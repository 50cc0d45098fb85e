//! The server variants, each with `GET /read` (reads an integer from the session) and
//! `POST /write` (increments it), served by one worker thread.

use std::{sync::Arc, time::Duration};

use actix_session::{
    storage::CookieSessionStore, storage::RedisSessionStore, Session, SessionMiddleware,
};
use actix_web::{cookie::Key, web, App, HttpResponse, HttpServer};
use session_actix::SessionLayer;
use session_core::{
    store::{Counted, MemoryStore, NearCache, PostgresStore, RedisStore, SqliteStore, TieredStore},
    Store,
};

/// Every variant, in table order.
pub(crate) const VARIANTS: &[&str] = &[
    "bare-actix",
    "actix-session-cookie",
    "actix-session-redis",
    "ours-memory",
    "ours-redis",
    "ours-memory+sqlite",
    "ours-redis+postgres",
    "ours-near+redis+postgres",
    "ours-cluster+postgres",
    "tower-sessions-memory",
    "tower-sessions-moka+postgres",
    "tower-sessions-redis+postgres",
];

/// The variants the targets compare against.
pub(crate) const BARE: &str = "bare-actix";
/// actix-session over Redis.
pub(crate) const ACTIX_REDIS: &str = "actix-session-redis";

pub(crate) struct Env {
    pub(crate) redis_url: String,
    pub(crate) database_url: String,
    pub(crate) port: u16,
}

async fn read(session: Session) -> HttpResponse {
    let n = session.get::<u64>("n").ok().flatten().unwrap_or(0);
    HttpResponse::Ok().body(n.to_string())
}

async fn write(session: Session) -> HttpResponse {
    let n = session.get::<u64>("n").ok().flatten().unwrap_or(0) + 1;
    match session.insert("n", n) {
        Ok(()) => HttpResponse::Ok().body(n.to_string()),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/read", web::get().to(read))
        .route("/write", web::post().to(write));
}

/// Runs `variant` until killed.
pub(crate) async fn serve(variant: &str, env: Env) -> std::io::Result<()> {
    let key = Key::derive_from(&[7u8; 64]);
    let addr = ("127.0.0.1", env.port);
    let prefix = format!("bench:{}:", std::process::id());
    match variant {
        "bare-actix" => {
            HttpServer::new(|| {
                App::new()
                    .route("/read", web::get().to(|| async { "0" }))
                    .route("/write", web::post().to(|| async { "1" }))
            })
            .workers(1)
            .bind(addr)?
            .run()
            .await
        }
        "actix-session-cookie" => {
            HttpServer::new(move || {
                App::new()
                    .wrap(SessionMiddleware::new(
                        CookieSessionStore::default(),
                        key.clone(),
                    ))
                    .configure(routes)
            })
            .workers(1)
            .bind(addr)?
            .run()
            .await
        }
        "actix-session-redis" => {
            let store = RedisSessionStore::builder(env.redis_url.clone())
                .cache_keygen(move |k| format!("{prefix}{k}"))
                .build()
                .await
                .map_err(std::io::Error::other)?;
            HttpServer::new(move || {
                App::new()
                    .wrap(SessionMiddleware::new(store.clone(), key.clone()))
                    .configure(routes)
            })
            .workers(1)
            .bind(addr)?
            .run()
            .await
        }
        "ours-memory" => {
            let store = Counted::new(MemoryStore::new());
            let stats = single(store.clone());
            ours(store, stats, key, env.port).await
        }
        "ours-redis" => {
            let store = Counted::new(
                RedisStore::builder(&env.redis_url)
                    .key_prefix(prefix)
                    .build()
                    .map_err(std::io::Error::other)?,
            );
            let stats = single(store.clone());
            ours(store, stats, key, env.port).await
        }
        "ours-memory+sqlite" => {
            let path = std::env::var("BENCH_SQLITE").unwrap_or_else(|_| {
                let file =
                    std::env::temp_dir().join(format!("bench-{}.sqlite", std::process::id()));
                file.display().to_string()
            });
            let sqlite = SqliteStore::connect(&format!("sqlite://{path}"))
                .await
                .map_err(std::io::Error::other)?;
            let (cache, durable) = (Counted::new(MemoryStore::new()), Counted::new(sqlite));
            let stats = tiers(cache.clone(), durable.clone());
            ours(TieredStore::new(cache, durable), stats, key, env.port).await
        }
        "ours-redis+postgres" | "ours-near+redis+postgres" | "ours-cluster+postgres" => {
            let cache = if variant == "ours-cluster+postgres" {
                let urls = std::env::var("REDIS_CLUSTER_URLS").map_err(|_| {
                    std::io::Error::other("ours-cluster+postgres needs REDIS_CLUSTER_URLS")
                })?;
                RedisStore::cluster_builder(urls.split(',').map(str::to_owned))
            } else {
                RedisStore::builder(&env.redis_url)
            }
            .key_prefix(prefix)
            .build()
            .map_err(std::io::Error::other)?;
            let durable = PostgresStore::builder(pg_pool(&env.database_url).await?)
                .table_name(
                    std::env::var("BENCH_PG_TABLE").unwrap_or_else(|_| "bench_sessions".into()),
                )
                .build()
                .map_err(std::io::Error::other)?;
            durable.migrate().await.map_err(std::io::Error::other)?;
            let durable = Counted::new(durable);
            if variant == "ours-near+redis+postgres" {
                let near = NearCache::new(cache);
                if !near.wait_tracking(Duration::from_secs(5)).await {
                    return Err(std::io::Error::other(
                        "the near-cache did not start tracking",
                    ));
                }
                let cache = Counted::new(near);
                let stats = tiers(cache.clone(), durable.clone());
                ours(TieredStore::new(cache, durable), stats, key, env.port).await
            } else {
                let cache = Counted::new(cache);
                let stats = tiers(cache.clone(), durable.clone());
                ours(TieredStore::new(cache, durable), stats, key, env.port).await
            }
        }
        "tower-sessions-memory" => {
            let layer =
                tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default())
                    .with_secure(false);
            tower_serve(layer, env.port).await
        }
        "tower-sessions-moka+postgres" => tower(env, false).await,
        "tower-sessions-redis+postgres" => tower(env, true).await,
        other => Err(std::io::Error::other(format!("unknown variant {other}"))),
    }
}

/// Store calls since the last call, as `{"cache": n, "durable": n}` (each call is one
/// backend command or statement).
type Stats = Arc<dyn Fn() -> String + Send + Sync>;

fn single<S: Send + Sync + 'static>(store: Counted<S>) -> Stats {
    Arc::new(move || {
        let c = store.take_counts();
        format!(
            r#"{{"cache":{},"durable":0,"cache_writes":{},"durable_writes":0}}"#,
            c.total(),
            c.writes()
        )
    })
}

fn tiers<C: Send + Sync + 'static, D: Send + Sync + 'static>(
    cache: Counted<C>,
    durable: Counted<D>,
) -> Stats {
    Arc::new(move || {
        let (c, d) = (cache.take_counts(), durable.take_counts());
        format!(
            r#"{{"cache":{},"durable":{},"cache_writes":{},"durable_writes":{}}}"#,
            c.total(),
            d.total(),
            c.writes(),
            d.writes()
        )
    })
}

/// This library with the settings a user gets by default (rotation and refresh never fall
/// due within a run), except plain-HTTP cookies for the loopback load generator.
async fn ours<S: Store + Clone>(
    store: S,
    stats: Stats,
    key: Key,
    port: u16,
) -> std::io::Result<()> {
    let layer = SessionLayer::builder(store, key)
        .cookie_secure(false)
        .clean_check_percent(0)
        .idle_timeout(Duration::from_secs(3600))
        .build()
        .map_err(std::io::Error::other)?;
    // The layer wraps the whole app, as the other variants' middleware does (a scope
    // around the routes would cost ours about 1k instructions per request more). The
    // stats route sends no cookie, so the layer loads nothing for it.
    HttpServer::new(move || {
        let stats = Arc::clone(&stats);
        App::new()
            .wrap(layer.clone())
            .route(
                "/__stats",
                web::get().to(move || {
                    let stats = Arc::clone(&stats);
                    async move { stats() }
                }),
            )
            .configure(routes)
    })
    .workers(1)
    .bind(("127.0.0.1", port))?
    .run()
    .await
}

/// The PostgreSQL pool of every variant that has one, so both libraries get the same
/// settings: no health-check round trip on every checkout.
async fn pg_pool(url: &str) -> std::io::Result<sqlx::PgPool> {
    sqlx::postgres::PgPoolOptions::new()
        .test_before_acquire(false)
        .connect(url)
        .await
        .map_err(std::io::Error::other)
}

/// axum + tower-sessions with its caching store: moka (or Redis) in front of PostgreSQL.
async fn tower(env: Env, redis_cache: bool) -> std::io::Result<()> {
    use tower_sessions::{CachingSessionStore, SessionManagerLayer};
    use tower_sessions_moka_store::MokaStore;
    use tower_sessions_sqlx_store::PostgresStore as TowerPostgres;

    let durable = TowerPostgres::new(pg_pool(&env.database_url).await?)
        .with_table_name("bench_tower_sessions")
        .map_err(std::io::Error::other)?;
    durable.migrate().await.map_err(std::io::Error::other)?;
    if redis_cache {
        use tower_sessions_redis_store::{fred::prelude::*, RedisStore as TowerRedis};
        let config = Config::from_url(&env.redis_url).map_err(std::io::Error::other)?;
        let pool = Pool::new(config, None, None, None, 1).map_err(std::io::Error::other)?;
        let _connection = pool.connect();
        pool.wait_for_connect()
            .await
            .map_err(std::io::Error::other)?;
        let store = CachingSessionStore::new(TowerRedis::new(pool), durable);
        return tower_serve(SessionManagerLayer::new(store).with_secure(false), env.port).await;
    }
    let store = CachingSessionStore::new(MokaStore::new(Some(100_000)), durable);
    tower_serve(SessionManagerLayer::new(store).with_secure(false), env.port).await
}

async fn tower_serve<S>(
    layer: tower_sessions::SessionManagerLayer<S>,
    port: u16,
) -> std::io::Result<()>
where
    S: tower_sessions::SessionStore + Clone,
{
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, tower_app(layer)).await
}

/// The axum application of the tower-sessions variants.
pub(crate) fn tower_app<S>(layer: tower_sessions::SessionManagerLayer<S>) -> axum::Router
where
    S: tower_sessions::SessionStore + Clone,
{
    use axum::routing::{get, post};
    async fn read(session: tower_sessions::Session) -> String {
        session
            .get::<u64>("n")
            .await
            .ok()
            .flatten()
            .unwrap_or(0)
            .to_string()
    }
    async fn write(session: tower_sessions::Session) -> String {
        let n = session.get::<u64>("n").await.ok().flatten().unwrap_or(0) + 1;
        let _ = session.insert("n", n).await;
        n.to_string()
    }
    axum::Router::new()
        .route("/read", get(read))
        .route("/write", post(write))
        .layer(layer)
}
