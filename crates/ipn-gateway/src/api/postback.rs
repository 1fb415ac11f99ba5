//! `POST /cgi-bin/webscr` and `/ipn/verify`: PayPal-style verification by
//! postback. The answer is exactly `VERIFIED` or `INVALID`, always with 200,
//! as PayPal does; a 500 only when the gateway could not look (its storage
//! failed), so the listener asks again rather than dropping the message.
//!
//! `VERIFIED` only for the fields of a message this gateway really sent to a
//! paypal endpoint: found by its `ipn_track_id` (our event id), re-encoded
//! from the stored event (encoding is deterministic; the `resend=true` form
//! only if the event was resent), and compared field by field after decoding
//! (see `ipn_core::paypal::check_postback`). The posted body is read
//! leniently (`Form::parse_lenient`: empty segments skipped) and whatever its
//! content type, as PayPal does, because listener libraries rebuild it their
//! own way: `&name=value…&cmd=_notify-validate`, `%20` or `+`, either hex case.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ipn_core::event::Event;
use ipn_core::id::EventId;
use ipn_core::paypal::{Answer, Form, Sending, check_postback, encode_event};

use super::{ApiError, AppState};

pub async fn verify(State(state): State<AppState>, body: Bytes) -> Response {
    let answer = match check(&state, &body).await {
        Ok(Ok(())) => Answer::Verified,
        Ok(Err(why)) => {
            tracing::info!(reason = %why, "postback INVALID");
            Answer::Invalid
        }
        // Not knowing is not INVALID: a listener would drop a genuine
        // message for good. A 5xx makes it ask again.
        Err(failure) => return ApiError::internal(failure).into_response(),
    };
    let mut response = (StatusCode::OK, answer.as_str()).into_response();
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain"));
    response
}

/// `Ok(Ok(()))` verified, `Ok(Err(why))` invalid, `Err(_)` the gateway
/// could not look (storage failed).
async fn check(state: &AppState, body: &[u8]) -> Result<Result<(), String>, String> {
    let posted = match Form::parse_lenient(body) {
        Ok(posted) => posted,
        Err(e) => return Ok(Err(format!("unreadable body: {e}"))),
    };
    let Some(id) = posted.get("ipn_track_id") else {
        return Ok(Err("no ipn_track_id".to_owned()));
    };
    let id = match EventId::parse(id) {
        Ok(id) => id,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let store = Arc::clone(&state.engine.store);
    let (stored, sent) = tokio::task::spawn_blocking(move || {
        Ok::<_, anyhow::Error>((store.event(id)?, store.paypal_sending(id)?))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("checking a postback: {e:#}"))?;
    Ok(compare(&posted, stored, sent))
}

/// Whether the posted fields are those of a message sent for this event.
fn compare(
    posted: &Form,
    stored: Option<crate::storage::StoredEvent>,
    sent: Option<bool>,
) -> Result<(), String> {
    let stored = stored.ok_or("no such event")?;
    let resent = sent.ok_or("event never sent to a paypal endpoint")?;
    let event: Event = serde_json::from_slice(&stored.body).map_err(|e| e.to_string())?;
    let forms: &[Sending] = if resent {
        &[Sending::First, Sending::Resend]
    } else {
        &[Sending::First]
    };
    let mut last = String::new();
    for &sending in forms {
        let encoded = encode_event(&event, sending).map_err(|e| e.to_string())?;
        let sent = Form::parse(&encoded).map_err(|e| e.to_string())?;
        match check_postback(posted, &sent) {
            Ok(()) => return Ok(()),
            Err(mismatch) => last = mismatch.to_string(),
        }
    }
    Err(last)
}
