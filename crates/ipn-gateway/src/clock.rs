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

/// The latest instant a test clock may be advanced to: 9000-01-01T00:00:00Z.
///
/// Every form the gateway writes an instant in must hold it: RFC 3339's
/// four-digit year, the 48-bit milliseconds of a ULID (ids sort by time),
/// `time`'s years up to 9999. Ten centuries are left for dates computed past
/// "now" (billing periods, retries) and for real time to go on.
pub const LATEST_MS: Millis = 221_845_392_000_000;

/// Why the clock cannot be advanced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdvanceError {
    #[error("the test clock is off: start the gateway with --test-clock to advance time")]
    NotATestClock,
    #[error(
        "advancing {seconds} s would take the clock past 9000-01-01T00:00:00Z, \
         the latest instant it can show; at most {room} s are left"
    )]
    TooFar { seconds: u64, room: u64 },
}

impl Clock {
    /// Real time; `advance` is refused.
    pub fn system() -> Self {
        Self::new(false)
    }

    /// Real time plus an offset that `advance` increases, starting from
    /// `offset_ms` (the offset saved before a restart). An offset past
    /// [`LATEST_MS`], saved by a version without that bound, is cut back to
    /// it: such a clock showed no instant anyone could read.
    pub fn test(offset_ms: Millis) -> Self {
        let clock = Self::new(true);
        let room = LATEST_MS.saturating_sub(real_now_ms()).max(0);
        if offset_ms > room {
            tracing::warn!(
                offset_ms,
                kept_ms = room,
                "the saved test clock offset passes 9000-01-01; the clock starts there"
            );
        }
        clock
            .offset_ms
            .store(offset_ms.clamp(0, room), Ordering::Release);
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
        // The offset is bounded by `advance`, so this cannot overflow.
        real_now_ms() + self.offset_ms.load(Ordering::Acquire)
    }

    pub fn now(&self) -> OffsetDateTime {
        from_millis(self.now_ms())
    }

    /// Moves a test clock forward (never back) and wakes the scheduler. An
    /// advance that would pass [`LATEST_MS`] is refused and changes nothing.
    pub fn advance(&self, seconds: u64) -> Result<(), AdvanceError> {
        if !self.test_mode {
            return Err(AdvanceError::NotATestClock);
        }
        let mut offset = self.offset_ms.load(Ordering::Acquire);
        loop {
            let room_ms = LATEST_MS.saturating_sub(real_now_ms() + offset).max(0);
            let too_far = AdvanceError::TooFar {
                seconds,
                room: u64::try_from(room_ms / 1000).unwrap_or(0),
            };
            let ms = seconds
                .checked_mul(1000)
                .and_then(|ms| i64::try_from(ms).ok())
                .filter(|&ms| ms <= room_ms)
                .ok_or(too_far)?;
            match self.offset_ms.compare_exchange(
                offset,
                offset + ms,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                // Another advance came first: measure the room again.
                Err(current) => offset = current,
            }
        }
        self.advanced.send_modify(|n| *n += 1);
        Ok(())
    }

    /// A receiver that changes whenever the clock is advanced.
    pub fn on_advance(&self) -> watch::Receiver<u64> {
        self.advanced.subscribe()
    }
}

/// Real time, in milliseconds since the Unix epoch.
fn real_now_ms() -> Millis {
    let real = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    // Before year 292,278,994: the conversion cannot fail in practice.
    i64::try_from(real).unwrap_or(i64::MAX)
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
        assert_eq!(Clock::system().advance(1), Err(AdvanceError::NotATestClock));
    }

    #[test]
    fn the_latest_instant_is_9000_01_01() {
        assert_eq!(
            from_millis(LATEST_MS),
            time::macros::datetime!(9000-01-01 00:00 UTC)
        );
    }

    #[test]
    fn an_advance_past_the_latest_instant_is_refused_and_changes_nothing() {
        let clock = Clock::test(0);
        clock.advance(3600).unwrap();
        let offset = clock.offset_ms();
        let woken = clock.on_advance();
        for seconds in [
            u64::MAX,
            i64::MAX as u64,
            1_000_000_000_000,
            300_000_000_000,
        ] {
            assert!(
                matches!(clock.advance(seconds), Err(AdvanceError::TooFar { .. })),
                "{seconds}"
            );
            assert_eq!(clock.offset_ms(), offset, "{seconds}");
        }
        assert!(!woken.has_changed().unwrap());
        // Up to the bound is fine, and then no further.
        let Err(AdvanceError::TooFar { room, .. }) = clock.advance(u64::MAX) else {
            unreachable!()
        };
        clock.advance(room - 60).unwrap();
        assert!(clock.now_ms() <= LATEST_MS);
        assert!(clock.now() > time::macros::datetime!(8999-12-31 23:00 UTC));
        assert!(clock.advance(3600).is_err());
    }

    #[test]
    fn a_saved_offset_past_the_latest_instant_starts_at_it() {
        let clock = Clock::test(1_000_000_000_000_000);
        let now = clock.now_ms();
        assert!(now <= LATEST_MS && now > LATEST_MS - 60_000, "{now}");
        assert_eq!(Clock::test(-5).offset_ms(), 0);
    }
}
