//! Which address a request came from, behind trusted reverse proxies.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The client's address: the peer's, unless the peer is a trusted proxy; then the walk goes
/// through the forwarding chain from the nearest hop outwards and stops at the first hop
/// that is not a trusted proxy (the right-most-untrusted rule).
///
/// `forwarded` holds the values of the RFC 7239 `Forwarded` headers; `forwarded_for` those
/// of `X-Forwarded-For`. `Forwarded` is used when present, as the standard header.
///
/// Every entry form is read: `ip`, `ip:port`, `[v6]`, `[v6]:port`, quoted or not
/// (`for="[2001:db8::1]:4711"`). An entry that names no address (`unknown`, an obfuscated
/// `_hidden` token, garbage) stops the walk at that hop: the client is whoever reached the
/// last proxy we trust, and the address returned is that proxy's. Entries further out were
/// written by parties we do not trust and are never read, so a client cannot choose its
/// address by sending a header of its own.
///
/// ```
/// use std::net::IpAddr;
/// use session_core::client_ip::client_ip;
///
/// let proxy: IpAddr = "10.0.0.1".parse().unwrap();
/// let trusted = |ip: IpAddr| ip == proxy;
/// // A spoofed left-most entry is ignored; the proxy's own entry decides.
/// let ip = client_ip(proxy, ["6.6.6.6, 203.0.113.7:40000"], [""; 0], trusted);
/// assert_eq!(ip, "203.0.113.7".parse::<IpAddr>().unwrap());
/// // RFC 7239.
/// let ip = client_ip(proxy, [""; 0], [r#"for="[2001:db8::17]:4711";proto=https"#], trusted);
/// assert_eq!(ip, "2001:db8::17".parse::<IpAddr>().unwrap());
/// ```
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    forwarded: impl IntoIterator<Item = &'a str>,
    is_trusted: impl Fn(IpAddr) -> bool,
) -> IpAddr {
    if !is_trusted(peer) {
        return peer;
    }
    let forwarded: Vec<&str> = forwarded
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(|element| for_parameter(element).unwrap_or(""))
        .collect();
    let hops: Vec<&str> = if forwarded.is_empty() {
        forwarded_for
            .into_iter()
            .flat_map(|value| value.split(','))
            .collect()
    } else {
        forwarded
    };
    let mut nearest = peer;
    for hop in hops.iter().rev() {
        match parse_node(hop) {
            Some(ip) if is_trusted(ip) => nearest = ip,
            Some(ip) => return ip,
            // Unknown or obfuscated: nothing beyond this hop can be believed.
            None => return nearest,
        }
    }
    nearest
}

/// The `for=` value of one `Forwarded` element (`for=…;proto=…;by=…`), if it has one.
fn for_parameter(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim())
    })
}

/// An address from a forwarding entry: `ip`, `ip:port`, `[v6]`, `[v6]:port`, optionally in
/// double quotes. `None` for anything else.
fn parse_node(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let entry = entry
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(entry);
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    if let Some(v6) = entry
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    {
        return v6.parse::<IpAddr>().ok();
    }
    // `ip:port` with an obfuscated port (`192.0.2.43:_4711`, RFC 7239 §6.3).
    let (host, port) = entry.rsplit_once(':')?;
    port.starts_with('_')
        .then(|| host.parse::<Ipv4Addr>().ok().map(IpAddr::V4))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const PROXY: &str = "10.0.0.1";

    fn walk(xff: &[&str], fwd: &[&str]) -> IpAddr {
        let trusted = |candidate: IpAddr| {
            candidate == ip(PROXY) || candidate == ip("10.0.0.2") || candidate == ip("fd00::1")
        };
        client_ip(ip(PROXY), xff.iter().copied(), fwd.iter().copied(), trusted)
    }

    #[test]
    fn an_untrusted_peer_is_the_client() {
        let client = client_ip(ip("198.51.100.9"), ["1.2.3.4"], [""; 0], |_| false);
        assert_eq!(client, ip("198.51.100.9"), "its headers are not read");
    }

    #[test]
    fn every_entry_form() {
        for (entry, expected) in [
            ("203.0.113.7", "203.0.113.7"),
            ("203.0.113.7:40000", "203.0.113.7"),
            ("2001:db8::7", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            ("\"[2001:db8::7]:443\"", "2001:db8::7"),
            ("192.0.2.43:_4711", "192.0.2.43"),
        ] {
            assert_eq!(walk(&[entry], &[]), ip(expected), "{entry}");
        }
    }

    #[test]
    fn right_most_untrusted_wins_and_spoofed_entries_are_ignored() {
        assert_eq!(
            walk(&["6.6.6.6, 203.0.113.7, 10.0.0.2"], &[]),
            ip("203.0.113.7")
        );
        assert_eq!(
            walk(&["6.6.6.6", "203.0.113.7:1"], &[]),
            ip("203.0.113.7"),
            "several headers"
        );
        assert_eq!(
            walk(&["10.0.0.2"], &[]),
            ip("10.0.0.2"),
            "only proxies: the outermost"
        );
        assert_eq!(walk(&[], &[]), ip(PROXY), "no header: the proxy itself");
    }

    #[test]
    fn an_unknown_hop_stops_the_walk_without_discarding_the_chain() {
        // The entry nearer than the unknown one is still read.
        assert_eq!(walk(&["unknown, 203.0.113.7"], &[]), ip("203.0.113.7"));
        // An unknown nearest hop: nothing beyond it is believed, not even a spoofable
        // entry further out.
        assert_eq!(walk(&["6.6.6.6, unknown"], &[]), ip(PROXY));
        assert_eq!(walk(&["6.6.6.6, 10.0.0.2, _hidden"], &[]), ip(PROXY));
        assert_eq!(walk(&["6.6.6.6, _hidden, 10.0.0.2"], &[]), ip("10.0.0.2"));
        assert_eq!(walk(&["garbage!!"], &[]), ip(PROXY));
    }

    #[test]
    fn rfc_7239_forwarded() {
        assert_eq!(
            walk(&["6.6.6.6"], &["for=192.0.2.60;proto=http;by=203.0.113.43"]),
            ip("192.0.2.60"),
            "Forwarded is preferred over X-Forwarded-For"
        );
        assert_eq!(
            walk(&[], &[r#"for=6.6.6.6, For="[2001:db8:cafe::17]:4711""#]),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(walk(&[], &["for=unknown"]), ip(PROXY));
        assert_eq!(
            walk(&[], &["proto=https"]),
            ip(PROXY),
            "an element without for="
        );
        assert_eq!(
            walk(&[], &["for=198.51.100.1, for=\"[fd00::1]\""]),
            ip("198.51.100.1")
        );
    }
}
