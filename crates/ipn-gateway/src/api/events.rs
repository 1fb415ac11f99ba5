//! `/v1/events` (merchant key): ingest, list with a cursor, one event, its
//! attempts, resend.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use ipn_core::event::{Event, EventData, EventType};
use ipn_core::id::{EndpointId, EventId, MerchantId};
use serde::Deserialize;
use serde_json::json;

use super::{
    ApiError, AppState, Caller, Idempotency, Start, json_response, list_response, parse_json,
};
use crate::model::DeliveryFilter;
use crate::publish::{Published, publish};
use crate::storage::{EventQuery, StoredEvent};

/// Largest event body accepted: the 256 KiB payload limit.
pub const MAX_PAYLOAD: usize = 256 * 1024;
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEvent {
    #[serde(rename = "type")]
    event_type: String,
    /// Kept as sent: a platform's data is delivered byte for byte.
    data: Box<serde_json::value::RawValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    after: Option<String>,
    limit: Option<u32>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    delivery: Option<String>,
    /// Only the types this endpoint takes: what it would have been sent.
    endpoint_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Resend {
    endpoint_id: Option<String>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}

/// The caller's event, or 404 (also for another merchant's).
async fn owned(state: &AppState, merchant: MerchantId, id: &str) -> Result<StoredEvent, ApiError> {
    let Ok(id) = EventId::parse(id) else {
        return Err(ApiError::not_found("event"));
    };
    let store = Arc::clone(&state.engine.store);
    blocking(move || store.event(id))
        .await?
        .filter(|e| e.merchant_id == merchant)
        .ok_or_else(|| ApiError::not_found("event"))
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let merchant = caller.merchant()?;
    let idem = match Idempotency::start(&state, &headers, caller, "POST /v1/events", &body).await? {
        Start::Replay(first) => return Ok(first),
        Start::Proceed(idem) => idem,
    };
    if body.len() > MAX_PAYLOAD {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("events are limited to {MAX_PAYLOAD} bytes"),
        ));
    }
    let request: NewEvent = parse_json(&body)?;
    let event_type =
        EventType::parse(&request.event_type).map_err(|e| ApiError::invalid(e.to_string()))?;
    let data = EventData::parse_new(&event_type, request.data)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    check_owner(&data, merchant)?;
    let engine = &state.engine;
    let now = engine.clock.now();
    let event = Event {
        id: EventId::generate(now),
        event_type,
        created_at: now,
        livemode: false,
        sequence: 0, // assigned when committed
        data,
    };
    let key = idem
        .as_ref()
        .map(|i| i.key(crate::clock::to_millis(now), None));
    match publish(engine, merchant, event, key).await? {
        Published::New(ingested) => Ok(json_response(StatusCode::CREATED, ingested.body.to_vec())),
        Published::Replay(first) => Idempotency::replay_of(idem.as_ref(), first),
    }
}

/// A payment or subscription names its merchant: it must be the caller.
fn check_owner(data: &EventData, merchant: MerchantId) -> Result<(), ApiError> {
    let owner = match data {
        EventData::Payment(p) => Some(p.merchant_id),
        EventData::Subscription(s) => Some(s.merchant_id),
        EventData::Endpoint(_) => {
            return Err(ApiError::invalid(
                "endpoint.* events are sent by the gateway itself",
            ));
        }
        EventData::Other(_) => None,
    };
    match owner {
        Some(owner) if owner != merchant => Err(ApiError::invalid(format!(
            "data.merchant_id is {owner}, not the calling merchant {merchant}"
        ))),
        _ => Ok(()),
    }
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let merchant = caller.merchant()?;
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let after_seq = match &query.after {
        Some(after) => {
            owned(&state, merchant, after)
                .await
                .map_err(|_| ApiError::invalid(format!("after: no such event {after:?}")))?
                .seq
        }
        None => 0,
    };
    let delivery = match query.delivery.as_deref() {
        None => None,
        Some(text) => Some(
            DeliveryFilter::parse(text)
                .ok_or_else(|| ApiError::invalid(DeliveryFilter::EXPECTED))?,
        ),
    };
    let for_endpoint = match &query.endpoint_id {
        None => None,
        Some(id) => Some(
            EndpointId::parse(id)
                .ok()
                .and_then(|id| state.engine.directory.endpoint(id))
                .filter(|endpoint| endpoint.merchant_id == merchant)
                .ok_or_else(|| {
                    ApiError::invalid(format!("endpoint_id: no such endpoint {id:?}"))
                })?,
        ),
    };
    let store_query = EventQuery {
        merchant_id: Some(merchant),
        after_seq,
        limit,
        event_type: query.event_type,
        delivery,
        for_endpoint,
    };
    let store = Arc::clone(&state.engine.store);
    let (events, has_more) = blocking(move || store.list_events(&store_query)).await?;
    // The stored bodies are the exact JSON delivered: splice them in as is.
    let mut body = b"{\"data\":[".to_vec();
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&event.body);
    }
    body.extend_from_slice(format!("],\"has_more\":{has_more}}}").as_bytes());
    Ok(json_response(StatusCode::OK, body))
}

pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let event = owned(&state, caller.merchant()?, &id).await?;
    Ok(json_response(StatusCode::OK, event.body.to_vec()))
}

pub async fn attempts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let event = owned(&state, caller.merchant()?, &id).await?;
    let store = Arc::clone(&state.engine.store);
    let attempts = blocking(move || store.attempts(event.id)).await?;
    list_response(attempts)
}

pub async fn resend(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let merchant = caller.merchant()?;
    let stored = owned(&state, merchant, &id).await?;
    let route = format!("POST /v1/events/{id}/resend");
    let idem = match Idempotency::start(&state, &headers, caller, &route, &body).await? {
        Start::Replay(first) => return Ok(first),
        Start::Proceed(idem) => idem,
    };
    let request: Resend = parse_json(&body)?;
    let count = crate::http::resend_event(&state, &stored, request.endpoint_id.as_deref()).await?;
    let body = serde_json::to_vec(&json!({"scheduled": count})).map_err(ApiError::internal)?;
    Idempotency::remember(&state, idem.as_ref(), StatusCode::ACCEPTED, body).await
}
