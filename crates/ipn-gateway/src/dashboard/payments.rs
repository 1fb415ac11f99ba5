//! `/dashboard/payments`: test-mode payments (a page each, with Refund,
//! Chargeback, Cancel reversal and Complete buttons that run the payment
//! operations the API runs); the list helpers the subscriptions list shares.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use ipn_core::id::{MerchantId, PaymentId};
use ipn_core::money::Money;
use serde::Deserialize;
use serde_json::Value;

use super::html::{self, Done, Section, badge, esc, money, query, rfc3339};
use super::{Poster, Viewer, blocking, form, given};
use crate::http::payment_refused;
use crate::http::{ApiError, AppState};
use crate::model::StoredPayment;
use crate::processor::payments::PaymentDone;
use crate::processor::payments::{PaymentChange, PaymentRefusal, PaymentWrite};
use crate::storage::StoredEvent;
use crate::storage::dashboard::{ObjectFilter, ObjectRow};
use crate::writes::{Write, WriteRequest, Written};

const PAGE: u32 = 50;
/// Seconds between refreshes of a payment's page (a pending payment clears,
/// a refund or chargeback comes through the API).
const LIVE_EVERY: u32 = 10;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    q: Option<String>,
    before: Option<i64>,
}

pub(super) fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("")
}

pub(super) fn amount(value: &Value, key: &str) -> String {
    money(value[key].as_i64().unwrap_or(0), text(value, "currency"))
}

/// A list's filter form and the pager's links.
pub(super) fn filters(action: &str, q: &ListQuery, statuses: &[&str]) -> String {
    let mut out = format!(
        "<div class=\"card\"><form method=\"get\" action=\"{action}\" class=\"filters\">\
         <label>Search<input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"id or invoice\" size=\"24\"></label>\
         <label>Status<select name=\"status\"><option value=\"\">Any</option>",
        esc(q.q.as_deref().unwrap_or(""))
    );
    let chosen = given(&q.status).unwrap_or_default();
    for s in statuses {
        let selected = if *s == chosen { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{s}\"{selected}>{s}</option>");
    }
    let _ = writeln!(
        out,
        "</select></label><button type=\"submit\" class=\"primary\">Filter</button> \
         <a href=\"{action}\">Clear</a></form></div>"
    );
    out
}

pub(super) fn pager(action: &str, q: &ListQuery, rows: &[ObjectRow], more: bool) -> String {
    let mut out = String::from("<div class=\"pager\">");
    let base = [
        ("q", q.q.as_deref().unwrap_or("")),
        ("status", q.status.as_deref().unwrap_or("")),
    ];
    if q.before.is_some() {
        let _ = write!(out, "<a href=\"{action}?{}\">← Newest</a>", query(&base));
    }
    if more && let Some(last) = rows.last() {
        let before = last.position.to_string();
        let mut pairs = base.to_vec();
        pairs.push(("before", &before));
        let _ = write!(
            out,
            "<a id=\"older\" href=\"{action}?{}\">Older →</a>",
            query(&pairs)
        );
    }
    out.push_str("</div>");
    out
}

pub(super) fn object_filter(viewer: &Viewer, q: &ListQuery) -> ObjectFilter {
    ObjectFilter {
        merchant: viewer.scope(),
        status: given(&q.status),
        search: given(&q.q),
        before: q.before,
        limit: PAGE,
    }
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let q = params.map(|Query(q)| q).unwrap_or_default();
    let filter = object_filter(&viewer, &q);
    let store = Arc::clone(&state.engine.store);
    let found = blocking(move || store.payment_rows(&filter)).await;
    let (rows, more) = match found {
        Ok(found) => found,
        Err(error) => return viewer.failed(error),
    };
    let mut main = String::from("<h1>Payments <span class=\"badge warn\">test mode</span></h1>\n");
    main.push_str(&filters(
        "/dashboard/payments",
        &q,
        &[
            "completed",
            "pending",
            "failed",
            "denied",
            "refunded",
            "partially_refunded",
            "reversed",
            "canceled_reversal",
        ],
    ));
    main.push_str("<div class=\"card\">");
    if rows.is_empty() {
        main.push_str("<p id=\"no-payments\">No payments match.</p>");
    } else {
        main.push_str("<table id=\"payments\"><thead><tr><th>Payment</th>");
        if viewer.is_admin() {
            main.push_str("<th>Merchant</th>");
        }
        main.push_str("<th>Status</th><th class=\"num\">Amount</th><th class=\"num\">Refunded</th><th>Invoice</th><th>Payer</th><th>Created</th></tr></thead><tbody>\n");
        for row in &rows {
            let p = &row.object;
            let parent = p["parent_id"]
                .as_str()
                .map(|parent| format!(" <small>of {}</small>", esc(parent)))
                .unwrap_or_default();
            let _ = write!(
                main,
                "<tr><td><a href=\"/dashboard/payments/{id}\"><code>{id}</code></a>{parent}</td>",
                id = esc(text(p, "id")),
            );
            if viewer.is_admin() {
                let _ = write!(main, "<td><code>{}</code></td>", esc(&row.merchant_id));
            }
            let _ = writeln!(
                main,
                "<td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                badge(text(p, "status")),
                amount(p, "amount"),
                amount(p, "refunded_amount"),
                esc(text(p, "invoice")),
                esc(text(&p["payer"], "email")),
                rfc3339(&p["created_at"]),
            );
        }
        main.push_str("</tbody></table>");
    }
    main.push_str(&pager("/dashboard/payments", &q, &rows, more));
    main.push_str("</div>\n");
    viewer.page(Section::Payments, StatusCode::OK, "Payments", &main)
}

