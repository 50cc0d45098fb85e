//! [`WriteQueue`]: one writer at a time per session within a process, so that parallel
//! requests of one session take turns instead of conflicting.

use std::{hash::BuildHasher, time::SystemTime};

use super::apply::{apply_changes, Applied};
use crate::{Changes, Record, Store, StoreError, TokenHash};

/// Serializes the saves of each session within one process, and hands each writer the
/// record the previous one wrote.
///
/// Without it, parallel requests of one session that all loaded version `n` each try a
/// conditional write of `n + 1`: one wins and every other one pays a failed statement and a
/// reload before it retries (with 32 parallel writers, dozens of statements per save). In
/// the queue, a writer waits for the one before it and starts from the record that one
/// wrote, so its conditional write succeeds at the first try.
///
/// This is only a shortcut, never the guarantee: the record a writer starts from is still
/// checked by the store's version, so a write by another process (or a store that changed
/// behind the queue's back) is caught as a conflict and retried on the store's copy by
/// [`apply_changes`]. Sessions are spread over a fixed number of locks by their hash; two
/// sessions that share a lock only take turns.
#[derive(Debug)]
pub struct WriteQueue {
    lanes: Box<[Lane]>,
    hasher: std::collections::hash_map::RandomState,
}

/// One lock, and the record its last writer wrote.
type Lane = tokio::sync::Mutex<Option<(TokenHash, Record)>>;

impl Default for WriteQueue {
    fn default() -> Self {
        Self::new(256)
    }
}

impl WriteQueue {
    /// A queue with `lanes` locks (at least one). Default: 256.
    #[must_use]
    pub fn new(lanes: usize) -> Self {
        Self {
            lanes: (0..lanes.max(1))
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// [`apply_changes`], in turn with the other writers of `key` in this process.
    ///
    /// # Errors
    ///
    /// As [`apply_changes`].
    pub async fn apply_changes<S: Store + ?Sized>(
        &self,
        store: &S,
        key: &TokenHash,
        base: Record,
        changes: &Changes,
        expires_at: SystemTime,
    ) -> Result<Applied, StoreError> {
        let hash = self.hasher.hash_one(key);
        let lane = usize::try_from(hash % self.lanes.len() as u64).unwrap_or(0);
        let mut last = self.lanes[lane].lock().await;
        // The previous writer of this session wrote a newer version than this request
        // loaded: start from it (the store still checks the version).
        let base = match last.take() {
            Some((last_key, record)) if last_key == *key && record.version > base.version => record,
            _ => base,
        };
        let applied = apply_changes(store, key, base, changes, expires_at).await;
        if let Ok(Applied::Written {
            key: written,
            record,
        }) = &applied
        {
            *last = Some((written.clone(), record.clone()));
        }
        applied
    }
}
