//! The payment object carried by `payment.*` and `subscription.payment` events.
//!
//! Amounts are integer minor units of `currency` (DESIGN §2). A refund or a
//! reversal is a payment of its own, with a new id, `parent_id` pointing at the
//! original, and a negative amount.
//!
//! Unknown fields are ignored when reading, so a receiver built on this crate
//! keeps working when a newer gateway adds fields (they are only ever added).

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use crate::id::{MerchantId, PaymentId, SubscriptionId};
use crate::money::{Currency, Money};

/// A payment as it stands after a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub id: PaymentId,
    /// The original payment, for refunds and reversals.
    #[serde(default)]
    pub parent_id: Option<PaymentId>,
    pub status: PaymentStatus,
    #[serde(default)]
    pub previous_status: Option<PaymentStatus>,
    pub amount: i64,
    #[serde(default)]
    pub fee: i64,
    pub currency: Currency,
    /// How much of the original payment has been refunded so far.
    #[serde(default)]
    pub refunded_amount: i64,
    pub merchant_id: MerchantId,
    pub receiver_email: String,
    pub payer: Payer,
    /// The merchant's order reference.
    #[serde(default)]
    pub invoice: Option<String>,
    #[serde(default)]
    pub custom: Option<Custom>,
    #[serde(default)]
    pub items: Vec<Item>,
    #[serde(default)]
    pub subscription_id: Option<SubscriptionId>,
    /// Why a pending payment has not cleared (PayPal's values: `echeck`,
    /// `paymentreview`, `unilateral`, …).
    #[serde(default)]
    pub pending_reason: Option<String>,
    /// Why money went back: `refund`, `chargeback`, …
    #[serde(default)]
    pub reason_code: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Payment {
    pub fn amount(&self) -> Money {
        Money::new(self.amount, self.currency)
    }

    pub fn fee(&self) -> Money {
        Money::new(self.fee, self.currency)
    }

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
    /// A chargeback the merchant won.
    CanceledReversal,
}

/// Who paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payer {
    pub email: String,
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
    pub sku: String,
    pub name: String,
    pub quantity: u32,
    /// Price of one unit, in minor units of the payment's currency.
    pub unit_amount: i64,
    pub kind: ItemKind,
}

/// Whether an item ships or is downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Physical,
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
    pub len: usize,
}

impl Custom {
    pub const MAX_CHARS: usize = 255;

    pub fn parse(value: impl Into<String>) -> Result<Self, CustomTooLong> {
        let value = value.into();
        let len = value.chars().count();
        if len > Self::MAX_CHARS {
            return Err(CustomTooLong { len });
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Custom {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_is_limited_to_255_characters_not_bytes() {
        assert!(Custom::parse("é".repeat(255)).is_ok());
        assert_eq!(
            Custom::parse("x".repeat(256)),
            Err(CustomTooLong { len: 256 })
        );
        let json = format!("\"{}\"", "x".repeat(256));
        assert!(serde_json::from_str::<Custom>(&json).is_err());
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
