//! Helpers for tests that talk to real services: service URLs from the
//! environment, skip-or-fail when a service is down, and stores isolated per test.
//!
//! A missing service fails the test when `CI` or `REQUIRE_SERVICES` is set, and prints a
//! clear `SKIPPED` line (the helper returns `None`) elsewhere.
#![allow(clippy::expect_used)] // test helpers fail loudly by design

#[cfg(feature = "postgres")]
use std::time::Duration;

#[cfg(any(feature = "redis", feature = "postgres"))]
use crate::ManualClock;
use crate::SessionToken;

/// `REDIS_URL`, default the local server.
#[must_use]
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `DATABASE_URL`, default the local PostgreSQL `test` database.
#[must_use]
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Whether a missing service fails the test (CI) or skips it (a developer's machine).
#[must_use]
pub fn services_required() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
        || std::env::var_os("REQUIRE_SERVICES").is_some()
}

/// Handles a service that cannot be reached: panics under CI, prints a skip elsewhere.
///
/// # Panics
///
/// When services are required (see [`services_required`]).
pub fn unavailable(service: &str, err: &dyn std::fmt::Display) {
    assert!(
        !services_required(),
        "{service} is required (CI is set) but unreachable: {err}"
    );
    eprintln!("SKIPPED: {service} unreachable ({err}); set CI=1 to make this a failure");
}

/// A short random name (`<prefix>_<12 hex>`) for isolating one test's data.
///
/// # Panics
///
/// If the operating system's random source fails.
#[must_use]
pub fn unique(prefix: &str) -> String {
    let token = SessionToken::generate().expect("random source");
    format!("{prefix}_{}", &token.hash().as_str()[..12])
}

/// A Redis store under a key prefix of its own, on `clock`; `None` (after a skip line) if
/// Redis is unreachable.
///
/// # Panics
///
/// If `REDIS_URL` is not a Redis URL, or Redis is down while services are required.
#[cfg(feature = "redis")]
pub async fn redis_store(clock: &ManualClock) -> Option<crate::store::RedisStore> {
    let builder = crate::store::RedisStore::builder(redis_url());
    answering(
        isolated(builder, clock, "REDIS_URL is a Redis URL"),
        "Redis",
    )
    .await
}

/// `builder` under a key prefix of its own, on `clock`.
#[cfg(feature = "redis")]
fn isolated(
    builder: crate::store::RedisStoreBuilder,
    clock: &ManualClock,
    valid: &str,
) -> crate::store::RedisStore {
    builder
        .key_prefix(format!("{}:", unique("test")))
        .clock(clock.clone())
        .build()
        .expect(valid)
}

/// `store` if it answers a load; `None` after a skip line (or a failure when services are
/// required) if not.
#[cfg(feature = "redis")]
async fn answering(
    store: crate::store::RedisStore,
    service: &str,
) -> Option<crate::store::RedisStore> {
    use crate::Store as _;
    let probe = SessionToken::generate().expect("random source").hash();
    match store.load(&probe).await {
        Ok(_) => Some(store),
        Err(err) => {
            unavailable(service, &err);
            None
        }
    }
}

/// A Redis Cluster store (on [`cluster_urls`](super::cluster::cluster_urls)) under a key
/// prefix of its own, on `clock`; `None` (after a skip line) if no cluster can be had.
///
/// # Panics
///
/// If a node URL is not a Redis URL, or the cluster is down while services are required.
#[cfg(feature = "redis")]
pub async fn redis_cluster_store(clock: &ManualClock) -> Option<crate::store::RedisStore> {
    let urls = super::cluster::cluster_urls().await?;
    let builder = crate::store::RedisStore::cluster_builder(urls);
    let store = isolated(builder, clock, "cluster node URLs are Redis URLs");
    answering(store, "Redis Cluster").await
}

/// A PostgreSQL store in a schema of its own (migrated), on `clock`; `None` (after a skip
/// line) if PostgreSQL is unreachable.
///
/// # Panics
///
/// If the schema cannot be created, or PostgreSQL is down while services are required.
#[cfg(feature = "postgres")]
pub async fn postgres_store(clock: &ManualClock) -> Option<crate::store::PostgresStore> {
    let url = database_url();
    let connect = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&url);
    let pool = match tokio::time::timeout(Duration::from_secs(5), connect).await {
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
        .expect("create a schema for the test");
    let store = crate::store::PostgresStore::builder(pool)
        .table_name(format!("{schema}.sessions"))
        .clock(clock.clone())
        .build()
        .expect("a valid table name");
    store.migrate().await.expect("migrate the test schema");
    Some(store)
}
