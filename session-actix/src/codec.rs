//! [`CookieCodec`]: the layer's cookie format as a value of its own, for tools and tests.

use actix_session::config::CookieContentSecurity;
use actix_web::cookie::Key;
use session_core::SessionToken;

use crate::{
    keys::derive_key,
    seal::{SealError, Sealer},
};

/// Opens and seals session cookie values exactly as a [`SessionLayer`](crate::SessionLayer)
/// built with the same key, cookie name and content security does (see "Cookie format" in
/// the [crate documentation](crate)).
///
/// For what runs beside the layer: a test that presents a chosen id, a tool that finds the
/// session of a cookie a user reports.
///
/// ```
/// use actix_web::cookie::Key;
/// use session_actix::{CookieCodec, CookieContentSecurity};
/// use session_core::SessionToken;
///
/// let codec = CookieCodec::server_side(&Key::generate(), "session", CookieContentSecurity::Private);
/// let id = SessionToken::generate()?;
/// let value = codec.seal_id(&id)?;
/// assert_eq!(codec.open_id(&value), Some(id));
/// assert_eq!(codec.open_id("1garbage"), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CookieCodec(Sealer);

impl std::fmt::Debug for CookieCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieCodec(..)")
    }
}

impl CookieCodec {
    /// The codec of a server-side layer (the cookie holds an id).
    #[must_use]
    pub fn server_side(key: &Key, cookie_name: &str, security: CookieContentSecurity) -> Self {
        Self::new(key, cookie_name, "id", security)
    }

    /// The codec of a cookie-only layer (the cookie holds the record).
    #[must_use]
    pub fn cookie_only(key: &Key, cookie_name: &str, security: CookieContentSecurity) -> Self {
        Self::new(key, cookie_name, "data", security)
    }

    pub(crate) fn new(
        key: &Key,
        cookie_name: &str,
        kind: &str,
        security: CookieContentSecurity,
    ) -> Self {
        Self(Sealer::new(
            cookie_name,
            kind,
            matches!(security, CookieContentSecurity::Signed),
            &derive_key(key, b"cookie-aead"),
            &derive_key(key, b"cookie-mac"),
        ))
    }

    pub(crate) fn into_sealer(self) -> Sealer {
        self.0
    }

    /// The cookie value that carries `payload`.
    ///
    /// # Errors
    ///
    /// [`SealError`] if the random source fails.
    pub fn seal(&self, payload: &[u8]) -> Result<String, SealError> {
        self.0.seal(payload)
    }

    /// The payload of a cookie value, if it authenticates.
    #[must_use]
    pub fn open(&self, value: &str) -> Option<Vec<u8>> {
        self.0.open(value)
    }

    /// The cookie value of a server-side session with id `token`.
    ///
    /// # Errors
    ///
    /// [`SealError`] if the random source fails.
    pub fn seal_id(&self, token: &SessionToken) -> Result<String, SealError> {
        self.seal(&token.to_bytes())
    }

    /// The id in a server-side session's cookie value, if it authenticates and holds one.
    #[must_use]
    pub fn open_id(&self, value: &str) -> Option<SessionToken> {
        let payload = self.open(value)?;
        Some(SessionToken::from_bytes(&payload.try_into().ok()?))
    }
}
