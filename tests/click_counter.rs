//! The click counter as a real process.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use e2e_tests::{client, scratch_dir, Server};

fn clicks(page: &str) -> u64 {
    let start = page.find(r#"id="clicks">"#).unwrap() + r#"id="clicks">"#.len();
    page[start..].split('<').next().unwrap().parse().unwrap()
}

#[test]
fn counts_clicks_per_visitor_and_survives_restart() {
    let dir = scratch_dir("clicks");
    let mut server = Server::start("click-counter", &dir, &[]);
    let (alice, bob) = (client(), client());
    let page = alice
        .get(&server.url("/"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(clicks(&page), 0);
    for _ in 0..3 {
        let res = alice.post(&server.url("/click")).call().unwrap();
        assert_eq!(res.status(), 303);
    }
    let page = alice
        .get(&server.url("/"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(clicks(&page), 3);
    let page = bob
        .get(&server.url("/"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(clicks(&page), 0, "another visitor has their own count");

    server.restart_with(&[]);
    let page = alice
        .get(&server.url("/"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(clicks(&page), 3, "kept across a restart");
}

/// Half of the Redis + PostgreSQL configuration is a start-up error that says what to set,
/// not a silent fall-back to SQLite; so is a namespace that cannot name a table.
#[test]
fn half_a_server_configuration_is_a_clear_start_up_error() {
    let dir = scratch_dir("clicks-half-config");
    for (vars, expected) in [
        (
            &[("REDIS_URL", "redis://127.0.0.1:1")][..],
            "REDIS_URL is set but DATABASE_URL is not",
        ),
        (
            &[("DATABASE_URL", "postgres://127.0.0.1:1/x")][..],
            "DATABASE_URL is set but neither REDIS_URL nor REDIS_CLUSTER_URLS is",
        ),
        (
            &[(
                "REDIS_CLUSTER_URLS",
                "redis://127.0.0.1:1,redis://127.0.0.1:2",
            )][..],
            "REDIS_CLUSTER_URLS is set but DATABASE_URL is not",
        ),
        (
            &[
                ("REDIS_URL", "redis://127.0.0.1:1"),
                ("REDIS_CLUSTER_URLS", "redis://127.0.0.1:2"),
                ("DATABASE_URL", "postgres://127.0.0.1:1/x"),
            ][..],
            "REDIS_URL and REDIS_CLUSTER_URLS are both set",
        ),
        (
            &[
                ("REDIS_URL", "redis://127.0.0.1:1"),
                ("DATABASE_URL", "postgres://127.0.0.1:1/x"),
                ("SESSION_NAMESPACE", "shop; drop table"),
            ][..],
            r#"SESSION_NAMESPACE is "shop; drop table""#,
        ),
        (
            &[
                ("REDIS_URL", "redis://127.0.0.1:1"),
                ("DATABASE_URL", "mysql://127.0.0.1:1/x"),
            ][..],
            "DATABASE_URL must be a PostgreSQL URL",
        ),
    ] {
        let out = std::process::Command::new(e2e_tests::binary("click-counter"))
            .current_dir(&dir)
            .env_remove("REDIS_URL")
            .env_remove("REDIS_CLUSTER_URLS")
            .env_remove("SESSION_NEAR_CACHE")
            .env_remove("DATABASE_URL")
            .env_remove("SESSION_NAMESPACE")
            .env("SESSION_SECRET", "a".repeat(48))
            .env("CLICK_COUNTER_ADDR", "127.0.0.1:0")
            .envs(vars.iter().copied())
            .output()
            .expect("run the example");
        assert!(!out.status.success(), "{vars:?} must not start the server");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{vars:?}: {stderr}");
        assert!(
            !stderr.contains("Custom {"),
            "one readable line, not a debug dump: {stderr}"
        );
    }
}

/// A bad secret fails at once, before any connection is tried (here to a database that
/// would never answer).
#[test]
fn the_secret_is_checked_before_any_connection() {
    let dir = scratch_dir("clicks-bad-secret");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let binary = e2e_tests::binary("click-counter"); // built before the clock starts
    let started = std::time::Instant::now();
    let out = std::process::Command::new(binary)
        .current_dir(&dir)
        .env_remove("REDIS_CLUSTER_URLS")
        .env_remove("SESSION_NEAR_CACHE")
        .env("SESSION_SECRET", "too short")
        .env("CLICK_COUNTER_ADDR", "127.0.0.1:0")
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .env(
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:{port}/shop"),
        )
        .env("SESSION_CONNECT_TIMEOUT", "30")
        .env("RUST_LOG", "info")
        .output()
        .expect("run the example");
    drop(silent);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Error: SESSION_SECRET must be at least 32 bytes"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("connecting to"),
        "no connection tried: {stderr}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "no wait"
    );
}

/// A port in use is a start-up error naming the address and the variable that changes it.
#[test]
fn a_port_in_use_names_the_address_and_the_variable() {
    let dir = scratch_dir("clicks-port-clash");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = std::process::Command::new(e2e_tests::binary("click-counter"))
        .current_dir(&dir)
        .env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER_URLS")
        .env_remove("SESSION_NEAR_CACHE")
        .env_remove("DATABASE_URL")
        .env("SESSION_SECRET", "a".repeat(48))
        .env("CLICK_COUNTER_ADDR", &addr)
        .output()
        .expect("run the example");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}"))
            && stderr.contains("CLICK_COUNTER_ADDR"),
        "{stderr}"
    );
}

/// A PostgreSQL that accepts connections but never answers: start-up logs where it
/// connects, waits `SESSION_CONNECT_TIMEOUT`, and fails with one line naming the server.
#[test]
fn a_silent_database_is_a_bounded_wait_and_a_clear_error() {
    let dir = scratch_dir("clicks-silent-db");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let database = format!("postgres://postgres@127.0.0.1:{port}/shop");
    let binary = e2e_tests::binary("click-counter"); // built before the clock starts
    let started = std::time::Instant::now();
    let out = std::process::Command::new(binary)
        .current_dir(&dir)
        .env_remove("REDIS_CLUSTER_URLS")
        .env_remove("SESSION_NEAR_CACHE")
        .env("SESSION_SECRET", "a".repeat(48))
        .env("CLICK_COUNTER_ADDR", "127.0.0.1:0")
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .env("DATABASE_URL", &database)
        .env("SESSION_CONNECT_TIMEOUT", "1")
        .env("RUST_LOG", "info")
        .output()
        .expect("run the example");
    drop(silent);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let at = format!("PostgreSQL at 127.0.0.1:{port}/shop");
    assert!(
        stderr.contains(&format!("connecting to {at}")),
        "logged before the wait: {stderr}"
    );
    assert!(
        stderr.contains(&format!("Error: {at} (DATABASE_URL)")),
        "{stderr}"
    );
    // 1 s of connect timeout, plus the start of a process (and a loaded CI machine).
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "bounded by SESSION_CONNECT_TIMEOUT (1 s here), not a 30 s default: {:?}",
        started.elapsed()
    );
}
