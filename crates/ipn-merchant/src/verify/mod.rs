//! The postback worker: verifies PayPal-dialect messages after they were
//! stored and acknowledged.
//!
//! It takes `unverified` inbox rows oldest first, posts each back to the
//! gateway (`postback.rs`) and has the writer record the answer: `VERIFIED`
//! makes the row `verified`, `INVALID` makes it `invalid` (kept for audit,
//! never applied). A postback that gets no answer leaves the row
//! `unverified` with its attempt count and a next-try time, backing off
//! 1 s, 2 s, 4 s … up to 5 min.
//!
//! It never polls: with nothing due it sleeps until a receiver stores a new
//! message (the `wake` notify), the earliest retry falls due, or shutdown.

pub mod postback;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ipn_core::paypal::Answer;
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

pub use postback::{Postback, PostbackError};

use crate::clock::wall_ms;
use crate::storage::{InboxId, Reader, Unverified, Verification};
use crate::writer::{WriteError, Writer};

/// Postbacks in flight at once: the rows taken per round.
const BATCH: usize = 16;
/// The first retry's delay; each further one doubles it.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest delay between two attempts.
const MAX_RETRY: Duration = Duration::from_secs(5 * 60);

/// The delay before the attempt that follows `attempts` failed ones.
pub fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(31);
    FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY)
}

/// What the worker needs; [`Worker::spawn`] runs it until `stop` is set.
#[derive(Debug)]
pub struct Worker {
    pub reader: Reader,
    pub writer: Writer,
    pub postback: Postback,
    /// Notified by the PayPal receiver after each message it stores.
    pub wake: Arc<Notify>,
    pub stop: watch::Receiver<bool>,
}

impl Worker {
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(mut self) {
        tracing::debug!(url = %self.postback.url(), "postback worker started");
        // Consecutive storage failures: the worker backs off on those too,
        // so a broken database is logged now and then, not in a loop.
        let mut storage_failures = 0;
        loop {
            // A dropped sender (the `Merchant` dropped without `shutdown`)
            // stops the worker too; otherwise every wait would end at once.
            if *self.stop.borrow() || self.stop.has_changed().is_err() {
                break;
            }
            let now = wall_ms();
            let due = match self.reader.read(move |r| r.postbacks_due(now, BATCH)).await {
                Ok(due) => due,
                Err(error) => {
                    storage_failures += 1;
                    let delay = backoff(storage_failures);
                    tracing::error!(
                        error = format!("{error:#}"),
                        retry_in_ms = delay.as_millis(),
                        "reading the inbox for postbacks failed"
                    );
                    self.sleep(Some(Instant::now() + delay)).await;
                    continue;
                }
            };
            if due.rows.is_empty() {
                storage_failures = 0;
                let until = due.next_at.map(|at| {
                    let wait = u64::try_from(at.saturating_sub(wall_ms())).unwrap_or(0);
                    Instant::now() + Duration::from_millis(wait)
                });
                self.sleep(until).await;
                continue;
            }
            let outcomes = tokio::select! {
                outcomes = round(&self.postback, due.rows) => outcomes,
                // Rows cut short stay `unverified`; a postback only reads,
                // so trying them again after a restart is harmless.
                _ = self.stop.wait_for(|stop| *stop) => break,
            };
            match self.writer.record(outcomes).await {
                Ok(()) => storage_failures = 0,
                Err(WriteError::Closed) => break,
                Err(WriteError::Store(_)) => {
                    // The writer logged the cause. The rows are unchanged and
                    // due again; wait before asking the gateway again.
                    storage_failures += 1;
                    self.sleep(Some(Instant::now() + backoff(storage_failures)))
                        .await;
                }
            }
        }
        tracing::debug!("postback worker stopped");
    }

    /// Waits until `until` (forever if `None`), a new message, or stop.
    async fn sleep(&mut self, until: Option<Instant>) {
        let deadline = async {
            match until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = deadline => {}
            () = self.wake.notified() => {}
            _ = self.stop.wait_for(|stop| *stop) => {}
        }
    }
}

/// Posts `rows` back concurrently; returns what to record for each.
async fn round(postback: &Postback, rows: Vec<Unverified>) -> Vec<Verification> {
    let mut postbacks = JoinSet::new();
    let mut tasks = HashMap::with_capacity(rows.len());
    for row in rows {
        let postback = postback.clone();
        let (id, attempts) = (row.id, row.attempts);
        let task = postbacks.spawn(async move {
            let answer = postback.verify(&row.body).await;
            outcome(&row, answer, wall_ms())
        });
        tasks.insert(task.id(), (id, attempts));
    }
    let mut outcomes = Vec::with_capacity(postbacks.len());
    while let Some(joined) = postbacks.join_next_with_id().await {
        match joined {
            Ok((_, outcome)) => outcomes.push(outcome),
            // A task that panicked still backs its row off: retrying it at
            // once could panic again, in a loop.
            Err(error) => {
                if let Some(&(id, attempts)) = tasks.get(&error.id()) {
                    outcomes.push(failed(id, attempts, &error, wall_ms()));
                }
            }
        }
    }
    outcomes
}

/// What one postback came to, logged once here.
fn outcome(row: &Unverified, answer: Result<Answer, PostbackError>, now: i64) -> Verification {
    match answer {
        Ok(answer) => {
            match answer {
                Answer::Verified => tracing::debug!(inbox.id = row.id, "postback VERIFIED"),
                Answer::Invalid => tracing::warn!(
                    inbox.id = row.id,
                    "postback INVALID: the gateway did not send this message; kept, not applied"
                ),
            }
            Verification::Answered {
                id: row.id,
                answer,
                at: now,
            }
        }
        Err(error) => failed(row.id, row.attempts, &error, now),
    }
}

/// A postback without an answer, after `attempts` earlier ones: the row
/// waits for the next, further off each time.
fn failed(id: InboxId, attempts: u32, error: &dyn fmt::Display, now: i64) -> Verification {
    let attempts = attempts.saturating_add(1);
    let delay = backoff(attempts);
    tracing::warn!(
        inbox.id = id,
        attempts,
        retry_in_ms = delay.as_millis(),
        %error,
        "postback got no answer; will retry"
    );
    Verification::Failed {
        id,
        attempts,
        next_try_at: now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
        error: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_up_to_five_minutes() {
        let delays: Vec<u64> = [1, 2, 3, 4, 9, 10, 50, u32::MAX]
            .into_iter()
            .map(|attempts| backoff(attempts).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 256, 300, 300, 300]);
        assert_eq!(backoff(0), FIRST_RETRY);
    }

    #[test]
    fn a_failure_counts_an_attempt_and_an_answer_settles() {
        let row = Unverified {
            id: 7,
            body: b"a=1".to_vec(),
            attempts: 2,
        };
        assert_eq!(
            outcome(&row, Err(PostbackError::Timeout), 1_000),
            Verification::Failed {
                id: 7,
                attempts: 3,
                next_try_at: 5_000,
                error: "the gateway did not answer within 10 s".into(),
            }
        );
        assert_eq!(
            outcome(&row, Ok(Answer::Invalid), 1_000),
            Verification::Answered {
                id: 7,
                answer: Answer::Invalid,
                at: 1_000,
            }
        );
    }
}
