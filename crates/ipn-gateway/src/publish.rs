//! Publishing an event: choose the endpoints that want it, commit the event
//! with one delivery per endpoint (one transaction), then schedule them.

use std::sync::Arc;

use ipn_core::event::Event;
use ipn_core::id::MerchantId;

use crate::delivery::{Engine, Job};
use crate::fanout;
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
    match engine.ingest(request).await? {
        Written::Ingested(ingested) => Ok(Published::New(ingested)),
        Written::Replay(first) => Ok(Published::Replay(first)),
        other => Err(WriteError::Store(format!(
            "unexpected result of an ingest: {other:?}"
        ))),
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
