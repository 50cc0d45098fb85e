//! Which address a request came from, behind trusted reverse proxies.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Which header the trusted proxies write: the only one that is read. A proxy that
/// writes one of them passes the other through as the client sent it, so reading a header
/// the proxy does not write would let a client choose its own address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …` (nginx, HAProxy, cloud load balancers). The
    /// default.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=proxy1`.
    Forwarded,
}

impl ForwardedHeader {
    /// The header's name, lower case.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the walk goes
/// through the forwarding chain in `header` (the values of every such header, in order)
/// from the nearest hop outwards and stops at the first hop that is not a trusted proxy
/// (the right-most-untrusted rule).
///
/// Every entry form is read: `ip`, `ip:port`, `[v6]`, `[v6]:port`, quoted or not
/// (`for="[2001:db8::1]:4711"`). An entry that names no address (`unknown`, an obfuscated
/// `_hidden` token, an element without `for=`, garbage) stops the walk at that hop: the
/// client is whoever reached the last proxy we trust, and the address returned is that
/// proxy's. Entries further out were written by parties we do not trust and are never
/// read, so a client cannot choose its address by sending a header of its own.
///
/// ```
/// use std::net::IpAddr;
/// use session_core::client_ip::{client_ip, ForwardedHeader};
///
/// let proxy: IpAddr = "10.0.0.1".parse().unwrap();
/// let trusted = |ip: IpAddr| ip == proxy;
/// // A spoofed left-most entry is ignored; the proxy's own entry decides.
/// let xff = ["6.6.6.6, 203.0.113.7:40000"];
/// let ip = client_ip(proxy, ForwardedHeader::XForwardedFor, xff, trusted);
/// assert_eq!(ip, "203.0.113.7".parse::<IpAddr>().unwrap());
/// // RFC 7239.
/// let fwd = [r#"for="[2001:db8::17]:4711";proto=https"#];
/// let ip = client_ip(proxy, ForwardedHeader::Forwarded, fwd, trusted);
/// assert_eq!(ip, "2001:db8::17".parse::<IpAddr>().unwrap());
/// ```
pub fn client_ip<'a>(
    peer: IpAddr,
    header: ForwardedHeader,
    values: impl IntoIterator<Item = &'a str>,
    is_trusted: impl Fn(IpAddr) -> bool,
) -> IpAddr {
    // An IPv4 client on a dual-stack socket arrives as `::ffff:a.b.c.d`: compare it as
    // the IPv4 address it is.
    let peer = peer.to_canonical();
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = values
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(|element| match header {
            ForwardedHeader::XForwardedFor => element,
            ForwardedHeader::Forwarded => for_parameter(element).unwrap_or(""),
        })
        .collect();
    let mut nearest = peer;
    for hop in hops.iter().rev() {
        match parse_node(hop).map(|ip| ip.to_canonical()) {
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

    fn trusted(candidate: IpAddr) -> bool {
        candidate == ip(PROXY) || candidate == ip("10.0.0.2") || candidate == ip("fd00::1")
    }

    fn walk(xff: &[&str], fwd: &[&str]) -> IpAddr {
        if fwd.is_empty() {
            client_ip(
                ip(PROXY),
                ForwardedHeader::XForwardedFor,
                xff.iter().copied(),
                trusted,
            )
        } else {
            client_ip(
                ip(PROXY),
                ForwardedHeader::Forwarded,
                fwd.iter().copied(),
                trusted,
            )
        }
    }

    #[test]
    fn a_mapped_ipv4_peer_is_its_ipv4_address() {
        let proxy = ip("10.0.0.1");
        let mapped = ip("::ffff:10.0.0.1");
        let xff = ForwardedHeader::XForwardedFor;
        let client = client_ip(mapped, xff, ["203.0.113.7"], |candidate| candidate == proxy);
        assert_eq!(client, ip("203.0.113.7"), "the proxy is recognised");
        let client = client_ip(ip("::ffff:198.51.100.9"), xff, [""; 0], |_| false);
        assert_eq!(client, ip("198.51.100.9"));
    }

    #[test]
    fn an_untrusted_peer_is_the_client() {
        let client = client_ip(
            ip("198.51.100.9"),
            ForwardedHeader::XForwardedFor,
            ["1.2.3.4"],
            |_| false,
        );
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
    fn only_the_configured_header_is_read() {
        // The proxy writes X-Forwarded-For; a Forwarded header is the client's own.
        let spoofed = client_ip(
            ip(PROXY),
            ForwardedHeader::XForwardedFor,
            ["203.0.113.7"],
            trusted,
        );
        assert_eq!(spoofed, ip("203.0.113.7"));
        let fwd_only = client_ip(ip(PROXY), ForwardedHeader::XForwardedFor, [""; 0], trusted);
        assert_eq!(fwd_only, ip(PROXY), "a Forwarded header alone is not read");
    }

    #[test]
    fn rfc_7239_forwarded() {
        assert_eq!(
            walk(&[], &["for=192.0.2.60;proto=http;by=203.0.113.43"]),
            ip("192.0.2.60")
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
