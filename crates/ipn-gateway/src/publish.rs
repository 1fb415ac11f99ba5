//! Publishing an event: choose the endpoints that want it, commit the event
//! with one delivery per endpoint (one transaction), then schedule them.

use std::sync::Arc;

use ipn_core::event::{EndpointNotice, Event, EventData, EventType};
use ipn_core::id::{EventId, MerchantId};

use crate::clock::{Millis, from_millis};
use crate::delivery::{Engine, Job};
use crate::fanout;
use crate::model::{DisabledReason, Endpoint};
use crate::storage::{IdempotentResponse, Ingested};
use crate::writes::{IdempotencyKey, Write, WriteError, WriteRequest, Written};

/// What publishing did.
#[derive(Debug)]
pub enum Published {
    New(Ingested),
    /// The Idempotency-Key was used before: the first answer.
    Replay(IdempotentResponse),
}

/// Commits `event` for `merchant` and schedules its deliveries.
pub async fn publish(
    engine: &Engine,
    merchant: MerchantId,
    event: Event,
    idempotency: Option<IdempotencyKey>,
) -> Result<Published, WriteError> {
    let subscribers = engine.directory.endpoints_of(merchant);
    let request = WriteRequest {
        write: Write::Ingest(fanout::new_event(
            merchant,
            subscribers.iter().map(|e| e.as_ref()),
            event,
        )),
        idempotency,
    };
    match engine.writer.write(request).await? {
        Written::Ingested(ingested) => {
            engine.metrics.ingested(1);
            engine.schedule(
                ingested
                    .deliveries
                    .iter()
                    .map(|d| Job::new(d.clone(), Some(Arc::clone(&ingested.body)))),
            );
            Ok(Published::New(ingested))
        }
        Written::Replay(first) => Ok(Published::Replay(first)),
        other => Err(WriteError::Store(format!(
            "unexpected result of an ingest: {other:?}"
        ))),
    }
}

/// Schedules the deliveries of events just committed (by a payment or a
/// subscription step), with their bodies.
pub fn schedule_ingested(engine: &Engine, events: &[Ingested]) {
    engine.metrics.ingested(events.len() as u64);
    for ingested in events {
        engine.schedule(
            ingested
                .deliveries
                .iter()
                .map(|d| Job::new(d.clone(), Some(Arc::clone(&ingested.body)))),
        );
    }
}

/// Commits a resend or recover, then schedules the deliveries it put back
/// to pending; returns how many.
pub async fn redeliver(
    engine: &Engine,
    write: Write,
    body: Option<Arc<[u8]>>,
) -> Result<usize, WriteError> {
    let request = WriteRequest {
        write,
        idempotency: None,
    };
    match engine.writer.write(request).await? {
        Written::Scheduled(scheduled) => {
            let count = scheduled.len();
            engine.schedule(
                scheduled
                    .into_iter()
                    .map(|delivery| Job::new(delivery, body.clone())),
            );
            Ok(count)
        }
        other => Err(WriteError::Store(format!(
            "unexpected result of a redelivery: {other:?}"
        ))),
    }
}

/// Tells the merchant's other endpoints that `endpoint` was disabled.
pub async fn endpoint_disabled(
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
    if let Err(error) = publish(engine, endpoint.merchant_id, event, None).await {
        tracing::error!(endpoint.id = %endpoint.id, %error, "publishing endpoint.disabled");
    }
}
