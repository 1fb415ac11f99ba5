//! Events written as PayPal IPN bodies (the `paypal` dialect): each payment
//! and subscription type as the `txn_type` (and, for a payment, the
//! `payment_status`) PayPal sends for it; `endpoint.*` and platform types
//! have no PayPal form.
//!
//! Field names, their order and value formats follow what PayPal sends, so an
//! existing IPN listener works unchanged. Amounts are decimal strings in the
//! currency's exponent, negative on refunds and reversals. Every body is UTF-8
//! and says so (`charset=UTF-8`).

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::date::format_payment_date;
use super::form::{FormError, encode};
use super::message::MAX_CART_ITEMS;
use crate::event::{Event, EventData, EventType, ObjectKind};
use crate::money::Money;
use crate::payment::{Payer, Payment};
use crate::subscription::Subscription;

/// The IPN protocol version our messages follow.
pub const NOTIFY_VERSION: &str = "3.9";

/// Whether a message is the first send or a resend from history (`resend=true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sending {
    /// The first delivery, or a retry of it.
    First,
    /// Sent again on request, marked `resend=true` as PayPal does.
    Resend,
}

/// Why an event has no PayPal form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("event type {0} has no PayPal IPN equivalent; use the standard dialect")]
    UnsupportedType(String),
    #[error("a {event_type} event must carry a {expected} object")]
    WrongObject {
        event_type: String,
        expected: &'static str,
    },
    /// The object contradicts its event type (a refund with a positive
    /// amount, a reversal without its parent) or cannot be written (a cart
    /// line total that overflows); PayPal would never send such a message.
    #[error("{0}")]
    Inconsistent(String),
    #[error(transparent)]
    Form(#[from] FormError),
}

/// Encodes an event as a PayPal IPN body.
pub fn encode_event(event: &Event, sending: Sending) -> Result<Vec<u8>, EncodeError> {
    let mut fields = Fields::default();
    match (&event.event_type, &event.data) {
        (t, _) if !t.has_paypal_form() => {
            return Err(EncodeError::UnsupportedType(t.to_string()));
        }
        (t, EventData::Payment(payment)) if t.object() == Some(ObjectKind::Payment) => {
            payment_fields(&mut fields, t, payment)?
        }
        (t, EventData::Subscription(sub)) if t.object() == Some(ObjectKind::Subscription) => {
            subscription_fields(&mut fields, t, sub)
        }
        (t, _) => {
            return Err(EncodeError::WrongObject {
                event_type: t.to_string(),
                expected: t.object().map_or("known", |o| o.as_str()),
            });
        }
    }
    fields.add("charset", "UTF-8");
    fields.add("notify_version", NOTIFY_VERSION);
    fields.add("ipn_track_id", event.id.to_string());
    fields.add("verify_sign", verify_sign(event));
    if !event.livemode {
        fields.add("test_ipn", "1");
    }
    if sending == Sending::Resend {
        fields.add("resend", "true");
    }
    let pairs: Vec<(&str, &str)> = fields
        .0
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Ok(encode(&pairs, encoding_rs::UTF_8)?)
}

/// Ordered (name, value) pairs; empty values are left out, as PayPal does for
/// most optional fields.
#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn add(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let value = value.into();
        if !value.is_empty() {
            self.0.push((name.into(), value));
        }
    }
}

fn payment_fields(f: &mut Fields, event_type: &EventType, p: &Payment) -> Result<(), EncodeError> {
    check_payment(event_type, p)?;
    let (txn_type, status) = match event_type {
        EventType::PaymentPending => (single_or_cart(p), "Pending"),
        EventType::PaymentCompleted => (single_or_cart(p), "Completed"),
        EventType::PaymentFailed => (single_or_cart(p), "Failed"),
        EventType::PaymentDenied => (single_or_cart(p), "Denied"),
        EventType::PaymentRefunded => ("", "Refunded"),
        EventType::PaymentReversed => ("", "Reversed"),
        EventType::PaymentReversalCanceled => ("", "Canceled_Reversal"),
        _ => ("subscr_payment", "Completed"),
    };
    f.add("txn_type", txn_type);
    f.add("txn_id", p.id.to_string());
    f.add(
        "parent_txn_id",
        p.parent_id.map(|id| id.to_string()).unwrap_or_default(),
    );
    f.add("payment_status", status);
    // PayPal always says why a payment is pending.
    let pending_reason = match (event_type, p.pending_reason.as_deref()) {
        (EventType::PaymentPending, None | Some("")) => "other",
        (_, reason) => reason.unwrap_or_default(),
    };
    f.add("pending_reason", pending_reason);
    let default_reason = match event_type {
        EventType::PaymentRefunded => "refund",
        EventType::PaymentReversed => "chargeback",
        _ => "",
    };
    f.add(
        "reason_code",
        p.reason_code.as_deref().unwrap_or(default_reason),
    );
    f.add("payment_type", payment_type(p));
    f.add("payment_date", format_payment_date(p.created_at));
    f.add("mc_gross", p.amount().to_decimal_string());
    let no_money_moved = matches!(
        event_type,
        EventType::PaymentPending | EventType::PaymentFailed | EventType::PaymentDenied
    );
    // PayPal sends no fee then.
    if !no_money_moved {
        f.add("mc_fee", p.fee().to_decimal_string());
    }
    f.add("mc_currency", p.currency.code());
    f.add(
        "subscr_id",
        p.subscription_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
    );
    if txn_type == "cart" {
        f.add("num_cart_items", p.items.len().to_string());
        for (n, item) in p.items.iter().enumerate() {
            let n = n + 1;
            let line = Money::new(item.unit_amount, p.currency)
                .checked_mul(item.quantity)
                .map_err(|e| EncodeError::Inconsistent(format!("cart line {n}: {e}")))?
                .to_decimal_string();
            f.add(format!("item_name{n}"), item.name.clone());
            f.add(format!("item_number{n}"), item.sku.clone());
            f.add(format!("quantity{n}"), item.quantity.to_string());
            f.add(format!("mc_gross_{n}"), line);
        }
    } else if let Some(item) = p.items.first() {
        f.add("item_name", item.name.clone());
        f.add("item_number", item.sku.clone());
        f.add("quantity", item.quantity.to_string());
    }
    party_fields(f, &p.receiver_email, p.merchant_id.to_string(), &p.payer);
    f.add("invoice", p.invoice.clone().unwrap_or_default());
    f.add(
        "custom",
        p.custom.as_ref().map(|c| c.as_str()).unwrap_or_default(),
    );
    Ok(())
}

