//! `/v1/merchants` (admin key): create a merchant, with its API key shown
//! once; list merchants.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use ipn_core::id::MerchantId;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    ApiError, AppState, Caller, Idempotency, Start, json_response, list_response, parse_json,
};
use crate::clock::from_millis;
use crate::http::{hash_key, new_api_key};
use crate::model::Merchant;
use crate::writes::{Write, WriteRequest, Written};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMerchant {
    name: String,
    receiver_email: String,
}

/// An address the shop's mailer can send to (`ipn_core::email::check`).
pub fn check_email(field: &str, email: &str) -> Result<(), ApiError> {
    ipn_core::email::check(email).map_err(|e| ApiError::invalid(format!("{field} {e}")))
}

fn view(merchant: &Merchant, api_key: Option<&str>) -> Value {
    let mut view = json!({
        "id": merchant.id,
        "object": "merchant",
        "name": merchant.name,
        "receiver_email": merchant.receiver_email,
        "created_at": rfc3339(merchant.created_at),
    });
    if let Some(key) = api_key {
        view["api_key"] = json!(key);
    }
    view
}

pub fn rfc3339(ms: crate::clock::Millis) -> String {
    from_millis(ms)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let idempotency =
        match Idempotency::start(&state, &headers, caller, "POST /v1/merchants", &body).await? {
            Start::Replay(first) => return Ok(first),
            Start::Proceed(idem) => idem,
        };
    let request: NewMerchant = parse_json(&body)?;
    let name = request.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::invalid("name must be 1 to 200 characters"));
    }
    check_email("receiver_email", &request.receiver_email)?;
    let engine = &state.engine;
    let now = engine.clock.now_ms();
    let api_key = new_api_key();
    let merchant = Merchant {
        id: MerchantId::generate(from_millis(now)),
        name: name.to_owned(),
        receiver_email: request.receiver_email,
        api_key_hash: hash_key(&api_key),
        created_at: now,
    };
    let answer =
        serde_json::to_vec(&view(&merchant, Some(&api_key))).map_err(ApiError::internal)?;
    // A replay does not show the key again: it is stored hashed only.
    let replayed = serde_json::to_vec(&view(&merchant, None)).map_err(ApiError::internal)?;
    let request = WriteRequest {
        write: Write::CreateMerchant(merchant.clone()),
        idempotency: idempotency
            .as_ref()
            .map(|i| i.key(now, Some((StatusCode::CREATED, replayed)))),
    };
    match engine.writer.write(request).await? {
        Written::Replay(first) => Idempotency::replay_of(idempotency.as_ref(), first),
        _ => {
            engine.directory.put_merchant(merchant);
            Ok(json_response(StatusCode::CREATED, answer))
        }
    }
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.admin()?;
    let data: Vec<Value> = state
        .engine
        .directory
        .merchants()
        .iter()
        .map(|m| view(m, None))
        .collect();
    list_response(data)
}
