//! Where stores and policies read the time, so that expiry can be tested without sleeping.

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// A source of wall-clock time.
///
/// Stores compare record expiry against their clock, never against the system time directly,
/// so tests can move time forward with a [`ManualClock`].
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock. The default everywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to. Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use session_core::{Clock, ManualClock};
///
/// let clock = ManualClock::starting_now();
/// let before = clock.now();
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now().duration_since(before).unwrap(), Duration::from_secs(60));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock set to the current system time (so real TTLs in Redis line up with it).
    #[must_use]
    pub fn starting_now() -> Self {
        Self {
            millis: Arc::new(AtomicU64::new(to_millis(SystemTime::now()))),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        from_millis(self.millis.load(Ordering::SeqCst))
    }
}

/// Milliseconds since the Unix epoch, saturating; times before the epoch are 0.
pub(crate) fn to_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The latest time stores deal in: the end of year 9999, in Unix milliseconds.
pub(crate) const MAX_MILLIS: u64 = 253_402_300_799_999;

/// The inverse of [`to_millis`]. Millisecond values come from stored data, so they are
/// clamped to [`MAX_MILLIS`]: `SystemTime` arithmetic would panic on overflow.
pub(crate) fn from_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis.min(MAX_MILLIS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_trip() {
        let now = from_millis(to_millis(SystemTime::now()));
        assert_eq!(from_millis(to_millis(now)), now);
        assert_eq!(to_millis(UNIX_EPOCH - Duration::from_secs(1)), 0);
        // Values read from storage never overflow SystemTime.
        assert_eq!(to_millis(from_millis(u64::MAX)), MAX_MILLIS);
    }
}
