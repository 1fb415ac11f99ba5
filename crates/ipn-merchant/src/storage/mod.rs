//! Storage: the inbox, where every accepted message is kept exactly as it
//! arrived. A receiver answers 2xx only after its message is committed here;
//! everything that happens to a message afterwards starts from this table.
//! The shop's orders live in the same file (`orders.rs`), so the handler
//! can later move an order in the same transaction as it settles a message.
//!
//! Writes go through the one writer thread (`writer.rs`), which commits what
//! has queued up in one transaction: a commit costs an fsync however many
//! rows it holds, so concurrent deliveries share it.

pub mod orders;
pub mod postback;
pub mod reader;
pub mod sqlite;
pub mod views;
pub mod writer;

use ipn_core::Dialect;
use ipn_core::paypal::Answer;

/// A storage failure: the database is unreachable, full or corrupt. Never an
/// expected outcome, so it carries context, not structure.
pub type StoreError = anyhow::Error;

/// Where a message stands. `Received` and `Unverified` are where every
/// message starts; a PayPal message then becomes `Verified` or `Invalid`.
/// Later slices add the states that follow (applied).
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

/// The inbox row's id, in arrival order.
pub type InboxId = i64;

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
