//! `/v1/payments` (merchant key): test-mode payments, their refunds,
//! chargebacks and history. The outcome of a card payment is chosen by the
//! test card number (`ipn_core::card::TEST_CARDS`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use ipn_core::card::{CardNumber, ChargeAttempt};
use ipn_core::id::{MerchantId, PaymentId};
use ipn_core::money::{Currency, Money};
use ipn_core::payment::{Custom, Item, Payer, Payment, PaymentStatus, check_text};
use ipn_core::payment_flow::{InitialStatus, PendingReason};
use ipn_core::pricing;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::merchants::check_email;
use super::{ApiError, AppState, Caller, Idempotency, NoFields, Start, json_response, parse_json};
use crate::model::Merchant;
use crate::model::{PaymentMethod, StoredPayment};
use crate::processor::payments::PaymentDone;
use crate::processor::payments::{PaymentChange, PaymentRefusal, PaymentWrite, Respond};
use crate::writes::{Write, WriteRequest, Written};

/// PayPal's limit for `invoice`.
const MAX_INVOICE: usize = 127;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPayment {
    amount: Option<i64>,
    currency: String,
    #[serde(default)]
    invoice: Option<String>,
    #[serde(default)]
    custom: Option<String>,
    #[serde(default)]
    items: Vec<Item>,
    payer: Payer,
    payment_method: MethodRequest,
}

/// `{"card_number": "4242 4242 4242 4242"}` or `{"type": "bank_transfer"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MethodRequest {
    #[serde(rename = "type")]
    kind: Option<String>,
    card_number: Option<String>,
}

/// Never the number itself, wherever a request is printed.
impl std::fmt::Debug for MethodRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodRequest")
            .field("kind", &self.kind)
            .field("card_number", &self.card_number.as_ref().map(|_| "***"))
            .finish()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundRequest {
    amount: Option<i64>,
}

/// How a new payment is paid, and what its first charge does.
#[derive(Debug)]
pub(super) struct Method {
    method: PaymentMethod,
    initial: InitialStatus,
    pending_reason: Option<PendingReason>,
    disputed: bool,
}

impl Method {
    /// A one-time card payment: the test card number decides the outcome.
    pub(super) fn card(card: &CardNumber) -> Self {
        let outcome = card.behaviour().outcome(ChargeAttempt::OneTime);
        Self {
            method: PaymentMethod::Card {
                brand: card.brand(),
                last4: card.last4().to_owned(),
                behaviour: card.behaviour(),
            },
            initial: outcome.initial_status(),
            pending_reason: outcome.pending_reason(),
            disputed: outcome.reversed_after_completion(),
        }
    }
}

fn method(request: &MethodRequest) -> Result<Method, ApiError> {
    match (request.kind.as_deref(), &request.card_number) {
        (None | Some("card"), Some(number)) => {
            let card = CardNumber::parse(number)
                .map_err(|e| ApiError::invalid(format!("payment_method.card_number: {e}")))?;
            Ok(Method::card(&card))
        }
        (Some("bank_transfer"), None) => Ok(Method {
            method: PaymentMethod::BankTransfer,
            initial: InitialStatus::Pending,
            pending_reason: Some(PendingReason::Echeck),
            disputed: false,
        }),
        _ => Err(ApiError::invalid(
            "payment_method must be {\"card_number\": \"…\"} or {\"type\": \"bank_transfer\"}",
        )),
    }
}

/// What is being paid for, validated: the part of a request that a payment
/// and a checkout session share, so both refuse the same bad input.
#[derive(Debug, Clone)]
pub(super) struct Order {
    /// More than zero, in its currency; the items' total when there are items.
    pub amount: Money,
    pub invoice: Option<String>,
    pub custom: Option<Custom>,
    pub items: Vec<Item>,
}

impl Order {
    /// Checks the fields as `POST /v1/payments` takes them.
    pub(super) fn parse(
        amount: Option<i64>,
        currency: &str,
        invoice: Option<String>,
        custom: Option<String>,
        items: Vec<Item>,
    ) -> Result<Self, ApiError> {
        let currency: Currency = currency
            .parse()
            .map_err(|e| ApiError::invalid(format!("currency: {e}")))?;
        let amount = pricing::order_amount(amount, currency, &items)
            .map_err(|e| ApiError::invalid(format!("amount: {e}")))?;
        let custom = custom
            .map(Custom::parse)
            .transpose()
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        if let Some(invoice) = &invoice
            && (invoice.is_empty() || invoice.chars().count() > MAX_INVOICE)
        {
            return Err(ApiError::invalid(format!(
                "invoice must be 1 to {MAX_INVOICE} characters"
            )));
        }
        check_texts(&invoice, &custom, &items)?;
        Ok(Self {
            amount,
            invoice,
            custom,
            items,
        })
    }
}

