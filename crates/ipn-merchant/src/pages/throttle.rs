//! Wrong admin passwords, counted per client address: after
//! [`LIMIT`] within [`WINDOW`], that address gets `429 Too Many Requests`
//! for the rest of the window, whatever it sends, so a password cannot be
//! guessed at the speed of the network. A right password clears the count.
//!
//! The address is the TCP peer's. Behind a reverse proxy every client has
//! the proxy's address and they share one count: a flood of wrong
//! passwords then locks the operator out for a minute too, which is the
//! price of not trusting a forwarded header anyone can set.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::html;

/// Wrong passwords an address may send within [`WINDOW`].
pub const LIMIT: u32 = 10;
/// How long wrong passwords are remembered, counted from the first.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered before forgotten windows are swept.
const SWEEP_AT: usize = 4096;

#[derive(Debug, Default)]
pub struct Throttle {
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

impl Throttle {
    /// How long `ip` must wait, if it is locked out at `now`.
    pub fn locked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let entry = failures.get(&ip)?;
        let elapsed = now.saturating_duration_since(entry.since);
        (entry.count >= LIMIT && elapsed < WINDOW).then(|| WINDOW - elapsed)
    }

    /// Counts a wrong password from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= SWEEP_AT {
            failures.retain(|_, f| now.saturating_duration_since(f.since) < WINDOW);
        }
        let entry = failures.entry(ip).or_insert(Failures {
            count: 0,
            since: now,
        });
        if now.saturating_duration_since(entry.since) >= WINDOW {
            *entry = Failures {
                count: 0,
                since: now,
            };
        }
        entry.count += 1;
    }

    /// A right password from `ip`: its count starts again.
    pub fn succeeded(&self, ip: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(&ip);
    }
}

/// What the admin routes' layer needs.
#[derive(Debug, Clone)]
pub struct Guard {
    pub throttle: Arc<Throttle>,
    pub shop_name: String,
}

/// The layer on `/admin…`: refuses a locked-out address before anything
/// else, and counts the answers that refused a password given.
pub async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
    if let Some(wait) = guard.throttle.locked(ip, Instant::now()) {
        let mut response = html::message(
            &guard.shop_name,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong passwords",
            "Too many wrong admin passwords came from your address. Wait a minute, then try again.",
        );
        // At least one second: `0` would invite an immediate retry.
        let seconds = wait.as_secs().max(1);
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let tried = request.headers().contains_key(header::AUTHORIZATION);
    let response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        if tried {
            guard.throttle.failed(ip, Instant::now());
        }
    } else if tried && response.status() != StatusCode::NOT_FOUND {
        guard.throttle.succeeded(ip);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_locked_out_after_the_limit_for_the_rest_of_the_window() {
        let throttle = Throttle::default();
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let other: IpAddr = "127.0.0.3".parse().unwrap();
        let start = Instant::now();
        for n in 0..LIMIT {
            assert_eq!(throttle.locked(ip, start), None, "after {n}");
            throttle.failed(ip, start);
        }
        let wait = throttle
            .locked(ip, start + Duration::from_secs(20))
            .unwrap();
        assert_eq!(wait, Duration::from_secs(40));
        assert_eq!(throttle.locked(other, start), None, "per address");
        assert_eq!(throttle.locked(ip, start + WINDOW), None, "the window ends");
        // A new failure after the window starts a new count.
        throttle.failed(ip, start + WINDOW);
        assert_eq!(throttle.locked(ip, start + WINDOW), None);
    }

    #[test]
    fn a_right_password_clears_the_count() {
        let throttle = Throttle::default();
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let now = Instant::now();
        for _ in 0..LIMIT - 1 {
            throttle.failed(ip, now);
        }
        throttle.succeeded(ip);
        throttle.failed(ip, now);
        assert_eq!(throttle.locked(ip, now), None);
    }
}
