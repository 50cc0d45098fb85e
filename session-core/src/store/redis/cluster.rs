//! [`Cluster`]: the nodes of a Redis Cluster, and which one serves each key.
//!
//! Commands go to the master of the key's slot over that node's own [`Link`], so every
//! reply is known to come from one node's lifetime (its `run_id`): the cache's
//! generation check holds per node, as on a single server. A general cluster client hides
//! which node answered, which is why this routing is our own.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, PoisonError, RwLock,
    },
    time::{Duration, Instant},
};

use redis::{AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, Value};

use super::link::Link;
use crate::StoreError;

/// Number of hash slots in a Redis Cluster.
const SLOTS: usize = 16_384;
/// Marks a slot no master serves.
const UNSERVED: u16 = u16::MAX;

/// The seed nodes, the current [`Topology`], and the links to every master.
pub(super) struct Cluster {
    seeds: Vec<ConnectionInfo>,
    config: AsyncConnectionConfig,
    topology: RwLock<Arc<Topology>>,
    /// Set after a redirection or a failed node: the next command reads the slots again.
    stale: AtomicBool,
    /// One refresh at a time.
    refreshing: tokio::sync::Mutex<()>,
    versions: AtomicU64,
    /// The version of the topology in use, for a lock-free look.
    layout: AtomicU64,
    /// When the slots last could not be read.
    failed_at: Mutex<Option<Instant>>,
}

/// How long after a failed read of the slots commands fail at once instead of reading
/// them again.
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// Whether `ranges` describe a cluster of one node, whose own view is all there is.
fn alone(ranges: &[Range]) -> bool {
    ranges.iter().all(|range| {
        range.replicas.is_empty()
            && ranges
                .first()
                .is_some_and(|first| first.master == range.master)
    })
}

/// Which master serves each slot, as one `CLUSTER SLOTS` reply told it.
pub(crate) struct Topology {
    /// Bumped by every refresh that finds another layout: what a near-cache compares to
    /// know that the nodes it tracks are still the nodes that serve.
    pub(crate) version: u64,
    /// The slot ranges with their master and replicas, as read: what tells layouts apart.
    layout: Vec<Range>,
    /// For each slot, the index of its master in `masters`, or [`UNSERVED`].
    slots: Vec<u16>,
    masters: Vec<Arc<Link>>,
    /// Every node, masters and replicas, as connection details.
    pub(crate) nodes: Vec<ConnectionInfo>,
}

impl Topology {
    fn empty() -> Self {
        Self {
            version: 0,
            layout: Vec::new(),
            slots: Vec::new(),
            masters: Vec::new(),
            nodes: Vec::new(),
        }
    }

    fn master(&self, slot: u16) -> Option<&Arc<Link>> {
        let index = *self.slots.get(usize::from(slot))?;
        self.masters.get(usize::from(index))
    }
}

impl Cluster {
    pub(super) fn new(seeds: Vec<ConnectionInfo>, config: AsyncConnectionConfig) -> Self {
        Self {
            seeds,
            config,
            topology: RwLock::new(Arc::new(Topology::empty())),
            stale: AtomicBool::new(true),
            refreshing: tokio::sync::Mutex::new(()),
            versions: AtomicU64::new(0),
            layout: AtomicU64::new(0),
            failed_at: Mutex::new(None),
        }
    }

