//! The event model in JSON, and the same events written as PayPal IPNs.

use ipn_core::event::{DataError, Event, EventData, EventType, EventTypeError};
use ipn_core::id::{EventId, MerchantId, PaymentId, SubscriptionId};
use ipn_core::money::{Currency, Money};
use ipn_core::payment::{Custom, Item, ItemKind, Payer, Payment, PaymentStatus};
use ipn_core::paypal::{
    EncodeError, Form, IpnMessage, Mismatch, Sending, TxnType, check_postback, encode_event,
    request_body,
};
use ipn_core::subscription::{Interval, Subscription, SubscriptionStatus};
use serde_json::json;
use serde_json::value::RawValue;
use time::macros::datetime;

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).unwrap()
}

fn item(sku: &str, quantity: u32, unit_amount: i64, kind: ItemKind) -> Item {
    Item {
        sku: sku.into(),
        name: format!("Item {sku}"),
        quantity,
        unit_amount,
        kind,
    }
}

fn payment(status: PaymentStatus, amount: i64, currency: Currency, items: Vec<Item>) -> Payment {
    let at = datetime!(2026-07-04 18:30:05 UTC);
    Payment {
        id: PaymentId::generate(at),
        parent_id: None,
        status,
        previous_status: None,
        amount,
        fee: amount.abs() * 3 / 100,
        currency,
        refunded_amount: 0,
        merchant_id: MerchantId::generate(at),
        receiver_email: "shop@example.com".into(),
        payer: Payer {
            email: "jörg@example.com".into(),
            name: Some("Jörg Müller".into()),
            id: Some("PAYER123".into()),
        },
        invoice: Some("ORD-42".into()),
        custom: Some(Custom::parse("user=7&plan=gold").unwrap()),
        items,
        subscription_id: None,
        pending_reason: None,
        reason_code: None,
        created_at: at,
    }
}

fn subscription(status: SubscriptionStatus) -> Subscription {
    let at = datetime!(2026-01-31 08:00 UTC);
    Subscription {
        id: SubscriptionId::generate(at),
        status,
        previous_status: Some(SubscriptionStatus::Active),
        merchant_id: MerchantId::generate(at),
        receiver_email: "shop@example.com".into(),
        payer: Payer {
            email: "ada@example.com".into(),
            name: Some("Ada Lovelace".into()),
            id: None,
        },
        amount: 1250,
        currency: Currency::KWD,
        interval: Interval::Month,
        interval_count: 3,
        trial_days: 14,
        total_cycles: Some(4),
        cycles_paid: 1,
        paid_through: Some(datetime!(2026-04-30 08:00 UTC)),
        cancel_at_period_end: false,
        invoice: None,
        custom: None,
        created_at: at,
    }
}

fn event(event_type: EventType, sequence: u64, data: EventData) -> Event {
    Event {
        id: EventId::generate(datetime!(2026-07-04 18:30:06 UTC)),
        event_type,
        created_at: datetime!(2026-07-04 18:30:06 UTC),
        livemode: false,
        sequence,
        data,
    }
}

/// One event of every known type, as the gateway would emit them.
fn every_event() -> Vec<Event> {
    let one = || vec![item("MUG", 1, 1999, ItemKind::Physical)];
    let pay = |status, amount| Box::new(payment(status, amount, Currency::USD, one()));
    let child = |status, amount, reason: Option<&str>| {
        let mut p = payment(status, amount, Currency::USD, one());
        p.parent_id = Some(PaymentId::generate(datetime!(2026-07-01 00:00 UTC)));
        p.reason_code = reason.map(Into::into);
        Box::new(p)
    };
    let mut pending = payment(PaymentStatus::Pending, 1999, Currency::USD, one());
    pending.pending_reason = Some("echeck".into());
    let mut period = payment(PaymentStatus::Completed, 1250, Currency::KWD, vec![]);
    period.subscription_id = Some(SubscriptionId::generate(datetime!(2026-01-31 00:00 UTC)));
    use EventData::{Payment as P, Subscription as S};
    use EventType as T;
    vec![
        event(T::PaymentPending, 1, P(Box::new(pending))),
        event(
            T::PaymentCompleted,
            2,
            P(pay(PaymentStatus::Completed, 1999)),
        ),
        event(T::PaymentFailed, 2, P(pay(PaymentStatus::Failed, 1999))),
        event(T::PaymentDenied, 1, P(pay(PaymentStatus::Denied, 1999))),
        event(
            T::PaymentRefunded,
            3,
            P(child(PaymentStatus::Refunded, -500, Some("refund"))),
        ),
        event(
            T::PaymentReversed,
            4,
            P(child(PaymentStatus::Reversed, -1999, Some("chargeback"))),
        ),
        event(
            T::PaymentReversalCanceled,
            5,
            P(child(PaymentStatus::ReversalCanceled, 1999, None)),
        ),
        event(
            T::SubscriptionCreated,
            1,
            S(Box::new(subscription(SubscriptionStatus::Trialing))),
        ),
        event(T::SubscriptionPayment, 2, P(Box::new(period))),
        event(
            T::SubscriptionPaymentFailed,
            3,
            S(Box::new(subscription(SubscriptionStatus::PastDue))),
        ),
        event(
            T::SubscriptionCanceled,
            4,
            S(Box::new(subscription(SubscriptionStatus::Canceled))),
        ),
        event(
            T::SubscriptionExpired,
            5,
            S(Box::new(subscription(SubscriptionStatus::Expired))),
        ),
    ]
}

