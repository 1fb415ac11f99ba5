//! The subscription object carried by `subscription.*` events (except
//! `subscription.payment`, which carries the period's payment).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::id::{MerchantId, SubscriptionId};
use crate::money::{Currency, Money};
use crate::payment::{Custom, Payer};

/// A subscription as it stands after a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub status: SubscriptionStatus,
    #[serde(default)]
    pub previous_status: Option<SubscriptionStatus>,
    pub merchant_id: MerchantId,
    pub receiver_email: String,
    pub payer: Payer,
    /// Charged each period, in minor units.
    pub amount: i64,
    pub currency: Currency,
    pub interval: Interval,
    /// Periods are `interval_count` intervals long ("every 3 months").
    pub interval_count: u32,
    #[serde(default)]
    pub trial_days: u32,
    /// Periods to bill in all; `None` bills until canceled.
    #[serde(default)]
    pub total_cycles: Option<u32>,
    /// Periods paid so far.
    #[serde(default)]
    pub cycles_paid: u32,
    /// End of the period paid for (or of the trial): access lasts until then.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub paid_through: Option<OffsetDateTime>,
    #[serde(default)]
    pub cancel_at_period_end: bool,
    #[serde(default)]
    pub invoice: Option<String>,
    #[serde(default)]
    pub custom: Option<Custom>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Subscription {
    pub fn amount(&self) -> Money {
        Money::new(self.amount, self.currency)
    }
}

/// Where a subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// In its free trial.
    Trialing,
    Active,
    /// The last charge failed; it is being retried.
    PastDue,
    /// No further charges; access lasts until `paid_through`.
    Canceled,
    /// All cycles done, or canceled and past `paid_through`.
    Expired,
}

/// The unit of a billing period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Day,
    Week,
    Month,
    Year,
}

impl Interval {
    /// PayPal's unit letter for `period3` (`D`, `W`, `M`, `Y`).
    pub fn paypal_unit(self) -> char {
        match self {
            Self::Day => 'D',
            Self::Week => 'W',
            Self::Month => 'M',
            Self::Year => 'Y',
        }
    }
}
