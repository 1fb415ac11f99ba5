//! Test-mode payments: what each operation does to a stored payment and
//! which events it emits.
//!
//! The rules themselves are `ipn_core::payment_flow`'s; this module applies
//! them to a payment as stored, inside the writer's transaction ([`commit`]),
//! so that reading the payment, changing it and recording its events with
//! their deliveries happen at once: two refunds racing cannot both see the
//! same remaining amount, and no change exists without its event, nor an
//! event without its deliveries (the transactional outbox).

use anyhow::anyhow;
use ipn_core::event::{Event, EventData};
use ipn_core::id::{EventId, MerchantId, PaymentId};
use ipn_core::money::Money;
use ipn_core::payment::Payment;
use ipn_core::payment_flow::{Charge, InitialStatus, PaymentError, Purpose, Transition};
use time::OffsetDateTime;

use crate::fanout;
use crate::model::{Endpoint, PaymentMethod, StoredPayment};
use crate::storage::{Ingested, StoreError, Tx};

/// An operation on a payment.
#[derive(Debug, Clone)]
pub enum PaymentChange {
    /// A new payment; `payment` carries everything but the status and fee,
    /// which the outcome decides.
    Create {
        payment: Box<Payment>,
        method: PaymentMethod,
        initial: InitialStatus,
        /// Completed, then reversed by a chargeback at once (the test card
        /// that is always disputed).
        disputed: bool,
    },
    /// A pending payment clears.
    Complete,
    /// A pending payment does not clear.
    Fail,
    /// Refund this much, or all that is left.
    Refund { amount: Option<i64> },
    /// Chargeback.
    Reverse,
    /// The merchant won the chargeback.
    CancelReversal,
}

/// A payment operation for the writer.
#[derive(Debug, Clone)]
pub struct PaymentWrite {
    pub merchant_id: MerchantId,
    pub payment_id: PaymentId,
    pub change: PaymentChange,
    /// The merchant's enabled endpoints: each event goes to those that want it.
    pub subscribers: Vec<Endpoint>,
    pub now: OffsetDateTime,
    /// The API's answer to the outcome, kept with the request's
    /// Idempotency-Key in the same transaction.
    pub respond: Respond,
}

/// Renders the answer (HTTP status, JSON body) to a payment operation.
pub type Respond = fn(Result<&PaymentDone, &PaymentRefusal>) -> (u16, Vec<u8>);

/// Why an operation changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentRefusal {
    #[error("no such payment")]
    NotFound,
    #[error("a payment with this id exists already")]
    Exists,
    #[error(transparent)]
    Rule(#[from] PaymentError),
}

/// What to commit: payment rows to insert or replace (the original first),
/// and the events, in order.
#[derive(Debug, Clone)]
pub struct Applied {
    pub rows: Vec<StoredPayment>,
    pub events: Vec<Event>,
}

/// What a payment operation committed.
#[derive(Debug, Clone)]
pub struct PaymentDone {
    /// The payment rows written, the original first.
    pub rows: Vec<StoredPayment>,
    /// Its events, in order, with their deliveries.
    pub events: Vec<Ingested>,
}

/// Reads the payment, applies the operation and records its rows and its
/// events with their deliveries, all through `tx`; a refused operation
/// writes nothing.
pub fn commit(
    tx: &dyn Tx,
    write: &PaymentWrite,
) -> Result<Result<PaymentDone, PaymentRefusal>, StoreError> {
    let current = tx.payment(write.merchant_id, write.payment_id)?;
    let applied = match apply(current, write) {
        Ok(applied) => applied,
        // Stored data that breaks the rules is a failure of the gateway,
        // not an answer to remember.
        Err(PaymentRefusal::Rule(PaymentError::Inconsistent(why))) => {
            return Err(anyhow!(
                "payment {} as stored breaks the payment rules: {why}",
                write.payment_id
            ));
        }
        Err(refusal) => return Ok(Err(refusal)),
    };
    for row in &applied.rows {
        tx.save_payment(row)?;
    }
    let events = fanout::record(tx, write.merchant_id, &write.subscribers, applied.events)?;
    Ok(Ok(PaymentDone {
        rows: applied.rows,
        events,
    }))
}

/// Applies `write` to the stored payment (`None` if there is none).
pub fn apply(
    current: Option<StoredPayment>,
    write: &PaymentWrite,
) -> Result<Applied, PaymentRefusal> {
    let now = write.now;
    if let PaymentChange::Create {
        payment,
        method,
        initial,
        disputed,
    } = &write.change
    {
        if current.is_some() {
            return Err(PaymentRefusal::Exists);
        }
        let mut original = (**payment).clone();
        let created = Charge::create(original.amount(), *initial, Purpose::OneTime)?;
        created.apply(&mut original);
        let mut applied = Applied {
            rows: Vec::new(),
            events: vec![event(
                &created,
                EventData::Payment(Box::new(original.clone())),
                now,
            )],
        };
        if *disputed {
            let reversed = created.charge.reverse()?;
            change(&mut original, method, &reversed, now, &mut applied);
        }
        applied.rows.insert(
            0,
            StoredPayment {
                payment: original,
                method: method.clone(),
            },
        );
        return Ok(applied);
    }
    let Some(StoredPayment {
        payment: mut original,
        method,
    }) = current
    else {
        return Err(PaymentRefusal::NotFound);
    };
    let charge = Charge::try_from(&original)?;
    let transition = match &write.change {
        PaymentChange::Create { .. } => unreachable!("handled above"),
        PaymentChange::Complete | PaymentChange::Fail => {
            let transition = match write.change {
                PaymentChange::Fail => charge.fail()?,
                _ => charge.complete()?,
            };
            original.pending_reason = None; // it is pending no more
            transition
        }
        PaymentChange::Refund { amount } => {
            let amount = match amount {
                Some(minor) => Money::new(*minor, original.currency),
                None => charge.remaining(),
            };
            charge.refund(amount)?
        }
        PaymentChange::Reverse => charge.reverse()?,
        PaymentChange::CancelReversal => charge.cancel_reversal()?,
    };
    let mut applied = Applied {
        rows: Vec::new(),
        events: Vec::new(),
    };
    change(&mut original, &method, &transition, now, &mut applied);
    applied.rows.insert(
        0,
        StoredPayment {
            payment: original,
            method,
        },
    );
    Ok(applied)
}

/// Applies a transition to the original; adds its child row, if any, and
/// its event (carrying the child, or else the original).
fn change(
    original: &mut Payment,
    method: &PaymentMethod,
    transition: &Transition,
    now: OffsetDateTime,
    applied: &mut Applied,
) {
    transition.apply(original);
    match transition.child_payment(original, PaymentId::generate(now), now) {
        Some(child) => {
            applied.events.push(event(
                transition,
                EventData::Payment(Box::new(child.clone())),
                now,
            ));
            // Money going back goes back the way it came.
            applied.rows.push(StoredPayment {
                payment: child,
                method: method.clone(),
            });
        }
        None => applied.events.push(event(
            transition,
            EventData::Payment(Box::new(original.clone())),
            now,
        )),
    }
}

fn event(transition: &Transition, data: EventData, now: OffsetDateTime) -> Event {
    Event {
        id: EventId::generate(now),
        event_type: transition.event.clone(),
        created_at: now,
        livemode: false,
        sequence: 0, // assigned when committed
        data,
    }
}