    /// The topology as last read (empty before the first command).
    pub(crate) fn topology(&self) -> Arc<Topology> {
        self.topology
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The version of the topology in use (0 before the first read).
    pub(super) fn layout_version(&self) -> u64 {
        self.layout.load(Ordering::Acquire)
    }

    /// The link to the master serving `key`, reading the slots first if they are stale.
    pub(super) async fn link_for(&self, key: &[u8]) -> Result<Arc<Link>, StoreError> {
        if self.stale.load(Ordering::Acquire) {
            self.refresh().await?;
        }
        let slot = slot_of(key);
        self.topology().master(slot).cloned().ok_or_else(|| {
            StoreError::unavailable(format!("no Redis Cluster node serves slot {slot}"))
        })
    }

    /// The links to every master.
    pub(super) async fn masters(&self) -> Result<Vec<Arc<Link>>, StoreError> {
        if self.stale.load(Ordering::Acquire) {
            self.refresh().await?;
        }
        Ok(self.topology().masters.clone())
    }

    /// Makes the next command read the slots again.
    pub(super) fn mark_stale(&self) {
        self.stale.store(true, Ordering::Release);
    }

    /// Reads the slots from the first node that answers (the known nodes, then the seeds)
    /// if they are stale.
    pub(super) async fn refresh(&self) -> Result<(), StoreError> {
        self.read(false).await
    }

    /// Reads the slots again, stale or not; commands meanwhile use the current ones.
    pub(super) async fn reload(&self) -> Result<(), StoreError> {
        self.read(true).await
    }

    async fn read(&self, always: bool) -> Result<(), StoreError> {
        let _one_at_a_time = self.refreshing.lock().await;
        if !always && !self.stale.load(Ordering::Acquire) {
            return Ok(()); // refreshed while this call waited
        }
        if !always && self.failed_recently() {
            // Commands queued behind a failed read fail fast instead of each trying again.
            return Err(StoreError::unavailable(
                "the Redis Cluster's slots could not be read a moment ago",
            ));
        }
        let current = self.topology();
        // Masters first (their links are kept), then the other known nodes, then the seeds.
        let mut candidates: Vec<ConnectionInfo> = Vec::new();
        let known = current
            .masters
            .iter()
            .map(|link| link.connection_info().clone())
            .chain(current.nodes.iter().cloned())
            .chain(self.seeds.iter().cloned());
        for node in known {
            if !candidates.iter().any(|c| c.addr() == node.addr()) {
                candidates.push(node);
            }
        }
        let mut views: Vec<Vec<Range>> = Vec::new();
        let mut last_error = None;
        for node in &candidates {
            let ranges = match self.read_slots(node).await {
                Ok(ranges) => ranges,
                Err(err) => {
                    last_error = Some(err);
                    continue;
                }
            };
            // A layout is believed once two nodes report it: a master restarted with an
            // old configuration claims its former slots until the others correct it, and
            // writes it acknowledged meanwhile would be lost when it steps down.
            let agreed = views.contains(&ranges) || (views.is_empty() && alone(&ranges));
            if agreed {
                let topology = self.build(ranges, node, &current)?;
                self.layout.store(topology.version, Ordering::Release);
                *self
                    .topology
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Arc::new(topology);
                self.stale.store(false, Ordering::Release);
                *self
                    .failed_at
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
                return Ok(());
            }
            views.push(ranges);
        }
        *self
            .failed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        Err(match (views.len(), last_error) {
            (0, Some(err)) => err,
            (0, None) => StoreError::Config("a Redis Cluster needs at least one node".into()),
            (1, _) => StoreError::unavailable(
                "only one Redis Cluster node answered CLUSTER SLOTS: its view is not trusted alone",
            ),
            _ => StoreError::unavailable(
                "Redis Cluster nodes disagree on which node serves which slot (a failover in progress?)",
            ),
        })
    }

    fn failed_recently(&self) -> bool {
        self.failed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < RETRY_AFTER)
    }

    /// The slot ranges as `node` reports them, sorted.
    async fn read_slots(&self, node: &ConnectionInfo) -> Result<Vec<Range>, StoreError> {
        let current = self.topology();
        let link = self.link(node, &current)?;
        let conn = link.conn().await?;
        let (reply, _) = link
            .run_on(conn, |mut conn| async move {
                redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async::<Value>(&mut conn)
                    .await
            })
            .await?;
        let mut ranges = parse_slots(&reply, host_of(node))?;
        ranges.sort_by_key(|range| range.start);
        for range in &mut ranges {
            range.replicas.sort();
        }
        Ok(ranges)
    }

