//! The writer: one thread owns the database's write side and commits
//! whatever has queued up as ONE transaction (group commit).
//!
//! Why: a commit costs an fsync whether it holds one row or a thousand, so
//! under load many requests share each commit, and a single writer never
//! waits on another's lock. A caller waiting on [`Writer::write`] is answered
//! only after its batch committed, which is what lets a service promise
//! durability before it answers.
//!
//! What a batch does is the service's: its [`Committer`] applies the work
//! (through its storage layer) and may do work of its own between batches
//! on the same thread (the merchant's notification handler does).

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::StoreError;

/// Why a write did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("storage failed: {0}")]
    Store(String),
    #[error("the writer has stopped")]
    Closed,
}

/// When the writer thread calls [`Committer::between`] again if no work
/// comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Only after the next batch.
    Idle,
    /// At once (work already queued joins a batch first).
    Now,
    /// At this time, or after the next batch if one comes sooner.
    At(Instant),
}

/// What a service's writer does with its work.
pub trait Committer: Send + 'static {
    type Work: Send + 'static;
    type Done: Send + 'static;

    /// Applies the batch, in one transaction where it can; one result per
    /// item, in order. `Err` fails every item of the batch.
    fn commit(
        &mut self,
        batch: &[Self::Work],
    ) -> Result<Vec<Result<Self::Done, StoreError>>, StoreError>;

    /// Work of the writer's own, run on its thread: after each committed
    /// batch (`Some`, every caller already answered), and when the time
    /// asked for has come (`None`). Says when to be called next.
    fn between(&mut self, committed: Option<&[Self::Work]>) -> Wake {
        let _ = committed;
        Wake::Idle
    }

    /// When to first call [`Committer::between`] (`Now` to pick up what a
    /// restart left waiting).
    fn start(&mut self) -> Wake {
        Wake::Idle
    }
}

/// How the writer groups work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Most items in one transaction; bounds the latency a batch adds.
    pub max_batch: usize,
    /// Items waiting for the writer before senders wait too (backpressure).
    pub queue: usize,
    /// When busy, wait a little for more work before committing.
    pub linger: Option<Linger>,
}

/// A batch of at least `busy` items means the service is busy: the next
/// batch waits `wait` for more before committing, unless it already holds
/// `full`. A commit's fixed cost (WAL frames, fsync) is then shared by
/// several times more items, which on a saturated machine frees CPU for the
/// rest of the service. Below `busy` (light load), commits never wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linger {
    pub busy: usize,
    pub full: usize,
    pub wait: Duration,
}

struct Job<W, D> {
    work: W,
    reply: Option<oneshot::Sender<Result<D, WriteError>>>,
}

/// A handle to the writer thread; cheap to clone.
pub struct Writer<W, D> {
    queue: mpsc::Sender<Job<W, D>>,
}

impl<W, D> Clone for Writer<W, D> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<W, D> std::fmt::Debug for Writer<W, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl<W: Send + 'static, D: Send + 'static> Writer<W, D> {
    /// Starts the writer thread. It stops once every handle is dropped and
    /// the queue is drained; join the returned handle to wait for that.
    pub fn start<C>(
        name: &str,
        tuning: Tuning,
        committer: C,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)>
    where
        C: Committer<Work = W, Done = D>,
    {
        let (queue, jobs) = mpsc::channel(tuning.queue.max(1));
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || run(committer, tuning, jobs))?;
        Ok((Self { queue }, thread))
    }

    /// Queues work and waits until it is committed.
    pub async fn write(&self, work: W) -> Result<D, WriteError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            work,
            reply: Some(reply),
        };
        self.queue.send(job).await.map_err(|_| WriteError::Closed)?;
        answer.await.map_err(|_| WriteError::Closed)?
    }

    /// Queues work without waiting for its commit (the gateway's attempt
    /// results: the schedule in memory already knows).
    pub async fn write_detached(&self, work: W) -> Result<(), WriteError> {
        let job = Job { work, reply: None };
        self.queue.send(job).await.map_err(|_| WriteError::Closed)
    }
}

fn run<C: Committer>(
    mut committer: C,
    tuning: Tuning,
    mut jobs: mpsc::Receiver<Job<C::Work, C::Done>>,
) {
    // Only to wait for a job with a deadline.
    let timer = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(timer) => timer,
        Err(error) => {
            tracing::error!(%error, "the writer cannot start its timer; it stops");
            return;
        }
    };
    let max_batch = tuning.max_batch.max(1);
    let mut batch: Vec<Job<C::Work, C::Done>> = Vec::with_capacity(max_batch);
    let mut busy = false;
    let mut wake = committer.start();
    loop {
        let first = match wake {
            // Closed and empty: `between` still runs, then the loop ends.
            Wake::Now => jobs.try_recv().ok(),
            Wake::Idle => match jobs.blocking_recv() {
                Some(job) => Some(job),
                None => break,
            },
            // The timer must be made inside the runtime that drives it.
            Wake::At(at) => {
                match timer.block_on(async { tokio::time::timeout_at(at, jobs.recv()).await }) {
                    Ok(Some(job)) => Some(job),
                    Ok(None) => break,
                    Err(_elapsed) => None,
                }
            }
        };
        let Some(first) = first else {
            wake = committer.between(None);
            continue;
        };
        batch.push(first);
        drain(&mut jobs, &mut batch, max_batch);
        if let Some(linger) = tuning.linger {
            if busy && batch.len() < linger.full {
                std::thread::sleep(linger.wait);
                drain(&mut jobs, &mut batch, max_batch);
            }
            busy = batch.len() >= linger.busy;
        }
        let (work, replies): (Vec<_>, Vec<_>) =
            batch.drain(..).map(|job| (job.work, job.reply)).unzip();
        answer(committer.commit(&work), replies);
        wake = committer.between(Some(&work));
    }
}

