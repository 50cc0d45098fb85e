//! [`RedisStore`]: sessions in Redis, one command per load and per save.

mod cluster;
mod link;
#[cfg(feature = "memory")]
mod near;
mod servers;
#[cfg(feature = "memory")]
mod tracking;
mod value;

use std::{
    sync::{Arc, LazyLock},
    time::{Duration, SystemTime},
};

use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, Script, Value};

pub use self::cluster::slot_of as redis_slot;
#[cfg(feature = "memory")]
pub use self::near::{NearCache, NearCacheBuilder, DEFAULT_NEAR_MAX_BYTES};
use self::{
    cluster::Cluster,
    link::Link,
    servers::{Request, Servers},
    value::{hex, Stored, STORE_GENERATION},
};
use crate::{clock::to_millis, Cache, Clock, Record, Store, StoreError, SystemClock, TokenHash};

/// Sessions in Redis, as a [`Store`] of its own or as the [`Cache`] tier of a
/// [`TieredStore`](crate::store::TieredStore).
///
/// Each record lives under `<prefix><token hash>`. The value is a header of three fields of
/// 16 hex digits (the expiry in Unix milliseconds, the record's version, and a
/// generation), followed by the encoded [`Record`]; the key carries the same absolute
/// expiry (`PXAT`), so Redis drops expired sessions by itself and `cleanup` has nothing to
/// do. Values of the earlier layout (expiry, record) are still read.
///
/// | method          | Redis command                                              |
/// |-----------------|------------------------------------------------------------|
/// | `load`, `get`   | `GET`                                                      |
/// | `create`        | `SET … NX PXAT`                                            |
/// | `update`        | one script: `GETRANGE` (version check), `SET … PXAT`       |
/// | `put`           | one script: `GETRANGE` (newer than cached?), `SET … PXAT`  |
/// | `touch`         | one script: `GETRANGE` (version check), `SETRANGE`, `PEXPIREAT` |
/// | `delete`        | `DEL`                                                      |
/// | `invalidate`    | `SET … PXAT` (a tombstone)                                 |
///
/// # As a cache
///
/// Cache writes carry the first 16 hex digits of the server's `run_id`, read when the
/// connection is made; a cache read ignores entries of another generation. A Redis that
/// restarted from a snapshot or an append-only file, or a replica promoted after a
/// failover, has a new `run_id`, so whatever it brought back reads as a miss and is
/// replaced by the durable store's copy: the cache comes back cold, never stale. (As a
/// plain store, generations are not checked: a restarted Redis keeps its sessions.)
///
/// Give the cache's Redis enough memory that it does not evict (or `noeviction`, which
/// turns a full cache into cache errors that the tiered store survives). An entry evicted
/// in the short window between a refill's durable read and its write lets that older
/// refill in, where the forward-only check had nothing left to compare with; the next
/// write of the session, or its expiry, corrects it.
///
/// `load` and `touch` also compare the stored expiry with the store's [`Clock`], so expiry
/// holds even where the clock and the Redis server disagree.
///
/// When Redis is unreachable every method fails fast with [`StoreError::Unavailable`]
/// (response and connection timeouts: 1 s by default); the next call connects again.
///
/// # Example
///
/// ```no_run
/// # async fn run() -> Result<(), session_core::StoreError> {
/// use std::time::Duration;
/// use session_core::store::{RedisStore, SqliteStore, TieredStore};
///
/// // On its own:
/// let sessions = RedisStore::builder("redis://127.0.0.1:6379")
///     .key_prefix("myapp:session:")
///     .response_timeout(Duration::from_millis(500))
///     .build()?;
///
/// // Or as the cache in front of a durable store:
/// let tiered = TieredStore::new(
///     RedisStore::new("redis://127.0.0.1:6379")?,
///     SqliteStore::connect("sqlite://sessions.db").await?,
/// );
/// # drop((sessions, tiered));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    servers: Arc<Servers>,
    prefix: Arc<str>,
    clock: Arc<dyn Clock>,
    /// The response and connection timeout.
    timeout: Duration,
    /// How long after it was sent a cache write may still run (see [`PUT`]).
    put_deadline: Duration,
}

