//! The `subscriptions` table.

use anyhow::Context as _;
use ipn_core::subscription::Subscription;
use ipn_storage::postgres::{Param, opt_text, text};

use super::{Pg, to_u32};
use crate::model::SubscriptionStatus;
use crate::storage::StoreError;
use crate::storage::subscriptions::{
    SubscriptionFacts, SubscriptionReads, SubscriptionRow, SubscriptionWrites,
};

impl Pg<'_> {
    /// Runs one `UPDATE … WHERE id = $1` with `value` as `$2`.
    fn update_subscription(&self, sql: &str, id: &str, value: Param<'_>) -> Result<(), StoreError> {
        self.0.execute(sql, &[&text(id), value])?;
        Ok(())
    }
}

impl SubscriptionReads for Pg<'_> {
    fn subscription(&self, id: &str) -> Result<Option<SubscriptionRow>, StoreError> {
        let Some(row) = self.0.query_opt(
            "SELECT status, customer_email, paid_through, cycles_paid, created_at,
                 updated_at, signed_up_at, order_id
             FROM subscriptions WHERE id = $1",
            &[&text(id)],
        )?
        else {
            return Ok(None);
        };
        let status: &str = row.try_get(0)?;
        Ok(Some(SubscriptionRow {
            id: id.to_owned(),
            status: SubscriptionStatus::parse(status).ok_or_else(|| {
                anyhow::anyhow!("stored subscription status {status:?} is unknown")
            })?,
            customer_email: row.try_get(1)?,
            paid_through: row.try_get(2)?,
            cycles_paid: to_u32(row.try_get(3)?, "subscriptions.cycles_paid")?,
            signed_up_at: row.try_get(6)?,
            order_id: row.try_get(7)?,
            created_at: row.try_get(4)?,
            updated_at: row.try_get(5)?,
        }))
    }

    fn subscription_facts(&self, id: &str) -> Result<Option<SubscriptionFacts>, StoreError> {
        let Some(row) = self.0.query_opt(
            "SELECT object, canceled_at IS NOT NULL, expired_at IS NOT NULL,
                 last_payment_pos, last_failure_pos, order_id IS NOT NULL OR link_checked
             FROM subscriptions WHERE id = $1",
            &[&text(id)],
        )?
        else {
            return Ok(None);
        };
        let object: Option<&str> = row.try_get(0)?;
        Ok(Some(SubscriptionFacts {
            object: object
                .map(serde_json::from_str::<Subscription>)
                .transpose()
                .context("subscriptions.object")?,
            canceled: row.try_get(1)?,
            expired: row.try_get(2)?,
            last_payment_at: row.try_get(3)?,
            last_failure_at: row.try_get(4)?,
            link_decided: row.try_get(5)?,
        }))
    }
}

impl SubscriptionWrites for Pg<'_> {
    fn ensure_subscription(
        &self,
        id: &str,
        email: Option<&str>,
        merchant_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO subscriptions (id, status, customer_email, merchant_id, created_at,
                 updated_at)
             VALUES ($1, 'active', $2, $3, $4, $4)
             ON CONFLICT (id) DO UPDATE SET
                 customer_email = COALESCE(subscriptions.customer_email,
                                           excluded.customer_email),
                 merchant_id = COALESCE(subscriptions.merchant_id, excluded.merchant_id)",
            &[&text(id), &opt_text(email), &opt_text(merchant_id), &now],
        )?;
        Ok(())
    }

    fn subscription_paid(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.update_subscription(
            "UPDATE subscriptions
             SET last_payment_pos = GREATEST(COALESCE(last_payment_pos, 0), $2)
             WHERE id = $1",
            id,
            &at,
        )
    }

    fn subscription_failed(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.update_subscription(
            "UPDATE subscriptions
             SET last_failure_pos = GREATEST(COALESCE(last_failure_pos, 0), $2)
             WHERE id = $1",
            id,
            &at,
        )
    }

    fn subscription_canceled(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.update_subscription(
            "UPDATE subscriptions SET canceled_at = COALESCE(canceled_at, $2) WHERE id = $1",
            id,
            &at,
        )
    }

    fn subscription_expired(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.update_subscription(
            "UPDATE subscriptions SET expired_at = COALESCE(expired_at, $2) WHERE id = $1",
            id,
            &at,
        )
    }

    fn subscription_signed_up(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.update_subscription(
            "UPDATE subscriptions SET signed_up_at = COALESCE(signed_up_at, $2) WHERE id = $1",
            id,
            &at,
        )
    }

    fn save_subscription_object(
        &self,
        id: &str,
        object: &Subscription,
        paid_through: Option<i64>,
    ) -> Result<(), StoreError> {
        // GREATEST skips a NULL where SQLite's MAX gives NULL; with each
        // side falling back on the other, both give the later of the two,
        // or NULL only when both are.
        self.0.execute(
            "UPDATE subscriptions SET object = $2,
                 paid_through = GREATEST(COALESCE(paid_through, $3), COALESCE($3, paid_through))
             WHERE id = $1",
            &[&text(id), &serde_json::to_string(object)?, &paid_through],
        )?;
        Ok(())
    }

    fn settle_subscription(
        &self,
        id: &str,
        status: SubscriptionStatus,
        cycles_paid: u32,
        paid_through: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE subscriptions SET status = $2, cycles_paid = $3, updated_at = $5,
                 paid_through = GREATEST(COALESCE(paid_through, $4), COALESCE($4, paid_through))
             WHERE id = $1",
            &[
                &text(id),
                &status.as_str(),
                &i64::from(cycles_paid),
                &paid_through,
                &now,
            ],
        )?;
        Ok(())
    }

    fn decide_subscription_link(&self, id: &str) -> Result<(), StoreError> {
        self.update_subscription(
            "UPDATE subscriptions SET link_checked = $2 WHERE id = $1",
            id,
            &true,
        )
    }

    fn set_subscription_order(&self, id: &str, order_id: &str) -> Result<(), StoreError> {
        self.update_subscription(
            "UPDATE subscriptions SET order_id = $2 WHERE id = $1",
            id,
            &text(order_id),
        )
    }
}
