//! The payment state machine: which changes a payment may go through, what
//! each does to its money, and which event it emits.
//!
//! A [`Charge`] is an original payment (not a refund or a reversal) reduced
//! to what the rules need: status, amount, fee and how much was refunded. It
//! can only be made by [`Charge::create`] or read back from storage by
//! [`Charge::restore`], both of which check its invariants, and it changes
//! only through the operations below. Each returns a [`Transition`] (the
//! charge after the change, and the one event to emit) or a [`PaymentError`]
//! saying why the change is not allowed; the charge itself is never modified,
//! so a refused operation changes nothing.
//!
//! | from | operation | to | event |
//! |---|---|---|---|
//! | — | [`Charge::create`] | pending, completed or denied | `payment.pending`, `payment.completed`, `payment.denied` |
//! | pending | [`Charge::complete`] | completed | `payment.completed` |
//! | pending | [`Charge::fail`] | failed | `payment.failed` |
//! | pending | [`Charge::deny`] | denied | `payment.denied` |
//! | completed, reversal_canceled | [`Charge::refund`] of part of what is left | unchanged | `payment.refunded` |
//! | completed, reversal_canceled | [`Charge::refund`] of all that is left | refunded | `payment.refunded` |
//! | completed | [`Charge::reverse`] (chargeback) | reversed | `payment.reversed` |
//! | reversed | [`Charge::cancel_reversal`] (dispute won) | reversal_canceled | `payment.reversal_canceled` |
//!
//! Failed, denied and refunded are final. A subscription's period payment
//! ([`Purpose::SubscriptionPeriod`]) emits `subscription.payment` where a
//! one-time payment emits `payment.completed`, and
//! `subscription.payment_failed` (which carries the subscription) where it
//! emits `payment.denied` or `payment.failed`.
//!
//! Refunds, reversals and reversal cancellations are new payment objects
//! ([`ChildPayment`]) pointing at the original, as in PayPal: a refund and a
//! reversal carry a negative amount, a reversal cancellation a positive one.
//! Rules chosen here:
//! - Refunds may be partial and repeated until nothing is left; the original
//!   stays `completed` (or `reversal_canceled`) while some money is left and
//!   becomes `refunded` when all of it is refunded.
//! - A reversed payment cannot be refunded (its money is already back with
//!   the payer); once the reversal is canceled the money is the merchant's
//!   again, and it can be refunded as a completed payment.
//! - A chargeback reverses all that was not refunded. A payment is disputed
//!   at most once: after a canceled reversal it cannot be reversed again.
//! - Every return of money gives back the fee in proportion to it (as
//!   PayPal does), so a full refund returns the whole fee; a canceled
//!   reversal takes the fee again. Test mode charges no dispute fee.

use std::fmt;

use time::OffsetDateTime;

use crate::event::EventType;
use crate::id::PaymentId;
use crate::money::{Currency, Money};
use crate::payment::{Payment, PaymentStatus};
use crate::pricing;

/// Why an operation on a payment is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error("payment is {status}: only a pending payment can be completed, failed or denied")]
    NotPending { status: PaymentStatus },
    #[error("payment is {status}: only a completed payment can be refunded or reversed")]
    NotCompleted { status: PaymentStatus },
    #[error("payment is already fully refunded")]
    FullyRefunded,
    #[error("payment is reversed by a chargeback: its money is already back with the payer")]
    AlreadyReversed,
    #[error(
        "payment was disputed and the merchant won: its reversal was canceled and it cannot be reversed again"
    )]
    AlreadyDisputed,
    #[error("payment is {status}: only a reversed payment can have its reversal canceled")]
    NotReversed { status: PaymentStatus },
    #[error("amount must be more than zero, not {amount}")]
    NotPositive { amount: Money },
    #[error("amount is in {given} but the payment is in {expected}")]
    CurrencyMismatch { expected: Currency, given: Currency },
    #[error("refund of {asked} is more than the {remaining} left to refund")]
    RefundExceedsRemaining { remaining: Money, asked: Money },
    /// The payment is a refund, a reversal or a reversal cancellation: only
    /// the original payment changes.
    #[error("payment is a refund or reversal of {parent_id}: act on the original payment")]
    NotOriginal { parent_id: PaymentId },
    /// Stored values that no sequence of operations could have produced.
    #[error("stored payment is inconsistent: {0}")]
    Inconsistent(&'static str),
}

/// The status a payment is created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InitialStatus {
    /// Accepted, not cleared yet (bank transfer, payment under review).
    Pending,
    /// Money captured.
    Completed,
    /// Refused (a declined card).
    Denied,
}

impl InitialStatus {
    /// The same status as a [`PaymentStatus`].
    pub fn status(self) -> PaymentStatus {
        match self {
            Self::Pending => PaymentStatus::Pending,
            Self::Completed => PaymentStatus::Completed,
            Self::Denied => PaymentStatus::Denied,
        }
    }
}

/// Why a payment is pending: PayPal's `pending_reason` values the test
/// gateway uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PendingReason {
    /// A bank transfer that has not cleared (`echeck`).
    Echeck,
    /// Held for review (`paymentreview`), as the pending test card is.
    PaymentReview,
}

