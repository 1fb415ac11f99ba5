//! Bad input at every public entry point gets an error that says what is
//! wrong, never a panic: non-UTF-8 bytes, truncated headers, huge numbers,
//! duplicate form keys, empty bodies, and arbitrary bytes.

use ipn_core::event::{Event, EventType};
use ipn_core::id::EventId;
use ipn_core::money::{Currency, Money};
use ipn_core::paypal::date::parse_payment_date;
use ipn_core::paypal::{Form, FormError, IpnMessage, check_postback, parse_answer};
use ipn_core::standard::{
    PublicKey, SigningKey, Verifier, VerifyError, WebhookHeaders, WebhookSecret,
};
use proptest::prelude::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn verify(id: &str, timestamp: &str, signature: &str, body: &[u8]) -> Result<(), VerifyError> {
    let headers = WebhookHeaders {
        id,
        timestamp,
        signature,
    };
    Verifier::with_secret(WebhookSecret::parse(SECRET).unwrap())
        .verify(&headers, body, 1_614_265_330)
        .map(drop)
}

#[test]
fn truncated_or_mangled_signature_headers_are_refused() {
    let good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    let body = b"{\"test\": 2432232314}";
    let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    assert_eq!(verify(id, "1614265330", good, body), Ok(()));
    for cut in 0..good.len() {
        let truncated = &good[..cut];
        let got = verify(id, "1614265330", truncated, body);
        assert!(got.is_err(), "{truncated:?} was accepted");
    }
    for truncated_ts in ["161426533", "16142653", "1"] {
        assert!(verify(id, truncated_ts, good, body).is_err());
    }
    assert_eq!(
        verify(id, "16142653300000000000000", good, body),
        Err(VerifyError::InvalidTimestamp(
            "16142653300000000000000".into()
        ))
    );
    let not_utf8: &[u8] = b"msg_\xc3\x28";
    assert_eq!(
        WebhookHeaders::from_lookup(|name| Some(if name == "webhook-id" {
            not_utf8
        } else {
            b"1"
        })),
        Err(VerifyError::InvalidHeader("webhook-id"))
    );
}

#[test]
fn bodies_that_are_empty_or_not_utf8_are_signed_and_checked_as_bytes() {
    use ipn_core::standard::Signer;
    let secret = WebhookSecret::parse(SECRET).unwrap();
    for body in [&b""[..], b"\xff\xfe\x00", b"\xc3\x28"] {
        let sig = Signer::Secret(secret.clone()).sign("evt_1", 1_614_265_330, body);
        assert_eq!(verify("evt_1", "1614265330", &sig, body), Ok(()));
        assert_eq!(
            verify("evt_1", "1614265330", &sig, b"other"),
            Err(VerifyError::NoMatchingSignature)
        );
    }
}

#[test]
fn malformed_keys_are_refused() {
    for bad in ["", "whsec_", "whsec_%%%", "whsec_YQ==", "whsk_", "whpk_"] {
        assert!(WebhookSecret::parse(bad).is_err(), "{bad:?}");
    }
    assert!(SigningKey::parse("whsk_YQ==").is_err());
    assert!(PublicKey::parse("whpk_YQ==").is_err());
    assert!(PublicKey::parse("whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=").is_err());
}

