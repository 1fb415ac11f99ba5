//! Test support for `ipn`'s integration tests.
//!
//! [`Receiver`] is a real HTTP server on `127.0.0.1:0` that records every
//! request it gets and answers as the test tells it: `200` by default, or a
//! scripted sequence of replies (fail twice, then succeed; answer slowly), so a
//! test can make an endpoint start failing in the middle of a run.
//! [`ResettingServer`] accepts connections and resets them mid-request.
//! [`maildev::MailDev`] runs a MailDev SMTP server; [`webdriver::Browser`]
//! drives a headless Chromium through `chromedriver`; [`slow`] has clients
//! that send requests slowly or not at all, for the servers' timeouts;
//! [`hostile`] holds the material of the hostile-corpus tests: injections,
//! malformed bodies and ids, and the firing and checking of a corpus.

pub mod hostile;
pub mod maildev;
pub mod slow;
pub mod webdriver;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// Path and query, e.g. `/hooks?x=1`.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub received_at: Instant,
}

impl Recorded {
    /// A header's value as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    delay: Duration,
}

impl Reply {
    /// Answers `status` with a short body.
    pub fn status(status: u16) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::from(status.canonical_reason().unwrap_or("").to_owned()),
            delay: Duration::ZERO,
        }
    }

    pub fn ok() -> Self {
        Self::status(200)
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Adds a header; an invalid name or value is a bug in the test, so it panics.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::try_from(name).expect("valid header name in test");
        let value = HeaderValue::try_from(value).expect("valid header value in test");
        self.headers.push((name, value));
        self
    }

    /// Waits this long before answering (use a long delay for a hanging endpoint).
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Debug)]
struct Script {
    next: VecDeque<Reply>,
    default: Reply,
}

#[derive(Debug)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<Script>,
    arrived: Notify,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock has failed already; keep
    // serving so other tasks see the data rather than a second panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A recording HTTP server for tests. It stops when dropped.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver on a free loopback port that answers `200 OK`.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(Script {
                next: VecDeque::new(),
                default: Reply::ok(),
            }),
            arrived: Notify::new(),
        });
        let app = Router::new()
            .fallback(record)
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            // Serving ends only when the task is aborted on drop.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL of `path` on this receiver (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Answers every request from now on with `reply` (after any queued ones).
    pub fn respond_with(&self, reply: Reply) {
        lock(&self.shared.script).default = reply;
    }

    /// Answers the next requests with these replies, in order, then falls back
    /// to the default.
    pub fn respond_next(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.shared.script).next.extend(replies);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// Waits until at least `count` requests have arrived, or `timeout` passes;
    /// returns what arrived either way, so the test's assertion says what is missing.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.requests();
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    lock(&shared.requests).push(Recorded {
        method: parts.method,
        path,
        headers: parts.headers,
        body,
        received_at: Instant::now(),
    });
    shared.arrived.notify_waiters();

    let reply = {
        let mut script = lock(&shared.script);
        script
            .next
            .pop_front()
            .unwrap_or_else(|| script.default.clone())
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = reply.status;
    response.headers_mut().extend(reply.headers);
    response
}

/// A server that accepts each connection, reads the start of the request,
/// and resets the connection (TCP RST) instead of answering. It stops when
/// dropped.
#[derive(Debug)]
pub struct ResettingServer {
    addr: SocketAddr,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    server: JoinHandle<()>,
}

impl ResettingServer {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = [0u8; 64];
                    let _ = stream.readable().await;
                    let _ = stream.try_read(&mut buffer);
                    // Linger 0 makes the close a reset rather than a FIN.
                    let _ = stream.set_zero_linger();
                    drop(stream);
                });
            }
        });
        Ok(Self {
            addr,
            accepted,
            server,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Connections accepted (and reset) so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for ResettingServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A client whose requests come from `ip`, one of the loopback addresses
/// (`127.0.0.2` …), so a test can be several clients to a server that
/// counts per address; it follows no redirects.
pub fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().expect("an IP address"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}
