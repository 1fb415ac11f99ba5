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
    /// `sub_…` (PayPal's `subscr_id`).
    pub id: SubscriptionId,
    /// Where it stands after the change.
    pub status: SubscriptionStatus,
    /// The status before the change, when the subscription had one.
    #[serde(default)]
    pub previous_status: Option<SubscriptionStatus>,
    /// The merchant paid.
    pub merchant_id: MerchantId,
    /// The merchant's account email (PayPal's `receiver_email`).
    pub receiver_email: String,
    /// Who subscribed.
    pub payer: Payer,
    /// Charged each period, in minor units.
    pub amount: i64,
    /// The currency of `amount`.
    pub currency: Currency,
    /// The unit of a billing period.
    pub interval: Interval,
    /// Periods are `interval_count` intervals long ("every 3 months").
    pub interval_count: u32,
    /// Free days before the first charge.
    #[serde(default)]
    pub trial_days: u32,
    /// Periods to bill in all; `None` bills until canceled.
    #[serde(default)]
    pub total_cycles: Option<u32>,
    /// Periods paid so far.
    #[serde(default)]
    pub cycles_paid: u32,
    /// End of the period paid for (or of the trial): access lasts until
    /// then. Written in UTC.
    #[serde(default, with = "crate::rfc3339_utc::option")]
    pub paid_through: Option<OffsetDateTime>,
    /// Canceled, with access kept until `paid_through`.
    #[serde(default)]
    pub cancel_at_period_end: bool,
    /// The merchant's order reference.
    #[serde(default)]
    pub invoice: Option<String>,
    /// The merchant's pass-through value, from the signup.
    #[serde(default)]
    pub custom: Option<Custom>,
    /// When the subscriber signed up; written in UTC.
    #[serde(with = "crate::rfc3339_utc")]
    pub created_at: OffsetDateTime,
}

impl Subscription {
    /// `amount` (charged each period) as [`Money`].
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
    /// Paid up.
    Active,
    /// The last charge failed; it is being retried.
    PastDue,
    /// No further charges; access lasts until `paid_through`.
    Canceled,
    /// All cycles done, or canceled and past `paid_through`.
    Expired,
}

impl SubscriptionStatus {
    /// The name on the wire (`trialing`, `past_due`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trialing => "trialing",
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
        }
    }
}

impl std::fmt::Display for SubscriptionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    /// The name on the wire (`day`, `week`, `month`, `year`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Year => "year",
        }
    }

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

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
