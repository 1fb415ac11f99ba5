//! The HTTP routes: the two receivers and the health check.
//!
//! A receiver takes the body as bytes (never re-encoded), checks what can
//! be checked without a round trip, hands the message to the writer and
//! answers 2xx only once it is committed. Nothing else happens on the
//! request path, so a slow handler or mail server never times the gateway
//! out.

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
use crate::writer::Writer;

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
        .layer(axum::middleware::from_fn(json_errors))
}

/// Gives the refusals axum makes itself in plain text (a path that is not
/// UTF-8, a query it cannot read) the JSON error shape on the routes that
/// answer JSON: `/webhooks`, `/ipn`, `/healthz` and the shop's `/api/`.
/// Pages keep their text, which people read.
async fn json_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = request.uri().path();
    let json_route = ["/api/", "/webhooks", "/ipn", "/healthz"]
        .iter()
        .any(|prefix| path.starts_with(prefix));
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !json_route || is_json || !status.is_client_error() {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|body| String::from_utf8_lossy(&body).trim().to_owned())
        .unwrap_or_default();
    let body = serde_json::json!({"error": {"code": "invalid_request", "message": text}});
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
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
