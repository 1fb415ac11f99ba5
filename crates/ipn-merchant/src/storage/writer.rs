//! The writer: one thread owns the inbox's write connection and commits
//! whatever has queued up as ONE transaction (group commit): new messages
//! from the receivers, postback outcomes from the verification worker and
//! new orders from the shop.
//!
//! Why one thread: SQLite takes one writer at a time anyway, and an fsync
//! per commit is the cost that matters; sharing it among the messages that
//! arrived together is what lets the merchant keep up with a busy gateway.
//! A receiver waiting on [`Writer::store`] is answered only after its batch
//! committed, which is what lets it promise durability before its 2xx.

use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::orders::{self, Order};
use super::{InboxId, NewMessage, StoreError, Stored, Verification, postback, sqlite};
use crate::handler::{Handler, PassResult};

/// Most messages in one transaction; bounds the latency a batch adds.
const MAX_BATCH: usize = 1024;
/// Messages waiting for the writer before receivers wait too (backpressure).
const QUEUE: usize = 8 * 1024;

/// Why a write was not committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("storage failed: {0}")]
    Store(String),
    #[error("the writer has stopped")]
    Closed,
}

/// What the writer is asked to commit.
enum Work {
    /// A message for the inbox; answered with what storing it did.
    Store(NewMessage),
    /// Postback outcomes for inbox rows.
    Record(Vec<Verification>),
    /// A new order with its lines.
    CreateOrder(Box<Order>),
    /// The shop shipped a paid order.
    Fulfil(String),
    /// The operator reviewed a flag.
    ResolveFlag(i64),
    /// The operator sends a failed message back to the handler.
    Requeue(InboxId),
    /// Events read from the gateway's list, and the cursor after them.
    Reconcile {
        messages: Vec<NewMessage>,
        cursor: String,
    },
}

/// What a [`Work`] did, committed.
enum Done {
    Stored(Stored),
    Recorded,
    OrderCreated,
    Reviewed(Review),
    /// How many reconciled events were new to the inbox.
    Reconciled(usize),
}

/// What an operator's action on an order came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Review {
    Done,
    /// No such order or flag.
    NotFound,
    /// The action does not apply (a refunded order cannot be shipped).
    Refused(String),
}

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Done, WriteError>>,
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
    /// Starts the writer thread on `conn`, with the notification handler
    /// when given one. It stops once every handle is dropped and the queue
    /// is drained; join the returned handle to wait.
    pub fn start(
        conn: Connection,
        handler: Option<Handler>,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("ipn-merchant-writer".into())
            .spawn(move || run(conn, jobs, handler))?;
        Ok((Self { queue }, thread))
    }

    /// Queues a message and waits until it is committed.
    pub async fn store(&self, message: NewMessage) -> Result<Stored, WriteError> {
        match self.submit(Work::Store(message)).await? {
            Done::Stored(stored) => Ok(stored),
            _ => Err(WriteError::Store(
                "the writer answered a store with something else".into(),
            )),
        }
    }

    /// Stores a new order and waits until it is committed.
    pub async fn create_order(&self, order: Order) -> Result<(), WriteError> {
        self.submit(Work::CreateOrder(Box::new(order)))
            .await
            .map(|_| ())
    }

    /// Marks a paid order fulfilled (shipped); its state becomes
    /// `fulfilled`.
    pub async fn fulfil(&self, order_id: String) -> Result<Review, WriteError> {
        self.review(Work::Fulfil(order_id)).await
    }

    /// Resolves a flag; once an order has none open, it shows its payments'
    /// state again.
    pub async fn resolve_flag(&self, flag_id: i64) -> Result<Review, WriteError> {
        self.review(Work::ResolveFlag(flag_id)).await
    }

    /// Sends a message the handler set aside as `failed` back to it.
    pub async fn requeue(&self, inbox_id: InboxId) -> Result<Review, WriteError> {
        self.review(Work::Requeue(inbox_id)).await
    }

    async fn review(&self, work: Work) -> Result<Review, WriteError> {
        match self.submit(work).await? {
            Done::Reviewed(review) => Ok(review),
            _ => Err(WriteError::Store(
                "the writer answered a review with something else".into(),
            )),
        }
    }

    /// Stores events read from the gateway (those already in the inbox are
    /// left alone) and moves the reconciliation cursor, in one transaction;
    /// returns how many were new.
    pub async fn reconcile(
        &self,
        messages: Vec<NewMessage>,
        cursor: String,
    ) -> Result<usize, WriteError> {
        match self.submit(Work::Reconcile { messages, cursor }).await? {
            Done::Reconciled(new) => Ok(new),
            _ => Err(WriteError::Store(
                "the writer answered a reconciliation with something else".into(),
            )),
        }
    }

    /// Records postback outcomes, all in one transaction, and waits until
    /// they are committed.
    pub async fn record(&self, outcomes: Vec<Verification>) -> Result<(), WriteError> {
        self.submit(Work::Record(outcomes)).await.map(|_| ())
    }

    async fn submit(&self, work: Work) -> Result<Done, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { work, reply })
            .await
            .map_err(|_| WriteError::Closed)?;
        answer.await.map_err(|_| WriteError::Closed)?
    }
}

