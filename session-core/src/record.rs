//! A session's state and metadata, and its versioned at-rest format.

use std::{collections::HashMap, time::SystemTime};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{
    clock::{from_millis, to_millis},
    StoreError, TokenHash,
};

/// The user's session state: string keys to JSON values, each kept as JSON text so that a
/// round trip through a store never re-parses values it does not touch.
pub type State = HashMap<String, Box<RawValue>>;

/// The version of the at-rest format that this release writes.
pub const FORMAT_VERSION: u32 = 2;

/// One session: the user's [`State`] plus the metadata the library needs.
///
/// # At-rest format
///
/// [`Record::encode`] writes one JSON object, format version 2:
///
/// ```json
/// {"v":2,"ver":7,"created":1700000000000,"meta":{"binding":"…"},"state":{"cart":[1,2]}}
/// ```
///
/// - `v`: the format version. A reader refuses a version newer than its own with
///   [`StoreError::Corrupt`]; later releases keep reading every earlier version.
/// - `ver`: the record's [`version`](Record::version), raised by every write. Format 1
///   (the same object without `ver`) reads as version 0.
/// - `created`: creation time, milliseconds since the Unix epoch.
/// - `meta`: [`Metadata`]; every field is optional, absent fields take their default.
/// - `state`: the user's keys and JSON values, verbatim.
///
/// The expiry time is not part of the payload: each store keeps it beside the payload (a SQL
/// column, the Redis key's expiry), so extending a session never rewrites its data. Stores
/// also keep a copy of the version beside the payload where their conditional writes need
/// it (a SQL column, a fixed-width prefix in Redis), written from this field in the same
/// statement.
///
/// # Versions
///
/// A version orders the writes of one session: [`Store::update`](crate::Store::update) is
/// conditional on the version it was based on, and a cache only ever moves forward to a
/// newer version ([`Cache::put`](crate::Cache::put)). A new record starts at version 1;
/// each update writes `base.version + 1` (see [`Record::next_version`]).
#[derive(Debug, Clone)]
pub struct Record {
    /// The user's state.
    pub state: State,
    /// Library metadata: binding fingerprint, rotation bookkeeping.
    pub meta: Metadata,
    /// When the session was created.
    pub created_at: SystemTime,
    /// When the session expires unless it is touched or updated before.
    pub expires_at: SystemTime,
    /// The version of this record: 1 when created, one more with every update.
    pub version: u64,
}

/// Metadata kept with a session, out of the user's way.
///
/// New fields are optional, so records written by earlier releases still decode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Metadata {
    /// Keyed digest (HMAC) of what the session is bound to (client IP prefix, User-Agent).
    /// Never the raw values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    /// When the current token was issued, in milliseconds since the Unix epoch; drives
    /// periodic token rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_issued_ms: Option<u64>,
    /// Set on a record that was rotated away from: the key of its successor. Such a record
    /// only forwards to the successor until it expires (the grace window). On an
    /// [`ended`](Self::ended) record: the key of the session it was renewed to, followed
    /// only by endings (a logout in flight from before the renewal ends the renewed
    /// session too); loads and writes never follow it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<String>,
    /// On a rotated-away record: until when (milliseconds since the Unix epoch) the
    /// successor is followed. The record outlives that grace window as a marker, so that
    /// presenting the old id later is recognised as a replay (a likely theft). `None` on
    /// records of earlier releases, which expire with their grace window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_until_ms: Option<u64>,
    /// On an ended session (a logout, a revocation): a marker without data that reads as no
    /// session and keeps a racing rotation from creating it again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ended: bool,
    /// On a user's index of sessions (see [`lifecycle::users`](crate::lifecycle::users)):
    /// a record that is not a session, and never loads as one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub user_index: bool,
}

impl Metadata {
    /// The metadata of a session created at `now`, bound to `binding` (a fingerprint, if
    /// the layer binds sessions): its id issued now.
    #[must_use]
    pub fn new_session(binding: Option<String>, now: SystemTime) -> Self {
        Self {
            binding,
            token_issued_ms: Some(crate::lifecycle::unix_millis(now)),
            successor: None,
            forward_until_ms: None,
            ended: false,
            user_index: false,
        }
    }

    /// The successor key of a rotated-away record, if this is one.
    #[must_use]
    pub fn successor(&self) -> Option<TokenHash> {
        self.successor.as_deref().and_then(TokenHash::from_stored)
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        self.created_at == other.created_at
            && self.expires_at == other.expires_at
            && self.version == other.version
            && self.meta == other.meta
            && self.state.len() == other.state.len()
            && self.state.iter().all(|(key, value)| {
                other
                    .state
                    .get(key)
                    .is_some_and(|other| other.get() == value.get())
            })
    }
}

#[derive(Serialize)]
struct EnvelopeRef<'a> {
    v: u32,
    ver: u64,
    created: u64,
    meta: &'a Metadata,
    state: &'a State,
}

#[derive(Deserialize)]
struct Envelope {
    v: u32,
    #[serde(default)]
    ver: u64,
    created: u64,
    #[serde(default)]
    meta: Metadata,
    #[serde(default)]
    state: State,
}

impl Record {
    /// An empty record.
    #[must_use]
    pub fn new(created_at: SystemTime, expires_at: SystemTime) -> Self {
        Self {
            state: State::new(),
            meta: Metadata::default(),
            created_at,
            expires_at,
            version: 1,
        }
    }

