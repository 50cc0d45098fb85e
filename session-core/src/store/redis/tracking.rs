//! The task that keeps a [`NearCache`](super::NearCache)'s tracking connections: one RESP3
//! connection to every Redis node, each in `CLIENT TRACKING … BCAST PREFIX` mode, whose
//! invalidation messages drop local copies.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Weak,
    },
    time::Duration,
};

use tokio::sync::watch;

use redis::{
    aio::MultiplexedConnection, AsyncConnectionConfig, Client, ConnectionInfo, ProtocolVersion,
    PushInfo, PushKind, Value,
};

use super::{near::Shared, RedisStore};
use crate::{StoreError, TokenHash};

/// Keeps the tracking connections of `shared` until it is dropped: connects to every node,
/// trusts copies once all of them track, checks them every `heartbeat` (a `PING` on each,
/// and on a cluster its slots read again), and distrusts copies (then connects again) when
/// one is lost, stops answering, or the cluster's layout changes.
pub(super) async fn run(
    shared: Weak<Shared>,
    mut alive: watch::Receiver<()>,
    redis: RedisStore,
    heartbeat: Duration,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let epoch = strong.next_epoch();
        drop(strong);
        match connect(&shared, &redis, epoch).await {
            Ok(session) => {
                backoff = Duration::from_millis(50);
                let Some(strong) = shared.upgrade() else {
                    return;
                };
                strong.trust(epoch, session.topology.unwrap_or(0));
                drop(strong);
                tracing::debug!(epoch, nodes = session.conns.len(), "near-cache tracking");
                let reason = watch(&mut alive, &redis, &session, heartbeat).await;
                let Some(strong) = shared.upgrade() else {
                    return;
                };
                strong.distrust_epoch(epoch);
                redis.topology_suspect();
                tracing::warn!(reason = %reason, "near-cache tracking lost; copies dropped");
            }
            Err(err) => {
                if let Some(strong) = shared.upgrade() {
                    strong.distrust();
                }
                redis.topology_suspect();
                tracing::debug!(error = %err, "near-cache tracking could not start");
                if !pause(&mut alive, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// The tracking connections of one epoch.
struct Session {
    conns: Vec<MultiplexedConnection>,
    /// Set by a connection's driver when it closes.
    lost: Arc<AtomicBool>,
    /// The cluster topology the connections were made for (`None` on a single server).
    topology: Option<u64>,
}

async fn connect(
    shared: &Weak<Shared>,
    redis: &RedisStore,
    epoch: u64,
) -> Result<Session, StoreError> {
    let (nodes, topology) = redis.tracking_nodes().await?;
    let lost = Arc::new(AtomicBool::new(false));
    let mut conns = Vec::with_capacity(nodes.len());
    for node in nodes {
        let sender = invalidations(shared.clone(), redis.prefix.clone(), epoch, lost.clone());
        let info = resp3(node);
        let client = Client::open(info).map_err(|err| StoreError::Config(err.to_string()))?;
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(Some(redis.timeout))
            .set_connection_timeout(Some(redis.timeout))
            .set_push_sender(sender);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("BCAST")
            .arg("PREFIX")
            .arg(&*redis.prefix)
            .query_async::<()>(&mut conn)
            .await?;
        conns.push(conn);
    }
    Ok(Session {
        conns,
        lost,
        topology,
    })
}

fn resp3(node: ConnectionInfo) -> ConnectionInfo {
    let settings = node
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    node.set_redis_settings(settings)
}

/// Waits `duration`; `false` if the cache was dropped meanwhile.
async fn pause(alive: &mut watch::Receiver<()>, duration: Duration) -> bool {
    // Nothing is ever sent: `changed` ends only when the sender (the cache) is dropped.
    tokio::time::timeout(duration, alive.changed())
        .await
        .is_err()
}

/// Checks the session every `heartbeat` until something is wrong; returns what.
async fn watch(
    alive: &mut watch::Receiver<()>,
    redis: &RedisStore,
    session: &Session,
    heartbeat: Duration,
) -> String {
    loop {
        if !pause(alive, heartbeat).await {
            return "the near-cache was dropped".into();
        }
        if session.lost.load(Ordering::SeqCst) {
            return "a tracking connection closed".into();
        }
        // A node that joined (a slot moved to a new master) is not tracked: the slots are
        // read again at every heartbeat, since copies that are served never ask Redis and
        // would not meet a redirection.
        if session.topology.is_some() {
            match redis.current_topology().await {
                Ok(now) if now == session.topology => {}
                Ok(_) => return "the cluster's topology changed".into(),
                Err(err) => return format!("the cluster's slots could not be read: {err}"),
            }
        }
        for conn in &session.conns {
            let mut conn = conn.clone();
            if let Err(err) = redis::cmd("PING").query_async::<()>(&mut conn).await {
                return format!("a tracking connection did not answer: {err}");
            }
        }
        if session.lost.load(Ordering::SeqCst) {
            return "a tracking connection closed".into();
        }
    }
}

/// What a tracking connection does with each push message.
fn invalidations(
    shared: Weak<Shared>,
    prefix: Arc<str>,
    epoch: u64,
    lost: Arc<AtomicBool>,
) -> impl Fn(PushInfo) -> Result<(), std::convert::Infallible> + Send + Sync + 'static {
    move |push: PushInfo| {
        let Some(shared) = shared.upgrade() else {
            return Ok(());
        };
        match push.kind {
            PushKind::Invalidate => match push.data.first() {
                Some(Value::Array(keys)) => {
                    // A key under the prefix that names no session has no copy to drop.
                    for key in keys.iter().filter_map(|key| key_of(key, &prefix)) {
                        shared.forget(&key);
                    }
                }
                // A null list: the server flushed its keys.
                _ => shared.flush(),
            },
            PushKind::Disconnection => {
                lost.store(true, Ordering::SeqCst);
                shared.distrust_epoch(epoch);
            }
            _ => {}
        }
        Ok(())
    }
}

fn key_of(key: &Value, prefix: &str) -> Option<TokenHash> {
    let bytes = match key {
        Value::BulkString(bytes) => bytes.as_slice(),
        Value::SimpleString(text) => text.as_bytes(),
        _ => return None,
    };
    let text = std::str::from_utf8(bytes).ok()?;
    TokenHash::from_stored(text.strip_prefix(prefix)?)
}
