//! Storage: what the gateway keeps, behind two interfaces in the gateway's
//! own words that name no database type: `sqlite/` (one file, the
//! default) and `postgres/` implement them, with the same behaviour.
//!
//! - [`Store`]: typed reads, on read connections that never wait for a
//!   commit, and [`Store::write_batch`], which runs a batch of writes in ONE
//!   transaction. Only the writer thread calls it (`writes.rs`): many API
//!   calls share one commit, and an event commits with its deliveries or not
//!   at all (the transactional outbox).
//! - [`Tx`]: the typed reads and writes of one transaction. What a write
//!   means (a refund's new amounts, which endpoints get an event, the answer
//!   kept for an Idempotency-Key) is decided by the domain modules that call
//!   it; storage only loads and saves rows.
//! - `dashboard`: the dashboard's lists and figures, as typed reads.
//!
//! A store is opened with the gateway's encryption key and keeps every
//! secret that could sign (endpoint secrets, the gateway's own keys) sealed
//! with it (`secrets.rs`): it seals as it writes and opens as it reads.

pub mod dashboard;
pub mod postgres;
mod rows;
mod sealed;
pub mod sqlite;

use ipn_core::id::{CheckoutSessionId, EndpointId, EventId, MerchantId, PaymentId, SubscriptionId};

pub use dashboard::DashboardReads;
pub use rows::*;

use crate::clock::Millis;
use crate::model::{
    Attempt, CheckoutSession, DisabledReason, Endpoint, Merchant, PaidBy, StoredPayment,
    StoredSubscription,
};

/// A storage failure: the database is unreachable, full, or corrupt. Never
/// an expected outcome of a request, so it carries context, not structure.
pub type StoreError = ipn_storage::StoreError;

/// Applies one item of a batch through the transaction; its index in the
/// batch is the second argument.
pub type ApplyItem<'a> = dyn FnMut(&dyn Tx, usize) -> Result<(), StoreError> + 'a;

/// What a database must do for the gateway.
pub trait Store: DashboardReads + Send + Sync + 'static {
    /// Runs `apply` for each of `len` items inside ONE transaction and
    /// commits; one result per item, in order. An item whose `apply` fails
    /// rolls back alone and the others still commit; a failing commit fails
    /// the whole batch. `apply` may run more than once for an item (the
    /// batch is redone when one fails): what it returns the last time is
    /// what committed.
    fn write_batch(
        &self,
        len: usize,
        apply: &mut ApplyItem<'_>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError>;

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
}

/// The reads and writes of one transaction of the writer. Reads see the
/// transaction's own writes; a payment, subscription or session read here
/// cannot change under the caller before the transaction ends (on SQLite the
/// one writer guarantees it; PostgreSQL locks the row, `FOR UPDATE`).
pub trait Tx {
    /// The answer kept for an Idempotency-Key, if the key was used.
    fn idempotent_response(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotentResponse>, StoreError>;
    /// Keeps a request's answer under its Idempotency-Key.
    fn save_idempotent(
        &self,
        scope: &str,
        key: &str,
        answer: &IdempotentResponse,
        now: Millis,
    ) -> Result<(), StoreError>;

    fn create_merchant(&self, merchant: &Merchant) -> Result<(), StoreError>;
    /// Inserts or replaces an endpoint, its secrets sealed.
    fn save_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError>;
    /// Disables an endpoint and fails its pending deliveries.
    fn disable_endpoint(
        &self,
        id: EndpointId,
        reason: DisabledReason,
        now: Millis,
    ) -> Result<(), StoreError>;

    /// Records an event with one pending delivery per endpoint, due at its
    /// creation. Its `sequence` is one more than the last of its object's.
    fn insert_event(&self, new: &NewEvent) -> Result<Ingested, StoreError>;
    /// Records an attempt's outcome and moves its delivery on.
    fn record_attempt(&self, done: &AttemptDone) -> Result<(), StoreError>;
    /// Puts the event's deliveries to these endpoints back to pending, due
    /// `now`, creating those that never existed.
    fn resend(
        &self,
        event_id: EventId,
        endpoint_ids: &[EndpointId],
        now: Millis,
    ) -> Result<Vec<Scheduled>, StoreError>;
    /// Puts an endpoint's failed deliveries of events created at or after
    /// `since` back to pending, due `now`, in event order.
    fn recover(
        &self,
        endpoint_id: EndpointId,
        since: Millis,
        now: Millis,
    ) -> Result<Vec<Scheduled>, StoreError>;

    /// Saves the test clock's offset; a smaller one than saved is ignored.
    fn save_clock_offset(&self, offset: Millis) -> Result<(), StoreError>;

    fn payment(
        &self,
        merchant: MerchantId,
        id: PaymentId,
    ) -> Result<Option<StoredPayment>, StoreError>;
    /// Inserts a payment, or updates its status and object.
    fn save_payment(&self, row: &StoredPayment) -> Result<(), StoreError>;
    fn subscription(
        &self,
        merchant: MerchantId,
        id: SubscriptionId,
    ) -> Result<Option<StoredSubscription>, StoreError>;
    /// Inserts or updates a subscription.
    fn save_subscription(&self, row: &StoredSubscription) -> Result<(), StoreError>;
    fn checkout_session(
        &self,
        id: CheckoutSessionId,
    ) -> Result<Option<CheckoutSession>, StoreError>;
    fn create_checkout_session(&self, session: &CheckoutSession) -> Result<(), StoreError>;
    /// Marks a session paid if nothing paid it yet; `false` if something did.
    fn mark_checkout_paid(
        &self,
        id: CheckoutSessionId,
        by: PaidBy,
        at: Millis,
    ) -> Result<bool, StoreError>;
}

#[cfg(test)]
pub(crate) mod testing {
    //! Unit tests of storage that run on both databases.

    use super::Store;
    use crate::secrets::EncryptionKey;

    /// Runs `body` on a store on a fresh SQLite file, then on one on a
    /// fresh PostgreSQL database when a server is reachable (else it says
    /// by name that the PostgreSQL half of `test` was skipped).
    pub(crate) fn each_store(test: &str, body: impl Fn(&dyn Store)) {
        let key = EncryptionKey::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sqlite = super::sqlite::Sqlite::open(
            &dir.path().join("t.db"),
            super::sqlite::Durability::Normal,
            key.clone(),
        )
        .unwrap();
        body(&sqlite);
        if let Some((postgres, _database)) = super::postgres::test_store(test, key) {
            body(&postgres);
        }
    }
}
