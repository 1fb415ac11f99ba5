//! The shop's orders: one row per order and one per line.
//!
//! An order is stored only once its checkout session exists at the gateway
//! (the session id and URL are part of the row), so there is never an order
//! a customer cannot pay. Amounts are integer minor units of the order's
//! one currency, never floats.

use ipn_core::billing::Plan;
use ipn_core::money::Money;
use ipn_core::payment::ItemKind;

use super::StoreError;

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// `ord_<ULID>`: the `invoice` of its checkout session and payments.
    pub id: String,
    /// `created` until the notification handler moves it.
    pub status: String,
    pub customer_email: String,
    pub total: Money,
    pub lines: Vec<Line>,
    pub checkout_session_id: String,
    pub checkout_url: String,
    /// The gateway merchant the checkout session was made for: the one
    /// receiver a payment for this order may name.
    pub merchant_id: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When the order was first paid (ms).
    pub paid_at: Option<i64>,
    /// When the shop marked it shipped (ms).
    pub fulfilled_at: Option<i64>,
    /// The billing terms, when the order is for a subscription: its total
    /// is then charged every period.
    pub plan: Option<Plan>,
    /// The subscription the order started, once the gateway said so.
    pub subscription_id: Option<String>,
}

/// One line of an order, priced when the order was made: a later catalog
/// change does not alter what the customer was asked to pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub sku: String,
    pub name: String,
    pub kind: ItemKind,
    pub quantity: u32,
    pub unit_price: Money,
    /// `unit_price × quantity`, checked.
    pub total: Money,
}

pub trait OrderReads {
    /// The order `id` with its lines, if there is one.
    fn order(&self, id: &str) -> Result<Option<Order>, StoreError>;
    /// How many orders are `paid`.
    fn paid_orders(&self) -> Result<u64, StoreError>;
}

pub trait OrderWrites {
    /// Stores a new order and its lines.
    fn insert_order(&self, order: &Order) -> Result<(), StoreError>;
    /// Writes an order's state; `paid_at` is set the first time `paid` is
    /// true and kept after.
    fn set_order_status(
        &self,
        id: &str,
        status: &str,
        paid: bool,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Marks an order shipped (the first time only).
    fn set_fulfilled(&self, id: &str, now: i64) -> Result<(), StoreError>;
    /// Ties an order to the subscription it bought.
    fn set_order_subscription(&self, id: &str, subscription_id: &str) -> Result<(), StoreError>;
}
