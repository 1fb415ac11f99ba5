//! The shop API's one error type: an HTTP status, a stable code and a
//! message for people, as `{"error": {"code", "message"}}` (the receivers'
//! shape, so a client reads both the same way).
//!
//! Bad input is a 400 naming the field; a gateway that cannot be reached or
//! refuses is a 502 saying so (nothing was stored); a storage failure is an
//! opaque 500, its cause logged.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::gateway::CheckoutError;
use crate::storage::StoreError;
use crate::writer::WriteError;

#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    /// The request is malformed or names something that does not exist.
    #[error("{0}")]
    Invalid(String),
    #[error("request bodies are limited to {limit} bytes")]
    TooLarge { limit: usize },
    #[error("send the order as JSON, with Content-Type: application/json")]
    NotJson,
    #[error("too many orders came from your address; try again in {retry_after} s")]
    TooManyOrders { retry_after: u64 },
    #[error("no order {0:?}")]
    OrderNotFound(String),
    #[error("no subscription {0:?}")]
    SubscriptionNotFound(String),
    #[error("the checkout session could not be created: {0}")]
    Gateway(#[from] CheckoutError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("reading the orders failed: {0:#}")]
    Read(StoreError),
}

impl ShopError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::NotJson => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::TooManyOrders { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_orders"),
            Self::OrderNotFound(_) | Self::SubscriptionNotFound(_) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            Self::Gateway(_) => (StatusCode::BAD_GATEWAY, "gateway_error"),
            Self::Write(WriteError::Closed) => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            Self::Write(WriteError::Store(_)) | Self::Read(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
            }
        }
    }

    fn message(&self) -> String {
        match self {
            // The cause is in the log; it may name files and paths.
            Self::Write(WriteError::Store(_)) | Self::Read(_) => {
                "the order could not be stored or read; it has been logged, try again later"
                    .to_owned()
            }
            Self::Write(WriteError::Closed) => {
                "the shop is shutting down; try again shortly".to_owned()
            }
            Self::Gateway(_) => format!("{self}; no order was made, try again later"),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ShopError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            Self::Read(_) => tracing::error!(error = %self, "shop storage failed"),
            Self::Gateway(_) => tracing::warn!(error = %self, "checkout session refused"),
            _ => {}
        }
        let body = json!({"error": {"code": code, "message": self.message()}});
        let mut response = (status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Self::TooManyOrders { retry_after } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after.into());
        }
        response
    }
}
