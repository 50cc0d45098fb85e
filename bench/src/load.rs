//! A keep-alive HTTP/1.1 load generator: a fixed number of connections, each sending its
//! next request as soon as the previous answer arrived, for a fixed time.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::{body::Bytes, Method, Request};
use hyper_util::rt::TokioIo;

/// What one run measured.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LoadResult {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) rps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
}

/// One request on a fresh connection.
pub(crate) struct Reply {
    pub(crate) status: u16,
    /// The first `Set-Cookie`, as `name=value`.
    pub(crate) cookie: Option<String>,
    pub(crate) body: Bytes,
}

/// One request on a fresh connection.
pub(crate) async fn once(
    port: u16,
    method: Method,
    path: &str,
    cookie: Option<&str>,
) -> Result<Reply, String> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let res = sender
        .send_request(request(method, path, cookie))
        .await
        .map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .next();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Reply {
        status,
        cookie,
        body,
    })
}

fn request(method: Method, path: &str, cookie: Option<&str>) -> Request<Empty<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1");
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", cookie);
    }
    builder.body(Empty::new()).unwrap_or_default()
}

/// Drives `path` with `concurrency` keep-alive connections for `duration`. Connection `i`
/// sends `cookies[i % cookies.len()]` (no cookie if `cookies` is empty).
pub(crate) async fn run(
    port: u16,
    method: Method,
    path: &str,
    cookies: &[Option<String>],
    concurrency: usize,
    duration: Duration,
) -> LoadResult {
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let cookie = match cookies.len() {
                0 => None,
                n => cookies[i % n].clone(),
            };
            let (method, path) = (method.clone(), path.to_owned());
            tokio::spawn(async move {
                connection(port, method, &path, cookie.as_deref(), deadline).await
            })
        })
        .collect();
    let started = Instant::now();
    let mut histogram = histogram();
    let (mut requests, mut errors) = (0, 0);
    for task in tasks {
        if let Ok((h, r, e)) = task.await {
            let _ = histogram.add(&h);
            requests += r;
            errors += e;
        }
    }
    LoadResult::new(requests, errors, started, &histogram)
}

impl LoadResult {
    /// The result of `requests` answered since `started`, with their latencies (µs).
    pub(crate) fn new(
        requests: u64,
        errors: u64,
        started: Instant,
        histogram: &Histogram<u64>,
    ) -> Self {
        Self {
            requests,
            errors,
            rps: requests as f64 / started.elapsed().as_secs_f64(),
            p50_us: histogram.value_at_quantile(0.50),
            p99_us: histogram.value_at_quantile(0.99),
        }
    }
}

/// An empty latency histogram (µs, three significant figures).
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new(3).unwrap_or_else(|_| {
        // Three significant figures is always a valid precision.
        Histogram::new_with_max(3_600_000_000, 3).unwrap_or_else(|_| std::process::abort())
    })
}

async fn connection(
    port: u16,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    deadline: Instant,
) -> (Histogram<u64>, u64, u64) {
    let mut histogram = histogram();
    let (mut requests, mut errors) = (0u64, 0u64);
    let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return (histogram, 0, 1);
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return (histogram, 0, 1);
    };
    tokio::spawn(conn);
    while Instant::now() < deadline {
        let start = Instant::now();
        match sender
            .send_request(request(method.clone(), path, cookie))
            .await
        {
            Ok(res) => {
                let ok = res.status().is_success();
                let _ = res.into_body().collect().await;
                let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                let _ = histogram.record(micros.max(1));
                requests += 1;
                if !ok {
                    errors += 1;
                }
            }
            Err(_) => {
                errors += 1;
                break;
            }
        }
    }
    (histogram, requests, errors)
}
