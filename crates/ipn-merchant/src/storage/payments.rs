//! What the notification handler records: every payment fact heard of
//! (valid or not), the refunds and reversals held until their payment
//! comes, the flags raised for review, and the keys of the notices already
//! applied.

use ipn_core::event::EventType;
use ipn_core::money::Money;

use super::StoreError;
use super::inbox::InboxId;
use crate::model::{Fact, PaymentKind};

/// A payment notice's claim, as the handler records it.
#[derive(Debug, Clone, Copy)]
pub struct PaymentRecord<'a> {
    /// `pay_…`: the charge's, or the refund's or reversal's own.
    pub txn_id: &'a str,
    /// The charge a refund or reversal belongs to.
    pub parent_id: Option<&'a str>,
    pub kind: PaymentKind,
    /// Signed: negative for money going back.
    pub amount: Money,
    /// The order it belongs to (or names, when that order does not exist).
    pub order_id: Option<&'a str>,
    /// The subscription a period payment pays for.
    pub subscription_id: Option<&'a str>,
    /// Who it says was paid.
    pub receiver: Option<&'a str>,
    pub livemode: bool,
    /// False when it failed validation: it never counts.
    pub valid: bool,
    /// The message that said it.
    pub inbox_id: InboxId,
    pub at: i64,
}

/// A refund or reversal kept as its message claimed it, until its payment
/// is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldClaim {
    pub inbox_id: InboxId,
    pub event_type: EventType,
    pub txn_id: String,
    pub parent_id: String,
    pub kind: PaymentKind,
    pub amount: Money,
    pub invoice: Option<String>,
    pub receiver: Option<String>,
    pub livemode: bool,
    pub subscription_id: Option<String>,
    pub payer_email: Option<String>,
}