#[test]
fn every_event_round_trips_through_json_in_the_documented_shape() {
    let events = every_event();
    let payment_and_subscription_types = EventType::KNOWN.iter().filter(|t| t.has_paypal_form());
    assert_eq!(events.len(), payment_and_subscription_types.count());
    for event in events {
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], event.event_type.as_str());
        assert!(json["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(json["livemode"], false);
        assert_eq!(json["sequence"], event.sequence);
        assert!(json["created_at"].as_str().unwrap().ends_with('Z'));
        let object = event.event_type.object().unwrap().as_str();
        assert_eq!(json["data"]["object"], object, "{}", event.event_type);
        assert!(json["data"].get("previous_status").is_some());
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }
}

#[test]
fn payment_json_uses_integer_minor_units() {
    let p = payment(
        PaymentStatus::Completed,
        1000,
        Currency::JPY,
        vec![item("A", 2, 500, ItemKind::Digital)],
    );
    let json = serde_json::to_value(event(
        EventType::PaymentCompleted,
        1,
        EventData::Payment(Box::new(p)),
    ))
    .unwrap();
    let data = &json["data"];
    assert_eq!(data["amount"], 1000);
    assert_eq!(data["fee"], 30);
    assert_eq!(data["currency"], "JPY");
    assert_eq!(data["items"][0]["unit_amount"], 500);
    assert_eq!(data["items"][0]["kind"], "digital");
    assert_eq!(data["status"], "completed");
    assert_eq!(data["payer"]["email"], "jörg@example.com");
}

#[test]
fn platform_event_types_survive_a_round_trip_untouched() {
    let text = r#"{"id":"evt_01ARZ3NDEKTSV4RRFFQ69G5FAV","type":"invoice.paid","created_at":"2026-11-25T10:00:00Z","livemode":true,"sequence":7,"data":{"z":1,"a":[1.5,{"nested":null}],"object":"payment"}}"#;
    let event: Event = serde_json::from_str(text).unwrap();
    assert_eq!(event.event_type, EventType::Other("invoice.paid".into()));
    assert!(matches!(event.data, EventData::Other(_)));
    assert_eq!(serde_json::to_string(&event).unwrap(), text);

    // JSON that a trip through a parsed value would change: numbers beyond
    // i64/f64, exponents, trailing zeros, duplicate keys, spacing, escapes.
    let nasty =
        r#"{"big":12345678901234567890123, "e":1e2,"f":0.1000,"dup":1,"dup":2,"neg":-0,"s":"é\/"}"#;
    let text = format!(
        r#"{{"id":"evt_01ARZ3NDEKTSV4RRFFQ69G5FAV","type":"acme.order.shipped","created_at":"2026-11-25T10:00:00Z","livemode":false,"sequence":1,"data":{nasty}}}"#
    );
    let event: Event = serde_json::from_str(&text).unwrap();
    match &event.data {
        EventData::Other(data) => assert_eq!(data.get(), nasty),
        other => panic!("{other:?}"),
    }
    assert_eq!(serde_json::to_string(&event).unwrap(), text);
    let again: Event = serde_json::from_slice(&serde_json::to_vec(&event).unwrap()).unwrap();
    assert_eq!(again, event);
}