    /// The topology of `ranges`, with links for its masters (kept from `current` where it
    /// has them); connection settings other than the address come from `template`.
    fn build(
        &self,
        ranges: Vec<Range>,
        template: &ConnectionInfo,
        current: &Topology,
    ) -> Result<Topology, StoreError> {
        let mut slots = vec![UNSERVED; SLOTS];
        let mut masters: Vec<Arc<Link>> = Vec::new();
        let mut master_index: HashMap<(String, u16), u16> = HashMap::new();
        let mut nodes: Vec<ConnectionInfo> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for range in &ranges {
            let index = match master_index.get(&range.master) {
                Some(index) => *index,
                None => {
                    let info = with_addr(template, &range.master);
                    masters.push(self.link(&info, current)?);
                    let index = u16::try_from(masters.len() - 1)
                        .map_err(|_| StoreError::corrupt("too many Redis Cluster masters"))?;
                    master_index.insert(range.master.clone(), index);
                    index
                }
            };
            for slot in range.start..=range.end {
                if let Some(entry) = slots.get_mut(usize::from(slot)) {
                    *entry = index;
                }
            }
            for addr in std::iter::once(&range.master).chain(&range.replicas) {
                if seen.insert(addr.clone()) {
                    nodes.push(with_addr(template, addr));
                }
            }
        }
        let version = if ranges == current.layout {
            current.version
        } else {
            self.versions.fetch_add(1, Ordering::Relaxed) + 1
        };
        Ok(Topology {
            version,
            layout: ranges,
            slots,
            masters,
            nodes,
        })
    }

    /// The link to `node`: the current one if the topology has it (keeping its connection
    /// and generation), else a new one.
    fn link(&self, node: &ConnectionInfo, current: &Topology) -> Result<Arc<Link>, StoreError> {
        if let Some(link) = current
            .masters
            .iter()
            .find(|link| link.addr() == node.addr())
        {
            return Ok(link.clone());
        }
        let client =
            Client::open(node.clone()).map_err(|err| StoreError::Config(err.to_string()))?;
        Ok(Arc::new(Link::new(client, self.config.clone())))
    }
}

/// The Redis Cluster hash slot of `key`: CRC16 (XMODEM) of the key, or of its hash tag
/// (the part between the first `{` and the next `}`, if not empty), modulo 16384, as
/// `CLUSTER KEYSLOT` computes it.
#[must_use]
pub fn slot_of(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = key.get(open + 1..)?;
            let close = rest.iter().position(|&b| b == b'}')?;
            rest.get(..close).filter(|tag| !tag.is_empty())
        })
        .unwrap_or(key);
    let mut crc: u16 = 0;
    for &byte in tagged {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 == 0 {
                crc << 1
            } else {
                (crc << 1) ^ 0x1021
            };
        }
    }
    crc % 16_384
}

/// One slot range of a `CLUSTER SLOTS` reply.
#[derive(Debug, PartialEq, Eq)]
struct Range {
    start: u16,
    end: u16,
    master: (String, u16),
    replicas: Vec<(String, u16)>,
}

/// Parses a `CLUSTER SLOTS` reply. A node reported without a host (an empty string) is on
/// the host that answered.
fn parse_slots(reply: &Value, answered_by: &str) -> Result<Vec<Range>, StoreError> {
    let malformed = || StoreError::corrupt("malformed CLUSTER SLOTS reply");
    let Value::Array(entries) = reply else {
        return Err(malformed());
    };
    let mut ranges = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(fields) = entry else {
            return Err(malformed());
        };
        let (start, end) = match (fields.first(), fields.get(1)) {
            (Some(Value::Int(start)), Some(Value::Int(end))) => (
                u16::try_from(*start).map_err(|_| malformed())?,
                u16::try_from(*end).map_err(|_| malformed())?,
            ),
            _ => return Err(malformed()),
        };
        if start > end || usize::from(end) >= SLOTS {
            return Err(malformed());
        }
        let mut nodes = fields
            .iter()
            .skip(2)
            .map(|node| parse_node(node, answered_by).ok_or_else(malformed));
        let master = nodes.next().ok_or_else(malformed)??;
        let replicas = nodes.collect::<Result<Vec<_>, _>>()?;
        ranges.push(Range {
            start,
            end,
            master,
            replicas,
        });
    }
    Ok(ranges)
}

