//! What a connection is doing, as its watchdog needs to know: the
//! connection's parts (the socket, the service, the bodies) report to it,
//! and the watchdog reads it after every step.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::Limits;

/// What a connection is doing, as its watchdog needs to know.
///
/// Written and read only from the connection's task; atomics (relaxed)
/// because hyper wants its service `Send`, not because of contention.
#[derive(Debug)]
pub(super) struct Activity {
    opened: Instant,
    /// [`BUSY`] while a request is in flight; else when the current wait
    /// began, in milliseconds after `opened`, with [`HEAD`] set once bytes
    /// of the next request have arrived.
    state: AtomicU64,
    body_timed_out: AtomicBool,
}

const BUSY: u64 = u64::MAX;
const HEAD: u64 = 1 << 62;

/// What a connection was waiting for when its time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// The rest of a request head.
    Head,
    /// The first byte of the next request.
    Idle,
}

impl Activity {
    /// A new connection, whose first request's head is due from now.
    pub(super) fn new() -> Self {
        Self {
            opened: Instant::now(),
            state: AtomicU64::new(HEAD),
            body_timed_out: AtomicBool::new(false),
        }
    }

    pub(super) fn millis(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(HEAD - 1) & (HEAD - 1)
    }

    /// Bytes came in: if the connection was idle, a request head began.
    pub(super) fn bytes_read(&self) {
        let state = self.state.load(Ordering::Relaxed);
        if state != BUSY && state & HEAD == 0 {
            self.state.store(HEAD | self.millis(), Ordering::Relaxed);
        }
    }

    /// A head is complete and the request is being answered: no clock runs
    /// but the body's own.
    pub(super) fn request_started(&self) {
        self.state.store(BUSY, Ordering::Relaxed);
    }

    /// The response is written: the connection waits for another request.
    pub(super) fn request_ended(&self) {
        self.state.store(self.millis(), Ordering::Relaxed);
    }

    /// An idle connection is being closed: it gets as long as a head would.
    pub(super) fn closing(&self) {
        self.state.store(HEAD | self.millis(), Ordering::Relaxed);
    }

    pub(super) fn body_timed_out(&self) {
        self.body_timed_out.store(true, Ordering::Relaxed);
    }

    pub(super) fn take_body_timeout(&self) -> bool {
        self.body_timed_out.swap(false, Ordering::Relaxed)
    }

    /// When the current wait runs out, and what it waits for; `None` while
    /// a request is in flight.
    pub(super) fn deadline(&self, limits: &Limits) -> Option<(Instant, Wait)> {
        let state = self.state.load(Ordering::Relaxed);
        if state == BUSY {
            return None;
        }
        let since = self.opened + Duration::from_millis(state & (HEAD - 1));
        Some(if state & HEAD != 0 {
            (since + limits.header_read, Wait::Head)
        } else {
            (since + limits.idle, Wait::Idle)
        })
    }
}
