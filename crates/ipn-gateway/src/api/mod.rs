//! The HTTP API (`/v1`, JSON), the PayPal postback, and operations routes.
//!
//! Handlers are thin: parse the request into domain values, call one
//! function, map its outcome to a response. Every POST honours an
//! `Idempotency-Key`: the same key with the same body replays the first
//! answer; with a different body it is a 409.

mod checkout;
pub(crate) mod checkout_page;
mod endpoints;
mod events;
mod merchants;
mod openapi;
mod payments;
mod postback;
mod subscriptions;
pub(crate) mod system;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use sha2::Sha256;

pub use crate::http::{ApiError, AppState, Caller, FAILURE_LIMIT, caller_of, hash_key};
use crate::storage::IdempotentResponse;
use crate::writes::IdempotencyKey;
pub use merchants::rfc3339;

/// The API's routes, the postback and the customer's checkout page.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/merchants",
            post(merchants::create).get(merchants::list),
        )
        .route(
            "/v1/endpoints",
            post(endpoints::create).get(endpoints::list),
        )
        .route(
            "/v1/endpoints/{id}",
            get(endpoints::get_one).patch(endpoints::update),
        )
        .route("/v1/endpoints/{id}/disable", post(endpoints::disable))
        .route("/v1/endpoints/{id}/enable", post(endpoints::enable))
        .route(
            "/v1/endpoints/{id}/rotate-secret",
            post(endpoints::rotate_secret),
        )
        .route("/v1/endpoints/{id}/recover", post(endpoints::recover))
        .route("/v1/events", post(events::create).get(events::list))
        .route("/v1/events/{id}", get(events::get_one))
        .route("/v1/events/{id}/attempts", get(events::attempts))
        .route("/v1/events/{id}/resend", post(events::resend))
        .route("/v1/payments", post(payments::create))
        .route("/v1/payments/{id}", get(payments::get_one))
        .route("/v1/payments/{id}/{operation}", post(payments::operate))
        .route("/v1/checkout/sessions", post(checkout::create))
        .route("/v1/checkout/sessions/{id}", get(checkout::get_one))
        .route(
            "/checkout/{id}",
            get(checkout_page::show).post(checkout_page::pay),
        )
        .route("/v1/subscriptions", post(subscriptions::create))
        .route("/v1/subscriptions/{id}", get(subscriptions::get_one))
        .route(
            "/v1/subscriptions/{id}/{operation}",
            post(subscriptions::operate),
        )
        .route("/v1/test/clock/advance", post(system::advance_clock))
        .route("/cgi-bin/webscr", post(postback::verify))
        .route("/ipn/verify", post(postback::verify))
        .route("/healthz", get(system::health))
        .route("/metrics", get(system::metrics))
        .route("/openapi.json", get(openapi::spec))
}

/// Parses a JSON request body, with serde's message (it names the field
/// and position) in the 400. Every request body of the API is one JSON
/// object (`{}` where a route takes no fields), so an empty body, or an array
/// that serde would read into a struct by position, is refused rather than
/// taken for defaults.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(ApiError::invalid(
                "request body is empty; expected a JSON object ({} if there is nothing to say)",
            ));
        }
        Some(b'{') => {}
        Some(_) => return Err(ApiError::invalid("request body must be a JSON object")),
    }
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("request body: {e}")))
}

/// The body of a route that takes no fields: exactly `{}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// A page of a list: `{"data": […], "has_more": false}` (these lists are
/// short and returned whole).
pub fn list_response(data: impl serde::Serialize) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(&serde_json::json!({"data": data, "has_more": false}))
        .map_err(ApiError::internal)?;
    Ok(json_response(StatusCode::OK, body))
}

/// A JSON response with a status.
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

/// Whether a POST goes ahead, or answers a retry with the first answer.
#[derive(Debug)]
pub enum Start {
    Replay(Response),
    Proceed(Option<Idempotency>),
}

/// The request's `Idempotency-Key`, ready to store with a write.
#[derive(Debug, Clone)]
pub struct Idempotency {
    scope: String,
    key: String,
    request_hash: String,
}

impl Idempotency {
    const MAX_KEY: usize = 255;

