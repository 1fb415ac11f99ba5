//! The shop's orders: one row per order and one per line.
//!
//! An order is stored only once its checkout session exists at the gateway
//! (the session id and URL are part of the row), so there is never an order
//! a customer cannot pay. Amounts are integer minor units of the order's
//! one currency, never floats.

use ipn_core::billing::Plan;
use ipn_core::money::{Currency, Money};
use ipn_core::payment::ItemKind;
use rusqlite::{Connection, OptionalExtension as _, Transaction, params};

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

fn kind_str(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Physical => "physical",
        ItemKind::Digital => "digital",
    }
}

fn parse_kind(text: &str) -> Result<ItemKind, StoreError> {
    match text {
        "physical" => Ok(ItemKind::Physical),
        "digital" => Ok(ItemKind::Digital),
        other => Err(anyhow::anyhow!("stored item kind {other:?} is unknown")),
    }
}

/// Stores a new order and its lines.
pub fn insert(tx: &Transaction<'_>, order: &Order) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO orders (id, status, customer_email, currency, total,
             checkout_session_id, checkout_url, created_at, merchant_id, plan)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        order.id,
        order.status,
        order.customer_email,
        order.total.currency().code(),
        order.total.minor(),
        order.checkout_session_id,
        order.checkout_url,
        order.created_at,
        order.merchant_id,
        order
            .plan
            .map(|plan| serde_json::to_string(&plan))
            .transpose()?,
    ])?;
    let mut line_insert = tx.prepare_cached(
        "INSERT INTO order_items (order_id, line, sku, name, kind, quantity, unit_amount, amount)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (index, line) in order.lines.iter().enumerate() {
        line_insert.execute(params![
            order.id,
            index + 1,
            line.sku,
            line.name,
            kind_str(line.kind),
            line.quantity,
            line.unit_price.minor(),
            line.total.minor(),
        ])?;
    }
    Ok(())
}

/// The order `id` with its lines, if there is one.
pub fn get(conn: &Connection, id: &str) -> Result<Option<Order>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT status, customer_email, currency, total, checkout_session_id,
                 checkout_url, created_at, merchant_id, paid_at, fulfilled_at, plan,
                 subscription_id
             FROM orders WHERE id = ?1",
        )?
        .query_row([id], |row| {
            Ok((
                (
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                ),
                (
                    row.get::<_, String>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, i64>(6)?,
                    row.get::<_, Option<String>>(7)?,
                    row.get::<_, Option<i64>>(8)?,
                    row.get::<_, Option<i64>>(9)?,
                ),
                (
                    row.get::<_, Option<String>>(10)?,
                    row.get::<_, Option<String>>(11)?,
                ),
            ))
        })
        .optional()?;
    let Some((
        (status, customer_email, currency, total),
        (session_id, url, created_at, merchant_id, paid_at, fulfilled_at),
        (plan, subscription_id),
    )) = row
    else {
        return Ok(None);
    };
    let currency = Currency::parse(&currency)?;
    let lines = conn
        .prepare_cached(
            "SELECT sku, name, kind, quantity, unit_amount, amount
             FROM order_items WHERE order_id = ?1 ORDER BY line",
        )?
        .query_map([id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, u32>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, i64>(5)?,
            ))
        })?
        .map(|row| {
            let (sku, name, kind, quantity, unit, amount) = row?;
            Ok(Line {
                sku,
                name,
                kind: parse_kind(&kind)?,
                quantity,
                unit_price: Money::new(unit, currency),
                total: Money::new(amount, currency),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some(Order {
        id: id.to_owned(),
        status,
        customer_email,
        total: Money::new(total, currency),
        lines,
        checkout_session_id: session_id,
        checkout_url: url,
        merchant_id,
        created_at,
        paid_at,
        fulfilled_at,
        plan: plan.map(|json| serde_json::from_str(&json)).transpose()?,
        subscription_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sqlite;

    #[test]
    fn an_order_reads_back_as_stored() {
        let mut conn = Connection::open_in_memory().unwrap();
        sqlite::migrate(&mut conn).unwrap();
        let usd = Currency::USD;
        let order = Order {
            id: "ord_1".into(),
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
            checkout_session_id: "cs_1".into(),
            checkout_url: "http://gw/checkout/cs_1".into(),
            merchant_id: Some("mer_1".into()),
            created_at: 42,
            paid_at: None,
            fulfilled_at: None,
            plan: None,
            subscription_id: None,
        };
        let monthly = Order {
            id: "ord_2".into(),
            checkout_session_id: "cs_2".into(),
            lines: order.lines[1..].to_vec(),
            total: Money::new(999, usd),
            plan: Some(Plan::new(ipn_core::subscription::Interval::Month, 1, 7, None).unwrap()),
            ..order.clone()
        };
        let tx = conn.transaction().unwrap();
        insert(&tx, &monthly).unwrap();
        insert(&tx, &order).unwrap();
        tx.commit().unwrap();
        assert_eq!(get(&conn, "ord_1").unwrap(), Some(order));
        assert_eq!(get(&conn, "ord_2").unwrap(), Some(monthly));
        assert_eq!(get(&conn, "ord_3").unwrap(), None);
    }
}
