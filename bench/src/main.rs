//! `cargo run --release -p session-bench`: every session library variant, side by side.
//!
//! Each variant runs as a child process with one worker thread, pinned to core 0 where the
//! machine has two or more; the load generator runs on core 1. Rounds are interleaved (the
//! variant order rotates each round) and the median of the rounds is reported, so drift
//! of the machine does not favour one variant. See BENCHMARKS.md.
//!
//! Options: `--rounds N` (3), `--seconds S` per route (3), `--concurrency C` (32),
//! `--only a,b` (variant names), `--sessions N` (1: every connection uses one session;
//! with N > 1, connection `i` uses session `i % N`), `--outage` (latency while the cache
//! is frozen and killed, see `outage.rs`). `REDIS_URL`/`DATABASE_URL` as in the tests.
#![forbid(unsafe_code)]
#![allow(clippy::cast_precision_loss)] // rates and ratios are shown to a few digits

mod instructions;
mod load;
mod outage;
mod scale;
mod servers;
mod spin;

use std::{process::Stdio, time::Duration};

use hyper::Method;
use load::LoadResult;

struct Options {
    rounds: usize,
    seconds: u64,
    concurrency: usize,
    only: Option<Vec<String>>,
    scale: Option<u64>,
    outage: bool,
    sessions: usize,
    /// The busy-polling load generator ([`spin`], the default) or, with `--client tokio`,
    /// the Tokio one ([`load`]).
    spin: bool,
}

/// The PostgreSQL table of the scale run.
pub(crate) const SCALE_TABLE: &str = "bench_scale_sessions";

fn options() -> Options {
    let mut opts = Options {
        rounds: 3,
        seconds: 3,
        concurrency: 32,
        only: None,
        scale: None,
        outage: false,
        sessions: 1,
        spin: true,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--rounds" => opts.rounds = value.parse().unwrap_or(opts.rounds),
            "--seconds" => opts.seconds = value.parse().unwrap_or(opts.seconds),
            "--concurrency" => opts.concurrency = value.parse().unwrap_or(opts.concurrency),
            "--only" => opts.only = Some(value.split(',').map(str::to_owned).collect()),
            "--scale" => opts.scale = value.parse().ok(),
            "--sessions" => opts.sessions = value.parse().unwrap_or(1).max(1),
            "--client" => opts.spin = value != "tokio",
            "--outage" => {
                opts.outage = true;
                i += 1;
                continue;
            }
            _ => {}
        }
        i += 2;
    }
    opts
}

fn env_urls() -> (String, String) {
    (
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
    )
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        let variant = args.get(2).cloned().unwrap_or_default();
        let port = args.get(3).and_then(|p| p.parse().ok()).unwrap_or(0);
        let (redis_url, database_url) = env_urls();
        return actix_web::rt::System::new().block_on(servers::serve(
            &variant,
            servers::Env {
                redis_url,
                database_url,
                port,
            },
        ));
    }
    if args.get(1).map(String::as_str) == Some("instructions") {
        let variant = args.get(2).cloned().unwrap_or_default();
        let plan = instructions::Plan {
            requests: args.get(3).and_then(|n| n.parse().ok()).unwrap_or(1000),
            write: args.get(4).map(String::as_str) == Some("write"),
        };
        return actix_web::rt::System::new()
            .block_on(instructions::run(&variant, plan))
            .map_err(std::io::Error::other);
    }
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if cores.len() >= 2 {
        core_affinity::set_for_current(cores[1]);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let opts = options();
    let pin = cores.len() >= 2;
    match opts.scale {
        Some(rows) => runtime.block_on(scale_run(rows, pin)),
        None if opts.outage => runtime.block_on(outage::run(&opts, pin)),
        None => runtime.block_on(bench(opts, pin)),
    }
}

/// Medians per variant and route.
#[derive(Default, Clone)]
struct Row {
    read: Vec<Measured>,
    write: Vec<Measured>,
}

#[derive(Default, Clone, Copy)]
struct Measured {
    load: LoadResult,
    redis_per_req: f64,
    cache_per_req: f64,
    durable_per_req: f64,
    durable_writes_per_req: f64,
}

async fn bench(opts: Options, pin: bool) -> std::io::Result<()> {
    let variants: Vec<&str> = servers::VARIANTS
        .iter()
        .copied()
        .filter(|v| {
            opts.only
                .as_ref()
                .is_none_or(|only| only.iter().any(|o| o == v))
        })
        .collect();
    let mut rows = vec![Row::default(); variants.len()];
    let duration = Duration::from_secs(opts.seconds);
    for round in 0..opts.rounds {
        for k in 0..variants.len() {
            let index = (k + round) % variants.len();
            let variant = variants[index];
            eprintln!("round {}/{}: {variant}", round + 1, opts.rounds);
            match measure(variant, pin, &opts, duration).await {
                Ok((read, write)) => {
                    eprintln!(
                        "  read {:.0} req/s, write {:.0} req/s",
                        read.load.rps, write.load.rps
                    );
                    rows[index].read.push(read);
                    rows[index].write.push(write);
                }
                Err(err) => eprintln!("  skipped {variant}: {err}"),
            }
        }
    }
    print_table(&variants, &rows, &opts, pin);
    Ok(())
}

