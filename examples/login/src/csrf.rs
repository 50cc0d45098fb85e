//! A form token bound to the session: only pages this site rendered for this visitor can
//! submit its forms. `SameSite=Lax` keeps the session cookie off cross-site POSTs, but a
//! sign-in needs no cookie to be forged: a hostile page could sign a visitor into the
//! attacker's account ("login CSRF"). The token stops that, and a forced sign-out too.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use ring::rand::{SecureRandom as _, SystemRandom};
use session_actix::SessionAccessor;
use session_core::{session, SchemaError};

/// The visitor's form token, one session key: `login.csrf`.
#[session(namespace = "login")]
#[derive(Debug, Default)]
pub struct FormToken {
    /// 256 random bits, base64url; empty until a form is shown.
    #[session(default)]
    pub csrf: String,
}

/// The token to put in a form's hidden `csrf` field, made on first use.
///
/// # Errors
///
/// If the session cannot store it, or the system's random source fails.
pub fn issue(session: &SessionAccessor) -> Result<String, SchemaError> {
    let view = FormToken::view(session);
    let current = view.csrf()?;
    if !current.is_empty() {
        return Ok(current);
    }
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| SchemaError::Encode {
            key: FormToken::CSRF_KEY.to_owned(),
            source: "the system's random source failed".into(),
        })?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    view.set_csrf(&token)?;
    Ok(token)
}

/// Whether `presented` is the visitor's token (compared in constant time).
#[must_use]
pub fn is_valid(session: &SessionAccessor, presented: &str) -> bool {
    let Ok(expected) = FormToken::view(session).csrf() else {
        return false;
    };
    !expected.is_empty()
        && expected.len() == presented.len()
        && expected
            .bytes()
            .zip(presented.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}
