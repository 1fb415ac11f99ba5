//! `POST /ipn`: the PayPal dialect (classic IPN).
//!
//! PayPal's rule is to answer 200 at once and verify afterwards, by posting
//! the message back. So the body is stored exactly as received (the
//! postback must send those bytes), `unverified`, and answered 200 with an
//! empty body once committed; the postback worker (`verify/`) is woken. Nothing in it is trusted until the postback
//! says `VERIFIED`: not even its `webhook-id` header, which is why every
//! arrival gets its own row and duplicates are settled after verification
//! (by `txn_id` and `payment_status`).

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use ipn_core::Dialect;
use ipn_core::paypal::Form;

use super::{ReceiveError, Receiver, body, kept_headers};
use crate::storage::{InboxStatus, NewMessage};

pub async fn receive(
    State(state): State<Receiver>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ReceiveError> {
    let raw = body(raw, state.body_limit)?;
    // Parsed only to refuse what no postback could verify (an empty body,
    // bad escapes, an unknown charset); the bytes stored are the raw ones.
    Form::parse(&raw)?;
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
