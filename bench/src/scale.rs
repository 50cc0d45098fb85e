//! The scale run: a million sessions, load and save cost at that size, and cleanup of the
//! expired half while `/read` is under load.

use std::time::{Duration, Instant, SystemTime};

use hyper::Method;
use ring::digest;
use session_core::{
    store::{PostgresStore, SqliteStore},
    Record, Store, TokenHash,
};

use crate::load;

/// Store key of synthetic session `i`: hex SHA-256 of its decimal text (the same in SQL).
fn key(i: u64) -> TokenHash {
    let d = digest::digest(&digest::SHA256, i.to_string().as_bytes());
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    TokenHash::from_stored(&hex).unwrap_or_else(|| unreachable!("64 hex digits"))
}

fn millis(t: SystemTime) -> i64 {
    i64::try_from(
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
}

const RECORD: &[u8] = br#"{"v":1,"created":0,"state":{"n":1}}"#;

/// Mean and p99 of `op` over `samples` live (odd) sessions, in microseconds.
async fn cost<F, Fut>(n: u64, samples: u64, mut op: F) -> (f64, u64)
where
    F: FnMut(TokenHash) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut times = Vec::new();
    let step = (n / samples).max(2) | 1;
    let mut i = 1;
    while i <= n && (times.len() as u64) < samples {
        let start = Instant::now();
        assert!(op(key(i)).await, "session {i} should be live");
        times.push(u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX));
        i += step + (step % 2);
    }
    times.sort_unstable();
    let mean = times.iter().sum::<u64>() as f64 / times.len().max(1) as f64;
    (
        mean,
        times.get(times.len() * 99 / 100).copied().unwrap_or(0),
    )
}

pub(crate) struct ScaleReport {
    pub(crate) backend: &'static str,
    pub(crate) rows: u64,
    pub(crate) fill_s: f64,
    pub(crate) load_us: (f64, u64),
    pub(crate) save_us: (f64, u64),
    pub(crate) deleted: u64,
    pub(crate) cleanup_s: f64,
    pub(crate) p99_before_ms: f64,
    pub(crate) p99_during_ms: f64,
    pub(crate) rps_before: f64,
    pub(crate) rps_during: f64,
}

/// Cleans up in batches of 1 000 while `/read` is driven on `port`; returns (deleted,
/// seconds, load during cleanup).
async fn cleanup_under_load<S: Store>(
    store: &S,
    port: u16,
    cookie: Option<String>,
) -> (u64, f64, load::LoadResult) {
    let cleanup = async {
        let start = Instant::now();
        let mut deleted = 0u64;
        loop {
            let n = store.cleanup(1_000).await.unwrap_or(0);
            deleted += n as u64;
            if n < 1_000 {
                break;
            }
            tokio::task::yield_now().await;
        }
        (deleted, start.elapsed().as_secs_f64())
    };
    let during = load::run(
        port,
        Method::GET,
        "/read",
        std::slice::from_ref(&cookie),
        16,
        Duration::from_secs(8),
    );
    let ((deleted, secs), during) = tokio::join!(cleanup, during);
    (deleted, secs, during)
}

pub(crate) async fn postgres(
    n: u64,
    database_url: &str,
    server: &crate::ServerHandle,
) -> Result<ScaleReport, String> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect(database_url)
        .await
        .map_err(|e| e.to_string())?;
    let store = PostgresStore::builder(pool.clone())
        .table_name(crate::SCALE_TABLE)
        .build()
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    sqlx::query(&format!("TRUNCATE {}", crate::SCALE_TABLE))
        .execute(&pool)
        .await
        .map_err(|e| e.to_string())?;
    let now = SystemTime::now();
    let start = Instant::now();
    sqlx::query(&format!(
        "INSERT INTO {} (id, data, expires_at, expires_hour) \
         SELECT encode(sha256(i::text::bytea), 'hex'), $1, e, e / 3600000 FROM \
         (SELECT i, CASE WHEN i % 2 = 0 THEN $2 ELSE $3 END AS e \
          FROM generate_series(1, $4) AS i) AS rows",
        crate::SCALE_TABLE
    ))
    .bind(RECORD)
    .bind(millis(now - Duration::from_secs(60)))
    .bind(millis(now + Duration::from_secs(3600)))
    .bind(i64::try_from(n).unwrap_or(i64::MAX))
    .execute(&pool)
    .await
    .map_err(|e| e.to_string())?;
    sqlx::query(&format!("ANALYZE {}", crate::SCALE_TABLE))
        .execute(&pool)
        .await
        .map_err(|e| e.to_string())?;
    let fill_s = start.elapsed().as_secs_f64();
    report("PostgreSQL", n, fill_s, &store, server).await
}

pub(crate) async fn sqlite(
    n: u64,
    path: &str,
    server: &crate::ServerHandle,
) -> Result<ScaleReport, String> {
    let store = SqliteStore::connect(&format!("sqlite://{path}"))
        .await
        .map_err(|e| e.to_string())?;
    let pool = store.pool().clone();
    sqlx::query("DELETE FROM sessions")
        .execute(&pool)
        .await
        .map_err(|e| e.to_string())?;
    let now = SystemTime::now();
    let start = Instant::now();
    let (past, future) = (
        millis(now - Duration::from_secs(60)),
        millis(now + Duration::from_secs(3600)),
    );
    let mut i = 1;
    while i <= n {
        let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
        for j in i..(i + 50_000).min(n + 1) {
            let expires = if j % 2 == 0 { past } else { future };
            sqlx::query(
                "INSERT INTO sessions (id, data, expires_at, expires_hour) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(key(j).as_str())
            .bind(RECORD)
            .bind(expires)
            .bind(expires / 3_600_000)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        i += 50_000;
    }
    let fill_s = start.elapsed().as_secs_f64();
    report("SQLite", n, fill_s, &store, server).await
}

async fn report<S: Store>(
    backend: &'static str,
    n: u64,
    fill_s: f64,
    store: &S,
    server: &crate::ServerHandle,
) -> Result<ScaleReport, String> {
    let load_us = cost(n, 1_000, |k| async move {
        matches!(store.load(&k).await, Ok(Some(_)))
    })
    .await;
    let save_us = cost(n, 1_000, |k| async move {
        let now = SystemTime::now();
        // Each key is saved once, over the version 1 the fill created.
        let mut record = Record::new(now, now + Duration::from_secs(3600)).next_version();
        let _ = record.insert("n", &2);
        store.update(&k, 1, &record).await.unwrap_or(false)
    })
    .await;
    let load::Reply { status, cookie, .. } =
        load::once(server.port, Method::POST, "/write", None).await?;
    if status != 200 {
        return Err(format!("first write answered {status}"));
    }
    let before = load::run(
        server.port,
        Method::GET,
        "/read",
        std::slice::from_ref(&cookie),
        16,
        Duration::from_secs(3),
    )
    .await;
    let (deleted, cleanup_s, during) = cleanup_under_load(store, server.port, cookie).await;
    Ok(ScaleReport {
        backend,
        rows: n,
        fill_s,
        load_us,
        save_us,
        deleted,
        cleanup_s,
        p99_before_ms: before.p99_us as f64 / 1000.0,
        p99_during_ms: during.p99_us as f64 / 1000.0,
        rps_before: before.rps,
        rps_during: during.rps,
    })
}
