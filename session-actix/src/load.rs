//! Stage 2 and 3: load the session an opened cookie names, and state what the lifecycle
//! needs to know about it.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use actix_web::HttpRequest;
use session_core::{
    lifecycle::{Facts, Loaded, Presented, Start},
    store::LoadedFrom,
    Record, SessionToken, Store, StoreError,
};

use crate::{
    client,
    info::{SessionInfo, SessionStart},
    settings::Settings,
    shared::Shared,
    storage::Storage,
};

/// The session a request presented.
pub(crate) enum Found {
    /// None: no cookie, one that did not open, or an id with no live record.
    Nothing,
    /// A server-side session.
    Server(Loaded),
    /// A cookie-only session (its record came in the cookie).
    Cookie(Record),
}

impl Found {
    /// The record, if one was found.
    pub(crate) fn record(&self) -> Option<&Record> {
        match self {
            Self::Nothing => None,
            Self::Server(loaded) => Some(&loaded.record),
            Self::Cookie(record) => Some(record),
        }
    }

    /// What [`SessionInfo`] says about this request's session, once `start` is decided.
    pub(crate) fn info(&self, start: Start, settings: &Settings) -> SessionInfo {
        let cookie = Arc::clone(&settings.cookie_info);
        match (start, self) {
            (Start::New, _) | (Start::Continue { .. }, Self::Nothing) => {
                SessionInfo::new(SessionStart::New, None, cookie)
            }
            (Start::Replace { reason, .. }, _) => SessionInfo::new(
                SessionStart::Refused {
                    reason: reason.as_str(),
                },
                None,
                cookie,
            ),
            (Start::Continue { forwarded, .. }, Self::Server(loaded)) => SessionInfo::new(
                SessionStart::Continued {
                    from: loaded.from,
                    forwarded,
                },
                Some((&loaded.key, loaded.record.version)),
                cookie,
            ),
            (Start::Continue { forwarded, .. }, Self::Cookie(_)) => SessionInfo::new(
                SessionStart::Continued {
                    from: LoadedFrom::Cookie,
                    forwarded,
                },
                None,
                cookie,
            ),
        }
    }

    /// The record the handler is given: the one found, if the lifecycle continues it.
    pub(crate) fn given(&self, start: Start) -> Option<&Record> {
        match start {
            Start::Continue { .. } => self.record(),
            Start::New | Start::Replace { .. } => None,
        }
    }
}

/// Loads what the opened cookie's `payload` names.
pub(crate) async fn load<S: Store>(
    inner: &Shared<S>,
    payload: Option<Vec<u8>>,
    now: SystemTime,
) -> Result<Found, StoreError> {
    let Some(payload) = payload else {
        return Ok(Found::Nothing);
    };
    match &inner.storage {
        Storage::Server(sessions) => {
            // Authenticated, so made by this layer: the id's 32 bytes.
            let Ok(bytes) = <[u8; 32]>::try_from(payload.as_slice()) else {
                return Ok(Found::Nothing);
            };
            let token = SessionToken::from_bytes(&bytes);
            Ok(sessions
                .load(token, now)
                .await?
                .map_or(Found::Nothing, Found::Server))
        }
        Storage::Cookie => Ok(decode_cookie_record(&payload).map_or(Found::Nothing, Found::Cookie)),
    }
}

/// A cookie-only payload: 16 hex digits of the expiry (Unix milliseconds), then the
/// record's JSON.
fn decode_cookie_record(payload: &[u8]) -> Option<Record> {
    let (expiry, json) = payload.split_at_checked(16)?;
    let millis = u64::from_str_radix(std::str::from_utf8(expiry).ok()?, 16).ok()?;
    let expires_at = SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(millis))?;
    match Record::decode(json, expires_at) {
        Ok(record) => Some(record),
        Err(err) => {
            tracing::warn!(error = %err, "cookie-only session does not decode; new session");
            None
        }
    }
}

/// The payload of a cookie-only session's cookie (see [`decode_cookie_record`]).
pub(crate) fn encode_cookie_record(record: &Record) -> Result<Vec<u8>, StoreError> {
    let millis = session_core::lifecycle::unix_millis(record.expires_at);
    let json = record.encode()?;
    let mut payload = Vec::with_capacity(16 + json.len());
    payload.extend_from_slice(format!("{millis:016x}").as_bytes());
    payload.extend_from_slice(&json);
    Ok(payload)
}

/// What the lifecycle needs to know about the session found.
pub(crate) fn presented(
    found: &Found,
    req: &HttpRequest,
    settings: &Settings,
    stale_cookie: bool,
    now: SystemTime,
) -> Presented {
    let Some(record) = found.record() else {
        return Presented::Nothing;
    };
    let issued_at = record
        .meta
        .token_issued_ms
        .and_then(|ms| SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
        .unwrap_or(record.created_at);
    let binding = client::matches(req, settings, record.meta.binding.as_deref());
    Presented::Session(Facts {
        now,
        created_at: record.created_at,
        expires_at: record.expires_at,
        issued_at,
        binding_matches: binding != client::Binding::Mismatch,
        forwarded: matches!(found, Found::Server(loaded) if loaded.forwarded()),
        stale_key: stale_cookie || binding == client::Binding::MatchesPreviousKey,
    })
}
