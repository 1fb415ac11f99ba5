//! Test-mode subscriptions: signup, billing on the gateway clock, failed
//! charges retried and then cancellation, cancel now or at period end,
//! expiry after the last cycle; and the events each step emits.
//!
//! As with payments (`payments.rs`), each step is applied to the stored
//! subscription inside the writer's transaction ([`commit`]), so the billing
//! worker and an API call can never both act on the same state, and no step
//! exists without its events. Dates come from `ipn_core::billing` (calendar months,
//! anchored to the first charge, never drifting); the dunning schedule too.
//!
//! Choices made here:
//! - A subscription needs a card that charges at once: a bank transfer or a
//!   card that stays pending is refused at signup and as a new card.
//! - A card declined at signup (no trial) refuses the signup: nothing is
//!   created, as a checkout would refuse it.
//! - A declined renewal makes the subscription `past_due` and is retried
//!   after 3, 5 and 7 days (with the card on file then); after the last
//!   retry fails it is canceled, and expires at once (its paid time is over).
//! - Cancel at period end: `canceled` now (no more charges), `expired` at
//!   `paid_through`. Cancel now: `canceled` and `expired` at once; asked
//!   after a cancel at period end, it brings the expiry forward to now.
//! - Billing's steps are dated when they fell due, however late the billing
//!   task takes them (after a clock advance of months, say).

use ipn_core::billing::{self, Calendar, PlanError};
use ipn_core::card::{CardOutcome, ChargeAttempt};
use ipn_core::event::{Event, EventData, EventType};
use ipn_core::id::{EventId, MerchantId, PaymentId, SubscriptionId};
use ipn_core::payment::{Payment, PaymentStatus};
use ipn_core::payment_flow::{Charge, InitialStatus, Purpose};
use ipn_core::subscription::{Subscription, SubscriptionStatus};
use time::OffsetDateTime;

use crate::fanout;
use crate::model::{Endpoint, PaymentMethod, StoredPayment, StoredSubscription};
use crate::storage::{Ingested, StoreError, Tx};

/// A step of a subscription's life.
#[derive(Debug, Clone)]
pub enum SubscriptionChange {
    /// Signup; the first charge too when there is no trial.
    Create {
        subscription: Box<Subscription>,
        method: PaymentMethod,
    },
    /// Billing's turn: charge, retry or expire, if due at `now`.
    Advance,
    Cancel {
        at_period_end: bool,
    },
    /// A new card for the next charge or retry.
    ChangeMethod(PaymentMethod),
}

/// A subscription step for the writer.
#[derive(Debug, Clone)]
pub struct SubscriptionWrite {
    pub merchant_id: MerchantId,
    pub subscription_id: SubscriptionId,
    pub change: SubscriptionChange,
    /// The merchant's enabled endpoints: each event goes to those that want it.
    pub subscribers: Vec<Endpoint>,
    pub now: OffsetDateTime,
    /// The API's answer, kept with the request's Idempotency-Key (`None`
    /// for billing's own steps, which have none).
    pub respond: Option<Respond>,
}

/// Renders the answer (HTTP status, JSON body) to a subscription step.
pub type Respond = fn(Result<&SubscriptionDone, &SubscriptionRefusal>) -> (u16, Vec<u8>);

/// Why a step changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionRefusal {
    #[error("no such subscription")]
    NotFound,
    #[error("a subscription with this id exists already")]
    Exists,
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("the card was declined")]
    Declined,
    #[error(
        "subscriptions need a card that charges at once (not a bank transfer or a card that stays pending)"
    )]
    MethodNotChargeable,
    #[error("the subscription is {0}: it can no longer be changed")]
    Finished(SubscriptionStatus),
    #[error("the subscription is canceled already")]
    AlreadyCanceled,
    #[error("nothing is due")]
    NotDue,
}

/// What to commit: the subscription row, its new payments, its events.
#[derive(Debug, Clone)]
pub struct Applied {
    pub row: StoredSubscription,
    pub payments: Vec<StoredPayment>,
    pub events: Vec<Event>,
}

/// Whether a card charges at once (see the module's choices).
pub fn chargeable(method: &PaymentMethod) -> bool {
    match method {
        PaymentMethod::Card { behaviour, .. } => ![
            ChargeAttempt::SubscriptionFirst,
            ChargeAttempt::SubscriptionRenewal,
        ]
        .iter()
        .any(|attempt| behaviour.outcome(*attempt) == CardOutcome::StaysPending),
        PaymentMethod::BankTransfer => false,
    }
}

/// What a subscription step committed.
#[derive(Debug, Clone)]
pub struct SubscriptionDone {
    pub row: StoredSubscription,
    /// Its events, in order, with their deliveries.
    pub events: Vec<Ingested>,
}

