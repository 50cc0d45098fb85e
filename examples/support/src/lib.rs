//! What the examples share: the session store chosen from the environment, the cookie key,
//! and the layer settings they have in common.
//!
//! - No `REDIS_URL`/`DATABASE_URL`: the embedded default, an in-process cache in front of a
//!   SQLite file (`SESSION_DB`, default `sqlite://<example>-sessions.sqlite` in the working
//!   directory), so sessions survive a restart.
//! - `REDIS_URL` and `DATABASE_URL` (`postgres://…`) both set: Redis in front of
//!   PostgreSQL. Only one of them set is an error, not a silent fall-back.
//! - `REDIS_CLUSTER_URLS` (comma-separated node URLs, any nodes of one Redis Cluster)
//!   instead of `REDIS_URL`: a Redis Cluster in front of PostgreSQL.
//! - `SESSION_NEAR_CACHE=1` with either: an in-process copy in front of Redis, kept
//!   coherent across instances by Redis's client tracking (three tiers).
//! - `SESSION_CONNECT_TIMEOUT` (seconds, default 5): how long start-up waits for
//!   PostgreSQL; the address it connects to is logged before it waits.
//! - `SESSION_NAMESPACE` (default: the example's name) names the Redis key prefix
//!   (`<namespace>:session:`) and the PostgreSQL table (`<namespace>_sessions`), so several
//!   deployments (or tests) share one Redis and one database without meeting.
//! - Either way the store is a [`DynStore`]: one type, chosen at run time.
//! - The cookie key comes from `SESSION_SECRET` (at least 32 bytes); without it a
//!   development key is generated once, kept in `.session-secret`, and a warning says so.
#![forbid(unsafe_code)]

use std::path::Path;

mod panel;

use actix_web::cookie::Key;
use base64::{engine::general_purpose::STANDARD, Engine as _};
pub use panel::{CookieView, KeyView, SessionPanel, Tiers, PANEL_CSS};
use session_core::{
    store::{
        DynStore, MemoryStore, NearCache, PostgresStore, RedisStore, SqliteStore, TieredStore,
    },
    StoreError,
};

