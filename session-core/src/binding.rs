//! Binding a session to its client: a keyed digest of the client's IP prefix and/or
//! User-Agent, so the store never holds the raw values.

use std::net::IpAddr;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use ring::hmac;
use subtle::ConstantTimeEq as _;

/// What a session is bound to, and how loosely.
///
/// IP binding compares network prefixes, not whole addresses: by default /32 for IPv4 (the
/// exact address) and /64 for IPv6 (one subnet, as privacy extensions rotate the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingPolicy {
    /// Bind to the client IP prefix.
    pub check_ip: bool,
    /// Bind to the User-Agent header.
    pub check_user_agent: bool,
    /// IPv4 prefix length compared, 0..=32.
    pub ipv4_prefix: u8,
    /// IPv6 prefix length compared, 0..=128.
    pub ipv6_prefix: u8,
}

impl Default for BindingPolicy {
    fn default() -> Self {
        Self {
            check_ip: false,
            check_user_agent: false,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
        }
    }
}

impl BindingPolicy {
    /// Whether anything is bound.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.check_ip || self.check_user_agent
    }
}

/// The HMAC key for binding fingerprints. Keep it secret and stable across restarts and
/// processes (derive it from the cookie key).
#[derive(Clone)]
pub struct BindingKey(hmac::Key);

impl std::fmt::Debug for BindingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BindingKey(..)")
    }
}

impl BindingKey {
    /// A key from secret bytes (at least 32 recommended).
    #[must_use]
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The fingerprint of a client under `policy`: base64url HMAC-SHA256 of the masked IP
    /// and the User-Agent. `None` when the policy binds nothing.
    #[must_use]
    pub fn fingerprint(
        &self,
        policy: &BindingPolicy,
        ip: Option<IpAddr>,
        user_agent: Option<&[u8]>,
    ) -> Option<String> {
        self.tag(policy, ip, user_agent)
            .map(|tag| URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Whether a client matches the fingerprint a session was bound with (`stored`, as
    /// [`fingerprint`](Self::fingerprint) made it; `None` for a session bound to nothing).
    ///
    /// The digests are compared in constant time, and nothing is allocated. A session bound
    /// under one policy does not match under another: turning binding on or off ends the
    /// sessions bound the other way.
    #[must_use]
    pub fn matches(
        &self,
        policy: &BindingPolicy,
        ip: Option<IpAddr>,
        user_agent: Option<&[u8]>,
        stored: Option<&str>,
    ) -> bool {
        match (self.tag(policy, ip, user_agent), stored) {
            (None, None) => true,
            (Some(tag), Some(stored)) => {
                // Room for one byte more than a digest: a longer value fails to decode.
                let mut decoded = [0u8; 33];
                URL_SAFE_NO_PAD
                    .decode_slice(stored, &mut decoded)
                    .ok()
                    .and_then(|len| decoded.get(..len))
                    .is_some_and(|decoded| bool::from(tag.as_ref().ct_eq(decoded)))
            }
            _ => false,
        }
    }

    fn tag(
        &self,
        policy: &BindingPolicy,
        ip: Option<IpAddr>,
        user_agent: Option<&[u8]>,
    ) -> Option<hmac::Tag> {
        if !policy.is_enabled() {
            return None;
        }
        let mut ctx = hmac::Context::with_key(&self.0);
        if policy.check_ip {
            ctx.update(b"ip:");
            match ip.map(|ip| mask(ip, policy)) {
                Some(IpAddr::V4(v4)) => ctx.update(&v4.octets()),
                Some(IpAddr::V6(v6)) => ctx.update(&v6.octets()),
                None => ctx.update(b"unknown"),
            }
        }
        if policy.check_user_agent {
            ctx.update(b"|ua:");
            ctx.update(user_agent.unwrap_or_default());
        }
        Some(ctx.sign())
    }
}

/// Keeps the policy's prefix of `ip` and zeroes the rest.
#[must_use]
pub fn mask(ip: IpAddr, policy: &BindingPolicy) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4) & prefix_mask_u32(policy.ipv4_prefix);
            IpAddr::V4(bits.into())
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => mask(IpAddr::V4(v4), policy),
            None => {
                let bits = u128::from(v6) & prefix_mask_u128(policy.ipv6_prefix);
                IpAddr::V6(bits.into())
            }
        },
    }
}

