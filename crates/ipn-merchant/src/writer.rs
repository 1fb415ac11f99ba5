//! The merchant's writer: the one thread that writes, `ipn_storage`'s
//! group-commit [`ipn_storage::Writer`], with the merchant's work.
//!
//! Everything that changes the database is a [`Write`] sent here: messages
//! from the receivers, postback outcomes, the shop's orders, reconciled
//! events and their cursor, the mail worker's marks, a download's use, an
//! operator's review. Whatever has queued up commits as ONE transaction
//! through storage ([`Store::write_batch`]), where a write that fails rolls
//! back alone; a caller waiting on its write is answered only after that
//! commit, which is what lets a receiver promise durability before its 2xx.
//!
//! Between batches the same thread runs the notification handler's pass
//! ([`Handler::pass`]): after a batch that may have brought it work, at
//! start for whatever a restart left waiting, and when a message that
//! failed is due again. A pass that fails on storage waits (100 ms,
//! doubling to 30 s) whatever is committed meanwhile, so a broken disk is
//! retried now and then, not in a loop.
//!
//! **Invariant:** only this thread writes. Every other part of the merchant
//! reads through [`crate::storage::Reader`], whose connections are
//! `query_only`.

use std::sync::Arc;
use std::time::Duration;

use ipn_storage::{Tuning, Wake};
use time::OffsetDateTime;
use tokio::time::Instant;

pub use ipn_storage::WriteError;

use crate::downloads::{self, Take};
use crate::handler::{self, Handler, PassResult, Review};
use crate::storage::{
    FailedAttempt, InboxId, NewMessage, Order, Store, StoreError, Stored, Tx, Verification,
};

/// How the writer groups work: at most 1,024 writes a transaction (bounds
/// the latency a batch adds), 8,192 queued before senders wait too.
const TUNING: Tuning = Tuning {
    max_batch: 1024,
    queue: 8 * 1024,
    linger: None,
};

/// What the writer is asked to commit.
#[derive(Debug)]
pub enum Write {
    /// A message for the inbox.
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
    /// The mail worker sent an email.
    MailSent { id: i64, attempts: u32, at: i64 },
    /// The mail worker's attempt failed.
    MailFailed(FailedAttempt),
    /// A download starts: one use of the grant, if it is active at `now`.
    TakeDownload { id: String, now: OffsetDateTime },
}

impl Write {
    /// Whether committing it may leave the handler something to do.
    fn feeds_handler(&self) -> bool {
        matches!(
            self,
            Self::Store(_)
                | Self::Record(_)
                | Self::Reconcile { .. }
                | Self::Requeue(_)
                | Self::Fulfil(_)
                | Self::ResolveFlag(_)
        )
    }

    /// An operator's review, which may queue emails outside a pass.
    fn is_review(&self) -> bool {
        matches!(
            self,
            Self::Fulfil(_) | Self::ResolveFlag(_) | Self::Requeue(_)
        )
    }
}

/// What a [`Write`] did, committed.
#[derive(Debug)]
pub enum Done {
    Stored(Stored),
    Recorded,
    OrderCreated,
    Reviewed(Review),
    /// How many reconciled events were new to the inbox.
    Reconciled(usize),
    /// Whether the email's row changed.
    Marked(bool),
    Taken(Take),
}

/// A handle to the writer thread; cheap to clone.
#[derive(Debug, Clone)]
pub struct Writer {
    queue: ipn_storage::Writer<Write, Done>,
}

/// Starts the writer thread on `store`, with the notification handler when
/// given one. It stops once every handle is dropped and the queue is
/// drained; join the returned handle to wait.
pub fn start(
    store: Arc<dyn Store>,
    handler: Option<Handler>,
) -> std::io::Result<(Writer, std::thread::JoinHandle<()>)> {
    let committer = Committer {
        store,
        // At start, whatever a restart left waiting is due.
        pass: if handler.is_some() {
            Pass::Due
        } else {
            Pass::Idle
        },
        handler,
        failures: 0,
    };
    let (queue, thread) = ipn_storage::Writer::start("ipn-merchant-writer", TUNING, committer)?;
    Ok((Writer { queue }, thread))
}