/// What PayPal's own messages always satisfy: money going back is negative
/// and points at the payment it comes from, and a cart fits a reader.
fn check_payment(event_type: &EventType, p: &Payment) -> Result<(), EncodeError> {
    let inconsistent = |what: String| Err(EncodeError::Inconsistent(what));
    let is_return = matches!(
        event_type,
        EventType::PaymentRefunded | EventType::PaymentReversed
    );
    if is_return && p.amount >= 0 {
        return inconsistent(format!(
            "a {event_type} event's payment must have a negative amount, not {}",
            p.amount
        ));
    }
    if (is_return || *event_type == EventType::PaymentReversalCanceled) && p.parent_id.is_none() {
        return inconsistent(format!(
            "a {event_type} event's payment must have a parent_id"
        ));
    }
    if p.items.len() > MAX_CART_ITEMS as usize {
        return inconsistent(format!(
            "a cart of {} lines is more than the {MAX_CART_ITEMS} a reader accepts",
            p.items.len()
        ));
    }
    Ok(())
}

fn subscription_fields(f: &mut Fields, event_type: &EventType, s: &Subscription) {
    let txn_type = match event_type {
        EventType::SubscriptionCreated => "subscr_signup",
        EventType::SubscriptionPaymentFailed => "subscr_failed",
        EventType::SubscriptionCanceled => "subscr_cancel",
        _ => "subscr_eot",
    };
    f.add("txn_type", txn_type);
    f.add("subscr_id", s.id.to_string());
    f.add("subscr_date", format_payment_date(s.created_at));
    if s.trial_days > 0 {
        f.add("mc_amount1", Money::new(0, s.currency).to_decimal_string());
        f.add("period1", format!("{} D", s.trial_days));
    }
    f.add("mc_amount3", s.amount().to_decimal_string());
    f.add(
        "period3",
        format!("{} {}", s.interval_count, s.interval.paypal_unit()),
    );
    f.add("recurring", "1");
    f.add(
        "recur_times",
        s.total_cycles.map(|n| n.to_string()).unwrap_or_default(),
    );
    f.add("mc_currency", s.currency.code());
    party_fields(f, &s.receiver_email, s.merchant_id.to_string(), &s.payer);
    f.add("invoice", s.invoice.clone().unwrap_or_default());
    f.add(
        "custom",
        s.custom.as_ref().map(|c| c.as_str()).unwrap_or_default(),
    );
}

fn party_fields(f: &mut Fields, receiver_email: &str, receiver_id: String, payer: &Payer) {
    f.add("receiver_email", receiver_email);
    f.add("receiver_id", receiver_id);
    f.add("business", receiver_email);
    f.add("payer_email", payer.email.clone());
    f.add("payer_id", payer.id.clone().unwrap_or_default());
    let (first, last) = payer.first_and_last_name();
    f.add("first_name", first);
    f.add("last_name", last);
}

fn single_or_cart(p: &Payment) -> &'static str {
    if p.items.len() > 1 {
        "cart"
    } else {
        "web_accept"
    }
}

fn payment_type(p: &Payment) -> &'static str {
    match p.pending_reason.as_deref() {
        Some("echeck") => "echeck",
        _ => "instant",
    }
}

/// PayPal's `verify_sign` is an opaque token that listeners store but cannot
/// check (verification is by postback). Ours is derived from the event id, so
/// every resend of an event carries the same one.
fn verify_sign(event: &Event) -> String {
    let digest = Sha256::digest(format!("ipn verify_sign {}", event.id));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}
