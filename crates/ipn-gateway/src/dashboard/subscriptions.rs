//! `/dashboard/subscriptions`: the list, and a subscription's page (its
//! plan and where it stands, its period payments, its events) with the
//! Cancel buttons, which run the step `POST /v1/subscriptions/{id}/cancel`
//! runs.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use ipn_core::id::{MerchantId, SubscriptionId};
use ipn_core::subscription::{Subscription, SubscriptionStatus};
use serde_json::Value;

use super::html::{self, Done, Section, badge, esc, query, rfc3339, when_at};
use super::payments::{ListQuery, amount, filters, object_filter, pager, text};
use super::{Poster, Viewer, blocking, form};
use crate::http::subscription_refused;
use crate::http::{ApiError, AppState};
use crate::model::StoredSubscription;
use crate::processor::subscriptions::{SubscriptionChange, SubscriptionWrite};
use crate::storage::dashboard::{HistoryRow, ObjectRow};
use crate::writes::{Write, WriteRequest, Written};

/// Seconds between refreshes of a subscription's page (billing acts on the
/// gateway clock, which a test clock can move at any time).
const LIVE_EVERY: u32 = 10;
/// How many of a subscription's newest events its page lists (a
/// subscription billed for years has thousands); the events list has all.
const HISTORY: u32 = 100;

/// "month", "3 months".
fn every(count: u64, interval: &str) -> String {
    if count == 1 {
        interval.to_owned()
    } else {
        format!("{count} {interval}s")
    }
}

