//! Properties of Standard Webhooks signing: what is signed verifies, and any
//! change to the id, timestamp or body, or a timestamp out of tolerance, fails.

use ipn_core::standard::{
    DEFAULT_TOLERANCE_SECS, Scheme, Signer, SigningKey, Verifier, VerifyError, VerifyKey,
    WebhookHeaders, WebhookSecret, signature_header,
};
use proptest::prelude::*;

/// Both kinds of key, so every property covers v1 and v1a.
fn keys() -> (Vec<Signer>, Vec<VerifyKey>) {
    let secret = WebhookSecret::generate();
    let signing = SigningKey::generate();
    let public = signing.public_key();
    (
        vec![Signer::Secret(secret.clone()), Signer::Ed25519(signing)],
        vec![VerifyKey::Secret(secret), VerifyKey::Ed25519(public)],
    )
}

fn check(
    key: &VerifyKey,
    id: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: i64,
) -> Result<Scheme, VerifyError> {
    let headers = WebhookHeaders {
        id,
        timestamp,
        signature,
    };
    Verifier::new(vec![key.clone()]).verify(&headers, body, now)
}

fn mutate(bytes: &mut [u8], at: prop::sample::Index, xor: u8) {
    let i = at.index(bytes.len());
    bytes[i] ^= xor;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn signed_messages_verify(
        id in "[!-~]{1,64}",
        timestamp in 0i64..=4_102_444_800,
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        skew in -DEFAULT_TOLERANCE_SECS..=DEFAULT_TOLERANCE_SECS,
    ) {
        let (signers, verify_keys) = keys();
        let header = signature_header(&signers, &id, timestamp, &body);
        let ts = timestamp.to_string();
        for (key, scheme) in verify_keys.iter().zip([Scheme::V1, Scheme::V1a]) {
            prop_assert_eq!(check(key, &id, &ts, &header, &body, timestamp + skew), Ok(scheme));
        }
    }

    #[test]
    fn any_changed_byte_of_the_body_fails(
        body in proptest::collection::vec(any::<u8>(), 1..2048),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let (signers, verify_keys) = keys();
        let header = signature_header(&signers, "evt_1", 1_700_000_000, &body);
        let mut changed = body.clone();
        mutate(&mut changed, at, xor);
        for key in &verify_keys {
            prop_assert_eq!(
                check(key, "evt_1", "1700000000", &header, &changed, 1_700_000_000),
                Err(VerifyError::NoMatchingSignature)
            );
        }
    }

    #[test]
    fn any_changed_byte_of_the_id_fails(
        id in "[a-z0-9_]{1,40}",
        at in any::<prop::sample::Index>(),
        replacement in "[A-Z]",
    ) {
        let (signers, verify_keys) = keys();
        let header = signature_header(&signers, &id, 1_700_000_000, b"{}");
        let mut changed = id.clone().into_bytes();
        let i = at.index(changed.len());
        changed[i] = replacement.as_bytes()[0];
        let changed = String::from_utf8(changed).unwrap();
        for key in &verify_keys {
            prop_assert_eq!(
                check(key, &changed, "1700000000", &header, b"{}", 1_700_000_000),
                Err(VerifyError::NoMatchingSignature)
            );
        }
    }

    /// A different timestamp inside the tolerance still fails: the signature covers it.
    #[test]
    fn a_changed_timestamp_fails(
        timestamp in 1_000i64..=4_102_444_800,
        delta in (-DEFAULT_TOLERANCE_SECS..=DEFAULT_TOLERANCE_SECS).prop_filter("changed", |d| *d != 0),
    ) {
        let (signers, verify_keys) = keys();
        let header = signature_header(&signers, "evt_1", timestamp, b"{}");
        let ts = (timestamp + delta).to_string();
        for key in &verify_keys {
            prop_assert_eq!(
                check(key, "evt_1", &ts, &header, b"{}", timestamp),
                Err(VerifyError::NoMatchingSignature)
            );
        }
    }

    #[test]
    fn a_timestamp_out_of_tolerance_fails_either_way(
        timestamp in 1_000_000i64..=4_102_444_800,
        beyond in 1i64..=1_000_000,
    ) {
        let (signers, verify_keys) = keys();
        let header = signature_header(&signers, "evt_1", timestamp, b"{}");
        let ts = timestamp.to_string();
        let late = timestamp + DEFAULT_TOLERANCE_SECS + beyond;
        let early = timestamp - DEFAULT_TOLERANCE_SECS - beyond;
        for key in &verify_keys {
            let too_old = matches!(
                check(key, "evt_1", &ts, &header, b"{}", late),
                Err(VerifyError::TimestampTooOld { .. })
            );
            prop_assert!(too_old);
            let too_new = matches!(
                check(key, "evt_1", &ts, &header, b"{}", early),
                Err(VerifyError::TimestampTooNew { .. })
            );
            prop_assert!(too_new);
        }
    }

    /// Whatever arrives in the three headers, verification answers and never panics.
    #[test]
    fn arbitrary_headers_never_panic(
        id in any::<String>(),
        timestamp in any::<String>(),
        signature in any::<String>(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let (_, verify_keys) = keys();
        for key in &verify_keys {
            let _ = check(key, &id, &timestamp, &signature, &body, 0);
        }
    }
}