/// The answer for a write that came back as something else.
fn mismatch(what: &str) -> WriteError {
    WriteError::Store(format!("the writer answered {what} with something else"))
}

impl Writer {
    /// Queues a message and waits until it is committed.
    pub async fn store(&self, message: NewMessage) -> Result<Stored, WriteError> {
        match self.queue.write(Write::Store(message)).await? {
            Done::Stored(stored) => Ok(stored),
            _ => Err(mismatch("a store")),
        }
    }

    /// Records postback outcomes, all in one transaction.
    pub async fn record(&self, outcomes: Vec<Verification>) -> Result<(), WriteError> {
        self.queue.write(Write::Record(outcomes)).await.map(|_| ())
    }

    /// Stores a new order.
    pub async fn create_order(&self, order: Order) -> Result<(), WriteError> {
        self.queue
            .write(Write::CreateOrder(Box::new(order)))
            .await
            .map(|_| ())
    }

    /// Marks a paid order fulfilled (shipped); its state becomes
    /// `fulfilled`.
    pub async fn fulfil(&self, order_id: String) -> Result<Review, WriteError> {
        self.review(Write::Fulfil(order_id)).await
    }

    /// Resolves a flag; once an order has none open, it shows its payments'
    /// state again.
    pub async fn resolve_flag(&self, flag_id: i64) -> Result<Review, WriteError> {
        self.review(Write::ResolveFlag(flag_id)).await
    }

    /// Sends a message the handler set aside as `failed` back to it.
    pub async fn requeue(&self, inbox_id: InboxId) -> Result<Review, WriteError> {
        self.review(Write::Requeue(inbox_id)).await
    }

    async fn review(&self, work: Write) -> Result<Review, WriteError> {
        match self.queue.write(work).await? {
            Done::Reviewed(review) => Ok(review),
            _ => Err(mismatch("a review")),
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
        match self
            .queue
            .write(Write::Reconcile { messages, cursor })
            .await?
        {
            Done::Reconciled(new) => Ok(new),
            _ => Err(mismatch("a reconciliation")),
        }
    }

    /// Marks a queued email sent; false if it was not queued (anymore).
    pub async fn mail_sent(&self, id: i64, attempts: u32, at: i64) -> Result<bool, WriteError> {
        self.marked(Write::MailSent { id, attempts, at }).await
    }

    /// Records a failed attempt at a queued email.
    pub async fn mail_failed(&self, attempt: FailedAttempt) -> Result<bool, WriteError> {
        self.marked(Write::MailFailed(attempt)).await
    }

    async fn marked(&self, work: Write) -> Result<bool, WriteError> {
        match self.queue.write(work).await? {
            Done::Marked(changed) => Ok(changed),
            _ => Err(mismatch("a mark")),
        }
    }

    /// Takes one use of download `id` if it is active at `now`.
    pub async fn take_download(&self, id: String, now: OffsetDateTime) -> Result<Take, WriteError> {
        match self.queue.write(Write::TakeDownload { id, now }).await? {
            Done::Taken(take) => Ok(take),
            _ => Err(mismatch("a download")),
        }
    }
}

/// When the handler's pass runs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// After the next batch that may bring it work.
    Idle,
    /// At once: the last pass was full, more may be waiting.
    Due,
    /// Then, when a message that failed is due again (or after a batch
    /// that may bring work, whichever comes first).
    IdleUntil(Instant),
    /// The last pass failed on storage: then, whatever is committed
    /// meanwhile.
    RetryAt(Instant),
}

impl Pass {
    fn wake(self) -> Wake {
        match self {
            Self::Idle => Wake::Idle,
            Self::Due => Wake::Now,
            Self::IdleUntil(at) | Self::RetryAt(at) => Wake::At(at),
        }
    }
}

/// What the writer thread holds: the store it writes through and the
/// handler it runs between batches.
struct Committer {
    store: Arc<dyn Store>,
    handler: Option<Handler>,
    pass: Pass,
    /// Passes that failed on storage in a row.
    failures: u32,
}

