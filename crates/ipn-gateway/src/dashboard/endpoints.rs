//! `/dashboard/endpoints`: each endpoint with its health (success rate
//! over the last day, last error, circuit breaker, why it is disabled)
//! and its buttons: disable or enable, rotate the secret, recover failed
//! deliveries since a day.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use ipn_core::id::EndpointId;
use ipn_core::standard::WebhookSecret;

use super::html::{self, Done, Section, badge, esc, when};
use super::{Poster, Viewer, blocking, form};
use crate::delivery::breaker::ProbeAt;
use crate::http::{ApiError, AppState};
use crate::model::{DisabledReason, Endpoint, ROTATION_OVERLAP_MS};
use crate::storage::dashboard::Health;
use crate::writes::{Write, WriteRequest};

/// The window of the success rate.
const WINDOW_MS: i64 = 24 * 3600 * 1000;
/// Seconds between refreshes of the endpoints' health.
const LIVE_EVERY: u32 = 10;

pub async fn list(State(state): State<AppState>, viewer: Viewer, Done(done): Done) -> Response {
    let notice = done.and_then(|d| match d.as_str() {
        "disabled" => Some("Endpoint disabled: its pending deliveries are failed and recoverable."),
        "enabled" => Some("Endpoint enabled."),
        "recovered" => Some("Recover scheduled: the failed deliveries are pending again."),
        _ => None,
    });
    page(&state, &viewer, notice, None).await
}

fn visible(state: &AppState, viewer: &Viewer) -> Vec<Arc<Endpoint>> {
    let directory = &state.engine.directory;
    match viewer.scope() {
        Some(merchant) => directory.endpoints_of(merchant),
        None => directory
            .merchants()
            .iter()
            .flat_map(|m| directory.endpoints_of(m.id))
            .collect(),
    }
}

