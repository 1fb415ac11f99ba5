//! The customer email outbox (DESIGN §5): each email is queued in the SAME
//! transaction as the state change that calls for it, and sent afterwards by
//! one worker, so an order is never paid without its email queued, and a
//! slow or absent mail server never holds up the notification handler.
//!
//! - `templates.rs`: the emails' text and HTML, files under
//!   `templates/mail/` built in with `include_str!`, optionally overridden
//!   from a folder; `{{name}}` placeholders, every one checked.
//! - `outbox.rs`: the `emails` table's queries:
//!   [`enqueue`] for the handler, [`for_order`], [`for_subscription`] and
//!   [`recent`] for the API and the admin page, and the worker's own.
//! - `transport.rs`: where emails go: an SMTP server ([`Transport::smtp`],
//!   lettre) or, without one, `.eml` files in a folder
//!   ([`Transport::folder`]).
//! - `worker.rs`: [`MailWorker`], which sends what is due and marks it.
//!
//! How the handler queues an email, in outline:
//!
//! ```text
//! let rendered = templates.render(EmailKind::OrderPaid, &vars)?;
//! mail::enqueue(&tx, &NewEmail { dedupe_key: format!("{order_id}/order_paid"), .. })?;
//! tx.commit()?;
//! wake.notify_one(); // after the commit, so the worker sees the row
//! ```
//!
//! **Invariant:** one email row is sent by one worker, and there is one
//! worker per process; a second merchant process on the same database file
//! would send twice (it is not supported). An email sent but not yet marked
//! when the process dies is sent again after the restart, with the same
//! `Message-ID` (`<email-{id}.{hash}@ipn-merchant>`), so the duplicate is
//! recognisable; a folder rewrite replaces the same file.

mod outbox;
mod templates;
mod transport;
mod worker;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

pub use outbox::{enqueue, for_order, for_subscription, recent};
pub use templates::{Rendered, TemplateError, Templates, Vars};
pub use transport::Transport;
pub use worker::{MailWorker, Mailer, Pass, Retry};

/// Which email: each kind has its own template pair and its own variables
/// ([`EmailKind::vars`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailKind {
    /// The order is paid (and, for physical goods, about to ship).
    OrderPaid,
    /// A payment arrived but has not cleared (e.g. a bank transfer).
    PaymentPending,
    /// A payment for the order failed.
    PaymentFailed,
    /// All or part of the order was refunded.
    Refunded,
    /// The payment was reversed (a chargeback or dispute).
    Reversed,
    /// A reversal was canceled: the money is back with the shop.
    ReversalCanceled,
    /// A download link for a digital product.
    DownloadLink,
    SubscriptionStarted,
    SubscriptionRenewed,
    SubscriptionPaymentFailed,
    SubscriptionCanceled,
    SubscriptionExpired,
}

impl EmailKind {
    /// Every kind, in declaration order.
    pub const ALL: &[EmailKind] = &[
        Self::OrderPaid,
        Self::PaymentPending,
        Self::PaymentFailed,
        Self::Refunded,
        Self::Reversed,
        Self::ReversalCanceled,
        Self::DownloadLink,
        Self::SubscriptionStarted,
        Self::SubscriptionRenewed,
        Self::SubscriptionPaymentFailed,
        Self::SubscriptionCanceled,
        Self::SubscriptionExpired,
    ];

