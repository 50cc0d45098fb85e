//! A TCP proxy on a free loopback port that can stop forwarding (a network partition that
//! drops packets: connections stay open, nothing arrives).

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use session_core::{store::PostgresStore, ManualClock};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// A PostgreSQL store on the table of `direct`, reached through a [`Proxy`] in front of
/// the database at `url` (`postgres://user@host:port/db`), with statements that time out
/// after `timeout`: what the proxy holds back, the store waits for.
pub async fn proxied_postgres(
    url: &str,
    direct: &PostgresStore,
    clock: &ManualClock,
    timeout: Duration,
) -> (Proxy, PostgresStore) {
    let target = address(url);
    let proxy = Proxy::start(target).await;
    let proxied = url.replace(&target.port().to_string(), &proxy.port.to_string());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .test_before_acquire(false)
        .connect(&proxied)
        .await
        .unwrap();
    let store = PostgresStore::builder(pool)
        .table_name(direct.table_name())
        .clock(clock.clone())
        .timeout(timeout)
        .build()
        .unwrap();
    (proxy, store)
}

/// The address of the database in `url` (`postgres://user@host:port/db`).
fn address(url: &str) -> SocketAddr {
    let host_port = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap();
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    host_port.replace("localhost", "127.0.0.1").parse().unwrap()
}

pub struct Proxy {
    pub port: u16,
    blackhole: Arc<AtomicBool>,
    target: Arc<std::sync::Mutex<SocketAddr>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Forwards a free port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let blackhole = Arc::new(AtomicBool::new(false));
        let hole = Arc::clone(&blackhole);
        let target = Arc::new(std::sync::Mutex::new(target));
        let targets = Arc::clone(&target);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let hole = Arc::clone(&hole);
                let target = *targets.lock().unwrap();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(pipe(cr, sw, Arc::clone(&hole)));
                    tokio::spawn(pipe(sr, cw, hole));
                });
            }
        });
        Self {
            port,
            blackhole,
            target,
            task,
        }
    }

    /// Sends new connections to `target` (a failover: the address now leads elsewhere);
    /// open ones stay where they are.
    pub fn set_target(&self, target: SocketAddr) {
        *self.target.lock().unwrap() = target;
    }

    /// Stops (`true`) or resumes forwarding, on every connection.
    pub fn set_blackhole(&self, on: bool) {
        self.blackhole.store(on, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`; while the hole is open, what was read waits, unforwarded (for
/// at most a minute, then the connection is dropped).
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    hole: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut waited = 0;
        while hole.load(Ordering::SeqCst) {
            if waited >= 6_000 {
                return;
            }
            waited += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
