//! The notification handler: turns inbox messages into order states,
//! download grants, subscription access and customer emails, exactly once
//! in effect.
//!
//! It runs on the writer thread, after the writer commits messages that are
//! ready (standard ones at once, PayPal ones once `VERIFIED`), and at start
//! for whatever a restart left waiting. Each pass takes up to [`PASS`]
//! messages oldest first and handles them in ONE transaction with the state
//! they change and the emails they queue, so a crash leaves either all of a
//! message's effects or none, and the message still waiting.
//!
//! For each message:
//! 1. read it (`notice.rs`): a message that cannot be read is `rejected`;
//! 2. claim its key: a notice seen before is a `duplicate` and does nothing;
//! 3. validate it against its order (receiver, currency, amount, mode): a
//!    mismatch records the payment as invalid (it never counts) and flags
//!    the order with the reason;
//! 4. record the payment fact and re-derive the order's state from all its
//!    valid facts (`order_state.rs`), which is what makes arrival order
//!    irrelevant; then grant or revoke downloads and queue the emails the
//!    new state calls for, each under a key so it is queued once.
//!
//! Subscriptions follow the same pattern in `subscriptions.rs`. Every read
//! and write goes through the storage interface ([`Tx`]); what they mean is
//! decided here.

pub mod notice;
pub mod order_state;
pub mod subscriptions;

use std::sync::Arc;
use std::time::Duration;

use ipn_core::Dialect;
use ipn_core::money::Money;
use ipn_core::payment::ItemKind;
use time::OffsetDateTime;
use tokio::sync::Notify;

use self::notice::{Notice, PaymentNotice, Read};
use self::order_state::{Derived, OrderStatus};
use crate::catalog::Catalog;
use crate::clock::millis;
use crate::downloads::{self, GrantRequest, Policy, SigningKey};
use crate::mail::{Templates, Vars};
use crate::model::{ChargeStatus, EmailKind, Fact, PaymentKind};
use crate::storage::{
    Grant, Handled, HeldClaim, InboxId, NewEmail, Order, Outcome, Owner, PaymentRecord, Store,
    StoreError, Tx, Waiting,
};

/// Messages handled per transaction: big enough to share a commit's fsync
/// among many, small enough that receivers queued behind it wait little.
pub const PASS: usize = 512;

/// How many times a message whose handling failed (on itself, not on the
/// database) is tried before it is set aside as `failed` (kept, shown to the
/// operator) so that it cannot hold up the messages behind it.
pub const MAX_ATTEMPTS: u32 = 5;

/// What the handler needs besides the database.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Live mode: a shop in test mode takes only test payments, a live shop
    /// only live ones.
    pub live: bool,
    /// The gateway merchant this shop is, when known: subscription notices
    /// (which have no order to compare with) must name it.
    pub merchant_id: Option<String>,
    /// The shop's name in emails.
    pub shop_name: String,
    /// The shop's base URL as customers reach it (links in emails).
    pub public_url: String,
    pub catalog: Arc<Catalog>,
    pub templates: Arc<Templates>,
    pub downloads: Policy,
    /// Signs the links in download emails.
    pub download_key: SigningKey,
    pub clock: crate::clock::Clock,
}

/// The handler, owned by the writer thread.
#[derive(Debug)]
pub struct Handler {
    settings: Settings,
    /// Notified when a pass queued emails.
    mail_wake: Arc<Notify>,
}

/// What an operator's action on an order came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Review {
    Done,
    /// No such order or flag.
    NotFound,
    /// The action does not apply (a refunded order cannot be shipped).
    Refused(String),
}

/// What a pass found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassResult {
    /// Nothing more is waiting.
    Done,
    /// A full pass: more may be waiting.
    More,
    /// Messages wait for a retry after a failure; the next is due then.
    RetryIn(Duration),
}

impl Handler {
    pub fn new(settings: Settings, mail_wake: Arc<Notify>) -> Self {
        Self {
            settings,
            mail_wake,
        }
    }