/// Reads the subscription, applies the step and records its row, its
/// payments and its events with their deliveries, all through `tx`; a
/// refused step writes nothing.
pub fn commit(
    tx: &dyn Tx,
    write: &SubscriptionWrite,
) -> Result<Result<SubscriptionDone, SubscriptionRefusal>, StoreError> {
    let current = tx.subscription(write.merchant_id, write.subscription_id)?;
    let applied = match apply(current, write) {
        Ok(applied) => applied,
        Err(refusal) => return Ok(Err(refusal)),
    };
    tx.save_subscription(&applied.row)?;
    for payment in &applied.payments {
        tx.save_payment(payment)?;
    }
    let events = fanout::record(tx, write.merchant_id, &write.subscribers, applied.events)?;
    Ok(Ok(SubscriptionDone {
        row: applied.row,
        events,
    }))
}

/// Applies `write` to the stored subscription (`None` if there is none).
pub fn apply(
    current: Option<StoredSubscription>,
    write: &SubscriptionWrite,
) -> Result<Applied, SubscriptionRefusal> {
    let now = write.now;
    let mut applied = match (&write.change, current) {
        (
            SubscriptionChange::Create {
                subscription,
                method,
            },
            None,
        ) => {
            if !chargeable(method) {
                return Err(SubscriptionRefusal::MethodNotChargeable);
            }
            let calendar = Calendar::for_subscription(subscription)?;
            let mut sub = (**subscription).clone();
            sub.previous_status = None;
            sub.status = if calendar.trial_end().is_some() {
                SubscriptionStatus::Trialing
            } else {
                SubscriptionStatus::Active
            };
            sub.paid_through = calendar.trial_end();
            let mut applied = Applied {
                events: vec![event(EventType::SubscriptionCreated, &sub, now)],
                row: StoredSubscription {
                    subscription: sub,
                    method: method.clone(),
                    failed_attempts: 0,
                    next_action_at: calendar.due(0),
                },
                payments: Vec::new(),
            };
            if calendar.trial_end().is_none() {
                charge(&mut applied, &calendar, now)?;
                if applied.row.failed_attempts > 0 {
                    return Err(SubscriptionRefusal::Declined);
                }
            }
            return Ok(applied);
        }
        (SubscriptionChange::Create { .. }, Some(_)) => return Err(SubscriptionRefusal::Exists),
        (_, None) => return Err(SubscriptionRefusal::NotFound),
        (_, Some(row)) => Applied {
            row,
            payments: Vec::new(),
            events: Vec::new(),
        },
    };
    let status = applied.row.subscription.status;
    match &write.change {
        SubscriptionChange::Create { .. } => unreachable!("handled above"),
        SubscriptionChange::Advance => {
            // The step happens when it fell due, not when billing got to
            // it: after a clock advance of months, each charge, retry and
            // expiry is dated (and the next retry timed) as it would have
            // been, so three missed retries still end in cancellation.
            let at = match applied.row.next_action_at {
                Some(at) if at <= now => at,
                _ => return Err(SubscriptionRefusal::NotDue),
            };
            let calendar = Calendar::for_subscription(&applied.row.subscription)?;
            if status == SubscriptionStatus::Canceled || all_paid(&applied.row, &calendar) {
                expire(&mut applied, at);
            } else {
                charge(&mut applied, &calendar, at)?;
            }
        }
        SubscriptionChange::Cancel { at_period_end } => {
            match status {
                SubscriptionStatus::Expired => return Err(SubscriptionRefusal::Finished(status)),
                // Canceled at period end, and now to end at once (a refund,
                // fraud): access ends now.
                SubscriptionStatus::Canceled if !*at_period_end => {
                    let sub = &mut applied.row.subscription;
                    sub.paid_through = Some(sub.paid_through.map_or(now, |end| end.min(now)));
                    expire(&mut applied, now);
                    return Ok(applied);
                }
                SubscriptionStatus::Canceled => return Err(SubscriptionRefusal::AlreadyCanceled),
                _ => {}
            }
            let sub = &mut applied.row.subscription;
            sub.previous_status = Some(status);
            sub.status = SubscriptionStatus::Canceled;
            sub.cancel_at_period_end = *at_period_end;
            applied.row.failed_attempts = 0;
            let ends = sub.paid_through.filter(|end| *end > now);
            match ends {
                Some(end) if *at_period_end => {
                    applied.row.next_action_at = Some(end);
                    let event_data = applied.row.subscription.clone();
                    applied
                        .events
                        .push(event(EventType::SubscriptionCanceled, &event_data, now));
                }
                _ => {
                    // Access ends now.
                    sub.paid_through = Some(sub.paid_through.map_or(now, |end| end.min(now)));
                    let event_data = applied.row.subscription.clone();
                    applied
                        .events
                        .push(event(EventType::SubscriptionCanceled, &event_data, now));
                    expire(&mut applied, now);
                }
            }
        }
        SubscriptionChange::ChangeMethod(method) => {
            if matches!(
                status,
                SubscriptionStatus::Expired | SubscriptionStatus::Canceled
            ) {
                return Err(SubscriptionRefusal::Finished(status));
            }
            if !chargeable(method) {
                return Err(SubscriptionRefusal::MethodNotChargeable);
            }
            applied.row.method = method.clone();
        }
    }
    Ok(applied)
}

