//! `POST /cgi-bin/webscr` and `/ipn/verify`: PayPal-style verification by
//! postback. The answer is exactly `VERIFIED` or `INVALID`, always with 200,
//! as PayPal does.
//!
//! `VERIFIED` only for the fields of a message this gateway really sent to a
//! paypal endpoint: found by its `ipn_track_id` (our event id), re-encoded
//! from the stored event (encoding is deterministic; the `resend=true` form
//! only if the event was resent), and compared field by field after decoding
//! (see `ipn_core::paypal::check_postback`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ipn_core::event::Event;
use ipn_core::id::EventId;
use ipn_core::paypal::{Answer, Form, Sending, check_postback, encode_event};

use super::AppState;

pub async fn verify(State(state): State<AppState>, body: Bytes) -> Response {
    let answer = match check(&state, &body).await {
        Ok(()) => Answer::Verified,
        Err(why) => {
            tracing::info!(reason = %why, "postback INVALID");
            Answer::Invalid
        }
    };
    let mut response = (StatusCode::OK, answer.as_str()).into_response();
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain"));
    response
}

async fn check(state: &AppState, body: &[u8]) -> Result<(), String> {
    let posted = Form::parse(body).map_err(|e| format!("unreadable body: {e}"))?;
    let id = posted.get("ipn_track_id").ok_or("no ipn_track_id")?;
    let id = EventId::parse(id).map_err(|e| e.to_string())?;
    let store = Arc::clone(&state.engine.store);
    let (stored, sent) = tokio::task::spawn_blocking(move || {
        Ok::<_, anyhow::Error>((store.event(id)?, store.paypal_sending(id)?))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("{e:#}"))?;
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
        match check_postback(&posted, &sent) {
            Ok(()) => return Ok(()),
            Err(mismatch) => last = mismatch.to_string(),
        }
    }
    Err(last)
}
