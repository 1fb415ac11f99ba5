//! `/v1/endpoints` (merchant key): where a merchant's IPNs go.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use ipn_core::Dialect;
use ipn_core::id::{EndpointId, MerchantId};
use ipn_core::standard::WebhookSecret;
use serde::Deserialize;
use serde_json::{Value, json};

use super::merchants::rfc3339;
use super::{
    ApiError, AppState, Caller, Idempotency, NoFields, Start, json_response, list_response,
    parse_json,
};
use crate::clock::{from_millis, to_millis};
use crate::delivery::ssrf;
use crate::model::{DisabledReason, Endpoint, EventFilter, ROTATION_OVERLAP_MS};
use crate::writes::{Write, WriteRequest, Written};

const MAX_URL: usize = 2048;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEndpoint {
    url: String,
    #[serde(default)]
    dialect: Dialect,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    ordered: bool,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointChange {
    url: Option<String>,
    dialect: Option<Dialect>,
    events: Option<Vec<String>>,
    ordered: Option<bool>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Recover {
    #[serde(with = "time::serde::rfc3339")]
    since: time::OffsetDateTime,
}

fn view(e: &Endpoint, secret: bool) -> Value {
    let mut view = json!({
        "id": e.id,
        "object": "endpoint",
        "url": e.url,
        "dialect": e.dialect,
        "events": e.filter.entries(),
        "ordered": e.ordered,
        "description": e.description,
        "status": if e.is_enabled() { "enabled" } else { "disabled" },
        "disabled_reason": e.disabled.as_ref().map(|d| d.reason.as_str()),
        "failing_since": e.failing_since.map(rfc3339),
        "created_at": rfc3339(e.created_at),
    });
    if secret {
        view["secret"] = json!(e.secret.reveal());
    }
    view
}

/// Checks a URL the way a delivery will, so a bad one fails now, clearly.
async fn check_url(state: &AppState, text: &str) -> Result<String, ApiError> {
    if text.len() > MAX_URL {
        return Err(ApiError::invalid(format!(
            "url is longer than {MAX_URL} characters"
        )));
    }
    let url = url::Url::parse(text)
        .map_err(|e| ApiError::invalid(format!("url {text:?} is not a URL: {e}")))?;
    let engine = &state.engine;
    let check = ssrf::check_url(&engine.policy, engine.resolver.as_ref(), &url);
    tokio::time::timeout(engine.config.connect_timeout, check)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "url_refused",
                format!("{text:?}: its host did not resolve in time"),
            )
        })?
        .map_err(|refused| {
            ApiError::new(StatusCode::BAD_REQUEST, "url_refused", refused.to_string())
        })?;
    Ok(url.to_string())
}

fn filter(entries: &[String], dialect: Dialect) -> Result<EventFilter, ApiError> {
    EventFilter::parse(entries, dialect).map_err(|e| ApiError::invalid(e.to_string()))
}

/// The caller's endpoint, or 404 (also for another merchant's).
fn owned(state: &AppState, merchant: MerchantId, id: &str) -> Result<Arc<Endpoint>, ApiError> {
    EndpointId::parse(id)
        .ok()
        .and_then(|id| state.engine.directory.endpoint(id))
        .filter(|e| e.merchant_id == merchant)
        .ok_or_else(|| ApiError::not_found("endpoint"))
}

/// Commits a changed endpoint and updates the directory; answers with its view.
async fn save(
    state: &AppState,
    endpoint: Endpoint,
    status: StatusCode,
    show_secret: bool,
    idempotency: Option<&Idempotency>,
) -> Result<Response, ApiError> {
    let answer = serde_json::to_vec(&view(&endpoint, show_secret)).map_err(ApiError::internal)?;
    let now = state.engine.clock.now_ms();
    let request = WriteRequest {
        write: Write::SaveEndpoint(endpoint.clone()),
        idempotency: idempotency.map(|idem| idem.key(now, Some((status, answer.clone())))),
    };
    match state.engine.writer.write(request).await? {
        Written::Replay(first) => Idempotency::replay_of(idempotency, first),
        _ => {
            state.engine.directory.put_endpoint(endpoint);
            Ok(json_response(status, answer))
        }
    }
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let merchant = caller.merchant()?;
    let idem =
        match Idempotency::start(&state, &headers, caller, "POST /v1/endpoints", &body).await? {
            Start::Replay(first) => return Ok(first),
            Start::Proceed(idem) => idem,
        };
    let request: NewEndpoint = parse_json(&body)?;
    let url = check_url(&state, &request.url).await?;
    let filter = filter(&request.events, request.dialect)?;
    let now = state.engine.clock.now_ms();
    let endpoint = Endpoint {
        id: EndpointId::generate(from_millis(now)),
        merchant_id: merchant,
        url,
        dialect: request.dialect,
        filter,
        ordered: request.ordered,
        description: request.description,
        secret: WebhookSecret::generate(),
        previous_secret: None,
        disabled: None,
        failing_since: None,
        created_at: now,
    };
    save(&state, endpoint, StatusCode::CREATED, true, idem.as_ref()).await
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let merchant = caller.merchant()?;
    let data: Vec<Value> = state
        .engine
        .directory
        .endpoints_of(merchant)
        .iter()
        .map(|e| view(e, false))
        .collect();
    list_response(data)
}

pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let endpoint = owned(&state, caller.merchant()?, &id)?;
    let body = serde_json::to_vec(&view(&endpoint, false)).map_err(ApiError::internal)?;
    Ok(json_response(StatusCode::OK, body))
}

pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut endpoint = (*owned(&state, caller.merchant()?, &id)?).clone();
    let change: EndpointChange = parse_json(&body)?;
    if let Some(url) = change.url {
        endpoint.url = check_url(&state, &url).await?;
    }
    if let Some(dialect) = change.dialect {
        endpoint.dialect = dialect;
    }
    let entries = change.events.unwrap_or_else(|| endpoint.filter.entries());
    endpoint.filter = filter(&entries, endpoint.dialect)?;
    if let Some(ordered) = change.ordered {
        endpoint.ordered = ordered;
    }
    if let Some(description) = change.description {
        endpoint.description = description;
    }
    save(&state, endpoint, StatusCode::OK, false, None).await
}

pub async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let endpoint = owned(&state, caller.merchant()?, &id)?;
    let route = format!("POST /v1/endpoints/{id}/disable");
    let idem = match Idempotency::start(&state, &headers, caller, &route, &body).await? {
        Start::Replay(first) => return Ok(first),
        Start::Proceed(idem) => idem,
    };
    let NoFields {} = parse_json(&body)?;
    let engine = &state.engine;
    if endpoint.is_enabled() {
        let now = engine.clock.now_ms();
        engine
            .disable(endpoint.id, DisabledReason::Manual, now)
            .await?;
    }
    let endpoint = owned(&state, endpoint.merchant_id, &id)?;
    let answer = serde_json::to_vec(&view(&endpoint, false)).map_err(ApiError::internal)?;
    Idempotency::remember(&state, idem.as_ref(), StatusCode::OK, answer).await
}

pub async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut endpoint = (*owned(&state, caller.merchant()?, &id)?).clone();
    let route = format!("POST /v1/endpoints/{id}/enable");
    let idem = match Idempotency::start(&state, &headers, caller, &route, &body).await? {
        Start::Replay(first) => return Ok(first),
        Start::Proceed(idem) => idem,
    };
    let NoFields {} = parse_json(&body)?;
    endpoint.disabled = None;
    endpoint.failing_since = None;
    save(&state, endpoint, StatusCode::OK, false, idem.as_ref()).await
}

pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let route = format!("POST /v1/endpoints/{id}/rotate-secret");
    let idem = match Idempotency::start(&state, &headers, caller, &route, &body).await? {
        Start::Replay(first) => return Ok(first),
        Start::Proceed(idem) => idem,
    };
    let NoFields {} = parse_json(&body)?;
    let mut endpoint = (*owned(&state, caller.merchant()?, &id)?).clone();
    let now = state.engine.clock.now_ms();
    let old = std::mem::replace(&mut endpoint.secret, WebhookSecret::generate());
    endpoint.previous_secret = Some((old, now + ROTATION_OVERLAP_MS));
    save(&state, endpoint, StatusCode::OK, true, idem.as_ref()).await
}

pub async fn recover(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let endpoint = owned(&state, caller.merchant()?, &id)?;
    let route = format!("POST /v1/endpoints/{id}/recover");
    let idem = match Idempotency::start(&state, &headers, caller, &route, &body).await? {
        Start::Replay(first) => return Ok(first),
        Start::Proceed(idem) => idem,
    };
    if !endpoint.is_enabled() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "endpoint_disabled",
            "enable the endpoint before recovering its deliveries",
        ));
    }
    let request: Recover = parse_json(&body)?;
    let engine = &state.engine;
    let now = engine.clock.now_ms();
    let write = Write::Recover {
        endpoint_id: endpoint.id,
        since: to_millis(request.since),
        now,
    };
    let count = crate::publish::redeliver(engine, write, None).await?;
    let body = serde_json::to_vec(&json!({"recovered": count})).map_err(ApiError::internal)?;
    Idempotency::remember(&state, idem.as_ref(), StatusCode::ACCEPTED, body).await
}