/// Whether every cycle of a limited plan is paid.
fn all_paid(row: &StoredSubscription, calendar: &Calendar) -> bool {
    calendar.due(row.subscription.cycles_paid).is_none()
}

/// Charges the cycle being billed with the card on file.
fn charge(
    applied: &mut Applied,
    calendar: &Calendar,
    now: OffsetDateTime,
) -> Result<(), SubscriptionRefusal> {
    let row = &mut applied.row;
    let cycle = row.subscription.cycles_paid;
    let attempt = if cycle == 0 {
        ChargeAttempt::SubscriptionFirst
    } else {
        ChargeAttempt::SubscriptionRenewal
    };
    let outcome = match &row.method {
        PaymentMethod::Card { behaviour, .. } => behaviour.outcome(attempt),
        PaymentMethod::BankTransfer => return Err(SubscriptionRefusal::MethodNotChargeable),
    };
    let previous = row.subscription.status;
    if outcome.initial_status() != InitialStatus::Completed {
        // Declined (a pending card was refused when it was put on file).
        row.failed_attempts += 1;
        let sub = &mut row.subscription;
        sub.previous_status = Some(previous);
        match billing::next_retry(row.failed_attempts) {
            Some(delay) => {
                sub.status = SubscriptionStatus::PastDue;
                row.next_action_at = Some(now + delay);
                let data = sub.clone();
                applied
                    .events
                    .push(event(EventType::SubscriptionPaymentFailed, &data, now));
            }
            None => {
                // The last retry failed: canceled; its paid time is over.
                sub.status = SubscriptionStatus::PastDue;
                let failed = sub.clone();
                applied
                    .events
                    .push(event(EventType::SubscriptionPaymentFailed, &failed, now));
                let sub = &mut applied.row.subscription;
                sub.previous_status = Some(SubscriptionStatus::PastDue);
                sub.status = SubscriptionStatus::Canceled;
                let canceled = sub.clone();
                applied
                    .events
                    .push(event(EventType::SubscriptionCanceled, &canceled, now));
                applied.row.failed_attempts = 0;
                expire(applied, now);
            }
        }
        return Ok(());
    }
    let sub = &row.subscription;
    let mut payment = Payment {
        id: PaymentId::generate(now),
        parent_id: None,
        status: PaymentStatus::Completed,
        previous_status: None,
        amount: sub.amount,
        fee: 0,
        currency: sub.currency,
        refunded_amount: 0,
        merchant_id: sub.merchant_id,
        receiver_email: sub.receiver_email.clone(),
        payer: sub.payer.clone(),
        invoice: sub.invoice.clone(),
        custom: sub.custom.clone(),
        items: Vec::new(),
        subscription_id: Some(sub.id),
        pending_reason: None,
        reason_code: None,
        created_at: now,
    };
    let created = Charge::create(
        payment.amount(),
        InitialStatus::Completed,
        Purpose::SubscriptionPeriod,
    )
    .map_err(|_| SubscriptionRefusal::Declined)?;
    created.apply(&mut payment);
    applied.events.push(Event {
        id: EventId::generate(now),
        event_type: created.event.clone(),
        created_at: now,
        livemode: false,
        sequence: 0,
        data: EventData::Payment(Box::new(payment.clone())),
    });
    applied.payments.push(StoredPayment {
        payment,
        method: row.method.clone(),
    });
    let sub = &mut row.subscription;
    sub.previous_status = Some(previous);
    sub.status = SubscriptionStatus::Active;
    sub.cycles_paid += 1;
    sub.paid_through = calendar.paid_through(sub.cycles_paid);
    row.failed_attempts = 0;
    row.next_action_at = match calendar.due(sub.cycles_paid) {
        Some(next) => Some(next),
        None => sub.paid_through, // the last cycle: expire when it ends
    };
    Ok(())
}

/// No more access: `expired`, and billing is done with it.
fn expire(applied: &mut Applied, now: OffsetDateTime) {
    let sub = &mut applied.row.subscription;
    sub.previous_status = Some(sub.status);
    sub.status = SubscriptionStatus::Expired;
    applied.row.next_action_at = None;
    let data = sub.clone();
    applied
        .events
        .push(event(EventType::SubscriptionExpired, &data, now));
}

/// An event carrying the subscription.
fn event(event_type: EventType, subscription: &Subscription, now: OffsetDateTime) -> Event {
    Event {
        id: EventId::generate(now),
        event_type,
        created_at: now,
        livemode: false,
        sequence: 0, // assigned when committed
        data: EventData::Subscription(Box::new(subscription.clone())),
    }
}
