//! `/dashboard/events`: the list (type, delivery status, date range,
//! search, paging, optional live refresh) and one event's page: payload,
//! the headers its last attempt carried, deliveries, every attempt, and
//! Resend.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use ipn_core::Dialect;
use ipn_core::id::{EndpointId, EventId};
use ipn_core::standard::signature_header;
use serde::Deserialize;
use time::macros::format_description;

use super::html::{self, Done, Section, badge, esc, query, when, when_at};
use super::{Poster, Viewer, blocking, form, given};
use crate::clock::to_millis;
use crate::http::{ApiError, AppState};
use crate::model::{AttemptStatus, DeliveryFilter, Endpoint, ROTATION_OVERLAP_MS};
use crate::storage::StoredEvent;
use crate::storage::dashboard::EventSearch;

const PAGE: u32 = 50;
/// Seconds between refreshes of the live list.
const LIVE_EVERY: u32 = 5;
/// Seconds between refreshes of an event's page while a pending delivery's
/// attempt is due within [`SOON_MS`] (or under way)…
const SOON_EVERY: u32 = 3;
/// …and while every pending attempt is further off: a retry hours away
/// needs no polling every 3 s, and the page speeds up as it comes near.
const LATER_EVERY: u32 = 30;
const SOON_MS: i64 = 60_000;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(rename = "type")]
    event_type: Option<String>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    q: Option<String>,
    before: Option<i64>,
    live: Option<String>,
}

/// `YYYY-MM-DD` as milliseconds at its midnight, UTC.
fn day(text: &str) -> Option<i64> {
    let date = time::Date::parse(text, format_description!("[year]-[month]-[day]")).ok()?;
    Some(to_millis(date.midnight().assume_utc()))
}

