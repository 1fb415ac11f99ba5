//! `/v1/checkout/sessions` (merchant key): hosted checkout sessions. The
//! session's `url` is the customer's page (`checkout_page.rs`); the rules
//! (expiry, paid once) are `crate::processor::checkout`'s. With `subscription` terms,
//! paying the session starts a subscription charging `amount` each period.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use ipn_core::billing::Plan;
use ipn_core::id::CheckoutSessionId;
use ipn_core::payment::Item;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::merchants::check_email;
use super::payments::Order;
use super::{ApiError, AppState, Caller, Idempotency, Start, json_response, parse_json, rfc3339};
use crate::clock::to_millis;
use crate::processor::checkout::{self, CheckoutSession};
use crate::writes::{Write, WriteRequest, Written};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSession {
    amount: Option<i64>,
    currency: String,
    #[serde(default)]
    invoice: Option<String>,
    #[serde(default)]
    custom: Option<String>,
    #[serde(default)]
    items: Vec<Item>,
    /// Prefills the page's email field; the customer may change it.
    #[serde(default)]
    customer_email: Option<String>,
    success_url: String,
    cancel_url: String,
    /// `{"interval", "interval_count", "trial_days", "total_cycles"}`: kept
    /// as JSON here so a bad plan is refused with a message naming it.
    #[serde(default)]
    subscription: Option<Value>,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let merchant_id = caller.merchant()?;
    let route = "POST /v1/checkout/sessions";
    let idem = match Idempotency::start(&state, &headers, caller, route, &body).await? {
        Start::Replay(first) => return Ok(first),
        Start::Proceed(idem) => idem,
    };
    let request: NewSession = parse_json(&body)?;
    let order = Order::parse(
        request.amount,
        &request.currency,
        request.invoice,
        request.custom,
        request.items,
    )?;
    if let Some(email) = &request.customer_email {
        check_email("customer_email", email)?;
    }
    for (field, url) in [
        ("success_url", &request.success_url),
        ("cancel_url", &request.cancel_url),
    ] {
        checkout::check_return_url(url).map_err(|e| ApiError::invalid(format!("{field} {e}")))?;
    }
    // `Plan` checks its terms with `Plan::new` as it is read.
    let plan = request
        .subscription
        .map(serde_json::from_value::<Plan>)
        .transpose()
        .map_err(|e| ApiError::invalid(format!("subscription: {e}")))?;
    let now = state.engine.clock.now();
    let session = CheckoutSession {
        id: CheckoutSessionId::generate(now),
        merchant_id,
        invoice: order.invoice,
        amount: order.amount,
        items: order.items,
        custom: order.custom,
        customer_email: request.customer_email,
        success_url: request.success_url,
        cancel_url: request.cancel_url,
        plan,
        created_at: now,
        expires_at: now + checkout::LIFETIME,
        payment_id: None,
        subscription_id: None,
        paid_at: None,
    };
    let answer = serde_json::to_vec(&view(&state, &session, now)).map_err(ApiError::internal)?;
    let request = WriteRequest {
        write: Write::CreateCheckoutSession(Box::new(session)),
        idempotency: idem
            .as_ref()
            .map(|i| i.key(to_millis(now), Some((StatusCode::CREATED, answer.clone())))),
    };
    match state.engine.writer.write(request).await? {
        Written::Replay(first) => Idempotency::replay_of(idem.as_ref(), first),
        _ => Ok(json_response(StatusCode::CREATED, answer)),
    }
}

pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let merchant = caller.merchant()?;
    let not_found = || ApiError::not_found("checkout session");
    let id = CheckoutSessionId::parse(&id).map_err(|_| not_found())?;
    let session = load(&state, id)
        .await?
        // Another merchant's session does not exist for this one.
        .filter(|s| s.merchant_id == merchant)
        .ok_or_else(not_found)?;
    let body = serde_json::to_vec(&view(&state, &session, state.engine.clock.now()))
        .map_err(ApiError::internal)?;
    Ok(json_response(StatusCode::OK, body))
}

/// A session from the store, whoever its merchant.
pub(super) async fn load(
    state: &AppState,
    id: CheckoutSessionId,
) -> Result<Option<CheckoutSession>, ApiError> {
    let store = Arc::clone(&state.engine.store);
    Ok(
        tokio::task::spawn_blocking(move || store.checkout_session(id))
            .await
            .map_err(ApiError::internal)??,
    )
}

/// A session as the API shows it, with its status at `now`.
fn view(state: &AppState, s: &CheckoutSession, now: OffsetDateTime) -> Value {
    let time = |at: OffsetDateTime| rfc3339(to_millis(at));
    json!({
        "id": s.id,
        "url": format!("{}/checkout/{}", state.public_url, s.id),
        "status": s.status(now).as_str(),
        "merchant_id": s.merchant_id,
        "invoice": s.invoice,
        "amount": s.amount.minor(),
        "currency": s.amount.currency(),
        "items": s.items,
        "custom": s.custom,
        "customer_email": s.customer_email,
        "success_url": s.success_url,
        "cancel_url": s.cancel_url,
        "mode": s.mode(),
        "subscription": s.plan,
        "payment_id": s.payment_id,
        "subscription_id": s.subscription_id,
        "created_at": time(s.created_at),
        "expires_at": time(s.expires_at),
        "paid_at": s.paid_at.map(time),
    })
}
