//! One attempt: sign, POST, classify the answer, record it, decide what next.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use ipn_core::Dialect;
use ipn_core::event::{EndpointNotice, Event, EventData, EventType};
use ipn_core::id::EventId;
use ipn_core::paypal::{Sending, encode_event};
use ipn_core::standard::{WebhookHeaders, signature_header};

use super::breaker::Verdict;
use super::retry::parse_retry_after;
use super::{Engine, Job, Next, client, ssrf};
use crate::clock::{Millis, from_millis};
use crate::fanout;
use crate::metrics::Answer;
use crate::model::{Attempt, AttemptStatus, DisabledReason, Endpoint};
use crate::storage::{AttemptDone, DeliveryNext, EndpointHealth};
use crate::writes::{Write, WriteRequest};

/// What an endpoint did with one POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Delivered { status: u16, body: String },
    /// Any other answer.
    Rejected {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused or reset, timeout, TLS, refused address.
    NoAnswer { error: String },
}

impl Outcome {
    /// The kind of answer, for the attempt counters.
    fn answer(&self) -> Answer {
        match self {
            Self::Delivered { .. } => Answer::Delivered,
            Self::Rejected { .. } => Answer::Rejected,
            Self::NoAnswer { .. } => Answer::NoAnswer,
        }
    }
}

/// Runs one attempt, unless the endpoint's breaker parks the delivery.
pub(super) async fn run(engine: &Engine, job: Job) -> Next {
    let Some(endpoint) = engine.directory.endpoint(job.delivery.endpoint_id) else {
        return Next::Done;
    };
    if !endpoint.is_enabled() || engine.outdated(&job) {
        // Disabling failed its pending deliveries in the store already.
        return Next::Done;
    }
    let now = engine.clock.now_ms();
    let last_try = job.delivery.round_attempts + 1 >= engine.config.retry.max_attempts();
    let verdict = engine.breakers.check(endpoint.id, now);
    if let Verdict::Skip { .. } = verdict
        && !last_try
    {
        return engine.park(job);
    }
    let delivery = &job.delivery;
    let body = match job.body.clone() {
        Some(body) => Some(body),
        None => load_body(engine, &job).await,
    };
    let Some(body) = body else {
        tracing::error!(event.id = %delivery.event_id, "event of a scheduled delivery not found");
        if verdict == Verdict::Probe {
            // The probe was let through: it must end, or the breaker would
            // wait for it forever.
            engine.breakers.record(endpoint.id, false, now);
        }
        return Next::Done;
    };

    let started = Instant::now();
    let resend = delivery.attempts > delivery.round_attempts;
    let outcome = match payload(&endpoint, &body, resend) {
        Ok(payload) => post(engine, &endpoint, &job, &payload, now).await,
        Err(error) => Outcome::NoAnswer { error },
    };
    let duration = started.elapsed();
    engine.metrics.record_attempt(outcome.answer(), duration);
    let delivered = matches!(outcome, Outcome::Delivered { .. });
    engine.breakers.record(endpoint.id, delivered, now);
    let retry = settle(engine, &endpoint, &job, outcome, now, duration).await;
    match retry {
        Some(retry) => Next::Retry(retry),
        None => Next::Done,
    }
}

async fn load_body(engine: &Engine, job: &Job) -> Option<Arc<[u8]>> {
    let store = Arc::clone(&engine.store);
    let id = job.delivery.event_id;
    match tokio::task::spawn_blocking(move || store.event(id)).await {
        Ok(Ok(event)) => event.map(|e| e.body),
        Ok(Err(error)) => {
            tracing::error!(event.id = %id, error = format!("{error:#}"), "loading an event to deliver");
            None
        }
        Err(_) => None,
    }
}

/// The bytes to send in the endpoint's dialect.
fn payload(endpoint: &Endpoint, body: &Arc<[u8]>, resend: bool) -> Result<Arc<[u8]>, String> {
    match endpoint.dialect {
        Dialect::Standard => Ok(Arc::clone(body)),
        Dialect::Paypal => {
            let event: Event = serde_json::from_slice(body)
                .map_err(|e| format!("stored event unreadable: {e}"))?;
            let sending = if resend {
                Sending::Resend
            } else {
                Sending::First
            };
            encode_event(&event, sending)
                .map(Into::into)
                .map_err(|e| e.to_string())
        }
    }
}

