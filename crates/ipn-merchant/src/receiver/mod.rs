//! The HTTP routes: the two receivers and the health check.
//!
//! A receiver takes the body as bytes (never re-encoded), checks what can
//! be checked without a round trip, hands the message to the writer and
//! answers 2xx only once it is committed. Nothing else happens on the
//! request path, so a slow handler or mail server never times the gateway
//! out (DESIGN §5).

mod error;
mod paypal;
mod standard;

use std::sync::Arc;

use tokio::sync::Notify;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ipn_core::standard::Verifier;

pub use error::ReceiveError;

use crate::clock::Clock;
use crate::storage::writer::Writer;

/// What the routes share.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// Checks `/webhooks` messages against the configured keys.
    pub verifier: Arc<Verifier>,
    pub writer: Writer,
    pub body_limit: usize,
    /// Wakes the postback worker once a PayPal message is stored.
    pub postback_wake: Arc<Notify>,
    /// What a webhook's timestamp is checked against.
    pub clock: Clock,
}

/// The receivers' routes, merged with `others` (the shop's) so that one
/// fallback and one body limit cover every route.
pub fn router(state: Receiver, others: Router) -> Router {
    let limit = state.body_limit;
    Router::new()
        .route("/webhooks", post(standard::receive))
        .route("/ipn", post(paypal::receive))
        .route("/healthz", get(health))
        .with_state(state)
        .merge(others)
        .fallback(|| async { ReceiveError::NotFound })
        .method_not_allowed_fallback(|| async { ReceiveError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(limit))
}

async fn health() -> Response {
    let body = serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")});
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The body, or why it could not be had: over the limit is a 413 in the
/// receivers' JSON shape rather than axum's plain-text one.
fn body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ReceiveError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ReceiveError::TooLarge { limit }
        } else {
            ReceiveError::Unreadable(rejection.body_text())
        }
    })
}

/// Request headers kept with a message: what verifying it again, or
/// reading its body, may need later. Anything else (cookies, proxies'
/// additions) is not the message.
const KEPT_HEADERS: [&str; 5] = [
    "content-type",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "user-agent",
];

/// The kept headers that are present and printable text.
fn kept_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), value.to_owned()))
        })
        .collect()
}
