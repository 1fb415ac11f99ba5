//! The rows storage loads and saves, beside the model's own types.

use std::sync::Arc;

use ipn_core::event::Event;
use ipn_core::id::{EndpointId, EventId, MerchantId};

use crate::clock::Millis;
use crate::model::{Attempt, DeliveryFilter, Endpoint};

/// An event to record. Its `sequence` is assigned by the store.
#[derive(Debug)]
pub struct NewEvent {
    pub merchant_id: MerchantId,
    pub event: Event,
    /// The root object whose sequence the event takes (payment, subscription).
    pub object_id: Option<String>,
    pub endpoint_ids: Vec<EndpointId>,
}

/// An event as recorded, with its deliveries.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub event_id: EventId,
    /// The exact JSON to deliver (and to answer the API call with).
    pub body: Arc<[u8]>,
    pub deliveries: Vec<Scheduled>,
}

/// A delivery that is due: what the scheduler needs to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    pub delivery_id: i64,
    pub event_id: EventId,
    pub endpoint_id: EndpointId,
    pub due: Millis,
    /// Attempts already made since the last (re)send.
    pub round_attempts: u32,
    /// Attempts already made in all.
    pub attempts: u32,
    /// The event's root object (payment, subscription): ordered endpoints
    /// deliver one event per object at a time, in order.
    pub object_id: Option<Arc<str>>,
}

/// An attempt's outcome, and what follows for its delivery and endpoint.
#[derive(Debug)]
pub struct AttemptDone {
    pub delivery_id: i64,
    pub attempt: Attempt,
    pub next: DeliveryNext,
    pub health: EndpointHealth,
}

/// How an attempt changes its endpoint's run of failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointHealth {
    Unchanged,
    /// It succeeded after failures.
    Healthy,
    /// It failed after a success (or for the first time), at this time.
    FailingSince(Millis),
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryNext {
    Delivered,
    RetryAt(Millis),
    /// Dead letter: no attempts left, or the endpoint is gone.
    Failed,
}

/// The first answer to a request with an Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentResponse {
    pub request_hash: String,
    pub status: u16,
    pub body: Vec<u8>,
}

/// An event as stored.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Position in the store, for cursors.
    pub seq: i64,
    pub id: EventId,
    pub merchant_id: MerchantId,
    pub body: Arc<[u8]>,
}

/// `GET /v1/events` filters.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub merchant_id: Option<MerchantId>,
    /// Only events stored after this position.
    pub after_seq: i64,
    pub limit: u32,
    pub event_type: Option<String>,
    /// Only events with a delivery in this state.
    pub delivery: Option<DeliveryFilter>,
    /// Only events of the types this endpoint takes (what it would have
    /// been sent), by its filter as it stands.
    pub for_endpoint: Option<Arc<Endpoint>>,
}