    /// A copy of this record as the next version: same data, `version + 1`. What an update
    /// based on this record writes (after changing it), conditional on `self.version`.
    #[must_use]
    pub fn next_version(&self) -> Self {
        let mut next = self.clone();
        next.version = self.version.saturating_add(1);
        next
    }

    /// Reads and decodes the value under `key`.
    ///
    /// # Errors
    ///
    /// The JSON error if the stored value does not decode as `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, serde_json::Error> {
        self.state
            .get(key)
            .map(|raw| serde_json::from_str(raw.get()))
            .transpose()
    }

    /// Encodes `value` as JSON and stores it under `key`.
    ///
    /// # Errors
    ///
    /// The JSON error if `value` cannot be serialized (e.g. a map with non-string keys).
    pub fn insert<T: Serialize + ?Sized>(
        &mut self,
        key: impl Into<String>,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        let raw = serde_json::value::to_raw_value(value)?;
        self.state.insert(key.into(), raw);
        Ok(())
    }

    /// Removes `key`, returning whether it was present.
    pub fn remove(&mut self, key: &str) -> bool {
        self.state.remove(key).is_some()
    }

    /// Whether the record has expired at `now`.
    #[must_use]
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at <= now
    }

    /// Encodes the record in the current at-rest format (without the expiry time).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] if the state cannot be serialized, which JSON text values never
    /// cause; kept so that no store has to unwrap.
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(&EnvelopeRef {
            v: FORMAT_VERSION,
            ver: self.version,
            created: to_millis(self.created_at),
            meta: &self.meta,
            state: &self.state,
        })
        .map_err(StoreError::corrupt)
    }

    /// Decodes a record written by [`Record::encode`] of this or an earlier release.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] if `bytes` are not a record, or a record of a newer format.
    pub fn decode(bytes: &[u8], expires_at: SystemTime) -> Result<Self, StoreError> {
        let envelope: Envelope = serde_json::from_slice(bytes).map_err(StoreError::corrupt)?;
        if envelope.v == 0 || envelope.v > FORMAT_VERSION {
            return Err(StoreError::corrupt(UnsupportedVersion(envelope.v)));
        }
        Ok(Self {
            state: envelope.state,
            meta: envelope.meta,
            created_at: from_millis(envelope.created),
            expires_at,
            version: envelope.ver,
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("record format version {0} is not supported by this release (newest: {FORMAT_VERSION})")]
struct UnsupportedVersion(u32);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sample() -> Record {
        let now = from_millis(to_millis(SystemTime::now()));
        let mut record = Record::new(now, now + Duration::from_secs(60));
        record.insert("n", &3).unwrap();
        record.insert("list", &["a", "b"]).unwrap();
        record.meta.binding = Some("abc".into());
        record
    }

    #[test]
    fn round_trip() {
        let record = sample();
        let bytes = record.encode().unwrap();
        let back = Record::decode(&bytes, record.expires_at).unwrap();
        assert_eq!(back, record);
        assert_eq!(back.get::<u32>("n").unwrap(), Some(3));
        assert_eq!(
            back.get::<Vec<String>>("list").unwrap().unwrap(),
            ["a", "b"]
        );
    }

    #[test]
    fn reads_the_documented_v2_format() {
        let bytes = br#"{"v":2,"ver":7,"created":1700000000000,"meta":{"binding":"x"},"state":{"cart":[1,2]}}"#;
        let record = Record::decode(bytes, SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(record.version, 7);
        assert_eq!(record.get::<Vec<u8>>("cart").unwrap().unwrap(), [1, 2]);
        let again = Record::decode(&record.encode().unwrap(), SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(again, record);
        assert_eq!(record.next_version().version, 8);
    }

    #[test]
    fn reads_the_documented_v1_format() {
        let bytes =
            br#"{"v":1,"created":1700000000000,"meta":{"binding":"x"},"state":{"cart":[1,2]}}"#;
        let record = Record::decode(bytes, SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(
            record.version, 0,
            "format 1 has no versions: it reads as version 0"
        );
        assert_eq!(record.get::<Vec<u8>>("cart").unwrap().unwrap(), [1, 2]);
        assert_eq!(record.meta.binding.as_deref(), Some("x"));
        assert_eq!(to_millis(record.created_at), 1_700_000_000_000);
        // Unknown metadata from a later minor release is ignored, absent fields default.
        let bytes = br#"{"v":1,"created":0,"meta":{"future":true}}"#;
        assert!(Record::decode(bytes, SystemTime::UNIX_EPOCH).is_ok());
    }

    #[test]
    fn garbage_and_newer_versions_are_corrupt() {
        for bytes in [
            &b""[..],
            b"\xff\xfe",
            b"{}",
            b"null",
            br#"{"v":3,"created":0}"#,
            br#"{"v":1,"created":0,"state":{"k":}}"#,
        ] {
            let err = Record::decode(bytes, SystemTime::UNIX_EPOCH).unwrap_err();
            assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        }
    }

    #[test]
    fn extreme_times_in_stored_data_do_not_panic() {
        let bytes = br#"{"v":1,"created":18446744073709551615}"#;
        let record = Record::decode(bytes, SystemTime::UNIX_EPOCH).unwrap();
        assert!(record.created_at > SystemTime::UNIX_EPOCH);
    }

    #[test]
    fn type_mismatch_is_an_error_not_a_panic() {
        let record = sample();
        assert!(record.get::<String>("n").is_err());
        assert_eq!(record.get::<u32>("missing").unwrap(), None);
    }
}
