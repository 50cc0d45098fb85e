//! Metrics through the [`metrics`](https://docs.rs/metrics) facade: counters and histograms
//! that cost next to nothing until the application installs a recorder (a Prometheus
//! exporter, for instance); no exporter is chosen for you.
//!
//! | name | kind | labels | what it counts |
//! |---|---|---|---|
//! | `session_cache_hits_total` | counter | | loads the cache tier answered |
//! | `session_cache_misses_total` | counter | | loads that read the durable store |
//! | `session_cache_errors_total` | counter | `op` | cache operations that failed (the request was served from the durable store) |
//! | `session_cache_skipped_total` | counter | | cache operations skipped while the circuit breaker is open |
//! | `session_cache_outages_total` | counter | | times the breaker opened (the cache stopped answering) |
//! | `session_cache_repaired_total` | counter | | keys refreshed from the durable repair log |
//! | `session_durable_errors_total` | counter | `op` | durable store operations that failed |
//! | `session_store_duration_seconds` | histogram | `tier` (`cache`, `durable`), `op` (`load`, `write`) | how long each tier took |
//! | `session_refused_total` | counter | `reason` (`idle_timeout`, `absolute_timeout`, `binding_mismatch`, `unreadable`) | presented sessions not accepted |
//! | `session_grace_forwards_total` | counter | | rotated-away ids presented inside their grace window |
//! | `session_rotations_total` | counter | | ids rotated (periodic, or to a new cookie key) |
//! | `session_created_total` | counter | | sessions created under a fresh id |
//! | `session_renewed_total` | counter | | sessions moved to a fresh id by `renew()` |
//! | `session_ended_total` | counter | | sessions ended (`purge()`, a logout, a refused session's family) |
//! | `session_record_bytes` | histogram | | size of each state written (keys and JSON values) |
//! | `session_theft_signals_total` | counter | `kind` (`replayed_id`, `binding_mismatch`) | likely thefts: a rotated-away id presented after its grace window, a client that does not match the binding |
//! | `session_revocations_total` | counter | | sessions ended because of a theft signal (`TheftResponse::Revoke`) |
//!
//! The session layer also opens a `tracing` span named `session` per request, with the
//! session's short hash (`session = "3fd55f59"`, the start of the SHA-256 of its id), never
//! the id.

use std::time::Duration;

use metrics::{counter, histogram};

/// Loads answered by the cache tier.
pub const CACHE_HITS: &str = "session_cache_hits_total";
/// Loads that read the durable store.
pub const CACHE_MISSES: &str = "session_cache_misses_total";
/// Failed cache operations, by `op`.
pub const CACHE_ERRORS: &str = "session_cache_errors_total";
/// Cache operations skipped while the breaker is open.
pub const CACHE_SKIPPED: &str = "session_cache_skipped_total";
/// Times the breaker opened.
pub const CACHE_OUTAGES: &str = "session_cache_outages_total";
/// Keys refreshed from the repair log.
pub const CACHE_REPAIRED: &str = "session_cache_repaired_total";
/// Failed durable operations, by `op`.
pub const DURABLE_ERRORS: &str = "session_durable_errors_total";
/// Latency per tier and operation.
pub const STORE_DURATION: &str = "session_store_duration_seconds";
/// Refused sessions, by `reason`.
pub const REFUSED: &str = "session_refused_total";
/// Rotated-away ids presented in their grace window.
pub const GRACE_FORWARDS: &str = "session_grace_forwards_total";
/// Rotated ids.
pub const ROTATIONS: &str = "session_rotations_total";
/// Sessions created.
pub const CREATED: &str = "session_created_total";
/// Sessions renewed.
pub const RENEWED: &str = "session_renewed_total";
/// Sessions ended.
pub const ENDED: &str = "session_ended_total";
/// Size of written states.
pub const RECORD_BYTES: &str = "session_record_bytes";
/// Likely thefts, by `kind`.
pub const THEFT_SIGNALS: &str = "session_theft_signals_total";
/// Sessions ended because of a theft signal.
pub const REVOCATIONS: &str = "session_revocations_total";

/// Adds one to the counter `name`.
pub fn count(name: &'static str) {
    counter!(name).increment(1);
}

/// Adds one to the counter `name` with one label.
pub fn count_with(name: &'static str, label: &'static str, value: &'static str) {
    counter!(name, label => value).increment(1);
}

/// Records how long a tier took. Literal labels: the facade then builds no key at run
/// time (variables would allocate one per call, recorder or not).
pub(crate) fn tier_duration(tier: &'static str, op: &'static str, took: Duration) {
    let took = took.as_secs_f64();
    match (tier, op) {
        ("cache", "load") => {
            histogram!(STORE_DURATION, "tier" => "cache", "op" => "load").record(took)
        }
        ("cache", _) => histogram!(STORE_DURATION, "tier" => "cache", "op" => "write").record(took),
        (_, "load") => histogram!(STORE_DURATION, "tier" => "durable", "op" => "load").record(took),
        _ => histogram!(STORE_DURATION, "tier" => "durable", "op" => "write").record(took),
    }
}

/// Records the size of a written state.
pub(crate) fn record_bytes(bytes: usize) {
    #[allow(clippy::cast_precision_loss)] // sizes are far below 2^52
    histogram!(RECORD_BYTES).record(bytes as f64);
}