async fn page(
    state: &AppState,
    viewer: &Viewer,
    notice: Option<&str>,
    problem: Option<(StatusCode, &str)>,
) -> Response {
    let endpoints = visible(state, viewer);
    let engine = &state.engine;
    let now = engine.clock.now_ms();
    let store = Arc::clone(&engine.store);
    let ids: Vec<EndpointId> = endpoints.iter().map(|e| e.id).collect();
    let health = blocking(move || {
        ids.iter()
            .map(|id| store.endpoint_health(*id, now - WINDOW_MS))
            .collect::<Result<Vec<Health>, _>>()
    })
    .await;
    let health = match health {
        Ok(health) => health,
        Err(error) => return viewer.failed(error),
    };

    let mut main = String::from("<h1>Endpoints</h1>\n");
    main.push_str(&html::banners(notice, problem.map(|(_, p)| p)));
    // Health, breaker and state refresh in place; not as the answer to a
    // refused button, whose URL is the POST's.
    if problem.is_none() {
        let _ = write!(
            main,
            "<div id=\"endpoint-list\" data-live=\"{LIVE_EVERY}\">"
        );
    } else {
        main.push_str("<div id=\"endpoint-list\">");
    }
    if endpoints.is_empty() {
        main.push_str("<div class=\"card\"><p id=\"no-endpoints\">No endpoints yet: create one with <code>POST /v1/endpoints</code>.</p></div>");
    }
    let today = time::OffsetDateTime::now_utc().date();
    for (endpoint, health) in endpoints.iter().zip(&health) {
        let id = esc(&endpoint.id.to_string());
        let state_badge = match &endpoint.disabled {
            None => badge("enabled"),
            Some(d) => format!(
                "{} <small>{} since {}</small>",
                badge("disabled"),
                esc(reason(d.reason)),
                when(d.at)
            ),
        };
        let rate = if health.attempts == 0 {
            "no attempts in the last 24 h".to_owned()
        } else {
            format!(
                "<strong>{:.1} %</strong> of {} attempts in the last 24 h",
                f64::from(health.succeeded) * 100.0 / f64::from(health.attempts),
                health.attempts
            )
        };
        let breaker = match engine.breakers.probe_at(endpoint.id) {
            None => badge("closed"),
            Some(ProbeAt::Probing) => {
                format!("{} <small>a probe is under way</small>", badge("half-open"))
            }
            Some(ProbeAt::At(at)) if engine.breakers.is_open(endpoint.id, now) => {
                format!("{} <small>next probe {}</small>", badge("open"), when(at))
            }
            Some(ProbeAt::At(_)) => format!(
                "{} <small>the next attempt probes</small>",
                badge("half-open")
            ),
        };
        let last_error = health
            .last_error
            .as_ref()
            .map(|(error, at)| format!("{} <small>{}</small>", esc(error), when(*at)))
            .unwrap_or_else(|| "—".to_owned());
        let merchant = if viewer.is_admin() {
            let name = engine
                .directory
                .merchant(endpoint.merchant_id)
                .map(|m| m.name.clone())
                .unwrap_or_default();
            format!(
                "<dt>Merchant</dt><dd>{} <code>{}</code></dd>",
                esc(&name),
                esc(&endpoint.merchant_id.to_string())
            )
        } else {
            String::new()
        };
        let _ = write!(
            main,
            "<div class=\"card endpoint\" id=\"{id}\"><h2><code>{url}</code></h2>\
             <dl class=\"facts\"><dt>Id</dt><dd><code>{id}</code></dd>{merchant}\
             <dt>State</dt><dd class=\"state\">{state_badge}</dd>\
             <dt>Success rate</dt><dd class=\"rate\">{rate}</dd>\
             <dt>Last attempt</dt><dd>{last}</dd>\
             <dt>Last error</dt><dd class=\"last-error\">{last_error}</dd>\
             <dt>Failing since</dt><dd>{failing}</dd>\
             <dt>Circuit breaker</dt><dd class=\"breaker\">{breaker}</dd>\
             <dt>Deliveries</dt><dd>{pending} pending · {failed} failed (dead letter)</dd>\
             <dt>Dialect</dt><dd>{dialect}{ordered}</dd><dt>Events</dt><dd><code>{events}</code></dd>\
             <dt>Description</dt><dd>{description}</dd></dl><p>",
            url = esc(&endpoint.url),
            last = health
                .last_attempt_at
                .map(when)
                .unwrap_or_else(|| "—".to_owned()),
            failing = endpoint
                .failing_since
                .map(when)
                .unwrap_or_else(|| "—".to_owned()),
            pending = health.pending,
            failed = health.failed,
            dialect = endpoint.dialect.as_str(),
            ordered = if endpoint.ordered { ", ordered" } else { "" },
            events = {
                let entries = endpoint.filter.entries();
                if entries.is_empty() {
                    "*".to_owned()
                } else {
                    esc(&entries.join(", "))
                }
            },
            description = esc(&endpoint.description),
        );
        let action = |name: &str, label: &str, class: &str| {
            let nonce = super::nonce();
            format!(
                "<form method=\"post\" action=\"/dashboard/endpoints/{id}/{name}?nonce={nonce}\" class=\"inline\">\
                 <button type=\"submit\" class=\"{class}\" name=\"do\" value=\"{name}\">{label}</button></form>"
            )
        };
        if endpoint.is_enabled() {
            main.push_str(&action("disable", "Disable", "danger"));
        } else {
            main.push_str(&action("enable", "Enable", "primary"));
        }
        main.push_str(&action("rotate-secret", "Rotate secret", ""));
        if endpoint.is_enabled() {
            let nonce = super::nonce();
            let _ = write!(
                main,
                "<form method=\"post\" action=\"/dashboard/endpoints/{id}/recover?nonce={nonce}\" class=\"inline\">\
                 <label>failed since <input type=\"date\" name=\"since\" value=\"{}\" required></label>\
                 <button type=\"submit\">Recover</button></form>",
                today - time::Duration::days(7)
            );
        }
        main.push_str("</p></div>\n");
    }
    main.push_str("</div>\n");
    let status = problem.map(|(s, _)| s).unwrap_or(StatusCode::OK);
    viewer.page(Section::Endpoints, status, "Endpoints", &main)
}

fn reason(reason: DisabledReason) -> &'static str {
    match reason {
        DisabledReason::Manual => "disabled by hand",
        DisabledReason::Gone => "the endpoint answered 410 Gone",
        DisabledReason::Failing => "every attempt failed for five days",
    }
}

