//! Resending an event, as the API and the dashboard both offer it.

use std::sync::Arc;

use axum::http::StatusCode;
use ipn_core::event::EventType;
use ipn_core::id::EndpointId;
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::storage::StoredEvent;
use crate::writes::Write;

/// What `POST /v1/events/{id}/resend` does, with the same refusals: the
/// deliveries to the chosen endpoint, or to every enabled endpoint of the
/// event's merchant that subscribes to its type, go back to pending.
pub async fn resend_event(
    state: &AppState,
    stored: &StoredEvent,
    endpoint_id: Option<&str>,
) -> Result<usize, ApiError> {
    // Only the type is read: an event stored before ingest checked its data
    // (a lone surrogate, 100,000 levels deep) can still be resent.
    let event: EventKind = serde_json::from_slice(&stored.body).map_err(ApiError::internal)?;
    let engine = &state.engine;
    let merchant = stored.merchant_id;
    let endpoints = match endpoint_id {
        Some(id) => {
            let endpoint = EndpointId::parse(id)
                .ok()
                .and_then(|id| engine.directory.endpoint(id))
                .filter(|e| e.merchant_id == merchant)
                .ok_or_else(|| ApiError::not_found("endpoint"))?;
            if !endpoint.is_enabled() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "endpoint_disabled",
                    "enable the endpoint before resending to it",
                ));
            }
            if !endpoint.wants(&event.event_type) {
                return Err(ApiError::invalid(format!(
                    "endpoint {} does not subscribe to {}",
                    endpoint.id, event.event_type
                )));
            }
            vec![endpoint.id]
        }
        None => engine
            .directory
            .endpoints_of(merchant)
            .iter()
            .filter(|e| e.is_enabled() && e.wants(&event.event_type))
            .map(|e| e.id)
            .collect(),
    };
    let write = Write::Resend {
        event_id: stored.id,
        endpoint_ids: endpoints,
        now: engine.clock.now_ms(),
    };
    Ok(crate::publish::redeliver(engine, write, Some(Arc::clone(&stored.body))).await?)
}

/// The one field of a stored event that a resend needs.
#[derive(Debug, Deserialize)]
struct EventKind {
    #[serde(rename = "type")]
    event_type: EventType,
}
