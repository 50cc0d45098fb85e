//! Shared helpers for the store tests: service URLs, isolation, a private Redis server.
#![allow(dead_code, unreachable_pub)]

pub mod conformance;
pub mod private_redis;

use std::time::Duration;

use session_core::{
    store::{PostgresStore, RedisStore, SqliteStore},
    ManualClock, SessionToken,
};

/// `REDIS_URL`, default the local server.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `DATABASE_URL`, default the local PostgreSQL `test` database.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Whether a missing service fails the test (CI) or skips it (a developer's machine).
fn services_required() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
        || std::env::var_os("REQUIRE_SERVICES").is_some()
}

/// Handles a service that cannot be reached: panics in CI, prints a skip elsewhere.
pub fn unavailable(service: &str, err: &dyn std::fmt::Display) {
    if services_required() {
        panic!("{service} is required (CI is set) but unreachable: {err}");
    }
    eprintln!("SKIPPED: {service} unreachable ({err}); set CI=1 to make this a failure");
}

/// A short random name for isolating one test's data.
pub fn unique(prefix: &str) -> String {
    let token = SessionToken::generate().expect("random source");
    format!("{prefix}_{}", &token.hash().as_str()[..12])
}

/// A Redis store under its own key prefix, or `None` (skip) if Redis is down.
pub async fn redis_store(clock: &ManualClock) -> Option<RedisStore> {
    let prefix = format!("{}:", unique("test"));
    let store = RedisStore::builder(redis_url())
        .key_prefix(prefix)
        .clock(clock.clone())
        .build()
        .expect("redis url");
    match ping(&redis_url()).await {
        Ok(()) => Some(store),
        Err(err) => {
            unavailable("Redis", &err);
            None
        }
    }
}

pub async fn ping(url: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))??;
    redis::cmd("PING").query_async::<()>(&mut conn).await
}

/// A PostgreSQL store in a schema of its own, or `None` (skip) if PostgreSQL is down.
pub async fn postgres_store(clock: &ManualClock) -> Option<PostgresStore> {
    let pool = match tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&database_url()),
    )
    .await
    {
        Ok(Ok(pool)) => pool,
        Ok(Err(err)) => {
            unavailable("PostgreSQL", &err);
            return None;
        }
        Err(err) => {
            unavailable("PostgreSQL", &err);
            return None;
        }
    };
    let schema = unique("t");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .expect("create schema");
    let store = PostgresStore::builder(pool)
        .table_name(format!("{schema}.sessions"))
        .clock(clock.clone())
        .build()
        .expect("table name");
    store.migrate().await.expect("migrate");
    Some(store)
}

/// A SQLite store on a private in-memory database.
pub async fn sqlite_store(clock: &ManualClock) -> SqliteStore {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect("sqlite::memory:")
        .await
        .expect("sqlite memory");
    let store = SqliteStore::builder(pool)
        .clock(clock.clone())
        .build()
        .expect("table name");
    store.migrate().await.expect("migrate");
    store
}