impl PendingReason {
    /// The value of `pending_reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Echeck => "echeck",
            Self::PaymentReview => "paymentreview",
        }
    }
}

impl fmt::Display for PendingReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a payment is for; it decides which event its capture emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// A one-time payment: API or checkout.
    OneTime,
    /// One period of a subscription (the payment has a `subscription_id`).
    SubscriptionPeriod,
}

/// An original payment, as far as the rules are concerned.
///
/// Invariants, checked when one is made: `amount > 0`; fee and refunded in
/// the amount's currency; `0 <= fee <= amount`; `0 <= refunded <= amount`;
/// pending, failed and denied payments have no fee and no refunds; a
/// refunded payment is refunded in full, and no other is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    status: PaymentStatus,
    purpose: Purpose,
    amount: Money,
    fee: Money,
    refunded: Money,
}

impl Charge {
    /// A new payment of `amount`. A completed one pays the test fee
    /// ([`pricing::fee`]) at once; a pending one when it completes.
    pub fn create(
        amount: Money,
        initial: InitialStatus,
        purpose: Purpose,
    ) -> Result<Transition, PaymentError> {
        if !amount.is_positive() {
            return Err(PaymentError::NotPositive { amount });
        }
        let zero = Money::new(0, amount.currency());
        let fee = match initial {
            InitialStatus::Completed => pricing::fee(amount),
            InitialStatus::Pending | InitialStatus::Denied => zero,
        };
        let charge = Charge {
            status: initial.status(),
            purpose,
            amount,
            fee,
            refunded: zero,
        };
        Ok(charge.becomes(None, charge.status_event(), None))
    }

    /// A charge as stored, after checking the invariants (see [`Charge`]).
    pub fn restore(
        status: PaymentStatus,
        purpose: Purpose,
        amount: Money,
        fee: Money,
        refunded: Money,
    ) -> Result<Charge, PaymentError> {
        use PaymentError::Inconsistent;
        let currency = amount.currency();
        for other in [fee, refunded] {
            if other.currency() != currency {
                return Err(PaymentError::CurrencyMismatch {
                    expected: currency,
                    given: other.currency(),
                });
            }
        }
        if !amount.is_positive() {
            return Err(Inconsistent("amount is not positive"));
        }
        if fee.is_negative() || fee.minor() > amount.minor() {
            return Err(Inconsistent("fee is negative or more than the amount"));
        }
        if refunded.is_negative() || refunded.minor() > amount.minor() {
            return Err(Inconsistent("refunded is negative or more than the amount"));
        }
        let fully_refunded = refunded == amount;
        match status {
            PaymentStatus::Pending | PaymentStatus::Failed | PaymentStatus::Denied
                if !fee.is_zero() || !refunded.is_zero() =>
            {
                return Err(Inconsistent(
                    "a payment that never completed has a fee or refunds",
                ));
            }
            PaymentStatus::Refunded if !fully_refunded => {
                return Err(Inconsistent("refunded but not in full"));
            }
            PaymentStatus::Completed
            | PaymentStatus::Reversed
            | PaymentStatus::ReversalCanceled
                if fully_refunded =>
            {
                return Err(Inconsistent("refunded in full but not refunded"));
            }
            _ => {}
        }
        Ok(Charge {
            status,
            purpose,
            amount,
            fee,
            refunded,
        })
    }

    /// Where the payment stands.
    pub fn status(&self) -> PaymentStatus {
        self.status
    }

    /// What the payment is for.
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// The amount paid, positive.
    pub fn amount(&self) -> Money {
        self.amount
    }

    /// The fee charged on it, before any was given back (zero until it
    /// completes).
    pub fn fee(&self) -> Money {
        self.fee
    }

    /// How much has been refunded so far (`refunded_amount`).
    pub fn refunded(&self) -> Money {
        self.refunded
    }

    /// The amount not refunded yet: what a full refund, or a chargeback,
    /// would return.
    pub fn remaining(&self) -> Money {
        // 0 <= refunded <= amount, so this cannot overflow.
        Money::new(
            self.amount.minor() - self.refunded.minor(),
            self.amount.currency(),
        )
    }

    /// Pending → completed; the fee is charged now.
    pub fn complete(&self) -> Result<Transition, PaymentError> {
        self.require_pending()?;
        let charge = Charge {
            status: PaymentStatus::Completed,
            fee: pricing::fee(self.amount),
            ..*self
        };
        Ok(charge.becomes(Some(self.status), charge.status_event(), None))
    }

    /// Pending → failed: the money did not clear.
    pub fn fail(&self) -> Result<Transition, PaymentError> {
        self.require_pending()?;
        let charge = Charge {
            status: PaymentStatus::Failed,
            ..*self
        };
        Ok(charge.becomes(Some(self.status), charge.status_event(), None))
    }

    /// Pending → denied: the payment was refused (after review).
    pub fn deny(&self) -> Result<Transition, PaymentError> {
        self.require_pending()?;
        let charge = Charge {
            status: PaymentStatus::Denied,
            ..*self
        };
        Ok(charge.becomes(Some(self.status), charge.status_event(), None))
    }

