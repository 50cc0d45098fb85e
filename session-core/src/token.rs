//! Session tokens (the secret in the cookie) and their digests (what stores see).

use std::fmt;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use ring::{
    digest,
    rand::{SecureRandom, SystemRandom},
};

/// Number of random bytes in a token: 256 bits.
pub const TOKEN_BYTES: usize = 32;

/// Length of a token's text form: 32 bytes in unpadded base64url.
pub const TOKEN_LEN: usize = 43;

/// The secret that identifies a session, as carried by the client's cookie.
///
/// A token is 256 bits from the operating system's CSPRNG ([`ring::rand::SystemRandom`]),
/// written as 43 characters of unpadded base64url. It is never stored: stores key records by
/// its SHA-256 [`TokenHash`], so a leaked cache dump or database table cannot be replayed as
/// cookies. `Debug` does not print the token, so it cannot leak into logs by accident.
///
/// Tokens from untrusted input are parsed with [`TryFrom<&str>`], which checks the length and
/// the alphabet before anything else looks at the value:
///
/// ```
/// use session_core::{InvalidToken, SessionToken};
///
/// assert_eq!(SessionToken::try_from("short"), Err(InvalidToken::Length(5)));
/// let token = SessionToken::generate()?;
/// assert_eq!(SessionToken::try_from(token.as_str()).as_ref(), Ok(&token));
/// # Ok::<(), session_core::StoreError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    /// Draws a new token from the system CSPRNG.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`](crate::StoreError::Unavailable) if the operating system's
    /// random source fails, which ring reports instead of returning weak bytes.
    pub fn generate() -> Result<Self, crate::StoreError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| crate::StoreError::unavailable(RandomSourceFailed))?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The token of these 256 bits (what [`to_bytes`](Self::to_bytes) gives back).
    #[must_use]
    pub fn from_bytes(bytes: &[u8; TOKEN_BYTES]) -> Self {
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The token's 256 bits.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; TOKEN_BYTES] {
        let mut bytes = [0u8; TOKEN_BYTES];
        // A validated token always decodes to exactly 32 bytes.
        let _ = URL_SAFE_NO_PAD.decode_slice(self.0.as_bytes(), &mut bytes);
        bytes
    }

    /// The token's text form (unpadded base64url).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SHA-256 digest of the token, the only form a store ever sees.
    #[must_use]
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.0.as_bytes())
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(..)")
    }
}

impl TryFrom<&str> for SessionToken {
    type Error = InvalidToken;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        validate(value)?;
        Ok(Self(value.to_owned()))
    }
}

/// Checks that `value` spells a token.
fn validate(value: &str) -> Result<(), InvalidToken> {
    if value.len() != TOKEN_LEN {
        return Err(InvalidToken::Length(value.len()));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(InvalidToken::Alphabet);
    }
    // 43 characters carry 258 bits; the last character must leave the 2 spare bits zero,
    // or two spellings would name the same bytes.
    let last = value.as_bytes()[TOKEN_LEN - 1];
    if sextet(last) & 0b11 != 0 {
        return Err(InvalidToken::Alphabet);
    }
    Ok(())
}

impl TryFrom<String> for SessionToken {
    type Error = InvalidToken;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        validate(&value)?;
        Ok(Self(value))
    }
}

/// Why a string is not a [`SessionToken`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidToken {
    /// The value does not have the length of a token (43 characters).
    #[error("a session token has {TOKEN_LEN} characters, this value has {0}")]
    Length(usize),
    /// The value holds characters outside unpadded base64url.
    #[error("a session token holds only unpadded base64url characters")]
    Alphabet,
}

/// The 6-bit value of a base64url character (already checked to be one).
fn sextet(c: u8) -> u8 {
    match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        _ => 63,
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed")]
struct RandomSourceFailed;

/// The SHA-256 digest of a [`SessionToken`], in lowercase hex: the key under which stores
/// keep a session.
///
/// A `TokenHash` can only be made from a token or read back from a store, so a store cannot
/// be handed a raw token by mistake.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash(String);

impl TokenHash {
    fn of(bytes: &[u8]) -> Self {
        let digest = digest::digest(&digest::SHA256, bytes);
        let mut hex = [0u8; 64];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(digest.as_ref()) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0xf)];
        }
        // Hex digits are ASCII: this never falls back.
        Self(String::from(std::str::from_utf8(&hex).unwrap_or_default()))
    }

    /// Reads back a digest a store handed out (64 lowercase hex characters); `None` for
    /// anything else.
    #[must_use]
    pub fn from_stored(text: &str) -> Option<Self> {
        (text.len() == 64 && text.bytes().all(|b| HEX.contains(&b))).then(|| Self(text.to_owned()))
    }

    /// The digest as 64 lowercase hex characters.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to correlate log lines; the digest is not secret, but short.
        write!(f, "TokenHash({}..)", &self.0[..8])
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_43_chars_and_distinct() {
        let a = SessionToken::generate().unwrap();
        let b = SessionToken::generate().unwrap();
        assert_eq!(a.as_str().len(), TOKEN_LEN);
        assert_ne!(a, b);
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn round_trips_through_text() {
        let token = SessionToken::generate().unwrap();
        let parsed = SessionToken::try_from(token.as_str().to_owned()).unwrap();
        assert_eq!(parsed, token);
        assert_eq!(parsed.hash(), token.hash());
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(SessionToken::try_from(""), Err(InvalidToken::Length(0)));
        let too_long = "a".repeat(16 * 1024);
        assert_eq!(
            SessionToken::try_from(too_long.as_str()),
            Err(InvalidToken::Length(16 * 1024))
        );
        let bad_alphabet = format!("{}+", "a".repeat(TOKEN_LEN - 1));
        assert_eq!(
            SessionToken::try_from(bad_alphabet.as_str()),
            Err(InvalidToken::Alphabet)
        );
        // Non-canonical last character: spare bits set.
        let non_canonical = format!("{}B", "A".repeat(TOKEN_LEN - 1));
        assert_eq!(
            SessionToken::try_from(non_canonical.as_str()),
            Err(InvalidToken::Alphabet)
        );
        // Multi-byte characters whose byte length happens to match.
        let multibyte = format!("{}é", "a".repeat(TOKEN_LEN - 2));
        assert_eq!(
            SessionToken::try_from(multibyte.as_str()),
            Err(InvalidToken::Alphabet)
        );
    }

    #[test]
    fn canonical_check_matches_decoding() {
        // Every last character: accepted exactly when it decodes to 32 bytes canonically.
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for c in alphabet.chars() {
            let text = format!("{}{c}", "A".repeat(TOKEN_LEN - 1));
            let decodes = URL_SAFE_NO_PAD
                .decode(&text)
                .is_ok_and(|b| b.len() == TOKEN_BYTES);
            assert_eq!(
                SessionToken::try_from(text.as_str()).is_ok(),
                decodes,
                "{c}"
            );
        }
    }

    #[test]
    fn hash_is_sha256_hex() {
        // SHA-256("abc")
        assert_eq!(
            TokenHash::of(b"abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let token = SessionToken::generate().unwrap();
        assert!(!format!("{token:?}").contains(token.as_str()));
    }
}