/// A server variant running as a pinned child process.
pub(crate) struct ServerHandle {
    child: tokio::process::Child,
    pub(crate) port: u16,
}

impl ServerHandle {
    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

async fn spawn_server(
    variant: &str,
    pin: bool,
    env: &[(&str, &str)],
) -> Result<ServerHandle, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = if pin && std::path::Path::new("/usr/bin/taskset").exists() {
        let mut cmd = tokio::process::Command::new("/usr/bin/taskset");
        cmd.arg("-c").arg("0").arg(exe);
        cmd
    } else {
        tokio::process::Command::new(exe)
    };
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .args(["serve", variant, &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| e.to_string())?;
    let server = ServerHandle { child, port };
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    server.stop().await;
    Err("server did not start".into())
}

async fn measure(
    variant: &str,
    pin: bool,
    opts: &Options,
    duration: Duration,
) -> Result<(Measured, Measured), String> {
    let server = spawn_server(variant, pin, &[]).await?;
    let port = server.port;
    let concurrency = opts.concurrency;
    // The sessions, each created by a first write; connections share them round-robin.
    let mut cookies = Vec::with_capacity(opts.sessions);
    for _ in 0..opts.sessions {
        let load::Reply { status, cookie, .. } =
            load::once(port, Method::POST, "/write", None).await?;
        if status != 200 {
            server.stop().await;
            return Err(format!("first write answered {status}"));
        }
        cookies.push(cookie);
    }
    let client = Client {
        port,
        cookies: &cookies,
        concurrency,
        spin: opts.spin,
    };
    // Warm-up, not measured.
    client
        .run(Method::GET, "/read", Duration::from_millis(500))
        .await;
    let read = measured(&client, Method::GET, "/read", duration).await;
    let write = measured(&client, Method::POST, "/write", duration).await;
    server.stop().await;
    Ok((read, write))
}

/// `--scale N`: N sessions (half expired) in PostgreSQL and in SQLite.
async fn scale_run(rows: u64, pin: bool) -> std::io::Result<()> {
    let (_, database_url) = env_urls();
    let sqlite_path = std::env::temp_dir().join("bench-scale.sqlite");
    let sqlite_path = sqlite_path.display().to_string();
    let mut reports = Vec::new();
    let server = spawn_server(
        "ours-redis+postgres",
        pin,
        &[("BENCH_PG_TABLE", SCALE_TABLE)],
    )
    .await;
    match server {
        Ok(server) => {
            eprintln!("scale: PostgreSQL, {rows} rows");
            match scale::postgres(rows, &database_url, &server).await {
                Ok(report) => reports.push(report),
                Err(err) => eprintln!("  PostgreSQL scale run failed: {err}"),
            }
            server.stop().await;
        }
        Err(err) => eprintln!("  PostgreSQL server failed: {err}"),
    }
    // The SQLite file is filled first, then served.
    let _ = std::fs::remove_file(&sqlite_path);
    let server = spawn_server(
        "ours-memory+sqlite",
        pin,
        &[("BENCH_SQLITE", sqlite_path.as_str())],
    )
    .await;
    match server {
        Ok(server) => {
            eprintln!("scale: SQLite, {rows} rows");
            match scale::sqlite(rows, &sqlite_path, &server).await {
                Ok(report) => reports.push(report),
                Err(err) => eprintln!("  SQLite scale run failed: {err}"),
            }
            server.stop().await;
        }
        Err(err) => eprintln!("  SQLite server failed: {err}"),
    }
    println!("\n| backend | rows | fill s | load mean/p99 us | save mean/p99 us | expired deleted | cleanup s | /read p99 ms before / during | /read req/s before / during |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in reports {
        println!(
            "| {} | {} | {:.1} | {:.0} / {} | {:.0} / {} | {} | {:.1} | {:.2} / {:.2} | {:.0} / {:.0} |",
            r.backend, r.rows, r.fill_s, r.load_us.0, r.load_us.1, r.save_us.0, r.save_us.1,
            r.deleted, r.cleanup_s, r.p99_before_ms, r.p99_during_ms, r.rps_before, r.rps_during
        );
    }
    Ok(())
}

/// The load generator of a run, on one server and its sessions.
struct Client<'a> {
    port: u16,
    cookies: &'a [Option<String>],
    concurrency: usize,
    spin: bool,
}

