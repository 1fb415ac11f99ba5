//! When to try again: the retry schedule, its jitter, and `Retry-After`.

use std::time::Duration;

use crate::clock::Millis;

/// Delays after each failed attempt; the first attempt is immediate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `delays[n]` follows the (n+1)-th failed attempt; after the last one
    /// the delivery is dead-lettered. So attempts = delays + 1.
    pub delays: Vec<Duration>,
    /// Each delay varies by up to this many percent either way, so that
    /// endpoints coming back are not hit by every retry at the same instant.
    pub jitter_percent: u8,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// Standard Webhooks' schedule: immediately, 5 s, 5 min, 30 min, 2 h,
    /// 5 h, 10 h, 14 h, 20 h, 24 h (about three days), ±20 %.
    fn default() -> Self {
        let secs = Duration::from_secs;
        Self {
            delays: vec![
                secs(5),
                secs(5 * 60),
                secs(30 * 60),
                secs(2 * 3600),
                secs(5 * 3600),
                secs(10 * 3600),
                secs(14 * 3600),
                secs(20 * 3600),
                secs(24 * 3600),
            ],
            jitter_percent: 20,
            max_retry_after: secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len()).unwrap_or(u32::MAX - 1) + 1
    }

    /// When to try again after the `failed_in_round`-th failed attempt of a
    /// round (1 for the first), or `None` when the attempts are used up.
    /// `retry_after` is the server's wish (429 and 503 only); a later
    /// schedule time wins over an earlier wish.
    pub fn next_attempt(
        &self,
        now: Millis,
        failed_in_round: u32,
        retry_after: Option<Duration>,
    ) -> Option<Millis> {
        let index = usize::try_from(failed_in_round.checked_sub(1)?).ok()?;
        let base = *self.delays.get(index)?;
        let mut delay = jittered(base, self.jitter_percent);
        if let Some(wish) = retry_after {
            delay = delay.max(wish.min(self.max_retry_after));
        }
        Some(now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)))
    }
}

fn jittered(base: Duration, percent: u8) -> Duration {
    if percent == 0 {
        return base;
    }
    let spread = u64::from(percent.min(100)) * 10; // per mille
    let factor = 1000 - spread + rand::random::<u64>() % (2 * spread + 1);
    let ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(ms.saturating_mul(factor) / 1000)
}

/// Reads `Retry-After`: delay-seconds only (an HTTP date is rare from
/// webhook receivers and would need the receiver's clock to agree with ours).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || value.len() > 12 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_spans_about_three_days_in_ten_attempts() {
        let policy = RetryPolicy {
            jitter_percent: 0,
            ..RetryPolicy::default()
        };
        assert_eq!(policy.max_attempts(), 10);
        let mut at = 0;
        for failed in 1..10 {
            at = policy.next_attempt(at, failed, None).unwrap();
        }
        assert_eq!(
            at,
            (5 + 300 + 1800 + (2 + 5 + 10 + 14 + 20 + 24) * 3600) * 1000
        );
        assert_eq!(policy.next_attempt(at, 10, None), None);
        assert_eq!(policy.next_attempt(at, 0, None), None);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let policy = RetryPolicy::default();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let at = policy.next_attempt(0, 2, None).unwrap();
            assert!((240_000..=360_000).contains(&at), "{at}");
            seen.insert(at);
        }
        assert!(seen.len() > 100, "jitter varies");
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap_but_never_shortens() {
        let policy = RetryPolicy {
            jitter_percent: 0,
            max_retry_after: Duration::from_secs(3600),
            ..RetryPolicy::default()
        };
        let wish = |s| Some(Duration::from_secs(s));
        assert_eq!(policy.next_attempt(0, 1, wish(60)), Some(60_000));
        assert_eq!(policy.next_attempt(0, 1, wish(1)), Some(5_000));
        assert_eq!(policy.next_attempt(0, 1, wish(999_999)), Some(3_600_000));
    }

    #[test]
    fn retry_after_takes_seconds_only() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        for bad in [
            "",
            "-1",
            "1.5",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "99999999999999",
        ] {
            assert_eq!(parse_retry_after(bad), None, "{bad:?}");
        }
    }
}
