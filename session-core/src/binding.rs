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
///
/// Digests are memoized per thread (a small direct-mapped table keyed by this key, the
/// policy, the masked IP and the User-Agent): a browser sends the same User-Agent with
/// every request, so most requests find their client's digest there instead of computing
/// the HMAC again. The table holds only what requests sent and the digests of it; a miss
/// costs one HMAC, as without it.
#[derive(Clone)]
pub struct BindingKey {
    key: hmac::Key,
    /// Tells this key's memo entries from other keys' (several layers in one process).
    id: u64,
}

/// What a digest is computed from.
struct MemoInput<'a> {
    key: u64,
    policy: BindingPolicy,
    /// The masked IP, if bound (`Some(None)`: bound, but unknown).
    ip: Option<Option<IpAddr>>,
    /// The User-Agent, if bound.
    user_agent: Option<&'a [u8]>,
}

/// The per-thread memo of recent digests.
mod memo {
    use std::{cell::RefCell, net::IpAddr};

    use super::{BindingPolicy, MemoInput};

    /// Slots in each thread's table.
    const SLOTS: usize = 64;
    /// Longer User-Agents are not memoized (their digest is computed every time).
    const MAX_USER_AGENT: usize = 512;

    struct Entry {
        key: u64,
        policy: BindingPolicy,
        ip: Option<Option<IpAddr>>,
        user_agent: Option<Box<[u8]>>,
        tag: [u8; 43],
    }

    thread_local! {
        static TABLE: RefCell<Vec<Option<Entry>>> = RefCell::new((0..SLOTS).map(|_| None).collect());
    }

    /// FNV-1a over what identifies the input: cheap, and collisions only cost a miss.
    fn slot(input: &MemoInput<'_>) -> usize {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ input.key;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                hash ^= u64::from(b);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        };
        if let Some(ua) = input.user_agent {
            eat(ua);
        }
        match input.ip {
            Some(Some(IpAddr::V4(v4))) => eat(&v4.octets()),
            Some(Some(IpAddr::V6(v6))) => eat(&v6.octets()),
            _ => {}
        }
        usize::try_from(hash % SLOTS as u64).unwrap_or(0)
    }

    pub(super) fn get(input: &MemoInput<'_>) -> Option<[u8; 43]> {
        let index = slot(input);
        TABLE
            .try_with(|table| {
                let table = table.try_borrow().ok()?;
                let entry = table.get(index)?.as_ref()?;
                (entry.key == input.key
                    && entry.policy == input.policy
                    && entry.ip == input.ip
                    && entry.user_agent.as_deref() == input.user_agent)
                    .then_some(entry.tag)
            })
            .ok()
            .flatten()
    }

    pub(super) fn put(input: &MemoInput<'_>, tag: [u8; 43]) {
        if input.user_agent.is_some_and(|ua| ua.len() > MAX_USER_AGENT) {
            return;
        }
        let index = slot(input);
        let _ = TABLE.try_with(|table| {
            if let Ok(mut table) = table.try_borrow_mut() {
                if let Some(slot) = table.get_mut(index) {
                    *slot = Some(Entry {
                        key: input.key,
                        policy: input.policy,
                        ip: input.ip,
                        user_agent: input.user_agent.map(Box::from),
                        tag,
                    });
                }
            }
        });
    }
}

impl std::fmt::Debug for BindingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BindingKey(..)")
    }
}