/// The viewer's payment with its refunds and reversals and its events.
struct Found {
    stored: StoredPayment,
    children: Vec<ObjectRow>,
    history: Vec<StoredEvent>,
}

/// Whose payment `id` is, if the viewer may see it.
async fn owner(
    state: &AppState,
    viewer: &Viewer,
    id: PaymentId,
) -> Result<Option<MerchantId>, ApiError> {
    if let Some(merchant) = viewer.scope() {
        return Ok(Some(merchant));
    }
    let store = Arc::clone(&state.engine.store);
    let merchant = blocking(move || store.payment_merchant(&id.to_string())).await?;
    Ok(merchant.and_then(|m| MerchantId::parse(&m).ok()))
}

async fn find(state: &AppState, viewer: &Viewer, id: &str) -> Result<Option<Found>, ApiError> {
    let Ok(id) = PaymentId::parse(id) else {
        return Ok(None);
    };
    let Some(merchant) = owner(state, viewer, id).await? else {
        return Ok(None);
    };
    let store = Arc::clone(&state.engine.store);
    blocking(move || {
        let Some(stored) = store.payment(merchant, id)? else {
            return Ok(None);
        };
        let root = crate::fanout::payment_root(&stored.payment);
        let history = store.object_events(merchant, &root)?;
        let children = store.payment_children(&id.to_string())?;
        Ok(Some(Found {
            stored,
            children,
            history,
        }))
    })
    .await
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Done(done): Done,
) -> Response {
    let notice = done.and_then(|d| match d.as_str() {
        "refunds" => Some("Refunded: a payment.refunded event is on its way to the endpoints."),
        "reverse" => Some("Charged back: the payment is reversed and its event sent."),
        "cancel-reversal" => Some("Reversal canceled: the payment is settled again."),
        "complete" => Some("Completed: the pending payment cleared."),
        _ => None,
    });
    page(&state, &viewer, &id, notice, None).await
}

async fn page(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    notice: Option<&str>,
    problem: Option<(StatusCode, &str)>,
) -> Response {
    match find(state, viewer, id).await {
        Ok(Some(found)) => render(viewer, &found, notice, problem),
        Ok(None) => viewer.not_found("payment"),
        Err(error) => viewer.failed(error),
    }
}

