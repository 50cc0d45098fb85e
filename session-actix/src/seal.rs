//! [`Sealer`]: the session cookie's value, encrypted (or signed) with keys prepared once.
//!
//! # Cookie format, version 1
//!
//! ```text
//! private (default):  "1" base64url( nonce[12] ‖ AES-256-GCM(payload) ‖ tag[16] )
//! signed:             "1" base64url( payload ) "." base64url( HMAC-SHA256(payload) )
//! ```
//!
//! base64url is without padding. The AES-GCM additional data (and the start of the HMAC
//! input) is `session-actix/1 <kind> <cookie name>`, where `<kind>` is `id` for a
//! server-side session (the payload is its id's 32 bytes) and `data` for a cookie-only
//! session (the payload is 16 hex digits of its expiry in Unix milliseconds, then the
//! record's JSON, [`Record::encode`](session_core::Record::encode)). A cookie therefore
//! opens only under the name, the kind and the keys it was made for. The keys are
//! HKDF-SHA256 sub-keys of the layer's key (labels `cookie-aead`, `cookie-mac`), never the
//! key itself. A value that does not start with the version digit, does not decode or does
//! not authenticate is no session at all; it never reaches a store.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use ring::{
    aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN},
    hmac,
    rand::{SecureRandom, SystemRandom},
};

/// The version digit every value starts with.
const VERSION: u8 = b'1';

/// Longer values are refused before decoding (a browser keeps at most about 4 KiB).
const MAX_VALUE_LEN: usize = 8 * 1024;

/// How a cookie's content is protected.
#[allow(clippy::large_enum_variant)] // built once per layer and never moved
pub(crate) enum Protection {
    /// Encrypted and authenticated: the client learns nothing.
    Private(LessSafeKey),
    /// Authenticated only: the client can read the content.
    Signed(hmac::Key),
}

/// Opens and seals the session cookie's value.
pub(crate) struct Sealer {
    protection: Protection,
    /// `session-actix/1 <kind> <name>`.
    context: Vec<u8>,
    random: SystemRandom,
}

/// A cookie value could not be sealed: the system's random source failed.
#[derive(Debug, thiserror::Error)]
#[error("could not seal the cookie value: no randomness for the nonce")]
pub struct SealError;

impl Sealer {
    /// A sealer for cookies called `name` holding `kind` (`id` or `data`), with 32-byte
    /// sub-keys for encryption and for signing.
    pub(crate) fn new(
        name: &str,
        kind: &str,
        signed: bool,
        aead_key: &[u8; 32],
        mac_key: &[u8; 32],
    ) -> Self {
        let protection = if signed {
            Protection::Signed(hmac::Key::new(hmac::HMAC_SHA256, mac_key))
        } else {
            // AES-256 takes exactly a 32-byte key, which the type guarantees.
            #[allow(clippy::expect_used)]
            let key = UnboundKey::new(&aead::AES_256_GCM, aead_key).expect("a 32-byte key");
            Protection::Private(LessSafeKey::new(key))
        };
        Self {
            protection,
            context: format!("session-actix/1 {kind} {name}").into_bytes(),
            random: SystemRandom::new(),
        }
    }

