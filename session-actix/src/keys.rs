//! Sub-keys of the layer's key: one per use, never the key itself.

use actix_web::cookie::Key;

/// A 32-byte sub-key of the cookie key for one use, by HKDF-SHA256 (RFC 5869) with a label
/// of its own. Never an HMAC of a label under the cookie's signing key: that is the MAC a
/// signed cookie holding the label would carry, so anything that signs chosen values with
/// the cookie key would hand out the sub-key.
///
/// Infallible: HKDF-SHA256 expands to any length up to 255 × 32 bytes (RFC 5869), and the
/// output buffer is exactly the length asked for.
#[allow(clippy::expect_used)] // fixed lengths, checked by the tests; no outside data
pub(crate) fn derive_key(key: &Key, label: &[u8]) -> [u8; 32] {
    struct Len32;
    impl ring::hkdf::KeyType for Len32 {
        fn len(&self) -> usize {
            32
        }
    }
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"session-actix sub-keys v2")
        .extract(key.master());
    let mut out = [0u8; 32];
    prk.expand(&[label], Len32)
        .and_then(|okm| okm.fill(&mut out))
        .expect("HKDF-SHA256 expands to 32 bytes");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::cookie::Key;

    /// The sub-keys are not what the cookie key signs: the MAC of a signed cookie whose
    /// value is a label (the derivation of earlier releases) is not a sub-key.
    #[test]
    fn sub_keys_are_not_cookie_macs() {
        let key = Key::generate();
        let signing = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.signing());
        let derived = [derive_key(&key, b"binding"), derive_key(&key, b"rotation")];
        assert_ne!(derived[0], derived[1], "one key per use");
        for label in [
            &b"binding"[..],
            b"rotation",
            b"session-actix binding v1",
            b"session-actix rotation v1",
        ] {
            let mac = ring::hmac::sign(&signing, label);
            for sub_key in &derived {
                assert_ne!(mac.as_ref(), &sub_key[..], "{label:?}");
            }
        }
        assert_eq!(derived[1], derive_key(&key, b"rotation"), "deterministic");
    }
}
