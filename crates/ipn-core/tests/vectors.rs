//! The published test vectors (tests/data, copied from shared/vectors), as
//! table-driven tests.

use ipn_core::money::{Currency, Money};
use ipn_core::paypal::{IpnMessage, PaymentStatus, TxnType, check_postback, request_body};
use ipn_core::standard::{
    PublicKey, Scheme, Signer, SigningKey, Verifier, VerifyError, VerifyKey, WebhookHeaders,
    WebhookSecret,
};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("vector field {key} is not a string: {v}"))
}

struct Case<'a> {
    name: &'a str,
    secret: WebhookSecret,
    id: &'a str,
    timestamp: i64,
    payload: &'a str,
    signature: &'a str,
}

fn case(v: &Value) -> Case<'_> {
    Case {
        name: s(v, "name"),
        secret: WebhookSecret::parse(s(v, "secret")).unwrap(),
        id: s(v, "id"),
        timestamp: v["timestamp"].as_i64().unwrap(),
        payload: s(v, "payload"),
        signature: s(v, "signature"),
    }
}

fn verify(c: &Case<'_>, now: i64) -> Result<Scheme, VerifyError> {
    let ts = c.timestamp.to_string();
    let headers = WebhookHeaders {
        id: c.id,
        timestamp: &ts,
        signature: c.signature,
    };
    Verifier::with_secret(c.secret.clone()).verify(&headers, c.payload.as_bytes(), now)
}

#[test]
fn standard_webhooks_valid_vectors_verify_and_sign_identically() {
    let vectors = load("standard-webhooks.json");
    let valid = vectors["valid"].as_array().unwrap();
    assert_eq!(valid.len(), 3);
    for v in valid {
        let c = case(v);
        assert_eq!(verify(&c, c.timestamp), Ok(Scheme::V1), "{}", c.name);
        let ours = Signer::Secret(c.secret.clone()).sign(c.id, c.timestamp, c.payload.as_bytes());
        assert!(
            c.signature.split(' ').any(|sig| sig == ours),
            "{}: we signed {ours}",
            c.name
        );
    }
}

#[test]
fn standard_webhooks_invalid_vectors_are_refused() {
    let vectors = load("standard-webhooks.json");
    let invalid = vectors["invalid"].as_array().unwrap();
    assert_eq!(invalid.len(), 5);
    for v in invalid {
        let c = case(v);
        assert_eq!(
            verify(&c, c.timestamp),
            Err(VerifyError::NoMatchingSignature),
            "{}",
            c.name
        );
    }
}

#[test]
fn standard_webhooks_rules() {
    let vectors = load("standard-webhooks.json");
    let rules = &vectors["rules"];
    let tolerance = rules["tolerance_seconds"].as_i64().unwrap();
    let c = case(&vectors["valid"][0]);
    assert_eq!(verify(&c, c.timestamp + tolerance), Ok(Scheme::V1));
    assert_eq!(verify(&c, c.timestamp - tolerance), Ok(Scheme::V1));
    assert!(matches!(
        verify(&c, c.timestamp + tolerance + 1),
        Err(VerifyError::TimestampTooOld { .. })
    ));
    assert!(matches!(
        verify(&c, c.timestamp - tolerance - 1),
        Err(VerifyError::TimestampTooNew { .. })
    ));
    assert!(WebhookSecret::parse("whsec_").is_err());
    assert!(WebhookSecret::parse("").is_err());
    for missing in [
        WebhookHeaders::ID,
        WebhookHeaders::TIMESTAMP,
        WebhookHeaders::SIGNATURE,
    ] {
        let got = WebhookHeaders::from_lookup(|name| (name != missing).then_some(&b"1"[..]));
        assert_eq!(got, Err(VerifyError::MissingHeader(missing)));
    }
}