fn render(
    viewer: &Viewer,
    found: &Found,
    notice: Option<&str>,
    problem: Option<(StatusCode, &str)>,
) -> Response {
    let payment = &found.stored.payment;
    let p = serde_json::to_value(payment).unwrap_or_default();
    let method = found.stored.method.view();
    let id = esc(&payment.id.to_string());
    let mut main = format!(
        "<p><a href=\"/dashboard/payments\">← Payments</a></p>\n\
         <h1>Payment <code>{id}</code> <span class=\"badge warn\">test mode</span></h1>\n"
    );
    main.push_str(&html::banners(notice, problem.map(|(_, p)| p)));
    // Not refreshed as the answer to a refused form: its URL is the POST's.
    let live = |name: &str| {
        if problem.is_none() {
            format!(" id=\"{name}\" data-live=\"{LIVE_EVERY}\"")
        } else {
            format!(" id=\"{name}\"")
        }
    };
    let method_text = match text(&method, "type") {
        "card" => format!("{} ···· {}", text(&method, "brand"), text(&method, "last4")),
        other => other.replace('_', " "),
    };
    let _ = writeln!(
        main,
        "<div class=\"card\"{live_facts}><dl class=\"facts\">\
         <dt>Status</dt><dd id=\"status\" data-status=\"{status}\">{status_badge}</dd>\
         <dt>Amount</dt><dd>{amount}</dd><dt>Refunded</dt><dd id=\"refunded\">{refunded}</dd>\
         <dt>Fee</dt><dd>{fee}</dd><dt>Invoice</dt><dd>{invoice}</dd><dt>Custom</dt><dd>{custom}</dd>\
         <dt>Payer</dt><dd>{payer_name} {payer_email}</dd><dt>Method</dt><dd>{method}</dd>\
         <dt>Merchant</dt><dd><code>{merchant}</code></dd><dt>Parent</dt><dd>{parent}</dd>\
         <dt>Subscription</dt><dd>{subscription}</dd>\
         <dt>Created</dt><dd>{created}</dd></dl></div>",
        live_facts = live("payment-facts"),
        status = esc(payment.status.as_str()),
        status_badge = badge(payment.status.as_str()),
        amount = amount(&p, "amount"),
        refunded = amount(&p, "refunded_amount"),
        fee = amount(&p, "fee"),
        invoice = esc(payment.invoice.as_deref().unwrap_or("—")),
        custom = esc(p["custom"].as_str().unwrap_or("—")),
        payer_name = esc(payment.payer.name.as_deref().unwrap_or("")),
        payer_email = esc(&payment.payer.email),
        method = esc(&method_text),
        merchant = esc(&payment.merchant_id.to_string()),
        parent = payment
            .parent_id
            .map(|parent| format!(
                "<a href=\"/dashboard/payments/{0}\"><code>{0}</code></a>",
                esc(&parent.to_string())
            ))
            .unwrap_or_else(|| "—".to_owned()),
        subscription = payment
            .subscription_id
            .map(|sub| format!(
                "<a href=\"/dashboard/subscriptions/{0}\"><code>{0}</code></a>",
                esc(&sub.to_string())
            ))
            .unwrap_or_else(|| "—".to_owned()),
        created = rfc3339(&p["created_at"]),
    );

    // The buttons refresh with the facts: Complete goes once the payment
    // cleared, Cancel reversal comes with a chargeback made through the API.
    // What is typed in the refund's amount stays (`live.js` leaves a region
    // with typed input alone).
    if payment.parent_id.is_none() {
        let button = |operation: &str, label: &str, class: &str| {
            let nonce = super::nonce();
            format!(
                "<form method=\"post\" action=\"/dashboard/payments/{id}/{operation}?nonce={nonce}\" class=\"inline\">\
                 <button type=\"submit\" class=\"{class}\" id=\"{operation}\">{label}</button></form>"
            )
        };
        let _ = writeln!(
            main,
            "<div{live_actions}><div class=\"card\"><h2>Test-mode actions</h2>\
             <form method=\"post\" action=\"/dashboard/payments/{id}/refunds?nonce={nonce}\" class=\"inline\">\
             <label>Refund <input type=\"text\" name=\"amount\" inputmode=\"decimal\" size=\"8\" \
             placeholder=\"all left\"> {currency}</label>\
             <button type=\"submit\" class=\"primary\" id=\"refund\">Refund</button></form>{reverse}{cancel}{complete}\
             <p class=\"muted\">The same operations as <code>POST /v1/payments/{id}/…</code>: each commits \
             the payment with its events, which go to the merchant's endpoints.</p></div></div>",
            live_actions = live("payment-actions"),
            currency = esc(&payment.currency.to_string()),
            nonce = super::nonce(),
            reverse = button("reverse", "Chargeback", "danger"),
            cancel = if payment.status.as_str() == "reversed" {
                button("cancel-reversal", "Cancel reversal", "")
            } else {
                String::new()
            },
            complete = if payment.status.as_str() == "pending" {
                button("complete", "Complete", "")
            } else {
                String::new()
            },
        );
    }

    if !payment.items.is_empty() {
        main.push_str("<div class=\"card\"><h2>Items</h2><table><thead><tr><th>SKU</th><th>Item</th><th class=\"num\">Qty</th><th class=\"num\">Unit</th></tr></thead><tbody>");
        for item in p["items"].as_array().into_iter().flatten() {
            let _ = write!(
                main,
                "<tr><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(text(item, "sku")),
                esc(text(item, "name")),
                item["quantity"].as_i64().unwrap_or(0),
                money(
                    item["unit_amount"].as_i64().unwrap_or(0),
                    text(&p, "currency")
                ),
            );
        }
        main.push_str("</tbody></table></div>\n");
    }

    let _ = write!(
        main,
        "<div{}><div class=\"card\"><h2>Refunds and reversals</h2>",
        live("payment-history")
    );
    if found.children.is_empty() {
        main.push_str("<p>None.</p>");
    } else {
        main.push_str("<table id=\"children\"><thead><tr><th>Payment</th><th>Status</th><th class=\"num\">Amount</th><th>Created</th></tr></thead><tbody>");
        for child in &found.children {
            let c = &child.object;
            let _ = write!(
                main,
                "<tr><td><a href=\"/dashboard/payments/{0}\"><code>{0}</code></a></td><td>{1}</td><td class=\"num\">{2}</td><td>{3}</td></tr>",
                esc(text(c, "id")),
                badge(text(c, "status")),
                amount(c, "amount"),
                rfc3339(&c["created_at"]),
            );
        }
        main.push_str("</tbody></table>");
    }
    main.push_str("</div>\n<div class=\"card\"><h2>Events</h2>");
    if found.history.is_empty() {
        main.push_str("<p>None.</p>");
    } else {
        main.push_str("<table id=\"history\"><thead><tr><th>Event</th><th>Type</th><th>Payment</th><th>Status</th><th>Created</th></tr></thead><tbody>");
        for event in &found.history {
            let e: Value = serde_json::from_slice(&event.body).unwrap_or_default();
            let _ = write!(
                main,
                "<tr><td><a href=\"/dashboard/events/{0}\"><code>{0}</code></a></td><td>{1}</td><td><code>{2}</code></td><td>{3}</td><td>{4}</td></tr>",
                esc(&event.id.to_string()),
                esc(text(&e, "type")),
                esc(text(&e["data"], "id")),
                badge(text(&e["data"], "status")),
                rfc3339(&e["created_at"]),
            );
        }
        main.push_str("</tbody></table>");
    }
    main.push_str("</div></div>\n");
    let status = problem.map(|(s, _)| s).unwrap_or(StatusCode::OK);
    viewer.page(Section::Payments, status, "Payment", &main)
}

