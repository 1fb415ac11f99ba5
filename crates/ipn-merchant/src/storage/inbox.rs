//! The inbox: every accepted message, kept exactly as it arrived. A
//! receiver answers 2xx only after its message is committed here;
//! everything that happens to a message afterwards (its postback, what the
//! handler made of it) is written on its row. Reconciliation's cursor is
//! kept beside it: it moves with the messages it stored.

use ipn_core::Dialect;
use ipn_core::paypal::Answer;

use super::StoreError;

/// The inbox row's id, in arrival order.
pub type InboxId = i64;

/// Where a message stands. `Received` and `Unverified` are where every
/// message starts; a PayPal message then becomes `Verified` or `Invalid`.
/// Once handled it is `processed` (or `failed`, see [`Outcome`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxStatus {
    /// A standard-dialect message whose signature and timestamp verified;
    /// waiting for the notification handler.
    Received,
    /// A PayPal-dialect message, stored before anything checked it; waiting
    /// for its postback to the gateway to say `VERIFIED` or `INVALID`.
    Unverified,
    /// A PayPal-dialect message the gateway answered `VERIFIED` for: it
    /// sent this message, unchanged.
    Verified,
    /// A PayPal-dialect message the gateway answered `INVALID` for: forged
    /// or altered. Kept for audit; never applied to anything.
    Invalid,
}

impl InboxStatus {
    /// The name stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Unverified => "unverified",
            Self::Verified => "verified",
            Self::Invalid => "invalid",
        }
    }
}

/// A message to put in the inbox.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub dialect: Dialect,
    /// The verified `webhook-id`: messages with the same one are stored
    /// once. `None` when nothing vouches for the header (PayPal dialect).
    pub webhook_id: Option<String>,
    /// The request headers later steps need (signature headers, content
    /// type), as received.
    pub headers: Vec<(String, String)>,
    /// The body's bytes exactly as received.
    pub body: Vec<u8>,
    pub status: InboxStatus,
    /// Milliseconds since the Unix epoch.
    pub received_at: i64,
}

/// What storing a message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new row.
    New(InboxId),
    /// A message with this `webhook-id` was stored before, as this row; it
    /// was left as it was.
    Duplicate(InboxId),
}

/// A PayPal message waiting for its postback.
#[derive(Debug, Clone)]
pub struct Unverified {
    pub id: InboxId,
    /// The body exactly as received: what the postback sends back.
    pub body: Vec<u8>,
    /// Postbacks tried so far that got no answer.
    pub attempts: u32,
}

/// What is waiting for a postback.
#[derive(Debug, Clone, Default)]
pub struct PostbacksDue {
    /// Messages due now, oldest first.
    pub rows: Vec<Unverified>,
    /// When none is due: the earliest time one will be (milliseconds since
    /// the Unix epoch), or `None` when no message waits at all.
    pub next_at: Option<i64>,
}

/// What a postback came to, to be recorded on the message's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The gateway answered: the row becomes `verified` or `invalid`.
    Answered {
        id: InboxId,
        answer: Answer,
        /// Milliseconds since the Unix epoch.
        at: i64,
    },
    /// No answer (unreachable, 5xx, timeout, neither word): the row stays
    /// `unverified` until `next_try_at`.
    Failed {
        id: InboxId,
        /// Attempts without an answer, this one included.
        attempts: u32,
        /// Milliseconds since the Unix epoch.
        next_try_at: i64,
        /// Why, for the operator.
        error: String,
    },
}

/// A message waiting for the handler.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub id: InboxId,
    pub dialect: Dialect,
    pub body: Vec<u8>,
    /// Attempts at it that failed so far.
    pub attempts: u32,
}

/// What handling a message came to, kept on its inbox row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It changed (or confirmed) an order or subscription.
    Applied,
    /// A refund or reversal whose payment is not known yet: recorded, and
    /// it takes effect when the payment arrives.
    Held,
    /// The same notice was applied before (same key).
    Duplicate,
    /// It did not match its order (or named none): the order is flagged,
    /// nothing is marked paid.
    Flagged,
    /// Not about anything this shop tracks.
    Ignored,
    /// It could not be read.
    Rejected,
    /// Handling it kept failing: set aside (status `failed`) until the
    /// operator sends it back.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Held => "held",
            Self::Duplicate => "duplicate",
            Self::Flagged => "flagged",
            Self::Ignored => "ignored",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }
}

/// What to write on a handled message's row.
#[derive(Debug, Clone, Default)]
pub struct Handled<'a> {
    pub event_type: Option<&'a str>,
    pub order_id: Option<&'a str>,
    pub subscription_id: Option<&'a str>,
    pub detail: Option<&'a str>,
}

pub trait InboxReads {
    /// Up to `limit` PayPal messages whose postback is due at `now`, oldest
    /// first; if there are none, when the next one is.
    fn postbacks_due(&self, now: i64, limit: usize) -> Result<PostbacksDue, StoreError>;
    /// Up to `limit` messages ready for the handler, oldest first: standard
    /// ones that verified on arrival, PayPal ones whose postback said
    /// `VERIFIED`. One whose handling failed waits until its retry time;
    /// `now` is wall-clock time in ms.
    fn waiting(&self, now: i64, limit: usize) -> Result<Vec<Waiting>, StoreError>;
    /// When the earliest message waiting after a failure is due again.
    fn next_retry(&self) -> Result<Option<i64>, StoreError>;
    /// How many messages are ready for the handler, due or not.
    fn waiting_count(&self) -> Result<u64, StoreError>;
    /// When the handler last handled a message (ms).
    fn last_handled_at(&self) -> Result<Option<i64>, StoreError>;
}

pub trait InboxWrites {
    /// Inserts one message, or finds the row that already holds its
    /// `webhook-id`.
    fn insert_message(&self, message: &NewMessage) -> Result<Stored, StoreError>;
    /// Records a postback's outcome; only a row still `unverified` changes,
    /// so an outcome recorded twice (or for a row settled meanwhile) is
    /// harmless. Returns whether the row changed.
    fn record_postback(&self, outcome: &Verification) -> Result<bool, StoreError>;
    /// Marks a message handled (`processed`, or `failed` for
    /// [`Outcome::Failed`]): it leaves the handler's queue for good.
    fn mark_handled(
        &self,
        id: InboxId,
        outcome: Outcome,
        handled: &Handled<'_>,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Records a failed attempt at a message: how many so far, why the last
    /// failed, and when it is due again (wall-clock ms).
    fn record_failure(
        &self,
        id: InboxId,
        attempts: u32,
        error: &str,
        retry_at: i64,
    ) -> Result<(), StoreError>;
    /// Sends a `failed` message back to the handler, as if it had just
    /// arrived; false if it is not a failed one.
    fn requeue(&self, id: InboxId) -> Result<bool, StoreError>;
    /// Updates a handled message's outcome (a held notice that now counted,
    /// or was found not to match).
    fn set_outcome(
        &self,
        id: InboxId,
        outcome: Outcome,
        order_id: &str,
        detail: Option<&str>,
    ) -> Result<(), StoreError>;
}

/// Where reconciliation has read the gateway's events up to. It moves in
/// the transaction that stores the messages it covers.
pub trait CursorReads {
    /// The id of the last event reconciliation stored, if any.
    fn reconcile_cursor(&self) -> Result<Option<String>, StoreError>;
}

pub trait CursorWrites {
    /// Moves reconciliation's cursor to `after`.
    fn save_reconcile_cursor(&self, after: &str, now: i64) -> Result<(), StoreError>;
}
