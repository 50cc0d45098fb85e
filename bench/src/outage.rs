//! `--outage`: the latency of ours-redis+postgres while its Redis stops answering.
//!
//! A private `redis-server` on a free port is the cache; the server variant runs against
//! it and PostgreSQL. Load runs before, during and after an outage of the cache, which is
//! either frozen (SIGSTOP: connections stay open and nothing answers, the worst case, as a
//! dropped network would be) or killed (connections refused). The breaker should keep the
//! outage's cost to the requests in flight when it starts.

use std::{process::Stdio, time::Duration};

use hyper::Method;

use crate::{load, spawn_server, Client, Options};

/// One phase's result, for one route.
struct Phase {
    name: &'static str,
    route: &'static str,
    result: load::LoadResult,
}

pub(crate) async fn run(opts: &Options, pin: bool) -> std::io::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = std::env::temp_dir().join(format!("bench-outage-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut redis = start_redis(port, &dir)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let url = format!("redis://127.0.0.1:{port}");
    let table = format!("bench_outage_{}", std::process::id());
    let server = spawn_server(
        "ours-redis+postgres",
        pin,
        &[
            ("REDIS_URL", url.as_str()),
            ("BENCH_PG_TABLE", table.as_str()),
        ],
    )
    .await
    .map_err(std::io::Error::other)?;
    let mut cookies = Vec::new();
    for _ in 0..opts.sessions {
        let reply = load::once(server.port, Method::POST, "/write", None)
            .await
            .map_err(std::io::Error::other)?;
        cookies.push(reply.cookie);
    }
    let client = Client {
        port: server.port,
        cookies: &cookies,
        concurrency: opts.concurrency,
        spin: opts.spin,
    };
    let seconds = Duration::from_secs(opts.seconds);
    let mut phases = Vec::new();
    client
        .run(Method::GET, "/read", Duration::from_millis(500))
        .await;
    for (name, action) in [
        ("before", None),
        ("frozen", Some("-STOP")),
        ("after thaw", Some("-CONT")),
        ("killed", Some("kill")),
    ] {
        match action {
            Some("kill") => {
                let _ = redis.kill();
                let _ = redis.wait();
            }
            Some(signal) => signal_pid(redis.id(), signal)?,
            None => {}
        }
        for (route, method) in [("/read", Method::GET), ("/write", Method::POST)] {
            let result = client.run(method, route, seconds).await;
            eprintln!(
                "  {name} {route}: {:.0} req/s, p99 {} us",
                result.rps, result.p99_us
            );
            phases.push(Phase {
                name,
                route,
                result,
            });
        }
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "\n{} s per route and phase, {} connections on {} session(s), busy-polling client.\n",
        opts.seconds, opts.concurrency, opts.sessions
    );
    println!("| phase | route | req/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---:|---:|---:|---:|");
    for p in phases {
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} |",
            p.name,
            p.route,
            p.result.rps,
            p.result.p50_us as f64 / 1000.0,
            p.result.p99_us as f64 / 1000.0,
            p.result.errors
        );
    }
    Ok(())
}

fn start_redis(port: u16, dir: &std::path::Path) -> std::io::Result<std::process::Child> {
    std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

fn signal_pid(pid: u32, signal: &str) -> std::io::Result<()> {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("kill {signal} {pid} failed")))
    }
}
