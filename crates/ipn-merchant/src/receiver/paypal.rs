//! `POST /ipn`: the PayPal dialect (classic IPN).
//!
//! PayPal's rule is to answer 200 at once and verify afterwards, by posting
//! the message back. So the body is stored exactly as received (the
//! postback must send those bytes), `unverified`, and answered 200 with an
//! empty body once committed; the postback worker (`verify/`) is woken. Nothing in it is trusted until the postback
//! says `VERIFIED`: not even its `webhook-id` header, which is why every
//! arrival gets its own row and duplicates are settled after verification
//! (by `txn_id` and `payment_status`).
//!
//! What is stored must at least look like an IPN, since each stored row is
//! kept and posted back: `Content-Type: application/x-www-form-urlencoded`
//! (any parameters), a body that parses as a PayPal form, and the fields
//! every IPN has, from PayPal as from our gateway ([`REQUIRED`]). Anything
//! else (`hello world`, JSON) is a 400 naming what is wrong, and nothing is
//! stored.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use ipn_core::Dialect;
use ipn_core::paypal::Form;

use super::{ReceiveError, Receiver, body, kept_headers};
use crate::storage::{InboxStatus, NewMessage};

pub async fn receive(
    State(state): State<Receiver>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ReceiveError> {
    if !is_form(&headers) {
        return Err(ReceiveError::NotForm);
    }
    let raw = body(raw, state.body_limit)?;
    // Parsed only to refuse what no postback could verify (an empty body,
    // bad escapes, an unknown charset) and what is no IPN; the bytes stored
    // are the raw ones.
    let form = Form::parse(&raw)?;
    check_fields(&form)?;
    let message = NewMessage {
        dialect: Dialect::Paypal,
        webhook_id: None,
        headers: kept_headers(&headers),
        body: raw.to_vec(),
        status: InboxStatus::Unverified,
        received_at: state.clock.now_ms(),
    };
    let stored = state.writer.store(message).await?;
    tracing::debug!(?stored, "PayPal IPN stored, unverified");
    // A permit is kept if the worker is busy, so no message waits for the
    // next retry to be noticed.
    state.postback_wake.notify_one();
    Ok(StatusCode::OK)
}

/// Fields of which every IPN has at least one, per group: what it is about
/// (`txn_type`; a refund or reversal has none, but its `txn_id`), and
/// PayPal's own marks (`verify_sign` and `ipn_track_id`, both always sent
/// by PayPal and by our gateway, `crates/ipn-core/src/paypal/encode.rs`).
pub const REQUIRED: [&[&str]; 2] = [&["txn_type", "txn_id"], &["verify_sign", "ipn_track_id"]];

/// Refuses a form that lacks every field of a [`REQUIRED`] group (an empty
/// value counts as absent).
fn check_fields(form: &Form) -> Result<(), ReceiveError> {
    for group in REQUIRED {
        if !group
            .iter()
            .any(|name| form.get(name).is_some_and(|v| !v.is_empty()))
        {
            return Err(ReceiveError::NotAnIpn(format!(
                "it has no {}: every IPN has one",
                group.join(" or ")
            )));
        }
    }
    Ok(())
}

/// Whether the `Content-Type` is `application/x-www-form-urlencoded`, with
/// any parameters (a `charset`), in any case.
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}
