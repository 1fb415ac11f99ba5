//! The payment object carried by `payment.*` and `subscription.payment` events.
//!
//! Amounts are integer minor units of `currency`, never floats. A refund or a
//! reversal is a payment of its own, with a new id, `parent_id` pointing at the
//! original, and a negative amount.
//!
//! Unknown fields are ignored when reading, so a receiver built on this crate
//! keeps working when a newer gateway adds fields (they are only ever added).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use crate::id::{MerchantId, PaymentId, SubscriptionId};
use crate::money::{Currency, Money};

/// A payment as it stands after a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// `pay_…`, the transaction id (PayPal's `txn_id`).
    pub id: PaymentId,
    /// The original payment, for refunds and reversals.
    #[serde(default)]
    pub parent_id: Option<PaymentId>,
    /// Where it stands after the change.
    pub status: PaymentStatus,
    /// The status before the change, when the payment had one.
    #[serde(default)]
    pub previous_status: Option<PaymentStatus>,
    /// In minor units of `currency`; negative for refunds and reversals.
    pub amount: i64,
    /// The processing fee, in minor units (negative when returned).
    #[serde(default)]
    pub fee: i64,
    /// The currency of every amount of the payment.
    pub currency: Currency,
    /// How much of the original payment has been refunded so far.
    #[serde(default)]
    pub refunded_amount: i64,
    /// The merchant paid.
    pub merchant_id: MerchantId,
    /// The merchant's account email (PayPal's `receiver_email`).
    pub receiver_email: String,
    /// Who paid.
    pub payer: Payer,
    /// The merchant's order reference.
    #[serde(default)]
    pub invoice: Option<String>,
    /// The merchant's pass-through value, from the checkout.
    #[serde(default)]
    pub custom: Option<Custom>,
    /// The order's lines.
    #[serde(default)]
    pub items: Vec<Item>,
    /// The subscription a period payment belongs to.
    #[serde(default)]
    pub subscription_id: Option<SubscriptionId>,
    /// Why a pending payment has not cleared (PayPal's values: `echeck`,
    /// `paymentreview`, `unilateral`, …).
    #[serde(default)]
    pub pending_reason: Option<String>,
    /// Why money went back: `refund`, `chargeback`, …
    #[serde(default)]
    pub reason_code: Option<String>,
    /// When the payment was made; written in UTC.
    #[serde(with = "crate::rfc3339_utc")]
    pub created_at: OffsetDateTime,
}

impl Payment {
    /// `amount` as [`Money`].
    pub fn amount(&self) -> Money {
        Money::new(self.amount, self.currency)
    }

    /// `fee` as [`Money`].
    pub fn fee(&self) -> Money {
        Money::new(self.fee, self.currency)
    }

    /// `refunded_amount` as [`Money`].
    pub fn refunded(&self) -> Money {
        Money::new(self.refunded_amount, self.currency)
    }
}

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Accepted, not cleared yet.
    Pending,
    /// Money captured.
    Completed,
    /// Did not clear.
    Failed,
    /// Refused.
    Denied,
    /// A refund (the refund's own status).
    Refunded,
    /// A chargeback (the reversal's own status).
    Reversed,
    /// A chargeback the merchant won (`payment.reversal_canceled`).
    ReversalCanceled,
}

impl PaymentStatus {
    /// The name on the wire (`pending`, `reversal_canceled`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Denied => "denied",
            Self::Refunded => "refunded",
            Self::Reversed => "reversed",
            Self::ReversalCanceled => "reversal_canceled",
        }
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payer {
    /// Where receipts go (PayPal's `payer_email`).
    pub email: String,
    /// Full name, as one string.
    #[serde(default)]
    pub name: Option<String>,
    /// The gateway's id for the payer (PayPal's `payer_id`).
    #[serde(default)]
    pub id: Option<String>,
}

impl Payer {
    /// The name split as PayPal's `first_name` and `last_name`: the last word
    /// is the last name.
    pub fn first_and_last_name(&self) -> (&str, &str) {
        let name = self.name.as_deref().unwrap_or("").trim();
        match name.rsplit_once(' ') {
            Some((first, last)) => (first.trim_end(), last),
            None => (name, ""),
        }
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The merchant's product code (PayPal's `item_number`).
    pub sku: String,
    /// What the buyer saw (PayPal's `item_name`).
    pub name: String,
    /// Units bought, at least 1.
    pub quantity: u32,
    /// Price of one unit, in minor units of the payment's currency.
    pub unit_amount: i64,
    /// Whether it ships or is downloaded.
    pub kind: ItemKind,
}

