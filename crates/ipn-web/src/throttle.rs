//! Counting per client in fixed windows: wrong keys and passwords (after
//! `limit` within `window`, the client is refused for the rest of the
//! window) and requests that cost something (orders).
//!
//! The client is the TCP peer's address ([`client`]). Behind a reverse
//! proxy every client has the proxy's address and they share one count:
//! the price of not trusting a forwarded header anyone can set.
//!
//! **Why slots.** The gateway asks [`Throttle::locked`] on every API
//! request, 20,000 a second and more, before it checks the key. Taking a
//! mutex on a shared map each time would serialize them. So a small array
//! of atomics, indexed by a hash of the client, holds until when some
//! client of that slot is locked out; a request whose slot holds no
//! lockout (the usual case: nobody is being refused, or only clients in
//! other slots are) reads one atomic and takes no lock. Only a request
//! that shares a slot with a locked-out client looks at the map.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

/// Slots of the lock-free check.
const SLOTS: usize = 256;
/// Clients remembered before windows that ended are first swept; after a
/// sweep, the next comes when the map has doubled, so a crowd of clients
/// still inside their windows costs one sweep per doubling, not one per
/// count.
const SWEEP_AT: usize = 4096;
/// The most clients remembered: past it a new client is not counted until
/// a sweep makes room (memory stays bounded whatever the number of
/// addresses; the keys and passwords themselves are what stops guessing).
const MAX_CLIENTS: usize = 262_144;

/// Counts per client `K` in fixed windows of `window`, `limit` at most.
#[derive(Debug)]
pub struct Throttle<K> {
    limit: u32,
    window: Duration,
    /// What the slots' times count from.
    base: Instant,
    counts: Mutex<Counts<K>>,
    /// Per slot: milliseconds after `base` until which a client hashed
    /// there may be locked out (0: none).
    locked_until: Box<[AtomicU64]>,
    hasher: RandomState,
}

/// The clients remembered, and when to sweep them next.
#[derive(Debug)]
struct Counts<K> {
    map: HashMap<K, Count>,
    sweep_at: usize,
}

impl<K> Default for Counts<K> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            sweep_at: SWEEP_AT,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Count {
    count: u32,
    since: Instant,
}

impl<K: Hash + Eq> Throttle<K> {
    /// At most `limit` counted within `window` of the first.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            base: Instant::now(),
            counts: Mutex::default(),
            locked_until: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            hasher: RandomState::new(),
        }
    }

    /// The most counted per window.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// How long `key` must wait, if it has reached the limit at `now`.
    pub fn locked(&self, key: &K, now: Instant) -> Option<Duration> {
        if self.millis(now) >= self.slot(key).load(Ordering::Relaxed) {
            return None;
        }
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let entry = counts.map.get(key)?;
        let elapsed = now.saturating_duration_since(entry.since);
        (entry.count >= self.limit && elapsed < self.window).then(|| self.window - elapsed)
    }

    /// Counts one for `key` at `now`.
    pub fn count(&self, key: K, now: Instant) {
        let slot = self.slot(&key);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.map.len() >= counts.sweep_at {
            counts
                .map
                .retain(|_, c| now.saturating_duration_since(c.since) < self.window);
            counts.sweep_at = (counts.map.len() * 2).clamp(SWEEP_AT, MAX_CLIENTS);
        }
        if counts.map.len() >= MAX_CLIENTS && !counts.map.contains_key(&key) {
            return;
        }
        let entry = counts.map.entry(key).or_insert(Count {
            count: 0,
            since: now,
        });
        if now.saturating_duration_since(entry.since) >= self.window {
            *entry = Count {
                count: 0,
                since: now,
            };
        }
        entry.count = entry.count.saturating_add(1);
        if entry.count >= self.limit {
            slot.fetch_max(self.millis(entry.since + self.window), Ordering::Relaxed);
        }
    }

    /// Counts one for `key` unless it is locked out; `Err` says how long
    /// to wait. For what is limited whether it succeeds or not.
    pub fn take(&self, key: K, now: Instant) -> Result<(), Duration> {
        if let Some(wait) = self.locked(&key, now) {
            return Err(wait);
        }
        self.count(key, now);
        Ok(())
    }

    /// `key`'s count starts again (a right password).
    pub fn clear(&self, key: &K) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.map.remove(key);
    }

    fn slot(&self, key: &K) -> &AtomicU64 {
        let index = usize::try_from(self.hasher.hash_one(key) % SLOTS as u64).unwrap_or(0);
        &self.locked_until[index]
    }

    /// `now` as milliseconds after `base`, at least 1 so that 0 means
    /// "never locked".
    fn millis(&self, now: Instant) -> u64 {
        let ms = now.saturating_duration_since(self.base).as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX).max(1)
    }
}