    /// Refunds `amount` (part or all of what is left), with its share of the
    /// fee. The payment becomes `refunded` when nothing is left.
    pub fn refund(&self, amount: Money) -> Result<Transition, PaymentError> {
        match self.status {
            PaymentStatus::Completed | PaymentStatus::ReversalCanceled => {}
            PaymentStatus::Refunded => return Err(PaymentError::FullyRefunded),
            PaymentStatus::Reversed => return Err(PaymentError::AlreadyReversed),
            status => return Err(PaymentError::NotCompleted { status }),
        }
        let currency = self.amount.currency();
        if amount.currency() != currency {
            return Err(PaymentError::CurrencyMismatch {
                expected: currency,
                given: amount.currency(),
            });
        }
        if !amount.is_positive() {
            return Err(PaymentError::NotPositive { amount });
        }
        let remaining = self.remaining();
        if amount.minor() > remaining.minor() {
            return Err(PaymentError::RefundExceedsRemaining {
                remaining,
                asked: amount,
            });
        }
        let refunded = Money::new(self.refunded.minor() + amount.minor(), currency);
        let status = if refunded == self.amount {
            PaymentStatus::Refunded
        } else {
            self.status
        };
        let charge = Charge {
            status,
            refunded,
            ..*self
        };
        let fee_back = self.fee_share(refunded).minor() - self.fee_share(self.refunded).minor();
        let child = ChildPayment {
            kind: ChildKind::Refund,
            amount: Money::new(-amount.minor(), currency),
            fee: Money::new(-fee_back, currency),
            refunded_total: refunded,
        };
        Ok(charge.becomes(Some(self.status), EventType::PaymentRefunded, Some(child)))
    }

    /// A chargeback: all that was not refunded goes back to the payer, with
    /// its share of the fee.
    pub fn reverse(&self) -> Result<Transition, PaymentError> {
        match self.status {
            PaymentStatus::Completed => {}
            PaymentStatus::Refunded => return Err(PaymentError::FullyRefunded),
            PaymentStatus::Reversed => return Err(PaymentError::AlreadyReversed),
            PaymentStatus::ReversalCanceled => return Err(PaymentError::AlreadyDisputed),
            status => return Err(PaymentError::NotCompleted { status }),
        }
        let (amount, fee) = self.disputed();
        let charge = Charge {
            status: PaymentStatus::Reversed,
            ..*self
        };
        let child = ChildPayment {
            kind: ChildKind::Reversal,
            amount: Money::new(-amount.minor(), amount.currency()),
            fee: Money::new(-fee.minor(), fee.currency()),
            refunded_total: self.refunded,
        };
        Ok(charge.becomes(Some(self.status), EventType::PaymentReversed, Some(child)))
    }

    /// The merchant won the dispute: what the reversal took comes back, and
    /// the fee share with it.
    pub fn cancel_reversal(&self) -> Result<Transition, PaymentError> {
        if self.status != PaymentStatus::Reversed {
            return Err(PaymentError::NotReversed {
                status: self.status,
            });
        }
        let (amount, fee) = self.disputed();
        let charge = Charge {
            status: PaymentStatus::ReversalCanceled,
            ..*self
        };
        let child = ChildPayment {
            kind: ChildKind::ReversalCancellation,
            amount,
            fee,
            refunded_total: self.refunded,
        };
        Ok(charge.becomes(
            Some(self.status),
            EventType::PaymentReversalCanceled,
            Some(child),
        ))
    }

    fn require_pending(&self) -> Result<(), PaymentError> {
        match self.status {
            PaymentStatus::Pending => Ok(()),
            status => Err(PaymentError::NotPending { status }),
        }
    }

    /// The money a chargeback takes (everything not refunded; refunds are
    /// refused while reversed, so the same amount comes back on
    /// cancellation) and the fee that goes with it.
    fn disputed(&self) -> (Money, Money) {
        let fee = self.fee.minor() - self.fee_share(self.refunded).minor();
        (self.remaining(), Money::new(fee, self.amount.currency()))
    }

    /// The part of the fee that belongs to `part` of the amount.
    fn fee_share(&self, part: Money) -> Money {
        pricing::fee_share(self.fee, self.amount, part)
    }

    /// The event for the status this charge has just reached (creation,
    /// complete, fail, deny).
    fn status_event(&self) -> EventType {
        match (self.purpose, self.status) {
            (Purpose::SubscriptionPeriod, PaymentStatus::Completed) => {
                EventType::SubscriptionPayment
            }
            (Purpose::SubscriptionPeriod, PaymentStatus::Failed | PaymentStatus::Denied) => {
                EventType::SubscriptionPaymentFailed
            }
            (_, PaymentStatus::Pending) => EventType::PaymentPending,
            (_, PaymentStatus::Failed) => EventType::PaymentFailed,
            (_, PaymentStatus::Denied) => EventType::PaymentDenied,
            // Only the statuses above are reached through this path.
            _ => EventType::PaymentCompleted,
        }
    }