/// The store an example runs on, chosen from the environment (see the crate docs): one
/// type whichever tiers it holds, so the layer's type does not depend on configuration;
/// and the names of its tiers, for the session panel.
///
/// # Errors
///
/// A readable message if only one of `REDIS_URL` / `DATABASE_URL` is set, if
/// `DATABASE_URL` is not a PostgreSQL URL, or if a store cannot be opened or reached.
pub async fn store_from_env(example: &str) -> Result<(DynStore, Tiers), String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let redis = match (var("REDIS_URL"), var("REDIS_CLUSTER_URLS")) {
        (Some(_), Some(_)) => {
            return Err(
                "REDIS_URL and REDIS_CLUSTER_URLS are both set: set REDIS_URL for one \
                        Redis server, or REDIS_CLUSTER_URLS for a Redis Cluster"
                    .to_owned(),
            )
        }
        (Some(url), None) => Some(RedisAt::One(url)),
        (None, Some(urls)) => Some(RedisAt::Cluster(
            urls.split(',')
                .map(str::trim)
                .filter(|url| !url.is_empty())
                .map(str::to_owned)
                .collect(),
        )),
        (None, None) => None,
    };
    match (redis, var("DATABASE_URL")) {
        (Some(redis), Some(database)) => {
            if !database.starts_with("postgres://") && !database.starts_with("postgresql://") {
                return Err(
                    "DATABASE_URL must be a PostgreSQL URL (postgres://user@host/db); unset \
                     REDIS_URL and DATABASE_URL for the embedded SQLite default"
                        .to_owned(),
                );
            }
            let namespace = var("SESSION_NAMESPACE").unwrap_or_else(|| example.replace('-', "_"));
            if !namespace
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(format!(
                    "SESSION_NAMESPACE is {namespace:?}: use lower-case letters, digits and `_` \
                     (it names a PostgreSQL table)"
                ));
            }
            let builder = match &redis {
                RedisAt::One(url) => RedisStore::builder(url.as_str()),
                RedisAt::Cluster(urls) => RedisStore::cluster_builder(urls.iter().cloned()),
            };
            let cache = builder
                .key_prefix(format!("{namespace}:session:"))
                .build()
                .map_err(|err| format!("Redis ({}): {err}", redis.variable()))?;
            let timeout = connect_timeout()?;
            let options: sqlx::postgres::PgConnectOptions = database
                .parse()
                .map_err(|err| format!("DATABASE_URL is not a PostgreSQL URL: {err}"))?;
            let at = format!(
                "{}:{}/{}",
                options.get_host(),
                options.get_port(),
                options.get_database().unwrap_or_default()
            );
            let postgres = |err: StoreError| {
                format!(
                    "PostgreSQL at {at} (DATABASE_URL): {err} (waited up to {} s; \
                     SESSION_CONNECT_TIMEOUT changes it)",
                    timeout.as_secs()
                )
            };
            tracing::info!(
                "connecting to PostgreSQL at {at} (timeout {} s)…",
                timeout.as_secs()
            );
            let pool = sqlx_pool(options, timeout).await.map_err(postgres)?;
            let durable = PostgresStore::builder(pool)
                .table_name(format!("{namespace}_sessions"))
                .build()
                .map_err(postgres)?;
            durable.migrate().await.map_err(postgres)?;
            let near = var("SESSION_NEAR_CACHE").is_some_and(|v| v != "0" && v != "false");
            tracing::info!(
                near_cache = near,
                "sessions: {} at {} in front of PostgreSQL at {at}",
                redis.label(),
                redis.hosts()
            );
            let tiers = Tiers {
                cache: match (&redis, near) {
                    (RedisAt::One(_), false) => "Redis",
                    (RedisAt::Cluster(_), false) => "Redis Cluster",
                    (RedisAt::One(_), true) => "in-process copy + Redis",
                    (RedisAt::Cluster(_), true) => "in-process copy + Redis Cluster",
                },
                durable: "PostgreSQL",
            };
            let store = if near {
                DynStore::new(TieredStore::new(NearCache::new(cache), durable))
            } else {
                DynStore::new(TieredStore::new(cache, durable))
            };
            Ok((store, tiers))
        }
        (Some(redis), None) => Err(format!(
            "{} is set but DATABASE_URL is not: the Redis cache needs PostgreSQL behind it; \
             set both, or neither for the embedded SQLite default",
            redis.variable()
        )),
        (None, Some(_)) => Err("DATABASE_URL is set but neither REDIS_URL nor \
                                REDIS_CLUSTER_URLS is: set one of them for Redis in front of \
                                PostgreSQL, or none for the embedded SQLite default"
            .to_owned()),
        (None, None) => {
            let db =
                var("SESSION_DB").unwrap_or_else(|| format!("sqlite://{example}-sessions.sqlite"));
            let durable = SqliteStore::connect(&db)
                .await
                .map_err(|err| format!("SQLite ({db}): {err}"))?;
            tracing::info!(db, "sessions: in-process cache in front of SQLite");
            let tiers = Tiers {
                cache: "in-process cache",
                durable: "SQLite",
            };
            Ok((
                DynStore::new(TieredStore::new(MemoryStore::new(), durable)),
                tiers,
            ))
        }
    }
}

/// Where the Redis tier is, from `REDIS_URL` or `REDIS_CLUSTER_URLS`.
enum RedisAt {
    One(String),
    Cluster(Vec<String>),
}

