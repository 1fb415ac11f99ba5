//! The receivers' one error type: an HTTP status, a stable code, and a
//! message for people, rendered as `{"error": {"code", "message"}}`.
//!
//! A refused message (bad signature, stale timestamp, malformed or oversized
//! body) gets a 4xx naming what failed, and nothing is stored. A storage
//! failure is logged once, in the writer, and answered with an opaque 5xx:
//! the gateway then retries, which is what it must do when a message was not
//! durably stored.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ipn_core::paypal::FormError;
use ipn_core::standard::VerifyError;
use serde_json::json;

use crate::writer::WriteError;

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The Standard Webhooks headers, timestamp or signature did not verify.
    #[error("{0}")]
    Verify(#[from] VerifyError),
    /// A PayPal-dialect body that is not a form.
    #[error("body is not a PayPal IPN form: {0}")]
    Form(#[from] FormError),
    /// A verified standard-dialect body that is not an event.
    #[error("body is not an event: {0}")]
    NotAnEvent(String),
    /// A form that lacks what every IPN has.
    #[error("body is not a PayPal IPN: {0}")]
    NotAnIpn(String),
    #[error("an IPN is sent as Content-Type: application/x-www-form-urlencoded")]
    NotForm,
    #[error("request bodies are limited to {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request body could not be read: {0}")]
    Unreadable(String),
    #[error("no such route")]
    NotFound,
    #[error("this route does not take that method")]
    MethodNotAllowed,
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl ReceiveError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Verify(error) => (StatusCode::BAD_REQUEST, verify_code(error)),
            Self::Form(_) | Self::NotAnIpn(_) | Self::NotAnEvent(_) => {
                (StatusCode::BAD_REQUEST, "invalid_body")
            }
            Self::NotForm => (StatusCode::BAD_REQUEST, "invalid_content_type"),
            Self::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::Unreadable(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Write(WriteError::Closed) => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            Self::Write(WriteError::Store(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
            }
        }
    }

    fn message(&self) -> String {
        match self {
            // The cause is in the log already; it may name files and paths.
            Self::Write(WriteError::Store(_)) => {
                "the message could not be stored; it has been logged, send it again later"
                    .to_owned()
            }
            Self::Write(WriteError::Closed) => {
                "the merchant server is shutting down; send the message again shortly".to_owned()
            }
            other => other.to_string(),
        }
    }
}

/// Which check failed, for programs; the message says it for people.
fn verify_code(error: &VerifyError) -> &'static str {
    match error {
        VerifyError::MissingHeader(_) | VerifyError::InvalidHeader(_) => "invalid_headers",
        VerifyError::InvalidTimestamp(_)
        | VerifyError::TimestampTooOld { .. }
        | VerifyError::TimestampTooNew { .. } => "invalid_timestamp",
        VerifyError::NoSignature | VerifyError::NoMatchingSignature => "invalid_signature",
    }
}

impl IntoResponse for ReceiveError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = json!({"error": {"code": code, "message": self.message()}});
        let mut response = (status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}
