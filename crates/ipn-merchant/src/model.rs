//! The merchant's vocabulary: plain types that the notification handler,
//! the mail worker and storage all speak, so that none of them has to
//! import another to name a payment's kind or an email's.
//!
//! - [`PaymentKind`], [`ChargeStatus`]: what a payment notice is about, and
//!   [`Fact`], one valid payment of an order as its state is derived from.
//! - [`SubscriptionStatus`]: where a subscription stands.
//! - [`EmailKind`], [`Rendered`], [`EmailStatus`]: which email, its words,
//!   and where it stands.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Where an original payment stands, as notices tell it. Later states win
/// over earlier ones whatever order they arrive in ([`ChargeStatus::rank`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeStatus {
    Pending,
    Completed,
    Failed,
    Denied,
}

impl ChargeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Denied => "denied",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => Self::Pending,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "denied" => Self::Denied,
            _ => return None,
        })
    }

    /// Pending comes before every other state and nothing follows those: a
    /// payment is pending, then completed, failed or denied, once.
    pub fn rank(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Completed | Self::Failed | Self::Denied => 1,
        }
    }
}

/// What a payment notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentKind {
    /// An original payment (a one-time payment or a subscription period).
    Charge(ChargeStatus),
    /// Money given back; a new transaction pointing at the charge.
    Refund,
    /// A chargeback; a new transaction pointing at the charge.
    Reversal,
    /// The chargeback was won: the money is the merchant's again.
    ReversalCanceled,
}

impl PaymentKind {
    /// The `kind` column of the payments table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Charge(_) => "charge",
            Self::Refund => "refund",
            Self::Reversal => "reversal",
            Self::ReversalCanceled => "reversal_canceled",
        }
    }
}

/// One valid payment fact of an order: a charge with the order as invoice,
/// or a refund or reversal of such a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub txn_id: String,
    pub parent_id: Option<String>,
    pub kind: PaymentKind,
    /// Signed minor units.
    pub amount: i64,
}

/// A subscription's state as the shop sees it: signup → `active`; a failed
/// charge → `past_due`; canceled → access until `paid_through`; expired →
/// no access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionStatus {
    Active,
    PastDue,
    Canceled,
    Expired,
}

impl SubscriptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "active" => Self::Active,
            "past_due" => Self::PastDue,
            "canceled" => Self::Canceled,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}

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
    /// the templates' `render` requires, no more and no fewer. Every value is
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

/// One email's words, rendered from its templates: what is queued, and
/// later sent, exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
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
    /// server rejected it permanently (5xx) the mail worker's `Retry::give_up_after` times.
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

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(Self::Queued),
            "sent" => Some(Self::Sent),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