/// Whether an item ships or is downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// Shipped.
    Physical,
    /// Downloaded.
    Digital,
}

/// The merchant's opaque pass-through value, at most 255 characters (PayPal's
/// limit for `custom`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Custom(String);

/// A `custom` value over the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("custom is {len} characters long, at most {max} are allowed", max = Custom::MAX_CHARS)]
pub struct CustomTooLong {
    /// The refused value's length in characters.
    pub len: usize,
}

impl Custom {
    /// PayPal's limit, in characters (not bytes).
    pub const MAX_CHARS: usize = 255;

    /// Takes a value of at most [`Custom::MAX_CHARS`] characters.
    pub fn parse(value: impl Into<String>) -> Result<Self, CustomTooLong> {
        let value = value.into();
        let len = value.chars().count();
        if len > Self::MAX_CHARS {
            return Err(CustomTooLong { len });
        }
        Ok(Self(value))
    }

    /// The value as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Custom {
    type Err = CustomTooLong;
    fn from_str(s: &str) -> Result<Self, CustomTooLong> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for Custom {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// A text field (an invoice, `custom`, a name) that holds a control
/// character: a NUL, an escape sequence or a line break has no place in
/// text that reaches IPN forms, emails and pages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field} contains a control character (U+{code:04X}): text fields take printable text only"
)]
pub struct ControlCharacter {
    /// The field as the request names it (`invoice`, `items[2].name`).
    pub field: String,
    /// The first control character's code point.
    pub code: u32,
}

/// Refuses `value` when it holds a control character (C0, DEL or C1: tab
/// and line breaks included).
pub fn check_text(field: &str, value: &str) -> Result<(), ControlCharacter> {
    match value.chars().find(|c| c.is_control()) {
        None => Ok(()),
        Some(c) => Err(ControlCharacter {
            field: field.to_owned(),
            code: u32::from(c),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_refuse_control_characters() {
        assert_eq!(check_text("invoice", "order-42 « é »"), Ok(()));
        for bad in ["a\0b", "\u{1b}[31m", "a\tb", "a\nb", "\u{7f}", "\u{85}"] {
            let error = check_text("invoice", bad).unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with("invoice contains a control character")
            );
        }
        assert_eq!(check_text("custom", "x\0").unwrap_err().code, 0);
    }

    #[test]
    fn custom_is_limited_to_255_characters_not_bytes() {
        assert!(Custom::parse("é".repeat(255)).is_ok());
        assert_eq!(
            Custom::parse("x".repeat(256)),
            Err(CustomTooLong { len: 256 })
        );
        let json = format!("\"{}\"", "x".repeat(256));
        assert!(serde_json::from_str::<Custom>(&json).is_err());
        assert_eq!("a=1".parse::<Custom>().unwrap().as_str(), "a=1");
        assert!("x".repeat(256).parse::<Custom>().is_err());
    }

    #[test]
    fn a_won_chargeback_is_named_like_its_event_type() {
        let json = serde_json::to_string(&PaymentStatus::ReversalCanceled).unwrap();
        assert_eq!(json, "\"reversal_canceled\"");
        assert_eq!(
            serde_json::from_str::<PaymentStatus>(&json).unwrap(),
            PaymentStatus::ReversalCanceled
        );
    }

    #[test]
    fn statuses_print_as_their_wire_names() {
        use PaymentStatus as S;
        for status in [
            S::Pending,
            S::Completed,
            S::Failed,
            S::Denied,
            S::Refunded,
            S::Reversed,
            S::ReversalCanceled,
        ] {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{status}\""));
            assert_eq!(status.as_str(), status.to_string());
        }
    }

    #[test]
    fn payer_names_split_on_the_last_word() {
        let payer = |name: Option<&str>| Payer {
            email: "a@example.com".into(),
            name: name.map(Into::into),
            id: None,
        };
        assert_eq!(
            payer(Some("Ada Lovelace")).first_and_last_name(),
            ("Ada", "Lovelace")
        );
        assert_eq!(
            payer(Some("Jean Paul Sartre")).first_and_last_name(),
            ("Jean Paul", "Sartre")
        );
        assert_eq!(payer(Some("Cher")).first_and_last_name(), ("Cher", ""));
        assert_eq!(payer(None).first_and_last_name(), ("", ""));
    }
}