impl RedisAt {
    fn variable(&self) -> &'static str {
        match self {
            Self::One(_) => "REDIS_URL",
            Self::Cluster(_) => "REDIS_CLUSTER_URLS",
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Self::One(_) => "Redis cache",
            Self::Cluster(_) => "Redis Cluster cache",
        }
    }

    /// The hosts, without credentials, for the log.
    fn hosts(&self) -> String {
        match self {
            Self::One(url) => redis_host(url).to_owned(),
            Self::Cluster(urls) => urls
                .iter()
                .map(|url| redis_host(url))
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

async fn sqlx_pool(
    options: sqlx::postgres::PgConnectOptions,
    timeout: std::time::Duration,
) -> Result<sqlx::PgPool, StoreError> {
    sqlx::postgres::PgPoolOptions::new()
        .test_before_acquire(false)
        .acquire_timeout(timeout)
        .connect_with(options)
        .await
        .map_err(StoreError::from)
}

/// `SESSION_CONNECT_TIMEOUT` in seconds (default 5): how long start-up waits for the
/// database before it gives up with an error.
fn connect_timeout() -> Result<std::time::Duration, String> {
    match std::env::var("SESSION_CONNECT_TIMEOUT") {
        Err(_) => Ok(std::time::Duration::from_secs(5)),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(secs) if secs > 0 => Ok(std::time::Duration::from_secs(secs)),
            _ => Err(format!(
                "SESSION_CONNECT_TIMEOUT is {text:?}: a whole number of seconds, at least 1"
            )),
        },
    }
}

/// `host:port/db` of a Redis URL, without credentials: for log lines.
fn redis_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.rsplit_once('@').map_or(rest, |(_, host)| host)
}

/// The file that keeps the development key.
pub const DEV_KEY_FILE: &str = ".session-secret";

/// The cookie key: from `SESSION_SECRET`, or a development key kept in
/// [`DEV_KEY_FILE`] (generated on first start) so sessions survive restarts.
///
/// # Errors
///
/// If `SESSION_SECRET` is shorter than 32 bytes, or the key file cannot be read or written.
pub fn cookie_key() -> Result<Key, String> {
    if let Ok(secret) = std::env::var("SESSION_SECRET") {
        if secret.len() < 32 {
            return Err("SESSION_SECRET must be at least 32 bytes".into());
        }
        return Ok(Key::derive_from(secret.as_bytes()));
    }
    let path = Path::new(DEV_KEY_FILE);
    let key = match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = STANDARD
                .decode(text.trim())
                .map_err(|err| format!("{DEV_KEY_FILE} is not a key: {err}"))?;
            Key::try_from(bytes.as_slice()).map_err(|err| format!("{DEV_KEY_FILE}: {err}"))?
        }
        Err(_) => {
            let key = Key::generate();
            write_private(path, STANDARD.encode(key.master()).as_bytes())
                .map_err(|err| format!("cannot write {DEV_KEY_FILE}: {err}"))?;
            key
        }
    };
    tracing::warn!(
        "SESSION_SECRET is not set: using the development key in {DEV_KEY_FILE}. \
         Set SESSION_SECRET (32+ random bytes) in production."
    );
    Ok(key)
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents)
}

/// The address to listen on: `var` (`MASTERMIND_ADDR`, `CLICK_COUNTER_ADDR`), else
/// `default` (each example has its own port, so both run at once).
#[must_use]
pub fn listen_addr(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The start-up error of a port that cannot be bound: which address, why, and which
/// variable picks another.
#[must_use]
pub fn bind_error(addr: &str, var: &str, err: &std::io::Error) -> Fatal {
    let hint = if err.kind() == std::io::ErrorKind::AddrInUse {
        " (another program, or another copy of this example, is using it)"
    } else {
        ""
    };
    Fatal(format!(
        "cannot listen on {addr}: {err}{hint}; set {var} to another address, \
         e.g. {var}=127.0.0.1:0 for any free port"
    ))
}

/// A start-up error, printed by `main` as one readable line (`Error: …`), not a debug
/// dump. Anything that displays converts into it with `?`.
pub struct Fatal(String);

impl std::fmt::Debug for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::fmt::Display> From<E> for Fatal {
    fn from(err: E) -> Self {
        Self(err.to_string())
    }
}

/// Whether to mark cookies `Secure`: `SESSION_COOKIE_SECURE=1`. The examples serve plain
/// HTTP on loopback, where a browser would drop a `Secure` cookie; a deployment behind TLS
/// sets it (the library's default is `Secure`).
#[must_use]
pub fn cookie_secure() -> bool {
    std::env::var("SESSION_COOKIE_SECURE").is_ok_and(|v| v == "1" || v == "true")
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
