//! [`apply_changes`]: a request's changes, written under the version check, retried on
//! conflict.

use std::time::SystemTime;

use crate::{Changes, Record, Store, StoreError, TokenHash};

/// How many conditional writes [`apply_changes`] tries before it gives up.
pub const MAX_UPDATE_ATTEMPTS: u32 = 16;

/// What [`apply_changes`] wrote.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Applied {
    /// The changes were written: `record` (its new version) now lives under `key`. `key` is
    /// the one asked for, or the successor it was rotated to meanwhile.
    Written {
        /// Where the record lives.
        key: TokenHash,
        /// The record as written.
        record: Record,
    },
    /// The session ended (deleted or expired) before the changes landed; nothing was
    /// written, and it stays ended: an update never brings a session back.
    Gone,
    /// The session was renewed meanwhile (moved to a fresh id by another request, e.g. at
    /// a sign-in): nothing was written. `marker` is the ended record its old key now holds,
    /// naming the renewed session ([`Metadata::successor`](crate::Metadata::successor)).
    /// The lifecycle refuses such a write (a renewal is a privilege boundary) and lets a
    /// logout follow the marker.
    Renewed {
        /// Where the marker lives.
        key: TokenHash,
        /// The marker.
        marker: Record,
    },
}

/// Writes `changes` onto `base` (the record the request loaded under `key`) as its next
/// version, expiring at `expires_at`.
///
/// The write is conditional on `base.version`. If another write came first, the current
/// record is read again from the store of record ([`Store::reload`], bypassing any cache),
/// the same changes are applied to it, and the write is tried again, at most
/// [`MAX_UPDATE_ATTEMPTS`] times. A write based on a stale read therefore never replaces
/// newer data, and concurrent requests that change different keys both survive. A record
/// that was rotated away meanwhile (it forwards to a successor) is followed to the
/// successor; one that was renewed meanwhile is reported ([`Applied::Renewed`]), not
/// followed.
///
/// # Errors
///
/// The store's errors; [`StoreError::Conflict`] if every attempt lost to another write.
pub async fn apply_changes<S: Store + ?Sized>(
    store: &S,
    key: &TokenHash,
    base: Record,
    changes: &Changes,
    expires_at: SystemTime,
) -> Result<Applied, StoreError> {
    apply_changes_within(store, key, base, changes, expires_at, usize::MAX).await
}

/// [`apply_changes`], refusing to write a record whose state (keys and JSON values)
/// exceeds `max_bytes`: the limit holds for what is stored, also when the changes land on
/// a record that other writes made larger meanwhile.
///
/// # Errors
///
/// As [`apply_changes`]; [`StoreError::TooLarge`] if the record would exceed `max_bytes`
/// (nothing is written).
pub async fn apply_changes_within<S: Store + ?Sized>(
    store: &S,
    key: &TokenHash,
    base: Record,
    changes: &Changes,
    expires_at: SystemTime,
    max_bytes: usize,
) -> Result<Applied, StoreError> {
    let mut key = key.clone();
    let mut base = base;
    for _ in 0..MAX_UPDATE_ATTEMPTS {
        if let Some(successor) = base.meta.successor() {
            // Rotated away: the live session is the successor.
            key = successor;
            base = match settle(store.reload(&key).await?, &key) {
                Settled::Live(record) => record,
                Settled::Not(applied) => return Ok(*applied),
            };
            continue;
        }
        // The base is not needed after this attempt (a retry reloads): change it in place.
        let expected = base.version;
        let mut next = base;
        next.version = expected.saturating_add(1);
        changes.apply(&mut next.state);
        next.expires_at = expires_at;
        let size = state_bytes(&next);
        if size > max_bytes {
            return Err(StoreError::TooLarge {
                size,
                max: max_bytes,
            });
        }
        if store.update(&key, expected, &next).await? {
            crate::telemetry::record_bytes(size);
            return Ok(Applied::Written { key, record: next });
        }
        base = match settle(store.reload(&key).await?, &key) {
            Settled::Live(record) => record,
            Settled::Not(applied) => return Ok(*applied),
        };
    }
    Err(StoreError::Conflict(MAX_UPDATE_ATTEMPTS))
}

/// What a reload found.
enum Settled {
    /// A live record to write onto (or to follow, when it forwards).
    Live(Record),
    /// Why nothing is written.
    Not(Box<Applied>),
}

/// What a reload under `key` found.
fn settle(current: Option<Record>, key: &TokenHash) -> Settled {
    match current {
        Some(record) if !record.meta.ended => Settled::Live(record),
        Some(marker) if marker.meta.successor().is_some() => {
            Settled::Not(Box::new(Applied::Renewed {
                key: key.clone(),
                marker,
            }))
        }
        // Ended (deleted, or a logout's marker): never written again.
        _ => Settled::Not(Box::new(Applied::Gone)),
    }
}

/// The size a session's state is measured by: its keys and JSON values, in bytes.
#[must_use]
pub fn state_bytes(record: &Record) -> usize {
    record
        .state
        .iter()
        .map(|(key, value)| key.len() + value.get().len())
        .sum()
}
