//! The writer: one thread owns the database's write side and commits
//! whatever has queued up as ONE transaction (group commit).
//!
//! Why: a commit costs an fsync whether it holds one row or a thousand, so
//! under load many API calls and attempt results share each commit. A caller
//! waiting on [`Writer::write`] is answered only after its batch committed,
//! which is what lets the API promise durability before it answers.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::storage::{Store, WriteRequest, Written};

/// Most requests in one transaction; bounds the latency a batch adds.
const MAX_BATCH: usize = 2048;
/// Requests waiting for the writer before senders wait too (backpressure).
const QUEUE: usize = 16 * 1024;
/// A batch at least this large means the gateway is busy: the next batch
/// waits [`LINGER`] for more requests before committing. A commit's fixed
/// cost (WAL frames, fsync) is then shared by several times more requests,
/// which on a saturated machine frees CPU for the API and the deliveries.
/// Below it (light load), commits never wait.
const BUSY_BATCH: usize = 8;
const LINGER: std::time::Duration = std::time::Duration::from_micros(100);
/// A batch this large commits without lingering.
const FULL_BATCH: usize = 256;

/// Why a write did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("storage failed: {0}")]
    Store(String),
    #[error("the writer has stopped")]
    Closed,
}

struct Job {
    request: WriteRequest,
    reply: Option<oneshot::Sender<Result<Written, WriteError>>>,
}

/// A handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the writer thread. It stops once every handle is dropped and
    /// the queue is drained; join the returned handle to wait for that.
    pub fn start(store: Arc<dyn Store>) -> (Self, std::thread::JoinHandle<()>) {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("ipn-writer".into())
            .spawn(move || run(store, jobs))
            .expect("the OS can start a thread at start-up");
        (Self { queue }, thread)
    }

    /// Queues a write and waits until it is committed.
    pub async fn write(&self, request: WriteRequest) -> Result<Written, WriteError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            request,
            reply: Some(reply),
        };
        self.queue.send(job).await.map_err(|_| WriteError::Closed)?;
        answer.await.map_err(|_| WriteError::Closed)?
    }

    /// Queues a write without waiting for its commit (attempt results: the
    /// delivery engine moves on, and the schedule in memory already knows).
    pub async fn write_detached(&self, request: WriteRequest) -> Result<(), WriteError> {
        let job = Job {
            request,
            reply: None,
        };
        self.queue.send(job).await.map_err(|_| WriteError::Closed)
    }
}

fn run(store: Arc<dyn Store>, mut jobs: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut busy = false;
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        drain(&mut jobs, &mut batch);
        if busy && batch.len() < FULL_BATCH {
            std::thread::sleep(LINGER);
            drain(&mut jobs, &mut batch);
        }
        busy = batch.len() >= BUSY_BATCH;
        let (requests, replies): (Vec<_>, Vec<_>) =
            batch.drain(..).map(|job| (job.request, job.reply)).unzip();
        match store.apply(&requests) {
            Ok(results) => {
                for (result, reply) in results.into_iter().zip(replies) {
                    let result = result.map_err(|e| {
                        tracing::error!(error = format!("{e:#}"), "write failed");
                        WriteError::Store(format!("{e:#}"))
                    });
                    if let Some(reply) = reply {
                        let _ = reply.send(result); // the caller may have gone
                    }
                }
            }
            Err(error) => {
                let message = format!("{error:#}");
                tracing::error!(
                    error = message,
                    batch = requests.len(),
                    "batch commit failed"
                );
                for reply in replies.into_iter().flatten() {
                    let _ = reply.send(Err(WriteError::Store(message.clone())));
                }
            }
        }
    }
}

/// Adds what is queued to the batch, up to [`MAX_BATCH`].
fn drain(jobs: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>) {
    while batch.len() < MAX_BATCH {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}
