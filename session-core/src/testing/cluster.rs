//! A Redis Cluster of local `redis-server` processes, for tests.
//!
//! [`LocalCluster::start`] makes a private cluster that a test may kill and restart nodes
//! of; it stops with its value. [`cluster_urls`] is the cluster the conformance suites
//! share: `REDIS_CLUSTER_URLS` (comma-separated node URLs, as `.ci/run` exports), or one
//! this process starts on first use and that stops when the process exits.

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};

/// How long a node may be unreachable before its replica takes over, in milliseconds.
pub const NODE_TIMEOUT_MS: u64 = 1_000;

/// One `redis-server --cluster-enabled yes` process.
#[derive(Debug)]
pub struct Node {
    /// The node's client port (its cluster bus is this plus 10000).
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// The node's URL.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// A private cluster: `masters` masters with `replicas` replicas each, on free loopback
/// ports, in a temporary directory. Every node stops when this is dropped.
#[derive(Debug)]
pub struct LocalCluster {
    /// The nodes, masters first as `redis-cli --cluster create` assigned them.
    pub nodes: Vec<Node>,
    dir: PathBuf,
}

/// Two free loopback ports `p` and `p + 10000` (the cluster bus), bounded in attempts:
/// drawn at random below Linux's ephemeral range (32768 and up), where outgoing
/// connections take their ports, so that neither is taken before the node binds it.
fn free_port() -> std::io::Result<u16> {
    let bindable = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    for _ in 0..200 {
        let mut bytes = [0u8; 2];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| std::io::Error::other("the random source failed"))?;
        let port = 10_000 + u16::from_le_bytes(bytes) % 12_000;
        if bindable(port) && bindable(port + 10_000) {
            return Ok(port);
        }
    }
    Err(std::io::Error::other(
        "no free pair of ports for a cluster node",
    ))
}

fn server_args(port: u16) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        &NODE_TIMEOUT_MS.to_string(),
        // A replica is listed by `CLUSTER SLOTS` once its replication offset moved: a
        // ping of the replication stream each second moves it soon after the start.
        "--repl-ping-replica-period",
        "1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

