//! The error every store operation returns.

use std::error::Error as StdError;

/// A boxed error from a backend, kept as the `source()` of a [`StoreError`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a store operation failed.
///
/// Callers act differently on the two main cases: [`Unavailable`](Self::Unavailable) is worth
/// a retry or a fallback (the tiered store serves from the durable store when its cache is
/// unavailable); [`Corrupt`](Self::Corrupt) will not get better by retrying, and the session
/// layer answers it with a fresh session under a new id.
///
/// `Display` is one line that names the cause (`session store unavailable: Connection
/// refused (os error 111)`), so a log line or a start-up error says what failed; the
/// backend's error stays available as [`source`](std::error::Error::source) for code that
/// inspects it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or failed to answer (connection refused, timeout,
    /// I/O error, pool exhausted).
    #[error("session store unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The stored bytes are not a record this release can read.
    #[error("stored session data is corrupt: {0}")]
    Corrupt(#[source] BoxError),
    /// A conditional update lost to other writes of the same session more times in a row
    /// than [`apply_changes`](crate::store::apply_changes) retries; nothing was written.
    #[error("session was changed by {0} concurrent writes in a row; update not applied")]
    Conflict(u32),
    /// The session was renewed (moved to a fresh id, e.g. at a sign-in) by a concurrent
    /// request while this one ran: a renewal is a privilege boundary, and changes made by
    /// a request that loaded the session before it are not written into the renewed
    /// session. Nothing was written; the client may retry with the cookie it now holds.
    #[error(
        "session was renewed by a concurrent request; this request's changes were not applied"
    )]
    Superseded,
    /// The record would exceed the size limit of the write (keys and JSON values, in
    /// bytes); nothing was written.
    #[error("session of {size} bytes exceeds the limit of {max} bytes; nothing was written")]
    TooLarge {
        /// The record's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The store was configured with invalid settings (e.g. a table name that is not an
    /// identifier).
    #[error("invalid session store configuration: {0}")]
    Config(String),
}

impl StoreError {
    /// Wraps a backend failure as [`StoreError::Unavailable`].
    pub fn unavailable(err: impl Into<BoxError>) -> Self {
        Self::Unavailable(err.into())
    }

    /// Wraps a decoding failure as [`StoreError::Corrupt`].
    pub fn corrupt(err: impl Into<BoxError>) -> Self {
        Self::Corrupt(err.into())
    }

    /// Whether this is [`StoreError::Unavailable`].
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// Whether this is [`StoreError::Corrupt`].
    #[must_use]
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Self::Corrupt(_))
    }
}

/// So that `?` works in a `main` that returns `std::io::Result` (as actix-web's do).
impl From<StoreError> for std::io::Error {
    fn from(err: StoreError) -> Self {
        Self::other(err)
    }
}

#[cfg(feature = "redis")]
impl From<redis::RedisError> for StoreError {
    fn from(err: redis::RedisError) -> Self {
        Self::Unavailable(err.into())
    }
}

#[cfg(feature = "sqlx")]
impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => Self::Corrupt(err.into()),
            sqlx::Error::Configuration(_) => Self::Config(err.to_string()),
            other => Self::Unavailable(other.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_cause_and_keeps_the_source() {
        let err = StoreError::unavailable(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused by 127.0.0.1:6379",
        ));
        assert_eq!(
            err.to_string(),
            "session store unavailable: connection refused by 127.0.0.1:6379"
        );
        assert!(err.source().is_some());
        let err = StoreError::corrupt("expected value at line 1 column 1");
        assert_eq!(
            err.to_string(),
            "stored session data is corrupt: expected value at line 1 column 1"
        );
    }
}