/// "2 / 12", "2 / ∞" (billed until canceled).
fn cycles(paid: u64, total: Option<u64>) -> String {
    match total {
        Some(total) => format!("{paid} / {total}"),
        None => format!("{paid} / ∞"),
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
    let found = blocking(move || store.subscription_rows(&filter)).await;
    let (rows, more) = match found {
        Ok(found) => found,
        Err(error) => return viewer.failed(error),
    };
    let mut main = String::from("<h1>Subscriptions</h1>\n");
    main.push_str(&filters(
        "/dashboard/subscriptions",
        &q,
        &["trialing", "active", "past_due", "canceled", "expired"],
    ));
    main.push_str("<div class=\"card\">");
    if rows.is_empty() {
        main.push_str("<p id=\"no-subscriptions\">No subscriptions match.</p>");
    } else {
        main.push_str("<table id=\"subscriptions\"><thead><tr><th>Subscription</th>");
        if viewer.is_admin() {
            main.push_str("<th>Merchant</th>");
        }
        main.push_str("<th>Status</th><th class=\"num\">Amount</th><th>Every</th><th class=\"num\">Cycles</th><th>Paid through</th><th>Invoice</th><th>Payer</th></tr></thead><tbody>\n");
        for row in &rows {
            let s = &row.object;
            let _ = write!(
                main,
                "<tr><td><a href=\"/dashboard/subscriptions/{0}\"><code>{0}</code></a></td>",
                esc(text(s, "id"))
            );
            if viewer.is_admin() {
                let _ = write!(main, "<td><code>{}</code></td>", esc(&row.merchant_id));
            }
            let status = if s["cancel_at_period_end"].as_bool() == Some(true) {
                format!(
                    "{} <small>cancels at period end</small>",
                    badge(text(s, "status"))
                )
            } else {
                badge(text(s, "status"))
            };
            let _ = writeln!(
                main,
                "<td>{status}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                amount(s, "amount"),
                esc(&every(
                    s["interval_count"].as_u64().unwrap_or(1),
                    text(s, "interval")
                )),
                esc(&cycles(
                    s["cycles_paid"].as_u64().unwrap_or(0),
                    s["total_cycles"].as_u64()
                )),
                rfc3339(&s["paid_through"]),
                esc(text(s, "invoice")),
                esc(text(&s["payer"], "email")),
            );
        }
        main.push_str("</tbody></table>");
    }
    main.push_str(&pager("/dashboard/subscriptions", &q, &rows, more));
    main.push_str("</div>\n");
    viewer.page(
        Section::Subscriptions,
        StatusCode::OK,
        "Subscriptions",
        &main,
    )
}

/// The viewer's subscription with its payments and newest events.
struct Found {
    stored: StoredSubscription,
    payments: Vec<ObjectRow>,
    history: Vec<HistoryRow>,
    /// Older events were left out of `history`.
    more_history: bool,
}

/// The viewer's subscription, or `None` (also for another merchant's).
async fn find(state: &AppState, viewer: &Viewer, id: &str) -> Result<Option<Found>, ApiError> {
    let Ok(id) = SubscriptionId::parse(id) else {
        return Ok(None);
    };
    let scope = viewer.scope();
    let store = Arc::clone(&state.engine.store);
    blocking(move || {
        let key = id.to_string();
        let merchant = match scope {
            Some(merchant) => Some(merchant),
            None => store
                .subscription_merchant(&key)?
                .and_then(|m| MerchantId::parse(&m).ok()),
        };
        let Some(merchant) = merchant else {
            return Ok(None);
        };
        let Some(stored) = store.subscription(merchant, id)? else {
            return Ok(None);
        };
        let merchant = merchant.to_string();
        let payments = store.subscription_payments(&merchant, &key)?;
        // Its payments' events too: their object is the subscription.
        let (history, more_history) = store.object_history(&merchant, &key, HISTORY)?;
        Ok(Some(Found {
            stored,
            payments,
            history,
            more_history,
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
    let canceled = done.is_some_and(|d| d == "canceled");
    match find(&state, &viewer, &id).await {
        Ok(Some(found)) => {
            // Said from where it stands now, whichever button was pressed.
            let notice = canceled.then(|| cancel_notice(&found.stored.subscription));
            render(&viewer, &found, notice.as_deref(), None)
        }
        Ok(None) => viewer.not_found("subscription"),
        Err(error) => viewer.failed(error),
    }
}

fn cancel_notice(sub: &Subscription) -> String {
    match sub.paid_through {
        Some(until) if sub.status == SubscriptionStatus::Canceled && sub.cancel_at_period_end => {
            format!(
                "Canceled; access lasts until {}. No further charges.",
                when_at(until)
            )
        }
        _ => "Canceled now: access has ended.".to_owned(),
    }
}

/// The page as the answer to a refused cancel (at the POST's URL, so not
/// refreshed: a GET there is no page).
async fn refused_page(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    problem: (StatusCode, &str),
) -> Response {
    match find(state, viewer, id).await {
        Ok(Some(found)) => render(viewer, &found, None, Some(problem)),
        Ok(None) => viewer.not_found("subscription"),
        Err(error) => viewer.failed(error),
    }
}

fn render(
    viewer: &Viewer,
    found: &Found,
    notice: Option<&str>,
    problem: Option<(StatusCode, &str)>,
) -> Response {
    let stored = &found.stored;
    let sub = &stored.subscription;
    let id = esc(&sub.id.to_string());
    let live = |name: &str| {
        if problem.is_none() {
            format!(" id=\"{name}\" data-live=\"{LIVE_EVERY}\"")
        } else {
            format!(" id=\"{name}\"")
        }
    };
    let mut main = format!(
        "<p><a href=\"/dashboard/subscriptions\">← Subscriptions</a></p>\n\
         <h1>Subscription <code>{id}</code> <span class=\"badge warn\">test mode</span></h1>\n"
    );
    main.push_str(&html::banners(notice, problem.map(|(_, p)| p)));

    let status = sub.status.as_str();
    let ending = match (sub.status, sub.paid_through) {
        (SubscriptionStatus::Canceled, Some(until)) if sub.cancel_at_period_end => format!(
            " <small>canceled at period end: access until {}</small>",
            when_at(until)
        ),
        _ => String::new(),
    };
    let next = match sub.status {
        SubscriptionStatus::Canceled => "Access ends",
        _ => "Next billing",
    };
    let next_at = match sub.status {
        SubscriptionStatus::Expired => "—".to_owned(),
        _ => stored
            .next_action_at
            .map(when_at)
            .unwrap_or_else(|| "—".to_owned()),
    };
    let method = stored.method.view();
    let card = match text(&method, "type") {
        "card" => format!("{} ···· {}", text(&method, "brand"), text(&method, "last4")),
        other => other.replace('_', " "),
    };
    let trial = match sub.trial_days {
        0 => "none".to_owned(),
        1 => "1 day".to_owned(),
        days => format!("{days} days"),
    };
    let _ = writeln!(
        main,
        "<div class=\"card\"{live_facts}><dl class=\"facts\">\
         <dt>Status</dt><dd id=\"status\" data-status=\"{status}\">{status_badge}{ending}</dd>\
         <dt>Plan</dt><dd id=\"plan\">{plan} every {every}</dd>\
         <dt>Trial</dt><dd>{trial}</dd>\
         <dt>Cycles paid</dt><dd id=\"cycles\">{cycles}</dd>\
         <dt>Paid through</dt><dd id=\"paid-through\">{paid_through}</dd>\
         <dt>{next}</dt><dd id=\"next\">{next_at}</dd>\
         <dt>Failed attempts</dt><dd id=\"failed-attempts\">{failed}</dd>\
         <dt>Card on file</dt><dd id=\"card\">{card}</dd>\
         <dt>Payer</dt><dd>{payer_name} {payer_email}</dd>\
         <dt>Invoice</dt><dd>{invoice}</dd><dt>Custom</dt><dd>{custom}</dd>\
         <dt>Merchant</dt><dd><code>{merchant}</code></dd>\
         <dt>Created</dt><dd>{created}</dd></dl></div>",
        live_facts = live("subscription-facts"),
        status_badge = badge(status),
        plan = esc(&sub.amount().to_string()),
        every = esc(&every(u64::from(sub.interval_count), sub.interval.as_str())),
        cycles = esc(&cycles(
            u64::from(sub.cycles_paid),
            sub.total_cycles.map(u64::from)
        )),
        paid_through = sub
            .paid_through
            .map(when_at)
            .unwrap_or_else(|| "—".to_owned()),
        failed = stored.failed_attempts,
        card = esc(&card),
        payer_name = esc(sub.payer.name.as_deref().unwrap_or("")),
        payer_email = esc(&sub.payer.email),
        invoice = esc(sub.invoice.as_deref().unwrap_or("—")),
        custom = esc(sub.custom.as_ref().map(|c| c.as_str()).unwrap_or("—")),
        merchant = esc(&sub.merchant_id.to_string()),
        created = when_at(sub.created_at),
    );

    // As in the API, the admin looks but does not act for a merchant. The
    // buttons refresh with the facts: a cancel through the API takes them
    // away (a click on a stale one would only be refused).
    if !viewer.is_admin() {
        let _ = write!(main, "<div{}>", live("subscription-actions"));
        let button = |at_period_end: bool, label: &str, class: &str, button_id: &str| {
            format!(
                "<form method=\"post\" action=\"/dashboard/subscriptions/{id}/cancel?nonce={nonce}\" class=\"inline\">\
                 <input type=\"hidden\" name=\"at_period_end\" value=\"{at_period_end}\">\
                 <button type=\"submit\" class=\"{class}\" id=\"{button_id}\">{label}</button></form>",
                nonce = super::nonce(),
            )
        };
        match sub.status {
            SubscriptionStatus::Expired => {}
            // Canceled at period end, access not over yet: ending it now
            // brings the expiry forward.
            SubscriptionStatus::Canceled => {
                let _ = write!(
                    main,
                    "<div class=\"card\"><h2>Cancel</h2>{}\
                     <p class=\"muted\">Canceled at period end. The same step as \
                     <code>POST /v1/subscriptions/{id}/cancel</code> with <code>at_period_end</code> \
                     false: access ends at once.</p></div>",
                    button(false, "Cancel now", "danger", "cancel-now"),
                );
            }
            _ => {
                let _ = write!(
                    main,
                    "<div class=\"card\"><h2>Cancel</h2>{}{}\
                     <p class=\"muted\">The same step as <code>POST /v1/subscriptions/{id}/cancel</code>: \
                     at period end, no further charges and access until the paid period ends; now, access \
                     ends at once. Either sends <code>subscription.canceled</code> to the merchant's endpoints.</p></div>",
                    button(true, "Cancel at period end", "", "cancel-at-period-end"),
                    button(false, "Cancel now", "danger", "cancel-now"),
                );
            }
        }
        main.push_str("</div>\n");
    }

    let _ = write!(
        main,
        "<div{}><div class=\"card\"><h2>Payments</h2>",
        live("subscription-history")
    );
    if found.payments.is_empty() {
        main.push_str("<p id=\"no-payments\">None yet.</p>");
    } else {
        main.push_str("<table id=\"payments\"><thead><tr><th>Payment</th><th>Status</th><th class=\"num\">Amount</th><th class=\"num\">Refunded</th><th>Created</th></tr></thead><tbody>");
        for row in &found.payments {
            let p = &row.object;
            let parent = p["parent_id"]
                .as_str()
                .map(|parent| format!(" <small>of {}</small>", esc(parent)))
                .unwrap_or_default();
            let _ = write!(
                main,
                "<tr><td><a href=\"/dashboard/payments/{0}\"><code>{0}</code></a>{parent}</td><td>{1}</td>\
                 <td class=\"num\">{2}</td><td class=\"num\">{3}</td><td>{4}</td></tr>",
                esc(text(p, "id")),
                badge(text(p, "status")),
                amount(p, "amount"),
                amount(p, "refunded_amount"),
                rfc3339(&p["created_at"]),
            );
        }
        main.push_str("</tbody></table>");
    }
    main.push_str("</div>\n<div class=\"card\"><h2>Events</h2>");
    let everything = query(&[("q", &sub.id.to_string())]);
    if found.more_history {
        let _ = write!(
            main,
            "<p class=\"muted\" id=\"history-cut\">The newest {HISTORY}; \
             <a href=\"/dashboard/events?{everything}\">every event in the events list</a>.</p>"
        );
    }
    if found.history.is_empty() {
        main.push_str("<p>None.</p>");
    } else {
        main.push_str(&events_table(&found.history));
    }
    let _ = writeln!(
        main,
        "<p><a href=\"/dashboard/events?{everything}\">In the events list</a></p></div></div>"
    );
    let status = problem.map(|(s, _)| s).unwrap_or(StatusCode::OK);
    viewer.page(Section::Subscriptions, status, "Subscription", &main)
}

/// A subscription's events: the subscription's own and its payments'.
fn events_table(history: &[HistoryRow]) -> String {
    let mut out = String::from(
        "<table id=\"history\"><thead><tr><th>Event</th><th>Type</th><th>Object</th><th>Status</th><th>Created</th></tr></thead><tbody>",
    );
    for event in history {
        let e: Value = serde_json::from_slice(&event.body).unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td><a href=\"/dashboard/events/{0}\"><code>{0}</code></a></td><td>{1}</td><td><code>{2}</code></td><td>{3}</td><td>{4}</td></tr>",
            esc(&event.id),
            esc(text(&e, "type")),
            esc(text(&e["data"], "id")),
            badge(text(&e["data"], "status")),
            rfc3339(&e["created_at"]),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// `POST /dashboard/subscriptions/{id}/cancel` with `at_period_end=true|false`.
pub async fn cancel(
    State(state): State<AppState>,
    Poster(viewer): Poster,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let found = match find(&state, &viewer, &id).await {
        Ok(Some(found)) => found,
        Ok(None) => return viewer.not_found("subscription"),
        Err(error) => return viewer.failed(error),
    };
    let at_period_end = match form(&body).remove("at_period_end").as_deref() {
        Some("true") => true,
        Some("false") => false,
        _ => {
            let problem = (
                StatusCode::BAD_REQUEST,
                "at_period_end must be true or false",
            );
            return refused_page(&state, &viewer, &id, problem).await;
        }
    };
    let sub = &found.stored.subscription;
    match operate(&state, sub.merchant_id, sub.id, at_period_end).await {
        Ok(()) => html::see_other(&format!(
            "/dashboard/subscriptions/{}?done=canceled",
            sub.id
        )),
        Err(error) if error.status.is_client_error() => {
            refused_page(&state, &viewer, &id, (error.status, &error.message)).await
        }
        Err(error) => viewer.failed(error),
    }
}

/// Commits the cancel step as `POST /v1/subscriptions/{id}/cancel` does,
/// schedules its events, and refuses with the API's message.
async fn operate(
    state: &AppState,
    merchant_id: MerchantId,
    subscription_id: SubscriptionId,
    at_period_end: bool,
) -> Result<(), ApiError> {
    let engine = &state.engine;
    let write = SubscriptionWrite {
        merchant_id,
        subscription_id,
        change: SubscriptionChange::Cancel { at_period_end },
        subscribers: engine.directory.subscribers(merchant_id),
        now: engine.clock.now(),
        // A dashboard write has no Idempotency-Key to keep an answer for.
        respond: None,
    };
    let request = WriteRequest {
        write: Write::Subscription(Box::new(write)),
        idempotency: None,
    };
    match engine.writer.write(request).await? {
        Written::Subscription(done) => {
            engine.schedule_events(&done.events);
            Ok(())
        }
        Written::SubscriptionRefused(refusal) => Err(subscription_refused(&refusal)),
        other => Err(ApiError::internal(format!(
            "unexpected result of a subscription write: {other:?}"
        ))),
    }
}