impl ipn_storage::Committer for Committer {
    type Work = Write;
    type Done = Done;

    fn commit(&mut self, batch: &[Write]) -> Result<Vec<Result<Done, StoreError>>, StoreError> {
        let handler = self.handler.as_ref();
        let mut done: Vec<Option<Done>> = batch.iter().map(|_| None).collect();
        let results = self.store.write_batch(batch.len(), &mut |tx, index| {
            done[index] = Some(apply(tx, &batch[index], handler)?);
            Ok(())
        })?;
        Ok(results
            .into_iter()
            .zip(done)
            .map(|(result, done)| {
                result.and_then(|()| {
                    done.ok_or_else(|| anyhow::anyhow!("a write committed without its result"))
                })
            })
            .collect())
    }

    fn between(&mut self, committed: Option<&[Write]>) -> Wake {
        let Some(handler) = &self.handler else {
            return Wake::Idle;
        };
        if let Some(batch) = committed {
            let reviewed = batch.iter().any(Write::is_review);
            if reviewed {
                // An operator's review may have queued emails; they are
                // committed now.
                handler.wake_mail();
            }
            let feeds = batch.iter().any(Write::feeds_handler);
            // After a storage failure, new work waits for the retry; an
            // operator's action does not.
            let backing_off = matches!(self.pass, Pass::RetryAt(_)) && !reviewed;
            if !feeds || backing_off {
                return self.pass.wake();
            }
        }
        self.pass = match handler.pass(&*self.store) {
            Ok(PassResult::More) => Pass::Due,
            Ok(PassResult::Done) => {
                self.failures = 0;
                Pass::Idle
            }
            Ok(PassResult::RetryIn(delay)) => {
                self.failures = 0;
                Pass::IdleUntil(Instant::now() + delay)
            }
            Err(error) => {
                self.failures = self.failures.saturating_add(1);
                let delay = retry_delay(self.failures);
                tracing::error!(
                    error = format!("{error:#}"),
                    retry_in_ms = delay.as_millis(),
                    "the notification handler's pass failed; the messages wait"
                );
                Pass::RetryAt(Instant::now() + delay)
            }
        };
        self.pass.wake()
    }

    fn start(&mut self) -> Wake {
        self.pass.wake()
    }
}

/// 100 ms, doubling, up to 30 s.
fn retry_delay(failures: u32) -> Duration {
    Duration::from_millis(100)
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(Duration::from_secs(30))
}

/// Does one write inside the batch's transaction.
fn apply(tx: &dyn Tx, work: &Write, handler: Option<&Handler>) -> Result<Done, StoreError> {
    let no_handler = || Review::Refused("this server has no notification handler".into());
    Ok(match work {
        Write::Store(message) => Done::Stored(tx.insert_message(message)?),
        Write::Record(outcomes) => {
            for outcome in outcomes {
                tx.record_postback(outcome)?;
            }
            Done::Recorded
        }
        Write::CreateOrder(order) => {
            tx.insert_order(order)?;
            Done::OrderCreated
        }
        Write::Reconcile { messages, cursor } => {
            let mut new = 0;
            for message in messages {
                if let Stored::New(_) = tx.insert_message(message)? {
                    new += 1;
                }
            }
            tx.save_reconcile_cursor(cursor, crate::clock::wall_ms())?;
            Done::Reconciled(new)
        }
        Write::Requeue(id) => Done::Reviewed(handler::requeue(tx, *id)?),
        Write::Fulfil(order_id) => Done::Reviewed(match handler {
            Some(handler) => handler.fulfil(tx, order_id)?,
            None => no_handler(),
        }),
        Write::ResolveFlag(flag_id) => Done::Reviewed(match handler {
            Some(handler) => handler.resolve_flag(tx, *flag_id)?,
            None => no_handler(),
        }),
        Write::MailSent { id, attempts, at } => Done::Marked(tx.mark_sent(*id, *attempts, *at)?),
        Write::MailFailed(attempt) => Done::Marked(tx.mark_failed(attempt)?),
        Write::TakeDownload { id, now } => Done::Taken(downloads::take(tx, id, *now)?),
    })
}