    /// The name stored in the `kind` column and used for the template files
    /// (`{name}.txt`, `{name}.html`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderPaid => "order_paid",
            Self::PaymentPending => "payment_pending",
            Self::PaymentFailed => "payment_failed",
            Self::Refunded => "refunded",
            Self::Reversed => "reversed",
            Self::ReversalCanceled => "reversal_canceled",
            Self::DownloadLink => "download_link",
            Self::SubscriptionStarted => "subscription_started",
            Self::SubscriptionRenewed => "subscription_renewed",
            Self::SubscriptionPaymentFailed => "subscription_payment_failed",
            Self::SubscriptionCanceled => "subscription_canceled",
            Self::SubscriptionExpired => "subscription_expired",
        }
    }

    /// The variables this kind's templates may use, and which
    /// [`Templates::render`] requires, no more and no fewer. Every value is
    /// text the caller formatted (amounts as `"USD 19.99"`, times as the
    /// customer should read them).
    ///
    /// | kind | variables |
    /// |---|---|
    /// | every kind | `shop_name`, `customer_email` |
    /// | `order_paid` | `order_id`, `order_url`, `total`, `items` |
    /// | `payment_pending` | `order_id`, `order_url`, `total`, `reason` |
    /// | `payment_failed` | `order_id`, `order_url`, `total`, `reason` |
    /// | `refunded` | `order_id`, `order_url`, `amount` (refunded), `total` |
    /// | `reversed` | `order_id`, `order_url`, `amount`, `reason` |
    /// | `reversal_canceled` | `order_id`, `order_url`, `amount` |
    /// | `download_link` | `order_id`, `order_url`, `product_name`, `download_url`, `download_expires`, `downloads_left` |
    /// | `subscription_started` | `subscription_id`, `amount`, `paid_through` |
    /// | `subscription_renewed` | `subscription_id`, `amount`, `paid_through` |
    /// | `subscription_payment_failed` | `subscription_id`, `amount`, `paid_through`, `reason` |
    /// | `subscription_canceled` | `subscription_id`, `paid_through` |
    /// | `subscription_expired` | `subscription_id` |
    ///
    /// `items` is a preformatted list, one line per item (e.g.
    /// `"2 × Poster: USD 10.00"`); `reason` a short sentence the customer
    /// can read (e.g. the pending reason).
    pub fn vars(self) -> &'static [&'static str] {
        match self {
            Self::OrderPaid => &[
                "shop_name",
                "customer_email",
                "order_id",
                "order_url",
                "total",
                "items",
            ],
            Self::PaymentPending | Self::PaymentFailed => &[
                "shop_name",
                "customer_email",
                "order_id",
                "order_url",
                "total",
                "reason",
            ],
            Self::Refunded => &[
                "shop_name",
                "customer_email",
                "order_id",
                "order_url",
                "amount",
                "total",
            ],
            Self::Reversed => &[
                "shop_name",
                "customer_email",
                "order_id",
                "order_url",
                "amount",
                "reason",
            ],
            Self::ReversalCanceled => &[
                "shop_name",
                "customer_email",
                "order_id",
                "order_url",
                "amount",
            ],
            Self::DownloadLink => &[
                "shop_name",
                "customer_email",
                "order_id",
                "order_url",
                "product_name",
                "download_url",
                "download_expires",
                "downloads_left",
            ],
            Self::SubscriptionStarted | Self::SubscriptionRenewed => &[
                "shop_name",
                "customer_email",
                "subscription_id",
                "amount",
                "paid_through",
            ],
            Self::SubscriptionPaymentFailed => &[
                "shop_name",
                "customer_email",
                "subscription_id",
                "amount",
                "paid_through",
                "reason",
            ],
            Self::SubscriptionCanceled => &[
                "shop_name",
                "customer_email",
                "subscription_id",
                "paid_through",
            ],
            Self::SubscriptionExpired => &["shop_name", "customer_email", "subscription_id"],
        }
    }
}

impl fmt::Display for EmailKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `kind` column value that names no [`EmailKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown email kind `{0}`")]
pub struct UnknownKind(pub String);

impl FromStr for EmailKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// Where an email stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailStatus {
    /// Waiting to be sent (for the first time, or again after a failure).
    Queued,
    /// Accepted by the SMTP server, or written to the mail folder.
    Sent,
    /// Given up on: the message cannot be built (an invalid address) or the
    /// server rejected it permanently (5xx) [`Retry::give_up_after`] times.
    Failed,
}

impl EmailStatus {
    /// The name stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(Self::Queued),
            "sent" => Some(Self::Sent),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// An email to queue with [`enqueue`].
#[derive(Debug, Clone)]
pub struct NewEmail {
    /// What makes this email unique, e.g. `"ord_…/order_paid"` or
    /// `"sub_…/renewed/2026-12"`: an email whose key was queued before is
    /// not queued again, so a message handled twice cannot email twice.
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

/// One email as the API and the admin page show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmailRow {
    pub id: i64,
    pub kind: EmailKind,
    pub to: String,
    pub order_id: Option<String>,
    pub subscription_id: Option<String>,
    pub subject: String,
    pub status: EmailStatus,
    /// Attempts made so far, the successful one included.
    pub attempts: u32,
    /// Why the last attempt failed (`None` once sent).
    pub last_error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When the next attempt is due, while `queued`.
    pub next_try_at: i64,
    pub sent_at: Option<i64>,
}

/// A time as a customer reads it in an email: `25 January 2027, 21:34 UTC`.
pub fn customer_date(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[day padding:none] [month repr:long] [year], [hour]:[minute] UTC"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_emails_read_plainly() {
        let at = time::macros::datetime!(2027-01-05 21:34:42 +01:00);
        assert_eq!(customer_date(at), "5 January 2027, 20:34 UTC");
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for &kind in EmailKind::ALL {
            assert_eq!(kind.as_str().parse::<EmailKind>(), Ok(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::from(kind.as_str())
            );
        }
        assert!("order_shipped".parse::<EmailKind>().is_err());
    }
}
