//! Subscriptions as the shop knows them from their notices: what was heard
//! (a payment's time, a failure's, a cancellation, an expiry) and the state
//! the handler derives from it. Each "heard" write keeps the latest time or
//! the first one, so notices may arrive in any order.

use ipn_core::subscription::Subscription;

use super::StoreError;
use crate::model::SubscriptionStatus;

/// A subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    pub id: String,
    pub status: SubscriptionStatus,
    pub customer_email: Option<String>,
    pub paid_through: Option<i64>,
    pub cycles_paid: u32,
    /// When the subscriber signed up, once a notice said so.
    pub signed_up_at: Option<i64>,
    /// The shop's order that bought it, if one did.
    pub order_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What is known of a subscription, from which its state is derived.
#[derive(Debug, Clone)]
pub struct SubscriptionFacts {
    /// The object itself, when a notice carried it (standard dialect).
    pub object: Option<Subscription>,
    pub canceled: bool,
    pub expired: bool,
    /// When the latest payment and the latest failure happened (ms).
    pub last_payment_at: Option<i64>,
    pub last_failure_at: Option<i64>,
    /// Whether its tie to an order was decided (made or refused).
    pub link_decided: bool,
}

pub trait SubscriptionReads {
    fn subscription(&self, id: &str) -> Result<Option<SubscriptionRow>, StoreError>;
    fn subscription_facts(&self, id: &str) -> Result<Option<SubscriptionFacts>, StoreError>;
}

pub trait SubscriptionWrites {
    /// Makes the subscription's row if this is its first notice; an email
    /// or merchant already known stays.
    fn ensure_subscription(
        &self,
        id: &str,
        email: Option<&str>,
        merchant_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError>;
    /// A period was paid at `at` (the latest payment is kept).
    fn subscription_paid(&self, id: &str, at: i64) -> Result<(), StoreError>;
    /// A charge failed at `at` (the latest failure is kept).
    fn subscription_failed(&self, id: &str, at: i64) -> Result<(), StoreError>;
    /// It was canceled (the first time counts).
    fn subscription_canceled(&self, id: &str, at: i64) -> Result<(), StoreError>;
    /// It expired (the first time counts).
    fn subscription_expired(&self, id: &str, at: i64) -> Result<(), StoreError>;
    /// The subscriber signed up at `at` (the first time heard counts).
    fn subscription_signed_up(&self, id: &str, at: i64) -> Result<(), StoreError>;
    /// Keeps the latest object a notice carried; `paid_through` only moves
    /// later.
    fn save_subscription_object(
        &self,
        id: &str,
        object: &Subscription,
        paid_through: Option<i64>,
    ) -> Result<(), StoreError>;
    /// Writes the derived state; `paid_through` only moves later.
    fn settle_subscription(
        &self,
        id: &str,
        status: SubscriptionStatus,
        cycles_paid: u32,
        paid_through: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Records that its tie to an order was decided.
    fn decide_subscription_link(&self, id: &str) -> Result<(), StoreError>;
    /// Ties it to the order that bought it.
    fn set_subscription_order(&self, id: &str, order_id: &str) -> Result<(), StoreError>;
}
