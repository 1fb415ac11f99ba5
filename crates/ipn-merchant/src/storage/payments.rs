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
