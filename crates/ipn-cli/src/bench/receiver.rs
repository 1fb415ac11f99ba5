//! The receiver deliveries go to: HTTP/1.1 with keep-alive on loopback only,
//! 200 with an empty body to every request, and a note of when each
//! `webhook-id` first arrived. It does no more than that, so that the
//! figures measure the gateway, not the receiver.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// A running receiver; dropping it stops it and closes its connections.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    book: Arc<Book>,
    server: JoinHandle<()>,
}

/// What arrived. One mutex is enough: it is held for one map insert.
#[derive(Debug, Default)]
struct Book {
    arrivals: Mutex<HashMap<Box<str>, Instant>>,
    /// Distinct ids, so that waiting needs no lock.
    unique: AtomicU64,
    /// Requests whose id had arrived before.
    duplicates: AtomicU64,
    /// Requests without a `webhook-id`.
    unnamed: AtomicU64,
}

impl Book {
    fn arrivals(&self) -> MutexGuard<'_, HashMap<Box<str>, Instant>> {
        self.arrivals.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn note(&self, id: Option<Box<str>>, at: Instant) {
        let Some(id) = id else {
            self.unnamed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut arrivals = self.arrivals();
        match arrivals.entry(id) {
            std::collections::hash_map::Entry::Occupied(_) => {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(at);
                self.unique.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Receiver {
    /// Starts on 127.0.0.1 and a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("starting the bench receiver on 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let book = Arc::new(Book::default());
        let server = tokio::spawn(serve(listener, Arc::clone(&book)));
        Ok(Self { addr, book, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
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

    /// Drops everything noted so far (the baseline's requests).
    pub fn forget(&self) {
        let mut arrivals = self.book.arrivals();
        arrivals.clear();
        arrivals.shrink_to_fit();
        self.book.unique.store(0, Ordering::Relaxed);
        self.book.duplicates.store(0, Ordering::Relaxed);
        self.book.unnamed.store(0, Ordering::Relaxed);
    }

    /// Removes from `pending` the ids that have arrived.
    pub fn strike_arrived(&self, pending: &mut Vec<Box<str>>) {
        let arrivals = self.book.arrivals();
        pending.retain(|id| !arrivals.contains_key(id));
    }

    /// When each id first arrived, in order; `None` for those that did not.
    pub fn arrivals<'a>(&self, ids: impl Iterator<Item = &'a str>) -> Vec<Option<Instant>> {
        let arrivals = self.book.arrivals();
        ids.map(|id| arrivals.get(id).copied()).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.server.abort();
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
    let id = request
        .headers()
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .map(Box::<str>::from);
    // The receiver has the message once the whole body is in, and reading it
    // all keeps the connection reusable.
    let _ = request.into_body().collect().await;
    book.note(id, Instant::now());
    Ok(Response::new(Empty::new()))
}