#[test]
fn forms_refuse_empty_bodies_duplicates_and_bad_bytes() {
    let cases: &[(&[u8], FormError)] = &[
        (b"", FormError::EmptyBody),
        (
            b"txn_id=1&txn_id=2",
            FormError::DuplicateField {
                name: "txn_id".into(),
            },
        ),
        // The same name spelled two ways is still a duplicate.
        (
            b"txn%5Fid=1&txn_id=2",
            FormError::DuplicateField {
                name: "txn_id".into(),
            },
        ),
        (b"a=1&&b=2", FormError::EmptySegment { offset: 4 }),
        (b"a=1&", FormError::EmptySegment { offset: 4 }),
        (b"=1", FormError::EmptyName { offset: 0 }),
        (b"a=%", FormError::BadEscape { offset: 2 }),
        (b"a=%4", FormError::BadEscape { offset: 2 }),
        (b"a=%zz", FormError::BadEscape { offset: 2 }),
    ];
    for (body, want) in cases {
        assert_eq!(
            Form::parse(body).as_ref(),
            Err(want),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert!(matches!(
        Form::parse(b"charset=UTF-8&first_name=%C3%28"),
        Err(FormError::InvalidText { .. })
    ));
    assert!(matches!(
        Form::parse(b"charset=klingon&a=1"),
        Err(FormError::UnknownCharset { .. })
    ));
}

#[test]
fn huge_numbers_are_errors_not_overflows() {
    assert!(Money::parse_decimal("92233720368547758.08", Currency::USD).is_err());
    assert!(Money::parse_decimal(&"9".repeat(400), Currency::JPY).is_err());
    assert!(
        Money::new(i64::MAX, Currency::USD)
            .checked_add(Money::new(1, Currency::USD))
            .is_err()
    );
    assert!(Money::new(i64::MAX, Currency::USD).checked_mul(2).is_err());
    assert!(Money::new(i64::MIN, Currency::USD).checked_neg().is_err());

    let msg =
        IpnMessage::parse(b"num_cart_items=18446744073709551616&mc_gross=1e999&mc_currency=USD")
            .unwrap();
    assert!(msg.items().is_err());
    assert!(msg.gross().is_err());
    assert!(parse_payment_date("99:99:99 Jan 13, 2009 PST").is_err());
    assert!(parse_payment_date("20:12:59 Jan 99999, 2009 PST").is_err());

    let event = r#"{"id":"evt_01ARZ3NDEKTSV4RRFFQ69G5FAV","type":"invoice.paid","created_at":"2026-11-25T10:00:00Z","livemode":true,"sequence":18446744073709551616,"data":{}}"#;
    assert!(serde_json::from_str::<Event>(event).is_err());
}

#[test]
fn events_with_missing_or_wrong_fields_are_refused_with_the_reason() {
    let cases = [
        ("", "EOF"),
        ("{}", "missing field"),
        (
            r#"{"id":"pay_01ARZ3NDEKTSV4RRFFQ69G5FAV","type":"invoice.paid","created_at":"2026-11-25T10:00:00Z","livemode":true,"sequence":1,"data":{}}"#,
            "evt_",
        ),
        (
            r#"{"id":"evt_01ARZ3NDEKTSV4RRFFQ69G5FAV","type":"Invoice Paid","created_at":"2026-11-25T10:00:00Z","livemode":true,"sequence":1,"data":{}}"#,
            "lowercase",
        ),
        (
            r#"{"id":"evt_01ARZ3NDEKTSV4RRFFQ69G5FAV","type":"invoice.paid","created_at":"yesterday","livemode":true,"sequence":1,"data":{}}"#,
            "could not be parsed",
        ),
        (
            r#"{"id":"evt_01ARZ3NDEKTSV4RRFFQ69G5FAV","type":"invoice.paid","created_at":"2026-11-25T10:00:00Z","livemode":true,"sequence":-1,"data":{}}"#,
            "expected u64",
        ),
    ];
    for (text, expected) in cases {
        let err = serde_json::from_str::<Event>(text).unwrap_err().to_string();
        assert!(err.contains(expected), "{text}: {err}");
    }
    assert!(EventType::parse("payment.completed\0").is_err());
    assert!(EventId::parse("evt_\u{0}").is_err());
}

#[test]
fn postback_answers_other_than_the_two_words_are_errors() {
    for body in [
        &b""[..],
        b"verified",
        b"VERIFIED!",
        b" VERIFIED",
        b"<html>500</html>",
        b"\xff",
    ] {
        assert!(parse_answer(body).is_err(), "{body:?}");
    }
    assert!(parse_answer(b"VERIFIED\r\n").is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes through every reader of a received PayPal message.
    #[test]
    fn arbitrary_paypal_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(msg) = IpnMessage::parse(&body) {
            prop_assert_eq!(msg.as_bytes(), &body[..]);
            let _ = (msg.gross(), msg.fee(), msg.items(), msg.payment_date(), msg.event_type());
            let _ = check_postback(msg.form(), msg.form());
        }
    }

    /// Form-shaped input, so the typed readers see plausible fields.
    #[test]
    fn arbitrary_paypal_fields_never_panic(
        fields in proptest::collection::vec(
            (prop::sample::select(vec![
                "mc_gross", "mc_fee", "mc_currency", "payment_date", "num_cart_items",
                "quantity1", "mc_gross_1", "txn_type", "payment_status", "charset",
            ]), "[-0-9.a-zA-Z%+:, ]{0,24}"),
            0..8,
        ),
    ) {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        if let Ok(msg) = IpnMessage::parse(body.as_bytes()) {
            let _ = (msg.gross(), msg.fee(), msg.items(), msg.payment_date(), msg.event_type());
        }
    }

    #[test]
    fn arbitrary_event_json_never_panics(text in any::<String>()) {
        let _ = serde_json::from_str::<Event>(&text);
    }

    #[test]
    fn arbitrary_money_and_dates_never_panic(text in any::<String>()) {
        let _ = Money::parse_decimal(&text, Currency::KWD);
        let _ = parse_payment_date(&text);
        let _ = EventType::parse(&text);
        let _ = EventId::parse(&text);
        let _ = WebhookSecret::parse(&text);
        let _ = parse_answer(text.as_bytes());
    }
}
