//! The API's one error type: an HTTP status, a stable machine-readable code,
//! and a message for people. Rendered as `{"error": {"code", "message"}}`.
//!
//! Expected failures (bad input, unknown ids) carry their own message.
//! Unexpected ones (storage) are logged here with their cause, once, and the
//! client sees an opaque 500/503.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ipn_core::payment_flow::PaymentError;
use serde_json::json;

use crate::processor::payments::PaymentRefusal;
use crate::processor::subscriptions::SubscriptionRefusal;
use crate::writes::WriteError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (a 429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Too many wrong keys from the caller's address: 429 with when to
    /// try again.
    pub fn too_many_failures(wait: std::time::Duration) -> Self {
        let seconds = ipn_web::throttle::retry_after(wait);
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_failures",
            format!("too many wrong API keys came from your address; try again in {seconds} s"),
        );
        error.retry_after = Some(seconds);
        error
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown API key: send Authorization: Bearer <key>",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// An unexpected failure: logged with its cause, opaque to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the gateway could not complete the request; it has been logged",
        )
    }
}

impl From<WriteError> for ApiError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Closed => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the gateway is shutting down; retry shortly",
            ),
            WriteError::Store(cause) => Self::internal(cause),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        Self::internal(format!("{error:#}"))
    }
}

impl ApiError {
    /// The status and JSON body, for answers kept with an Idempotency-Key.
    pub fn rendered(&self) -> (u16, Vec<u8>) {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (
            self.status.as_u16(),
            serde_json::to_vec(&body).unwrap_or_default(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (_, body) = self.rendered();
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        );
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// The API error for a refused operation.
pub fn payment_refused(refusal: &PaymentRefusal) -> ApiError {
    match refusal {
        PaymentRefusal::NotFound => ApiError::not_found("payment"),
        PaymentRefusal::Exists => {
            ApiError::new(StatusCode::CONFLICT, "payment_exists", refusal.to_string())
        }
        PaymentRefusal::Rule(rule) => match rule {
            PaymentError::NotPositive { .. }
            | PaymentError::RefundExceedsRemaining { .. }
            | PaymentError::CurrencyMismatch { .. } => ApiError::invalid(rule.to_string()),
            _ => ApiError::new(StatusCode::CONFLICT, "payment_state", rule.to_string()),
        },
    }
}

/// A refusal as the API (and the dashboard) answers it.
pub fn subscription_refused(refusal: &SubscriptionRefusal) -> ApiError {
    match refusal {
        SubscriptionRefusal::NotFound => ApiError::not_found("subscription"),
        SubscriptionRefusal::Plan(_) | SubscriptionRefusal::MethodNotChargeable => {
            ApiError::invalid(refusal.to_string())
        }
        SubscriptionRefusal::Declined => ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "card_declined",
            refusal.to_string(),
        ),
        SubscriptionRefusal::Exists
        | SubscriptionRefusal::Finished(_)
        | SubscriptionRefusal::AlreadyCanceled
        | SubscriptionRefusal::NotDue => ApiError::new(
            StatusCode::CONFLICT,
            "subscription_state",
            refusal.to_string(),
        ),
    }
}
