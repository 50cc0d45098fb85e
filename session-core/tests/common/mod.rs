//! Shared helpers for the store tests: service URLs, isolation, a private Redis server.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod private_redis;
pub mod proxy;

use std::time::Duration;

use session_core::{
    lifecycle::{users::UserKey, RotationKey, SessionsConfig, TheftResponse},
    store::{CacheState, CleanupPolicy, Durable, SqliteStore, TieredStore},
    Cache, ManualClock, SessionToken, Store,
};

pub use session_core::testing::{
    database_url, postgres_store, redis_store, redis_url, unavailable, unique,
};

/// Answers when a Redis server at `url` accepts a connection and a `PING`.
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

/// A private in-memory SQLite database: one connection, kept open for the whole test.
pub async fn sqlite_memory_pool() -> sqlx::SqlitePool {
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect("sqlite::memory:")
        .await
        .expect("sqlite memory")
}

/// A SQLite store on a private in-memory database.
pub async fn sqlite_store(clock: &ManualClock) -> SqliteStore {
    let store = SqliteStore::builder(sqlite_memory_pool().await)
        .clock(clock.clone())
        .build()
        .expect("table name");
    store.migrate().await.expect("migrate");
    store
}

/// Waits (bounded) until `tier` trusts its cache and the durable repair log is empty.
pub async fn until_repaired<C: Cache, D: Durable>(tier: &TieredStore<C, D>) {
    for _ in 0..200 {
        // Drives the background probe / repair.
        let _ = tier.load(&SessionToken::generate().unwrap().hash()).await;
        if tier.stats().cache_state == CacheState::Closed
            && tier
                .durable()
                .stale_marks(None, 1)
                .await
                .unwrap()
                .is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the cache was not repaired: {:?}", tier.stats());
}

/// The lifecycle settings the race tests use: rotation under `rotation_secret`, a 5 s
/// grace window, a 10-minute idle timeout, no cleanup, theft logged.
pub fn sessions_config(rotation_secret: &[u8; 32]) -> SessionsConfig {
    SessionsConfig {
        rotation: RotationKey::new(rotation_secret),
        users: UserKey::standard(),
        previous_rotations: Vec::new(),
        rotates: true,
        grace: Duration::from_secs(5),
        absolute_timeout: None,
        max_user_sessions: 50,
        idle_timeout: Duration::from_secs(600),
        cleanup: CleanupPolicy::new(0, 100),
        max_record_bytes: 64 * 1024,
        theft: TheftResponse::Log,
    }
}
