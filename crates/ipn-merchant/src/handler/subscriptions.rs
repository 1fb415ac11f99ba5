//! Subscriptions and access: signup → `active`; a period paid extends
//! `paid_through`; a failed charge → `past_due`; canceled → access until
//! `paid_through`; expired → no access.
//!
//! As for orders, the state is derived from what is known rather than moved
//! by each message: whether a cancellation or expiry was heard of, and
//! whether the latest failure happened after the latest payment. "When" is
//! the time the notice gives for its change (`Read::happened_at`), one
//! scale for both dialects; a notice that gives none counts as happening
//! when it is handled.

use ipn_core::billing::Calendar;
use ipn_core::event::EventType;
use ipn_core::money::Money;
use time::OffsetDateTime;

use super::notice::{PaymentNotice, SubscriptionNotice};
use super::{Handler, record};
use crate::clock::millis;
use crate::mail::{self, Vars};
use crate::model::{ChargeStatus, EmailKind, PaymentKind, SubscriptionStatus};
use crate::storage::subscriptions::SubscriptionFacts;
use crate::storage::{Handled, InboxId, NewEmail, Outcome, StoreError, SubscriptionRow, Tx};

/// Whether a subscriber may use what they subscribed to at `now`: yes
/// while active or past due (the gateway is still retrying), until
/// `paid_through` once canceled (until the expiry notice when that date is
/// not known, as with PayPal messages), never once expired.
pub fn has_access(status: SubscriptionStatus, paid_through: Option<i64>, now: i64) -> bool {
    match status {
        SubscriptionStatus::Active | SubscriptionStatus::PastDue => true,
        SubscriptionStatus::Canceled => paid_through.is_none_or(|until| now < until),
        SubscriptionStatus::Expired => false,
    }
}

/// A period payment (or a refund of one).
pub fn payment(
    handler: &Handler,
    tx: &dyn Tx,
    inbox_id: InboxId,
    notice: &PaymentNotice,
    happened_at: Option<i64>,
    now: OffsetDateTime,
) -> Result<usize, StoreError> {
    let id = notice.subscription_id.as_deref().unwrap_or_default();
    let at = millis(now);
    let event_type = notice.event_type.to_string();
    let problems = validate(handler, notice.receiver.as_deref(), notice.livemode);
    tx.record_payment(&record(notice, None, problems.is_empty(), inbox_id, at))?;
    if let Some(outcome) = flag(tx, inbox_id, id, &event_type, &problems, at)? {
        return Ok(outcome);
    }
    tx.ensure_subscription(
        id,
        notice.payer_email.as_deref(),
        notice.receiver.as_deref(),
        at,
    )?;
    let refused = match notice.kind {
        PaymentKind::Charge(_) => {
            let order = notice.invoice.as_deref();
            link(tx, inbox_id, id, order, Some(notice.amount), at)?
        }
        _ => None,
    };
    let position = happened_at.unwrap_or(at);
    let paid = notice.kind == PaymentKind::Charge(ChargeStatus::Completed);
    if paid {
        tx.subscription_paid(id, position)?;
    }
    let row = settle(tx, id, at)?;
    let mut queued = 0;
    // A payment made at the signup is the first period's, which the
    // signup's email announces; any later one (the first after a trial
    // included) is a renewal. Not knowing the signup yet (its notice may
    // come second), the first payment heard of is the signup's.
    let at_signup = row.signed_up_at.map_or(row.cycles_paid <= 1, |signed_up| {
        position <= signed_up.saturating_add(1000)
    });
    if paid && !at_signup {
        queued += email(
            handler,
            tx,
            &row,
            EmailKind::SubscriptionRenewed,
            &format!("subscription_renewed:{}", notice.txn_id),
            &[("amount", notice.amount.to_string())],
            at,
        )?;
    }
    finish(handler, tx, inbox_id, &row, refused, &event_type, now)?;
    Ok(queued)
}

