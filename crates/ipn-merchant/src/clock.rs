//! The shop's clock. Everything that compares with "now" to decide
//! something (a webhook's timestamp, a download link's expiry, a
//! subscriber's access) reads it, never the system's directly.
//!
//! It is real time by default. Run beside a gateway on a test clock (`ipn
//! up`, the integration tests), the shop follows the gateway's clock, so a
//! message signed on the gateway's virtual "three days later" is on time
//! here too, and a link that expires in seven virtual days does.

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

/// A source of the current time; cheap to clone.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> OffsetDateTime + Send + Sync>);

impl Clock {
    /// Real time.
    pub fn system() -> Self {
        Self(Arc::new(OffsetDateTime::now_utc))
    }

    /// Whatever `now` says (another component's clock).
    pub fn from_fn(now: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.0)()
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        millis(self.now())
    }
}

/// Milliseconds since the Unix epoch: how the database keeps times.
pub fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Now by the system's clock, in milliseconds since the Unix epoch. Retry
/// times are kept in wall-clock time, never a test clock's, so that they
/// survive a restart and a retry is never skipped by a clock's jump.
pub fn wall_ms() -> i64 {
    millis(OffsetDateTime::now_utc())
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}