#[test]
fn ed25519_vector_verifies_and_signs_identically() {
    let vectors = load("standard-webhooks.json");
    let v = &vectors["ed25519_generated"];
    let key = SigningKey::parse(s(v, "secret_key")).unwrap();
    let public = PublicKey::parse(s(v, "public_key")).unwrap();
    assert_eq!(key.public_key(), public);
    let (id, payload) = (s(v, "id"), s(v, "payload"));
    let timestamp = v["timestamp"].as_i64().unwrap();
    let ours = Signer::Ed25519(key).sign(id, timestamp, payload.as_bytes());
    assert_eq!(ours, s(v, "signature"));
    let ts = timestamp.to_string();
    let headers = WebhookHeaders {
        id,
        timestamp: &ts,
        signature: s(v, "signature"),
    };
    let verifier = Verifier::new(vec![VerifyKey::Ed25519(public)]);
    assert_eq!(
        verifier.verify(&headers, payload.as_bytes(), timestamp),
        Ok(Scheme::V1a)
    );
    assert_eq!(
        verifier.verify(&headers, b"{\"test\": 2432232315}", timestamp),
        Err(VerifyError::NoMatchingSignature)
    );
}

#[test]
fn paypal_samples_read_as_published() {
    let vectors = load("paypal-ipn.json");
    let samples = vectors["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 3);
    for sample in samples {
        let name = s(sample, "name");
        let body = s(sample, "body").as_bytes();
        let msg = IpnMessage::parse(body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(msg.as_bytes(), body, "{name}: bytes kept as received");
        for (field, want) in sample["expect"].as_object().unwrap() {
            let got = msg.form().get(field);
            match field.as_str() {
                "payment_date" => {
                    let at = msg.payment_date().unwrap().unwrap();
                    assert_eq!(
                        at.format(&Rfc3339).unwrap(),
                        want.as_str().unwrap(),
                        "{name}"
                    );
                }
                "mc_gross" => {
                    let currency = Currency::parse(msg.form().get("mc_currency").unwrap()).unwrap();
                    let want = Money::parse_decimal(want.as_str().unwrap(), currency).unwrap();
                    assert_eq!(msg.gross(), Ok(Some(want)), "{name}");
                    assert_eq!(got, Some(want.to_decimal_string().as_str()), "{name}");
                }
                _ => assert_eq!(got, want.as_str(), "{name}: {field}"),
            }
        }
        // The postback is the original bytes behind the command, and the
        // gateway side recognises it as the message sent.
        let postback = request_body(body);
        assert_eq!(&postback[..21], b"cmd=_notify-validate&");
        assert_eq!(&postback[21..], body);
        let posted = ipn_core::paypal::Form::parse(&postback).unwrap();
        assert_eq!(check_postback(&posted, msg.form()), Ok(()), "{name}");
    }
}

#[test]
fn paypal_sample_fields_are_typed() {
    let vectors = load("paypal-ipn.json");
    let body = |i: usize| s(&vectors["samples"][i], "body").as_bytes();
    let express = IpnMessage::parse(body(0)).unwrap();
    assert_eq!(express.txn_type(), Some(TxnType::ExpressCheckout));
    assert_eq!(express.payment_status(), Some(PaymentStatus::Completed));
    assert_eq!(express.fee(), Ok(Some(Money::new(88, Currency::USD))));
    assert!(express.is_test());
    assert_eq!(express.custom(), None, "custom= reads as absent");

    let reversal = IpnMessage::parse(body(2)).unwrap();
    assert_eq!(reversal.txn_type(), None);
    assert_eq!(reversal.gross(), Ok(Some(Money::new(-926, Currency::USD))));
    assert_eq!(
        reversal.event_type(),
        Some(ipn_core::event::EventType::PaymentReversed)
    );

    // Every payment_status PayPal documents reads as itself.
    for status in vectors["payment_status_values"].as_array().unwrap() {
        let status = status.as_str().unwrap();
        let parsed = PaymentStatus::parse(status);
        assert!(!matches!(parsed, PaymentStatus::Other(_)), "{status}");
        assert_eq!(parsed.as_str(), status);
    }
}