    /// Reads the header; `None` when the request has none. The request is
    /// remembered by a keyed hash (HMAC-SHA256 with the gateway's own
    /// secret): a body can hold a card number, and a plain hash of one
    /// could be reversed by trying the few numbers left once its brand and
    /// last four digits are known.
    pub fn from_request(
        hash_key: &[u8],
        headers: &HeaderMap,
        caller: Caller,
        route: &str,
        body: &Bytes,
    ) -> Result<Option<Self>, ApiError> {
        let Some(value) = headers.get("idempotency-key") else {
            return Ok(None);
        };
        let key = value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= Self::MAX_KEY)
            .ok_or_else(|| {
                ApiError::invalid("Idempotency-Key must be 1 to 255 printable ASCII characters")
            })?;
        let mut hash = Hmac::<Sha256>::new_from_slice(hash_key).map_err(ApiError::internal)?;
        hash.update(route.as_bytes());
        hash.update(&[0]);
        hash.update(body);
        let request_hash = crate::http::hex(&hash.finalize().into_bytes());
        Ok(Some(Self {
            scope: caller.scope(),
            key: key.to_owned(),
            request_hash,
        }))
    }

    /// Reads the key and, if it was used before, the first answer.
    pub async fn start(
        state: &AppState,
        headers: &HeaderMap,
        caller: Caller,
        route: &str,
        body: &Bytes,
    ) -> Result<Start, ApiError> {
        let key = &state.idempotency_hash_key;
        let Some(idem) = Self::from_request(key, headers, caller, route, body)? else {
            return Ok(Start::Proceed(None));
        };
        match idem.earlier(state).await? {
            Some(first) => Ok(Start::Replay(first)),
            None => Ok(Start::Proceed(Some(idem))),
        }
    }

    /// The first answer, if this key was used before (read before doing work).
    pub async fn earlier(&self, state: &AppState) -> Result<Option<Response>, ApiError> {
        let store = Arc::clone(&state.engine.store);
        let (scope, key) = (self.scope.clone(), self.key.clone());
        let found = tokio::task::spawn_blocking(move || store.idempotent_response(&scope, &key))
            .await
            .map_err(ApiError::internal)??;
        found.map(|first| self.replay(first)).transpose()
    }

    /// Answers a retry with the first answer, or 409 if the body differs.
    pub fn replay(&self, first: IdempotentResponse) -> Result<Response, ApiError> {
        if first.request_hash != self.request_hash {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request",
            ));
        }
        let status = StatusCode::from_u16(first.status).unwrap_or(StatusCode::OK);
        let mut response = json_response(status, first.body);
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        Ok(response)
    }

    /// Answers with the first answer the writer found for this request's key
    /// (a concurrent twin committed first).
    pub fn replay_of(idem: Option<&Self>, first: IdempotentResponse) -> Result<Response, ApiError> {
        match idem {
            Some(idem) => idem.replay(first),
            None => Err(ApiError::internal(
                "a replay for a request without an Idempotency-Key",
            )),
        }
    }

    /// Stores the answer of a request whose effect was committed on its own
    /// (resend, recover, disable …); a concurrent twin that stored first wins.
    pub async fn remember(
        state: &AppState,
        idem: Option<&Self>,
        status: StatusCode,
        body: Vec<u8>,
    ) -> Result<Response, ApiError> {
        let Some(idem) = idem else {
            return Ok(json_response(status, body));
        };
        let now = state.engine.clock.now_ms();
        let request = crate::writes::WriteRequest {
            write: crate::writes::Write::Remember,
            idempotency: Some(idem.key(now, Some((status, body.clone())))),
        };
        match state.engine.writer.write(request).await? {
            crate::writes::Written::Replay(first) => idem.replay(first),
            _ => Ok(json_response(status, body)),
        }
    }

    /// The key to store with the write; `response` is the answer to replay
    /// (`None` when the write produces it: an ingested event's body).
    pub fn key(
        &self,
        now: crate::clock::Millis,
        response: Option<(StatusCode, Vec<u8>)>,
    ) -> IdempotencyKey {
        IdempotencyKey {
            scope: self.scope.clone(),
            key: self.key.clone(),
            request_hash: self.request_hash.clone(),
            response: response.map(|(status, body)| IdempotentResponse {
                request_hash: self.request_hash.clone(),
                status: status.as_u16(),
                body,
            }),
            now,
        }
    }
}
