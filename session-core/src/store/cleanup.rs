//! Removing expired sessions: on a share of writes ([`CleanupPolicy`]) and in the background
//! ([`spawn_cleanup`]).

use std::{sync::Arc, time::Duration};

use ring::rand::{SecureRandom, SystemRandom};

use crate::Store;

/// Runs a bounded [`Store::cleanup`] on a random share of writes: the original utility's
/// `clean_check_percent`.
///
/// With `percent = 5` (the default here; the original utility used 15 %, later 50 %, of
/// all requests) about one write in twenty also deletes up to `batch` expired records, so stale sessions go away in proportion to
/// traffic without a separate job. Each run is one bounded statement, never a scan of the
/// whole table. `0` turns it off (use [`spawn_cleanup`] instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    percent: u8,
    batch: usize,
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        Self {
            percent: 5,
            batch: super::DEFAULT_CLEANUP_BATCH_SIZE,
        }
    }
}

impl CleanupPolicy {
    /// Cleanup on `percent`% of writes (clamped to 100), deleting at most `batch` records
    /// each time.
    #[must_use]
    pub fn new(percent: u8, batch: usize) -> Self {
        Self {
            percent: percent.min(100),
            batch,
        }
    }

    /// Never clean up on writes.
    #[must_use]
    pub fn disabled() -> Self {
        Self::new(0, 0)
    }

    /// The share of writes, in percent.
    #[must_use]
    pub fn percent(&self) -> u8 {
        self.percent
    }

    /// The most records one run deletes.
    #[must_use]
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Draws whether this write runs a cleanup.
    #[must_use]
    pub fn should_run(&self) -> bool {
        match self.percent {
            0 => false,
            100 => true,
            percent => {
                let mut byte = [0u8; 4];
                // A failed draw skips this cleanup: another write will run it.
                SystemRandom::new().fill(&mut byte).is_ok()
                    && u32::from_le_bytes(byte) % 100 < u32::from(percent)
            }
        }
    }

    /// Called after a write: on the drawn share of calls, runs one bounded cleanup of
    /// `store`. Returns how many records were deleted, or `None` if no cleanup ran. Errors
    /// are logged, never returned: the write it follows has already succeeded.
    pub async fn after_write<S: Store>(&self, store: &S) -> Option<usize> {
        if !self.should_run() {
            return None;
        }
        match store.cleanup(self.batch).await {
            Ok(deleted) => {
                tracing::debug!(deleted, "expired sessions cleaned up");
                Some(deleted)
            }
            Err(err) => {
                tracing::warn!(error = %err, "session cleanup failed");
                None
            }
        }
    }
}

/// A background cleanup started by [`spawn_cleanup`]. Stops when dropped.
#[derive(Debug)]
pub struct CleanupTask {
    handle: tokio::task::JoinHandle<()>,
}

impl CleanupTask {
    /// Stops the task.
    pub fn stop(self) {}
}

impl Drop for CleanupTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Spawns a Tokio task that, every `interval`, deletes expired records in batches of
/// `batch` until a batch comes back short. Between batches it yields, so a large backlog
/// (a million stale rows) is many short statements interleaved with live traffic rather
/// than one long one.
///
/// Must be called inside a Tokio runtime. Errors are logged and retried at the next tick.
pub fn spawn_cleanup<S: Store>(store: Arc<S>, interval: Duration, batch: usize) -> CleanupTask {
    let handle = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let mut total = 0usize;
            loop {
                match store.cleanup(batch).await {
                    Ok(deleted) => {
                        total += deleted;
                        if deleted < batch || batch == 0 {
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "background session cleanup failed");
                        break;
                    }
                }
            }
            if total > 0 {
                tracing::debug!(deleted = total, "background session cleanup");
            }
        }
    });
    CleanupTask { handle }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_of_writes() {
        assert!(!CleanupPolicy::disabled().should_run());
        assert!(CleanupPolicy::new(100, 10).should_run());
        assert_eq!(CleanupPolicy::new(250, 10).percent(), 100);
        let half = CleanupPolicy::new(50, 10);
        let runs = (0..2000).filter(|_| half.should_run()).count();
        // Binomial(2000, 0.5): 800..1200 is more than 8 standard deviations wide.
        assert!((800..1200).contains(&runs), "{runs}");
    }
}