/// Added to the response timeout for a cache write's deadline: room for the clocks of the
/// application and the server to differ. Shorter than a tombstone lives (30 s by default),
/// so that a write the server runs later than this never meets an expired tombstone.
const PUT_DEADLINE_MARGIN: Duration = Duration::from_secs(5);

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisStore`].
#[derive(Debug)]
#[must_use]
pub struct RedisStoreBuilder {
    urls: Vec<String>,
    cluster: bool,
    prefix: String,
    clock: Arc<dyn Clock>,
    response_timeout: Duration,
    connection_timeout: Duration,
}

/// The default key prefix of a [`RedisStore`].
pub const DEFAULT_PREFIX: &str = "session:";

impl RedisStoreBuilder {
    /// The prefix of every key this store writes. Default: `"session:"`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The clock that decides expiry on load. Default: [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How long to wait for an answer before reporting Redis unavailable. Default: 1 s.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How long to wait for a connection before reporting Redis unavailable. Default: 1 s.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Builds the store. The connection is made on first use, so an application can start
    /// while Redis is down.
    ///
    /// # Errors
    ///
    /// [`StoreError::Config`] if the URL is not a Redis URL.
    pub fn build(self) -> Result<RedisStore, StoreError> {
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(Some(self.response_timeout))
            .set_connection_timeout(Some(self.connection_timeout));
        let mut nodes = Vec::with_capacity(self.urls.len());
        for url in &self.urls {
            nodes.push(
                url.as_str()
                    .into_connection_info()
                    .map_err(|err| StoreError::Config(format!("{url}: {err}")))?,
            );
        }
        let servers = if self.cluster {
            if nodes.is_empty() {
                return Err(StoreError::Config(
                    "a Redis Cluster needs at least one node URL".into(),
                ));
            }
            Servers::Cluster(Arc::new(Cluster::new(nodes, config)))
        } else {
            let node = nodes
                .pop()
                .ok_or_else(|| StoreError::Config("no Redis URL".into()))?;
            let client = Client::open(node).map_err(|err| StoreError::Config(err.to_string()))?;
            Servers::One(Arc::new(Link::new(client, config)))
        };
        Ok(RedisStore {
            servers: Arc::new(servers),
            prefix: self.prefix.into(),
            clock: self.clock,
            timeout: self.response_timeout,
            put_deadline: self.response_timeout.saturating_add(PUT_DEADLINE_MARGIN),
        })
    }
}

/// The conditional update. KEYS[1] key; ARGV: expected version, value, expiry (ms).
static UPDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local version = redis.call('GETRANGE', KEYS[1], 16, 31)
if version == '' then return 0 end
if string.sub(version, 1, 1) == '{' then version = '0000000000000000' end
if version ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
return 1
",
    )
});

/// The forward-only cache write. KEYS[1] key; ARGV: value, expiry (ms), version,
/// generation, now (ms), deadline (ms, by the wall clock). Refused over a live entry (by
/// the store's clock) of the same generation holding the same or a newer version, over a
/// live tombstone of any generation (a delete must win over a refill that read before it,
/// across a restart), and when the server runs it after its deadline by its own clock: a
/// write held in a frozen server past the response timeout was reported failed, and the
/// tombstone it must not pass may have expired meanwhile. Returns 1 written, 0 refused
/// (a newer entry or a tombstone), -1 past the deadline.
static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local time = redis.call('TIME')
if tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) > tonumber(ARGV[6]) then
  return -1
end
local head = redis.call('GETRANGE', KEYS[1], 0, 47)
if string.len(head) == 48 and string.sub(head, 17, 17) ~= '{'
   and (tonumber(string.sub(head, 1, 16), 16) or 0) > tonumber(ARGV[5]) then
  local version = string.sub(head, 17, 32)
  if version == 'ffffffffffffffff'
     or (string.sub(head, 33, 48) == ARGV[4] and version >= ARGV[3]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1
",
    )
});

/// Moves a live key's expiry: rewrites the value's expiry digits in place and the key's
/// expiry, without sending the record back and forth. KEYS[1] key; ARGV: new digits, now
/// (ms), new expiry (ms). Tombstones are left alone.
static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local head = redis.call('GETRANGE', KEYS[1], 0, 31)
if head == '' or (tonumber(string.sub(head, 1, 16), 16) or 0) <= tonumber(ARGV[2])
   or string.sub(head, 17, 32) ~= ARGV[4] then
  return 0
end
redis.call('SETRANGE', KEYS[1], 0, ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
",
    )
});

impl RedisStore {
    /// A builder for a store on the Redis server at `url` (e.g. `redis://127.0.0.1:6379`).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            urls: vec![url.into()],
            cluster: false,
            prefix: DEFAULT_PREFIX.to_owned(),
            clock: Arc::new(SystemClock),
            response_timeout: Duration::from_secs(1),
            connection_timeout: Duration::from_secs(1),
        }
    }

    /// A builder for a store on the Redis Cluster that `nodes` belong to (any of its
    /// nodes, e.g. `redis://127.0.0.1:7000`; more than one in case one is down). The
    /// store reads which node serves which slot from the first node that answers, and
    /// again whenever a node redirects a command or fails.
    pub fn cluster_builder<I, S>(nodes: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisStoreBuilder {
            urls: nodes.into_iter().map(Into::into).collect(),
            cluster: true,
            prefix: DEFAULT_PREFIX.to_owned(),
            clock: Arc::new(SystemClock),
            response_timeout: Duration::from_secs(1),
            connection_timeout: Duration::from_secs(1),
        }
    }

    /// A store on the Redis Cluster that `nodes` belong to, with the default settings.
    ///
    /// # Errors
    ///
    /// As [`RedisStoreBuilder::build`].
    pub fn cluster<I, S>(nodes: I) -> Result<Self, StoreError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::cluster_builder(nodes).build()
    }

    /// A store on the Redis server at `url` with the default settings.
    ///
    /// # Errors
    ///
    /// As [`RedisStoreBuilder::build`].
    pub fn new(url: impl Into<String>) -> Result<Self, StoreError> {
        Self::builder(url).build()
    }

    /// The prefix of every key this store writes.
    #[must_use]
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key of a session.
    #[must_use]
    pub fn redis_key(&self, key: &TokenHash) -> String {
        let mut out = String::with_capacity(self.prefix.len() + 64);
        out.push_str(&self.prefix);
        out.push_str(key.as_str());
        out
    }

    /// The nodes a near-cache tracks (every node of a cluster, replicas included: a
    /// replica reports the writes it replicates, so a promoted one was tracked all along),
    /// with the cluster topology they belong to.
    #[cfg(feature = "memory")]
    async fn tracking_nodes(
        &self,
    ) -> Result<(Vec<redis::ConnectionInfo>, Option<u64>), StoreError> {
        match &*self.servers {
            Servers::One(link) => Ok((vec![link.connection_info().clone()], None)),
            Servers::Cluster(cluster) => {
                cluster.masters().await?;
                let topology = cluster.topology();
                Ok((topology.nodes.clone(), Some(topology.version)))
            }
        }
    }

    /// Makes the next command read the cluster's slots again (after a tracking connection
    /// to a node was lost: the node may have failed over).
    #[cfg(feature = "memory")]
    fn topology_suspect(&self) {
        self.servers.node_failed();
    }

    /// The version of the cluster layout in use, without waiting (0 on a single server).
    #[cfg(feature = "memory")]
    fn layout_version(&self) -> u64 {
        match &*self.servers {
            Servers::One(_) => 0,
            Servers::Cluster(cluster) => cluster.layout_version(),
        }
    }

    /// Reads the cluster's slots again and returns the version of its layout (it changes
    /// only when the layout does); `None` on a single server.
    #[cfg(feature = "memory")]
    async fn current_topology(&self) -> Result<Option<u64>, StoreError> {
        match &*self.servers {
            Servers::One(_) => Ok(None),
            Servers::Cluster(cluster) => {
                cluster.reload().await?;
                Ok(Some(cluster.topology().version))
            }
        }
    }

    /// `GET`, then the stored value if it is a live record; with the connection's
    /// generation.
    async fn get_live(&self, key: &TokenHash) -> Result<Option<(Record, bool)>, StoreError> {
        let redis_key = self.redis_key(key);
        let mut get = redis::cmd("GET");
        get.arg(&redis_key);
        let (value, generation) = self
            .servers
            .send::<Option<Vec<u8>>, _>(&redis_key, |_| Ok(Request::CmdRef(&get)))
            .await?;
        let Some(value) = value else {
            return Ok(None);
        };
        match value::decode(&value)? {
            Stored::Tombstone => Ok(None),
            Stored::Record {
                expires_ms,
                generation: written_in,
                bytes,
            } => {
                if expires_ms <= to_millis(self.clock.now()) {
                    return Ok(None);
                }
                let current = written_in == Some(&*generation);
                value::record(expires_ms, bytes).map(|record| Some((record, current)))
            }
        }
    }

    async fn set_nx(&self, key: &TokenHash, record: &Record) -> Result<bool, StoreError> {
        let (value, expires_ms) = value::encode(record, STORE_GENERATION)?;
        let redis_key = self.redis_key(key);
        let mut set = redis::cmd("SET");
        set.arg(&redis_key)
            .arg(value)
            .arg("NX")
            .arg("PXAT")
            .arg(expires_ms.max(1));
        let (reply, _) = self
            .servers
            .send::<Value, _>(&redis_key, |_| Ok(Request::CmdRef(&set)))
            .await?;
        Ok(!matches!(reply, Value::Nil))
    }

    async fn touch_script(
        &self,
        key: &TokenHash,
        expected: u64,
        expires_at: SystemTime,
    ) -> Result<bool, StoreError> {
        let expires_ms = to_millis(expires_at);
        let redis_key = self.redis_key(key);
        let mut invocation = TOUCH.key(&redis_key);
        invocation
            .arg(hex(expires_ms))
            .arg(to_millis(self.clock.now()))
            .arg(expires_ms.max(1))
            .arg(hex(expected));
        let (touched, _) = self
            .servers
            .send::<i64, _>(&redis_key, |_| Ok(Request::ScriptRef(&invocation)))
            .await?;
        Ok(touched == 1)
    }
}

