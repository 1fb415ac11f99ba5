//! The receiver deliveries go to: HTTP/1.1 with keep-alive on loopback only,
//! 200 with an empty body to every request, and a note of when each
//! `webhook-id` first arrived. It does no more than that, so that the
//! figures measure the gateway, not the receiver.
//!
//! Two variations, for the scenarios that need them: it can answer another
//! status (a merchant server that is down: nothing is noted then), and it can
//! listen on several ports and tell endpoints apart by the request path, so
//! that each of many endpoints gets its own connection pool in the gateway,
//! as endpoints on different servers would.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// What tells two arrivals apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// The `webhook-id`: one endpoint, each event once.
    Id,
    /// Path and `webhook-id`: one event arrives once at each endpoint's path.
    PathAndId,
}

/// A running receiver; dropping it stops it and closes its connections.
#[derive(Debug)]
pub struct Receiver {
    addrs: Vec<SocketAddr>,
    book: Arc<Book>,
    servers: Vec<JoinHandle<()>>,
}

/// What arrived. One mutex is enough: it is held for one map insert.
#[derive(Debug)]
struct Book {
    key: Key,
    /// The status every request gets; only a 200 notes an arrival.
    status: AtomicU16,
    arrivals: Mutex<Arrivals>,
    /// Distinct ids, so that waiting needs no lock.
    unique: AtomicU64,
    /// Requests whose id had arrived before.
    duplicates: AtomicU64,
    /// Requests without a `webhook-id`.
    unnamed: AtomicU64,
    /// Requests answered with another status than 200.
    refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Arrivals {
    first: HashMap<Box<str>, Instant>,
    /// The earliest and the latest first arrival.
    span: Option<(Instant, Instant)>,
}

impl Book {
    fn new(key: Key) -> Self {
        Self {
            key,
            status: AtomicU16::new(StatusCode::OK.as_u16()),
            arrivals: Mutex::default(),
            unique: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            unnamed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    fn arrivals(&self) -> MutexGuard<'_, Arrivals> {
        self.arrivals.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn note(&self, id: Option<Box<str>>, at: Instant) {
        let Some(id) = id else {
            self.unnamed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut arrivals = self.arrivals();
        match arrivals.first.entry(id) {
            Entry::Occupied(_) => {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            Entry::Vacant(slot) => {
                slot.insert(at);
                self.unique.fetch_add(1, Ordering::Relaxed);
                arrivals.span = Some(match arrivals.span {
                    Some((first, last)) => (first.min(at), last.max(at)),
                    None => (at, at),
                });
            }
        }
    }

    /// The key an arrival is noted under, `None` without a `webhook-id`.
    fn key_of(&self, request: &Request<Incoming>) -> Option<Box<str>> {
        let id = request
            .headers()
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())?;
        Some(match self.key {
            Key::Id => Box::from(id),
            Key::PathAndId => format!("{} {id}", request.uri().path()).into_boxed_str(),
        })
    }
}

impl Receiver {
    /// Starts on 127.0.0.1 and a free port.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_on(1, Key::Id).await
    }

    /// Starts on `ports` free ports of 127.0.0.1, all noting in one book.
    pub async fn start_on(ports: usize, key: Key) -> anyhow::Result<Self> {
        let book = Arc::new(Book::new(key));
        let mut addrs = Vec::with_capacity(ports);
        let mut servers = Vec::with_capacity(ports);
        for _ in 0..ports.max(1) {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .context("starting the bench receiver on 127.0.0.1")?;
            addrs.push(listener.local_addr()?);
            servers.push(tokio::spawn(serve(listener, Arc::clone(&book))));
        }
        Ok(Self {
            addrs,
            book,
            servers,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every port it listens on, in the order they were opened.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// From now on, every request gets `status`; only 200 notes arrivals.
    pub fn answer_with(&self, status: StatusCode) {
        self.book.status.store(status.as_u16(), Ordering::Relaxed);
    }

    /// Distinct ids received since the last [`Receiver::forget`].
    pub fn received(&self) -> u64 {
        self.book.unique.load(Ordering::Relaxed)
    }

    /// Requests that repeated an id already received.
    pub fn duplicates(&self) -> u64 {
        self.book.duplicates.load(Ordering::Relaxed)
    }

    /// Requests that carried no `webhook-id`.
    pub fn unnamed(&self) -> u64 {
        self.book.unnamed.load(Ordering::Relaxed)
    }

    /// Requests answered with another status than 200.
    pub fn refused(&self) -> u64 {
        self.book.refused.load(Ordering::Relaxed)
    }

    /// When the earliest and the latest of the distinct ids arrived.
    pub fn span(&self) -> Option<(Instant, Instant)> {
        self.book.arrivals().span
    }

    /// Drops everything noted so far (the baseline's requests).
    pub fn forget(&self) {
        let mut arrivals = self.book.arrivals();
        arrivals.first.clear();
        arrivals.first.shrink_to_fit();
        arrivals.span = None;
        self.book.unique.store(0, Ordering::Relaxed);
        self.book.duplicates.store(0, Ordering::Relaxed);
        self.book.unnamed.store(0, Ordering::Relaxed);
        self.book.refused.store(0, Ordering::Relaxed);
    }

    /// Removes from `pending` the ids that have arrived.
    pub fn strike_arrived(&self, pending: &mut Vec<Box<str>>) {
        let arrivals = self.book.arrivals();
        pending.retain(|id| !arrivals.first.contains_key(id));
    }

    /// When each id first arrived, in order; `None` for those that did not.
    pub fn arrivals<'a>(&self, ids: impl Iterator<Item = &'a str>) -> Vec<Option<Instant>> {
        let arrivals = self.book.arrivals();
        ids.map(|id| arrivals.first.get(id).copied()).collect()
    }

    /// Waits until every id in `pending` has arrived, or `timeout` passes.
    /// The count of distinct arrivals (`base` before these) gates the
    /// lookups, which take the lock that arrivals need too.
    pub async fn wait_for(&self, mut pending: Vec<Box<str>>, base: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let target = base + pending.len() as u64;
        loop {
            if self.received() >= target {
                self.strike_arrived(&mut pending);
                if pending.is_empty() {
                    return;
                }
            }
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until `count` distinct ids have arrived, or `timeout` passes.
    pub async fn wait_for_count(&self, count: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.received() < count && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Aborting an accept loop drops its JoinSet, which aborts every connection.
        for server in &self.servers {
            server.abort();
        }
    }
}

async fn serve(listener: TcpListener, book: Arc<Book>) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors, most likely: let some close.
                tracing::warn!(%error, "bench receiver: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let book = Arc::clone(&book);
        connections.spawn(async move {
            let service = service_fn(move |request| answer(request, Arc::clone(&book)));
            // A client closing its connection mid-request is not our concern.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn answer(
    request: Request<Incoming>,
    book: Arc<Book>,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    let key = book.key_of(&request);
    // The receiver has the message once the whole body is in, and reading it
    // all keeps the connection reusable.
    let _ = request.into_body().collect().await;
    let status = StatusCode::from_u16(book.status.load(Ordering::Relaxed)).unwrap_or_default();
    if status != StatusCode::OK {
        book.refused.fetch_add(1, Ordering::Relaxed);
        let mut response = Response::new(Empty::new());
        *response.status_mut() = status;
        return Ok(response);
    }
    book.note(key, Instant::now());
    Ok(Response::new(Empty::new()))
}
