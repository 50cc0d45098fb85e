//! The layout of a stored value: a fixed-width header, then the encoded record.

use crate::{
    clock::{from_millis, to_millis},
    Record, StoreError,
};

/// Width of each header field, in hex digits.
pub(super) const FIELD: usize = 16;
/// The version field of a tombstone: newer than every record.
pub(super) const TOMBSTONE: &str = "ffffffffffffffff";
/// The generation field of values written as a [`Store`](crate::Store), not as a cache.
pub(super) const STORE_GENERATION: &str = "0000000000000000";

/// A value as read back.
pub(super) enum Stored<'a> {
    /// A record: its expiry (Unix ms), the generation it was written in (`None` for the
    /// layout of earlier releases, which had no generation) and its encoded bytes.
    Record {
        expires_ms: u64,
        generation: Option<&'a str>,
        bytes: &'a [u8],
    },
    /// A tombstone left by a cache invalidation.
    Tombstone,
}

/// Encodes `record` as a value of `generation`, returning it with its expiry (Unix ms).
pub(super) fn encode(record: &Record, generation: &str) -> Result<(Vec<u8>, u64), StoreError> {
    let expires_ms = to_millis(record.expires_at);
    let mut value = header(expires_ms, &hex(record.version), generation).into_bytes();
    value.extend_from_slice(&record.encode()?);
    Ok((value, expires_ms))
}

/// A tombstone of `generation` expiring at `expires_ms`.
pub(super) fn tombstone(expires_ms: u64, generation: &str) -> Vec<u8> {
    header(expires_ms, TOMBSTONE, generation).into_bytes()
}

fn header(expires_ms: u64, version: &str, generation: &str) -> String {
    format!("{}{version}{generation}", hex(expires_ms))
}

/// `n` as a header field: 16 lowercase hex digits, so fields compare as strings.
pub(super) fn hex(n: u64) -> String {
    format!("{n:0FIELD$x}")
}

/// Splits a stored value into its header fields and record bytes.
///
/// Two layouts are read: this release's (expiry, version, generation, record) and the
/// earlier one (expiry, record), told apart by the record's opening `{` right after the
/// expiry.
pub(super) fn decode(value: &[u8]) -> Result<Stored<'_>, StoreError> {
    let (expiry, rest) = value
        .split_at_checked(FIELD)
        .ok_or_else(|| StoreError::corrupt("stored value is shorter than its expiry prefix"))?;
    let expires_ms = field(expiry)
        .ok_or_else(|| StoreError::corrupt("stored value has no valid expiry prefix"))?;
    if rest.first() == Some(&b'{') {
        return Ok(Stored::Record {
            expires_ms,
            generation: None,
            bytes: rest,
        });
    }
    let (version, rest) = rest
        .split_at_checked(FIELD)
        .ok_or_else(|| StoreError::corrupt("stored value has no version"))?;
    let (generation, bytes) = rest
        .split_at_checked(FIELD)
        .ok_or_else(|| StoreError::corrupt("stored value has no generation"))?;
    if version == TOMBSTONE.as_bytes() {
        return Ok(Stored::Tombstone);
    }
    let generation = std::str::from_utf8(generation)
        .ok()
        .filter(|_| field(version).is_some())
        .ok_or_else(|| StoreError::corrupt("stored value has an invalid header"))?;
    Ok(Stored::Record {
        expires_ms,
        generation: Some(generation),
        bytes,
    })
}

fn field(digits: &[u8]) -> Option<u64> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|digits| u64::from_str_radix(digits, 16).ok())
}

/// Decodes the record of a [`Stored::Record`].
pub(super) fn record(expires_ms: u64, bytes: &[u8]) -> Result<Record, StoreError> {
    Record::decode(bytes, from_millis(expires_ms))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    #[test]
    fn garbage_is_corrupt() {
        for bad in [
            &b""[..],
            b"zzzzzzzzzzzzzzzz{}",
            "é".repeat(8).as_bytes(),
            b"00000000000000ff",
            b"00000000000000ff0000000000000001",
            b"00000000000000ffzzzzzzzzzzzzzzzz0000000000000000{}",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        // The largest expiry is a valid (clamped) time, not a panic.
        assert!(matches!(
            decode(b"ffffffffffffffff{}"),
            Ok(Stored::Record {
                generation: None,
                ..
            })
        ));
        let _ = from_millis(u64::MAX);
    }

    #[test]
    fn round_trip_and_tombstone() {
        let now = from_millis(to_millis(SystemTime::now()));
        let mut record = Record::new(now, now + Duration::from_secs(60));
        record.version = 41;
        let (value, expires_ms) = encode(&record, "abcdef0123456789").unwrap();
        assert_eq!(&value[FIELD..2 * FIELD], b"0000000000000029");
        let Stored::Record {
            expires_ms: read,
            generation,
            bytes,
        } = decode(&value).unwrap()
        else {
            panic!("a record")
        };
        assert_eq!((read, generation), (expires_ms, Some("abcdef0123456789")));
        assert_eq!(super::record(read, bytes).unwrap(), record);
        assert!(matches!(
            decode(&tombstone(5, "abcdef0123456789")).unwrap(),
            Stored::Tombstone
        ));
    }
}
