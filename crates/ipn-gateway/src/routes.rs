//! Every route of the gateway in one router: the API's, the dashboard's
//! and the checkout page's, with what they share (a body limit, errors in
//! the shape of the route that answers).

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::http::{ApiError, AppState};
use crate::{api, dashboard};

/// Largest request body: the 256 KiB payload limit plus room for the envelope.
const MAX_BODY: usize = 256 * 1024 + 4096;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(api::router())
        .merge(dashboard::router())
        .fallback(api::system::not_found)
        .layer(axum::middleware::from_fn(own_errors))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Gives the answers axum makes itself in plain text (a body over the
/// limit, a method a route does not take, a path that is not UTF-8) the
/// shape of the route they answer: the API's JSON error, or for the
/// dashboard and the checkout page, an HTML page with the reason.
async fn own_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = request.uri().path();
    let kind = if path.starts_with("/dashboard") {
        Shape::Dashboard
    } else if path.starts_with("/checkout/") {
        Shape::CheckoutPage
    } else {
        Shape::Api
    };
    let response = next.run(request).await;
    let status = response.status();
    let ours = response.headers().get("content-type").is_some_and(|v| {
        let v = v.as_bytes();
        v.starts_with(b"application/json") || v.starts_with(b"text/html")
    });
    if ours || !status.is_client_error() {
        return response;
    }
    let allow = response.headers().get("allow").cloned();
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|body| String::from_utf8_lossy(&body).into_owned())
        .unwrap_or_default();
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            "payload_too_large",
            format!("request bodies are limited to {MAX_BODY} bytes"),
        ),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "method_not_allowed",
            "this route does not take that method",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::new(status, "unsupported_media_type", text.trim().to_owned())
        }
        _ => ApiError::new(status, "invalid_request", text.trim().to_owned()),
    };
    let mut answer = match kind {
        Shape::Api => error.into_response(),
        Shape::Dashboard => dashboard::html::message(None, status, "Refused", &error.message),
        Shape::CheckoutPage => api::checkout_page::error_page(error),
    };
    if let Some(allow) = allow {
        answer.headers_mut().insert("allow", allow);
    }
    answer
}

/// Who answers a path: the JSON API or a page.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Api,
    Dashboard,
    CheckoutPage,
}
