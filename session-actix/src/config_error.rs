//! [`ConfigError`]: why a layer could not be built, and what to change.

use std::time::Duration;

/// Why a [`SessionLayerBuilder`](crate::SessionLayerBuilder) could not build.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A `__Host-` cookie must be `Secure`, have `Path=/` and no `Domain`.
    #[error("a `__Host-` cookie must be Secure, with path \"/\" and no domain")]
    HostPrefix,
    /// A `__Secure-` cookie must be `Secure`.
    #[error("a `__Secure-` cookie must be Secure")]
    SecurePrefix,
    /// A duration (or a count, such as `max_sessions_per_user`) that must be positive is
    /// zero.
    #[error("`{0}` must be greater than zero")]
    ZeroDuration(&'static str),
    /// The cookie name is empty or holds characters a cookie name cannot.
    #[error("invalid cookie name {0:?}")]
    CookieName(String),
    /// Ids would rotate more often than a rotated-away id stays valid, so a client two
    /// rotations behind (a slow tab) would lose its session inside the grace window.
    #[error(
        "token_rotation ({rotation:?}) must be longer than rotation_grace ({grace:?}): \
         lengthen the rotation period or shorten the grace window"
    )]
    RotationShorterThanGrace {
        /// The rotation period.
        rotation: Duration,
        /// The grace window.
        grace: Duration,
    },
    /// The absolute timeout is shorter than the idle timeout, so it, not inactivity, would
    /// end every session.
    #[error(
        "absolute_timeout ({absolute:?}) must not be shorter than idle_timeout ({idle:?}): \
         lengthen it, shorten the idle timeout, or call no_absolute_timeout()"
    )]
    AbsoluteShorterThanIdle {
        /// The absolute timeout.
        absolute: Duration,
        /// The idle timeout.
        idle: Duration,
    },
    /// `clean_check_percent` is a share of writes, at most 100.
    #[error("clean_check_percent is {0}, but a share of writes is at most 100 (0 turns it off)")]
    CleanCheckPercent(u8),
    /// An IP prefix longer than the address.
    #[error("ip_prefixes: an {family} prefix is at most /{max}, not /{given}")]
    IpPrefix {
        /// `"IPv4"` or `"IPv6"`.
        family: &'static str,
        /// The prefix length given.
        given: u8,
        /// The longest possible.
        max: u8,
    },
    /// A cookie attribute (path or domain) holds a character a `Set-Cookie` header cannot
    /// carry (`;`, a control character, a non-ASCII one).
    #[error("invalid cookie {0}: {1:?} (no `;`, control or non-ASCII characters)")]
    CookieAttribute(&'static str, String),
}

/// So that `?` works in a `main` that returns `std::io::Result` (as actix-web's do).
impl From<ConfigError> for std::io::Error {
    fn from(err: ConfigError) -> Self {
        Self::other(err)
    }
}