    /// Handles up to [`PASS`] waiting messages in one transaction.
    ///
    /// An error is a storage failure (the disk, a lock): nothing of the pass
    /// is kept, and the writer tries again later with the same messages.
    /// Any other failure belongs to one message: it alone is undone and
    /// tried again after a delay (1 s, doubling), and after
    /// [`MAX_ATTEMPTS`] it is set aside as `failed` (kept, shown on /admin,
    /// where it can be sent back) so that it cannot hold up the others.
    pub fn pass(&self, store: &dyn Store) -> Result<PassResult, StoreError> {
        let wall = crate::clock::wall_ms();
        let mut emails = 0;
        let mut full = false;
        let mut next_retry = None;
        store.write(&mut |tx| {
            emails = 0;
            let waiting = tx.waiting(wall, PASS)?;
            for message in &waiting {
                let now = self.settings.clock.now();
                let mut queued = 0;
                let handled = tx.attempt(&mut |tx| {
                    queued = self.handle(tx, message, now)?;
                    Ok(())
                })?;
                match handled {
                    Ok(()) => emails += queued,
                    Err(error) => self.failed(tx, message, &format!("{error:#}"), wall, now)?,
                }
            }
            full = waiting.len() == PASS;
            next_retry = if full { None } else { tx.next_retry()? };
            Ok(())
        })?;
        if emails > 0 {
            self.mail_wake.notify_one();
        }
        Ok(if full {
            PassResult::More
        } else if let Some(at) = next_retry {
            PassResult::RetryIn(Duration::from_millis(
                u64::try_from(at.saturating_sub(wall)).unwrap_or(0),
            ))
        } else {
            PassResult::Done
        })
    }

    /// Counts a failed attempt at a message, which is tried again after 1 s,
    /// 2 s, 4 s … (`wall` is wall-clock ms: retry delays are real time);
    /// after [`MAX_ATTEMPTS`] it is set aside, and raised for review so that
    /// it is seen until someone sends it back.
    fn failed(
        &self,
        tx: &dyn Tx,
        message: &Waiting,
        error: &str,
        wall: i64,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let attempts = message.attempts.saturating_add(1);
        let retry_at = wall.saturating_add(1000 << message.attempts.min(16));
        tx.record_failure(message.id, attempts, error, retry_at)?;
        tracing::error!(
            inbox.id = message.id,
            attempts,
            error,
            "handling a message failed"
        );
        if attempts >= MAX_ATTEMPTS {
            let reason = format!(
                "message #{} could not be handled ({attempts} attempts): {error}",
                message.id
            );
            tx.flag(None, message.id, &reason, millis(now))?;
            let handled = Handled {
                detail: Some(error),
                ..Handled::default()
            };
            tx.mark_handled(message.id, Outcome::Failed, &handled, millis(now))?;
        }
        Ok(())
    }

    /// Wakes the mail worker: the writer calls it after committing work that
    /// may have queued emails outside a pass (an operator's review).
    pub fn wake_mail(&self) {
        self.mail_wake.notify_one();
    }

