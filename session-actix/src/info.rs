//! [`SessionInfo`]: what the layer knows about a request's session, for diagnostics pages,
//! logs and the examples' session panels.

use std::{
    fmt,
    future::{ready, Ready},
    sync::Arc,
    time::Duration,
};

use actix_web::{dev::Payload, FromRequest, HttpRequest};
use session_core::{store::LoadedFrom, TokenHash};

use crate::frame::Frame;

/// What the layer knows about this request's session: where its state came from, a short
/// hash that names it in logs, and what the cookie is. An extractor; it never exposes the
/// session id.
///
/// ```
/// use session_actix::{SessionInfo, SessionStart};
///
/// async fn about(info: SessionInfo) -> String {
///     match info.start() {
///         SessionStart::New => "no session yet".to_owned(),
///         SessionStart::Refused { .. } => "your session was not accepted".to_owned(),
///         SessionStart::Continued { from, .. } => format!("session {}: {}", info.short_id().unwrap_or_default(), from.describe()),
///         _ => String::new(),
///     }
/// }
/// # let _ = actix_web::web::get().to(about);
/// ```
#[derive(Debug, Clone)]
pub struct SessionInfo {
    start: SessionStart,
    short_id: Option<ShortId>,
    version: Option<u64>,
    cookie: Arc<CookieInfo>,
}

/// How a request's session began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionStart {
    /// No session cookie, or one that names no live session: the handler starts empty, and
    /// a session is stored only if it writes something.
    New,
    /// The presented session was refused (timed out, bound to another client, …): the
    /// handler starts empty, and a new id is issued if it writes.
    Refused {
        /// Why, as in the layer's log (`"idle timeout"`, `"binding mismatch"`, …). For
        /// logs and metrics: do not show it to the client, to whom "binding mismatch" says
        /// that a stolen cookie is live and what to imitate.
        reason: &'static str,
    },
    /// The presented session continues.
    Continued {
        /// Which tier answered its load.
        from: LoadedFrom,
        /// The client presented a rotated-away id inside its grace window, and gets the
        /// current one.
        forwarded: bool,
    },
}

/// What the session cookie is: the same for every request of a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CookieInfo {
    /// The cookie's name.
    pub name: String,
    /// Its attributes as sent: `Path=/; Secure; HttpOnly; SameSite=Lax`.
    pub attributes: String,
    /// `Some(max_age)` for a persistent cookie (it is sent with `Max-Age`, renewed with the
    /// idle timeout); `None` for a browser-session cookie.
    pub max_age: Option<Duration>,
    /// Whether the cookie carries only an encrypted id (server-side sessions) rather than
    /// the encrypted data itself (a cookie-only layer).
    pub carries_id_only: bool,
}

/// The first 8 hex digits of the SHA-256 of a session id (of its store key): enough to tell
/// sessions apart in a log or on a page, useless for reaching one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShortId([u8; 8]);

impl ShortId {
    pub(crate) fn of(key: &TokenHash) -> Self {
        let mut out = *b"--------";
        if let Some(hex) = key.as_str().as_bytes().get(..8) {
            out.copy_from_slice(hex);
        }
        Self(out)
    }

    /// The 8 hex digits.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Hex digits from a TokenHash: ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl Default for ShortId {
    fn default() -> Self {
        Self(*b"--------")
    }
}

impl fmt::Display for ShortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ShortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShortId({})", self.as_str())
    }
}

impl SessionInfo {
    pub(crate) fn new(
        start: SessionStart,
        loaded: Option<(&TokenHash, u64)>,
        cookie: Arc<CookieInfo>,
    ) -> Self {
        Self {
            start,
            short_id: loaded.map(|(key, _)| ShortId::of(key)),
            version: loaded.map(|(_, version)| version),
            cookie,
        }
    }

    /// How this request's session began.
    #[must_use]
    pub fn start(&self) -> SessionStart {
        self.start
    }

    /// The continued session's [`ShortId`]; `None` for a new (or cookie-only) session.
    #[must_use]
    pub fn short_id(&self) -> Option<ShortId> {
        self.short_id
    }

    /// The continued session's record version as loaded (every write increases it);
    /// `None` for a new session.
    #[must_use]
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// What the session cookie is.
    #[must_use]
    pub fn cookie(&self) -> &CookieInfo {
        &self.cookie
    }
}

impl FromRequest for SessionInfo {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Frame::of(req).map(|frame| frame.info.clone()))
    }
}