/// Sends each waiting caller its result.
fn answer<D>(
    results: Result<Vec<Result<D, StoreError>>, StoreError>,
    replies: Vec<Option<oneshot::Sender<Result<D, WriteError>>>>,
) {
    match results {
        Ok(results) if results.len() == replies.len() => {
            for (result, reply) in results.into_iter().zip(replies) {
                let result = result.map_err(|e| {
                    let message = format!("{e:#}");
                    tracing::error!(error = message, "a write failed");
                    WriteError::Store(message)
                });
                if let Some(reply) = reply {
                    let _ = reply.send(result); // the caller may have gone
                }
            }
        }
        Ok(results) => {
            let message = format!(
                "the batch gave {} results for {} writes",
                results.len(),
                replies.len()
            );
            fail_all(replies, message);
        }
        Err(error) => fail_all(replies, format!("{error:#}")),
    }
}

fn fail_all<D>(replies: Vec<Option<oneshot::Sender<Result<D, WriteError>>>>, message: String) {
    tracing::error!(
        error = message,
        batch = replies.len(),
        "batch commit failed"
    );
    for reply in replies.into_iter().flatten() {
        let _ = reply.send(Err(WriteError::Store(message.clone())));
    }
}

/// Adds what is queued to the batch, up to `max`.
fn drain<J>(jobs: &mut mpsc::Receiver<J>, batch: &mut Vec<J>, max: usize) {
    while batch.len() < max {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Keeps what it commits; refuses odd numbers; counts its calls.
    #[derive(Default)]
    struct Log {
        batches: Arc<Mutex<Vec<Vec<u32>>>>,
        between: Arc<Mutex<Vec<bool>>>,
    }

    impl Committer for Log {
        type Work = u32;
        type Done = u32;

        fn commit(&mut self, batch: &[u32]) -> Result<Vec<Result<u32, StoreError>>, StoreError> {
            self.batches.lock().unwrap().push(batch.to_vec());
            Ok(batch
                .iter()
                .map(|n| {
                    if n % 2 == 0 {
                        Ok(n * 10)
                    } else {
                        Err(anyhow::anyhow!("odd"))
                    }
                })
                .collect())
        }

        fn between(&mut self, committed: Option<&[u32]>) -> Wake {
            self.between.lock().unwrap().push(committed.is_some());
            Wake::Idle
        }
    }

    const TUNING: Tuning = Tuning {
        max_batch: 4,
        queue: 64,
        linger: None,
    };

    #[tokio::test]
    async fn each_caller_gets_its_own_result_after_its_commit() {
        let log = Log::default();
        let batches = Arc::clone(&log.batches);
        let (writer, thread) = Writer::start("test-writer", TUNING, log).unwrap();
        let results = futures_join(&writer, [2, 3, 4, 6, 8, 10, 12, 14, 16, 18]).await;
        assert_eq!(results[0], Ok(20));
        assert!(matches!(results[1], Err(WriteError::Store(_))));
        assert_eq!(results[2], Ok(40));
        drop(writer);
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
        let batches = batches.lock().unwrap();
        assert!(batches.iter().all(|b| b.len() <= 4), "{batches:?}");
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 10);
    }

    async fn futures_join<const N: usize>(
        writer: &Writer<u32, u32>,
        work: [u32; N],
    ) -> Vec<Result<u32, WriteError>> {
        let mut tasks = Vec::new();
        for n in work {
            let writer = writer.clone();
            tasks.push(tokio::spawn(async move { writer.write(n).await }));
        }
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results
    }

    /// Asks to be woken once, a little later.
    struct Timed {
        calls: Arc<Mutex<Vec<bool>>>,
        asked: bool,
    }

    impl Committer for Timed {
        type Work = ();
        type Done = ();

        fn commit(&mut self, batch: &[()]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
            Ok(batch.iter().map(|_| Ok(())).collect())
        }

        fn between(&mut self, committed: Option<&[()]>) -> Wake {
            self.calls.lock().unwrap().push(committed.is_some());
            if std::mem::replace(&mut self.asked, true) {
                Wake::Idle
            } else {
                Wake::At(Instant::now() + Duration::from_millis(20))
            }
        }

        fn start(&mut self) -> Wake {
            Wake::Now
        }
    }

    #[tokio::test]
    async fn between_runs_at_start_after_batches_and_when_asked() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let timed = Timed {
            calls: Arc::clone(&calls),
            asked: false,
        };
        let (writer, thread) = Writer::start("test-writer", TUNING, timed).unwrap();
        // At start (`Now`), then at the time it asked for.
        while calls.lock().unwrap().len() < 2 {
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_millis(1));
        }
        writer.write(()).await.unwrap();
        drop(writer);
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
        assert_eq!(*calls.lock().unwrap(), [false, false, true]);
    }
}
