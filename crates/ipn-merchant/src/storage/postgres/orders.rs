//! The `orders` and `order_items` tables.

use anyhow::Context as _;
use ipn_core::money::{Currency, Money};
use ipn_core::payment::ItemKind;
use ipn_storage::postgres::{opt_text, text};

use super::{Pg, to_u32};
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

impl OrderReads for Pg<'_> {
    fn order(&self, id: &str) -> Result<Option<Order>, StoreError> {
        let id = text(id);
        let Some(row) = self.0.query_opt(
            "SELECT status, customer_email, currency, total, checkout_session_id,
                 checkout_url, created_at, merchant_id, paid_at, fulfilled_at, plan,
                 subscription_id
             FROM orders WHERE id = $1",
            &[&id],
        )?
        else {
            return Ok(None);
        };
        let currency = Currency::parse(row.try_get(2)?)?;
        let lines = self
            .0
            .query(
                "SELECT sku, name, kind, quantity, unit_amount, amount
                 FROM order_items WHERE order_id = $1 ORDER BY line",
                &[&id],
            )?
            .iter()
            .map(|line| {
                Ok(Line {
                    sku: line.try_get(0)?,
                    name: line.try_get(1)?,
                    kind: parse_kind(line.try_get(2)?)?,
                    quantity: to_u32(line.try_get(3)?, "order_items.quantity")?,
                    unit_price: Money::new(line.try_get(4)?, currency),
                    total: Money::new(line.try_get(5)?, currency),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let plan: Option<&str> = row.try_get(10)?;
        Ok(Some(Order {
            id: id.into_owned(),
            status: row.try_get(0)?,
            customer_email: row.try_get(1)?,
            total: Money::new(row.try_get(3)?, currency),
            lines,
            checkout_session_id: row.try_get(4)?,
            checkout_url: row.try_get(5)?,
            merchant_id: row.try_get(7)?,
            created_at: row.try_get(6)?,
            paid_at: row.try_get(8)?,
            fulfilled_at: row.try_get(9)?,
            plan: plan
                .map(serde_json::from_str)
                .transpose()
                .context("orders.plan")?,
            subscription_id: row.try_get(11)?,
        }))
    }

    fn paid_orders(&self) -> Result<u64, StoreError> {
        let count: i64 = self
            .0
            .query_one("SELECT count(*) FROM orders WHERE status = 'paid'", &[])?
            .try_get(0)?;
        Ok(u64::try_from(count)?)
    }
}

impl OrderWrites for Pg<'_> {
    fn insert_order(&self, order: &Order) -> Result<(), StoreError> {
        let id = text(&order.id);
        self.0.execute(
            "INSERT INTO orders (id, status, customer_email, currency, total,
                 checkout_session_id, checkout_url, created_at, merchant_id, plan)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &id,
                &text(&order.status),
                &text(&order.customer_email),
                &order.total.currency().code(),
                &order.total.minor(),
                &text(&order.checkout_session_id),
                &text(&order.checkout_url),
                &order.created_at,
                &opt_text(order.merchant_id.as_deref()),
                &order
                    .plan
                    .map(|plan| serde_json::to_string(&plan))
                    .transpose()?,
            ],
        )?;
        if order.lines.is_empty() {
            return Ok(());
        }
        // Every line in one statement, as columns of arrays.
        let mut numbers = Vec::with_capacity(order.lines.len());
        let (mut skus, mut names, mut kinds) = (Vec::new(), Vec::new(), Vec::new());
        let (mut quantities, mut units, mut amounts) = (Vec::new(), Vec::new(), Vec::new());
        for (index, line) in order.lines.iter().enumerate() {
            numbers.push(i64::try_from(index + 1)?);
            skus.push(text(&line.sku));
            names.push(text(&line.name));
            kinds.push(kind_str(line.kind));
            quantities.push(i64::from(line.quantity));
            units.push(line.unit_price.minor());
            amounts.push(line.total.minor());
        }
        self.0.execute(
            "INSERT INTO order_items (order_id, line, sku, name, kind, quantity, unit_amount,
                 amount)
             SELECT $1::text, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[],
                 $6::bigint[], $7::bigint[], $8::bigint[])",
            &[
                &id,
                &numbers,
                &skus,
                &names,
                &kinds,
                &quantities,
                &units,
                &amounts,
            ],
        )?;
        Ok(())
    }

    fn set_order_status(
        &self,
        id: &str,
        status: &str,
        paid: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE orders SET status = $2, updated_at = $3,
                 paid_at = CASE WHEN $4 THEN COALESCE(paid_at, $3) ELSE paid_at END
             WHERE id = $1",
            &[&text(id), &text(status), &now, &paid],
        )?;
        Ok(())
    }

    fn set_fulfilled(&self, id: &str, now: i64) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE orders SET fulfilled_at = COALESCE(fulfilled_at, $2), updated_at = $2
             WHERE id = $1",
            &[&text(id), &now],
        )?;
        Ok(())
    }

    fn set_order_subscription(&self, id: &str, subscription_id: &str) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE orders SET subscription_id = $2 WHERE id = $1",
            &[&text(id), &text(subscription_id)],
        )?;
        Ok(())
    }
}