/// Signup, a failed charge, cancellation, expiry.
pub fn change(
    handler: &Handler,
    tx: &dyn Tx,
    inbox_id: InboxId,
    notice: &SubscriptionNotice,
    happened_at: Option<i64>,
    now: OffsetDateTime,
) -> Result<usize, StoreError> {
    let id = notice.subscription_id.as_str();
    let at = millis(now);
    let event_type = notice.event_type.to_string();
    let problems = validate(handler, notice.receiver.as_deref(), notice.livemode);
    if let Some(outcome) = flag(tx, inbox_id, id, &event_type, &problems, at)? {
        return Ok(outcome);
    }
    tx.ensure_subscription(
        id,
        notice.payer_email.as_deref(),
        notice.receiver.as_deref(),
        at,
    )?;
    let order = notice.invoice.as_deref();
    let refused = link(tx, inbox_id, id, order, notice.amount, at)?;
    if let Some(signed_up_at) = notice.signed_up_at {
        tx.subscription_signed_up(id, signed_up_at)?;
    }
    if let Some(object) = &notice.subscription {
        tx.save_subscription_object(id, object, object.paid_through.map(millis))?;
    }
    let position = happened_at.unwrap_or(at);
    match notice.event_type {
        EventType::SubscriptionPaymentFailed => tx.subscription_failed(id, position)?,
        EventType::SubscriptionCanceled => tx.subscription_canceled(id, at)?,
        EventType::SubscriptionExpired => tx.subscription_expired(id, at)?,
        _ => {}
    }
    let row = settle(tx, id, at)?;
    let amount = notice
        .amount
        .map_or_else(|| "the plan's price".to_owned(), |money| money.to_string());
    let queued = match notice.event_type {
        EventType::SubscriptionCreated => email(
            handler,
            tx,
            &row,
            EmailKind::SubscriptionStarted,
            &format!("subscription_started:{id}"),
            &[("amount", amount)],
            at,
        )?,
        // A failure already followed by a payment is old news.
        EventType::SubscriptionPaymentFailed if row.status == SubscriptionStatus::PastDue => email(
            handler,
            tx,
            &row,
            EmailKind::SubscriptionPaymentFailed,
            &format!("subscription_payment_failed:{id}:{position}"),
            &[
                ("amount", amount),
                ("reason", "Your card was declined. We will try again in a few days; you can also update your card.".to_owned()),
            ],
            at,
        )?,
        EventType::SubscriptionCanceled if row.status == SubscriptionStatus::Canceled => email(
            handler,
            tx,
            &row,
            EmailKind::SubscriptionCanceled,
            &format!("subscription_canceled:{id}"),
            &[],
            at,
        )?,
        EventType::SubscriptionExpired => email(
            handler,
            tx,
            &row,
            EmailKind::SubscriptionExpired,
            &format!("subscription_expired:{id}"),
            &[],
            at,
        )?,
        _ => 0,
    };
    finish(handler, tx, inbox_id, &row, refused, &event_type, now)?;
    Ok(queued)
}

fn validate(handler: &Handler, receiver: Option<&str>, livemode: bool) -> Vec<String> {
    let settings = handler.settings();
    let mut problems = Vec::new();
    if let Some(expected) = &settings.merchant_id {
        match receiver {
            Some(receiver) if receiver != expected => problems.push(format!(
                "paid to merchant {receiver}, not to this shop ({expected})"
            )),
            None => problems.push("the notice does not say who was paid".to_owned()),
            _ => {}
        }
    }
    if livemode != settings.live {
        problems.push(if livemode {
            "a live notice for a shop in test mode".to_owned()
        } else {
            "a test notice for a shop in live mode".to_owned()
        });
    }
    problems
}

/// Flags a notice that failed validation; `Some(0)` when it did.
fn flag(
    tx: &dyn Tx,
    inbox_id: InboxId,
    id: &str,
    event_type: &str,
    problems: &[String],
    at: i64,
) -> Result<Option<usize>, StoreError> {
    if problems.is_empty() {
        return Ok(None);
    }
    for problem in problems {
        let reason = format!("subscription {id}: {problem}");
        tracing::warn!(inbox.id = inbox_id, reason, "subscription notice flagged");
        tx.flag(None, inbox_id, &reason, at)?;
    }
    let detail = problems.join("; ");
    mark(
        tx,
        inbox_id,
        Outcome::Flagged,
        event_type,
        id,
        None,
        Some(&detail),
        at,
    )?;
    Ok(Some(0))
}

#[allow(clippy::too_many_arguments)]
fn mark(
    tx: &dyn Tx,
    inbox_id: InboxId,
    outcome: Outcome,
    event_type: &str,
    id: &str,
    order_id: Option<&str>,
    detail: Option<&str>,
    at: i64,
) -> Result<(), StoreError> {
    let handled = Handled {
        event_type: Some(event_type),
        subscription_id: Some(id),
        order_id,
        detail,
    };
    tx.mark_handled(inbox_id, outcome, &handled, at)
}

/// A tie to an order that was refused: the order, flagged, and why.
struct Refused {
    order_id: String,
    reason: String,
}

