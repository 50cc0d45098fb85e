//! What a request's session start tells the operator: the request span's short hash, the
//! log line for a refused session, and the layer's metrics ([`session_core::telemetry`]
//! has the names).

use session_core::{
    lifecycle::{OldRecord, Refusal, Start},
    telemetry,
};

use crate::{info::ShortId, load::Found};

/// Names the request's span after the session (its short hash), counts the rare starts
/// (refusals, grace forwards), and logs a refusal (never with the id). The common starts
/// cost nothing: requests are counted by HTTP metrics already. A cookie-only session has
/// nothing on the server for a revocation to end.
pub(crate) fn started(found: &Found, start: Start) {
    let server_side = matches!(found, Found::Server(_));
    if let Found::Server(loaded) = found {
        let span = tracing::Span::current();
        if !span.is_disabled() {
            span.record("session", tracing::field::display(ShortId::of(&loaded.key)));
        }
    }
    match start {
        Start::New
        | Start::Continue {
            forwarded: false, ..
        } => {}
        Start::Continue {
            forwarded: true, ..
        } => telemetry::count(telemetry::GRACE_FORWARDS),
        Start::Replace { reason, old } => {
            telemetry::count_with(telemetry::REFUSED, "reason", label(reason));
            if reason == Refusal::BindingMismatch {
                telemetry::count_with(telemetry::THEFT_SIGNALS, "kind", "binding_mismatch");
                if old == OldRecord::End && server_side {
                    telemetry::count(telemetry::REVOCATIONS);
                }
            }
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