/// `POST /dashboard/endpoints/{id}/{disable|enable|rotate-secret|recover}`.
pub async fn act(
    State(state): State<AppState>,
    Poster(viewer): Poster,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(endpoint) = EndpointId::parse(&id)
        .ok()
        .and_then(|id| state.engine.directory.endpoint(id))
        .filter(|e| viewer.sees(e.merchant_id))
    else {
        return viewer.not_found("endpoint");
    };
    let result = match action.as_str() {
        "disable" => disable(&state, &endpoint).await.map(|()| "disabled"),
        "enable" => enable(&state, &endpoint).await.map(|()| "enabled"),
        "recover" => recover(&state, &endpoint, &body).await.map(|_| "recovered"),
        "rotate-secret" => {
            // A second rotation within a minute (a double click, a reload
            // of the answer) would drop the secret receivers still check
            // before anyone saw the one in between.
            let now = state.engine.clock.now_ms();
            let recently = endpoint
                .previous_secret
                .as_ref()
                .is_some_and(|(_, expires)| {
                    expires.saturating_sub(crate::model::ROTATION_OVERLAP_MS) > now - 60_000
                });
            if recently {
                return page(
                    &state,
                    &viewer,
                    None,
                    Some((
                        StatusCode::CONFLICT,
                        "This endpoint's secret was rotated less than a minute ago; \
                         rotating again now would drop the secret your receiver still uses.",
                    )),
                )
                .await;
            }
            return match rotate(&state, &endpoint).await {
                Ok(secret) => rotated(&viewer, &endpoint, &secret),
                Err(error) => viewer.failed(error),
            };
        }
        _ => return viewer.not_found("action"),
    };
    match result {
        Ok(done) => html::see_other(&format!("/dashboard/endpoints?done={done}")),
        Err(error) if error.status.is_client_error() => {
            page(&state, &viewer, None, Some((error.status, &error.message))).await
        }
        Err(error) => viewer.failed(error),
    }
}

/// What `POST /v1/endpoints/{id}/disable` does.
async fn disable(state: &AppState, endpoint: &Endpoint) -> Result<(), ApiError> {
    if !endpoint.is_enabled() {
        return Ok(());
    }
    let engine = &state.engine;
    let now = engine.clock.now_ms();
    Ok(engine
        .disable(endpoint.id, DisabledReason::Manual, now)
        .await?)
}

/// Commits a changed endpoint, then shows it in the directory (as the API's
/// `save` does).
async fn save(state: &AppState, endpoint: Endpoint) -> Result<(), ApiError> {
    let request = WriteRequest {
        write: Write::SaveEndpoint(endpoint.clone()),
        idempotency: None,
    };
    state.engine.writer.write(request).await?;
    state.engine.directory.put_endpoint(endpoint);
    Ok(())
}

/// What `POST /v1/endpoints/{id}/enable` does.
async fn enable(state: &AppState, endpoint: &Endpoint) -> Result<(), ApiError> {
    let mut endpoint = endpoint.clone();
    endpoint.disabled = None;
    endpoint.failing_since = None;
    save(state, endpoint).await
}

/// What `POST /v1/endpoints/{id}/rotate-secret` does; returns the new secret.
async fn rotate(state: &AppState, endpoint: &Endpoint) -> Result<String, ApiError> {
    let mut endpoint = endpoint.clone();
    let now = state.engine.clock.now_ms();
    let old = std::mem::replace(&mut endpoint.secret, WebhookSecret::generate());
    endpoint.previous_secret = Some((old, now + ROTATION_OVERLAP_MS));
    let secret = endpoint.secret.reveal();
    save(state, endpoint).await?;
    Ok(secret)
}

/// What `POST /v1/endpoints/{id}/recover` does, from midnight UTC of the
/// form's `since` day.
async fn recover(state: &AppState, endpoint: &Endpoint, body: &[u8]) -> Result<usize, ApiError> {
    if !endpoint.is_enabled() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "endpoint_disabled",
            "enable the endpoint before recovering its deliveries",
        ));
    }
    let since = form(body).remove("since").unwrap_or_default();
    let date = time::Date::parse(
        since.trim(),
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| ApiError::invalid("since must be a date, YYYY-MM-DD"))?;
    let engine = &state.engine;
    let write = Write::Recover {
        endpoint_id: endpoint.id,
        since: crate::clock::to_millis(date.midnight().assume_utc()),
        now: engine.clock.now_ms(),
    };
    Ok(crate::publish::redeliver(engine, write, None).await?)
}

/// The new secret, shown once (as the API shows it once).
fn rotated(viewer: &Viewer, endpoint: &Endpoint, secret: &str) -> Response {
    let main = format!(
        "<p><a href=\"/dashboard/endpoints\">← Endpoints</a></p><h1>Secret rotated</h1>\
         <div class=\"card\"><p>The new signing secret of <code>{}</code> ({}). It is shown \
         this once: copy it to the receiver now. The previous secret keeps signing too for 24 hours, \
         so the receiver can switch over.</p><p class=\"secret\"><code id=\"secret\">{}</code></p></div>",
        esc(&endpoint.id.to_string()),
        esc(&endpoint.url),
        esc(secret),
    );
    viewer.page(Section::Endpoints, StatusCode::OK, "Secret rotated", &main)
}
