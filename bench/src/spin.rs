//! A busy-polling load generator (`--client spin`): one thread, non-blocking sockets,
//! never asleep in the kernel.
//!
//! With the default (Tokio) client, the load generator sleeps in `epoll_wait` whenever all
//! its connections wait for answers, and the server's `sendto` then pays for waking it up
//! (on this VM an inter-processor interrupt, seen as `_raw_spin_unlock_irqrestore` under
//! `sock_def_readable`). How often that happens depends on how fast the server answers, so
//! it penalizes slower variants more than their own cost per request: 8% of ours-memory's
//! server time against 3% of the cookie store's, in one run. This client never sleeps (it
//! yields the core when nothing is ready, so Redis and PostgreSQL still get it), so the
//! server's time per request is its own work plus the TCP stack, as with remote clients.

use std::{
    io::{ErrorKind, Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use crate::load::LoadResult;

/// One keep-alive connection and the request it repeats.
struct Connection {
    stream: TcpStream,
    request: Vec<u8>,
    buffer: Vec<u8>,
    sent_at: Instant,
}

/// What the bytes read so far hold.
enum Parsed {
    /// Not a whole response yet.
    Partial,
    /// A whole response of `len` bytes, successful or not.
    Complete { len: usize, success: bool },
    /// Not HTTP/1.1 as expected.
    Invalid,
}

/// Drives `path` with `concurrency` keep-alive connections for `duration`, as
/// [`crate::load::run`] does, but busy-polling. Connection `i` sends `cookies[i % n]`.
pub(crate) fn run(
    port: u16,
    method: &str,
    path: &str,
    cookies: &[Option<String>],
    concurrency: usize,
    duration: Duration,
) -> LoadResult {
    let mut histogram = crate::load::histogram();
    let (mut requests, mut errors) = (0u64, 0u64);
    let mut connections = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let cookie = match cookies.len() {
            0 => None,
            n => cookies[i % n].as_deref(),
        };
        match connect(port, request(method, path, cookie)) {
            Ok(connection) => connections.push(connection),
            Err(_) => errors += 1,
        }
    }
    let started = Instant::now();
    let deadline = started + duration;
    for connection in &mut connections {
        if send(connection).is_err() {
            errors += 1;
        }
    }
    let mut chunk = [0u8; 4096];
    while Instant::now() < deadline && !connections.is_empty() {
        let mut progressed = false;
        let mut i = 0;
        while i < connections.len() {
            let connection = &mut connections[i];
            match connection.stream.read(&mut chunk) {
                Ok(0) => {
                    errors += 1;
                    connections.swap_remove(i);
                    continue;
                }
                Ok(n) => {
                    progressed = true;
                    connection.buffer.extend_from_slice(&chunk[..n]);
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => {
                    i += 1;
                    continue;
                }
                Err(_) => {
                    errors += 1;
                    connections.swap_remove(i);
                    continue;
                }
            }
            match parse(&connection.buffer) {
                Parsed::Partial => {}
                Parsed::Invalid => {
                    errors += 1;
                    connections.swap_remove(i);
                    continue;
                }
                Parsed::Complete { len, success } => {
                    let micros = connection.sent_at.elapsed().as_micros();
                    let _ = histogram.record(u64::try_from(micros).unwrap_or(u64::MAX).max(1));
                    requests += 1;
                    if !success {
                        errors += 1;
                    }
                    connection.buffer.drain(..len);
                    if send(connection).is_err() {
                        errors += 1;
                        connections.swap_remove(i);
                        continue;
                    }
                }
            }
            i += 1;
        }
        if !progressed {
            // Nothing ready: let whatever else wants this core (Redis, PostgreSQL) run,
            // without sleeping in the kernel.
            std::thread::yield_now();
        }
    }
    LoadResult::new(requests, errors, started, &histogram)
}

fn request(method: &str, path: &str, cookie: Option<&str>) -> Vec<u8> {
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    if let Some(cookie) = cookie {
        request.push_str("cookie: ");
        request.push_str(cookie);
        request.push_str("\r\n");
    }
    if method == "POST" {
        request.push_str("content-length: 0\r\n");
    }
    request.push_str("\r\n");
    request.into_bytes()
}

fn connect(port: u16, request: Vec<u8>) -> std::io::Result<Connection> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    stream.set_nonblocking(true)?;
    Ok(Connection {
        stream,
        request,
        buffer: Vec::with_capacity(1024),
        sent_at: Instant::now(),
    })
}

/// Sends the connection's request (the socket stays non-blocking; a request this small
/// normally goes out in one write).
fn send(connection: &mut Connection) -> std::io::Result<()> {
    connection.sent_at = Instant::now();
    let mut rest = &connection.request[..];
    while !rest.is_empty() {
        match connection.stream.write(rest) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(err) if err.kind() == ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Whether `buffer` starts with a whole HTTP/1.1 response with a `content-length`.
fn parse(buffer: &[u8]) -> Parsed {
    let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Parsed::Partial;
    };
    let Ok(head) = std::str::from_utf8(&buffer[..head_end]) else {
        return Parsed::Invalid;
    };
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok());
    let length = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok());
    match (status, length) {
        (Some(status), Some(length)) if buffer.len() >= head_end + 4 + length => Parsed::Complete {
            len: head_end + 4 + length,
            success: (200..300).contains(&status),
        },
        (Some(_), Some(_)) => Parsed::Partial,
        _ => Parsed::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_partial_and_pipelined_responses() {
        let one = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ndate: x\r\n\r\n12";
        assert!(matches!(
            parse(one),
            Parsed::Complete { len, success: true } if len == one.len()
        ));
        assert!(matches!(parse(&one[..one.len() - 1]), Parsed::Partial));
        assert!(matches!(parse(&one[..10]), Parsed::Partial));
        let mut two = one.to_vec();
        two.extend_from_slice(one);
        assert!(matches!(
            parse(&two),
            Parsed::Complete { len, .. } if len == one.len()
        ));
        let error = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(
            parse(error),
            Parsed::Complete { success: false, .. }
        ));
        assert!(matches!(
            parse(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"),
            Parsed::Invalid
        ));
    }
}