impl Client<'_> {
    async fn run(&self, method: Method, path: &str, duration: Duration) -> LoadResult {
        if self.spin {
            // Blocks this (current-thread) runtime for the run, which has nothing else to do.
            return spin::run(
                self.port,
                method.as_str(),
                path,
                self.cookies,
                self.concurrency,
                duration,
            );
        }
        load::run(
            self.port,
            method,
            path,
            self.cookies,
            self.concurrency,
            duration,
        )
        .await
    }
}

async fn measured(client: &Client<'_>, method: Method, path: &str, duration: Duration) -> Measured {
    let port = client.port;
    let redis_before = redis_calls().await;
    let _ = stats(port).await;
    let load = client.run(method, path, duration).await;
    let redis = redis_calls().await.saturating_sub(redis_before);
    let (cache, durable, _cache_writes, durable_writes) = stats(port).await.unwrap_or_default();
    let per = |n: u64| n as f64 / load.requests.max(1) as f64;
    Measured {
        load,
        redis_per_req: per(redis),
        cache_per_req: per(cache),
        durable_per_req: per(durable),
        durable_writes_per_req: per(durable_writes),
    }
}

/// Total commands Redis has executed (from `INFO commandstats`), minus our own probes.
async fn redis_calls() -> u64 {
    let (url, _) = env_urls();
    let Ok(client) = redis::Client::open(url) else {
        return 0;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return 0;
    };
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls: u64 = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            (!name.starts_with("info") && !name.starts_with("client") && !name.starts_with("hello"))
                .then_some(calls)
        })
        .sum()
}

/// The server's store-call counters since the last call (our variants only).
async fn stats(port: u16) -> Option<(u64, u64, u64, u64)> {
    let reply = load::once(port, Method::GET, "/__stats", None).await.ok()?;
    if reply.status != 200 {
        return None;
    }
    let body = reply.body;
    let json: serde_json::Value = serde_json::from_slice(&body).ok()?;
    let n = |k: &str| json[k].as_u64().unwrap_or(0);
    Some((
        n("cache"),
        n("durable"),
        n("cache_writes"),
        n("durable_writes"),
    ))
}

fn median(values: &mut [Measured], key: impl Fn(&Measured) -> f64) -> f64 {
    let mut keys: Vec<f64> = values.iter().map(&key).collect();
    keys.sort_by(f64::total_cmp);
    keys.get(keys.len() / 2).copied().unwrap_or(0.0)
}

fn print_table(variants: &[&str], rows: &[Row], opts: &Options, pinned: bool) {
    println!(
        "\n{} rounds x {} s per route, {} connections on {} session(s), one server worker{}, {} client; medians.\n",
        opts.rounds,
        opts.seconds,
        opts.concurrency,
        opts.sessions,
        if pinned {
            ", server on core 0, load on core 1"
        } else {
            ""
        },
        if opts.spin { "busy-polling" } else { "Tokio" }
    );
    let rps = |row: &Row, write: bool| {
        let mut m = if write {
            row.write.clone()
        } else {
            row.read.clone()
        };
        median(&mut m, |m| m.load.rps)
    };
    let find = |name: &str| variants.iter().position(|v| *v == name).map(|i| &rows[i]);
    for (title, write) in [("READ  GET /read", false), ("WRITE POST /write", true)] {
        println!("{title}");
        println!(
            "| variant | req/s | p50 ms | p99 ms | x bare | x actix-redis | redis cmds/req | store calls/req (cache+durable) | durable writes/req | errors |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let bare = find(servers::BARE).map(|r| rps(r, write));
        let actix_redis = find(servers::ACTIX_REDIS).map(|r| rps(r, write));
        for (variant, row) in variants.iter().zip(rows) {
            let mut m = if write {
                row.write.clone()
            } else {
                row.read.clone()
            };
            if m.is_empty() {
                println!("| {variant} | skipped | | | | | | | | |");
                continue;
            }
            let r = median(&mut m, |m| m.load.rps);
            let ratio = |base: Option<f64>| {
                base.filter(|b| *b > 0.0)
                    .map_or("-".into(), |b| format!("{:.2}", r / b))
            };
            let is_ours = variant.starts_with("ours");
            println!(
                "| {variant} | {r:.0} | {:.2} | {:.2} | {} | {} | {:.2} | {} | {} | {} |",
                median(&mut m, |m| m.load.p50_us as f64) / 1000.0,
                median(&mut m, |m| m.load.p99_us as f64) / 1000.0,
                ratio(bare),
                ratio(actix_redis),
                median(&mut m, |m| m.redis_per_req),
                if is_ours {
                    format!(
                        "{:.2} + {:.2}",
                        median(&mut m, |m| m.cache_per_req),
                        median(&mut m, |m| m.durable_per_req)
                    )
                } else {
                    "n/a".into()
                },
                if is_ours {
                    format!("{:.2}", median(&mut m, |m| m.durable_writes_per_req))
                } else {
                    "n/a".into()
                },
                median(&mut m, |m| m.load.errors as f64),
            );
        }
        println!();
    }
}