async fn post(
    engine: &Engine,
    endpoint: &Endpoint,
    job: &Job,
    payload: &Arc<[u8]>,
    now: Millis,
) -> Outcome {
    let url = match url::Url::parse(&endpoint.url) {
        Ok(url) => url,
        Err(e) => {
            return Outcome::NoAnswer {
                error: format!("endpoint URL is invalid: {e}"),
            };
        }
    };
    // One deadline for the whole attempt, name resolution included.
    let deadline = tokio::time::Instant::now() + engine.config.timeout;
    // Checked at every attempt, since DNS may have changed; the client then
    // connects only to an address checked here.
    let checked = match ssrf::check_literal(&engine.policy, &url) {
        Some(result) => result.map(|addr| vec![addr]),
        None => {
            let check = ssrf::check_url(&engine.policy, engine.resolver.as_ref(), &url);
            let until = deadline.min(tokio::time::Instant::now() + engine.config.connect_timeout);
            match tokio::time::timeout_at(until, check).await {
                Ok(result) => result,
                Err(_) => {
                    return Outcome::NoAnswer {
                        error: "the endpoint's host did not resolve in time".to_owned(),
                    };
                }
            }
        }
    };
    let addrs = match checked {
        Ok(addrs) => addrs,
        Err(refused) => {
            return Outcome::NoAnswer {
                error: refused.to_string(),
            };
        }
    };
    let id = job.delivery.event_id.to_string();
    let timestamp = now.div_euclid(1000);
    let signature = signature_header(&endpoint.signers(now), &id, timestamp, payload);
    let headers = match webhook_headers(endpoint, &id, timestamp, &signature) {
        Ok(headers) => headers,
        Err(error) => return Outcome::NoAnswer { error },
    };
    let body = bytes::Bytes::from_owner(Arc::clone(payload));
    match engine
        .client
        .post(&url, &addrs, headers, body, deadline)
        .await
    {
        Err(client::SendError::TimedOut) => Outcome::NoAnswer {
            error: format!("timed out after {:?}", engine.config.timeout),
        },
        Err(error) => Outcome::NoAnswer {
            error: error.to_string(),
        },
        Ok(answer) => {
            let body = String::from_utf8_lossy(&answer.body_start).into_owned();
            if (200..300).contains(&answer.status) {
                Outcome::Delivered {
                    status: answer.status,
                    body,
                }
            } else {
                let retry_after = if answer.status == 429 || answer.status == 503 {
                    answer.retry_after.as_deref().and_then(parse_retry_after)
                } else {
                    None
                };
                Outcome::Rejected {
                    status: answer.status,
                    body,
                    retry_after,
                }
            }
        }
    }
}

/// The headers of the endpoint's dialect, beside those the client adds (`Host`,
/// `User-Agent`, `Content-Length`).
fn webhook_headers(
    endpoint: &Endpoint,
    id: &str,
    timestamp: i64,
    signature: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let value = |text: &str| {
        HeaderValue::from_str(text).map_err(|_| format!("header value {text:?} is not valid"))
    };
    Ok(vec![
        (
            CONTENT_TYPE,
            HeaderValue::from_static(endpoint.dialect.content_type()),
        ),
        (HeaderName::from_static(WebhookHeaders::ID), value(id)?),
        (
            HeaderName::from_static(WebhookHeaders::TIMESTAMP),
            HeaderValue::from(timestamp),
        ),
        (
            HeaderName::from_static(WebhookHeaders::SIGNATURE),
            value(signature)?,
        ),
    ])
}

