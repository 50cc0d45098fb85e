//! The reserved `__session` entry: what the checks need, travelling with the state.

use serde::{Deserialize, Serialize};

/// The reserved state key holding the session's bookkeeping (created, refreshed and issued
/// times, binding fingerprint) as JSON. User code must not write it.
pub const META_KEY: &str = "__session";

/// The reserved state key holding pending flash messages.
pub const FLASH_KEY: &str = "__flash";

/// Bookkeeping kept in the `__session` entry of every session, in Unix milliseconds.
///
/// It lives in the session state (not beside it), so it works the same for server-side
/// stores and for cookie-only sessions, where the cookie is all there is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SessionMeta {
    /// When the session was created: drives the absolute timeout.
    #[serde(rename = "c")]
    pub(crate) created: u64,
    /// When the session was last written on purpose of extending it: drives the idle
    /// timeout and the refresh window.
    #[serde(rename = "r")]
    pub(crate) refreshed: u64,
    /// When the current id was issued: drives rotation.
    #[serde(rename = "i")]
    pub(crate) issued: u64,
    /// HMAC of what the session is bound to (IP prefix, User-Agent), if anything.
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub(crate) binding: Option<String>,
}

impl SessionMeta {
    pub(crate) fn fresh(now: u64, binding: Option<String>) -> Self {
        Self {
            created: now,
            refreshed: now,
            issued: now,
            binding,
        }
    }
}
