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
