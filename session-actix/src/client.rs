//! Who the client is, for binding: its IP (behind trusted proxies, the right-most
//! untrusted forwarded address) and its User-Agent, as a keyed fingerprint.

use std::net::IpAddr;

use actix_web::{
    http::header::{self, HeaderValue},
    HttpRequest,
};

use crate::settings::Settings;

/// The client's binding fingerprint (HMAC of its IP prefix and/or User-Agent), if binding
/// is on. Computed only for a session being created.
pub(crate) fn fingerprint(req: &HttpRequest, settings: &Settings) -> Option<String> {
    let (ip, user_agent) = binding_inputs(req, settings)?;
    settings
        .binding_key
        .fingerprint(&settings.binding, ip, Some(user_agent))
}

/// How a client compares with the fingerprint its session was bound with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Binding {
    /// It matches, under the current key.
    Matches,
    /// It matches under a previous key (key rotation).
    MatchesPreviousKey,
    /// It does not match.
    Mismatch,
}

/// Whether the client matches the fingerprint its session was bound with (`None`: bound
/// to nothing). A session without a fingerprint under a policy that binds does not match
/// (fail closed).
pub(crate) fn matches(req: &HttpRequest, settings: &Settings, stored: Option<&str>) -> Binding {
    // With binding off there are no inputs, and `matches` accepts only unbound sessions.
    let (ip, user_agent) = binding_inputs(req, settings).unwrap_or((None, &[]));
    let policy = &settings.binding;
    if settings
        .binding_key
        .matches(policy, ip, Some(user_agent), stored)
    {
        Binding::Matches
    } else if stored.is_some()
        && settings
            .previous_binding_keys
            .iter()
            .any(|key| key.matches(policy, ip, Some(user_agent), stored))
    {
        Binding::MatchesPreviousKey
    } else {
        Binding::Mismatch
    }
}

/// What the binding policy looks at: the client IP and the User-Agent, each only if bound.
/// `None` when binding is off.
fn binding_inputs<'r>(
    req: &'r HttpRequest,
    settings: &Settings,
) -> Option<(Option<IpAddr>, &'r [u8])> {
    let policy = &settings.binding;
    if !policy.is_enabled() {
        return None;
    }
    let ip = if policy.check_ip {
        client_ip(req, settings)
    } else {
        None
    };
    let user_agent = if policy.check_user_agent {
        req.headers()
            .get(header::USER_AGENT)
            .map_or(&[][..], HeaderValue::as_bytes)
    } else {
        &[]
    };
    Some((ip, user_agent))
}

/// The client's IP: the peer address, or, behind trusted proxies, the right-most
/// forwarded address that is not itself a trusted proxy
/// ([`client_ip`](session_core::client_ip::client_ip) has the rule).
fn client_ip(req: &HttpRequest, settings: &Settings) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|addr| addr.ip())?;
    if settings.trusted_proxies.is_empty() {
        return Some(peer);
    }
    let header = settings.forwarded_header;
    let values = req
        .headers()
        .get_all(header.name())
        .filter_map(|value| value.to_str().ok());
    Some(session_core::client_ip::client_ip(
        peer,
        header,
        values,
        |ip| settings.is_trusted_proxy(ip),
    ))
}