/// The free text of an order holds no control character (a NUL in an
/// invoice would reach IPN forms, emails and pages); the error names the
/// field.
fn check_texts(
    invoice: &Option<String>,
    custom: &Option<Custom>,
    items: &[Item],
) -> Result<(), ApiError> {
    let invalid = |e: ipn_core::payment::ControlCharacter| ApiError::invalid(e.to_string());
    if let Some(invoice) = invoice {
        check_text("invoice", invoice).map_err(invalid)?;
    }
    if let Some(custom) = custom {
        check_text("custom", custom.as_str()).map_err(invalid)?;
    }
    for (index, item) in items.iter().enumerate() {
        let line = index + 1;
        check_text(&format!("items[{line}].sku"), &item.sku).map_err(invalid)?;
        check_text(&format!("items[{line}].name"), &item.name).map_err(invalid)?;
    }
    Ok(())
}

/// The payer's name and id as text fields ([`check_texts`]).
pub(super) fn check_payer(payer: &Payer) -> Result<(), ApiError> {
    for (field, value) in [("payer.name", &payer.name), ("payer.id", &payer.id)] {
        if let Some(value) = value {
            check_text(field, value).map_err(|e| ApiError::invalid(e.to_string()))?;
        }
    }
    Ok(())
}

/// A new payment of `order` by `payer`, as the writer's create operation:
/// the one way a payment is made, from the API or the checkout page.
pub(super) fn new_payment(
    merchant: &Merchant,
    order: Order,
    payer: Payer,
    method: Method,
    now: OffsetDateTime,
) -> (PaymentId, PaymentChange) {
    let payment = Payment {
        id: PaymentId::generate(now),
        parent_id: None,
        status: PaymentStatus::Pending, // decided by the outcome when written
        previous_status: None,
        amount: order.amount.minor(),
        fee: 0,
        currency: order.amount.currency(),
        refunded_amount: 0,
        merchant_id: merchant.id,
        receiver_email: merchant.receiver_email.clone(),
        payer,
        invoice: order.invoice,
        custom: order.custom,
        items: order.items,
        subscription_id: None,
        pending_reason: method.pending_reason.map(|r| r.as_str().to_owned()),
        reason_code: None,
        created_at: now,
    };
    let id = payment.id;
    let change = PaymentChange::Create {
        payment: Box::new(payment),
        method: method.method,
        initial: method.initial,
        disputed: method.disputed,
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
    let idem =
        match Idempotency::start(&state, &headers, caller, "POST /v1/payments", &body).await? {
            Start::Replay(first) => return Ok(first),
            Start::Proceed(idem) => idem,
        };
    let request: NewPayment = parse_json(&body)?;
    let order = Order::parse(
        request.amount,
        &request.currency,
        request.invoice,
        request.custom,
        request.items,
    )?;
    check_email("payer.email", &request.payer.email)?;
    check_payer(&request.payer)?;
    let method = method(&request.payment_method)?;
    let merchant = state
        .engine
        .directory
        .merchant(merchant_id)
        .ok_or_else(ApiError::unauthorized)?;
    let now = state.engine.clock.now();
    let (payment_id, change) = new_payment(&merchant, order, request.payer, method, now);
    write(
        &state,
        merchant_id,
        payment_id,
        change,
        idem.as_ref(),
        created,
    )
    .await
}

pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let merchant = caller.merchant()?;
    let id = parse_id(&id)?;
    let store = Arc::clone(&state.engine.store);
    let (stored, history) = tokio::task::spawn_blocking(move || {
        let Some(stored) = store.payment(merchant, id)? else {
            return Ok::<_, anyhow::Error>((None, Vec::new()));
        };
        // The events of its root object: its subscription's, or the
        // original payment's.
        let root = crate::fanout::payment_root(&stored.payment);
        let history = store.object_events(merchant, &root)?;
        Ok((Some(stored), history))
    })
    .await
    .map_err(ApiError::internal)??;
    let stored = stored.ok_or_else(|| ApiError::not_found("payment"))?;
    let mut view = view(&stored);
    view["history"] = history
        .iter()
        .filter_map(|e| serde_json::from_slice::<Value>(&e.body).ok())
        .map(|e| {
            json!({
                "event_id": e["id"],
                "type": e["type"],
                "sequence": e["sequence"],
                "created_at": e["created_at"],
                "payment_id": e["data"]["id"],
                "status": e["data"]["status"],
                "amount": e["data"]["amount"],
            })
        })
        .collect();
    let body = serde_json::to_vec(&view).map_err(ApiError::internal)?;
    Ok(json_response(StatusCode::OK, body))
}

