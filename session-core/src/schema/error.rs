//! The error of typed session access.

use crate::store::BoxError;

/// Why a typed read or write of a session key failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The stored value of `key` does not decode as the field's type, typically because the
    /// struct changed between deploys.
    #[error("session key `{key}` holds a value that does not decode as the expected type")]
    Decode {
        /// The session key.
        key: String,
        /// The decoding error.
        #[source]
        source: BoxError,
    },
    /// The value for `key` could not be encoded as JSON.
    #[error("the value for session key `{key}` could not be encoded")]
    Encode {
        /// The session key.
        key: String,
        /// The encoding error.
        #[source]
        source: BoxError,
    },
    /// A `#[session(migrate(..))]` migration failed: the data of version `from` did not
    /// decode, or the migration function returned an error. The old keys stay as they were.
    #[error("migrating session schema `{namespace}` from version {from} to version {to} failed")]
    Migration {
        /// The namespace of the schema migrated to.
        namespace: &'static str,
        /// The version migrated from.
        from: u32,
        /// The version migrated to.
        to: u32,
        /// What failed.
        #[source]
        source: BoxError,
    },
    /// The session behind the handle failed (e.g. it was purged during the request).
    #[error("the session is not available")]
    Session(#[source] BoxError),
}

impl SchemaError {
    /// The session key the error is about, if any.
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Decode { key, .. } | Self::Encode { key, .. } => Some(key),
            Self::Migration { .. } | Self::Session(_) => None,
        }
    }
}