/// Whether the handler has messages to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Nothing new since the last pass.
    Idle,
    /// Something was committed that may be waiting for it.
    Due,
    /// Nothing new, but a message that failed is due again then (or when
    /// something new is committed, whichever comes first).
    IdleUntil(Instant),
    /// The last pass failed on storage; the next waits until then, whatever
    /// is committed meanwhile.
    RetryAt(Instant),
}

fn run(mut conn: Connection, mut jobs: mpsc::Receiver<Job>, mut handler: Option<Handler>) {
    // Only to wait for a job with a deadline while a failed pass backs off.
    let clock = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(clock) => clock,
        Err(error) => {
            tracing::error!(%error, "the writer cannot start its timer; it stops");
            return;
        }
    };
    if let Some(handler) = handler.as_mut()
        && let Err(error) = handler.prepare(&conn)
    {
        tracing::error!(error = format!("{error:#}"), "the handler cannot start");
    }
    // At start, whatever a restart left waiting is due.
    let mut pass = if handler.is_some() {
        Pass::Due
    } else {
        Pass::Idle
    };
    let mut failures: u32 = 0;
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    loop {
        let first = match pass {
            // The handler goes first, but jobs already queued join it.
            // (Closed and empty: the pass still runs, then the loop ends.)
            Pass::Due => jobs.try_recv().ok(),
            Pass::Idle => match jobs.blocking_recv() {
                Some(job) => Some(job),
                None => break,
            },
            // The timer must be made inside the runtime that drives it.
            Pass::RetryAt(at) | Pass::IdleUntil(at) => {
                match clock.block_on(async { tokio::time::timeout_at(at, jobs.recv()).await }) {
                    Ok(Some(job)) => Some(job),
                    Ok(None) => break,
                    Err(_elapsed) => {
                        pass = Pass::Due;
                        None
                    }
                }
            }
        };
        if let Some(first) = first {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let reviewed = batch.iter().any(|job| {
                matches!(
                    job.work,
                    Work::Fulfil(_) | Work::ResolveFlag(_) | Work::Requeue(_)
                )
            });
            commit_batch(&mut conn, &mut batch, handler.as_ref());
            if let Some(handler) = handler.as_ref() {
                // An operator's review may have queued emails; they are
                // committed now.
                if reviewed {
                    handler.wake_mail();
                }
                // After a storage failure, new work waits for the retry.
                if !matches!(pass, Pass::RetryAt(_)) || reviewed {
                    pass = Pass::Due;
                }
            }
        }
        if pass != Pass::Due {
            continue;
        }
        let Some(handler) = handler.as_mut() else {
            pass = Pass::Idle;
            continue;
        };
        pass = match handler.pass(&mut conn) {
            Ok(PassResult::More) => Pass::Due,
            Ok(PassResult::Done) => {
                failures = 0;
                Pass::Idle
            }
            Ok(PassResult::RetryIn(delay)) => {
                failures = 0;
                Pass::IdleUntil(Instant::now() + delay)
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let delay = retry_delay(failures);
                tracing::error!(
                    error = format!("{error:#}"),
                    retry_in_ms = delay.as_millis(),
                    "the notification handler's pass failed; the messages wait"
                );
                Pass::RetryAt(Instant::now() + delay)
            }
        };
    }
}