/// Whose payments: an order's (charges naming it as invoice) or a
/// subscription's (its period payments).
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    Order(&'a str),
    Subscription(&'a str),
}

pub trait PaymentReads {
    /// The order a known payment belongs to, if the payment is known.
    fn payment_order(&self, txn_id: &str) -> Result<Option<Option<String>>, StoreError>;
    /// The valid facts of `owner`'s charges, with their checked refunds and
    /// reversals (which may have come without an invoice), by transaction.
    fn facts(&self, owner: Owner<'_>) -> Result<Vec<Fact>, StoreError>;
    /// How many of a subscription's period charges completed, valid.
    fn paid_periods(&self, subscription_id: &str) -> Result<u32, StoreError>;
    /// The held claims on the charges of `order_id`, oldest message first.
    fn held_for_order(&self, order_id: &str) -> Result<Vec<HeldClaim>, StoreError>;
    /// The first of `keys` an earlier message claimed, if any.
    fn claimed(&self, keys: &[String]) -> Result<Option<String>, StoreError>;
    /// Whether an order has flags nobody resolved.
    fn is_flagged(&self, order_id: &str) -> Result<bool, StoreError>;
}

pub trait PaymentWrites {
    /// Records a claim about a transaction. A charge's status only moves
    /// forward (pending → completed, failed or denied), so a late `pending`
    /// after its `completed` changes nothing. A valid claim wins over an
    /// invalid one for the same transaction whichever came first: a bad
    /// copy (another currency, another receiver) can neither shadow nor
    /// spoil the real one.
    fn record_payment(&self, record: &PaymentRecord<'_>) -> Result<(), StoreError>;
    /// Keeps a refund or reversal whose payment is not known yet.
    fn hold(&self, claim: &HeldClaim) -> Result<(), StoreError>;
    /// Forgets a held claim once it was checked.
    fn release(&self, inbox_id: InboxId) -> Result<(), StoreError>;
    /// Claims a notice's key for message `inbox_id`; false if an earlier
    /// message holds it.
    fn claim_key(&self, key: &str, inbox_id: InboxId) -> Result<bool, StoreError>;
    /// Flags an order (or, with no order, just the message) for review.
    fn flag(
        &self,
        order_id: Option<&str>,
        inbox_id: InboxId,
        reason: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Resolves a flag (the first time counts). `None`: there is no such
    /// flag; otherwise its order id, empty for a flag on a message that
    /// named no order.
    fn resolve_flag(&self, flag_id: i64, now: i64) -> Result<Option<String>, StoreError>;
}

#[cfg(test)]
mod tests {
    use ipn_core::money::Currency;

    use super::*;
    use crate::model::ChargeStatus;
    use crate::storage::testing::each_store;

    fn charge<'a>(
        status: ChargeStatus,
        amount: i64,
        valid: bool,
        inbox_id: i64,
    ) -> PaymentRecord<'a> {
        PaymentRecord {
            txn_id: "pay_1",
            parent_id: None,
            kind: PaymentKind::Charge(status),
            amount: Money::new(amount, Currency::USD),
            order_id: Some("ord_1"),
            subscription_id: None,
            receiver: Some("mer_1"),
            livemode: false,
            valid,
            inbox_id,
            at: inbox_id,
        }
    }

    #[test]
    fn a_valid_claim_wins_and_a_charge_only_moves_forward() {
        each_store("a_valid_claim_wins", |store| {
            let record = |record: PaymentRecord<'static>| {
                store
                    .write_with(move |tx| tx.record_payment(&record))
                    .unwrap()
            };
            // A bad copy first (another amount): it never counts…
            record(charge(ChargeStatus::Completed, 1, false, 1));
            let facts = || store.read_with(|r| r.facts(Owner::Order("ord_1"))).unwrap();
            assert!(facts().is_empty());
            // …and the real one replaces it when it comes.
            record(charge(ChargeStatus::Pending, 1250, true, 2));
            record(charge(ChargeStatus::Completed, 1250, true, 3));
            record(charge(ChargeStatus::Pending, 1250, true, 4));
            record(charge(ChargeStatus::Completed, 99, false, 5));
            let facts = facts();
            assert_eq!(facts.len(), 1);
            assert_eq!(facts[0].kind, PaymentKind::Charge(ChargeStatus::Completed));
            assert_eq!(facts[0].amount, 1250);
            let rows = store
                .read_with(|r| r.payments(Owner::Order("ord_1")))
                .unwrap();
            assert_eq!(
                (rows[0].status.as_str(), rows[0].valid),
                ("completed", true)
            );
        });
    }

    #[test]
    fn a_key_is_claimed_once_and_flags_resolve_once() {
        each_store("a_key_is_claimed_once", |store| {
            let keys = vec!["evt_1".to_owned(), "txn:Completed".to_owned()];
            store
                .write_with(|tx| {
                    assert_eq!(tx.claimed(&keys)?, None);
                    assert!(tx.claim_key("txn:Completed", 1)?);
                    assert!(!tx.claim_key("txn:Completed", 2)?);
                    assert_eq!(tx.claimed(&keys)?.as_deref(), Some("txn:Completed"));
                    tx.flag(Some("ord_a"), 1, "open one", 5)?;
                    tx.flag(Some("ord_a"), 1, "closed", 5)?;
                    tx.flag(None, 2, "no order", 5)?;
                    assert_eq!(tx.resolve_flag(2, 6)?.as_deref(), Some("ord_a"));
                    assert_eq!(tx.resolve_flag(2, 7)?.as_deref(), Some("ord_a"));
                    assert_eq!(tx.resolve_flag(3, 6)?.as_deref(), Some(""));
                    assert_eq!(tx.resolve_flag(9, 6)?, None);
                    Ok(())
                })
                .unwrap();
            let open = store.read_with(|r| r.open_flags(10)).unwrap();
            assert_eq!(open.len(), 1);
            assert_eq!(open[0].reason, "open one");
            assert!(store.read_with(|r| r.is_flagged("ord_a")).unwrap());
            let all = store.read_with(|r| r.order_flags("ord_a")).unwrap();
            assert_eq!(all[1].resolved_at, Some(6), "the first resolution counts");
        });
    }

    /// A refund of `pay_1` said by message `inbox_id`.
    fn refund(inbox_id: i64) -> HeldClaim {
        HeldClaim {
            inbox_id,
            event_type: EventType::parse_lenient("payment.refunded").unwrap(),
            txn_id: format!("pay_r{inbox_id}"),
            parent_id: "pay_1".into(),
            kind: PaymentKind::Refund,
            amount: Money::new(-500, Currency::USD),
            invoice: Some("ord_1".into()),
            receiver: Some("mer_1".into()),
            livemode: false,
            subscription_id: None,
            payer_email: None,
        }
    }

    #[test]
    fn held_claims_wait_for_their_charge_and_facts_come_by_transaction() {
        each_store("held_claims_wait_for_their_charge", |store| {
            store
                .write_with(|tx| {
                    tx.hold(&refund(3))?;
                    tx.hold(&refund(2))?;
                    // Not the order's until its charge is known.
                    assert_eq!(tx.held_for_order("ord_1")?, []);
                    tx.record_payment(&charge(ChargeStatus::Completed, 1250, true, 1))?;
                    assert_eq!(tx.held_for_order("ord_1")?, [refund(2), refund(3)]);
                    tx.release(2)?;
                    assert_eq!(tx.held_for_order("ord_1")?, [refund(3)]);
                    tx.record_payment(&PaymentRecord {
                        txn_id: "pay_r3",
                        parent_id: Some("pay_1"),
                        kind: PaymentKind::Refund,
                        amount: Money::new(-500, Currency::USD),
                        order_id: None,
                        ..charge(ChargeStatus::Completed, 0, true, 3)
                    })?;
                    assert_eq!(tx.payment_order("pay_r3")?, Some(None));
                    assert_eq!(tx.payment_order("pay_1")?, Some(Some("ord_1".into())));
                    assert_eq!(tx.payment_order("pay_9")?, None);
                    Ok(())
                })
                .unwrap();
            let facts = store.read_with(|r| r.facts(Owner::Order("ord_1"))).unwrap();
            let ids: Vec<(&str, i64)> = facts
                .iter()
                .map(|f| (f.txn_id.as_str(), f.amount))
                .collect();
            assert_eq!(ids, [("pay_1", 1250), ("pay_r3", -500)]);
            let rows = store
                .read_with(|r| r.payments(Owner::Order("ord_1")))
                .unwrap();
            assert_eq!(rows.len(), 2, "a refund without an invoice is its charge's");
        });
    }
}
