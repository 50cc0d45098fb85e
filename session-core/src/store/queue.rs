//! [`WriteQueue`]: the saves of one session within a process, combined into as few
//! conditional writes as possible instead of conflicting.

use std::{
    collections::VecDeque,
    hash::BuildHasher,
    sync::{Arc, Mutex, PoisonError},
    time::SystemTime,
};

use tokio::sync::oneshot;

use super::apply::{apply_changes_within, Applied};
use crate::{Changes, Record, Store, StoreError, TokenHash};

/// Serializes the saves of each session within one process and combines the ones that
/// queue up into one write.
///
/// Without it, parallel requests of one session that all loaded version `n` each try a
/// conditional write of `n + 1`: one wins and every other one pays a failed statement and a
/// reload before it retries (with 32 parallel writers, dozens of statements per save). In
/// the queue, one writer at a time writes; the requests that arrive meanwhile wait, and the
/// next writer applies all of their changes, in arrival order, in one conditional write
/// from the newest record this process wrote. Each request is answered once the write that
/// holds its changes is acknowledged by the store, so nothing is acknowledged early.
///
/// The queue is only a shortcut, never the guarantee: every write is still checked by the
/// store's version, so a write by another process is caught as a conflict and retried on
/// the store's copy by [`apply_changes`](super::apply_changes). Sessions are spread over a
/// fixed number of lanes by their hash; sessions that share a lane only take turns. One
/// queue serves one store.
#[derive(Debug)]
pub struct WriteQueue {
    lanes: Box<[Arc<Mutex<Lane>>]>,
    hasher: std::collections::hash_map::RandomState,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Lane {
    /// The record the last write of this lane produced.
    last: Option<(TokenHash, Record)>,
    /// Whether a writer is at work in this lane.
    busy: bool,
    waiting: VecDeque<Job>,
}

/// One request's save.
#[derive(Debug)]
struct Job {
    key: TokenHash,
    base: Record,
    changes: Changes,
    expires_at: SystemTime,
    reply: Option<oneshot::Sender<Turn>>,
}

/// What a waiting request is told.
#[derive(Debug)]
enum Turn {
    /// Its changes were written (or failed) with a batch.
    Done(Result<Applied, StoreError>),
    /// It is the lane's next writer, and holds the lane until it drops the token (also if
    /// the message is never received: the token then hands the lane on from the channel).
    Lead(Job, LaneToken),
}

impl Default for WriteQueue {
    fn default() -> Self {
        Self::new(256)
    }
}

impl WriteQueue {
    /// A queue with `lanes` lanes (at least one). Default: 256.
    #[must_use]
    pub fn new(lanes: usize) -> Self {
        Self {
            lanes: (0..lanes.max(1)).map(|_| Arc::default()).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            max_bytes: usize::MAX,
        }
    }

    /// Refuse writes whose record would exceed `max_bytes`
    /// ([`apply_changes_within`]), so combined saves cannot grow a session past a limit
    /// each of them respected alone. Default: no limit.
    #[must_use]
    pub fn max_record_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    fn lane(&self, key: &TokenHash) -> &Arc<Mutex<Lane>> {
        let hash = self.hasher.hash_one(key);
        let index = usize::try_from(hash % self.lanes.len() as u64).unwrap_or(0);
        &self.lanes[index]
    }

    /// [`apply_changes`](super::apply_changes), in turn with (and possibly in one write
    /// together with) the other saves of `key` in this process, within the queue's
    /// [`max_record_bytes`](Self::max_record_bytes).
    ///
    /// # Errors
    ///
    /// As [`apply_changes_within`]; a request whose changes were written in another
    /// request's batch gets a copy of that write's error.
    pub async fn apply_changes<S: Store + ?Sized>(
        &self,
        store: &S,
        key: &TokenHash,
        base: Record,
        changes: Changes,
        expires_at: SystemTime,
    ) -> Result<Applied, StoreError> {
        let lane = self.lane(key);
        let job = Job {
            key: key.clone(),
            base,
            changes,
            expires_at,
            reply: None,
        };
        let waiting = {
            let mut state = lock(lane);
            if state.busy {
                let (tx, rx) = oneshot::channel();
                state.waiting.push_back(Job {
                    reply: Some(tx),
                    ..job
                });
                Err(rx)
            } else {
                state.busy = true;
                Ok(job)
            }
        };
        let (job, _token) = match waiting {
            Ok(job) => (job, LaneToken::new(lane)),
            Err(rx) => match rx.await {
                Ok(Turn::Done(result)) => return result,
                Ok(Turn::Lead(own, token)) => (own, token),
                // The leader was dropped (its request cancelled) with this save in its
                // batch: not acknowledged.
                Err(_) => {
                    return Err(StoreError::unavailable(
                        "the session's write queue was abandoned; not written",
                    ))
                }
            },
        };
        Self::lead(lane, store, job, self.max_bytes).await
    }

