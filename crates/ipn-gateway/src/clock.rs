//! The gateway's clock: real time, plus an offset that only a test clock can
//! increase.
//!
//! Everything that schedules (retries, rotations, disabling) reads this clock,
//! never the system's, so a test can run three days of retries in
//! milliseconds: `advance` moves time forward and wakes whoever waits on it,
//! and work that fell due runs at once.

use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;
use tokio::sync::watch;

/// Milliseconds since the Unix epoch, on the gateway clock.
pub type Millis = i64;

#[derive(Debug)]
pub struct Clock {
    offset_ms: AtomicI64,
    test_mode: bool,
    /// Bumped on every advance, so sleepers re-check what is due.
    advanced: watch::Sender<u64>,
}

/// Advancing a clock that is not a test clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the test clock is off: start the gateway with --test-clock to advance time")]
pub struct NotATestClock;

impl Clock {
    /// Real time; `advance` is refused.
    pub fn system() -> Self {
        Self::new(false)
    }

    /// Real time plus an offset that `advance` increases, starting from
    /// `offset_ms` (the offset saved before a restart).
    pub fn test(offset_ms: Millis) -> Self {
        let clock = Self::new(true);
        clock.offset_ms.store(offset_ms.max(0), Ordering::Release);
        clock
    }

    /// How far a test clock is ahead of real time.
    pub fn offset_ms(&self) -> Millis {
        self.offset_ms.load(Ordering::Acquire)
    }

    fn new(test_mode: bool) -> Self {
        Self {
            offset_ms: AtomicI64::new(0),
            test_mode,
            advanced: watch::Sender::new(0),
        }
    }

    pub fn is_test(&self) -> bool {
        self.test_mode
    }

    pub fn now_ms(&self) -> Millis {
        let real = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        i64::try_from(real).unwrap_or(i64::MAX) + self.offset_ms.load(Ordering::Acquire)
    }

    pub fn now(&self) -> OffsetDateTime {
        from_millis(self.now_ms())
    }

    /// Moves a test clock forward (never back) and wakes the scheduler.
    pub fn advance(&self, seconds: u64) -> Result<(), NotATestClock> {
        if !self.test_mode {
            return Err(NotATestClock);
        }
        let ms = i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::AcqRel);
        self.advanced.send_modify(|n| *n += 1);
        Ok(())
    }

    /// A receiver that changes whenever the clock is advanced.
    pub fn on_advance(&self) -> watch::Receiver<u64> {
        self.advanced.subscribe()
    }
}

/// An instant from gateway milliseconds (clamped to the representable range).
pub fn from_millis(ms: Millis) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Gateway milliseconds of an instant.
pub fn to_millis(at: OffsetDateTime) -> Millis {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_clock_moves_forward_by_whole_advances() {
        let clock = Clock::test(0);
        let before = clock.now_ms();
        let woken = clock.on_advance();
        clock.advance(3 * 24 * 3600).unwrap();
        let after = clock.now_ms();
        assert!(after - before >= 3 * 24 * 3600 * 1000);
        assert!(after - before < 3 * 24 * 3600 * 1000 + 5_000);
        assert!(woken.has_changed().unwrap());
    }

    #[test]
    fn the_system_clock_cannot_be_advanced() {
        assert_eq!(Clock::system().advance(1), Err(NotATestClock));
    }
}
