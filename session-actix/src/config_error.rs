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
    /// A duration that must be positive is zero.
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
    /// The sub-keys could not be derived from the cookie key.
    #[error("could not derive the layer's keys from the cookie key")]
    KeyDerivation,
    /// A cookie attribute (path or domain) holds a character a `Set-Cookie` header cannot
    /// carry (`;`, a control character, a non-ASCII one).
    #[error("invalid cookie {0}: {1:?} (no `;`, control or non-ASCII characters)")]
    CookieAttribute(&'static str, String),
}
