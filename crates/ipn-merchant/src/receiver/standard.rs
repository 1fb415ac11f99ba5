//! `POST /webhooks`: the standard dialect (Standard Webhooks 1.0).
//!
//! The signature and the timestamp are checked BEFORE anything is stored:
//! a message that fails gets a 400 naming the check and leaves no trace.
//! A verified message is stored once per `webhook-id`; a retry of one
//! already stored is answered 200 again, so the gateway stops sending it.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use ipn_core::Dialect;
use ipn_core::standard::WebhookHeaders;

use super::{ReceiveError, Receiver, body, kept_headers};
use crate::storage::{InboxStatus, NewMessage, Stored};

pub async fn receive(
    State(state): State<Receiver>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ReceiveError> {
    let raw = body(raw, state.body_limit)?;
    let received_at = state.clock.now_ms();
    let signed = WebhookHeaders::from_lookup(|name| headers.get(name).map(|v| v.as_bytes()))
        .inspect_err(|error| tracing::info!(%error, "webhook refused"))?;
    if signed.id.len() > MAX_WEBHOOK_ID {
        return Err(ReceiveError::NotAnEvent(format!(
            "webhook-id is longer than {MAX_WEBHOOK_ID} bytes"
        )));
    }
    state
        .verifier
        .verify(&signed, &raw, received_at.div_euclid(1000))
        .inspect_err(|error| tracing::info!(%error, webhook.id = signed.id, "webhook refused"))?;
    check_event(&raw)?;
    let message = NewMessage {
        dialect: Dialect::Standard,
        webhook_id: Some(signed.id.to_owned()),
        headers: kept_headers(&headers),
        body: raw.to_vec(),
        status: InboxStatus::Received,
        received_at,
    };
    match state.writer.store(message).await? {
        Stored::New(id) => {
            tracing::debug!(inbox.id = id, webhook.id = signed.id, "webhook stored");
        }
        Stored::Duplicate(id) => {
            tracing::debug!(
                inbox.id = id,
                webhook.id = signed.id,
                "webhook already stored"
            );
        }
    }
    Ok(StatusCode::OK)
}

/// The longest `webhook-id` kept (ours are 30 bytes; Standard Webhooks
/// senders use short ids too).
const MAX_WEBHOOK_ID: usize = 256;

/// A signed body must still be an event: a JSON object with a string `id`
/// and `type`, read by the parser the handler uses (its depth limit, no
/// lone surrogates). The gateway never signs anything else, so anything
/// else is refused before it is stored, not set aside later.
fn check_event(raw: &[u8]) -> Result<(), ReceiveError> {
    let value: serde_json::Value = serde_json::from_slice(raw)
        .map_err(|e| ReceiveError::NotAnEvent(format!("not JSON the shop can read: {e}")))?;
    let is_text = |field: &str| value[field].as_str().is_some_and(|text| !text.is_empty());
    if !value.is_object() || !is_text("id") || !is_text("type") {
        return Err(ReceiveError::NotAnEvent(
            "not an event: a JSON object with an `id` and a `type`".to_owned(),
        ));
    }
    Ok(())
}
