//! What an inbox message says, read the same way from both dialects.
//!
//! A standard message is an [`Event`] (JSON); a PayPal message is a form read
//! through [`IpnMessage`]. Both become a [`Notice`]: the facts the handler
//! acts on, with the key that makes a repeat of the same notice a
//! duplicate. A message that cannot be read is a [`NoticeError`]: it is kept
//! with the reason and changes nothing.

use ipn_core::event::{Event, EventData, EventType};
use ipn_core::money::Money;
use ipn_core::payment::Payment;
use ipn_core::paypal::message::{IpnMessage, PaymentStatus as PaypalStatus};
use ipn_core::subscription::Subscription;

use crate::model::{ChargeStatus, PaymentKind};

/// A notice about a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentNotice {
    pub event_type: EventType,
    /// `pay_…`: the charge's, or the refund's or reversal's own.
    pub txn_id: String,
    /// The charge a refund or reversal belongs to.
    pub parent_id: Option<String>,
    pub kind: PaymentKind,
    /// Signed: negative for money going back (refund, reversal).
    pub amount: Money,
    /// The merchant's order reference: our order id.
    pub invoice: Option<String>,
    /// The gateway's id of the merchant paid (`merchant_id`, PayPal's
    /// `receiver_id`).
    pub receiver: Option<String>,
    pub livemode: bool,
    /// The subscription a period payment pays for.
    pub subscription_id: Option<String>,
    pub payer_email: Option<String>,
}

/// A notice about a subscription that carries the subscription itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionNotice {
    pub event_type: EventType,
    pub subscription_id: String,
    pub receiver: Option<String>,
    pub livemode: bool,
    pub payer_email: Option<String>,
    /// The whole object, when the dialect sends it (standard).
    pub subscription: Option<Box<Subscription>>,
    /// The price of a period (PayPal's `mc_amount3`).
    pub amount: Option<Money>,
    /// When the subscriber signed up (ms; PayPal's `subscr_date`).
    pub signed_up_at: Option<i64>,
    /// The merchant's reference: the shop's order that bought it.
    pub invoice: Option<String>,
}

/// What one message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Payment(PaymentNotice),
    Subscription(SubscriptionNotice),
    /// Something this shop does not act on (an endpoint notice, a
    /// platform's own type, a PayPal transaction type with no order in it).
    Ignored(String),
}

/// A notice with what identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// Two messages sharing a key say the same thing: only the first has an
    /// effect. The event id for standard messages. For PayPal, `txn_id` +
    /// `payment_status` (one `txn_id` legitimately goes Pending →
    /// Completed) and the `ipn_track_id` (the same on every resend; ours is
    /// the event id, so an event reconciled from the gateway's list and the
    /// PayPal message of the same event are one notice); the body's hash
    /// when it has neither.
    pub keys: Vec<String>,
    /// When the change happened, in milliseconds since the Unix epoch, as
    /// the notice tells it: the event's `created_at` (standard); for PayPal,
    /// the time in an `ipn_track_id` that is one of our event ids (a ULID),
    /// else `payment_date`. One scale for both dialects, so notices of one
    /// subscription can be put in order whichever way they came.
    pub happened_at: Option<i64>,
    pub notice: Notice,
}

/// Why a message cannot be acted on; kept with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoticeError(pub String);

fn bad(what: impl Into<String>) -> NoticeError {
    NoticeError(what.into())
}

/// Reads a standard-dialect body (an [`Event`]).
pub fn read_standard(body: &[u8]) -> Result<Read, NoticeError> {
    let event: Event =
        serde_json::from_slice(body).map_err(|e| bad(format!("not an ipn event: {e}")))?;
    let keys = vec![event.id.to_string()];
    let happened_at = Some(crate::clock::millis(event.created_at));
    let (t, livemode) = (&event.event_type, event.livemode);
    let notice = match &event.data {
        EventData::Payment(payment) => Notice::Payment(payment_notice(t, payment, livemode)?),
        EventData::Subscription(sub) => Notice::Subscription(SubscriptionNotice {
            event_type: t.clone(),
            subscription_id: sub.id.to_string(),
            receiver: Some(sub.merchant_id.to_string()),
            livemode,
            payer_email: Some(sub.payer.email.clone()),
            amount: Some(sub.amount()),
            signed_up_at: Some(crate::clock::millis(sub.created_at)),
            invoice: sub.invoice.clone(),
            subscription: Some(sub.clone()),
        }),
        _ => Notice::Ignored(format!("{t} is not about an order or a subscription")),
    };
    Ok(Read {
        keys,
        happened_at,
        notice,
    })
}

