//! The layer's failures as responses: an opaque `500`, details in the log.

use std::{error::Error as StdError, fmt};

use actix_web::{error::InternalError, http::StatusCode};

/// An opaque `500 session error` for a store (or sealing) failure; the cause, with its
/// whole chain of sources, goes to `tracing`, never to the client. Session ids never
/// appear in either.
pub(crate) fn opaque(err: impl StdError) -> actix_web::Error {
    tracing::error!(error = %Chain(&err), "session layer failed");
    InternalError::new("session error", StatusCode::INTERNAL_SERVER_ERROR).into()
}

/// An error and its sources on one line: `outer: inner: innermost`.
///
/// Errors that already name their source in their own message (as
/// [`StoreError`](session_core::StoreError) does) are not repeated: a source is written
/// only when the text so far does not end with it.
struct Chain<'a>(&'a dyn StdError);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = self.0.to_string();
        let mut source = self.0.source();
        while let Some(err) = source {
            let text = err.to_string();
            if !line.ends_with(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            source = err.source();
        }
        f.write_str(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::Chain;

    #[test]
    fn the_chain_names_the_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let err = session_core::StoreError::unavailable(io);
        assert_eq!(
            Chain(&err).to_string(),
            "session store unavailable: connection refused"
        );
    }

    #[test]
    fn sources_missing_from_the_message_are_appended() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("refill failed")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = Outer(std::io::Error::other("timed out"));
        assert_eq!(Chain(&err).to_string(), "refill failed: timed out");
    }
}