impl LocalCluster {
    /// Starts the nodes and joins them into one cluster (`redis-cli --cluster create`),
    /// waiting until every node reports the cluster healthy.
    ///
    /// # Errors
    ///
    /// If `redis-server` or `redis-cli` is missing, or the cluster does not form in time.
    pub async fn start(masters: usize, replicas: usize) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(super::unique("cluster"));
        std::fs::create_dir_all(&dir)?;
        let mut cluster = Self {
            nodes: Vec::new(),
            dir,
        };
        for _ in 0..masters * (1 + replicas) {
            cluster.nodes.push(start_node(&cluster.dir).await?);
        }
        create(&cluster.urls(), replicas).await?;
        cluster.wait_healthy(masters * (1 + replicas)).await?;
        cluster.wait_replicated(masters * replicas).await?;
        Ok(cluster)
    }

    /// Every node's URL.
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// Kills the node on `port` (SIGKILL): its replica, if it has one, takes over after
    /// [`NODE_TIMEOUT_MS`].
    pub async fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port == port) {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill().await;
            }
        }
    }

    /// Writes a snapshot of the node on `port` (`SAVE`); a [`restart`](Self::restart)
    /// loads it.
    ///
    /// # Errors
    ///
    /// If the node does not answer.
    pub async fn snapshot(&self, port: u16) -> std::io::Result<()> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .map_err(std::io::Error::other)?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(std::io::Error::other)?;
        redis::cmd("SAVE")
            .query_async::<()>(&mut conn)
            .await
            .map_err(std::io::Error::other)
    }

    /// Starts the node on `port` again, with its cluster configuration (it rejoins as
    /// what the cluster now says it is) and the data of its last [`snapshot`](Self::snapshot),
    /// if any.
    ///
    /// # Errors
    ///
    /// If the process cannot be started or does not answer.
    pub async fn restart(&mut self, port: u16) -> std::io::Result<()> {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .ok_or_else(|| std::io::Error::other("no such node"))?;
        spawn(node)?;
        wait_for(&node.url(), |_| true).await
    }

    /// Waits until `nodes` nodes answer and each reports `cluster_state:ok`.
    ///
    /// # Errors
    ///
    /// If the cluster is not healthy within 30 s.
    pub async fn wait_healthy(&self, nodes: usize) -> std::io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &self.nodes {
            if node.child.is_none() {
                continue;
            }
            wait_until(deadline, &node.url(), |info| {
                info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{nodes}"))
            })
            .await?;
        }
        Ok(())
    }

    /// Waits until every replica is in sync with its master (so that it may take over),
    /// and every node knows all `replicas` replicas (so that every node reports the same
    /// layout).
    ///
    /// # Errors
    ///
    /// If a replica is not in sync within 30 s.
    pub async fn wait_replicated(&self, replicas: usize) -> std::io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &self.nodes {
            if node.child.is_none() {
                continue;
            }
            let client = redis::Client::open(node.url()).map_err(std::io::Error::other)?;
            loop {
                let info = match client.get_multiplexed_async_connection().await {
                    Ok(mut conn) => redis::cmd("INFO")
                        .arg("replication")
                        .query_async::<String>(&mut conn)
                        .await
                        .unwrap_or_default(),
                    Err(_) => String::new(),
                };
                let nodes = match client.get_multiplexed_async_connection().await {
                    Ok(mut conn) => redis::cmd("CLUSTER")
                        .arg("NODES")
                        .query_async::<String>(&mut conn)
                        .await
                        .unwrap_or_default(),
                    Err(_) => String::new(),
                };
                let known_replicas = nodes
                    .lines()
                    .filter(|line| {
                        line.split_whitespace()
                            .nth(2)
                            .is_some_and(|flags| flags.split(',').any(|f| f == "slave"))
                    })
                    .count();
                let listed_replicas = match client.get_multiplexed_async_connection().await {
                    Ok(mut conn) => redis::cmd("CLUSTER")
                        .arg("SLOTS")
                        .query_async::<Vec<Vec<redis::Value>>>(&mut conn)
                        .await
                        .map(|ranges| ranges.iter().map(|r| r.len().saturating_sub(3)).sum())
                        .unwrap_or(usize::MAX),
                    Err(_) => usize::MAX,
                };
                if (info.contains("role:master") || info.contains("master_link_status:up"))
                    && known_replicas == replicas
                    && listed_replicas == replicas
                {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(std::io::Error::other(format!(
                        "the replica at {} is not in sync",
                        node.url()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// The port of the master that serves `key` now, as the node on `ask` reports it.
    ///
    /// # Errors
    ///
    /// If the node does not answer.
    pub async fn master_of(&self, ask: u16, key: &[u8]) -> std::io::Result<u16> {
        let slot = crate::store::redis_slot(key);
        let client = redis::Client::open(format!("redis://127.0.0.1:{ask}"))
            .map_err(std::io::Error::other)?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(std::io::Error::other)?;
        let ranges: Vec<(i64, i64, (String, i64))> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async::<Vec<redis::Value>>(&mut conn)
            .await
            .map_err(std::io::Error::other)?
            .into_iter()
            .filter_map(|range| {
                let redis::Value::Array(fields) = range else {
                    return None;
                };
                let int = |v: &redis::Value| match v {
                    redis::Value::Int(i) => Some(*i),
                    _ => None,
                };
                let start = int(fields.first()?)?;
                let end = int(fields.get(1)?)?;
                let redis::Value::Array(master) = fields.get(2)? else {
                    return None;
                };
                Some((start, end, (String::new(), int(master.get(1)?)?)))
            })
            .collect();
        ranges
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&i64::from(slot)))
            .and_then(|(_, _, (_, port))| u16::try_from(*port).ok())
            .ok_or_else(|| std::io::Error::other("no master serves the slot"))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                let _ = child.start_kill();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A node on free ports, in a directory of its own under `dir`; another attempt on other
/// ports if something else took them first (a few, bounded).
async fn start_node(dir: &std::path::Path) -> std::io::Result<Node> {
    let mut last = None;
    for _ in 0..5 {
        let port = free_port()?;
        let node_dir = dir.join(port.to_string());
        std::fs::create_dir_all(&node_dir)?;
        let mut node = Node {
            port,
            dir: node_dir,
            child: None,
        };
        spawn(&mut node)?;
        // Ours only if the server on the port works in our directory.
        let expected = node.dir.display().to_string();
        match wait_until(Instant::now() + Duration::from_secs(5), &node.url(), |_| {
            true
        })
        .await
        {
            Ok(()) if serves_from(&node.url(), &expected).await => return Ok(node),
            Ok(()) => last = Some(std::io::Error::other("another server took the port")),
            Err(err) => last = Some(err),
        }
        if let Some(mut child) = node.child.take() {
            let _ = child.kill().await;
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no cluster node started")))
}

/// Whether the server at `url` keeps its data in `dir` (`CONFIG GET dir`).
async fn serves_from(url: &str, dir: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return false;
    };
    redis::cmd("CONFIG")
        .arg("GET")
        .arg("dir")
        .query_async::<Vec<String>>(&mut conn)
        .await
        .is_ok_and(|reply| reply.get(1).is_some_and(|d| d == dir))
}

fn spawn(node: &mut Node) -> std::io::Result<()> {
    let child = Command::new("redis-server")
        .args(server_args(node.port))
        .arg("--dir")
        .arg(&node.dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    node.child = Some(child);
    Ok(())
}

async fn create(urls: &[String], replicas: usize) -> std::io::Result<()> {
    let hosts: Vec<String> = urls
        .iter()
        .map(|url| url.trim_start_matches("redis://").to_owned())
        .collect();
    let status = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&hosts)
        .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "redis-cli --cluster create failed: {status}"
        )))
    }
}

async fn wait_for(url: &str, ok: impl Fn(&str) -> bool) -> std::io::Result<()> {
    wait_until(Instant::now() + Duration::from_secs(10), url, ok).await
}

/// Polls `CLUSTER INFO` on `url` until `ok` accepts it, up to `deadline`.
async fn wait_until(
    deadline: Instant,
    url: &str,
    ok: impl Fn(&str) -> bool,
) -> std::io::Result<()> {
    let client = redis::Client::open(url).map_err(std::io::Error::other)?;
    while Instant::now() < deadline {
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
            if let Ok(info) = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async::<String>(&mut conn)
                .await
            {
                if ok(&info) {
                    return Ok(());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(std::io::Error::other(format!(
        "the cluster node at {url} is not ready"
    )))
}

/// The node URLs of the cluster the suites share: `REDIS_CLUSTER_URLS` if set, else a
/// cluster of three masters this process starts once (its nodes exit with the process);
/// `None` (after a skip line, or a failure when services are required) if neither works.
///
/// # Panics
///
/// When services are required and no cluster can be had.
pub async fn cluster_urls() -> Option<Vec<String>> {
    static SHARED: tokio::sync::OnceCell<Result<Vec<String>, String>> =
        tokio::sync::OnceCell::const_new();
    let urls = SHARED
        .get_or_init(|| async {
            if let Ok(list) = std::env::var("REDIS_CLUSTER_URLS") {
                let urls: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(str::to_owned)
                    .collect();
                return if urls.is_empty() {
                    Err("REDIS_CLUSTER_URLS is empty".to_owned())
                } else {
                    Ok(urls)
                };
            }
            start_shared().await.map_err(|err| err.to_string())
        })
        .await;
    match urls {
        Ok(urls) => Some(urls.clone()),
        Err(err) => {
            super::unavailable("Redis Cluster", err);
            None
        }
    }
}

/// Three masters whose processes outlive this call (a static holds no destructor), each
/// watched by a shell that kills it once this process is gone.
async fn start_shared() -> std::io::Result<Vec<String>> {
    let dir = std::env::temp_dir().join(super::unique("shared-cluster"));
    let mut urls = Vec::new();
    for _ in 0..3 {
        let port = free_port()?;
        let node_dir = dir.join(port.to_string());
        std::fs::create_dir_all(&node_dir)?;
        let server = std::iter::once("redis-server".to_owned())
            .chain(server_args(port).into_iter().map(|a| {
                if a.is_empty() {
                    "''".to_owned()
                } else {
                    a
                }
            }))
            .chain(["--dir".to_owned(), node_dir.display().to_string()])
            .collect::<Vec<_>>()
            .join(" ");
        let watchdog = format!(
            "{server} >/dev/null 2>&1 & r=$!; while kill -0 {parent} 2>/dev/null; do sleep 1; done; \
             kill $r; sleep 1; rm -rf '{dir}'",
            parent = std::process::id(),
            dir = node_dir.display()
        );
        std::process::Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        urls.push(format!("redis://127.0.0.1:{port}"));
    }
    for url in &urls {
        wait_for(url, |_| true).await?;
    }
    create(&urls, 0).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    for url in &urls {
        wait_until(deadline, url, |info| info.contains("cluster_state:ok")).await?;
    }
    Ok(urls)
}
