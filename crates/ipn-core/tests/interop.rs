//! Our Standard Webhooks signatures against an independent implementation:
//! the reference `standardwebhooks` crate verifies ours, and we verify theirs.

use http::{HeaderMap, HeaderValue};
use ipn_core::standard::{Scheme, Signer, Verifier, WebhookHeaders, WebhookSecret};
use proptest::prelude::*;
use time::OffsetDateTime;

fn their_headers(id: &str, timestamp: i64, signature: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", HeaderValue::from_str(id).unwrap());
    headers.insert("webhook-timestamp", HeaderValue::from(timestamp));
    headers.insert(
        "webhook-signature",
        HeaderValue::from_str(signature).unwrap(),
    );
    headers
}

fn secret_from(bytes: Vec<u8>) -> (WebhookSecret, standardwebhooks::Webhook) {
    let ours = WebhookSecret::from_bytes(bytes).unwrap();
    let theirs = standardwebhooks::Webhook::new(&ours.reveal()).unwrap();
    (ours, theirs)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The reference library signs only UTF-8 payloads; ids are header-safe.
    #[test]
    fn they_verify_ours(
        key in proptest::collection::vec(any::<u8>(), 24..=64),
        id in "[A-Za-z0-9_-]{1,40}",
        body in any::<String>(),
        skew in -240i64..=240,
    ) {
        let (ours, theirs) = secret_from(key);
        // Their verifier reads the real clock, so sign near now, leaving a
        // minute of margin under their 5-minute tolerance for a slow run.
        let timestamp = OffsetDateTime::now_utc().unix_timestamp() + skew;
        let signature = Signer::Secret(ours).sign(&id, timestamp, body.as_bytes());
        let headers = their_headers(&id, timestamp, &signature);
        prop_assert!(theirs.verify(body.as_bytes(), &headers).is_ok());
    }

    #[test]
    fn we_verify_theirs(
        key in proptest::collection::vec(any::<u8>(), 24..=64),
        id in "[A-Za-z0-9_-]{1,40}",
        body in any::<String>(),
        timestamp in 0i64..=4_102_444_800,
    ) {
        let (ours, theirs) = secret_from(key);
        let signature = theirs.sign(&id, timestamp, body.as_bytes()).unwrap();
        let ts = timestamp.to_string();
        let headers = WebhookHeaders { id: &id, timestamp: &ts, signature: &signature };
        let verifier = Verifier::with_secret(ours.clone());
        prop_assert_eq!(verifier.verify(&headers, body.as_bytes(), timestamp), Ok(Scheme::V1));
        // Both compute the very same signature.
        prop_assert_eq!(Signer::Secret(ours).sign(&id, timestamp, body.as_bytes()), signature);
    }

    #[test]
    fn they_refuse_ours_when_tampered(
        key in proptest::collection::vec(any::<u8>(), 24..=64),
        body in "[ -~]{1,200}",
        flip in any::<prop::sample::Index>(),
    ) {
        let (ours, theirs) = secret_from(key);
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let signature = Signer::Secret(ours).sign("msg_1", timestamp, body.as_bytes());
        let mut tampered = body.into_bytes();
        let i = flip.index(tampered.len());
        tampered[i] = if tampered[i] == b'x' { b'y' } else { b'x' };
        let headers = their_headers("msg_1", timestamp, &signature);
        prop_assert!(theirs.verify(&tampered, &headers).is_err());
    }
}
