//! The notification handler (DESIGN §5): turns inbox messages into order
//! states, download grants, subscription access and customer emails,
//! exactly once in effect.
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
//! Subscriptions follow the same pattern in `subscriptions.rs`.

pub mod notice;
pub mod order_state;
pub mod store;
pub mod subscriptions;

use std::sync::Arc;
use std::time::Duration;

use ipn_core::money::Money;
use ipn_core::payment::ItemKind;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use time::OffsetDateTime;
use tokio::sync::Notify;

use self::notice::{ChargeStatus, Notice, PaymentKind, PaymentNotice, Read};
use self::order_state::{Derived, Fact, OrderStatus};
use self::store::{Handled, Outcome, Waiting};
use crate::catalog::Catalog;
use crate::clock::millis;
use crate::downloads::{self, GrantRequest, Policy, SigningKey};
use crate::mail::{self, EmailKind, NewEmail, Templates, Vars};
use crate::storage::orders::{self, Order};
use crate::storage::writer::Review;
use crate::storage::{InboxId, StoreError};

/// Messages handled per transaction: big enough to share a commit's fsync
/// among many, small enough that receivers queued behind it wait little.
pub const PASS: usize = 512;

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
    pub clock: crate::clock::Clock,
}

/// The handler, owned by the writer thread.
#[derive(Debug)]
pub struct Handler {
    settings: Settings,
    /// Loaded from the database on first use.
    download_key: Option<SigningKey>,
    /// Notified when a pass queued emails.
    mail_wake: Arc<Notify>,
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

/// Whether a failure is the database's (the disk, a lock, memory) rather
/// than one message's: then the whole pass waits and nothing is counted
/// against the messages.
fn is_storage_failure(error: &StoreError) -> bool {
    use rusqlite::ErrorCode as Code;
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(failure, _))
                if !matches!(failure.code, Code::ConstraintViolation | Code::TypeMismatch)
        )
    })
}

impl Handler {
    pub fn new(settings: Settings, mail_wake: Arc<Notify>) -> Self {
        Self {
            settings,
            download_key: None,
            mail_wake,
        }
    }

    /// Loads what the handler reads from the database once: the key that
    /// signs download links.
    pub fn prepare(&mut self, conn: &Connection) -> Result<(), StoreError> {
        if self.download_key.is_none() {
            self.download_key = Some(downloads::signing_key(conn)?);
        }
        Ok(())
    }

