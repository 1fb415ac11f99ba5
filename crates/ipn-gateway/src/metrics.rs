//! Counters and a latency histogram, rendered as Prometheus text at
//! `/metrics`. Plain atomics: the delivery path only ever adds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the attempt latency buckets, in seconds (as Prometheus
/// writes them) and in microseconds (as they are compared).
const BUCKETS: &[(&str, u64)] = &[
    ("0.001", 1_000),
    ("0.005", 5_000),
    ("0.01", 10_000),
    ("0.05", 50_000),
    ("0.1", 100_000),
    ("0.5", 500_000),
    ("1", 1_000_000),
    ("5", 5_000_000),
    ("15", 15_000_000),
];

#[derive(Debug, Default)]
pub struct Metrics {
    events_ingested: AtomicU64,
    attempts_succeeded: AtomicU64,
    attempts_rejected: AtomicU64,
    attempts_no_answer: AtomicU64,
    deliveries_delivered: AtomicU64,
    deliveries_dead_lettered: AtomicU64,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

/// Values read at render time from the rest of the gateway.
#[derive(Debug, Clone, Copy)]
pub struct Gauges {
    pub scheduled: usize,
    /// Deliveries parked behind open circuit breakers.
    pub parked: usize,
    /// Milliseconds the earliest due delivery has waited past its due time.
    pub oldest_due_age_ms: u64,
}

/// How an attempt was answered, as the attempt counters count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A 2xx.
    Delivered,
    /// Any other status.
    Rejected,
    /// No answer at all (refused, reset, timed out).
    NoAnswer,
}

impl Metrics {
    pub fn ingested(&self, events: u64) {
        self.events_ingested.fetch_add(events, Ordering::Relaxed);
    }

    pub fn record_attempt(&self, answer: Answer, duration: Duration) {
        let counter = match answer {
            Answer::Delivered => &self.attempts_succeeded,
            Answer::Rejected => &self.attempts_rejected,
            Answer::NoAnswer => &self.attempts_no_answer,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        for (i, (_, bound)) in BUCKETS.iter().enumerate() {
            if us <= *bound {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn delivered(&self) {
        self.deliveries_delivered.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dead_lettered(&self) {
        self.deliveries_dead_lettered
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, gauges: Gauges) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut line = |text: String| {
            out.push_str(&text);
            out.push('\n');
        };
        line("# HELP ipn_events_ingested_total Events accepted and committed.".into());
        line("# TYPE ipn_events_ingested_total counter".into());
        line(format!(
            "ipn_events_ingested_total {}",
            get(&self.events_ingested)
        ));
        line("# HELP ipn_attempts_total Delivery attempts by outcome.".into());
        line("# TYPE ipn_attempts_total counter".into());
        for (outcome, counter) in [
            ("succeeded", &self.attempts_succeeded),
            ("rejected", &self.attempts_rejected),
            ("no_answer", &self.attempts_no_answer),
        ] {
            line(format!(
                "ipn_attempts_total{{outcome=\"{outcome}\"}} {}",
                get(counter)
            ));
        }
        line("# HELP ipn_deliveries_total Deliveries finished, by result.".into());
        line("# TYPE ipn_deliveries_total counter".into());
        line(format!(
            "ipn_deliveries_total{{result=\"delivered\"}} {}",
            get(&self.deliveries_delivered)
        ));
        line(format!(
            "ipn_deliveries_total{{result=\"dead_letter\"}} {}",
            get(&self.deliveries_dead_lettered)
        ));
        line(
            "# HELP ipn_attempt_duration_seconds Time from sending an attempt to its answer."
                .into(),
        );
        line("# TYPE ipn_attempt_duration_seconds histogram".into());
        for (i, (le, _)) in BUCKETS.iter().enumerate() {
            line(format!(
                "ipn_attempt_duration_seconds_bucket{{le=\"{le}\"}} {}",
                get(&self.latency_buckets[i])
            ));
        }
        let count = get(&self.latency_count);
        line(format!(
            "ipn_attempt_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        ));
        let sum_us = get(&self.latency_sum_us);
        line(format!(
            "ipn_attempt_duration_seconds_sum {}.{:06}",
            sum_us / 1_000_000,
            sum_us % 1_000_000
        ));
        line(format!("ipn_attempt_duration_seconds_count {count}"));
        line("# HELP ipn_queue_depth Deliveries scheduled and not yet taken.".into());
        line("# TYPE ipn_queue_depth gauge".into());
        line(format!("ipn_queue_depth {}", gauges.scheduled));
        line("# HELP ipn_deliveries_parked Deliveries held out of the schedule while their endpoint's circuit breaker is open.".into());
        line("# TYPE ipn_deliveries_parked gauge".into());
        line(format!("ipn_deliveries_parked {}", gauges.parked));
        line(
            "# HELP ipn_oldest_due_age_seconds How long the earliest due delivery has waited."
                .into(),
        );
        line("# TYPE ipn_oldest_due_age_seconds gauge".into());
        let age = gauges.oldest_due_age_ms;
        line(format!(
            "ipn_oldest_due_age_seconds {}.{:03}",
            age / 1000,
            age % 1000
        ));
        out
    }
}