impl BindingKey {
    /// A key from secret bytes (at least 32 recommended).
    #[must_use]
    pub fn new(secret: &[u8]) -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
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
            .map(|tag| tag.iter().copied().map(char::from).collect())
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
            // Both are the canonical unpadded base64url of a digest: equal text, equal
            // digests. Compared in constant time.
            (Some(tag), Some(stored)) => bool::from(tag[..].ct_eq(stored.as_bytes())),
            _ => false,
        }
    }

    fn tag(
        &self,
        policy: &BindingPolicy,
        ip: Option<IpAddr>,
        user_agent: Option<&[u8]>,
    ) -> Option<[u8; 43]> {
        if !policy.is_enabled() {
            return None;
        }
        let ip = if policy.check_ip {
            Some(ip.map(|ip| mask(ip, policy)))
        } else {
            None
        };
        let user_agent = if policy.check_user_agent {
            Some(user_agent.unwrap_or_default())
        } else {
            None
        };
        let input = MemoInput {
            key: self.id,
            policy: *policy,
            ip,
            user_agent,
        };
        if let Some(tag) = memo::get(&input) {
            return Some(tag);
        }
        let mut ctx = hmac::Context::with_key(&self.key);
        if let Some(ip) = ip {
            ctx.update(b"ip:");
            match ip {
                Some(IpAddr::V4(v4)) => ctx.update(&v4.octets()),
                Some(IpAddr::V6(v6)) => ctx.update(&v6.octets()),
                None => ctx.update(b"unknown"),
            }
        }
        if let Some(user_agent) = user_agent {
            ctx.update(b"|ua:");
            ctx.update(user_agent);
        }
        // The digest's unpadded base64url: 32 bytes always encode to 43 characters.
        let mut tag = [0u8; 43];
        let _ = URL_SAFE_NO_PAD.encode_slice(ctx.sign().as_ref(), &mut tag);
        memo::put(&input, tag);
        Some(tag)
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

#[cfg(test)]
mod memo_tests {
    use super::*;

    /// The memo never hands one input's digest to another: across keys, policies, IPs and
    /// User-Agents (and more inputs than slots, so slots are reused), every digest is the
    /// HMAC computed directly.
    #[test]
    fn memoized_digests_are_the_computed_ones() {
        let secrets = [[1u8; 32], [2u8; 32]];
        let keys: Vec<BindingKey> = secrets.iter().map(|s| BindingKey::new(s)).collect();
        let policy = BindingPolicy {
            check_ip: true,
            check_user_agent: true,
            ..BindingPolicy::default()
        };
        let direct = |secret: &[u8], ip: IpAddr, ua: &[u8]| {
            let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, secret));
            ctx.update(b"ip:");
            match mask(ip, &policy) {
                IpAddr::V4(v4) => ctx.update(&v4.octets()),
                IpAddr::V6(v6) => ctx.update(&v6.octets()),
            }
            ctx.update(b"|ua:");
            ctx.update(ua);
            URL_SAFE_NO_PAD.encode(ctx.sign().as_ref())
        };
        for round in 0..3 {
            for (key, secret) in keys.iter().zip(&secrets) {
                for n in 0..200u32 {
                    let ua = format!("agent {n}");
                    let ip = IpAddr::from([192, 0, 2, u8::try_from(n % 7).unwrap()]);
                    let got = key
                        .fingerprint(&policy, Some(ip), Some(ua.as_bytes()))
                        .unwrap();
                    assert_eq!(got, direct(secret, ip, ua.as_bytes()), "round {round}");
                    assert!(key.matches(&policy, Some(ip), Some(ua.as_bytes()), Some(&got)));
                    let other = IpAddr::from([198, 51, 100, 1]);
                    assert!(!key.matches(&policy, Some(other), Some(ua.as_bytes()), Some(&got)));
                    assert!(!key.matches(&policy, Some(ip), Some(b"other"), Some(&got)));
                }
            }
        }
    }

    /// Many keys, one client: keys that share a slot never share a digest.
    #[test]
    fn keys_never_share_memoized_digests() {
        let policy = BindingPolicy {
            check_user_agent: true,
            ..BindingPolicy::default()
        };
        let keys: Vec<(u8, BindingKey)> =
            (0..150u8).map(|i| (i, BindingKey::new(&[i; 32]))).collect();
        for _ in 0..2 {
            for (i, key) in &keys {
                let mut ctx =
                    hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, &[*i; 32]));
                ctx.update(b"|ua:");
                ctx.update(b"one browser");
                let expected = URL_SAFE_NO_PAD.encode(ctx.sign().as_ref());
                assert_eq!(
                    key.fingerprint(&policy, None, Some(b"one browser"))
                        .unwrap(),
                    expected
                );
            }
        }
    }
}
