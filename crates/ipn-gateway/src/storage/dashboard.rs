//! The dashboard's reads: lists and figures the API does not need (events
//! by date and content, payments, subscriptions, endpoint health), as typed
//! reads on read connections, never on the writer's.

use ipn_core::id::{EndpointId, MerchantId};

use crate::clock::Millis;
use crate::storage::StoreError;

/// What the dashboard reads.
pub trait DashboardReads {
    /// Events matching `search`, newest first; `true` when more follow.
    /// A filtered list looks through the newest [`FILTER_WINDOW`] events only.
    fn event_rows(&self, search: &EventSearch) -> Result<(Vec<EventRow>, bool), StoreError>;
    /// The event types a merchant (or everyone) has events of, for the filter.
    fn event_types(&self, merchant: Option<MerchantId>) -> Result<Vec<String>, StoreError>;
    /// An event's deliveries, one per endpoint, in the order made.
    fn delivery_rows(&self, event_id: &str) -> Result<Vec<DeliveryRow>, StoreError>;
    /// The health of one endpoint over attempts made at or after `since`.
    fn endpoint_health(&self, endpoint: EndpointId, since: Millis) -> Result<Health, StoreError>;
    /// Payments (refunds and reversals included), newest first.
    fn payment_rows(&self, filter: &ObjectFilter) -> Result<(Vec<ObjectRow>, bool), StoreError>;
    /// The refunds and reversals of a payment, oldest first.
    fn payment_children(&self, payment_id: &str) -> Result<Vec<ObjectRow>, StoreError>;
    /// Whose payment this is (the admin sees every merchant's).
    fn payment_merchant(&self, payment_id: &str) -> Result<Option<String>, StoreError>;
    /// Subscriptions, newest first.
    fn subscription_rows(
        &self,
        filter: &ObjectFilter,
    ) -> Result<(Vec<ObjectRow>, bool), StoreError>;
    /// Whose subscription this is (the admin sees every merchant's).
    fn subscription_merchant(&self, subscription_id: &str) -> Result<Option<String>, StoreError>;
    /// A subscription's payments (its periods' charges, and their refunds
    /// and reversals), oldest first.
    fn subscription_payments(
        &self,
        merchant: &str,
        subscription_id: &str,
    ) -> Result<Vec<ObjectRow>, StoreError>;
    /// The newest `limit` events about an object, oldest of them first;
    /// `true` when older ones were left out.
    fn object_history(
        &self,
        merchant: &str,
        object_id: &str,
        limit: u32,
    ) -> Result<(Vec<HistoryRow>, bool), StoreError>;
}

/// Filters of the events list; `None` or empty means any.
#[derive(Debug, Clone, Default)]
pub struct EventSearch {
    pub merchant: Option<MerchantId>,
    pub event_type: Option<String>,
    /// `pending`, `delivered` or `failed`: events with a delivery in it.
    pub delivery: Option<&'static str>,
    /// Created at or after.
    pub from: Option<Millis>,
    /// Created before.
    pub until: Option<Millis>,
    /// An event id, a payment or subscription id, an invoice: matched as
    /// the event's id, its object, or any JSON string value in its body.
    pub search: Option<String>,
    /// Only events stored before this position (paging, newest first).
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// One row of the events list.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub seq: i64,
    pub id: String,
    pub merchant_id: String,
    pub event_type: String,
    pub created_at: Millis,
    pub object_id: Option<String>,
    /// Deliveries not attempted yet (since a resend).
    pub pending: u32,
    /// Deliveries that failed and wait for another attempt.
    pub retrying: u32,
    pub delivered: u32,
    /// Dead letters.
    pub failed: u32,
}

impl EventRow {
    /// One word for its deliveries: failed (a dead letter) wins, then
    /// retrying, then pending.
    pub fn delivery_status(&self) -> &'static str {
        if self.failed > 0 {
            "failed"
        } else if self.retrying > 0 {
            "retrying"
        } else if self.pending > 0 {
            "pending"
        } else if self.delivered > 0 {
            "delivered"
        } else {
            "no endpoint"
        }
    }
}

/// How many of the newest events a filtered list or a search looks
/// through: a filter that matches little would otherwise read the whole
/// table on every page load (and `?live=1` reloads it every few seconds),
/// holding a reader connection the delivery engine needs.
pub const FILTER_WINDOW: i64 = 100_000;

/// An event's delivery to one endpoint.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub endpoint_id: String,
    /// `pending`, `retrying` (failed, another attempt due), `delivered`
    /// or `failed` (dead letter).
    pub status: String,
    pub attempts: u32,
    pub next_attempt_at: Option<Millis>,
}

impl DeliveryRow {
    /// Whether another attempt is to come.
    pub fn is_pending(&self) -> bool {
        matches!(self.status.as_str(), "pending" | "retrying")
    }
}

/// How an endpoint's recent attempts went.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// Attempts since the window's start, and how many succeeded.
    pub attempts: u32,
    pub succeeded: u32,
    pub last_attempt_at: Option<Millis>,
    /// The latest failed attempt: its error and when.
    pub last_error: Option<(String, Millis)>,
    pub pending: u32,
    pub failed: u32,
}

/// A payment or subscription row of a list: its merchant and the object
/// (as JSON) with how it was paid.
#[derive(Debug, Clone)]
pub struct ObjectRow {
    pub position: i64,
    pub merchant_id: String,
    pub object: serde_json::Value,
    pub method: serde_json::Value,
}

/// Filters of the payments and subscriptions lists.
#[derive(Debug, Clone, Default)]
pub struct ObjectFilter {
    pub merchant: Option<MerchantId>,
    pub status: Option<String>,
    /// An id or an invoice, exactly.
    pub search: Option<String>,
    pub before: Option<i64>,
    pub limit: u32,
}

/// An event of an object's history: its id and body.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub id: String,
    pub body: Vec<u8>,
}