    fn becomes(
        self,
        previous: Option<PaymentStatus>,
        event: EventType,
        child: Option<ChildPayment>,
    ) -> Transition {
        Transition {
            previous,
            charge: self,
            event,
            child,
        }
    }
}

/// Reads the original payment of a stored [`Payment`]; a refund or a
/// reversal is refused ([`PaymentError::NotOriginal`]), since only the
/// original changes.
impl TryFrom<&Payment> for Charge {
    type Error = PaymentError;

    fn try_from(payment: &Payment) -> Result<Charge, PaymentError> {
        if let Some(parent_id) = payment.parent_id {
            return Err(PaymentError::NotOriginal { parent_id });
        }
        let purpose = match payment.subscription_id {
            Some(_) => Purpose::SubscriptionPeriod,
            None => Purpose::OneTime,
        };
        Charge::restore(
            payment.status,
            purpose,
            payment.amount(),
            payment.fee(),
            payment.refunded(),
        )
    }
}

/// What an operation did: the charge after it and the one event to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The original payment's status before the operation; `None` when it
    /// was just created.
    pub previous: Option<PaymentStatus>,
    /// The original payment after the operation.
    pub charge: Charge,
    /// The event to emit, in the same transaction as the change. Its
    /// [`EventType::object`] says what it carries: the original payment (with
    /// `previous_status` = [`Transition::previous`]), the [`ChildPayment`]
    /// when there is one, or, for `subscription.payment_failed`, the
    /// subscription.
    pub event: EventType,
    /// The new payment object a refund, a reversal or a reversal
    /// cancellation creates; the event carries it.
    pub child: Option<ChildPayment>,
}

impl Transition {
    /// Writes the change into the stored original payment: status,
    /// `previous_status`, fee and `refunded_amount`.
    pub fn apply(&self, original: &mut Payment) {
        original.status = self.charge.status;
        original.previous_status = self.previous;
        original.fee = self.charge.fee.minor();
        original.refunded_amount = self.charge.refunded.minor();
    }

    /// The new payment object, built from the original (payer, merchant,
    /// invoice, custom, subscription): a new `id`, `parent_id` pointing at
    /// the original, no items (money going back is not tied to lines), no
    /// `previous_status` (it is a new object). `None` when the operation made
    /// no new object.
    pub fn child_payment(
        &self,
        original: &Payment,
        id: PaymentId,
        created_at: OffsetDateTime,
    ) -> Option<Payment> {
        let child = self.child?;
        Some(Payment {
            id,
            parent_id: Some(original.id),
            status: child.kind.status(),
            previous_status: None,
            amount: child.amount.minor(),
            fee: child.fee.minor(),
            currency: child.amount.currency(),
            refunded_amount: child.refunded_total.minor(),
            merchant_id: original.merchant_id,
            receiver_email: original.receiver_email.clone(),
            payer: original.payer.clone(),
            invoice: original.invoice.clone(),
            custom: original.custom.clone(),
            items: Vec::new(),
            subscription_id: original.subscription_id,
            pending_reason: None,
            reason_code: child.kind.reason_code().map(str::to_owned),
            created_at,
        })
    }
}

/// A refund, a reversal or a reversal cancellation: a payment object of its
/// own, pointing at the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildPayment {
    /// Which of the three it is.
    pub kind: ChildKind,
    /// Negative for a refund or a reversal (money going back to the payer),
    /// positive for a reversal cancellation.
    pub amount: Money,
    /// The fee moving with it, with the same sign as `amount`: given back to
    /// the merchant with a refund or a reversal, taken again on cancellation.
    pub fee: Money,
    /// The original's `refunded_amount` after the change, so a receiver sees
    /// whether the payment is now fully refunded.
    pub refunded_total: Money,
}

/// The kinds of [`ChildPayment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChildKind {
    /// `payment.refunded`.
    Refund,
    /// `payment.reversed` (chargeback).
    Reversal,
    /// `payment.reversal_canceled` (chargeback won by the merchant).
    ReversalCancellation,
}

impl ChildKind {
    /// The child object's own status.
    pub fn status(self) -> PaymentStatus {
        match self {
            Self::Refund => PaymentStatus::Refunded,
            Self::Reversal => PaymentStatus::Reversed,
            Self::ReversalCancellation => PaymentStatus::ReversalCanceled,
        }
    }

