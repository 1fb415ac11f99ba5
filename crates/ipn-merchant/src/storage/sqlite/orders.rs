//! The `orders` and `order_items` tables.

use ipn_core::money::{Currency, Money};
use ipn_core::payment::ItemKind;
use rusqlite::{OptionalExtension as _, params};

use super::Sql;
use crate::storage::StoreError;
use crate::storage::orders::{Line, Order, OrderReads, OrderWrites};

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

impl OrderReads for Sql<'_> {
    fn order(&self, id: &str) -> Result<Option<Order>, StoreError> {
        let row = self
            .0
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
        let lines = self
            .0
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

    fn paid_orders(&self) -> Result<u64, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT count(*) FROM orders WHERE status = 'paid'")?
            .query_row([], |row| row.get(0))?)
    }
}

impl OrderWrites for Sql<'_> {
    fn insert_order(&self, order: &Order) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
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
        let mut line_insert = self.0.prepare_cached(
            "INSERT INTO order_items (order_id, line, sku, name, kind, quantity, unit_amount,
                 amount)
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

    fn set_order_status(
        &self,
        id: &str,
        status: &str,
        paid: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE orders SET status = ?2, updated_at = ?3,
                     paid_at = CASE WHEN ?4 THEN COALESCE(paid_at, ?3) ELSE paid_at END
                 WHERE id = ?1",
            )?
            .execute(params![id, status, now, paid])?;
        Ok(())
    }

    fn set_fulfilled(&self, id: &str, now: i64) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE orders SET fulfilled_at = COALESCE(fulfilled_at, ?2), updated_at = ?2
                 WHERE id = ?1",
            )?
            .execute(params![id, now])?;
        Ok(())
    }

    fn set_order_subscription(&self, id: &str, subscription_id: &str) -> Result<(), StoreError> {
        self.0
            .prepare_cached("UPDATE orders SET subscription_id = ?2 WHERE id = ?1")?
            .execute(params![id, subscription_id])?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use ipn_core::billing::Plan;

    use super::super::tests::store;
    use crate::storage::Store;

    use super::*;

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
        let (_dir, sqlite) = store();
        let store: &dyn Store = &sqlite;
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
        assert_eq!(read("ord_1"), Some(order));
        assert_eq!(read("ord_2"), Some(monthly));
        assert_eq!(read("ord_3"), None);
    }
}
