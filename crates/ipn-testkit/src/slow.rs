//! Clients that are slow on purpose, to check that a server times them out:
//! raw TCP, since an HTTP client would never send half a request.
//!
//! Each sends what it is given, trickles the rest a byte at a time, and
//! reads until the server closes the connection or `bound` passes. A
//! [`Crowd`] runs many at once; [`assert_timed_out`] checks what each saw.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What one slow client saw.
#[derive(Clone)]
pub struct Outcome {
    /// Since the connection was made, when the server closed it; `None`:
    /// still open when the client gave up.
    pub closed_after: Option<Duration>,
    /// Since the connection was made, when the server's first byte came.
    pub answered_after: Option<Duration>,
    /// Everything the server sent.
    pub received: Vec<u8>,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = String::from_utf8_lossy(&self.received);
        let shown: String = text.chars().take(300).collect();
        f.debug_struct("Outcome")
            .field("closed_after", &self.closed_after)
            .field("answered_after", &self.answered_after)
            .field("received", &shown)
            .finish()
    }
}

impl Outcome {
    /// The status line of what the server sent, if any.
    pub fn status_line(&self) -> Option<&str> {
        let text = std::str::from_utf8(&self.received).ok()?;
        text.lines().next()
    }
}

/// One slow client: connects to `addr`, sends `at_once`, then the bytes of
/// `trickle` one every `every`, and stops sending after them without
/// closing. `connected` is called once the connection is made and `at_once`
/// is sent.
pub async fn slow_client(
    addr: SocketAddr,
    at_once: &[u8],
    trickle: &[u8],
    every: Duration,
    bound: Duration,
    connected: impl FnOnce(),
) -> Outcome {
    let mut stream = tokio::time::timeout(bound, TcpStream::connect(addr))
        .await
        .expect("connected in time")
        .expect("connecting");
    let start = Instant::now();
    let mut outcome = Outcome {
        closed_after: None,
        answered_after: None,
        received: Vec::new(),
    };
    let closed = stream.write_all(at_once).await.is_err();
    connected();
    if closed {
        outcome.closed_after = Some(start.elapsed());
        return outcome;
    }
    let mut next = 0;
    let mut tick = tokio::time::interval_at(start + every, every);
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(start + bound) => return outcome,
            _ = tick.tick(), if next < trickle.len() => {
                // A write that fails found the connection closed; the read
                // below says when.
                if stream.write_all(&trickle[next..=next]).await.is_err() {
                    next = trickle.len();
                } else {
                    next += 1;
                }
            }
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    outcome.closed_after = Some(start.elapsed());
                    return outcome;
                }
                Ok(n) => {
                    outcome.answered_after.get_or_insert_with(|| start.elapsed());
                    outcome.received.extend_from_slice(&buf[..n]);
                }
            },
        }
    }
}

/// A request head that never ends, to trickle: `GET path`, then a header
/// whose value goes on; `len` bytes in all.
pub fn endless_head(path: &str, len: usize) -> Vec<u8> {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").into_bytes();
    head.resize(len.max(head.len()), b'a');
    head
}

/// What a slow client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slow {
    /// Sends a request head a byte at a time and never finishes it.
    Head,
    /// Sends a whole head, then a body a byte at a time, never finished.
    Body,
    /// Sends one request, reads the answer, and stays silent.
    Idle,
}

/// Many slow clients at once, against one server.
#[derive(Debug)]
pub struct Crowd {
    addr: SocketAddr,
    every: Duration,
    bound: Duration,
    clients: JoinSet<(Slow, Outcome)>,
    ready: Arc<Semaphore>,
    started: u32,
}

impl Crowd {
    /// Clients of `addr` that send a byte every `every` and give up waiting
    /// for the server to close after `bound`.
    pub fn new(addr: SocketAddr, every: Duration, bound: Duration) -> Self {
        Self {
            addr,
            every,
            bound,
            clients: JoinSet::new(),
            ready: Arc::new(Semaphore::new(0)),
            started: 0,
        }
    }

    /// `count` clients doing `slow` to `path` (a `Body` one POSTs a form).
    pub fn add(&mut self, slow: Slow, count: usize, path: &str) {
        let (at_once, trickle) = match slow {
            Slow::Head => (Vec::new(), endless_head(path, 1000)),
            Slow::Body => (
                format!(
                    "POST {path} HTTP/1.1\r\nHost: localhost\r\n\
                     Content-Type: application/x-www-form-urlencoded\r\n\
                     Content-Length: 1000\r\n\r\n"
                )
                .into_bytes(),
                vec![b'a'; 999],
            ),
            Slow::Idle => (
                format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes(),
                Vec::new(),
            ),
        };
        for _ in 0..count {
            let ready = Arc::clone(&self.ready);
            let (addr, every, bound) = (self.addr, self.every, self.bound);
            let (at_once, trickle) = (at_once.clone(), trickle.clone());
            self.clients.spawn(async move {
                let outcome = slow_client(addr, &at_once, &trickle, every, bound, || {
                    ready.add_permits(1)
                })
                .await;
                (slow, outcome)
            });
        }
        self.started += u32::try_from(count).expect("a countable crowd");
    }

    /// Returns once every client has connected and sent its first bytes.
    pub async fn connected(&self) {
        let all = tokio::time::timeout(self.bound, self.ready.acquire_many(self.started))
            .await
            .expect("every slow client connected in time");
        let _ = all.expect("the crowd's semaphore is never closed");
    }

    /// What each client saw, once all have been closed or given up.
    pub async fn outcomes(mut self) -> Vec<(Slow, Outcome)> {
        let mut outcomes = Vec::with_capacity(self.started as usize);
        while let Some(joined) = self.clients.join_next().await {
            outcomes.push(joined.expect("a slow client panicked"));
        }
        outcomes
    }
}

/// Panics unless the server closed a `slow` client for its timeout: on
/// time (not before half of `timeout`: the client's clock starts a little
/// after the server's), the idle one after its answer, the slow body with
/// a 408 that says why.
pub fn assert_timed_out(slow: Slow, outcome: &Outcome, timeout: Duration) {
    let closed = outcome
        .closed_after
        .unwrap_or_else(|| panic!("a slow client ({slow:?}) was never closed: {outcome:?}"));
    let early = timeout / 2;
    match slow {
        Slow::Head => {
            assert!(outcome.received.is_empty(), "{slow:?}: {outcome:?}");
            assert!(closed >= early, "{slow:?} closed early: {closed:?}");
        }
        Slow::Body => {
            assert_eq!(
                outcome.status_line(),
                Some("HTTP/1.1 408 Request Timeout"),
                "{outcome:?}"
            );
            let text = String::from_utf8_lossy(&outcome.received);
            assert!(text.contains(r#""code":"request_timeout""#), "{text}");
            assert!(closed >= early, "{slow:?} closed early: {closed:?}");
        }
        Slow::Idle => {
            assert_eq!(
                outcome.status_line(),
                Some("HTTP/1.1 200 OK"),
                "{outcome:?}"
            );
            let answered = outcome.answered_after.expect("answered");
            assert!(
                closed >= answered + early,
                "an idle connection closed {:?} after its answer",
                closed - answered
            );
        }
    }
}