#[test]
fn gateway_types_this_version_does_not_know_are_read_with_their_data_raw() {
    let text = r#"{"id":"evt_01ARZ3NDEKTSV4RRFFQ69G5FAV","type":"payment.partially_refunded","created_at":"2026-11-25T10:00:00Z","livemode":false,"sequence":3,"data":{"object":"payment","id":"pay_01ARZ3NDEKTSV4RRFFQ69G5FAV","amount":-500,"new_field":1.50}}"#;
    let event: Event = serde_json::from_str(text).unwrap();
    assert_eq!(
        event.event_type,
        EventType::Other("payment.partially_refunded".into())
    );
    assert!(matches!(event.data, EventData::Other(_)));
    assert_eq!(serde_json::to_string(&event).unwrap(), text);
    // Ingest stays strict: an unknown name there is a typo.
    assert!(matches!(
        EventType::parse("payment.complete"),
        Err(EventTypeError::Reserved { .. })
    ));
    assert!(matches!(
        EventType::parse("payment.partially_refunded"),
        Err(EventTypeError::Reserved { .. })
    ));
    // A malformed type is still refused.
    let bad = text.replace("payment.partially_refunded", "Payment.Partial");
    assert!(serde_json::from_str::<Event>(&bad).is_err());
}

#[test]
fn timestamps_are_written_in_utc_whatever_offset_they_hold() {
    let plus_two = datetime!(2026-07-04 20:30:05 +02:00);
    let mut p = payment(PaymentStatus::Completed, 1999, Currency::USD, vec![]);
    p.created_at = plus_two;
    let mut e = event(
        EventType::PaymentCompleted,
        1,
        EventData::Payment(Box::new(p)),
    );
    e.created_at = plus_two;
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["created_at"], "2026-07-04T18:30:05Z");
    assert_eq!(json["data"]["created_at"], "2026-07-04T18:30:05Z");

    let mut s = subscription(SubscriptionStatus::Active);
    s.created_at = plus_two;
    s.paid_through = Some(datetime!(2026-08-01 01:00 +02:00));
    let json = serde_json::to_value(EventData::Subscription(Box::new(s))).unwrap();
    assert_eq!(json["created_at"], "2026-07-04T18:30:05Z");
    assert_eq!(json["paid_through"], "2026-07-31T23:00:00Z");

    let notice = ipn_core::event::EndpointNotice {
        id: ipn_core::id::EndpointId::generate(plus_two),
        url: "https://shop.example/ipn".into(),
        disabled_reason: "gone".into(),
        disabled_at: plus_two,
    };
    let json = serde_json::to_value(&notice).unwrap();
    assert_eq!(json["disabled_at"], "2026-07-04T18:30:05Z");
}

