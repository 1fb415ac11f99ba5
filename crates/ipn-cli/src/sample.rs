//! Realistic sample events for `ipn send`: what the gateway would emit for a
//! test-mode purchase or subscription, with the caller's amount, currency,
//! invoice and ids.

use ipn_core::event::{Event, EventData, EventType};
use ipn_core::id::{EventId, MerchantId, PaymentId, SubscriptionId};
use ipn_core::money::Currency;
use ipn_core::payment::{Custom, Item, ItemKind, Payer, Payment, PaymentStatus};
use ipn_core::subscription::{Interval, Subscription, SubscriptionStatus};
use time::OffsetDateTime;

/// What the caller chose; everything else is made up.
#[derive(Debug, Clone)]
pub struct Sample {
    pub event_type: EventType,
    /// Positive, in minor units; refunds and reversals are sent negative.
    pub amount: i64,
    pub currency: Currency,
    pub invoice: String,
    pub custom: Option<Custom>,
    pub receiver_email: String,
    pub merchant_id: MerchantId,
    pub payer_email: String,
    pub payer_name: String,
    /// The payment the event is about (for a refund or reversal, the original).
    pub payment_id: Option<PaymentId>,
    pub subscription_id: Option<SubscriptionId>,
    pub sequence: Option<u64>,
    pub item_kind: ItemKind,
    pub now: OffsetDateTime,
}

impl Sample {
    pub fn event(&self) -> Event {
        let data = match self.event_type {
            EventType::SubscriptionCreated
            | EventType::SubscriptionPaymentFailed
            | EventType::SubscriptionCanceled
            | EventType::SubscriptionExpired => {
                EventData::Subscription(Box::new(self.subscription()))
            }
            _ => EventData::Payment(Box::new(self.payment())),
        };
        Event {
            id: EventId::generate(self.now),
            event_type: self.event_type.clone(),
            created_at: self.now,
            livemode: false,
            sequence: self.sequence.unwrap_or_else(|| self.default_sequence()),
            data,
        }
    }

    /// Where this event would fall in its object's history, had the object
    /// gone the usual way (signup 1, first payment 2, …).
    fn default_sequence(&self) -> u64 {
        use EventType as T;
        match self.event_type {
            T::PaymentRefunded | T::PaymentReversed | T::SubscriptionPayment => 2,
            T::PaymentReversalCanceled | T::SubscriptionPaymentFailed => 3,
            T::SubscriptionCanceled => 3,
            T::SubscriptionExpired => 4,
            _ => 1,
        }
    }

    fn payer(&self) -> Payer {
        Payer {
            email: self.payer_email.clone(),
            name: Some(self.payer_name.clone()),
            id: Some("PAYERSAMPLE01".to_owned()),
        }
    }

    /// A 3 % processing fee, rounded down, on a magnitude.
    fn fee_on(amount: i64) -> i64 {
        amount.saturating_mul(3) / 100
    }

    fn payment(&self) -> Payment {
        use EventType as T;
        let original = self
            .payment_id
            .unwrap_or_else(|| PaymentId::generate(self.now));
        // A failure follows a pending bank transfer; a refund, reversal or
        // reversal cancellation is a new object, so it has no previous status.
        let (status, previous) = match self.event_type {
            T::PaymentPending => (PaymentStatus::Pending, None),
            T::PaymentFailed => (PaymentStatus::Failed, Some(PaymentStatus::Pending)),
            T::PaymentDenied => (PaymentStatus::Denied, None),
            T::PaymentRefunded => (PaymentStatus::Refunded, None),
            T::PaymentReversed => (PaymentStatus::Reversed, None),
            T::PaymentReversalCanceled => (PaymentStatus::ReversalCanceled, None),
            _ => (PaymentStatus::Completed, None),
        };
        // Refunds and reversals are payments of their own, pointing back at
        // the original, with the money going the other way.
        let is_return = matches!(self.event_type, T::PaymentRefunded | T::PaymentReversed);
        let is_child = is_return || self.event_type == T::PaymentReversalCanceled;
        let sign = if is_return { -1 } else { 1 };
        let (id, parent_id) = if is_child {
            (PaymentId::generate(self.now), Some(original))
        } else {
            (original, None)
        };
        Payment {
            id,
            parent_id,
            status,
            previous_status: previous,
            amount: sign * self.amount,
            // Fees are taken when money moves, and partly returned with it.
            fee: if matches!(
                status,
                PaymentStatus::Pending | PaymentStatus::Failed | PaymentStatus::Denied
            ) {
                0
            } else {
                sign * Self::fee_on(self.amount)
            },
            currency: self.currency,
            refunded_amount: if self.event_type == T::PaymentRefunded {
                self.amount
            } else {
                0
            },
            merchant_id: self.merchant_id,
            receiver_email: self.receiver_email.clone(),
            payer: self.payer(),
            invoice: Some(self.invoice.clone()),
            custom: self.custom.clone(),
            items: vec![Item {
                sku: "SKU-SAMPLE-1".to_owned(),
                name: match self.item_kind {
                    ItemKind::Digital => "Sample e-book".to_owned(),
                    ItemKind::Physical => "Sample mug".to_owned(),
                },
                quantity: 1,
                unit_amount: self.amount,
                kind: self.item_kind,
            }],
            subscription_id: match self.event_type {
                T::SubscriptionPayment => Some(self.subscription_id()),
                _ => None,
            },
            pending_reason: (status == PaymentStatus::Pending).then(|| "echeck".to_owned()),
            reason_code: match self.event_type {
                T::PaymentRefunded => Some("refund".to_owned()),
                T::PaymentReversed => Some("chargeback".to_owned()),
                _ => None,
            },
            created_at: self.now,
        }
    }

    fn subscription_id(&self) -> SubscriptionId {
        self.subscription_id
            .unwrap_or_else(|| SubscriptionId::generate(self.now))
    }

    fn subscription(&self) -> Subscription {
        use EventType as T;
        use SubscriptionStatus as S;
        let (status, previous) = match self.event_type {
            T::SubscriptionCreated => (S::Active, None),
            T::SubscriptionPaymentFailed => (S::PastDue, Some(S::Active)),
            T::SubscriptionCanceled => (S::Canceled, Some(S::Active)),
            _ => (S::Expired, Some(S::Active)),
        };
        Subscription {
            id: self.subscription_id(),
            status,
            previous_status: previous,
            merchant_id: self.merchant_id,
            receiver_email: self.receiver_email.clone(),
            payer: self.payer(),
            amount: self.amount,
            currency: self.currency,
            interval: Interval::Month,
            interval_count: 1,
            trial_days: 0,
            total_cycles: Some(12),
            cycles_paid: u32::from(self.event_type != T::SubscriptionCreated),
            paid_through: (self.event_type != T::SubscriptionExpired)
                .then(|| self.now + time::Duration::days(30)),
            cancel_at_period_end: self.event_type == T::SubscriptionCanceled,
            invoice: Some(self.invoice.clone()),
            custom: self.custom.clone(),
            created_at: self.now,
        }
    }
}