fn payment_notice(
    t: &EventType,
    p: &Payment,
    livemode: bool,
) -> Result<PaymentNotice, NoticeError> {
    let kind = match t {
        EventType::PaymentPending => PaymentKind::Charge(ChargeStatus::Pending),
        EventType::PaymentCompleted | EventType::SubscriptionPayment => {
            PaymentKind::Charge(ChargeStatus::Completed)
        }
        EventType::PaymentFailed => PaymentKind::Charge(ChargeStatus::Failed),
        EventType::PaymentDenied => PaymentKind::Charge(ChargeStatus::Denied),
        EventType::PaymentRefunded => PaymentKind::Refund,
        EventType::PaymentReversed => PaymentKind::Reversal,
        EventType::PaymentReversalCanceled => PaymentKind::ReversalCanceled,
        other => return Err(bad(format!("{other} does not carry a payment"))),
    };
    // A charge has no parent and a refund or reversal always has one; a
    // contradiction means the message is not what it claims.
    if matches!(kind, PaymentKind::Charge(_)) != p.parent_id.is_none() {
        return Err(bad(format!(
            "a {t} event whose payment {} contradicts it",
            p.id
        )));
    }
    Ok(PaymentNotice {
        event_type: t.clone(),
        txn_id: p.id.to_string(),
        parent_id: p.parent_id.map(|id| id.to_string()),
        kind,
        amount: p.amount(),
        invoice: p.invoice.clone(),
        receiver: Some(p.merchant_id.to_string()),
        livemode,
        subscription_id: p.subscription_id.map(|id| id.to_string()),
        payer_email: Some(p.payer.email.clone()),
    })
}

/// Reads a PayPal-dialect body (only ever called on a `VERIFIED` one).
pub fn read_paypal(body: &[u8]) -> Result<Read, NoticeError> {
    let message = IpnMessage::parse(body).map_err(|e| bad(format!("not an IPN form: {e}")))?;
    // An authorization voided or expired before capture did not clear: for
    // the order it is a failed payment.
    let voided = matches!(
        message.payment_status(),
        Some(PaypalStatus::Voided | PaypalStatus::Expired)
    );
    let event_type = message
        .event_type()
        .or_else(|| voided.then_some(EventType::PaymentFailed));
    let Some(event_type) = event_type else {
        let txn_type = message.get("txn_type").unwrap_or("(none)");
        let status = message.get("payment_status").unwrap_or("(none)");
        return Ok(Read {
            keys: paypal_keys(&message, body, None),
            happened_at: paypal_time(&message),
            notice: Notice::Ignored(format!(
                "txn_type {txn_type} with payment_status {status} is not acted on"
            )),
        });
    };
    let receiver = message.get("receiver_id").map(str::to_owned);
    let livemode = !message.is_test();
    let payer_email = message.payer_email().map(str::to_owned);
    if event_type.object() == Some(ipn_core::event::ObjectKind::Subscription)
        && event_type != EventType::SubscriptionPayment
    {
        let subscription_id = message
            .subscr_id()
            .ok_or_else(|| bad(format!("a {event_type} message without subscr_id")))?
            .to_owned();
        return Ok(Read {
            keys: paypal_keys(&message, body, None),
            happened_at: paypal_time(&message),
            notice: Notice::Subscription(SubscriptionNotice {
                event_type,
                subscription_id,
                receiver,
                livemode,
                payer_email,
                subscription: None,
                invoice: message.invoice().map(str::to_owned),
                amount: message.amount("mc_amount3").ok().flatten(),
                signed_up_at: message
                    .get("subscr_date")
                    .and_then(|date| ipn_core::paypal::date::parse_payment_date(date).ok())
                    .map(crate::clock::millis),
            }),
        });
    }
    let txn_id = message
        .txn_id()
        .ok_or_else(|| bad(format!("a {event_type} message without txn_id")))?
        .to_owned();
    let status = message.get("payment_status").unwrap_or_default().to_owned();
    let amount = message
        .gross()
        .map_err(|e| bad(e.to_string()))?
        .ok_or_else(|| bad("mc_gross is missing"))?;
    let kind = match message.payment_status() {
        Some(PaypalStatus::Pending) => PaymentKind::Charge(ChargeStatus::Pending),
        Some(PaypalStatus::Completed) => PaymentKind::Charge(ChargeStatus::Completed),
        Some(PaypalStatus::Failed) => PaymentKind::Charge(ChargeStatus::Failed),
        Some(PaypalStatus::Denied) => PaymentKind::Charge(ChargeStatus::Denied),
        // An authorization voided or expired before capture: nothing came.
        Some(PaypalStatus::Voided | PaypalStatus::Expired) => {
            PaymentKind::Charge(ChargeStatus::Failed)
        }
        Some(PaypalStatus::Refunded) => PaymentKind::Refund,
        Some(PaypalStatus::Reversed) => PaymentKind::Reversal,
        Some(PaypalStatus::CanceledReversal) => PaymentKind::ReversalCanceled,
        _ => return Err(bad(format!("payment_status {status:?} is not acted on"))),
    };
    let parent_id = message.parent_txn_id().map(str::to_owned);
    if matches!(kind, PaymentKind::Charge(_)) == parent_id.is_some() {
        return Err(bad(format!(
            "payment_status {status} {} parent_txn_id",
            if parent_id.is_some() {
                "with a"
            } else {
                "without a"
            }
        )));
    }
    Ok(Read {
        keys: paypal_keys(&message, body, Some(format!("{txn_id}:{status}"))),
        happened_at: paypal_time(&message),
        notice: Notice::Payment(PaymentNotice {
            event_type,
            txn_id,
            parent_id,
            kind,
            amount,
            invoice: message.invoice().map(str::to_owned),
            receiver,
            livemode,
            subscription_id: message.subscr_id().map(str::to_owned),
            payer_email,
        }),
    })
}