/// `POST /v1/payments/{id}/{operation}`: `complete`, `fail`, `refunds`,
/// `reverse`, `cancel-reversal`.
pub async fn operate(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, operation)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let merchant_id = caller.merchant()?;
    let respond: Respond = match operation.as_str() {
        "refunds" => refunded,
        "complete" | "fail" | "reverse" | "cancel-reversal" => original,
        _ => return Err(ApiError::not_found("payment operation")),
    };
    let route = format!("POST /v1/payments/{id}/{operation}");
    let idem = match Idempotency::start(&state, &headers, caller, &route, &body).await? {
        Start::Replay(first) => return Ok(first),
        Start::Proceed(idem) => idem,
    };
    let id = parse_id(&id)?;
    let change = match operation.as_str() {
        "refunds" => {
            // An optional amount: `{}` refunds all that is left.
            let request: RefundRequest = parse_json(&body)?;
            PaymentChange::Refund {
                amount: request.amount,
            }
        }
        other => {
            let NoFields {} = parse_json(&body)?;
            match other {
                "complete" => PaymentChange::Complete,
                "fail" => PaymentChange::Fail,
                "reverse" => PaymentChange::Reverse,
                _ => PaymentChange::CancelReversal,
            }
        }
    };
    write(&state, merchant_id, id, change, idem.as_ref(), respond).await
}

/// 201 with the new payment.
pub(super) fn created(outcome: Result<&PaymentDone, &PaymentRefusal>) -> (u16, Vec<u8>) {
    answer(outcome, StatusCode::CREATED, |done| &done.rows[0])
}

/// 201 with the refund: the new payment object the operation made.
fn refunded(outcome: Result<&PaymentDone, &PaymentRefusal>) -> (u16, Vec<u8>) {
    answer(outcome, StatusCode::CREATED, |done| {
        done.rows.last().unwrap_or(&done.rows[0])
    })
}

/// 200 with the original payment after the change.
fn original(outcome: Result<&PaymentDone, &PaymentRefusal>) -> (u16, Vec<u8>) {
    answer(outcome, StatusCode::OK, |done| &done.rows[0])
}

fn answer(
    outcome: Result<&PaymentDone, &PaymentRefusal>,
    status: StatusCode,
    pick: impl Fn(&PaymentDone) -> &StoredPayment,
) -> (u16, Vec<u8>) {
    match outcome {
        Ok(done) => (
            status.as_u16(),
            serde_json::to_vec(&view(pick(done))).unwrap_or_default(),
        ),
        Err(refusal) => crate::http::payment_refused(refusal).rendered(),
    }
}

/// A payment as the API shows it: the object events carry, plus how it
/// was paid.
fn view(stored: &StoredPayment) -> Value {
    let mut value = serde_json::to_value(&stored.payment).unwrap_or_default();
    value["payment_method"] = stored.method.view();
    value
}

fn parse_id(id: &str) -> Result<PaymentId, ApiError> {
    PaymentId::parse(id).map_err(|_| ApiError::not_found("payment"))
}

/// Commits the operation with the request's Idempotency-Key (the answer
/// `respond` gives is remembered with it), schedules the events'
/// deliveries, and answers.
async fn write(
    state: &AppState,
    merchant_id: MerchantId,
    payment_id: PaymentId,
    change: PaymentChange,
    idem: Option<&Idempotency>,
    respond: Respond,
) -> Result<Response, ApiError> {
    let engine = &state.engine;
    let now = engine.clock.now();
    let write = payment_write(state, merchant_id, payment_id, change, now, respond);
    let request = WriteRequest {
        write: Write::Payment(Box::new(write)),
        idempotency: idem.map(|i| i.key(crate::clock::to_millis(now), None)),
    };
    let (status, body) = match engine.writer.write(request).await? {
        Written::Payment(done) => {
            state.engine.schedule_events(&done.events);
            respond(Ok(&done))
        }
        Written::PaymentRefused(refusal) => respond(Err(&refusal)),
        Written::Replay(first) => return Idempotency::replay_of(idem, first),
        other => {
            return Err(ApiError::internal(format!(
                "unexpected result of a payment write: {other:?}"
            )));
        }
    };
    let status = StatusCode::from_u16(status).map_err(ApiError::internal)?;
    Ok(json_response(status, body))
}

/// The writer's operation for `change`; its events go to the merchant's
/// endpoints enabled now.
pub(super) fn payment_write(
    state: &AppState,
    merchant_id: MerchantId,
    payment_id: PaymentId,
    change: PaymentChange,
    now: OffsetDateTime,
    respond: Respond,
) -> PaymentWrite {
    let subscribers = state.engine.directory.subscribers(merchant_id);
    PaymentWrite {
        merchant_id,
        payment_id,
        change,
        subscribers,
        now,
        respond,
    }
}
