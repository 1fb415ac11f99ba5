//! `/v1/subscriptions` (merchant key): signup, cancel (now or at period
//! end), a new card; billing itself runs on the gateway clock (`billing.rs`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use ipn_core::billing::Plan;
use ipn_core::card::CardNumber;
use ipn_core::id::{MerchantId, SubscriptionId};
use ipn_core::payment::Payer;
use ipn_core::subscription::{Interval, Subscription, SubscriptionStatus};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::merchants::check_email;
use super::payments::Order;
use super::{ApiError, AppState, Caller, Idempotency, Start, json_response, parse_json};
use crate::model::Merchant;
use crate::model::PaymentMethod;
use crate::model::StoredSubscription;
use crate::processor::subscriptions::SubscriptionDone;
use crate::processor::subscriptions::{
    Respond, SubscriptionChange, SubscriptionRefusal, SubscriptionWrite,
};
use crate::writes::{Write, WriteRequest, Written};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSubscription {
    amount: i64,
    currency: String,
    interval: Interval,
    #[serde(default = "one")]
    interval_count: u32,
    #[serde(default)]
    trial_days: u32,
    #[serde(default)]
    total_cycles: Option<u32>,
    #[serde(default)]
    invoice: Option<String>,
    #[serde(default)]
    custom: Option<String>,
    payer: Payer,
    payment_method: CardRequest,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CardRequest {
    card_number: String,
}

/// Never the number itself, wherever a request is printed.
impl std::fmt::Debug for CardRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardRequest { card_number: *** }")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelRequest {
    #[serde(default)]
    at_period_end: bool,
}

/// The request's card, checked, as a card on file.
fn card(request: &CardRequest) -> Result<PaymentMethod, ApiError> {
    let card = CardNumber::parse(&request.card_number)
        .map_err(|e| ApiError::invalid(format!("payment_method.card_number: {e}")))?;
    Ok(card_on_file(&card))
}

/// A card on file: brand, last four and its test behaviour, never the number.
pub(super) fn card_on_file(card: &CardNumber) -> PaymentMethod {
    PaymentMethod::Card {
        brand: card.brand(),
        last4: card.last4().to_owned(),
        behaviour: card.behaviour(),
    }
}

/// A new subscription to `plan`, charging `order`'s amount each period, as
/// the writer's signup: the one way a subscription is made, from the API or
/// the checkout page. The order's items are not part of a subscription.
pub(super) fn new_subscription(
    merchant: &Merchant,
    order: Order,
    payer: Payer,
    plan: &Plan,
    method: PaymentMethod,
    now: OffsetDateTime,
) -> (SubscriptionId, SubscriptionChange) {
    let subscription = Subscription {
        id: SubscriptionId::generate(now),
        status: SubscriptionStatus::Active, // decided when written
        previous_status: None,
        merchant_id: merchant.id,
        receiver_email: merchant.receiver_email.clone(),
        payer,
        amount: order.amount.minor(),
        currency: order.amount.currency(),
        interval: plan.interval(),
        interval_count: plan.interval_count(),
        trial_days: plan.trial_days(),
        total_cycles: plan.total_cycles(),
        cycles_paid: 0,
        paid_through: None,
        cancel_at_period_end: false,
        invoice: order.invoice,
        custom: order.custom,
        created_at: now,
    };
    let id = subscription.id;
    let change = SubscriptionChange::Create {
        subscription: Box::new(subscription),
        method,
    };
    (id, change)
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let merchant_id = caller.merchant()?;
    let idem = match Idempotency::start(&state, &headers, caller, "POST /v1/subscriptions", &body)
        .await?
    {
        Start::Replay(first) => return Ok(first),
        Start::Proceed(idem) => idem,
    };
    let request: NewSubscription = parse_json(&body)?;
    // The same checks as a one-time payment's (amount, currency, invoice,
    // custom, payer), then the plan's.
    let order = Order::parse(
        Some(request.amount),
        &request.currency,
        request.invoice,
        request.custom,
        Vec::new(),
    )?;
    check_email("payer.email", &request.payer.email)?;
    super::payments::check_payer(&request.payer)?;
    let plan = Plan::new(
        request.interval,
        request.interval_count,
        request.trial_days,
        request.total_cycles,
    )
    .map_err(|e| ApiError::invalid(e.to_string()))?;
    let method = card(&request.payment_method)?;
    let merchant = state
        .engine
        .directory
        .merchant(merchant_id)
        .ok_or_else(ApiError::unauthorized)?;
    let now = state.engine.clock.now();
    let (id, change) = new_subscription(&merchant, order, request.payer, &plan, method, now);
    let respond: Respond = |outcome| answer(outcome, StatusCode::CREATED);
    write(&state, merchant_id, id, change, idem.as_ref(), respond).await
}

pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let merchant = caller.merchant()?;
    let id = parse_id(&id)?;
    let store = Arc::clone(&state.engine.store);
    let stored = tokio::task::spawn_blocking(move || store.subscription(merchant, id))
        .await
        .map_err(ApiError::internal)??
        .ok_or_else(|| ApiError::not_found("subscription"))?;
    let body = serde_json::to_vec(&view(&stored)).map_err(ApiError::internal)?;
    Ok(json_response(StatusCode::OK, body))
}

/// `POST /v1/subscriptions/{id}/{operation}`: `cancel`, `payment-method`.
pub async fn operate(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, operation)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let merchant_id = caller.merchant()?;
    if !["cancel", "payment-method"].contains(&operation.as_str()) {
        return Err(ApiError::not_found("subscription operation"));
    }
    let route = format!("POST /v1/subscriptions/{id}/{operation}");
    let idem = match Idempotency::start(&state, &headers, caller, &route, &body).await? {
        Start::Replay(first) => return Ok(first),
        Start::Proceed(idem) => idem,
    };
    let id = parse_id(&id)?;
    let change = if operation == "cancel" {
        let request: CancelRequest = parse_json(&body)?;
        SubscriptionChange::Cancel {
            at_period_end: request.at_period_end,
        }
    } else {
        let request: CardRequest = parse_json(&body)?;
        SubscriptionChange::ChangeMethod(card(&request)?)
    };
    let respond: Respond = |outcome| answer(outcome, StatusCode::OK);
    write(&state, merchant_id, id, change, idem.as_ref(), respond).await
}

/// Commits the step with the request's Idempotency-Key, schedules its
/// events' deliveries, and answers.
async fn write(
    state: &AppState,
    merchant_id: MerchantId,
    subscription_id: SubscriptionId,
    change: SubscriptionChange,
    idem: Option<&Idempotency>,
    respond: Respond,
) -> Result<Response, ApiError> {
    let engine = &state.engine;
    let now = engine.clock.now();
    let subscribers = engine.directory.subscribers(merchant_id);
    let write = SubscriptionWrite {
        merchant_id,
        subscription_id,
        change,
        subscribers,
        now,
        respond: Some(respond),
    };
    let request = WriteRequest {
        write: Write::Subscription(Box::new(write)),
        idempotency: idem.map(|i| i.key(crate::clock::to_millis(now), None)),
    };
    let (status, body) = match engine.writer.write(request).await? {
        Written::Subscription(done) => {
            engine.schedule_events(&done.events);
            respond(Ok(done.as_ref()))
        }
        Written::SubscriptionRefused(refusal) => respond(Err(&refusal)),
        Written::Replay(first) => return Idempotency::replay_of(idem, first),
        other => {
            return Err(ApiError::internal(format!(
                "unexpected result of a subscription write: {other:?}"
            )));
        }
    };
    let status = StatusCode::from_u16(status).map_err(ApiError::internal)?;
    Ok(json_response(status, body))
}

fn answer(
    outcome: Result<&SubscriptionDone, &SubscriptionRefusal>,
    status: StatusCode,
) -> (u16, Vec<u8>) {
    match outcome {
        Ok(done) => (
            status.as_u16(),
            serde_json::to_vec(&view(&done.row)).unwrap_or_default(),
        ),
        Err(refusal) => crate::http::subscription_refused(refusal).rendered(),
    }
}

/// A subscription as the API shows it: the object events carry, the card
/// on file, and when billing acts next.
fn view(stored: &StoredSubscription) -> Value {
    let mut value = serde_json::to_value(&stored.subscription).unwrap_or_default();
    value["payment_method"] = stored.method.view();
    value["next_billing_at"] = stored.next_action_at.map_or(Value::Null, |at| {
        json!(super::merchants::rfc3339(crate::clock::to_millis(at)))
    });
    value["failed_attempts"] = json!(stored.failed_attempts);
    value
}

fn parse_id(id: &str) -> Result<SubscriptionId, ApiError> {
    SubscriptionId::parse(id).map_err(|_| ApiError::not_found("subscription"))
}
