//! Operations routes: health, metrics, the test clock, and the JSON 404.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::merchants::rfc3339;
use super::{ApiError, AppState, Caller, Idempotency, Start, json_response, parse_json};
use crate::clock::AdvanceError;
use crate::metrics::Gauges;

pub async fn health() -> Response {
    let body = json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")});
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let engine = &state.engine;
    let now = engine.clock.now_ms();
    let gauges = Gauges {
        scheduled: engine.scheduled(),
        parked: engine.parked(),
        oldest_due_age_ms: engine
            .oldest_due()
            .map_or(0, |due| u64::try_from(now - due).unwrap_or(0)),
    };
    (
        [("content-type", "text/plain; version=0.0.4")],
        engine.metrics.render(gauges),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: u64,
}

pub async fn advance_clock(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let route = "POST /v1/test/clock/advance";
    let idem = match Idempotency::start(&state, &headers, caller, route, &body).await? {
        Start::Replay(first) => return Ok(first),
        Start::Proceed(idem) => idem,
    };
    let request: Advance = parse_json(&body)?;
    let clock = &state.engine.clock;
    clock.advance(request.seconds).map_err(|e| match e {
        AdvanceError::NotATestClock => {
            ApiError::new(StatusCode::NOT_FOUND, "test_clock_off", e.to_string())
        }
        AdvanceError::TooFar { .. } => ApiError::invalid(e.to_string()),
    })?;
    let save = crate::writes::WriteRequest {
        write: crate::writes::Write::SaveClockOffset(clock.offset_ms()),
        idempotency: None,
    };
    state.engine.writer.write(save).await?;
    let body = json!({"now": rfc3339(clock.now_ms())});
    Idempotency::remember(
        &state,
        idem.as_ref(),
        StatusCode::OK,
        body.to_string().into_bytes(),
    )
    .await
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("route")
}
