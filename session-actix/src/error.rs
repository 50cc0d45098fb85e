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
struct Chain<'a>(&'a dyn StdError);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
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
}