    /// Handles one message; returns how many emails it queued.
    fn handle(
        &self,
        tx: &dyn Tx,
        message: &Waiting,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let read = match message.dialect {
            Dialect::Paypal => notice::read_paypal(&message.body),
            Dialect::Standard => notice::read_standard(&message.body),
        };
        let at = millis(now);
        let read: Read = match read {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(inbox.id = message.id, %error, "message rejected");
                let handled = Handled {
                    detail: Some(&error.0),
                    ..Handled::default()
                };
                tx.mark_handled(message.id, Outcome::Rejected, &handled, at)?;
                return Ok(0);
            }
        };
        if let Some(seen) = tx.claimed(&read.keys)? {
            let detail = format!("{seen} was applied before");
            let handled = Handled {
                detail: Some(&detail),
                ..Handled::default()
            };
            tx.mark_handled(message.id, Outcome::Duplicate, &handled, at)?;
            return Ok(0);
        }
        for key in &read.keys {
            tx.claim_key(key, message.id)?;
        }
        match read.notice {
            Notice::Ignored(why) => {
                let handled = Handled {
                    detail: Some(&why),
                    ..Handled::default()
                };
                tx.mark_handled(message.id, Outcome::Ignored, &handled, at)?;
                Ok(0)
            }
            Notice::Payment(payment) if payment.subscription_id.is_some() => {
                subscriptions::payment(self, tx, message.id, &payment, read.happened_at, now)
            }
            Notice::Payment(payment) => self.payment(tx, message.id, &payment, now),
            Notice::Subscription(notice) => {
                subscriptions::change(self, tx, message.id, &notice, read.happened_at, now)
            }
        }
    }

    /// A payment notice for an order.
    fn payment(
        &self,
        tx: &dyn Tx,
        inbox_id: InboxId,
        notice: &PaymentNotice,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let at = millis(now);
        let event_type = notice.event_type.to_string();
        let mark = |outcome, order_id: Option<&str>, detail: Option<&str>| {
            let handled = Handled {
                event_type: Some(&event_type),
                order_id,
                detail,
                ..Handled::default()
            };
            tx.mark_handled(inbox_id, outcome, &handled, at)
        };
        // A refund or reversal belongs to its charge's order, whatever its
        // invoice says; a charge to the order its invoice names.
        let order_id = match &notice.parent_id {
            None => notice.invoice.clone(),
            Some(parent) => match tx.payment_order(parent)? {
                Some(order_id) => order_id,
                None => {
                    // Its payment is not known yet: kept as claimed, and
                    // checked and counted when the payment arrives
                    // (`settle_held`).
                    tx.hold(&held(inbox_id, notice, parent))?;
                    let detail = format!("waits for its payment {parent}");
                    mark(Outcome::Held, notice.invoice.as_deref(), Some(&detail))?;
                    return Ok(0);
                }
            },
        };
        let order = match &order_id {
            Some(id) => tx.order(id)?,
            None => None,
        };
        let Some(order) = order else {
            let reason = match &order_id {
                Some(id) => format!(
                    "{} is for order {id}, which this shop does not have",
                    notice.txn_id
                ),
                None => format!("{} names no order (no invoice)", notice.txn_id),
            };
            tx.record_payment(&record(notice, order_id.as_deref(), false, inbox_id, at))?;
            tx.flag(None, inbox_id, &reason, at)?;
            tracing::warn!(inbox.id = inbox_id, reason, "payment flagged");
            mark(Outcome::Flagged, None, Some(&reason))?;
            return Ok(0);
        };
        let mut problems = validate(notice, &order, self.settings.live);
        let valid = problems.is_empty();
        tx.record_payment(&record(notice, Some(&order.id), valid, inbox_id, at))?;
        if problems.is_empty() && notice.kind == PaymentKind::Charge(ChargeStatus::Completed) {
            // Another payment that still stands (not refunded or reversed).
            let facts = tx.facts(Owner::Order(&order.id))?;
            let others: Vec<&str> = order_state::completed_charges(&facts)
                .into_iter()
                .filter(|charge| charge.stands() && charge.fact.txn_id != notice.txn_id)
                .map(|charge| charge.fact.txn_id.as_str())
                .collect();
            if !others.is_empty() {
                problems.push(format!(
                    "paid twice: {} and {} both completed for this order; refund one",
                    others.join(", "),
                    notice.txn_id
                ));
            }
        }
        for problem in &problems {
            tracing::warn!(
                inbox.id = inbox_id,
                order.id = order.id,
                problem,
                "order flagged"
            );
            tx.flag(Some(&order.id), inbox_id, problem, at)?;
        }
        let queued = self.settle_order(tx, &order, now)?;
        if problems.is_empty() {
            tracing::debug!(
                inbox.id = inbox_id,
                event = event_type,
                txn = notice.txn_id,
                order.id = order.id,
                "IPN applied"
            );
            mark(Outcome::Applied, Some(&order.id), None)?;
        } else {
            mark(
                Outcome::Flagged,
                Some(&order.id),
                Some(&problems.join("; ")),
            )?;
        }
        Ok(queued)
    }

    /// Checks the refunds and reversals of `order` that came before their
    /// payment, now that it is known: each is validated as it would have
    /// been on arrival, and its message's outcome says what came of it.
    fn settle_held(&self, tx: &dyn Tx, order: &Order, at: i64) -> Result<(), StoreError> {
        for claim in tx.held_for_order(&order.id)? {
            let inbox_id = claim.inbox_id;
            let notice = released(claim);
            let problems = validate(&notice, order, self.settings.live);
            let valid = problems.is_empty();
            tx.record_payment(&record(&notice, Some(&order.id), valid, inbox_id, at))?;
            tx.release(inbox_id)?;
            if problems.is_empty() {
                tx.set_outcome(inbox_id, Outcome::Applied, &order.id, None)?;
            } else {
                for problem in &problems {
                    tx.flag(Some(&order.id), inbox_id, problem, at)?;
                }
                let detail = problems.join("; ");
                tx.set_outcome(inbox_id, Outcome::Flagged, &order.id, Some(&detail))?;
            }
        }
        Ok(())
    }

    /// Re-derives an order's state from its facts and carries out what the
    /// state calls for: downloads granted or revoked, emails queued. Safe to
    /// run any number of times: every effect is keyed. Returns how many
    /// emails it queued.
    pub fn settle_order(
        &self,
        tx: &dyn Tx,
        order: &Order,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        // Checking held claims may flag the order: before reading flags.
        self.settle_held(tx, order, millis(now))?;
        if order.plan.is_some() {
            // Its money is the subscription's period payments; the emails
            // are the subscription's (`subscriptions.rs`).
            let facts = match &order.subscription_id {
                Some(id) => tx.facts(Owner::Subscription(id))?,
                None => Vec::new(),
            };
            let started = order.subscription_id.is_some();
            let flagged = tx.is_flagged(&order.id)?;
            let derived = order_state::derive_subscribed(&facts, started, flagged);
            tx.set_order_status(
                &order.id,
                derived.status.as_str(),
                derived.paid,
                millis(now),
            )?;
            return Ok(0);
        }
        let facts = tx.facts(Owner::Order(&order.id))?;
        let flagged = tx.is_flagged(&order.id)?;
        let derived = order_state::derive(&facts, flagged, order.fulfilled_at.is_some());
        tx.set_order_status(
            &order.id,
            derived.status.as_str(),
            derived.paid,
            millis(now),
        )?;
        if order.status != derived.status.as_str() {
            tracing::debug!(
                order.id = order.id,
                from = order.status,
                to = derived.status.as_str(),
                "order state changed"
            );
        }
        let grants = self.settle_downloads(tx, order, &derived, now)?;
        let mut mail = Mail {
            handler: self,
            tx,
            order,
            now,
            queued: 0,
        };
        mail.order_emails(&facts, &derived, &grants)?;
        Ok(mail.queued)
    }

    /// Grants a download per digital line while the order is paid up or
    /// only partly refunded (a partial refund says nothing about which line
    /// it gives back: a shipping fee, a discount); revokes them once it is
    /// refunded in full or reversed, and lifts a chargeback's revocation
    /// when the chargeback is canceled.
    fn settle_downloads(
        &self,
        tx: &dyn Tx,
        order: &Order,
        derived: &Derived,
        now: OffsetDateTime,
    ) -> Result<Vec<Grant>, StoreError> {
        match derived.payment_status {
            status if status.is_paid_up() || status == OrderStatus::PartiallyRefunded => {
                // Paid up again (a chargeback won, or another payment
                // stands): whatever took the downloads away no longer holds.
                tx.restore_downloads(&order.id, "reversed")?;
                tx.restore_downloads(&order.id, "refunded")?;
                let mut grants = Vec::new();
                for line in order.lines.iter().filter(|l| l.kind == ItemKind::Digital) {
                    let file = self
                        .settings
                        .catalog
                        .product(&line.sku)
                        .and_then(|product| product.download.as_deref());
                    let Some(file) = file else {
                        tracing::warn!(
                            order.id = order.id,
                            sku = line.sku,
                            "a digital item has no download file in the catalog; no grant"
                        );
                        continue;
                    };
                    let request = GrantRequest {
                        order_id: &order.id,
                        sku: &line.sku,
                        name: &line.name,
                        file,
                    };
                    grants.push(downloads::grant(
                        tx,
                        &request,
                        &self.settings.downloads,
                        now,
                    )?);
                }
                Ok(grants)
            }
            OrderStatus::Refunded => {
                tx.revoke_downloads(&order.id, "refunded", millis(now))?;
                Ok(Vec::new())
            }
            OrderStatus::Reversed => {
                tx.revoke_downloads(&order.id, "reversed", millis(now))?;
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Marks a paid order shipped, in the caller's transaction.
    pub fn fulfil(&self, tx: &dyn Tx, order_id: &str) -> Result<Review, StoreError> {
        let Some(order) = tx.order(order_id)? else {
            return Ok(Review::NotFound);
        };
        if order.plan.is_some() {
            return Ok(Review::Refused(format!(
                "order {order_id} is a subscription: there is nothing to ship"
            )));
        }
        let facts = tx.facts(Owner::Order(order_id))?;
        let derived = order_state::derive(&facts, false, false);
        if order.fulfilled_at.is_some() {
            return Ok(Review::Done);
        }
        if tx.is_flagged(order_id)? {
            return Ok(Review::Refused(format!(
                "order {order_id} is flagged: review and resolve its flags before shipping"
            )));
        }
        if !derived.payment_status.is_paid_up() {
            return Ok(Review::Refused(format!(
                "order {order_id} is {}: only a paid order can be fulfilled",
                derived.payment_status.as_str()
            )));
        }
        let now = self.settings.clock.now();
        tx.set_fulfilled(order_id, millis(now))?;
        let order = tx.order(order_id)?.unwrap_or(order);
        self.settle_order(tx, &order, now)?;
        Ok(Review::Done)
    }

    /// Resolves a flag, in the caller's transaction, and re-derives its
    /// order's state.
    pub fn resolve_flag(&self, tx: &dyn Tx, flag_id: i64) -> Result<Review, StoreError> {
        let now = self.settings.clock.now();
        let Some(order_id) = tx.resolve_flag(flag_id, millis(now))? else {
            return Ok(Review::NotFound);
        };
        if let Some(order) = tx.order(&order_id)? {
            self.settle_order(tx, &order, now)?;
        }
        Ok(Review::Done)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }
}

/// Sends a message set aside as `failed` back to the handler, as if it had
/// just arrived.
pub fn requeue(tx: &dyn Tx, inbox_id: InboxId) -> Result<Review, StoreError> {
    Ok(if tx.requeue(inbox_id)? {
        Review::Done
    } else {
        Review::Refused(format!("message {inbox_id} is not a failed one"))
    })
}

/// Checks a payment notice against its order; each problem is a sentence
/// for the operator. A refund or reversal may leave out who was paid (real
/// PayPal chargebacks do): its charge was checked.
fn validate(claim: &PaymentNotice, order: &Order, live: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let is_charge = matches!(claim.kind, PaymentKind::Charge(_));
    if is_charge && order.plan.is_some() {
        // Its money comes as the subscription's period payments.
        problems.push("a one-time payment for an order that is a subscription".to_owned());
    }
    match (claim.receiver.as_deref(), &order.merchant_id) {
        (Some(receiver), Some(expected)) if receiver != expected => problems.push(format!(
            "paid to merchant {receiver}, not to this shop ({expected})"
        )),
        (None, Some(_)) if is_charge => {
            problems.push("the notice does not say who was paid".to_owned());
        }
        _ => {}
    }
    if claim.livemode != live {
        problems.push(if claim.livemode {
            "a live payment for a shop in test mode".to_owned()
        } else {
            "a test payment for a shop in live mode".to_owned()
        });
    }
    let currency = claim.amount.currency();
    if currency != order.total.currency() {
        problems.push(format!(
            "paid in {currency}, but the order is in {}",
            order.total.currency()
        ));
    } else if is_charge && claim.amount != order.total {
        problems.push(format!(
            "the payment is {}, but the order's total is {}",
            claim.amount, order.total
        ));
    }
    let minor = claim.amount.minor();
    let sign_ok = match claim.kind {
        PaymentKind::Charge(_) => true,
        PaymentKind::Refund | PaymentKind::Reversal => minor < 0,
        PaymentKind::ReversalCanceled => minor > 0,
    };
    if !sign_ok {
        problems.push(format!(
            "a {} of {}: the amount has the wrong sign",
            claim.kind.as_str(),
            claim.amount
        ));
    }
    if !is_charge
        && let Some(invoice) = claim.invoice.as_deref()
        && invoice != order.id
    {
        problems.push(format!(
            "it names order {invoice}, but its payment is for order {}",
            order.id
        ));
    }
    problems
}

/// How a payment notice is recorded: for `order_id` (the order it belongs
/// to, or names when that order does not exist), valid or not.
fn record<'a>(
    notice: &'a PaymentNotice,
    order_id: Option<&'a str>,
    valid: bool,
    inbox_id: InboxId,
    at: i64,
) -> PaymentRecord<'a> {
    PaymentRecord {
        txn_id: &notice.txn_id,
        parent_id: notice.parent_id.as_deref(),
        kind: notice.kind,
        amount: notice.amount,
        order_id,
        subscription_id: notice.subscription_id.as_deref(),
        receiver: notice.receiver.as_deref(),
        livemode: notice.livemode,
        valid,
        inbox_id,
        at,
    }
}