impl Store for RedisStore {
    async fn load(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        Ok(self.get_live(key).await?.map(|(record, _)| record))
    }

    async fn create(&self, key: &TokenHash, record: &Record) -> Result<bool, StoreError> {
        self.set_nx(key, record).await
    }

    async fn update(
        &self,
        key: &TokenHash,
        expected: u64,
        record: &Record,
    ) -> Result<bool, StoreError> {
        let (value, expires_ms) = value::encode(record, STORE_GENERATION)?;
        let redis_key = self.redis_key(key);
        let mut invocation = UPDATE.key(&redis_key);
        invocation
            .arg(hex(expected))
            .arg(value)
            .arg(expires_ms.max(1));
        let (updated, _) = self
            .servers
            .send::<i64, _>(&redis_key, |_| Ok(Request::ScriptRef(&invocation)))
            .await?;
        Ok(updated == 1)
    }

    async fn touch(
        &self,
        key: &TokenHash,
        expected: u64,
        expires_at: SystemTime,
    ) -> Result<bool, StoreError> {
        self.touch_script(key, expected, expires_at).await
    }

    async fn delete(&self, key: &TokenHash) -> Result<(), StoreError> {
        let redis_key = self.redis_key(key);
        let mut del = redis::cmd("DEL");
        del.arg(&redis_key);
        self.servers
            .send::<i64, _>(&redis_key, |_| Ok(Request::CmdRef(&del)))
            .await?;
        Ok(())
    }

