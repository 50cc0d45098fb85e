//! Who is signed in: the session's `login.user` key, and the [`SignedIn`] extractor that
//! pages needing a user take as an argument.

use std::future::{ready, Ready};

use actix_web::{
    dev::Payload, http::header, http::StatusCode, FromRequest, HttpRequest, HttpResponse,
    ResponseError,
};
use session_actix::SessionAccessor;
use session_core::session;

/// What this app keeps about a visitor: who they signed in as, and when.
#[session(namespace = "login")]
#[derive(Debug, Default)]
pub struct Account {
    /// The signed-in user's name; absent while signed out.
    pub user: String,
    /// When they signed in (Unix seconds).
    #[session(default)]
    pub signed_in_at: u64,
}

/// A handler argument that only exists for a signed-in visitor: pages that take it
/// redirect everyone else to the sign-in form (and API routes answer `401`).
#[derive(Debug)]
pub struct SignedIn {
    /// The user's name.
    pub user: String,
}

/// Why [`SignedIn`] was refused.
#[derive(Debug)]
pub struct NotSignedIn {
    /// Where to come back to after signing in.
    next: String,
    api: bool,
}

impl std::fmt::Display for NotSignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sign in first")
    }
}

impl ResponseError for NotSignedIn {
    fn status_code(&self) -> StatusCode {
        if self.api {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::SEE_OTHER
        }
    }

    fn error_response(&self) -> HttpResponse {
        if self.api {
            HttpResponse::Unauthorized().json(serde_json::json!({ "error": "sign in first" }))
        } else {
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, format!("/signin?next={}", self.next)))
                .finish()
        }
    }
}

impl FromRequest for SignedIn {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = SessionAccessor::from_request(req, payload)
            .into_inner()
            .map(|session| Account::view(&session).user().ok().flatten());
        ready(match user {
            Ok(Some(user)) => Ok(Self { user }),
            Ok(None) => Err(NotSignedIn {
                // Only our own paths: never an open redirect.
                next: safe_next(req.path()).to_owned(),
                api: req.path().starts_with("/api/"),
            }
            .into()),
            Err(err) => Err(err),
        })
    }
}

/// `path` if it is one of this site's paths, else `/`.
#[must_use]
pub fn safe_next(path: &str) -> &str {
    let ours = path.starts_with('/')
        && !path.starts_with("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
    if ours {
        path
    } else {
        "/"
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(safe_next("/account"), "/account");
        for outside in [
            "https://evil.example",
            "//evil.example",
            "/a?b=c",
            "account",
            "/\\evil",
        ] {
            assert_eq!(safe_next(outside), "/", "{outside}");
        }
    }
}
