//! Storage: what the gateway keeps, behind the [`Store`] trait that each
//! database fills (SQLite today; PostgreSQL later, with the same tests).
//!
//! Writes come as batches of [`Write`]s, applied in ONE transaction by the
//! single writer task (see `writer.rs`): an event and its deliveries commit
//! together or not at all (the transactional outbox), and many API calls
//! share one commit. Reads go through their own connections.
//!
//! A store is opened with the gateway's encryption key and keeps every
//! secret that could sign (endpoint secrets, the gateway's own keys) sealed
//! with it (`secrets.rs`): it seals as it writes and opens as it reads.

pub mod sqlite;

use std::sync::Arc;

use ipn_core::event::Event;
use ipn_core::id::{CheckoutSessionId, EndpointId, EventId, MerchantId, PaymentId, SubscriptionId};

use crate::checkout::{CheckoutPayment, CheckoutRefusal, CheckoutSession, CheckoutSubscription};
use crate::clock::Millis;
use crate::model::{Attempt, DeliveryFilter, DisabledReason, Endpoint, Merchant};
use crate::payments::{PaymentRefusal, PaymentWrite, StoredPayment};
use crate::subscriptions::{StoredSubscription, SubscriptionRefusal, SubscriptionWrite};

/// A storage failure: the database is unreachable, full, or corrupt. Never
/// an expected outcome of a request, so it carries context, not structure.
pub type StoreError = anyhow::Error;

/// One change, applied inside the writer's batch transaction.
#[derive(Debug)]
pub enum Write {
    CreateMerchant(Merchant),
    /// Inserts or replaces an endpoint.
    SaveEndpoint(Endpoint),
    /// Records an event and one pending delivery per endpoint.
    Ingest(NewEvent),
    /// Records an attempt's outcome and moves its delivery on.
    AttemptDone(AttemptDone),
    /// Puts deliveries of an event back to pending, due now; creates the
    /// delivery for an endpoint that never had one.
    Resend {
        event_id: EventId,
        endpoint_ids: Vec<EndpointId>,
        now: Millis,
    },
    /// Puts an endpoint's failed deliveries of events created at or after
    /// `since` back to pending, due now.
    Recover {
        endpoint_id: EndpointId,
        since: Millis,
        now: Millis,
    },
    /// Changes nothing but the request's Idempotency-Key (for requests whose
    /// effect is already committed, or has nothing to commit).
    Remember,
    /// Records the test clock's offset (it only ever grows).
    SaveClockOffset(Millis),
    /// A payment operation: reads the payment, applies the change, writes the
    /// payment rows and records the events with their deliveries.
    Payment(Box<PaymentWrite>),
    /// Records a new checkout session.
    CreateCheckoutSession(Box<CheckoutSession>),
    /// Pays an open checkout session: the payment's create operation, and
    /// the session marked paid with it, in this one transaction.
    CheckoutPayment(Box<CheckoutPayment>),
    /// Pays an open subscription-mode checkout session: the subscription's
    /// signup, and the session marked paid with it, in this one transaction.
    CheckoutSubscription(Box<CheckoutSubscription>),
    /// A subscription step (signup, billing, cancel, new card), the same way.
    Subscription(Box<SubscriptionWrite>),
    /// Disables an endpoint and fails its pending deliveries.
    DisableEndpoint {
        endpoint_id: EndpointId,
        reason: DisabledReason,
        now: Millis,
    },
}

/// A write with its Idempotency-Key, when the API request had one.
#[derive(Debug)]
pub struct WriteRequest {
    pub write: Write,
    pub idempotency: Option<IdempotencyKey>,
}

/// What a batch did for one write.
#[derive(Debug)]
pub enum Written {
    Done,
    Ingested(Ingested),
    /// Deliveries (re)scheduled by a resend or recover.
    Scheduled(Vec<Scheduled>),
    /// The Idempotency-Key was used before: the first answer, not re-applied.
    Replay(IdempotentResponse),
    /// A payment operation was applied.
    Payment(PaymentDone),
    /// A payment operation was refused; nothing changed.
    PaymentRefused(PaymentRefusal),
    /// A checkout session could not be paid (unknown, paid, expired);
    /// nothing changed.
    CheckoutRefused(CheckoutRefusal),
    /// A subscription step was applied.
    Subscription(Box<SubscriptionDone>),
    /// A subscription step was refused; nothing changed.
    SubscriptionRefused(SubscriptionRefusal),
}

/// What a subscription step committed.
#[derive(Debug, Clone)]
pub struct SubscriptionDone {
    pub row: StoredSubscription,
    /// Its events, in order, with their deliveries.
    pub events: Vec<Ingested>,
}

/// What a payment operation committed.
#[derive(Debug, Clone)]
pub struct PaymentDone {
    /// The payment rows written, the original first.
    pub rows: Vec<StoredPayment>,
    /// Its events, in order, with their deliveries.
    pub events: Vec<Ingested>,
}

