//! The writer: one thread owns the inbox's write connection and commits
//! whatever has queued up as ONE transaction (group commit).
//!
//! Why one thread: SQLite takes one writer at a time anyway, and an fsync
//! per commit is the cost that matters; sharing it among the messages that
//! arrived together is what lets the merchant keep up with a busy gateway.
//! A receiver waiting on [`Writer::store`] is answered only after its batch
//! committed, which is what lets it promise durability before its 2xx.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::{NewMessage, StoreError, Stored, sqlite};

/// Most messages in one transaction; bounds the latency a batch adds.
const MAX_BATCH: usize = 1024;
/// Messages waiting for the writer before receivers wait too (backpressure).
const QUEUE: usize = 8 * 1024;

/// Why a message was not stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("storage failed: {0}")]
    Store(String),
    #[error("the writer has stopped")]
    Closed,
}

struct Job {
    message: NewMessage,
    reply: oneshot::Sender<Result<Stored, WriteError>>,
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
    /// Starts the writer thread on `conn`. It stops once every handle is
    /// dropped and the queue is drained; join the returned handle to wait.
    pub fn start(conn: Connection) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("ipn-merchant-writer".into())
            .spawn(move || run(conn, jobs))?;
        Ok((Self { queue }, thread))
    }

    /// Queues a message and waits until it is committed.
    pub async fn store(&self, message: NewMessage) -> Result<Stored, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { message, reply })
            .await
            .map_err(|_| WriteError::Closed)?;
        answer.await.map_err(|_| WriteError::Closed)?
    }
}

fn run(mut conn: Connection, mut jobs: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let results: Vec<Result<Stored, StoreError>> =
            match commit(&mut conn, batch.iter().map(|job| &job.message)) {
                Ok(stored) => stored.into_iter().map(Ok).collect(),
                Err(error) => {
                    // The whole batch rolled back. Each message then gets its
                    // own transaction, so one that cannot be stored fails alone.
                    tracing::warn!(
                        error = format!("{error:#}"),
                        batch = batch.len(),
                        "batch commit failed; storing one by one"
                    );
                    batch
                        .iter()
                        .map(|job| commit_one(&mut conn, &job.message))
                        .collect()
                }
            };
        for (job, result) in batch.drain(..).zip(results) {
            let result = result.map_err(|error| {
                let message = format!("{error:#}");
                tracing::error!(error = message, "storing a message failed");
                WriteError::Store(message)
            });
            let _ = job.reply.send(result); // the receiver may have gone
        }
    }
}

/// Stores messages in one transaction; all or nothing.
fn commit<'a>(
    conn: &mut Connection,
    messages: impl Iterator<Item = &'a NewMessage>,
) -> Result<Vec<Stored>, StoreError> {
    let tx = conn.transaction()?;
    let stored = messages
        .map(|message| sqlite::insert(&tx, message))
        .collect::<Result<Vec<_>, _>>()?;
    tx.commit()?;
    Ok(stored)
}

fn commit_one(conn: &mut Connection, message: &NewMessage) -> Result<Stored, StoreError> {
    let tx = conn.transaction()?;
    let stored = sqlite::insert(&tx, message)?;
    tx.commit()?;
    Ok(stored)
}