/// Ties a subscription to the shop's order that bought it (the notice's
/// invoice). A tie to an order that is not for a subscription, that
/// started another one, or whose price differs is refused and flags the
/// order. Either way it is decided once, on the first notice that names an
/// invoice, so a refused tie flags the order once, not on every renewal. An
/// invoice naming no order of this shop is a subscription made elsewhere
/// (through the API, say): there is nothing to tie.
fn link(
    tx: &dyn Tx,
    inbox_id: InboxId,
    id: &str,
    invoice: Option<&str>,
    amount: Option<Money>,
    at: i64,
) -> Result<Option<Refused>, StoreError> {
    let Some(invoice) = invoice.filter(|invoice| !invoice.is_empty()) else {
        return Ok(None);
    };
    if facts(tx, id)?.link_decided {
        return Ok(None);
    }
    tx.decide_subscription_link(id)?;
    let Some(order) = tx.order(invoice)? else {
        return Ok(None);
    };
    let problem = match (&order.plan, order.subscription_id.as_deref(), amount) {
        (None, _, _) => Some(format!(
            "subscription {id} names this order, which is not for a subscription"
        )),
        (Some(_), Some(other), _) if other != id => Some(format!(
            "subscription {id} names this order, which started subscription {other} already"
        )),
        (Some(_), _, Some(price)) if price != order.total => Some(format!(
            "subscription {id} charges {price} a period, but the order is for {}",
            order.total
        )),
        _ => None,
    };
    if let Some(reason) = problem {
        tracing::warn!(
            inbox.id = inbox_id,
            order.id = order.id,
            reason,
            "order flagged"
        );
        tx.flag(Some(&order.id), inbox_id, &reason, at)?;
        return Ok(Some(Refused {
            order_id: order.id,
            reason,
        }));
    }
    tx.set_order_subscription(&order.id, id)?;
    tx.set_subscription_order(id, &order.id)?;
    Ok(None)
}

/// Settles the order the subscription is tied to (its state follows the
/// period payments) or that a refused tie flagged, and marks the message.
fn finish(
    handler: &Handler,
    tx: &dyn Tx,
    inbox_id: InboxId,
    row: &SubscriptionRow,
    refused: Option<Refused>,
    event_type: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let tied = row.order_id.as_deref();
    let flagged = refused.as_ref().map(|r| r.order_id.as_str());
    for order_id in tied.into_iter().chain(flagged) {
        if let Some(order) = tx.order(order_id)? {
            handler.settle_order(tx, &order, now)?;
        }
    }
    let at = millis(now);
    match &refused {
        Some(r) => {
            let order = Some(r.order_id.as_str());
            let detail = Some(r.reason.as_str());
            mark(
                tx,
                inbox_id,
                Outcome::Flagged,
                event_type,
                &row.id,
                order,
                detail,
                at,
            )
        }
        None => mark(
            tx,
            inbox_id,
            Outcome::Applied,
            event_type,
            &row.id,
            tied,
            None,
            at,
        ),
    }
}

/// What is known of subscription `id`, whose row the notice made.
fn facts(tx: &dyn Tx, id: &str) -> Result<SubscriptionFacts, StoreError> {
    tx.subscription_facts(id)?
        .ok_or_else(|| anyhow::anyhow!("subscription {id} vanished while being handled"))
}

/// Re-derives a subscription's state from what is known and writes it.
fn settle(tx: &dyn Tx, id: &str, at: i64) -> Result<SubscriptionRow, StoreError> {
    let known = facts(tx, id)?;
    let cycles_paid = tx.paid_periods(id)?;
    // With the plan known (the standard dialect sends the subscription),
    // the periods paid give the date access runs to.
    let from_plan = known.object.as_ref().and_then(|subscription| {
        Calendar::for_subscription(subscription)
            .ok()
            .and_then(|calendar| calendar.paid_through(cycles_paid))
            .map(millis)
    });
    let status = if known.expired {
        SubscriptionStatus::Expired
    } else if known.canceled {
        SubscriptionStatus::Canceled
    } else if known.last_failure_at > known.last_payment_at {
        SubscriptionStatus::PastDue
    } else {
        SubscriptionStatus::Active
    };
    tx.settle_subscription(id, status, cycles_paid, from_plan, at)?;
    tx.subscription(id)?
        .ok_or_else(|| anyhow::anyhow!("subscription {id} vanished while settling"))
}

#[allow(clippy::too_many_arguments)]
fn email(
    handler: &Handler,
    tx: &dyn Tx,
    row: &SubscriptionRow,
    kind: EmailKind,
    key: &str,
    extra: &[(&'static str, String)],
    at: i64,
) -> Result<usize, StoreError> {
    let Some(to) = row.customer_email.clone() else {
        return Ok(0);
    };
    if tx.email_queued(key)? {
        return Ok(0);
    }
    let settings = handler.settings();
    let paid_through = row
        .paid_through
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
        .map(mail::customer_date)
        .unwrap_or_else(|| "the end of the paid period".to_owned());
    let mut vars = vec![
        ("shop_name", settings.shop_name.clone()),
        ("customer_email", to.clone()),
        ("subscription_id", row.id.clone()),
        ("paid_through", paid_through),
    ];
    vars.extend(extra.iter().cloned());
    // Each kind takes only its own variables.
    vars.retain(|(name, _)| kind.vars().contains(name));
    let rendered = settings
        .templates
        .render(kind, &vars.into_iter().collect::<Vars>())
        .map_err(|e| anyhow::anyhow!("rendering the {kind} email: {e}"))?;
    let queued = tx.enqueue(&NewEmail {
        dedupe_key: key.to_owned(),
        kind,
        to,
        order_id: row.order_id.clone(),
        subscription_id: Some(row.id.clone()),
        rendered,
        created_at: at,
    })?;
    Ok(usize::from(queued))
}
