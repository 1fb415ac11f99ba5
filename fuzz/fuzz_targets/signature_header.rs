//! Standard Webhooks signatures: the `webhook-signature` header parser and
//! `Verifier` never panic on any header, id, timestamp and body; a header made
//! by `Signer` always verifies; the same message with one byte changed (in the
//! id, the timestamp, the body or the header) never does.
//!
//! Input, one item a line so the published vectors are seeds as they are:
//! key (`whsec_`, `whsk_` or `whpk_`; anything else becomes a secret of its
//! bytes), id, timestamp, signature header, then up to five numbers (now,
//! tolerance, and which byte to change: part, position, xor), then the body.

#![no_main]

use ipn_core::standard::{
    PublicKey, Signer, SigningKey, Verifier, VerifyKey, WebhookHeaders, WebhookSecret,
    signature_header,
};
use libfuzzer_sys::fuzz_target;

/// Timestamps the verifier reads: digits only, at most 18 of them.
const TIMESTAMP_LIMIT: i64 = 1_000_000_000_000_000_000;

fn keys(line: &[u8]) -> (Option<Signer>, VerifyKey) {
    let text = std::str::from_utf8(line).unwrap_or_default();
    if let Ok(secret) = WebhookSecret::parse(text) {
        return (
            Some(Signer::Secret(secret.clone())),
            VerifyKey::Secret(secret),
        );
    }
    if let Ok(key) = SigningKey::parse(text) {
        let public = key.public_key();
        return (Some(Signer::Ed25519(key)), VerifyKey::Ed25519(public));
    }
    if let Ok(public) = PublicKey::parse(text) {
        return (None, VerifyKey::Ed25519(public));
    }
    let mut bytes = line.to_vec();
    bytes.resize(
        bytes
            .len()
            .clamp(WebhookSecret::MIN_BYTES, WebhookSecret::MAX_BYTES),
        0,
    );
    let secret = WebhookSecret::from_bytes(bytes).expect("a secret of 24 to 64 bytes");
    (
        Some(Signer::Secret(secret.clone())),
        VerifyKey::Secret(secret),
    )
}

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(6, |&b| b == b'\n');
    let mut line = || lines.next().unwrap_or_default();
    let (key_line, raw_id, raw_timestamp, raw_signature, numbers) =
        (line(), line(), line(), line(), line());
    let body = line();
    let mut numbers = std::str::from_utf8(numbers)
        .unwrap_or_default()
        .split_ascii_whitespace()
        .map(|n| n.parse::<i64>().unwrap_or_default());
    let mut number = || numbers.next().unwrap_or_default();
    let (now, tolerance, part, at, flip) = (number(), number(), number(), number(), number());

    let (signer, key) = keys(key_line);
    let verifier = Verifier::new(vec![key]).tolerance(tolerance);

    // Whatever arrives: never a panic.
    let lookup = |name: &'static str| match name {
        WebhookHeaders::ID => Some(raw_id),
        WebhookHeaders::TIMESTAMP => Some(raw_timestamp),
        _ => Some(raw_signature),
    };
    if let Ok(headers) = WebhookHeaders::from_lookup(lookup) {
        let _ = verifier.verify(&headers, body, now);
        let _ = verifier.verify_signature(&headers, body);
    }
    let (Ok(id), Ok(timestamp), Ok(signature)) = (
        std::str::from_utf8(raw_id),
        std::str::from_utf8(raw_timestamp),
        std::str::from_utf8(raw_signature),
    ) else {
        return;
    };
    let headers = WebhookHeaders {
        id,
        timestamp,
        signature,
    };
    let _ = verifier.verify(&headers, body, now);
    let _ = verifier.verify_signature(&headers, body);

    // Signed for real: always verifies at the time it says.
    let Some(signer) = signer else {
        return;
    };
    let timestamp = timestamp
        .parse::<i64>()
        .unwrap_or(now)
        .rem_euclid(TIMESTAMP_LIMIT);
    let timestamp_text = timestamp.to_string();
    let header = signature_header(std::slice::from_ref(&signer), id, timestamp, body);
    let verifier = verifier.tolerance(0);
    let headers = WebhookHeaders {
        id,
        timestamp: &timestamp_text,
        signature: &header,
    };
    assert!(
        verifier.verify(&headers, body, timestamp).is_ok(),
        "a signed message does not verify: {headers:?}"
    );

    // One byte changed: never verifies, at any time.
    let flip = flip as u8;
    let mut id = id.as_bytes().to_vec();
    let mut timestamp_bytes = timestamp_text.into_bytes();
    let mut body = body.to_vec();
    let mut header_bytes = header.into_bytes();
    let target = match part.rem_euclid(4) {
        0 => &mut id,
        1 => &mut timestamp_bytes,
        2 => &mut body,
        _ => &mut header_bytes,
    };
    if target.is_empty() || flip == 0 {
        return;
    }
    let at = at.unsigned_abs() as usize % target.len();
    target[at] ^= flip;
    let (Ok(id), Ok(timestamp), Ok(signature)) = (
        std::str::from_utf8(&id),
        std::str::from_utf8(&timestamp_bytes),
        std::str::from_utf8(&header_bytes),
    ) else {
        return;
    };
    let headers = WebhookHeaders {
        id,
        timestamp,
        signature,
    };
    let verdict = verifier.verify_signature(&headers, &body);
    assert!(
        verdict.is_err(),
        "a changed message verifies: {headers:?}, body {body:?}"
    );
});
