//! The layer's failures as responses: an opaque `500`, details in the log.

use actix_web::{error::InternalError, http::StatusCode};

/// An opaque `500 session error` for a store (or sealing) failure; the cause goes to
/// `tracing`, never to the client. Session ids never appear in either.
pub(crate) fn opaque(err: impl std::fmt::Display) -> actix_web::Error {
    tracing::error!(error = %err, "session layer failed");
    InternalError::new("session error", StatusCode::INTERNAL_SERVER_ERROR).into()
}
