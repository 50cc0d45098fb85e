//! Stage 8: the session cookie on the response, and the cache headers that keep one
//! visitor's page out of another's.

use std::{fmt::Write as _, time::SystemTime};

use actix_web::{
    dev::ServiceResponse,
    http::header::{self, HeaderValue},
};

use crate::{persist::Issued, settings::Settings};

/// Sets or removes the cookie as `issued` says, and marks the response private: `Vary:
/// Cookie` and `Cache-Control: private` on every response to a request that carried the
/// session cookie, `no-store` on one that sets or removes it (as Django does). A
/// `Cache-Control` the handler set that is already `private` or `no-store` is kept.
pub(crate) fn finish<B>(
    res: &mut ServiceResponse<B>,
    settings: &Settings,
    issued: Issued,
    had_cookie: bool,
    now: SystemTime,
) {
    let set_cookie = match issued {
        Issued::Keep => None,
        Issued::Remove if !had_cookie => None,
        Issued::Remove => Some(removal(settings)),
        Issued::Set { value, expires_at } => Some(cookie(settings, &value, expires_at, now)),
    };
    let sets_cookie = set_cookie.is_some();
    if !sets_cookie && !had_cookie {
        return;
    }
    let headers = res.headers_mut();
    if let Some(value) = set_cookie.and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.append(header::SET_COOKIE, value);
    }
    let private = headers
        .get(header::CACHE_CONTROL)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("no-store") || value.contains("private"));
    if !private {
        let value = if sets_cookie { "no-store" } else { "private" };
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    }
    headers.append(header::VARY, HeaderValue::from_static("Cookie"));
}

/// `name=value; Max-Age=..; <attributes>` (no `Max-Age` for a browser-session cookie).
fn cookie(settings: &Settings, value: &str, expires_at: SystemTime, now: SystemTime) -> String {
    let mut out = String::with_capacity(
        settings.cookie_name.len() + value.len() + settings.cookie_attributes.len() + 24,
    );
    out.push_str(&settings.cookie_name);
    out.push('=');
    out.push_str(value);
    if settings.persistent_cookie {
        let max_age = expires_at.duration_since(now).unwrap_or_default().as_secs();
        let _ = write!(out, "; Max-Age={max_age}");
    }
    out.push_str(&settings.cookie_attributes);
    out
}

/// A cookie that removes the session cookie from the client.
fn removal(settings: &Settings) -> String {
    format!(
        "{}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT{}",
        settings.cookie_name, settings.cookie_attributes
    )
}