    /// Its `reason_code` (PayPal's values).
    pub fn reason_code(self) -> Option<&'static str> {
        match self {
            Self::Refund => Some("refund"),
            Self::Reversal => Some("chargeback"),
            Self::ReversalCancellation => None,
        }
    }

    /// The event that carries it.
    pub fn event_type(self) -> EventType {
        match self {
            Self::Refund => EventType::PaymentRefunded,
            Self::Reversal => EventType::PaymentReversed,
            Self::ReversalCancellation => EventType::PaymentReversalCanceled,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;
    use crate::event::ObjectKind;
    use crate::id::{MerchantId, SubscriptionId};
    use crate::payment::{Item, ItemKind, Payer};

    const USD: Currency = Currency::USD;

    fn usd(minor: i64) -> Money {
        Money::new(minor, USD)
    }

    /// A 19.99 USD one-time payment in each reachable state.
    fn charge(status: PaymentStatus) -> Charge {
        let (fee, refunded) = match status {
            PaymentStatus::Pending | PaymentStatus::Failed | PaymentStatus::Denied => (0, 0),
            PaymentStatus::Refunded => (88, 1999),
            _ => (88, 500),
        };
        Charge::restore(status, Purpose::OneTime, usd(1999), usd(fee), usd(refunded)).unwrap()
    }

    #[derive(Debug, Clone, Copy)]
    enum Op {
        Complete,
        Fail,
        Deny,
        RefundOne,
        RefundRest,
        Reverse,
        CancelReversal,
    }

    fn run(c: &Charge, op: Op) -> Result<Transition, PaymentError> {
        match op {
            Op::Complete => c.complete(),
            Op::Fail => c.fail(),
            Op::Deny => c.deny(),
            Op::RefundOne => c.refund(usd(1)),
            Op::RefundRest => c.refund(c.remaining()),
            Op::Reverse => c.reverse(),
            Op::CancelReversal => c.cancel_reversal(),
        }
    }

    /// The status reached and the event emitted, or the refusal.
    type Expected = Result<(PaymentStatus, EventType), PaymentError>;

    #[test]
    fn every_status_allows_exactly_its_transitions() {
        use EventType as E;
        use PaymentStatus::*;
        let not_pending = |status| Err(PaymentError::NotPending { status });
        let not_completed = |status| Err(PaymentError::NotCompleted { status });
        let not_reversed = |status| Err(PaymentError::NotReversed { status });
        let ok = |status, event| Ok((status, event));
        #[rustfmt::skip]
        let table: Vec<(PaymentStatus, Op, Expected)> = vec![
            (Pending, Op::Complete, ok(Completed, E::PaymentCompleted)),
            (Pending, Op::Fail, ok(Failed, E::PaymentFailed)),
            (Pending, Op::Deny, ok(Denied, E::PaymentDenied)),
            (Pending, Op::RefundOne, not_completed(Pending)),
            (Pending, Op::Reverse, not_completed(Pending)),
            (Pending, Op::CancelReversal, not_reversed(Pending)),
            (Completed, Op::Complete, not_pending(Completed)),
            (Completed, Op::Fail, not_pending(Completed)),
            (Completed, Op::Deny, not_pending(Completed)),
            (Completed, Op::RefundOne, ok(Completed, E::PaymentRefunded)),
            (Completed, Op::RefundRest, ok(Refunded, E::PaymentRefunded)),
            (Completed, Op::Reverse, ok(Reversed, E::PaymentReversed)),
            (Completed, Op::CancelReversal, not_reversed(Completed)),
            (Failed, Op::Complete, not_pending(Failed)),
            (Failed, Op::Deny, not_pending(Failed)),
            (Failed, Op::RefundOne, not_completed(Failed)),
            (Failed, Op::Reverse, not_completed(Failed)),
            (Failed, Op::CancelReversal, not_reversed(Failed)),
            (Denied, Op::Complete, not_pending(Denied)),
            (Denied, Op::Fail, not_pending(Denied)),
            (Denied, Op::RefundOne, not_completed(Denied)),
            (Denied, Op::Reverse, not_completed(Denied)),
            (Refunded, Op::Complete, not_pending(Refunded)),
            (Refunded, Op::RefundOne, Err(PaymentError::FullyRefunded)),
            (Refunded, Op::Reverse, Err(PaymentError::FullyRefunded)),
            (Refunded, Op::CancelReversal, not_reversed(Refunded)),
            (Reversed, Op::Complete, not_pending(Reversed)),
            (Reversed, Op::RefundOne, Err(PaymentError::AlreadyReversed)),
            (Reversed, Op::Reverse, Err(PaymentError::AlreadyReversed)),
            (Reversed, Op::CancelReversal, ok(ReversalCanceled, E::PaymentReversalCanceled)),
            (ReversalCanceled, Op::Complete, not_pending(ReversalCanceled)),
            (ReversalCanceled, Op::RefundOne, ok(ReversalCanceled, E::PaymentRefunded)),
            (ReversalCanceled, Op::RefundRest, ok(Refunded, E::PaymentRefunded)),
            (ReversalCanceled, Op::Reverse, Err(PaymentError::AlreadyDisputed)),
            (ReversalCanceled, Op::CancelReversal, not_reversed(ReversalCanceled)),
        ];
        for (from, op, expected) in table {
            let before = charge(from);
            let got = run(&before, op).map(|t| {
                assert_eq!(t.previous, Some(from), "{from} {op:?}");
                (t.charge.status(), t.event)
            });
            assert_eq!(got, expected, "{from} {op:?}");
        }
    }

    #[test]
    fn creation_sets_status_fee_and_event() {
        use EventType as E;
        let cases = [
            (
                InitialStatus::Completed,
                Purpose::OneTime,
                88,
                E::PaymentCompleted,
            ),
            (
                InitialStatus::Pending,
                Purpose::OneTime,
                0,
                E::PaymentPending,
            ),
            (InitialStatus::Denied, Purpose::OneTime, 0, E::PaymentDenied),
            (
                InitialStatus::Completed,
                Purpose::SubscriptionPeriod,
                88,
                E::SubscriptionPayment,
            ),
            (
                InitialStatus::Pending,
                Purpose::SubscriptionPeriod,
                0,
                E::PaymentPending,
            ),
            (
                InitialStatus::Denied,
                Purpose::SubscriptionPeriod,
                0,
                E::SubscriptionPaymentFailed,
            ),
        ];
        for (initial, purpose, fee, event) in cases {
            let t = Charge::create(usd(1999), initial, purpose).unwrap();
            assert_eq!(t.previous, None);
            assert_eq!(t.charge.status(), initial.status());
            assert_eq!(t.charge.purpose(), purpose);
            assert_eq!(t.charge.fee(), usd(fee), "{initial:?}");
            assert_eq!(t.charge.refunded(), usd(0));
            assert_eq!(t.event, event, "{initial:?} {purpose:?}");
            assert_eq!(t.child, None);
        }
        for minor in [0, -1999] {
            assert_eq!(
                Charge::create(usd(minor), InitialStatus::Completed, Purpose::OneTime),
                Err(PaymentError::NotPositive { amount: usd(minor) })
            );
        }
    }

    #[test]
    fn a_subscription_period_reports_through_subscription_events() {
        let pending = Charge::create(
            usd(1000),
            InitialStatus::Pending,
            Purpose::SubscriptionPeriod,
        )
        .unwrap()
        .charge;
        assert_eq!(
            pending.complete().unwrap().event,
            EventType::SubscriptionPayment
        );
        let failed = pending.fail().unwrap();
        assert_eq!(failed.event, EventType::SubscriptionPaymentFailed);
        assert_eq!(failed.event.object(), Some(ObjectKind::Subscription));
        assert_eq!(
            pending.deny().unwrap().event,
            EventType::SubscriptionPaymentFailed
        );
        let paid = pending.complete().unwrap().charge;
        assert_eq!(
            paid.refund(usd(1000)).unwrap().event,
            EventType::PaymentRefunded
        );
    }

    #[test]
    fn completing_charges_the_fee() {
        let pending = Charge::create(usd(1999), InitialStatus::Pending, Purpose::OneTime)
            .unwrap()
            .charge;
        let t = pending.complete().unwrap();
        assert_eq!(t.charge.fee(), usd(88));
        assert_eq!(t.charge.amount(), usd(1999));
        assert_eq!(pending.fail().unwrap().charge.fee(), usd(0));
    }

    #[test]
    fn partial_refunds_until_fully_refunded_then_one_too_many() {
        let mut c = Charge::create(usd(1999), InitialStatus::Completed, Purpose::OneTime)
            .unwrap()
            .charge;
        // (asked, child amount, child fee, refunded total, status after)
        let steps = [
            (500, -500, -22, 500, PaymentStatus::Completed),
            (500, -500, -22, 1000, PaymentStatus::Completed),
            (999, -999, -44, 1999, PaymentStatus::Refunded),
        ];
        for (asked, amount, fee, total, status) in steps {
            let t = c.refund(usd(asked)).unwrap();
            let child = t.child.unwrap();
            assert_eq!(child.kind, ChildKind::Refund);
            assert_eq!(child.amount, usd(amount));
            assert_eq!(child.fee, usd(fee));
            assert_eq!(child.refunded_total, usd(total));
            assert_eq!(t.charge.refunded(), usd(total));
            assert_eq!(t.charge.status(), status);
            c = t.charge;
        }
        assert_eq!(c.refund(usd(1)), Err(PaymentError::FullyRefunded));
        assert_eq!(
            PaymentError::FullyRefunded.to_string(),
            "payment is already fully refunded"
        );
    }

    #[test]
    fn refund_amounts_are_checked() {
        let c = charge(PaymentStatus::Completed); // 1999, 500 refunded
        let cases = [
            (
                usd(1500),
                PaymentError::RefundExceedsRemaining {
                    remaining: usd(1499),
                    asked: usd(1500),
                },
            ),
            (usd(0), PaymentError::NotPositive { amount: usd(0) }),
            (usd(-5), PaymentError::NotPositive { amount: usd(-5) }),
            (
                Money::new(100, Currency::EUR),
                PaymentError::CurrencyMismatch {
                    expected: USD,
                    given: Currency::EUR,
                },
            ),
        ];
        for (amount, error) in cases {
            assert_eq!(c.refund(amount), Err(error), "{amount}");
        }
        assert_eq!(
            c.refund(usd(1500)).unwrap_err().to_string(),
            "refund of 15.00 USD is more than the 14.99 USD left to refund"
        );
        assert!(c.refund(usd(1499)).is_ok());
    }

    #[test]
    fn a_chargeback_takes_what_is_left_and_its_cancellation_gives_it_back() {
        let c = charge(PaymentStatus::Completed); // 1999, fee 88, 500 refunded (fee 22 back)
        let reversed = c.reverse().unwrap();
        let child = reversed.child.unwrap();
        assert_eq!(child.kind, ChildKind::Reversal);
        assert_eq!(child.amount, usd(-1499));
        assert_eq!(child.fee, usd(-66));
        assert_eq!(child.refunded_total, usd(500));
        assert_eq!(reversed.charge.refunded(), usd(500));

        let canceled = reversed.charge.cancel_reversal().unwrap();
        let back = canceled.child.unwrap();
        assert_eq!(back.kind, ChildKind::ReversalCancellation);
        assert_eq!(back.amount, usd(1499));
        assert_eq!(back.fee, usd(66));
        assert_eq!(canceled.previous, Some(PaymentStatus::Reversed));

        // The money is the merchant's again: it can be refunded, in full.
        let refund = canceled.charge.refund(usd(1499)).unwrap();
        assert_eq!(refund.charge.status(), PaymentStatus::Refunded);
        assert_eq!(refund.child.unwrap().fee, usd(-66));
    }

    #[test]
    fn error_messages_say_what_to_do() {
        let cases = [
            (
                charge(PaymentStatus::Completed).complete().unwrap_err(),
                "payment is completed: only a pending payment can be completed, failed or denied",
            ),
            (
                charge(PaymentStatus::Pending).refund(usd(1)).unwrap_err(),
                "payment is pending: only a completed payment can be refunded or reversed",
            ),
            (
                charge(PaymentStatus::ReversalCanceled)
                    .reverse()
                    .unwrap_err(),
                "payment was disputed and the merchant won: its reversal was canceled and it cannot be reversed again",
            ),
            (
                charge(PaymentStatus::Completed)
                    .cancel_reversal()
                    .unwrap_err(),
                "payment is completed: only a reversed payment can have its reversal canceled",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn inconsistent_stored_values_are_refused() {
        use PaymentStatus::*;
        let restore = |status, amount: i64, fee: i64, refunded: i64| {
            Charge::restore(
                status,
                Purpose::OneTime,
                usd(amount),
                usd(fee),
                usd(refunded),
            )
        };
        let bad = [
            restore(Completed, 0, 0, 0),
            restore(Completed, -1, 0, 0),
            restore(Completed, 100, -1, 0),
            restore(Completed, 100, 101, 0),
            restore(Completed, 100, 0, -1),
            restore(Completed, 100, 0, 101),
            restore(Completed, 100, 0, 100),
            restore(Reversed, 100, 0, 100),
            restore(ReversalCanceled, 100, 0, 100),
            restore(Refunded, 100, 0, 99),
            restore(Pending, 100, 1, 0),
            restore(Failed, 100, 0, 1),
            restore(Denied, 100, 3, 0),
        ];
        for result in bad {
            assert!(
                matches!(result, Err(PaymentError::Inconsistent(_))),
                "{result:?}"
            );
        }
        assert_eq!(
            Charge::restore(
                Completed,
                Purpose::OneTime,
                usd(100),
                Money::new(3, Currency::EUR),
                usd(0)
            ),
            Err(PaymentError::CurrencyMismatch {
                expected: USD,
                given: Currency::EUR
            })
        );
        assert!(restore(Refunded, 100, 33, 100).is_ok());
        assert!(restore(Completed, 100, 100, 99).is_ok());
    }

    fn payment() -> Payment {
        Payment {
            id: PaymentId::generate(datetime!(2026-03-01 10:00 UTC)),
            parent_id: None,
            status: PaymentStatus::Completed,
            previous_status: None,
            amount: 1999,
            fee: 88,
            currency: USD,
            refunded_amount: 0,
            merchant_id: MerchantId::generate(datetime!(2026-01-01 00:00 UTC)),
            receiver_email: "shop@example.com".into(),
            payer: Payer {
                email: "ada@example.com".into(),
                name: Some("Ada Lovelace".into()),
                id: None,
            },
            invoice: Some("ord_1".into()),
            custom: None,
            items: vec![Item {
                sku: "BOOK".into(),
                name: "A book".into(),
                quantity: 1,
                unit_amount: 1999,
                kind: ItemKind::Digital,
            }],
            subscription_id: None,
            pending_reason: None,
            reason_code: None,
            created_at: datetime!(2026-03-01 10:00 UTC),
        }
    }

    #[test]
    fn stored_payments_round_trip_through_transitions() {
        let mut original = payment();
        let charge = Charge::try_from(&original).unwrap();
        assert_eq!(charge.purpose(), Purpose::OneTime);
        let t = charge.refund(usd(500)).unwrap();
        t.apply(&mut original);
        assert_eq!(original.refunded_amount, 500);
        assert_eq!(original.status, PaymentStatus::Completed);
        assert_eq!(original.previous_status, Some(PaymentStatus::Completed));
        assert_eq!(Charge::try_from(&original), Ok(t.charge));

        let at = datetime!(2026-03-02 09:00 UTC);
        let id = PaymentId::generate(at);
        let refund = t.child_payment(&original, id, at).unwrap();
        assert_eq!(refund.id, id);
        assert_eq!(refund.parent_id, Some(original.id));
        assert_eq!(refund.status, PaymentStatus::Refunded);
        assert_eq!(refund.previous_status, None);
        assert_eq!(
            (refund.amount, refund.fee, refund.refunded_amount),
            (-500, -22, 500)
        );
        assert_eq!(refund.reason_code.as_deref(), Some("refund"));
        assert_eq!(refund.payer, original.payer);
        assert_eq!(refund.invoice, original.invoice);
        assert!(refund.items.is_empty());
        assert_eq!(refund.created_at, at);

        assert_eq!(
            Charge::try_from(&refund),
            Err(PaymentError::NotOriginal {
                parent_id: original.id
            })
        );
        let completed = Charge::create(usd(1), InitialStatus::Completed, Purpose::OneTime).unwrap();
        assert_eq!(completed.child_payment(&original, id, at), None);

        let mut period = payment();
        period.subscription_id = Some(SubscriptionId::generate(at));
        assert_eq!(
            Charge::try_from(&period).unwrap().purpose(),
            Purpose::SubscriptionPeriod
        );
    }

    #[test]
    fn child_kinds_match_their_events() {
        for kind in [
            ChildKind::Refund,
            ChildKind::Reversal,
            ChildKind::ReversalCancellation,
        ] {
            assert_eq!(kind.event_type().object(), Some(ObjectKind::Payment));
            assert_eq!(
                kind.event_type().as_str().strip_prefix("payment."),
                Some(kind.status().as_str())
            );
        }
        assert_eq!(PendingReason::Echeck.as_str(), "echeck");
        assert_eq!(PendingReason::PaymentReview.to_string(), "paymentreview");
    }

    fn any_currency() -> impl Strategy<Value = Currency> {
        prop::sample::select(vec![Currency::JPY, USD, Currency::KWD])
    }

    proptest! {
        /// Whatever refunds are asked for, in whatever order, the money adds
        /// up: refunds never exceed the amount, each returns a fee share
        /// between zero and its own amount, and a full refund returns exactly
        /// the fee.
        #[test]
        fn refunds_add_up(
            amount in 1i64..1_000_000_000_000,
            currency in any_currency(),
            asks in prop::collection::vec(any::<i64>(), 1..30),
        ) {
            let money = |minor| Money::new(minor, currency);
            let mut c = Charge::create(money(amount), InitialStatus::Completed, Purpose::OneTime)
                .unwrap()
                .charge;
            let (mut refunded, mut fee_back) = (0i64, 0i64);
            for ask in asks {
                let before = c;
                match c.refund(money(ask)) {
                    Ok(t) => {
                        let child = t.child.unwrap();
                        prop_assert!(ask > 0 && ask <= before.remaining().minor());
                        prop_assert_eq!(child.amount, money(-ask));
                        prop_assert!(child.fee.minor() <= 0 && child.fee.minor() >= -ask);
                        refunded += ask;
                        fee_back -= child.fee.minor();
                        prop_assert_eq!(t.charge.refunded(), money(refunded));
                        c = t.charge;
                    }
                    Err(PaymentError::NotPositive { .. }) => prop_assert!(ask <= 0),
                    Err(PaymentError::RefundExceedsRemaining { remaining, .. }) => {
                        prop_assert!(ask > remaining.minor());
                        prop_assert_eq!(remaining, before.remaining());
                    }
                    Err(PaymentError::FullyRefunded) => prop_assert_eq!(refunded, amount),
                    Err(other) => prop_assert!(false, "unexpected {}", other),
                }
            }
            // Refund the rest: everything, fee included, has gone back.
            if c.status() != PaymentStatus::Refunded {
                let t = c.refund(c.remaining()).unwrap();
                fee_back -= t.child.unwrap().fee.minor();
                c = t.charge;
            }
            prop_assert_eq!(c.status(), PaymentStatus::Refunded);
            prop_assert_eq!(c.refunded(), c.amount());
            prop_assert_eq!(fee_back, c.fee().minor());
        }

        /// A chargeback after any partial refund returns exactly the rest of
        /// the money and of the fee, and its cancellation brings both back.
        #[test]
        fn a_chargeback_returns_the_rest(
            amount in 2i64..1_000_000_000_000,
            currency in any_currency(),
            refund in any::<i64>(),
        ) {
            let money = |minor| Money::new(minor, currency);
            let created = Charge::create(money(amount), InitialStatus::Completed, Purpose::OneTime)
                .unwrap()
                .charge;
            let refund = refund.rem_euclid(amount - 1) + 1;
            let partial = created.refund(money(refund)).unwrap();
            let fee_refunded = -partial.child.unwrap().fee.minor();
            let reversed = partial.charge.reverse().unwrap();
            let taken = reversed.child.unwrap();
            prop_assert_eq!(taken.amount.minor(), -(amount - refund));
            prop_assert_eq!(fee_refunded - taken.fee.minor(), created.fee().minor());
            let back = reversed.charge.cancel_reversal().unwrap().child.unwrap();
            prop_assert_eq!(back.amount, money(amount - refund));
            prop_assert_eq!(back.fee.minor(), -taken.fee.minor());
        }
    }
}
