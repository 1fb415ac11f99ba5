//! The load generator: keep-alive HTTP/1.1 connections, each with one request
//! in flight at a time, all taking request numbers from one [`Plan`].
//!
//! It is hyper's bare connection API rather than a pooled client: the one-hop
//! baseline is measured with this same code, and a lighter generator leaves
//! more of the machine to what is being measured.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;

/// Longest wait for one answer before the request counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The request to send as number `n`, and what to keep of its answer.
pub trait Work: Send + Sync + 'static {
    type Output: Send + 'static;

    fn request(&self, n: u64) -> anyhow::Result<Request<Full<Bytes>>>;

    /// What to keep of the answer, or why it is not the expected one.
    fn answer(&self, status: StatusCode, body: &[u8], at: Timing) -> anyhow::Result<Self::Output>;
}

/// When a request went out and when its answer was in.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub sent: Instant,
    pub answered: Instant,
}

/// Which request numbers to send, and when.
#[derive(Debug, Clone, Copy)]
pub enum Plan {
    /// Numbers `0..n`, each as soon as a connection is free.
    Count(u64),
    /// As many as answered within this time.
    For(Duration),
    /// `count` numbers at `rate` per second, whether or not answers keep up.
    Paced { rate: f64, count: u64 },
}

/// What a run did.
#[derive(Debug)]
pub struct Run<T> {
    /// What [`Work::answer`] kept, one per expected answer.
    pub outputs: Vec<T>,
    /// Requests that failed or got an unexpected answer.
    pub errors: u64,
    pub first_error: Option<String>,
    /// Just before the first request was sent (connections were open by then).
    pub started: Instant,
    /// When the last answer came.
    pub finished: Instant,
}

impl<T> Run<T> {
    pub fn answered(&self) -> u64 {
        self.outputs.len() as u64 + self.errors
    }
}

/// One keep-alive connection; it reconnects on the next request after a failure.
#[derive(Debug)]
pub struct Connection {
    addr: SocketAddr,
    sender: Option<http1::SendRequest<Full<Bytes>>>,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let mut connection = Self { addr, sender: None };
        connection.connected().await?;
        Ok(connection)
    }

    async fn connected(&mut self) -> anyhow::Result<&mut http1::SendRequest<Full<Bytes>>> {
        let sender = match self.sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => {
                let stream = TcpStream::connect(self.addr)
                    .await
                    .with_context(|| format!("connecting to {}", self.addr))?;
                stream.set_nodelay(true)?;
                let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
                // The connection is driven by its own task; it ends when the
                // sender is dropped or the peer closes.
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                sender
            }
        };
        Ok(self.sender.insert(sender))
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let result = match tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(request)).await {
            Ok(result) => result,
            Err(_) => Err(anyhow!("no answer within {REQUEST_TIMEOUT:?}")),
        };
        if result.is_err() {
            self.sender = None; // a fresh connection for the next request
        }
        result
    }

    async fn exchange(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let sender = self.connected().await?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// Where workers take their next request number from.
#[derive(Debug)]
enum Feed {
    Count { next: AtomicU64, total: u64 },
    Until { next: AtomicU64, deadline: Instant },
    Paced(Mutex<mpsc::Receiver<u64>>),
}

impl Feed {
    async fn next(&self) -> Option<u64> {
        match self {
            Self::Count { next, total } => {
                let n = next.fetch_add(1, Ordering::Relaxed);
                (n < *total).then_some(n)
            }
            Self::Until { next, deadline } => {
                (Instant::now() < *deadline).then(|| next.fetch_add(1, Ordering::Relaxed))
            }
            Self::Paced(numbers) => numbers.lock().await.recv().await,
        }
    }
}

/// Runs `plan` over `connections` connections to `addr`; `answered` counts
/// answers as they come, for a progress bar.
pub async fn run<W: Work>(
    addr: SocketAddr,
    connections: usize,
    plan: Plan,
    work: Arc<W>,
    answered: Arc<AtomicU64>,
) -> anyhow::Result<Run<W::Output>> {
    // Connect first: set-up is not part of what is measured.
    let mut open = Vec::with_capacity(connections);
    for _ in 0..connections {
        open.push(Connection::open(addr).await?);
    }
    let started = Instant::now();
    let feed = Arc::new(match plan {
        Plan::Count(total) => Feed::Count {
            next: AtomicU64::new(0),
            total,
        },
        Plan::For(length) => Feed::Until {
            next: AtomicU64::new(0),
            deadline: started + length,
        },
        Plan::Paced { rate, count } => {
            let (numbers, feed) = mpsc::channel(1024);
            tokio::spawn(pace(numbers, started, rate, count));
            Feed::Paced(Mutex::new(feed))
        }
    });
    let mut workers = JoinSet::new();
    for connection in open {
        workers.spawn(worker(
            connection,
            Arc::clone(&feed),
            Arc::clone(&work),
            Arc::clone(&answered),
        ));
    }
    let mut run = Run {
        outputs: Vec::new(),
        errors: 0,
        first_error: None,
        started,
        finished: started,
    };
    while let Some(part) = workers.join_next().await {
        let part = part.context("a load generator task failed")?;
        run.outputs.extend(part.outputs);
        run.errors += part.errors;
        if run.first_error.is_none() {
            run.first_error = part.first_error;
        }
        run.finished = run.finished.max(part.last_answer);
    }
    Ok(run)
}

/// Releases number `i` at `started + i / rate`: an open loop, so a slow
/// answer delays no later request (while connections are free).
async fn pace(numbers: mpsc::Sender<u64>, started: Instant, rate: f64, count: u64) {
    for n in 0..count {
        let due = started + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        if numbers.send(n).await.is_err() {
            return;
        }
    }
}

struct Part<T> {
    outputs: Vec<T>,
    errors: u64,
    first_error: Option<String>,
    last_answer: Instant,
}

async fn worker<W: Work>(
    mut connection: Connection,
    feed: Arc<Feed>,
    work: Arc<W>,
    answered: Arc<AtomicU64>,
) -> Part<W::Output> {
    let mut part = Part {
        outputs: Vec::new(),
        errors: 0,
        first_error: None,
        last_answer: Instant::now(),
    };
    while let Some(n) = feed.next().await {
        let sent = Instant::now();
        let result = match work.request(n) {
            Ok(request) => connection.send(request).await,
            Err(error) => Err(error),
        };
        let at = Timing {
            sent,
            answered: Instant::now(),
        };
        part.last_answer = at.answered;
        answered.fetch_add(1, Ordering::Relaxed);
        match result.and_then(|(status, body)| work.answer(status, &body, at)) {
            Ok(output) => part.outputs.push(output),
            Err(error) => {
                part.errors += 1;
                part.first_error.get_or_insert_with(|| format!("{error:#}"));
            }
        }
    }
    part
}
