//! [`Settings`]: what a built layer applies to every request.

use std::{net::IpAddr, sync::Arc};

use actix_web::cookie::SameSite;
use session_core::{
    binding::{mask, BindingKey, BindingPolicy},
    client_ip::ForwardedHeader,
    lifecycle::Policy,
    Clock,
};

use crate::{info::CookieInfo, seal::Sealer};

/// The settings of a [`SessionLayer`](crate::SessionLayer), fixed when it is built.
pub(crate) struct Settings {
    pub(crate) cookie_name: String,
    /// `; Path=..; Domain=..; Secure; HttpOnly; SameSite=..`, formatted once.
    pub(crate) cookie_attributes: String,
    pub(crate) persistent_cookie: bool,
    /// What [`SessionInfo`](crate::SessionInfo) says about the cookie.
    pub(crate) cookie_info: Arc<CookieInfo>,
    pub(crate) policy: Policy,
    pub(crate) integrate_flash: bool,
    pub(crate) binding: BindingPolicy,
    pub(crate) trusted_proxies: Vec<(IpAddr, u8)>,
    pub(crate) forwarded_header: ForwardedHeader,
    pub(crate) binding_key: BindingKey,
    pub(crate) sealer: Sealer,
    /// Sealers of previous keys (key rotation): they open cookies, never seal.
    pub(crate) previous_sealers: Vec<Sealer>,
    /// Binding keys of previous keys: their fingerprints still match.
    pub(crate) previous_binding_keys: Vec<BindingKey>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Settings {
    /// Opens a session cookie's value: its payload, and whether a previous key made it.
    pub(crate) fn open_cookie(&self, value: &str) -> Option<(Vec<u8>, bool)> {
        if let Some(payload) = self.sealer.open(value) {
            return Some((payload, false));
        }
        self.previous_sealers
            .iter()
            .find_map(|sealer| sealer.open(value))
            .map(|payload| (payload, true))
    }

    /// Whether `ip` is one of the configured trusted proxies.
    pub(crate) fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|&(net, prefix)| {
            let policy = BindingPolicy {
                ipv4_prefix: prefix,
                ipv6_prefix: prefix,
                ..BindingPolicy::default()
            };
            ip.is_ipv4() == net.is_ipv4() && mask(ip, &policy) == mask(net, &policy)
        })
    }
}

/// The attributes every `Set-Cookie` of the layer carries after `name=value`.
pub(crate) fn cookie_attributes(
    path: &str,
    domain: Option<&str>,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
) -> String {
    let mut out = format!("; Path={path}");
    if let Some(domain) = domain {
        out.push_str("; Domain=");
        out.push_str(domain);
    }
    if secure {
        out.push_str("; Secure");
    }
    if http_only {
        out.push_str("; HttpOnly");
    }
    out.push_str(match same_site {
        SameSite::Strict => "; SameSite=Strict",
        SameSite::Lax => "; SameSite=Lax",
        SameSite::None => "; SameSite=None",
    });
    out
}