/// The client a peer address counts as: its IP, an IPv4-mapped IPv6
/// address as the IPv4 one, and other IPv6 addresses by their /64, since
/// one host commonly holds a whole /64.
pub fn client(peer: SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(Ipv6Addr::from(segments))
            }
        },
    }
}

/// The client a request counts as, as an extractor that never refuses:
/// `None` when the server was started without `ConnectInfo` (both
/// services always are; a router served without it counts nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| client(info.0)),
        ))
    }
}

/// `Retry-After` in whole seconds, at least 1: `0` would invite an
/// immediate retry.
pub fn retry_after(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crowd_inside_its_windows_is_swept_once_per_doubling_and_bounded() {
        let throttle = Throttle::new(3, Duration::from_secs(60));
        let now = Instant::now();
        for n in 0..(SWEEP_AT as u32 * 3) {
            throttle.count(n, now);
        }
        let counts = throttle.counts.lock().unwrap();
        // Nothing could be swept (every window still runs), so the next
        // sweep waits for the map to double instead of running every time.
        assert_eq!(counts.map.len(), SWEEP_AT * 3);
        assert_eq!(counts.sweep_at, SWEEP_AT * 4);
        drop(counts);
        // Windows that ended are swept at the next sweep.
        let later = now + Duration::from_secs(61);
        for n in 0..(SWEEP_AT as u32 + 1) {
            throttle.count(1_000_000 + n, later);
        }
        let counts = throttle.counts.lock().unwrap();
        assert_eq!(
            counts.map.len(),
            SWEEP_AT + 1,
            "only the new window's clients"
        );
        assert!(counts.map.keys().all(|k| *k >= 1_000_000));
        drop(counts);
        // Past the bound, new clients are not remembered; known ones still count.
        let full = Throttle::new(1, Duration::from_secs(60));
        for n in 0..(MAX_CLIENTS as u32) {
            full.count(n, now);
        }
        full.count(u32::MAX, now);
        assert_eq!(full.counts.lock().unwrap().map.len(), MAX_CLIENTS);
        assert!(full.locked(&0, now).is_some());
    }

    const LIMIT: u32 = 10;
    const WINDOW: Duration = Duration::from_secs(60);

    #[test]
    fn a_client_is_locked_out_after_the_limit_for_the_rest_of_the_window() {
        let throttle = Throttle::new(LIMIT, WINDOW);
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let other: IpAddr = "127.0.0.3".parse().unwrap();
        let start = Instant::now();
        for n in 0..LIMIT {
            assert_eq!(throttle.locked(&ip, start), None, "after {n}");
            throttle.count(ip, start);
        }
        let wait = throttle
            .locked(&ip, start + Duration::from_secs(20))
            .unwrap();
        assert_eq!(wait, Duration::from_secs(40));
        assert_eq!(throttle.locked(&other, start), None, "per client");
        assert_eq!(
            throttle.locked(&ip, start + WINDOW),
            None,
            "the window ends"
        );
        // A new count after the window starts again.
        throttle.count(ip, start + WINDOW);
        assert_eq!(throttle.locked(&ip, start + WINDOW), None);
    }

    #[test]
    fn clearing_starts_the_count_again() {
        let throttle = Throttle::new(LIMIT, WINDOW);
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let now = Instant::now();
        for _ in 0..LIMIT - 1 {
            throttle.count(ip, now);
        }
        throttle.clear(&ip);
        throttle.count(ip, now);
        assert_eq!(throttle.locked(&ip, now), None);
    }

    #[test]
    fn take_admits_up_to_the_limit_then_says_how_long_to_wait() {
        let throttle = Throttle::new(3, WINDOW);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(throttle.take("a", now), Ok(()));
        }
        assert_eq!(throttle.take("a", now), Err(WINDOW));
        assert_eq!(throttle.take("b", now), Ok(()));
        assert_eq!(throttle.take("a", now + WINDOW), Ok(()));
    }

    #[test]
    fn clients_are_addresses_and_ipv6_hosts_their_64() {
        let peer = |text: &str| client(text.parse().unwrap());
        assert_eq!(
            peer("192.0.2.1:5000"),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            peer("[::ffff:192.0.2.1]:5000"),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            peer("[2001:db8:1:2:3:4:5:6]:1"),
            peer("[2001:db8:1:2:ff::1]:2")
        );
        assert_ne!(peer("[2001:db8:1:2::1]:1"), peer("[2001:db8:1:3::1]:1"));
        assert_eq!(retry_after(Duration::from_millis(200)), 1);
        assert_eq!(retry_after(Duration::from_millis(40_200)), 41);
    }
}
