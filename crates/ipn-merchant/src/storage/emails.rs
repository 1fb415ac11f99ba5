//! The customer email outbox: what the handler queues, in the transaction
//! of the change that calls for it; what the mail worker reads and marks;
//! what the API and the admin pages list.

use super::StoreError;
use crate::model::{EmailKind, Rendered};

/// An email to queue.
#[derive(Debug, Clone)]
pub struct NewEmail {
    /// What makes this email unique, e.g. `"order_paid:ord_…"`: an email
    /// whose key was queued before is not queued again, so a message
    /// handled twice cannot email twice.
    pub dedupe_key: String,
    pub kind: EmailKind,
    /// The recipient's address (`a@example.com` or `Name <a@example.com>`).
    /// Not checked here: a bad address must not roll back the state change;
    /// the worker marks such an email `failed`.
    pub to: String,
    pub order_id: Option<String>,
    pub subscription_id: Option<String>,
    pub rendered: Rendered,
    /// Milliseconds since the Unix epoch; also the message's `Date`.
    pub created_at: i64,
}

/// A queued email, as the worker sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEmail {
    pub id: i64,
    pub dedupe_key: String,
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub attempts: u32,
    pub created_at: i64,
}

/// What is waiting to be sent.
#[derive(Debug, Clone, Default)]
pub struct EmailsDue {
    /// Emails due now, oldest first.
    pub rows: Vec<QueuedEmail>,
    /// When none is due: the earliest time one will be (milliseconds since
    /// the Unix epoch), or `None` when nothing is queued at all.
    pub next_at: Option<i64>,
}

/// A failed attempt at sending a queued email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedAttempt {
    pub id: i64,
    /// Attempts made so far, this one included.
    pub attempts: u32,
    /// When the next attempt is due (ms), unless given up.
    pub next_try_at: i64,
    pub error: String,
    /// The email is `failed` for good.
    pub give_up: bool,
}

pub trait EmailReads {
    /// Whether an email with this key was ever queued.
    fn email_queued(&self, dedupe_key: &str) -> Result<bool, StoreError>;
    /// Up to `limit` emails due at `now`, oldest first; if there are none,
    /// when the next one is.
    fn emails_due(&self, now: i64, limit: usize) -> Result<EmailsDue, StoreError>;
}

pub trait EmailWrites {
    /// Queues one email, due at once; one whose `dedupe_key` was queued
    /// before is not queued again (`false`).
    fn enqueue(&self, email: &NewEmail) -> Result<bool, StoreError>;
    /// Marks a queued email sent; only a `queued` row changes, and the
    /// answer says whether it did.
    fn mark_sent(&self, id: i64, attempts: u32, at: i64) -> Result<bool, StoreError>;
    /// Records a failed attempt at a queued email: due again at its
    /// `next_try_at`, or, given up, `failed` for good. Only a `queued` row
    /// changes, and the answer says whether it did.
    fn mark_failed(&self, attempt: &FailedAttempt) -> Result<bool, StoreError>;
}