    /// The payload of a cookie value made by [`seal`](Self::seal), if it is one.
    pub(crate) fn open(&self, value: &str) -> Option<Vec<u8>> {
        let body = value.as_bytes();
        if body.len() > MAX_VALUE_LEN || body.first() != Some(&VERSION) {
            return None;
        }
        let body = &value[1..];
        match &self.protection {
            Protection::Private(key) => {
                // Short values (an id) are decoded on the stack; longer ones on the heap.
                let mut stack = [0u8; 128];
                let mut heap: Vec<u8>;
                let data = match URL_SAFE_NO_PAD.decode_slice(body, &mut stack) {
                    Ok(len) => stack.get_mut(..len)?,
                    Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
                        heap = URL_SAFE_NO_PAD.decode(body).ok()?;
                        &mut heap[..]
                    }
                    Err(_) => return None,
                };
                if data.len() < NONCE_LEN + key.algorithm().tag_len() {
                    return None;
                }
                let (nonce, in_out) = data.split_at_mut(NONCE_LEN);
                let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
                let plain = key
                    .open_in_place(nonce, Aad::from(&self.context[..]), in_out)
                    .ok()?;
                Some(plain.to_vec())
            }
            Protection::Signed(key) => {
                let (payload, mac) = body.split_once('.')?;
                let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
                let mut tag = [0u8; 33];
                let tag_len = URL_SAFE_NO_PAD.decode_slice(mac, &mut tag).ok()?;
                let mut signed = Vec::with_capacity(self.context.len() + payload.len());
                signed.extend_from_slice(&self.context);
                signed.extend_from_slice(&payload);
                // Compares in constant time.
                hmac::verify(key, &signed, tag.get(..tag_len)?).ok()?;
                Some(payload)
            }
        }
    }

    /// The cookie value carrying `payload`.
    pub(crate) fn seal(&self, payload: &[u8]) -> Result<String, SealError> {
        let mut out = String::with_capacity(2 + (payload.len() + 64) * 4 / 3);
        out.push(char::from(VERSION));
        match &self.protection {
            Protection::Private(key) => {
                let mut nonce = [0u8; NONCE_LEN];
                self.random.fill(&mut nonce).map_err(|_| SealError)?;
                let mut data = Vec::with_capacity(NONCE_LEN + payload.len() + 16);
                data.extend_from_slice(&nonce);
                data.extend_from_slice(payload);
                let mut in_out = data.split_off(NONCE_LEN);
                key.seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(&self.context[..]),
                    &mut in_out,
                )
                .map_err(|_| SealError)?;
                data.extend_from_slice(&in_out);
                URL_SAFE_NO_PAD.encode_string(&data, &mut out);
            }
            Protection::Signed(key) => {
                let mut ctx = hmac::Context::with_key(key);
                ctx.update(&self.context);
                ctx.update(payload);
                URL_SAFE_NO_PAD.encode_string(payload, &mut out);
                out.push('.');
                URL_SAFE_NO_PAD.encode_string(ctx.sign().as_ref(), &mut out);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(name: &str, kind: &str, signed: bool) -> Sealer {
        Sealer::new(name, kind, signed, &[1; 32], &[2; 32])
    }

    /// Every value that differs from a sealed one by construction: each byte position
    /// changed to another character of the alphabet.
    fn tampered(value: &str) -> impl Iterator<Item = String> + '_ {
        (0..value.len()).map(move |i| {
            let mut bytes = value.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            String::from_utf8(bytes).unwrap()
        })
    }

    #[test]
    fn round_trips_and_refuses_every_tampered_value() {
        for signed in [false, true] {
            let sealer = sealer("session", "id", signed);
            let value = sealer.seal(b"payload of a session").unwrap();
            assert!(value.starts_with('1'));
            assert_eq!(sealer.open(&value).unwrap(), b"payload of a session");
            for forged in tampered(&value) {
                assert_ne!(forged, value);
                assert_eq!(sealer.open(&forged), None, "{forged} (signed: {signed})");
            }
            assert_eq!(sealer.open(&value[..value.len() - 1]), None);
            assert_eq!(sealer.open(""), None);
            assert_eq!(sealer.open("1"), None);
        }
    }

    #[test]
    fn opens_only_under_its_name_kind_and_keys() {
        let value = sealer("session", "id", false).seal(b"x").unwrap();
        assert_eq!(sealer("other", "id", false).open(&value), None);
        assert_eq!(sealer("session", "data", false).open(&value), None);
        let other_keys = Sealer::new("session", "id", false, &[3; 32], &[2; 32]);
        assert_eq!(other_keys.open(&value), None);
        assert_eq!(sealer("session", "id", true).open(&value), None);
    }

    #[test]
    fn private_values_hide_the_payload_and_differ_each_time() {
        let sealer = sealer("session", "id", false);
        let a = sealer.seal(b"secret-id").unwrap();
        let b = sealer.seal(b"secret-id").unwrap();
        assert_ne!(a, b, "fresh nonce");
        assert!(!a.contains(&URL_SAFE_NO_PAD.encode(b"secret-id")));
    }
}