/// An event to record. Its `sequence` is assigned by the store.
#[derive(Debug)]
pub struct NewEvent {
    pub merchant_id: MerchantId,
    pub event: Event,
    /// The root object whose sequence the event takes (payment, subscription).
    pub object_id: Option<String>,
    pub endpoint_ids: Vec<EndpointId>,
}

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

#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// `admin` or the merchant id: keys are per caller.
    pub scope: String,
    pub key: String,
    pub request_hash: String,
    /// The answer to store; `None` to store the write's own body (ingest).
    pub response: Option<IdempotentResponse>,
    pub now: Millis,
}

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

/// SQL that tells whether the delivery `d` matches the filter named by the
/// text parameter `?N`: `delivery_filter_sql(3)`. Kept beside
/// [`DeliveryFilter`]'s names, which are the parameter's values.
pub(crate) fn delivery_filter_sql(param: u8) -> String {
    format!(
        "CASE ?{param}
           WHEN 'pending' THEN d.status = 'pending'
           WHEN 'retrying' THEN d.status = 'pending' AND d.round_attempts > 0
           WHEN 'delivered' THEN d.status = 'delivered'
           WHEN 'failed' THEN d.status = 'failed' OR (d.status = 'pending' AND d.round_attempts > 0)
           WHEN 'dead' THEN d.status = 'failed'
         END"
    )
}

/// What a database must do for the gateway.
pub trait Store: Send + Sync + 'static {
    /// Applies the batch in one transaction, one result per request, in
    /// order. A failing request rolls back alone (its result is the error);
    /// a failing commit fails the whole batch.
    fn apply(&self, batch: &[WriteRequest])
    -> Result<Vec<Result<Written, StoreError>>, StoreError>;

    fn merchants(&self) -> Result<Vec<Merchant>, StoreError>;
    fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError>;
    /// Every pending delivery, one at a time to `each`, in event order, to
    /// rebuild the schedule at start; returns how many. One at a time: a
    /// million pending deliveries must not be held twice in memory.
    fn pending_deliveries(&self, each: &mut dyn FnMut(Scheduled)) -> Result<usize, StoreError>;
    fn event(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError>;
    /// Events in order after the cursor; `true` when more follow.
    fn list_events(&self, query: &EventQuery) -> Result<(Vec<StoredEvent>, bool), StoreError>;
    fn attempts(&self, event_id: EventId) -> Result<Vec<Attempt>, StoreError>;
    fn idempotent_response(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotentResponse>, StoreError>;
    /// A merchant's payment (or refund, reversal), with how it was paid.
    fn payment(
        &self,
        merchant: MerchantId,
        id: PaymentId,
    ) -> Result<Option<StoredPayment>, StoreError>;
    /// A merchant's subscription.
    fn subscription(
        &self,
        merchant: MerchantId,
        id: SubscriptionId,
    ) -> Result<Option<StoredSubscription>, StoreError>;
    /// Subscriptions whose next billing step is due at `now`, earliest
    /// first, at most `limit`.
    fn due_subscriptions(
        &self,
        now: Millis,
        limit: u32,
    ) -> Result<Vec<(MerchantId, SubscriptionId)>, StoreError>;
    /// When the next billing step of any subscription is due.
    fn next_subscription_step(&self) -> Result<Option<Millis>, StoreError>;
    /// The events of a root object (a payment with its refunds and
    /// reversals), in sequence order.
    fn object_events(
        &self,
        merchant: MerchantId,
        object_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError>;
    /// The gateway's secret for keyed request hashes (made at first start,
    /// stored sealed like every secret: see `secrets.rs`).
    fn idempotency_hash_key(&self) -> Result<Vec<u8>, StoreError>;
    /// The test clock's saved offset (0 if never advanced).
    fn clock_offset(&self) -> Result<Millis, StoreError>;
    /// How an event went to paypal endpoints: `None` if it never did,
    /// `Some(resent)` if it did, `resent` when a delivery was resent or
    /// recovered (its messages then carry `resend=true`).
    fn paypal_sending(&self, event_id: EventId) -> Result<Option<bool>, StoreError>;
    /// A checkout session, whoever its merchant (its page is public).
    fn checkout_session(
        &self,
        id: CheckoutSessionId,
    ) -> Result<Option<CheckoutSession>, StoreError>;
    /// Runs `f` on a reader connection: the dashboard's own read-only
    /// queries (`dashboard/queries.rs`). A store without SQLite has none.
    fn read_sqlite(
        &self,
        f: &mut dyn FnMut(&rusqlite::Connection) -> rusqlite::Result<()>,
    ) -> Result<(), StoreError> {
        let _ = f;
        Err(anyhow::anyhow!("this store has no SQLite reader"))
    }
}