fn parse_node(node: &Value, answered_by: &str) -> Option<(String, u16)> {
    let Value::Array(fields) = node else {
        return None;
    };
    let host = match fields.first()? {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok()?,
        Value::SimpleString(host) => host.clone(),
        _ => return None,
    };
    let port = match fields.get(1)? {
        Value::Int(port) => u16::try_from(*port).ok()?,
        _ => return None,
    };
    let host = if host.is_empty() || host == "?" {
        answered_by.to_owned()
    } else {
        host
    };
    Some((host, port))
}

fn host_of(node: &ConnectionInfo) -> &str {
    match node.addr() {
        ConnectionAddr::Tcp(host, _) => host,
        _ => "127.0.0.1",
    }
}

/// `template`'s settings (credentials, database, protocol) at `addr`.
pub(crate) fn with_addr(template: &ConnectionInfo, addr: &(String, u16)) -> ConnectionInfo {
    template
        .clone()
        .set_addr(ConnectionAddr::Tcp(addr.0.clone(), addr.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn slots_are_those_redis_computes() {
        // `CLUSTER KEYSLOT` of each, on Redis 7.
        assert_eq!(slot_of(b"foo"), 12_182);
        assert_eq!(slot_of(b"x1"), 10_114);
        assert_eq!(slot_of(b"123456789"), 0x31c3); // the CRC16 check value
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        assert_eq!(slot_of(b"foo{}{bar}"), slot_of(b"foo{}{bar}")); // empty tag: whole key
        assert_ne!(slot_of(b"foo{}{bar}"), slot_of(b"bar"));
        assert_eq!(slot_of(b"foo{{bar}}zap"), slot_of(b"{bar"));
    }

    #[test]
    fn slots_reply_is_parsed() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                Value::Array(vec![bulk("127.0.0.1"), Value::Int(7001), bulk("id1")]),
                Value::Array(vec![bulk(""), Value::Int(7004), bulk("id4")]),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(16383),
                Value::Array(vec![bulk("127.0.0.2"), Value::Int(7002)]),
            ]),
        ]);
        let ranges = parse_slots(&reply, "10.0.0.9").unwrap();
        assert_eq!(
            ranges,
            vec![
                Range {
                    start: 0,
                    end: 5460,
                    master: ("127.0.0.1".into(), 7001),
                    replicas: vec![("10.0.0.9".into(), 7004)],
                },
                Range {
                    start: 5461,
                    end: 16383,
                    master: ("127.0.0.2".into(), 7002),
                    replicas: vec![],
                },
            ]
        );
    }

    #[test]
    fn only_a_cluster_of_one_node_is_believed_on_one_view() {
        let range = |start, end, master: u16, replicas: &[u16]| Range {
            start,
            end,
            master: ("h".into(), master),
            replicas: replicas.iter().map(|p| ("h".into(), *p)).collect(),
        };
        assert!(alone(&[range(0, 16_383, 1, &[])]));
        assert!(alone(&[range(0, 99, 1, &[]), range(100, 16_383, 1, &[])]));
        assert!(!alone(&[range(0, 99, 1, &[]), range(100, 16_383, 2, &[])]));
        assert!(!alone(&[range(0, 16_383, 1, &[2])]));
    }

    #[test]
    fn malformed_slots_replies_are_errors() {
        for reply in [
            Value::Nil,
            Value::Array(vec![Value::Nil]),
            Value::Array(vec![Value::Array(vec![Value::Int(5), Value::Int(1)])]),
            Value::Array(vec![Value::Array(vec![
                Value::Int(0),
                Value::Int(20_000),
                Value::Array(vec![bulk("h"), Value::Int(1)]),
            ])]),
            Value::Array(vec![Value::Array(vec![Value::Int(0), Value::Int(10)])]),
        ] {
            assert!(parse_slots(&reply, "h").is_err(), "{reply:?}");
        }
    }
}
