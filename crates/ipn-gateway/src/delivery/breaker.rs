//! Circuit breakers, one per endpoint: after a run of failed attempts the
//! endpoint is not contacted for a cool-down; then one probe decides.
//!
//! Why: an endpoint that is down would otherwise cost every event a
//! connection attempt (up to the connect timeout) and fill its lane. While
//! open, its deliveries are parked by the engine: no attempt is made or
//! recorded and their retry schedules do not advance, so they lose nothing
//! by waiting; the probe's success releases them all at once. The last
//! attempt of a delivery is always made for real, so nothing is
//! dead-lettered without a try.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use ipn_core::id::EndpointId;

use crate::clock::Millis;

#[derive(Debug)]
pub struct Breakers {
    threshold: u32,
    cooldown_ms: Millis,
    states: Mutex<HashMap<EndpointId, State>>,
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Millis,
    probing: bool,
}

/// When an open breaker lets a probe through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeAt {
    At(Millis),
    /// A probe is under way.
    Probing,
}

/// Whether to make an attempt now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Closed: go ahead.
    Go,
    /// Half-open: this attempt is the one probe.
    Probe,
    /// Open until `until`, or `probing` already: do not contact the endpoint.
    Skip { until: Millis, probing: bool },
}

impl Breakers {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown_ms: Millis::try_from(cooldown.as_millis()).unwrap_or(Millis::MAX),
            states: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<EndpointId, State>> {
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn check(&self, endpoint: EndpointId, now: Millis) -> Verdict {
        let mut states = self.lock();
        let Some(state) = states.get_mut(&endpoint) else {
            return Verdict::Go;
        };
        if state.failures < self.threshold {
            return Verdict::Go;
        }
        if now < state.open_until || state.probing {
            return Verdict::Skip {
                until: state.open_until,
                probing: state.probing,
            };
        }
        state.probing = true;
        Verdict::Probe
    }

    /// Records a real attempt's result.
    pub fn record(&self, endpoint: EndpointId, succeeded: bool, now: Millis) {
        let mut states = self.lock();
        if succeeded {
            states.remove(&endpoint);
            return;
        }
        let state = states.entry(endpoint).or_default();
        state.failures = state.failures.saturating_add(1);
        state.probing = false;
        if state.failures >= self.threshold {
            state.open_until = now.saturating_add(self.cooldown_ms);
        }
    }

    /// When the open breaker lets its next probe through; `None` if closed.
    pub fn probe_at(&self, endpoint: EndpointId) -> Option<ProbeAt> {
        self.lock()
            .get(&endpoint)
            .filter(|s| s.failures >= self.threshold)
            .map(|s| {
                if s.probing {
                    ProbeAt::Probing
                } else {
                    ProbeAt::At(s.open_until)
                }
            })
    }

    /// Whether the endpoint's breaker is open (for health views).
    pub fn is_open(&self, endpoint: EndpointId, now: Millis) -> bool {
        self.lock()
            .get(&endpoint)
            .is_some_and(|s| s.failures >= self.threshold && (now < s.open_until || s.probing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    #[test]
    fn opens_after_the_threshold_then_probes_once_after_the_cooldown() {
        let breakers = Breakers::new(3, Duration::from_secs(30));
        let ep = EndpointId::generate(OffsetDateTime::UNIX_EPOCH);
        for _ in 0..2 {
            breakers.record(ep, false, 0);
            assert_eq!(breakers.check(ep, 0), Verdict::Go);
        }
        breakers.record(ep, false, 1_000);
        assert_eq!(
            breakers.check(ep, 2_000),
            Verdict::Skip {
                until: 31_000,
                probing: false
            }
        );
        assert_eq!(breakers.check(ep, 31_000), Verdict::Probe);
        assert!(
            matches!(
                breakers.check(ep, 31_001),
                Verdict::Skip { probing: true, .. }
            ),
            "one probe at a time"
        );
        breakers.record(ep, false, 31_500);
        assert!(matches!(
            breakers.check(ep, 40_000),
            Verdict::Skip { until: 61_500, .. }
        ));
        assert_eq!(breakers.check(ep, 61_500), Verdict::Probe);
        breakers.record(ep, true, 61_600);
        assert_eq!(breakers.check(ep, 61_601), Verdict::Go);
        assert!(!breakers.is_open(ep, 61_601));
    }
}
