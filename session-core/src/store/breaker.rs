//! [`Breaker`]: whether the cache tier is trusted, skipped, or being repaired.

use std::{
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering},
    time::{Duration, Instant},
};

/// Where the cache tier stands, as the tiered store sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheState {
    /// Trusted: reads try it first, writes update it.
    Closed,
    /// It answered a probe and is being repaired from the durable repair log: writes
    /// update it, reads do not trust it yet.
    HalfOpen,
    /// It failed: skipped entirely until a probe in the background finds it answering.
    Open,
}

const CLOSED: u8 = 0;
const HALF_OPEN: u8 = 1;
const OPEN: u8 = 2;

/// A circuit breaker with exponential backoff between probes, and the claim that lets one
/// background task at a time probe or repair.
///
/// Time is the monotonic clock of the process: the breaker is about how long to wait for a
/// server, not about session expiry.
#[derive(Debug)]
pub(crate) struct Breaker {
    state: AtomicU8,
    started: Instant,
    /// When (ms since `started`) the next probe, or the next periodic repair pass, is due.
    due_ms: AtomicU64,
    failures: AtomicU32,
    busy: AtomicBool,
    base_backoff: Duration,
    max_backoff: Duration,
}

impl Breaker {
    /// A breaker that starts open with a probe due at once: nothing is trusted before the
    /// first repair pass.
    pub(crate) fn new(base_backoff: Duration, max_backoff: Duration) -> Self {
        Self {
            state: AtomicU8::new(OPEN),
            started: Instant::now(),
            due_ms: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            busy: AtomicBool::new(false),
            base_backoff,
            max_backoff,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn state(&self) -> CacheState {
        match self.state.load(Ordering::SeqCst) {
            CLOSED => CacheState::Closed,
            HALF_OPEN => CacheState::HalfOpen,
            _ => CacheState::Open,
        }
    }

    /// The cache failed: skip it, and probe again after the backoff (doubling with each
    /// failure in a row, up to the maximum).
    pub(crate) fn trip(&self) {
        let failures = self.failures.fetch_add(1, Ordering::SeqCst).min(16);
        let backoff = self
            .base_backoff
            .saturating_mul(1 << failures)
            .min(self.max_backoff);
        let due = self
            .now_ms()
            .saturating_add(u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX));
        self.due_ms.store(due, Ordering::SeqCst);
        if self.state.swap(OPEN, Ordering::SeqCst) == CLOSED {
            crate::telemetry::count(crate::telemetry::CACHE_OUTAGES);
        }
    }

    /// The cache answered a probe; repair comes next.
    pub(crate) fn half_open(&self) {
        let _ = self
            .state
            .compare_exchange(OPEN, HALF_OPEN, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The repair pass is done: trust the cache, and run the next periodic pass after
    /// `interval`.
    pub(crate) fn close(&self, interval: Duration) {
        self.failures.store(0, Ordering::SeqCst);
        self.schedule(interval);
        let _ = self
            .state
            .compare_exchange(HALF_OPEN, CLOSED, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Sets when the next periodic repair pass is due.
    pub(crate) fn schedule(&self, interval: Duration) {
        let due = self
            .now_ms()
            .saturating_add(u64::try_from(interval.as_millis()).unwrap_or(u64::MAX));
        self.due_ms.store(due, Ordering::SeqCst);
    }

    /// Whether the next probe (while open) or periodic repair pass (while closed) is due.
    pub(crate) fn due(&self) -> bool {
        self.now_ms() >= self.due_ms.load(Ordering::SeqCst)
    }

    /// Claims the background recovery of an open breaker whose probe is due; `false` if
    /// none is due or another task holds the claim. Give it back with
    /// [`release`](Self::release), however the task ends (a drop guard).
    pub(crate) fn try_claim(&self) -> bool {
        self.state() == CacheState::Open
            && self.due()
            && self
                .busy
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }

    /// Gives the claim back.
    pub(crate) fn release(&self) {
        self.busy.store(false, Ordering::SeqCst);
    }

    /// Open, with the next probe due at once: a repair that stopped short resumes without
    /// a backoff.
    pub(crate) fn trip_now(&self) {
        self.due_ms.store(0, Ordering::SeqCst);
        self.state.store(OPEN, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle() {
        let breaker = Breaker::new(Duration::from_secs(60), Duration::from_secs(600));
        assert_eq!(breaker.state(), CacheState::Open);
        assert!(breaker.try_claim(), "a probe is due at once");
        assert!(!breaker.try_claim(), "one claim at a time");
        breaker.half_open();
        assert_eq!(breaker.state(), CacheState::HalfOpen);
        breaker.close(Duration::from_secs(60));
        breaker.release();
        assert_eq!(breaker.state(), CacheState::Closed);
        assert!(!breaker.due(), "the next repair pass is a minute away");
        breaker.trip();
        assert_eq!(breaker.state(), CacheState::Open);
        assert!(!breaker.try_claim(), "backoff before the next probe");
        breaker.trip_now();
        assert!(breaker.try_claim(), "due at once after trip_now");
    }

    #[test]
    fn close_only_from_half_open() {
        let breaker = Breaker::new(Duration::ZERO, Duration::ZERO);
        breaker.close(Duration::ZERO);
        assert_eq!(
            breaker.state(),
            CacheState::Open,
            "a probe must answer first"
        );
        breaker.half_open();
        breaker.trip();
        breaker.close(Duration::ZERO);
        assert_eq!(
            breaker.state(),
            CacheState::Open,
            "a failure during repair wins"
        );
    }
}