/// A refund or reversal of `parent`, kept as message `inbox_id` claims it.
fn held(inbox_id: InboxId, notice: &PaymentNotice, parent: &str) -> HeldClaim {
    HeldClaim {
        inbox_id,
        event_type: notice.event_type.clone(),
        txn_id: notice.txn_id.clone(),
        parent_id: parent.to_owned(),
        kind: notice.kind,
        amount: notice.amount,
        invoice: notice.invoice.clone(),
        receiver: notice.receiver.clone(),
        livemode: notice.livemode,
        subscription_id: notice.subscription_id.clone(),
        payer_email: notice.payer_email.clone(),
    }
}

/// A held claim as the notice it was.
fn released(claim: HeldClaim) -> PaymentNotice {
    PaymentNotice {
        event_type: claim.event_type,
        txn_id: claim.txn_id,
        parent_id: Some(claim.parent_id),
        kind: claim.kind,
        amount: claim.amount,
        invoice: claim.invoice,
        receiver: claim.receiver,
        livemode: claim.livemode,
        subscription_id: claim.subscription_id,
        payer_email: claim.payer_email,
    }
}

/// Queues the emails of one settle, each under a key that makes it once.
struct Mail<'a> {
    handler: &'a Handler,
    tx: &'a dyn Tx,
    order: &'a Order,
    now: OffsetDateTime,
    queued: usize,
}