    /// Handles up to [`PASS`] waiting messages in one transaction.
    ///
    /// An error is a storage failure (the disk, a lock): nothing of the pass
    /// is kept, and the writer tries again later with the same messages.
    /// Any other failure belongs to one message: it alone is undone and
    /// tried again after a delay, and after [`store::MAX_ATTEMPTS`] it is
    /// set aside as `failed` (kept, shown on /admin, where it can be sent
    /// back) so that it cannot hold up the others.
    pub fn pass(&mut self, conn: &mut Connection) -> Result<PassResult, StoreError> {
        self.prepare(conn)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let wall = crate::clock::wall_ms();
        let waiting = store::waiting(&tx, wall, PASS)?;
        let mut emails = 0;
        for message in &waiting {
            let now = self.settings.clock.now();
            tx.execute_batch("SAVEPOINT message")?;
            match self.handle(&tx, message, now) {
                Ok(queued) => {
                    emails += queued;
                    tx.execute_batch("RELEASE message")?;
                }
                Err(error) if is_storage_failure(&error) => return Err(error),
                Err(error) => {
                    tx.execute_batch("ROLLBACK TO message; RELEASE message")?;
                    let error = format!("{error:#}");
                    let attempts = store::count_attempt(&tx, message.id, &error, wall)?;
                    tracing::error!(
                        inbox.id = message.id,
                        attempts,
                        error,
                        "handling a message failed"
                    );
                    if attempts >= store::MAX_ATTEMPTS {
                        // Set aside, and raised for review so that it is
                        // seen until someone sends it back.
                        let reason = format!(
                            "message #{} could not be handled ({attempts} attempts): {error}",
                            message.id
                        );
                        store::flag(&tx, None, message.id, &reason, millis(now))?;
                        store::mark(
                            &tx,
                            message.id,
                            Outcome::Failed,
                            &Handled {
                                detail: Some(&error),
                                ..Handled::default()
                            },
                            millis(now),
                        )?;
                    }
                }
            }
        }
        let full = waiting.len() == PASS;
        let next_retry = if full { None } else { store::next_retry(&tx)? };
        tx.commit()?;
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

    /// Wakes the mail worker: the writer calls it after committing work that
    /// may have queued emails outside a pass (an operator's review).
    pub fn wake_mail(&self) {
        self.mail_wake.notify_one();
    }

    /// Handles one message; returns how many emails it queued.
    fn handle(
        &self,
        tx: &Transaction<'_>,
        message: &Waiting,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let read = match message.dialect.as_str() {
            "paypal" => notice::read_paypal(&message.body),
            _ => notice::read_standard(&message.body),
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
                store::mark(tx, message.id, Outcome::Rejected, &handled, at)?;
                return Ok(0);
            }
        };
        if let Some(seen) = store::claimed(tx, &read.keys)? {
            let detail = format!("{seen} was applied before");
            let handled = Handled {
                detail: Some(&detail),
                ..Handled::default()
            };
            store::mark(tx, message.id, Outcome::Duplicate, &handled, at)?;
            return Ok(0);
        }
        for key in &read.keys {
            store::claim_key(tx, key, message.id)?;
        }
        match read.notice {
            Notice::Ignored(why) => {
                let handled = Handled {
                    detail: Some(&why),
                    ..Handled::default()
                };
                store::mark(tx, message.id, Outcome::Ignored, &handled, at)?;
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
        tx: &Transaction<'_>,
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
            store::mark(tx, inbox_id, outcome, &handled, at)
        };
        // A refund or reversal belongs to its charge's order, whatever its
        // invoice says; a charge to the order its invoice names.
        let order_id = match &notice.parent_id {
            None => notice.invoice.clone(),
            Some(parent) => match store::payment_order(tx, parent)? {
                Some(order_id) => order_id,
                None => {
                    // Its payment is not known yet: kept as claimed, and
                    // checked and counted when the payment arrives
                    // (`settle_held`).
                    store::hold(tx, inbox_id, notice)?;
                    let detail = format!("waits for its payment {parent}");
                    mark(Outcome::Held, notice.invoice.as_deref(), Some(&detail))?;
                    return Ok(0);
                }
            },
        };
        let order = match &order_id {
            Some(id) => orders::get(tx, id)?,
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
            let record = store::Record {
                order_id: order_id.as_deref(),
                valid: false,
            };
            store::record_payment(tx, notice, &record, inbox_id, at)?;
            store::flag(tx, None, inbox_id, &reason, at)?;
            tracing::warn!(inbox.id = inbox_id, reason, "payment flagged");
            mark(Outcome::Flagged, None, Some(&reason))?;
            return Ok(0);
        };
        let mut problems = validate(notice, &order, self.settings.live);
        let record = store::Record {
            order_id: Some(&order.id),
            valid: problems.is_empty(),
        };
        store::record_payment(tx, notice, &record, inbox_id, at)?;
        if problems.is_empty() && notice.kind == PaymentKind::Charge(ChargeStatus::Completed) {
            // Another payment that still stands (not refunded or reversed).
            let facts = store::order_facts(tx, &order.id)?;
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
            store::flag(tx, Some(&order.id), inbox_id, problem, at)?;
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
    fn settle_held(&self, tx: &Transaction<'_>, order: &Order, at: i64) -> Result<(), StoreError> {
        for (inbox_id, notice) in store::held_for_order(tx, &order.id)? {
            let problems = validate(&notice, order, self.settings.live);
            let record = store::Record {
                order_id: Some(&order.id),
                valid: problems.is_empty(),
            };
            store::record_payment(tx, &notice, &record, inbox_id, at)?;
            store::release(tx, inbox_id)?;
            if problems.is_empty() {
                store::set_outcome(tx, inbox_id, Outcome::Applied, &order.id, None)?;
            } else {
                for problem in &problems {
                    store::flag(tx, Some(&order.id), inbox_id, problem, at)?;
                }
                let detail = problems.join("; ");
                store::set_outcome(tx, inbox_id, Outcome::Flagged, &order.id, Some(&detail))?;
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
        tx: &Transaction<'_>,
        order: &Order,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        // Checking held claims may flag the order: before reading flags.
        self.settle_held(tx, order, millis(now))?;
        if order.plan.is_some() {
            // Its money is the subscription's period payments; the emails
            // are the subscription's (`subscriptions.rs`).
            let facts = match &order.subscription_id {
                Some(id) => store::facts(tx, store::Owner::Subscription(id))?,
                None => Vec::new(),
            };
            let started = order.subscription_id.is_some();
            let flagged = store::is_flagged(tx, &order.id)?;
            let derived = order_state::derive_subscribed(&facts, started, flagged);
            store::set_order_status(tx, &order.id, derived.status, derived.paid, millis(now))?;
            return Ok(0);
        }
        let facts = store::order_facts(tx, &order.id)?;
        let flagged = store::is_flagged(tx, &order.id)?;
        let derived = order_state::derive(&facts, flagged, order.fulfilled_at.is_some());
        store::set_order_status(tx, &order.id, derived.status, derived.paid, millis(now))?;
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
        tx: &Transaction<'_>,
        order: &Order,
        derived: &Derived,
        now: OffsetDateTime,
    ) -> Result<Vec<downloads::Grant>, StoreError> {
        match derived.payment_status {
            status if status.is_paid_up() || status == OrderStatus::PartiallyRefunded => {
                // Paid up again (a chargeback won, or another payment
                // stands): whatever took the downloads away no longer holds.
                downloads::restore_order(tx, &order.id, "reversed")?;
                downloads::restore_order(tx, &order.id, "refunded")?;
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
                downloads::revoke_order(tx, &order.id, "refunded", now)?;
                Ok(Vec::new())
            }
            OrderStatus::Reversed => {
                downloads::revoke_order(tx, &order.id, "reversed", now)?;
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Marks a paid order shipped, in the caller's transaction.
    pub fn fulfil(&self, tx: &Transaction<'_>, order_id: &str) -> Result<Review, StoreError> {
        let Some(order) = orders::get(tx, order_id)? else {
            return Ok(Review::NotFound);
        };
        if order.plan.is_some() {
            return Ok(Review::Refused(format!(
                "order {order_id} is a subscription: there is nothing to ship"
            )));
        }
        let facts = store::order_facts(tx, order_id)?;
        let derived = order_state::derive(&facts, false, false);
        if order.fulfilled_at.is_some() {
            return Ok(Review::Done);
        }
        if store::is_flagged(tx, order_id)? {
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
        store::set_fulfilled(tx, order_id, millis(now))?;
        let order = orders::get(tx, order_id)?.unwrap_or(order);
        self.settle_order(tx, &order, now)?;
        Ok(Review::Done)
    }

    /// Resolves a flag, in the caller's transaction, and re-derives its
    /// order's state.
    pub fn resolve_flag(&self, tx: &Transaction<'_>, flag_id: i64) -> Result<Review, StoreError> {
        let now = self.settings.clock.now();
        let Some(order_id) = store::resolve_flag(tx, flag_id, millis(now))? else {
            return Ok(Review::NotFound);
        };
        if let Some(order) = orders::get(tx, &order_id)? {
            self.settle_order(tx, &order, now)?;
        }
        Ok(Review::Done)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }
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

/// Queues the emails of one settle, each under a key that makes it once.
struct Mail<'a> {
    handler: &'a Handler,
    tx: &'a Transaction<'a>,
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
        grants: &[downloads::Grant],
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
                told |= store::email_queued(self.tx, &format!("reversed:{}", reversal.txn_id))?;
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

    fn download_links(&mut self, grants: &[downloads::Grant]) -> Result<(), StoreError> {
        let Some(key) = &self.handler.download_key else {
            anyhow::bail!("the download signing key is not loaded");
        };
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
        if store::email_queued(self.tx, key)? {
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
        let queued = mail::enqueue(
            self.tx,
            &NewEmail {
                dedupe_key: key.to_owned(),
                kind,
                to: self.order.customer_email.clone(),
                order_id: Some(self.order.id.clone()),
                subscription_id: None,
                rendered,
                created_at: millis(self.now),
            },
        )?;
        if queued {
            self.queued += 1;
        }
        Ok(())
    }
}