    async fn cleanup(&self, _limit: usize) -> Result<usize, StoreError> {
        // Redis expires keys by itself (PXAT on every write).
        Ok(0)
    }
}

impl Cache for RedisStore {
    async fn get(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
        // An entry of another generation was written before the server restarted.
        Ok(self
            .get_live(key)
            .await?
            .and_then(|(record, current)| current.then_some(record)))
    }

    async fn put(&self, key: &TokenHash, record: &Record) -> Result<(), StoreError> {
        let redis_key = self.redis_key(key);
        let now_ms = to_millis(self.clock.now());
        // By the wall clock, which the server's is compared with (not a test clock).
        let deadline_ms = to_millis(SystemTime::now() + self.put_deadline);
        // Written with the generation of the connection it goes through: if that one broke
        // and another is made, the entry belongs to the old generation and reads as a miss.
        let (written, _) = self
            .servers
            .send::<i64, _>(&redis_key, |generation| {
                let (value, expires_ms) = value::encode(record, generation)?;
                let mut invocation = PUT.key(&redis_key);
                invocation
                    .arg(value)
                    .arg(expires_ms.max(1))
                    .arg(hex(record.version))
                    .arg(generation)
                    .arg(now_ms)
                    .arg(deadline_ms);
                Ok(Request::Script(invocation))
            })
            .await?;
        if written < 0 {
            // Only a server whose clock runs ahead of ours by more than the margin
            // answers this in time: an error, so that the caller repairs the key instead
            // of trusting an entry that was not replaced.
            return Err(StoreError::unavailable(
                "the Redis server ran a cache write after its deadline: is its clock ahead of this host's?",
            ));
        }
        Ok(())
    }

    async fn touch(
        &self,
        key: &TokenHash,
        expected: u64,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        self.touch_script(key, expected, expires_at).await.map(drop)
    }

    async fn invalidate(&self, key: &TokenHash, until: SystemTime) -> Result<(), StoreError> {
        let until_ms = to_millis(until).max(1);
        let redis_key = self.redis_key(key);
        self.servers
            .send::<(), _>(&redis_key, |generation| {
                let mut set = redis::cmd("SET");
                set.arg(&redis_key)
                    .arg(value::tombstone(until_ms, generation))
                    .arg("PXAT")
                    .arg(until_ms);
                Ok(Request::Cmd(set))
            })
            .await?;
        Ok(())
    }

    async fn probe(&self) -> Result<(), StoreError> {
        for link in self.servers.masters().await? {
            let ping = link
                .run(
                    |mut conn| async move { redis::cmd("PING").query_async::<()>(&mut conn).await },
                )
                .await;
            if let Err(err) = ping {
                // The node may have failed over: the next probe reads the slots again.
                self.servers.node_failed();
                return Err(err);
            }
        }
        Ok(())
    }
}
