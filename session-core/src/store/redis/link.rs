//! [`Link`]: the connection to one Redis server, and which server lifetime it reached.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, PoisonError, RwLock,
    },
};

use redis::{
    aio::MultiplexedConnection, AsyncConnectionConfig, Client, ConnectionAddr, RedisError,
    RedisResult,
};

use crate::StoreError;

/// A multiplexed connection that is replaced after a connection-level failure, and that
/// knows the `run_id` of the server process it reached.
///
/// A Redis process that restarts, is restored from a snapshot, or is replaced by a promoted
/// replica has a new `run_id`, and a TCP connection never outlives the process it reached.
/// So every reply read through one [`Conn`] comes from the server lifetime named by its
/// [`generation`](Conn::generation), which is what lets the cache tier refuse entries
/// written before a restart.
pub(super) struct Link {
    client: Client,
    config: AsyncConnectionConfig,
    current: RwLock<Option<Conn>>,
    /// One connection attempt at a time.
    connecting: tokio::sync::Mutex<()>,
    ids: AtomicU64,
}

/// One established connection.
#[derive(Clone)]
pub(super) struct Conn {
    id: u64,
    pub(super) conn: MultiplexedConnection,
    /// The first 16 hex digits of the server's `run_id`.
    pub(super) generation: Arc<str>,
}

impl Link {
    pub(super) fn new(client: Client, config: AsyncConnectionConfig) -> Self {
        Self {
            client,
            config,
            current: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(()),
            ids: AtomicU64::new(0),
        }
    }

    /// The address this link connects to.
    pub(super) fn addr(&self) -> &ConnectionAddr {
        self.client.get_connection_info().addr()
    }

    /// How this link connects.
    pub(crate) fn connection_info(&self) -> &redis::ConnectionInfo {
        self.client.get_connection_info()
    }

    fn current(&self) -> Option<Conn> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The current connection, connecting first if there is none.
    pub(super) async fn conn(&self) -> Result<Conn, StoreError> {
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await?;
        let generation = run_id(&info).map_or_else(random_generation, str::to_owned);
        let conn = Conn {
            id: self.ids.fetch_add(1, Ordering::Relaxed),
            conn,
            generation: generation.into(),
        };
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(conn.clone());
        tracing::debug!(generation = %conn.generation, "connected to redis");
        Ok(conn)
    }

    /// Runs `f` on the current connection. A connection-level failure drops the connection,
    /// so the next call connects again (and learns the server's generation again).
    pub(super) async fn run<T, F, Fut>(&self, f: F) -> Result<(T, Arc<str>), StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let conn = self.conn().await?;
        Ok(self.run_on(conn, f).await?)
    }

    /// [`run`](Self::run) on a connection the caller already holds (and whose generation
    /// it wrote into the command), keeping Redis's error for the caller to classify.
    pub(super) async fn run_on<T, F, Fut>(
        &self,
        conn: Conn,
        f: F,
    ) -> Result<(T, Arc<str>), RedisError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        match f(conn.conn.clone()).await {
            Ok(value) => Ok((value, conn.generation)),
            Err(err) => {
                if connection_failed(&err) {
                    let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
                    if current.as_ref().is_some_and(|c| c.id == conn.id) {
                        *current = None;
                    }
                }
                Err(err)
            }
        }
    }
}

fn connection_failed(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_unrecoverable_error()
}

/// The first 16 hex digits of `run_id` in the reply to `INFO server`.
fn run_id(info: &str) -> Option<&str> {
    let id = info
        .lines()
        .find_map(|line| line.trim().strip_prefix("run_id:"))?;
    id.get(..16)
        .filter(|id| id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// For a server that reports no `run_id`: a generation of this connection alone, so every
/// reconnect starts cold.
fn random_generation() -> String {
    let mut bytes = [0u8; 8];
    // A failed draw leaves zeros: the generation of entries written as a store, not as a
    // cache, which a cache never reads either.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_id_is_read_from_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:4f1c2b0e9d8a7c6b5a4f3e2d1c0b9a8f7e6d5c4b\r\ntcp_port:6379\r\n";
        assert_eq!(run_id(info), Some("4f1c2b0e9d8a7c6b"));
        assert_eq!(run_id("# Server\r\nredis_version:7\r\n"), None);
        assert_eq!(run_id("run_id:short\r\n"), None);
        assert_eq!(random_generation().len(), 16);
    }
}