/// When a PayPal message's change happened (see [`Read::happened_at`]).
fn paypal_time(message: &IpnMessage) -> Option<i64> {
    let from_track = message
        .ipn_track_id()
        .and_then(|track| track.parse::<ipn_core::id::EventId>().ok())
        .and_then(|id| i64::try_from(id.ulid().timestamp_ms()).ok());
    from_track.or_else(|| {
        message
            .payment_date()
            .ok()
            .flatten()
            .map(crate::clock::millis)
    })
}

/// A PayPal message's keys: `txn_id:payment_status` when it has a
/// transaction, its `ipn_track_id`, and its body's hash only when it has
/// neither.
fn paypal_keys(message: &IpnMessage, body: &[u8], transaction: Option<String>) -> Vec<String> {
    use sha2::Digest as _;
    let mut keys: Vec<String> = transaction.into_iter().collect();
    keys.extend(message.ipn_track_id().map(str::to_owned));
    if keys.is_empty() {
        let digest = sha2::Sha256::digest(body);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        keys.push(format!("body:{hex}"));
    }
    keys
}

#[cfg(test)]
mod tests {
    use ipn_core::money::Currency;

    use super::*;

    /// The published PayPal IPN bodies (`shared/vectors/paypal-ipn.json`).
    fn samples() -> Vec<(String, Vec<u8>)> {
        // The copy the core crate keeps of shared/vectors: a checkout has no
        // shared/ folder beside it.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../ipn-core/tests/data/paypal-ipn.json"
        );
        let text = std::fs::read_to_string(path).expect("the shared PayPal vectors");
        let vectors: serde_json::Value = serde_json::from_str(&text).unwrap();
        vectors["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|sample| {
                (
                    sample["name"].as_str().unwrap().to_owned(),
                    sample["body"].as_str().unwrap().as_bytes().to_vec(),
                )
            })
            .collect()
    }

    fn payment(name: &str) -> (Read, PaymentNotice) {
        let (_, body) = samples()
            .into_iter()
            .find(|(n, _)| n.starts_with(name))
            .unwrap_or_else(|| panic!("no sample {name:?}"));
        let read = read_paypal(&body).unwrap();
        let Notice::Payment(payment) = read.notice.clone() else {
            panic!("{name}: {read:?}");
        };
        (read, payment)
    }

    #[test]
    fn paypal_s_published_completed_sample_is_a_charge() {
        let (read, p) = payment("express_checkout completed");
        assert_eq!(p.kind, PaymentKind::Charge(ChargeStatus::Completed));
        assert_eq!(p.txn_id, "61E67681CH3238416");
        assert_eq!(p.amount, Money::new(1995, Currency::USD));
        assert_eq!(p.receiver.as_deref(), Some("S8XGHLYDW9T3S"));
        assert!(!p.livemode, "test_ipn=1");
        assert_eq!(p.parent_id, None);
        assert_eq!(read.keys[0], "61E67681CH3238416:Completed");
        // 2009-01-13 20:12:59 PST.
        assert_eq!(read.happened_at, Some(1_231_906_379_000));
    }

    #[test]
    fn a_real_chargeback_is_a_reversal_of_its_parent_with_a_negative_amount() {
        let (_, p) = payment("reversal (chargeback)");
        assert_eq!(p.kind, PaymentKind::Reversal);
        assert_eq!(p.parent_id.as_deref(), Some("46L99229E45560012"));
        assert_eq!(p.amount.minor(), -926);
    }

    #[test]
    fn every_published_sample_reads() {
        for (name, body) in samples() {
            let read = read_paypal(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!read.keys.is_empty(), "{name}");
        }
    }

    #[test]
    fn a_standard_event_s_keys_and_time() {
        let body = br#"{"id":"evt_01J0000000000000000000000A","type":"demo.ping","created_at":"2026-01-01T00:00:00Z","livemode":false,"sequence":1,"data":{}}"#;
        let read = read_standard(body).unwrap();
        assert_eq!(read.keys, ["evt_01J0000000000000000000000A"]);
        assert_eq!(read.happened_at, Some(1_767_225_600_000));
        assert!(matches!(read.notice, Notice::Ignored(_)));
        assert!(read_standard(b"{}").is_err());
    }
}