/// `POST /dashboard/payments/{id}/{refunds|reverse|cancel-reversal|complete}`.
pub async fn act(
    State(state): State<AppState>,
    Poster(viewer): Poster,
    Path((id, operation)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let found = match find(&state, &viewer, &id).await {
        Ok(Some(found)) => found,
        Ok(None) => return viewer.not_found("payment"),
        Err(error) => return viewer.failed(error),
    };
    let payment = &found.stored.payment;
    let change = match operation.as_str() {
        "complete" => PaymentChange::Complete,
        "reverse" => PaymentChange::Reverse,
        "cancel-reversal" => PaymentChange::CancelReversal,
        "refunds" => {
            let text = form(&body).remove("amount").unwrap_or_default();
            let text = text.trim();
            if text.is_empty() {
                PaymentChange::Refund { amount: None }
            } else {
                match Money::parse_decimal(text, payment.currency) {
                    Ok(amount) => PaymentChange::Refund {
                        amount: Some(amount.minor()),
                    },
                    Err(e) => {
                        let problem = format!("amount: {e}");
                        return page(
                            &state,
                            &viewer,
                            &id,
                            None,
                            Some((StatusCode::BAD_REQUEST, &problem)),
                        )
                        .await;
                    }
                }
            }
        }
        _ => return viewer.not_found("payment operation"),
    };
    match operate(&state, payment.merchant_id, payment.id, change).await {
        Ok(()) => html::see_other(&format!(
            "/dashboard/payments/{}?done={operation}",
            payment.id
        )),
        Err(error) if error.status.is_client_error() => {
            page(
                &state,
                &viewer,
                &id,
                None,
                Some((error.status, &error.message)),
            )
            .await
        }
        Err(error) => viewer.failed(error),
    }
}

/// The API's answer, unused: a dashboard write has no Idempotency-Key.
fn no_answer(_: Result<&PaymentDone, &PaymentRefusal>) -> (u16, Vec<u8>) {
    (200, Vec::new())
}

/// Commits a payment operation as `POST /v1/payments/{id}/{operation}`
/// does, schedules its events, and refuses with the API's message.
async fn operate(
    state: &AppState,
    merchant_id: MerchantId,
    payment_id: PaymentId,
    change: PaymentChange,
) -> Result<(), ApiError> {
    let engine = &state.engine;
    let write = PaymentWrite {
        merchant_id,
        payment_id,
        change,
        subscribers: engine.directory.subscribers(merchant_id),
        now: engine.clock.now(),
        respond: no_answer,
    };
    let request = WriteRequest {
        write: Write::Payment(Box::new(write)),
        idempotency: None,
    };
    match engine.writer.write(request).await? {
        Written::Payment(done) => {
            engine.schedule_events(&done.events);
            Ok(())
        }
        Written::PaymentRefused(refusal) => Err(payment_refused(&refusal)),
        other => Err(ApiError::internal(format!(
            "unexpected result of a payment write: {other:?}"
        ))),
    }
}