const DAY_MS: i64 = 24 * 3600 * 1000;

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let q = params.map(|Query(q)| q).unwrap_or_default();
    let mut problems = Vec::new();
    let delivery = match given(&q.status).as_deref() {
        None => None,
        Some(text) => match DeliveryFilter::parse(text) {
            Some(filter) => Some(filter.as_str()),
            None => {
                problems
                    .push("Delivery status must be pending, retrying, delivered, failed or dead.");
                None
            }
        },
    };
    let mut date = |text: &Option<String>, shift: i64| match given(text) {
        None => None,
        Some(text) => match day(&text) {
            Some(ms) => Some(ms + shift),
            None => {
                problems.push("Dates are written YYYY-MM-DD.");
                None
            }
        },
    };
    let from = date(&q.from, 0);
    let until = date(&q.to, DAY_MS); // the whole "to" day is included
    let filter = EventSearch {
        merchant: viewer.scope(),
        event_type: given(&q.event_type),
        delivery,
        from,
        until,
        search: given(&q.q),
        before_seq: q.before,
        limit: PAGE,
    };
    let store = Arc::clone(&state.engine.store);
    let scope = viewer.scope();
    let found = blocking(move || Ok((store.event_rows(&filter)?, store.event_types(scope)?))).await;
    let ((rows, more), types) = match found {
        Ok(found) => found,
        Err(error) => return viewer.failed(error),
    };
    let live = q.live.as_deref() == Some("1") && q.before.is_none();

    let value = |v: &Option<String>| esc(v.as_deref().unwrap_or(""));
    let mut main = String::from("<h1>Events</h1>\n");
    for problem in problems {
        let _ = writeln!(main, "<div class=\"problem\">{}</div>", esc(problem));
    }
    main.push_str("<div class=\"card\"><form method=\"get\" action=\"/dashboard/events\" class=\"filters\" id=\"filters\">");
    let _ = write!(
        main,
        "<label>Search<input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"invoice, pay_…, evt_…\" size=\"24\"></label>",
        value(&q.q)
    );
    main.push_str("<label>Type<select name=\"type\"><option value=\"\">Any type</option>");
    let chosen = given(&q.event_type).unwrap_or_default();
    for t in &types {
        let selected = if *t == chosen { " selected" } else { "" };
        let _ = write!(main, "<option value=\"{0}\"{selected}>{0}</option>", esc(t));
    }
    main.push_str(
        "</select></label><label>Delivery<select name=\"status\"><option value=\"\">Any</option>",
    );
    let status = given(&q.status).unwrap_or_default();
    for filter in DeliveryFilter::ALL {
        let s = filter.as_str();
        let selected = if s == status { " selected" } else { "" };
        let label = match filter {
            DeliveryFilter::Failed => "failed (retrying or dead)",
            DeliveryFilter::Dead => "dead (no attempt left)",
            _ => s,
        };
        let _ = write!(main, "<option value=\"{s}\"{selected}>{label}</option>");
    }
    let _ = write!(
        main,
        "</select></label><label>From<input type=\"date\" name=\"from\" value=\"{}\"></label>\
         <label>To<input type=\"date\" name=\"to\" value=\"{}\"></label>",
        value(&q.from),
        value(&q.to)
    );
    if live {
        main.push_str("<input type=\"hidden\" name=\"live\" value=\"1\">");
    }
    main.push_str("<button type=\"submit\" class=\"primary\">Filter</button> <a href=\"/dashboard/events\">Clear</a></form></div>\n");

    let filters = |extra: &[(&str, &str)]| {
        let mut pairs = vec![
            ("q", q.q.as_deref().unwrap_or("")),
            ("type", q.event_type.as_deref().unwrap_or("")),
            ("status", q.status.as_deref().unwrap_or("")),
            ("from", q.from.as_deref().unwrap_or("")),
            ("to", q.to.as_deref().unwrap_or("")),
        ];
        pairs.extend_from_slice(extra);
        query(&pairs)
    };
    main.push_str("<div class=\"card\">");
    let _ = write!(
        main,
        "<p class=\"muted\">{} · <a id=\"live\" href=\"/dashboard/events?{}\">{}</a></p>",
        if live {
            format!("Live: new events and delivery states show every {LIVE_EVERY} s")
        } else {
            "Newest first".to_owned()
        },
        filters(&[("live", if live { "" } else { "1" })]),
        if live {
            "Stop live updates"
        } else {
            "Live updates"
        },
    );
    // Live, the rows and the pager refresh together in place (`live.js`):
    // the Older link follows the rows shown. Without script the page
    // reloads. The table is there even when empty, so the first event has
    // somewhere to appear.
    if live {
        let _ = write!(main, "<div id=\"event-list\" data-live=\"{LIVE_EVERY}\">");
    } else {
        main.push_str("<div id=\"event-list\">");
    }
    main.push_str("<table id=\"events\"><thead><tr><th>Event</th><th>Type</th>");
    if viewer.is_admin() {
        main.push_str("<th>Merchant</th>");
    }
    main.push_str(
        "<th>Object</th><th>Delivery</th><th class=\"num\">Endpoints</th><th>Created</th></tr></thead>",
    );
    main.push_str("<tbody id=\"event-rows\">\n");
    if rows.is_empty() {
        let columns = if viewer.is_admin() { 7 } else { 6 };
        let _ = write!(
            main,
            "<tr id=\"no-events\"><td colspan=\"{columns}\">No events match.</td></tr>"
        );
    }
    for row in &rows {
        let _ = write!(
            main,
            "<tr data-event=\"{id}\"><td><a href=\"/dashboard/events/{id}\"><code>{id}</code></a></td><td>{ty}</td>",
            id = esc(&row.id),
            ty = esc(&row.event_type),
        );
        if viewer.is_admin() {
            let _ = write!(main, "<td><code>{}</code></td>", esc(&row.merchant_id));
        }
        let _ = writeln!(
            main,
            "<td>{}</td><td>{}</td><td class=\"num\"><small>{} ok · {} pending · {} failed</small></td><td>{}</td></tr>",
            row.object_id
                .as_deref()
                .map(object_id_link)
                .unwrap_or_default(),
            badge(row.delivery_status()),
            row.delivered,
            row.pending,
            row.failed,
            when(row.created_at),
        );
    }
    main.push_str("</tbody></table>");
    main.push_str("<div class=\"pager\">");
    if q.before.is_some() {
        let _ = write!(
            main,
            "<a href=\"/dashboard/events?{}\">← Newest</a>",
            filters(&[])
        );
    }
    if more && let Some(last) = rows.last() {
        let before = last.seq.to_string();
        let _ = write!(
            main,
            "<a id=\"older\" href=\"/dashboard/events?{}\">Older →</a>",
            filters(&[("before", &before)])
        );
    }
    main.push_str("</div></div></div>\n");
    let bar = viewer.bar(Section::Events);
    let refresh = live.then_some(LIVE_EVERY);
    html::respond(
        StatusCode::OK,
        html::document(Some(&bar), "Events", &main, refresh),
    )
}