impl Mail<'_> {
    /// Which emails the order's state calls for:
    /// - pending (no charge completed yet): "payment pending", per charge;
    /// - only failed charges: "payment failed", once per order;
    /// - paid: "order paid" once, then a download link per grant (while
    ///   paid up);
    /// - each refund of a completed charge: "refunded";
    /// - a charge reversed (more reversals than cancellations): "reversed"
    ///   per reversal; a cancellation: "reversal canceled", only when the
    ///   customer was told of a reversal of that charge. A reversal whose
    ///   cancellation is already known says nothing: it is over before the
    ///   customer would hear of it.
    fn order_emails(
        &mut self,
        facts: &[Fact],
        derived: &Derived,
        grants: &[Grant],
    ) -> Result<(), StoreError> {
        let total = self.order.total.to_string();
        match derived.payment_status {
            OrderStatus::Pending => {
                for fact in facts {
                    if fact.kind == PaymentKind::Charge(ChargeStatus::Pending) {
                        self.order_email(
                            EmailKind::PaymentPending,
                            &format!("payment_pending:{}", fact.txn_id),
                            &[
                                ("total", total.clone()),
                                ("reason", "The payment has not cleared yet; we will write again when it does.".to_owned()),
                            ],
                        )?;
                    }
                }
                return Ok(());
            }
            OrderStatus::Failed => {
                self.order_email(
                    EmailKind::PaymentFailed,
                    &format!("payment_failed:{}", self.order.id),
                    &[
                        ("total", total),
                        (
                            "reason",
                            "The payment was declined or did not clear.".to_owned(),
                        ),
                    ],
                )?;
                return Ok(());
            }
            OrderStatus::Created => return Ok(()),
            _ => {}
        }
        if !derived.paid {
            return Ok(());
        }
        self.order_email(
            EmailKind::OrderPaid,
            &format!("order_paid:{}", self.order.id),
            &[("total", total.clone()), ("items", self.items())],
        )?;
        if derived.payment_status.is_paid_up() {
            self.download_links(grants)?;
        }
        let currency = self.order.total.currency();
        let amount = |fact: &Fact| Money::new(fact.amount.saturating_abs(), currency).to_string();
        for charge in order_state::completed_charges(facts) {
            for refund in &charge.refunds {
                self.order_email(
                    EmailKind::Refunded,
                    &format!("refunded:{}", refund.txn_id),
                    &[("amount", amount(refund)), ("total", total.clone())],
                )?;
            }
            if charge.is_reversed() {
                for reversal in &charge.reversals {
                    self.order_email(
                        EmailKind::Reversed,
                        &format!("reversed:{}", reversal.txn_id),
                        &[
                            ("amount", amount(reversal)),
                            (
                                "reason",
                                "The payment was disputed with the card issuer (a chargeback)."
                                    .to_owned(),
                            ),
                        ],
                    )?;
                }
            }
            // A cancellation is news only to a customer who was told of
            // the reversal.
            let mut told = false;
            for reversal in &charge.reversals {
                told |= self
                    .tx
                    .email_queued(&format!("reversed:{}", reversal.txn_id))?;
            }
            if told {
                for cancellation in &charge.cancellations {
                    self.order_email(
                        EmailKind::ReversalCanceled,
                        &format!("reversal_canceled:{}", cancellation.txn_id),
                        &[("amount", amount(cancellation))],
                    )?;
                }
            }
        }
        Ok(())
    }

    fn download_links(&mut self, grants: &[Grant]) -> Result<(), StoreError> {
        let key = &self.handler.settings.download_key;
        for grant in grants {
            let url = format!(
                "{}{}",
                self.handler.settings.public_url,
                downloads::path(&grant.token(key))
            );
            let expires = crate::mail::customer_date(grant.expires_at);
            self.order_email(
                EmailKind::DownloadLink,
                &format!("download_link:{}", grant.id),
                &[
                    ("product_name", grant.name.clone()),
                    ("download_url", url),
                    ("download_expires", expires),
                    (
                        "downloads_left",
                        grant.max_uses.saturating_sub(grant.uses).to_string(),
                    ),
                ],
            )?;
        }
        Ok(())
    }

    /// `2 × Mug: 25.00 USD`, one line per item.
    fn items(&self) -> String {
        self.order
            .lines
            .iter()
            .map(|line| format!("{} × {}: {}", line.quantity, line.name, line.total))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn order_email(
        &mut self,
        kind: EmailKind,
        key: &str,
        extra: &[(&'static str, String)],
    ) -> Result<(), StoreError> {
        if self.tx.email_queued(key)? {
            return Ok(());
        }
        let settings = &self.handler.settings;
        let mut vars = vec![
            ("shop_name", settings.shop_name.clone()),
            ("customer_email", self.order.customer_email.clone()),
            ("order_id", self.order.id.clone()),
            (
                "order_url",
                format!("{}/orders/{}", settings.public_url, self.order.id),
            ),
        ];
        vars.extend(extra.iter().cloned());
        vars.retain(|(name, _)| kind.vars().contains(name));
        let rendered = settings
            .templates
            .render(kind, &vars.into_iter().collect::<Vars>())
            .map_err(|e| anyhow::anyhow!("rendering the {kind} email: {e}"))?;
        let queued = self.tx.enqueue(&NewEmail {
            dedupe_key: key.to_owned(),
            kind,
            to: self.order.customer_email.clone(),
            order_id: Some(self.order.id.clone()),
            subscription_id: None,
            rendered,
            created_at: millis(self.now),
        })?;
        if queued {
            self.queued += 1;
        }
        Ok(())
    }
}
