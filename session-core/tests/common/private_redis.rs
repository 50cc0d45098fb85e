//! A redis-server of the test's own, on a free port, that the test can stop and restart
//! (with its data, through an append-only file).

use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::process::{Child, Command};

pub struct PrivateRedis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts a server, or `None` (after printing a skip) where redis-server is missing.
    pub async fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .ok()?;
        let dir = std::env::temp_dir().join(super::unique("redis"));
        std::fs::create_dir_all(&dir).ok()?;
        let mut redis = Self {
            port,
            dir,
            child: None,
        };
        if let Err(err) = redis.spawn().await {
            super::unavailable("redis-server binary", &err);
            return None;
        }
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) -> std::io::Result<()> {
        self.spawn_with(&["--appendonly", "yes", "--appendfsync", "always"])
            .await
    }

    async fn spawn_with(&mut self, persistence: &[&str]) -> std::io::Result<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(persistence)
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        self.child = Some(child);
        for _ in 0..100 {
            if super::ping(&self.url()).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(std::io::Error::other("redis-server did not answer"))
    }

    /// Stops the server; its data stays in the append-only file.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
        for _ in 0..100 {
            if super::ping(&self.url()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the server again on the same port with the same data.
    pub async fn restart(&mut self) {
        self.spawn().await.expect("restart redis-server");
    }

    /// Writes a snapshot (`SAVE`, to `dump.rdb` in the server's directory).
    pub async fn snapshot(&self) {
        redis::cmd("SAVE")
            .query_async::<()>(&mut self.conn().await)
            .await
            .expect("SAVE");
    }

    /// Kills the server and starts it again from its last snapshot alone (not the
    /// append-only file): it comes back with the data of the moment of [`snapshot`].
    pub async fn restart_from_snapshot(&mut self) {
        self.stop().await;
        self.spawn_with(&["--appendonly", "no", "--dbfilename", "dump.rdb"])
            .await
            .expect("restart redis-server from its snapshot");
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers. It comes back
    /// with its data and its `run_id` on [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a [`pause`](Self::pause)d server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("a running server");
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// The server's `run_id`.
    pub async fn run_id(&self) -> String {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut self.conn().await)
            .await
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("run_id:"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// A direct connection for inspecting the server.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
