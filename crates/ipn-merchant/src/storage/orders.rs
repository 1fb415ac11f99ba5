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

#[cfg(test)]
pub(crate) mod tests {
    use ipn_core::money::Currency;

    use super::*;
    use crate::storage::testing::each_store;

    /// An order of a mug and an e-book, with its own checkout session.
    pub(crate) fn order(id: &str, session: &str) -> Order {
        let usd = Currency::USD;
        Order {
            id: id.into(),
            status: "created".into(),
            customer_email: "ann@example.com".into(),
            total: Money::new(3499, usd),
            lines: vec![
                Line {
                    sku: "mug".into(),
                    name: "Mug".into(),
                    kind: ItemKind::Physical,
                    quantity: 2,
                    unit_price: Money::new(1250, usd),
                    total: Money::new(2500, usd),
                },
                Line {
                    sku: "ebook".into(),
                    name: "E-book".into(),
                    kind: ItemKind::Digital,
                    quantity: 1,
                    unit_price: Money::new(999, usd),
                    total: Money::new(999, usd),
                },
            ],
            checkout_session_id: session.into(),
            checkout_url: format!("http://gw/checkout/{session}"),
            merchant_id: Some("mer_1".into()),
            created_at: 42,
            paid_at: None,
            fulfilled_at: None,
            plan: None,
            subscription_id: None,
        }
    }

    #[test]
    fn an_order_reads_back_as_stored() {
        each_store("an_order_reads_back_as_stored", |store| {
            let order = order("ord_1", "cs_1");
            let monthly = Order {
                id: "ord_2".into(),
                checkout_session_id: "cs_2".into(),
                lines: order.lines[1..].to_vec(),
                total: Money::new(999, Currency::USD),
                plan: Some(Plan::new(ipn_core::subscription::Interval::Month, 1, 7, None).unwrap()),
                ..order.clone()
            };
            store
                .write_with(|tx| {
                    tx.insert_order(&monthly)?;
                    tx.insert_order(&order)
                })
                .unwrap();
            let read = |id: &'static str| store.read_with(move |r| r.order(id)).unwrap();
            assert_eq!(read("ord_1"), Some(order.clone()));
            assert_eq!(read("ord_2"), Some(monthly.clone()));
            assert_eq!(read("ord_3"), None);
        });
    }

    #[test]
    fn an_order_changes_state_and_keeps_its_first_times() {
        each_store("an_order_changes_state", |store| {
            store
                .write_with(|tx| {
                    tx.insert_order(&order("ord_1", "cs_1"))?;
                    tx.set_order_status("ord_1", "pending", false, 10)?;
                    tx.set_order_status("ord_1", "paid", true, 20)?;
                    tx.set_order_status("ord_1", "paid", true, 30)?;
                    tx.set_fulfilled("ord_1", 40)?;
                    tx.set_fulfilled("ord_1", 50)?;
                    tx.set_order_status("ord_1", "fulfilled", true, 60)?;
                    tx.set_order_subscription("ord_1", "sub_1")
                })
                .unwrap();
            let read = store.read_with(|r| r.order("ord_1")).unwrap().unwrap();
            assert_eq!(read.status, "fulfilled");
            assert_eq!((read.paid_at, read.fulfilled_at), (Some(20), Some(40)));
            assert_eq!(read.subscription_id.as_deref(), Some("sub_1"));
            assert_eq!(store.read_with(|r| r.paid_orders()).unwrap(), 0);
        });
    }
}