/// 100 ms, doubling, up to 30 s: a broken disk is retried now and then,
/// not in a loop.
fn retry_delay(failures: u32) -> Duration {
    Duration::from_millis(100)
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(Duration::from_secs(30))
}

/// Commits a batch of jobs and answers each.
fn commit_batch(conn: &mut Connection, batch: &mut Vec<Job>, handler: Option<&Handler>) {
    let results: Vec<Result<Done, StoreError>> =
        match commit(conn, batch.iter().map(|job| &job.work), handler) {
            Ok(done) => done.into_iter().map(Ok).collect(),
            Err(error) => {
                // The whole batch rolled back. Each job then gets its own
                // transaction, so one that cannot be committed fails alone.
                tracing::warn!(
                    error = format!("{error:#}"),
                    batch = batch.len(),
                    "batch commit failed; committing one by one"
                );
                batch
                    .iter()
                    .map(|job| commit_one(conn, &job.work, handler))
                    .collect()
            }
        };
    for (job, result) in batch.drain(..).zip(results) {
        let result = result.map_err(|error| {
            let message = format!("{error:#}");
            tracing::error!(error = message, "a write to the inbox failed");
            WriteError::Store(message)
        });
        let _ = job.reply.send(result); // the caller may have gone
    }
}

/// Does one job's work inside `tx`.
fn apply(tx: &Transaction<'_>, work: &Work, handler: Option<&Handler>) -> Result<Done, StoreError> {
    match work {
        Work::Store(message) => sqlite::insert(tx, message).map(Done::Stored),
        Work::Record(outcomes) => {
            for outcome in outcomes {
                postback::record(tx, outcome)?;
            }
            Ok(Done::Recorded)
        }
        Work::CreateOrder(order) => orders::insert(tx, order).map(|()| Done::OrderCreated),
        Work::Reconcile { messages, cursor } => {
            let mut new = 0;
            for message in messages {
                if let Stored::New(_) = sqlite::insert(tx, message)? {
                    new += 1;
                }
            }
            let now = crate::clock::wall_ms();
            crate::reconcile::save_cursor(tx, cursor, now)?;
            Ok(Done::Reconciled(new))
        }
        Work::Requeue(id) => Ok(Done::Reviewed(
            if crate::handler::store::requeue(tx, *id)? {
                Review::Done
            } else {
                Review::Refused(format!("message {id} is not a failed one"))
            },
        )),
        Work::Fulfil(order_id) => {
            let Some(handler) = handler else {
                return Ok(Done::Reviewed(Review::Refused(
                    "this server has no notification handler".into(),
                )));
            };
            handler.fulfil(tx, order_id).map(Done::Reviewed)
        }
        Work::ResolveFlag(flag_id) => {
            let Some(handler) = handler else {
                return Ok(Done::Reviewed(Review::Refused(
                    "this server has no notification handler".into(),
                )));
            };
            handler.resolve_flag(tx, *flag_id).map(Done::Reviewed)
        }
    }
}

/// Commits jobs in one transaction; all or nothing. Transactions take the
/// write lock at BEGIN: the mail worker and the download route write
/// through their own connections, and a transaction that read first and
/// then wanted to write after one of them committed would fail at once
/// (SQLite's BUSY_SNAPSHOT) instead of waiting its turn.
fn commit<'a>(
    conn: &mut Connection,
    work: impl Iterator<Item = &'a Work>,
    handler: Option<&Handler>,
) -> Result<Vec<Done>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let done = work
        .map(|work| apply(&tx, work, handler))
        .collect::<Result<Vec<_>, _>>()?;
    tx.commit()?;
    Ok(done)
}

fn commit_one(
    conn: &mut Connection,
    work: &Work,
    handler: Option<&Handler>,
) -> Result<Done, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let done = apply(&tx, work, handler)?;
    tx.commit()?;
    Ok(done)
}
