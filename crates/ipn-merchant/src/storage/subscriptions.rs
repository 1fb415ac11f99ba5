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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testing::each_store;

    #[test]
    fn what_was_heard_keeps_the_latest_or_the_first() {
        each_store("what_was_heard_keeps_the_latest_or_the_first", |store| {
            store
                .write_with(|tx| {
                    tx.ensure_subscription("sub_1", Some("ann@example.com"), None, 10)?;
                    tx.ensure_subscription("sub_1", Some("bob@example.com"), Some("mer_1"), 11)?;
                    tx.subscription_paid("sub_1", 300)?;
                    tx.subscription_paid("sub_1", 200)?;
                    tx.subscription_failed("sub_1", 250)?;
                    tx.subscription_canceled("sub_1", 400)?;
                    tx.subscription_canceled("sub_1", 500)?;
                    tx.subscription_signed_up("sub_1", 100)?;
                    tx.subscription_signed_up("sub_1", 150)?;
                    tx.settle_subscription(
                        "sub_1",
                        SubscriptionStatus::Canceled,
                        2,
                        Some(900),
                        12,
                    )?;
                    tx.settle_subscription("sub_1", SubscriptionStatus::Canceled, 2, Some(800), 13)
                })
                .unwrap();
            let row = store
                .read_with(|r| r.subscription("sub_1"))
                .unwrap()
                .unwrap();
            assert_eq!(row.customer_email.as_deref(), Some("ann@example.com"));
            assert_eq!(row.status, SubscriptionStatus::Canceled);
            assert_eq!((row.paid_through, row.cycles_paid), (Some(900), 2));
            assert_eq!(
                (row.signed_up_at, row.created_at, row.updated_at),
                (Some(100), 10, 13)
            );
            let facts = store
                .read_with(|r| r.subscription_facts("sub_1"))
                .unwrap()
                .unwrap();
            assert_eq!(
                (facts.last_payment_at, facts.last_failure_at),
                (Some(300), Some(250))
            );
            assert!(facts.canceled && !facts.expired && !facts.link_decided);
            assert!(
                store
                    .read_with(|r| r.subscription("sub_2"))
                    .unwrap()
                    .is_none()
            );
        });
    }

    #[test]
    fn paid_through_only_moves_later_and_a_missing_one_is_kept_missing() {
        each_store("paid_through_only_moves_later", |store| {
            let object: Subscription = serde_json::from_value(serde_json::json!({
                "id": "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV",
                "status": "active",
                "merchant_id": "mer_01ARZ3NDEKTSV4RRFFQ69G5FAV",
                "receiver_email": "shop@example.com",
                "payer": {"email": "ann@example.com"},
                "amount": 999,
                "currency": "USD",
                "interval": "month",
                "interval_count": 1,
                "created_at": "2026-01-01T00:00:00Z",
            }))
            .unwrap();
            let paid_through = |store: &dyn crate::storage::Store| {
                store
                    .read_with(|r| r.subscription("sub_1"))
                    .unwrap()
                    .unwrap()
                    .paid_through
            };
            store
                .write_with(|tx| {
                    tx.ensure_subscription("sub_1", None, None, 1)?;
                    tx.save_subscription_object("sub_1", &object, None)
                })
                .unwrap();
            assert_eq!(paid_through(store), None);
            store
                .write_with(|tx| {
                    tx.save_subscription_object("sub_1", &object, Some(700))?;
                    tx.save_subscription_object("sub_1", &object, Some(600))?;
                    tx.save_subscription_object("sub_1", &object, None)?;
                    tx.decide_subscription_link("sub_1")?;
                    tx.set_subscription_order("sub_1", "ord_1")
                })
                .unwrap();
            assert_eq!(paid_through(store), Some(700));
            let facts = store
                .read_with(|r| r.subscription_facts("sub_1"))
                .unwrap()
                .unwrap();
            assert!(facts.link_decided);
            assert_eq!(facts.object.as_ref(), Some(&object));
            let row = store
                .read_with(|r| r.subscription("sub_1"))
                .unwrap()
                .unwrap();
            assert_eq!(row.order_id.as_deref(), Some("ord_1"));
        });
    }
}