    /// Writes `own` together with every queued save of the same session, answers them,
    /// and hands the lane to the next waiting request.
    async fn lead<S: Store + ?Sized>(
        lane: &Mutex<Lane>,
        store: &S,
        own: Job,
        max_bytes: usize,
    ) -> Result<Applied, StoreError> {
        let (mut batch, last) = {
            let mut state = lock(lane);
            let (batch, others): (VecDeque<Job>, VecDeque<Job>) = state
                .waiting
                .drain(..)
                // A request that stopped waiting (cancelled) is not written for it.
                .filter(|queued| {
                    !queued
                        .reply
                        .as_ref()
                        .is_some_and(oneshot::Sender::is_closed)
                })
                .partition(|queued| queued.key == own.key);
            state.waiting = others;
            let last = match state.last.take() {
                Some((last_key, record)) if last_key == own.key => Some(record),
                other => {
                    state.last = other;
                    None
                }
            };
            (batch, last)
        };
        let Job {
            key,
            base: mut newest,
            mut changes,
            mut expires_at,
            ..
        } = own;
        // The newest record any of them (or this lane's last write) started from.
        for job in &mut batch {
            changes.extend(&job.changes);
            expires_at = expires_at.max(job.expires_at);
            if job.base.version > newest.version {
                std::mem::swap(&mut newest, &mut job.base);
            }
        }
        let base = match last {
            Some(last) if last.version > newest.version => last,
            _ => newest,
        };
        let result = apply_changes_within(store, &key, base, &changes, expires_at, max_bytes).await;
        if let Ok(Applied::Written { key, record }) = &result {
            lock(lane).last = Some((key.clone(), record.clone()));
        }
        for job in batch {
            if let Some(reply) = job.reply {
                let _ = reply.send(Turn::Done(copy(&result)));
            }
        }
        result
    }
}

/// The lane's writer role: on drop, handed to the next waiting request, or the lane is
/// freed. Dropped when the leader is done, when its future is dropped mid-write, and when
/// a hand-off message is dropped unreceived.
#[derive(Debug)]
struct LaneToken(Option<Arc<Mutex<Lane>>>);

impl LaneToken {
    fn new(lane: &Arc<Mutex<Lane>>) -> Self {
        Self(Some(Arc::clone(lane)))
    }
}

impl Drop for LaneToken {
    fn drop(&mut self) {
        let Some(lane) = self.0.take() else {
            return;
        };
        let mut state = lock(&lane);
        while let Some(mut next) = state.waiting.pop_front() {
            let Some(reply) = next.reply.take() else {
                continue;
            };
            if reply.is_closed() {
                continue; // that request is gone
            }
            // If the message is never received, the token inside it drops and hands on.
            let token = LaneToken::new(&lane);
            drop(state);
            match reply.send(Turn::Lead(next, token)) {
                Ok(()) => return,
                Err(Turn::Lead(_, mut token)) => {
                    // Its receiver went away meanwhile: take the role back, try the next.
                    token.0 = None;
                    state = lock(&lane);
                }
                Err(Turn::Done(_)) => state = lock(&lane),
            }
        }
        state.busy = false;
    }
}

fn lock(lane: &Mutex<Lane>) -> std::sync::MutexGuard<'_, Lane> {
    // A panic while holding this lock cannot leave the lane inconsistent.
    lane.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A copy of a batch's result for each request in it.
fn copy(result: &Result<Applied, StoreError>) -> Result<Applied, StoreError> {
    match result {
        Ok(applied) => Ok(applied.clone()),
        Err(StoreError::Conflict(n)) => Err(StoreError::Conflict(*n)),
        Err(StoreError::TooLarge { size, max }) => Err(StoreError::TooLarge {
            size: *size,
            max: *max,
        }),
        Err(StoreError::Config(text)) => Err(StoreError::Config(text.clone())),
        Err(err) if err.is_corrupt() => Err(StoreError::corrupt(err.to_string())),
        Err(err) => Err(StoreError::unavailable(err.to_string())),
    }
}
