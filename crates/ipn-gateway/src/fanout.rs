//! Fan-out: which endpoints get an event, and the object whose `sequence`
//! it takes. Events are recorded with their deliveries in the caller's
//! transaction (the outbox), so no event exists without its deliveries.

use ipn_core::event::{Event, EventData};
use ipn_core::id::{EndpointId, MerchantId};

use crate::model::Endpoint;
use crate::storage::{Ingested, NewEvent, StoreError, Tx};

/// The endpoints among `subscribers` that get an event of this type: the
/// enabled ones whose filter takes it.
pub fn recipients<'a>(
    subscribers: impl IntoIterator<Item = &'a Endpoint>,
    event: &Event,
) -> Vec<EndpointId> {
    subscribers
        .into_iter()
        .filter(|e| e.is_enabled() && e.wants(&event.event_type))
        .map(|e| e.id)
        .collect()
}

/// The event as the store records it: with its recipients and root object.
pub fn new_event<'a>(
    merchant_id: MerchantId,
    subscribers: impl IntoIterator<Item = &'a Endpoint>,
    event: Event,
) -> NewEvent {
    NewEvent {
        merchant_id,
        endpoint_ids: recipients(subscribers, &event),
        object_id: root_object(&event.data),
        event,
    }
}

/// Records events in order, each with a delivery to the subscribers that
/// want it, through the caller's transaction.
pub fn record(
    tx: &dyn Tx,
    merchant_id: MerchantId,
    subscribers: &[Endpoint],
    events: Vec<Event>,
) -> Result<Vec<Ingested>, StoreError> {
    events
        .into_iter()
        .map(|event| tx.insert_event(&new_event(merchant_id, subscribers, event)))
        .collect()
}

/// The object whose `sequence` an event takes: a payment with its refunds
/// and reversals, a subscription with its period payments.
pub fn root_object(data: &EventData) -> Option<String> {
    match data {
        EventData::Payment(p) => Some(payment_root(p)),
        EventData::Subscription(s) => Some(s.id.to_string()),
        EventData::Endpoint(e) => Some(e.id.to_string()),
        EventData::Other(raw) => {
            // A platform object's `id`, when it has a string one.
            #[derive(serde::Deserialize)]
            struct WithId {
                id: Option<String>,
            }
            serde_json::from_str::<WithId>(raw.get())
                .ok()
                .and_then(|o| o.id)
        }
    }
}

/// A payment's root object: its subscription's, else the original
/// payment's (a refund or reversal shares its parent's sequence).
pub fn payment_root(p: &ipn_core::payment::Payment) -> String {
    match (p.subscription_id, p.parent_id) {
        (Some(subscription), _) => subscription.to_string(),
        (None, Some(parent)) => parent.to_string(),
        (None, None) => p.id.to_string(),
    }
}