fn prefix_mask_u32(prefix: u8) -> u32 {
    match prefix.min(32) {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p)),
    }
}

fn prefix_mask_u128(prefix: u8) -> u128 {
    match prefix.min(128) {
        0 => 0,
        p => u128::MAX << (128 - u32::from(p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(check_ip: bool, check_user_agent: bool) -> BindingPolicy {
        BindingPolicy {
            check_ip,
            check_user_agent,
            ..BindingPolicy::default()
        }
    }

    #[test]
    fn masks_prefixes() {
        let p = BindingPolicy {
            ipv4_prefix: 24,
            ipv6_prefix: 64,
            ..BindingPolicy::default()
        };
        assert_eq!(
            mask("10.1.2.3".parse().unwrap(), &p),
            "10.1.2.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            mask("2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap(), &p),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            mask("::ffff:10.1.2.3".parse().unwrap(), &p),
            "10.1.2.0".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn fingerprints_follow_the_policy() {
        let key = BindingKey::new(b"k");
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(
            key.fingerprint(&policy(false, false), ip("1.2.3.4"), None),
            None
        );
        let both = policy(true, true);
        let a = key.fingerprint(&both, ip("1.2.3.4"), Some(b"UA"));
        assert_eq!(a, key.fingerprint(&both, ip("1.2.3.4"), Some(b"UA")));
        assert_ne!(a, key.fingerprint(&both, ip("1.2.3.5"), Some(b"UA")));
        assert_ne!(a, key.fingerprint(&both, ip("1.2.3.4"), Some(b"UB")));
        let ua_only = policy(false, true);
        assert_eq!(
            key.fingerprint(&ua_only, ip("1.2.3.4"), Some(b"UA")),
            key.fingerprint(&ua_only, ip("9.9.9.9"), Some(b"UA"))
        );
        // IPv6 privacy addresses within one /64 match.
        let ip_only = policy(true, false);
        assert_eq!(
            key.fingerprint(&ip_only, ip("2001:db8::1"), None),
            key.fingerprint(&ip_only, ip("2001:db8::ffff:1"), None)
        );
        // Raw values never appear, and another key gives another digest.
        assert!(!a.as_deref().unwrap().contains("UA"));
        assert_ne!(
            a,
            BindingKey::new(b"other").fingerprint(&both, ip("1.2.3.4"), Some(b"UA"))
        );
    }

    #[test]
    fn matches_agrees_with_fingerprints() {
        let key = BindingKey::new(b"k");
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let both = policy(true, true);
        let stored = key.fingerprint(&both, ip("1.2.3.4"), Some(b"UA")).unwrap();
        assert!(key.matches(&both, ip("1.2.3.4"), Some(b"UA"), Some(&stored)));
        assert!(!key.matches(&both, ip("1.2.3.5"), Some(b"UA"), Some(&stored)));
        assert!(!key.matches(&both, ip("1.2.3.4"), Some(b"UB"), Some(&stored)));
        // Tampered, truncated, extended and garbage stored values never match.
        let mut flipped = stored.clone().into_bytes();
        flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in [
            flipped.as_str(),
            &stored[..42],
            &format!("{stored}A"),
            &format!("{stored}AAAA"),
            "",
            "not base64 at all!",
        ] {
            assert!(
                !key.matches(&both, ip("1.2.3.4"), Some(b"UA"), Some(bad)),
                "{bad:?}"
            );
        }
        // Bound to nothing matches only an unbound session, and the other way round.
        let off = policy(false, false);
        assert!(key.matches(&off, ip("1.2.3.4"), Some(b"UA"), None));
        assert!(!key.matches(&off, ip("1.2.3.4"), Some(b"UA"), Some(&stored)));
        assert!(!key.matches(&both, ip("1.2.3.4"), Some(b"UA"), None));
    }
}