#[test]
fn known_types_must_carry_their_object() {
    let base = json!({
        "id": "evt_01ARZ3NDEKTSV4RRFFQ69G5FAV", "type": "payment.completed",
        "created_at": "2026-11-25T10:00:00Z", "livemode": false, "sequence": 1,
    });
    let with = |data| {
        let mut v = base.clone();
        v["data"] = data;
        serde_json::from_value::<Event>(v)
    };
    assert!(with(json!({"anything": 1})).is_err());
    let sub = serde_json::to_string(&EventData::Subscription(Box::new(subscription(
        SubscriptionStatus::Active,
    ))))
    .unwrap();
    let err = with(serde_json::from_str(&sub).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("must be a payment object"), "{err}");
    assert_eq!(
        EventData::from_raw(&EventType::PaymentCompleted, raw(&sub)),
        Err(DataError::WrongObject {
            event_type: "payment.completed".into(),
            expected: "payment",
        })
    );
    let err =
        EventData::from_raw(&EventType::PaymentCompleted, raw(r#"{"anything":1}"#)).unwrap_err();
    assert!(matches!(err, DataError::Invalid { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("data of a payment.completed event: "),
        "{err}"
    );
    assert!(matches!(
        EventData::from_raw(&EventType::Other("invoice.paid".into()), raw("[1e2]")),
        Ok(EventData::Other(data)) if data.get() == "[1e2]"
    ));
    let mut bad_amount = serde_json::to_value(EventData::Payment(Box::new(payment(
        PaymentStatus::Completed,
        1999,
        Currency::USD,
        vec![],
    ))))
    .unwrap();
    bad_amount["amount"] = json!(19.99);
    assert!(with(bad_amount).is_err(), "a float amount is refused");
}

#[test]
fn every_event_encodes_as_a_paypal_ipn_that_reads_back_as_the_same_type() {
    for event in every_event() {
        let body = encode_event(&event, Sending::First).unwrap();
        let msg = IpnMessage::parse(&body).unwrap_or_else(|e| panic!("{}: {e}", event.event_type));
        assert_eq!(msg.event_type(), Some(event.event_type.clone()));
        assert_eq!(msg.get("charset"), Some("UTF-8"));
        assert_eq!(msg.ipn_track_id(), Some(event.id.to_string().as_str()));
        assert!(msg.is_test());
        assert!(msg.get("verify_sign").is_some());
        assert_eq!(msg.get("resend"), None);
        match &event.data {
            EventData::Payment(p) => {
                assert_eq!(msg.txn_id(), Some(p.id.to_string().as_str()));
                assert_eq!(msg.gross(), Ok(Some(p.amount())));
                let no_money_moved = matches!(
                    p.status,
                    PaymentStatus::Pending | PaymentStatus::Failed | PaymentStatus::Denied
                );
                let fee = (!no_money_moved).then(|| p.fee());
                assert_eq!(msg.fee(), Ok(fee), "{}", event.event_type);
                assert_eq!(msg.payment_date(), Ok(Some(p.created_at)));
                assert_eq!(
                    msg.parent_txn_id(),
                    p.parent_id.map(|id| id.to_string()).as_deref()
                );
                assert_eq!(msg.receiver_email(), Some("shop@example.com"));
                assert_eq!(msg.get("first_name"), Some("Jörg"));
                assert_eq!(msg.get("last_name"), Some("Müller"));
            }
            EventData::Subscription(s) => {
                assert_eq!(msg.subscr_id(), Some(s.id.to_string().as_str()));
                assert_eq!(msg.get("mc_amount3"), Some("1.250"));
                assert_eq!(msg.get("period3"), Some("3 M"));
                assert_eq!(msg.get("period1"), Some("14 D"));
                assert_eq!(msg.get("recur_times"), Some("4"));
            }
            EventData::Endpoint(_) | EventData::Other(_) => {
                unreachable!("every_event has payment and subscription types only")
            }
        }
        let resent = encode_event(&event, Sending::Resend).unwrap();
        assert_eq!(
            IpnMessage::parse(&resent).unwrap().get("resend"),
            Some("true")
        );
    }
}

#[test]
fn refunds_and_reversals_are_negative_with_their_parent_and_reason() {
    let events = every_event();
    let refund = IpnMessage::parse(&encode_event(&events[4], Sending::First).unwrap()).unwrap();
    assert_eq!(refund.get("mc_gross"), Some("-5.00"));
    assert_eq!(refund.get("payment_status"), Some("Refunded"));
    assert_eq!(refund.get("reason_code"), Some("refund"));
    assert_eq!(
        refund.txn_type(),
        None,
        "PayPal sends refunds without txn_type"
    );
    let reversal = IpnMessage::parse(&encode_event(&events[5], Sending::First).unwrap()).unwrap();
    assert_eq!(reversal.get("mc_gross"), Some("-19.99"));
    assert_eq!(reversal.get("reason_code"), Some("chargeback"));
    assert!(reversal.parent_txn_id().unwrap().starts_with("pay_"));
}

#[test]
fn carts_name_each_line_and_single_items_do_not() {
    let cart = payment(
        PaymentStatus::Completed,
        2498,
        Currency::EUR,
        vec![
            item("MUG", 2, 999, ItemKind::Physical),
            item("EBOOK", 1, 500, ItemKind::Digital),
        ],
    );
    let e = event(
        EventType::PaymentCompleted,
        1,
        EventData::Payment(Box::new(cart)),
    );
    let msg = IpnMessage::parse(&encode_event(&e, Sending::First).unwrap()).unwrap();
    assert_eq!(msg.txn_type(), Some(TxnType::Cart));
    assert_eq!(msg.get("num_cart_items"), Some("2"));
    let items = msg.items().unwrap();
    assert_eq!(items[0].number, "MUG");
    assert_eq!(items[0].quantity, 2);
    assert_eq!(items[0].gross, Some(Money::new(1998, Currency::EUR)));
    assert_eq!(items[1].gross, Some(Money::new(500, Currency::EUR)));

    let single = every_event().remove(1);
    let msg = IpnMessage::parse(&encode_event(&single, Sending::First).unwrap()).unwrap();
    assert_eq!(msg.txn_type(), Some(TxnType::WebAccept));
    assert_eq!(msg.get("num_cart_items"), None);
    assert_eq!(msg.get("item_number"), Some("MUG"));
}

#[test]
fn platform_types_have_no_paypal_form() {
    let e = event(
        EventType::Other("invoice.paid".into()),
        1,
        EventData::Other(raw("{}")),
    );
    let err = encode_event(&e, Sending::First).unwrap_err();
    assert!(err.to_string().contains("invoice.paid"), "{err}");
}

fn encode_payment(event_type: EventType, p: Payment) -> Result<IpnMessage, EncodeError> {
    let e = event(event_type, 1, EventData::Payment(Box::new(p)));
    encode_event(&e, Sending::First).map(|body| IpnMessage::parse(&body).unwrap())
}

#[test]
fn money_going_back_must_be_negative_and_name_its_parent() {
    let parent = PaymentId::generate(datetime!(2026-07-01 00:00 UTC));
    let back = |status, amount, parent_id| {
        let mut p = payment(status, amount, Currency::USD, vec![]);
        p.parent_id = parent_id;
        p
    };
    for (t, status) in [
        (EventType::PaymentRefunded, PaymentStatus::Refunded),
        (EventType::PaymentReversed, PaymentStatus::Reversed),
    ] {
        assert!(encode_payment(t.clone(), back(status, -500, Some(parent))).is_ok());
        for amount in [0, 500] {
            let err = encode_payment(t.clone(), back(status, amount, Some(parent))).unwrap_err();
            assert!(matches!(err, EncodeError::Inconsistent(_)), "{t}: {err}");
            assert!(err.to_string().contains("negative amount"), "{err}");
        }
        let err = encode_payment(t.clone(), back(status, -500, None)).unwrap_err();
        assert!(matches!(err, EncodeError::Inconsistent(_)), "{t}: {err}");
        assert!(err.to_string().contains("parent_id"), "{err}");
    }
    let t = EventType::PaymentReversalCanceled;
    let status = PaymentStatus::ReversalCanceled;
    assert!(encode_payment(t.clone(), back(status, 500, Some(parent))).is_ok());
    assert!(matches!(
        encode_payment(t, back(status, 500, None)),
        Err(EncodeError::Inconsistent(_))
    ));
}

#[test]
fn a_cart_line_that_overflows_is_refused_not_dropped() {
    let cart = payment(
        PaymentStatus::Completed,
        1999,
        Currency::USD,
        vec![
            item("MUG", 1, 1999, ItemKind::Physical),
            item("HUGE", 2, i64::MAX, ItemKind::Physical),
        ],
    );
    let err = encode_payment(EventType::PaymentCompleted, cart).unwrap_err();
    assert!(matches!(err, EncodeError::Inconsistent(_)), "{err}");
    assert!(err.to_string().contains("cart line 2"), "{err}");

    let lines = (0..501)
        .map(|n| item(&format!("S{n}"), 1, 1, ItemKind::Digital))
        .collect();
    let too_long = payment(PaymentStatus::Completed, 501, Currency::USD, lines);
    assert!(matches!(
        encode_payment(EventType::PaymentCompleted, too_long),
        Err(EncodeError::Inconsistent(_))
    ));
}

#[test]
fn a_pending_payment_always_says_why() {
    let p = payment(PaymentStatus::Pending, 1999, Currency::USD, vec![]);
    let msg = encode_payment(EventType::PaymentPending, p.clone()).unwrap();
    assert_eq!(msg.get("pending_reason"), Some("other"));
    let mut echeck = p;
    echeck.pending_reason = Some("echeck".into());
    let msg = encode_payment(EventType::PaymentPending, echeck).unwrap();
    assert_eq!(msg.get("pending_reason"), Some("echeck"));
    assert_eq!(msg.get("payment_type"), Some("echeck"));
    let done = payment(PaymentStatus::Completed, 1999, Currency::USD, vec![]);
    let msg = encode_payment(EventType::PaymentCompleted, done).unwrap();
    assert_eq!(msg.get("pending_reason"), None);
}

#[test]
fn no_fee_is_sent_when_no_money_moved() {
    for (t, status) in [
        (EventType::PaymentPending, PaymentStatus::Pending),
        (EventType::PaymentFailed, PaymentStatus::Failed),
        (EventType::PaymentDenied, PaymentStatus::Denied),
    ] {
        let p = payment(status, 1999, Currency::USD, vec![]);
        assert_ne!(p.fee, 0);
        let msg = encode_payment(t.clone(), p).unwrap();
        assert_eq!(msg.get("mc_fee"), None, "{t}");
        assert_eq!(msg.fee(), Ok(None), "{t}");
    }
    let p = payment(PaymentStatus::Completed, 1999, Currency::USD, vec![]);
    let msg = encode_payment(EventType::PaymentCompleted, p).unwrap();
    assert_eq!(msg.get("mc_fee"), Some("0.59"));
}

/// What `paypal-ipn`-style listener libraries post back: fields re-encoded
/// from the parsed body with `%20` for spaces, and `cmd` appended last.
fn rebuilt_by_a_library(sent: &Form) -> Vec<u8> {
    let mut out: Vec<String> = sent
        .pairs()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect();
    out.push("cmd=_notify-validate".into());
    out.join("&").into_bytes()
}

fn pct(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02x}"),
        })
        .collect()
}

#[test]
fn postback_of_a_sent_message_matches_as_sent_and_as_rebuilt() {
    for event in every_event() {
        let sent = Form::parse(&encode_event(&event, Sending::First).unwrap()).unwrap();
        let as_sent = Form::parse(&request_body(sent.as_bytes())).unwrap();
        assert_eq!(check_postback(&as_sent, &sent), Ok(()));
        let rebuilt = Form::parse(&rebuilt_by_a_library(&sent)).unwrap();
        assert_ne!(rebuilt.as_bytes(), as_sent.as_bytes());
        assert_eq!(
            check_postback(&rebuilt, &sent),
            Ok(()),
            "{}",
            event.event_type
        );
    }
}

#[test]
fn postback_that_differs_in_any_way_does_not_match() {
    let event = every_event().remove(1);
    let sent = Form::parse(&encode_event(&event, Sending::First).unwrap()).unwrap();
    let pairs: Vec<(String, String)> = sent
        .pairs()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let post = |pairs: &[(String, String)]| {
        let mut body = request_body(b"").to_vec();
        body.pop(); // the '&' before the (here empty) message
        for (k, v) in pairs {
            body.extend_from_slice(format!("&{}={}", pct(k), pct(v)).as_bytes());
        }
        check_postback(&Form::parse(&body).unwrap(), &sent)
    };
    assert_eq!(post(&pairs), Ok(()));

    let mut changed_value = pairs.clone();
    let gross = changed_value
        .iter()
        .position(|(k, _)| k == "mc_gross")
        .unwrap();
    changed_value[gross].1 = "1.00".into();
    assert!(matches!(post(&changed_value), Err(Mismatch::Field { .. })));

    let mut renamed = pairs.clone();
    renamed[gross].0 = "mc_gross_x".into();
    assert!(matches!(post(&renamed), Err(Mismatch::Field { .. })));

    let mut reordered = pairs.clone();
    reordered.swap(0, 1);
    assert!(matches!(post(&reordered), Err(Mismatch::Field { .. })));

    let mut added = pairs.clone();
    added.push(("extra".into(), "1".into()));
    assert!(matches!(post(&added), Err(Mismatch::FieldCount { .. })));

    let mut missing = pairs.clone();
    missing.pop();
    assert!(matches!(post(&missing), Err(Mismatch::FieldCount { .. })));

    let no_cmd = Form::parse(sent.as_bytes()).unwrap();
    assert_eq!(check_postback(&no_cmd, &sent), Err(Mismatch::NoCommand));

    let mut middle = pairs.clone();
    middle.insert(3, ("cmd".into(), "_notify-validate".into()));
    let body: Vec<u8> = middle
        .iter()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes();
    assert_eq!(
        check_postback(&Form::parse(&body).unwrap(), &sent),
        Err(Mismatch::CommandMisplaced)
    );

    let wrong = [b"cmd=_notify-synch&".as_slice(), sent.as_bytes()].concat();
    assert!(matches!(
        check_postback(&Form::parse(&wrong).unwrap(), &sent),
        Err(Mismatch::WrongCommand(_))
    ));

    let other_event = every_event().remove(1);
    let never_sent = Form::parse(&encode_event(&other_event, Sending::First).unwrap()).unwrap();
    let posted = Form::parse(&request_body(never_sent.as_bytes())).unwrap();
    assert!(check_postback(&posted, &sent).is_err());
}
