//! Percentiles of measured durations, and the rounding of printed figures.

use std::time::Duration;

/// Durations sorted once, read at any percentile.
#[derive(Debug, Default)]
pub struct Sorted(Vec<Duration>);

impl Sorted {
    pub fn new(mut durations: Vec<Duration>) -> Self {
        durations.sort_unstable();
        Self(durations)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The nearest-rank percentile (`p` in 0..=100), or `None` without data.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let n = self.0.len();
        if n == 0 {
            return None;
        }
        // Rank ⌈p/100 · n⌉, counted from 1; at least the first.
        let rank = (p / 100.0 * n as f64).ceil() as usize;
        Some(self.0[rank.clamp(1, n) - 1])
    }

    /// The percentile in milliseconds, to the microsecond.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        self.percentile(p).map(ms)
    }
}

/// Milliseconds, rounded to the microsecond.
pub fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// `value` to `decimals` places, for figures meant to be read.
pub fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(list: &[u64]) -> Sorted {
        Sorted::new(list.iter().map(|&m| Duration::from_millis(m)).collect())
    }

    #[test]
    fn nearest_rank() {
        let s = millis(&[5, 1, 4, 2, 3, 10, 9, 8, 7, 6]);
        assert_eq!(s.percentile_ms(50.0), Some(5.0));
        assert_eq!(s.percentile_ms(99.0), Some(10.0));
        assert_eq!(s.percentile_ms(0.0), Some(1.0));
        assert_eq!(s.percentile_ms(100.0), Some(10.0));
        assert_eq!(millis(&[7]).percentile_ms(99.0), Some(7.0));
        assert_eq!(millis(&[]).percentile(50.0), None);
    }

    #[test]
    fn milliseconds_keep_microseconds() {
        assert_eq!(ms(Duration::from_micros(1234)), 1.234);
        assert_eq!(ms(Duration::from_nanos(1_234_567)), 1.235);
    }
}