/// The viewer's event, or `None` (also for another merchant's).
async fn find(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
) -> Result<Option<StoredEvent>, ApiError> {
    let Ok(id) = EventId::parse(id) else {
        return Ok(None);
    };
    let store = Arc::clone(&state.engine.store);
    Ok(blocking(move || store.event(id))
        .await?
        .filter(|e| viewer.sees(e.merchant_id)))
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Done(done): Done,
) -> Response {
    let notice = done.and_then(|d| match d.as_str() {
        "resent" => Some("Resend scheduled: the deliveries are pending again and go out now."),
        _ => None,
    });
    page(&state, &viewer, &id, notice, None).await
}

/// The event's page, with a notice or a problem (and its status) on top.
async fn page(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    notice: Option<&str>,
    problem: Option<(StatusCode, &str)>,
) -> Response {
    match render(state, viewer, id, notice, problem).await {
        Ok(Some(response)) => response,
        Ok(None) => viewer.not_found("event"),
        Err(error) => viewer.failed(error),
    }
}

async fn render(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    notice: Option<&str>,
    problem: Option<(StatusCode, &str)>,
) -> Result<Option<Response>, ApiError> {
    let Some(stored) = find(state, viewer, id).await? else {
        return Ok(None);
    };
    let store = Arc::clone(&state.engine.store);
    let event_id = stored.id;
    let (attempts, deliveries) = blocking(move || {
        let attempts = store.attempts(event_id)?;
        let deliveries = store.delivery_rows(&event_id.to_string())?;
        Ok((attempts, deliveries))
    })
    .await?;
    // Data stored before ingest checked that it reads back (a lone
    // surrogate, 1e999) is shown as its stored text rather than failing the page.
    let value: Option<serde_json::Value> = serde_json::from_slice(&stored.body).ok();
    let pretty = match &value {
        Some(value) => serde_json::to_string_pretty(value).map_err(ApiError::internal)?,
        None => String::from_utf8_lossy(&stored.body).into_owned(),
    };
    let value = value.unwrap_or_default();
    let event_type = value["type"].as_str().unwrap_or("");
    let directory = &state.engine.directory;
    let id = esc(&stored.id.to_string());

    let mut main = format!(
        "<p><a href=\"/dashboard/events\">← Events</a></p>\n<h1>Event <code>{id}</code></h1>\n"
    );
    main.push_str(&html::banners(notice, problem.map(|(_, p)| p)));
    let merchant_name = directory
        .merchant(stored.merchant_id)
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let _ = writeln!(
        main,
        "<div class=\"card\"><dl class=\"facts\"><dt>Type</dt><dd>{ty}</dd>\
         <dt>Created</dt><dd>{created}</dd><dt>Merchant</dt><dd>{name} <code>{merchant}</code></dd>\
         <dt>Sequence</dt><dd>{sequence}</dd><dt>Object</dt><dd>{object}</dd></dl></div>",
        ty = esc(event_type),
        created = html::rfc3339(&value["created_at"]),
        name = esc(&merchant_name),
        merchant = esc(&stored.merchant_id.to_string()),
        sequence = esc(&value["sequence"].to_string()),
        object = object_link(&value),
    );

    // Resend: to every subscribed endpoint, or one.
    let endpoints = directory.endpoints_of(stored.merchant_id);
    let nonce = super::nonce();
    let _ = write!(
        main,
        "<div class=\"card\"><h2>Resend</h2><form method=\"post\" action=\"/dashboard/events/{id}/resend?nonce={nonce}\" class=\"inline\">\
         <select name=\"endpoint_id\"><option value=\"\">Every endpoint that subscribes to it</option>"
    );
    for e in endpoints.iter() {
        let _ = write!(
            main,
            "<option value=\"{0}\">{0} · {1}</option>",
            esc(&e.id.to_string()),
            esc(&e.url)
        );
    }
    let _ = writeln!(
        main,
        "</select><button type=\"submit\" class=\"primary\" id=\"resend\">Resend</button></form>\
         <p class=\"muted\">The same as <code>POST /v1/events/{id}/resend</code>: the deliveries go back \
         to pending and are attempted now; earlier attempts stay below.</p></div>",
    );

    main.push_str("<div class=\"card\"><h2>Payload</h2><pre id=\"payload\">");
    main.push_str(&esc(&pretty));
    main.push_str("</pre></div>\n");

    // Refreshed while a delivery is pending (and not as the answer to a
    // refused Resend, whose URL is the POST's), as often as its soonest
    // attempt calls for; the last refresh, with nothing pending, drops
    // `data-live` and ends them.
    let soonest = deliveries
        .iter()
        .filter(|d| d.is_pending())
        // No time set: being attempted now.
        .map(|d| d.next_attempt_at.unwrap_or(i64::MIN))
        .min();
    match soonest.filter(|_| problem.is_none()) {
        Some(at) => {
            let every = if at.saturating_sub(state.engine.clock.now_ms()) <= SOON_MS {
                SOON_EVERY
            } else {
                LATER_EVERY
            };
            let _ = write!(main, "<div id=\"delivery\" data-live=\"{every}\">");
        }
        None => main.push_str("<div id=\"delivery\">"),
    }
    main.push_str("<div class=\"card\" id=\"headers\"><h2>Signed headers</h2>");
    if deliveries.is_empty() {
        main.push_str("<p>No endpoint subscribed to this event when it was sent.</p>");
    }
    for delivery in &deliveries {
        let endpoint = EndpointId::parse(&delivery.endpoint_id)
            .ok()
            .and_then(|id| directory.endpoint(id));
        let last = attempts
            .iter()
            .rev()
            .find(|a| a.endpoint_id.to_string() == delivery.endpoint_id);
        let _ = write!(
            main,
            "<h3><code>{}</code> <small>{}</small></h3>",
            esc(&delivery.endpoint_id),
            esc(endpoint.as_ref().map(|e| e.url.as_str()).unwrap_or(""))
        );
        match last {
            None => main.push_str("<p class=\"muted\">Not attempted yet.</p>"),
            Some(attempt) => {
                let at = to_millis(attempt.attempted_at);
                let timestamp = at.div_euclid(1000);
                let signature = endpoint
                    .as_ref()
                    .map(|e| signature_at(e, &stored, at, timestamp))
                    .unwrap_or_else(|| "(endpoint unknown)".to_owned());
                let _ = write!(
                    main,
                    "<p class=\"muted\">As sent by attempt {} at {}.</p><pre>webhook-id: {}\nwebhook-timestamp: {}\nwebhook-signature: {}</pre>",
                    attempt.number,
                    when_at(attempt.attempted_at),
                    id,
                    timestamp,
                    esc(&signature),
                );
            }
        }
    }
    main.push_str("</div>\n");

    main.push_str("<div class=\"card\"><h2>Deliveries</h2>");
    if !deliveries.is_empty() {
        main.push_str("<table id=\"deliveries\"><thead><tr><th>Endpoint</th><th>Status</th><th class=\"num\">Attempts</th><th>Next attempt</th></tr></thead><tbody>");
        for d in &deliveries {
            let _ = write!(
                main,
                "<tr><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                esc(&d.endpoint_id),
                badge(&d.status),
                d.attempts,
                d.next_attempt_at.map(when).unwrap_or_default()
            );
        }
        main.push_str("</tbody></table>");
    } else {
        main.push_str("<p>None.</p>");
    }
    main.push_str("</div>\n<div class=\"card\"><h2>Attempts</h2>");
    if attempts.is_empty() {
        main.push_str("<p id=\"no-attempts\">None yet.</p>");
    } else {
        main.push_str("<table id=\"attempts\"><thead><tr><th>#</th><th>Endpoint</th><th>Result</th><th class=\"num\">HTTP</th><th class=\"num\">Duration</th><th>Error</th><th>At</th></tr></thead><tbody>\n");
        for a in &attempts {
            let status = match a.status {
                AttemptStatus::Succeeded => "succeeded",
                AttemptStatus::Failed => "failed",
            };
            let body = a
                .response_body
                .as_deref()
                .filter(|b| !b.is_empty())
                .map(|b| {
                    format!(
                        "<details><summary>response</summary><pre>{}</pre></details>",
                        esc(b)
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                main,
                "<tr class=\"attempt\"><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{} ms</td><td>{}{}</td><td>{}</td></tr>",
                a.number,
                esc(&a.endpoint_id.to_string()),
                badge(status),
                a.response_status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "—".to_owned()),
                a.duration_ms,
                esc(a.error.as_deref().unwrap_or("")),
                body,
                when_at(a.attempted_at),
            );
        }
        main.push_str("</tbody></table>");
    }
    main.push_str("</div></div>\n");
    let status = problem.map(|(s, _)| s).unwrap_or(StatusCode::OK);
    Ok(Some(viewer.page(Section::Events, status, "Event", &main)))
}

/// A link to the event's payment or subscription, or its object id as text.
fn object_link(event: &serde_json::Value) -> String {
    let id = event["data"]["id"].as_str().unwrap_or("");
    let object = event["data"]["object"].as_str().unwrap_or("");
    if object == "payment" || id.starts_with("pay_") {
        format!(
            "<a href=\"/dashboard/payments/{0}\"><code>{0}</code></a>",
            esc(id)
        )
    } else if id.is_empty() {
        "—".to_owned()
    } else {
        object_id_link(id)
    }
}

/// An object id, linked to its page when the dashboard has one (ingested
/// events carry the platform's own ids, which have none).
fn object_id_link(id: &str) -> String {
    let page = if id.starts_with("pay_") {
        "payments"
    } else if id.starts_with("sub_") {
        "subscriptions"
    } else {
        return format!("<code>{}</code>", esc(id));
    };
    format!(
        "<a href=\"/dashboard/{page}/{0}\"><code>{0}</code></a>",
        esc(id)
    )
}

/// The `webhook-signature` an attempt at `at` carried, recomputed: the
/// secrets that signed then are known unless the endpoint's secret was
/// rotated since (the rotated-out one is kept only for its overlap).
fn signature_at(endpoint: &Endpoint, event: &StoredEvent, at: i64, timestamp: i64) -> String {
    if endpoint.dialect == Dialect::Paypal {
        return "(covers the PayPal form body; not recomputed here)".to_owned();
    }
    if let Some((_, expires)) = &endpoint.previous_secret
        && at < expires - ROTATION_OVERLAP_MS
    {
        return "(signed with a secret rotated out since; not recomputable)".to_owned();
    }
    signature_header(
        &endpoint.signers(at),
        &event.id.to_string(),
        timestamp,
        &event.body,
    )
}

pub async fn resend(
    State(state): State<AppState>,
    Poster(viewer): Poster,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let stored = match find(&state, &viewer, &id).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return viewer.not_found("event"),
        Err(error) => return viewer.failed(error),
    };
    let chosen = form(&body).remove("endpoint_id").filter(|v| !v.is_empty());
    match crate::http::resend_event(&state, &stored, chosen.as_deref()).await {
        Ok(_) => html::see_other(&format!("/dashboard/events/{}?done=resent", stored.id)),
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
