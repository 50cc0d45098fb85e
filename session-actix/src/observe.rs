//! What a request's session start tells the operator: the log line for a refused session,
//! and the layer's metrics ([`session_core::telemetry`] has the names).

use session_core::{
    lifecycle::{Refusal, Start},
    telemetry,
};

/// Counts how the request's session began, and logs a refusal (never with the id).
pub(crate) fn started(start: Start) {
    match start {
        Start::New => telemetry::count_with(telemetry::STARTED, "start", "new"),
        Start::Continue { forwarded, .. } => {
            telemetry::count_with(telemetry::STARTED, "start", "continued");
            if forwarded {
                telemetry::count(telemetry::GRACE_FORWARDS);
            }
        }
        Start::Replace { reason, .. } => {
            telemetry::count_with(telemetry::STARTED, "start", "refused");
            telemetry::count_with(telemetry::REFUSED, "reason", label(reason));
            tracing::warn!(
                reason = reason.as_str(),
                "session refused; continuing with a fresh session"
            );
        }
    }
}

/// The `reason` label of [`telemetry::REFUSED`].
fn label(reason: Refusal) -> &'static str {
    match reason {
        Refusal::AbsoluteTimeout => "absolute_timeout",
        Refusal::IdleTimeout => "idle_timeout",
        Refusal::BindingMismatch => "binding_mismatch",
        Refusal::Unreadable => "unreadable",
        _ => "other",
    }
}