/// Records the attempt and moves the delivery on; returns its retry.
async fn settle(
    engine: &Engine,
    endpoint: &Endpoint,
    job: &Job,
    outcome: Outcome,
    now: Millis,
    duration: Duration,
) -> Option<Job> {
    let delivery = &job.delivery;
    let failed_in_round = delivery.round_attempts + 1;
    let (status, response_status, error, response_body, retry_after) = match &outcome {
        Outcome::Delivered { status, body } => (
            AttemptStatus::Succeeded,
            Some(*status),
            None,
            Some(body.clone()),
            None,
        ),
        Outcome::Rejected {
            status,
            body,
            retry_after,
        } => (
            AttemptStatus::Failed,
            Some(*status),
            Some(format!("endpoint answered {status}")),
            Some(body.clone()),
            *retry_after,
        ),
        Outcome::NoAnswer { error } => {
            (AttemptStatus::Failed, None, Some(error.clone()), None, None)
        }
    };
    let gone = response_status == Some(410);
    let (next, health) = match status {
        AttemptStatus::Succeeded => (
            DeliveryNext::Delivered,
            if endpoint.failing_since.is_some() {
                EndpointHealth::Healthy
            } else {
                EndpointHealth::Unchanged
            },
        ),
        AttemptStatus::Failed => {
            let next = match engine
                .config
                .retry
                .next_attempt(now, failed_in_round, retry_after)
            {
                Some(at) if !gone => DeliveryNext::RetryAt(at),
                _ => DeliveryNext::Failed,
            };
            let health = match endpoint.failing_since {
                Some(_) => EndpointHealth::Unchanged,
                None => EndpointHealth::FailingSince(now),
            };
            (next, health)
        }
    };
    let attempt = Attempt {
        event_id: delivery.event_id,
        endpoint_id: delivery.endpoint_id,
        number: delivery.attempts + 1,
        status,
        response_status,
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        error,
        response_body,
        attempted_at: from_millis(now),
    };
    tracing::debug!(
        event.id = %delivery.event_id,
        endpoint.id = %delivery.endpoint_id,
        attempt = attempt.number,
        duration_ms = attempt.duration_ms,
        status = ?attempt.response_status,
        error = attempt.error.as_deref(),
        "attempt"
    );
    let done = Write::AttemptDone(AttemptDone {
        delivery_id: delivery.delivery_id,
        attempt,
        next,
        health,
    });
    if engine
        .writer
        .write_detached(WriteRequest {
            write: done,
            idempotency: None,
        })
        .await
        .is_err()
    {
        return None; // shutting down: the delivery stays pending in the store
    }
    match health {
        EndpointHealth::Unchanged => {}
        EndpointHealth::Healthy => engine
            .directory
            .update_endpoint(endpoint.id, |e| e.failing_since = None),
        EndpointHealth::FailingSince(at) => engine
            .directory
            .update_endpoint(endpoint.id, |e| e.failing_since = Some(at)),
    }
    let retry = match next {
        DeliveryNext::Delivered => {
            engine.metrics.delivered();
            None
        }
        DeliveryNext::Failed => {
            engine.metrics.dead_lettered();
            None
        }
        DeliveryNext::RetryAt(at) => {
            let mut retry = delivery.clone();
            retry.due = at;
            retry.round_attempts += 1;
            retry.attempts += 1;
            Some(job.retry(retry))
        }
    };
    let failing_for = endpoint.failing_since.map(|since| now - since).unwrap_or(0);
    let limit = i64::try_from(engine.config.disable_failing_after.as_millis()).unwrap_or(i64::MAX);
    if gone {
        disable(engine, endpoint, DisabledReason::Gone, now).await;
        return None;
    }
    if status == AttemptStatus::Failed && failing_for >= limit {
        disable(engine, endpoint, DisabledReason::Failing, now).await;
        return None;
    }
    retry
}

async fn disable(engine: &Engine, endpoint: &Endpoint, reason: DisabledReason, now: Millis) {
    if engine
        .directory
        .endpoint(endpoint.id)
        .is_some_and(|e| !e.is_enabled())
    {
        return;
    }
    tracing::warn!(endpoint.id = %endpoint.id, reason = reason.as_str(), "disabling endpoint");
    if engine.disable(endpoint.id, reason, now).await.is_ok() {
        endpoint_disabled(engine, endpoint, reason, now).await;
    }
}

/// Tells the merchant's other endpoints that `endpoint` was disabled.
async fn endpoint_disabled(
    engine: &Engine,
    endpoint: &Endpoint,
    reason: DisabledReason,
    now: Millis,
) {
    let at = from_millis(now);
    let event = Event {
        id: EventId::generate(at),
        event_type: EventType::EndpointDisabled,
        created_at: at,
        livemode: false,
        sequence: 0,
        data: EventData::Endpoint(Box::new(EndpointNotice {
            id: endpoint.id,
            url: endpoint.url.clone(),
            disabled_reason: reason.as_str().to_owned(),
            disabled_at: at,
        })),
    };
    let subscribers = engine.directory.endpoints_of(endpoint.merchant_id);
    let new = fanout::new_event(
        endpoint.merchant_id,
        subscribers.iter().map(|e| e.as_ref()),
        event,
    );
    let request = WriteRequest {
        write: Write::Ingest(new),
        idempotency: None,
    };
    if let Err(error) = engine.ingest(request).await {
        tracing::error!(endpoint.id = %endpoint.id, %error, "publishing endpoint.disabled");
    }
}
