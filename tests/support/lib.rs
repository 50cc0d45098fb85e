//! Running the examples as real processes for end-to-end tests.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test support fails loudly

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the example binaries once per test process and returns the path of `name`.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace())
            .args([
                "build",
                "-q",
                "-p",
                "mastermind",
                "-p",
                "click-counter",
                "-p",
                "login",
            ])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the examples failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| workspace().join("target"), PathBuf::from);
        target.join("debug")
    });
    dir.join(name)
}

/// A fresh, empty working directory for one server.
pub fn scratch_dir(label: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("e2e-{label}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `<prefix>_<pid>_<nanos>`: a `SESSION_NAMESPACE` (Redis prefix, PostgreSQL table) of one
/// test's own.
pub fn unique_namespace(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// A loopback port nobody listens on (now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An example server running as a child process.
pub struct Server {
    child: Option<Child>,
    binary: PathBuf,
    addr_var: &'static str,
    pub dir: PathBuf,
    pub port: u16,
    env: Vec<(String, String)>,
}

impl Server {
    /// Starts `name` (`mastermind`, `click-counter`, `login`) in `dir` with extra
    /// environment.
    pub fn start(name: &str, dir: &Path, env: &[(&str, &str)]) -> Self {
        let addr_var = match name {
            "mastermind" => "MASTERMIND_ADDR",
            "login" => "LOGIN_ADDR",
            _ => "CLICK_COUNTER_ADDR",
        };
        let mut server = Self {
            child: None,
            binary: binary(name),
            addr_var,
            dir: dir.to_path_buf(),
            port: free_port(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        server.spawn();
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(&self.binary);
        cmd.current_dir(&self.dir)
            .env(self.addr_var, format!("127.0.0.1:{}", self.port))
            .env_remove("REDIS_URL")
            .env_remove("REDIS_CLUSTER_URLS")
            .env_remove("SESSION_NEAR_CACHE")
            .env_remove("DATABASE_URL")
            .env_remove("SESSION_SECRET")
            .env_remove("SESSION_NAMESPACE")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("start example"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "{} exited with {status} before listening on port {}",
                    self.binary.display(),
                    self.port
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not start listening", self.binary.display());
    }

    /// Stops the process (as a crash or a deploy would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, in the same directory, with `env` replacing the
    /// environment it was started with.
    pub fn restart_with(&mut self, env: &[(&str, &str)]) {
        self.stop();
        self.env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.spawn();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A browser-like HTTP client: keeps cookies, does not follow redirects.
pub fn client() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .user_agent("e2e-test-client/1.0")
        .timeout(Duration::from_secs(10))
        .build()
}

/// Whether missing services fail (CI) or skip.
pub fn services_required() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
        || std::env::var_os("REQUIRE_SERVICES").is_some()
}

/// `REDIS_URL` and `DATABASE_URL` if both services answer; otherwise a printed skip (or a
/// failure under CI).
pub fn services() -> Option<(String, String)> {
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let database = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let reachable = |url: &str, default_port: u16| {
        let rest = url.split("://").nth(1).unwrap_or_default();
        let host_port = rest
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .split('/')
            .next()
            .unwrap_or_default();
        let addr = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:{default_port}")
        };
        std::net::TcpStream::connect(addr).is_ok()
    };
    if reachable(&redis, 6379) && reachable(&database, 5432) {
        return Some((redis, database));
    }
    assert!(
        !services_required(),
        "Redis and PostgreSQL are required (CI is set)"
    );
    eprintln!("SKIPPED: Redis or PostgreSQL unreachable; set CI=1 to make this a failure");
    None
}
