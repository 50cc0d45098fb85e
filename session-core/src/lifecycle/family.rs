//! [`RotationKey`]: the successor ids of a session under rotation.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use ring::hmac;

use crate::{SessionToken, StoreError};

/// Derives a session's successor ids: the successor of token `t` is
/// `base64url(HMAC-SHA256(rotation key, t))`.
///
/// Every request (on any instance) that rotates the same id computes the same successor,
/// so concurrent rotations converge on one id without a lock, and a logout can end the
/// successors of the id it was given without reading anything: the id and the ids a
/// rotation gave it after it form one *family*. The key must be secret (derive it from the
/// cookie key with a label of its own) and the same on every instance.
#[derive(Clone)]
pub struct RotationKey(hmac::Key);

impl std::fmt::Debug for RotationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RotationKey(..)")
    }
}

impl RotationKey {
    /// How many successors of an id [`family`](Self::family) lists. A rotation period is
    /// longer than the grace window (layers must check), so a live forward is at most one
    /// rotation behind; one more covers a rotation that lands while a logout runs.
    pub const FAMILY_SUCCESSORS: usize = 2;

    /// A key from secret bytes (32 recommended).
    #[must_use]
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The id `token` rotates to.
    ///
    /// # Errors
    ///
    /// Never in practice: a digest always encodes to a well-formed token.
    pub fn successor(&self, token: &SessionToken) -> Result<SessionToken, StoreError> {
        let tag = hmac::sign(&self.0, token.as_str().as_bytes());
        SessionToken::try_from(URL_SAFE_NO_PAD.encode(tag.as_ref()).as_str())
            .map_err(StoreError::corrupt)
    }

    /// `token` and its next [`FAMILY_SUCCESSORS`](Self::FAMILY_SUCCESSORS) successors.
    ///
    /// # Errors
    ///
    /// As [`successor`](Self::successor).
    pub fn family(&self, token: &SessionToken) -> Result<Vec<SessionToken>, StoreError> {
        let mut family = Vec::with_capacity(1 + Self::FAMILY_SUCCESSORS);
        family.push(token.clone());
        for _ in 0..Self::FAMILY_SUCCESSORS {
            let next = self.successor(family.last().unwrap_or(token))?;
            family.push(next);
        }
        Ok(family)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successors_are_deterministic_and_distinct() {
        let key = RotationKey::new(&[7; 32]);
        let token = SessionToken::generate().unwrap();
        let family = key.family(&token).unwrap();
        assert_eq!(family.len(), 3);
        assert_eq!(family[0], token);
        assert_eq!(family[1], key.successor(&token).unwrap());
        assert_eq!(family[2], key.successor(&family[1]).unwrap());
        assert_ne!(family[1], family[2]);
        let other = RotationKey::new(&[8; 32]);
        assert_ne!(other.successor(&token).unwrap(), family[1], "keyed");
    }
}
