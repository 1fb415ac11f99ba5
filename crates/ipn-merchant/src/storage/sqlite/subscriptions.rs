//! The `subscriptions` table.

use ipn_core::subscription::Subscription;
use rusqlite::{OptionalExtension as _, params};

use super::Sql;
use crate::model::SubscriptionStatus;
use crate::storage::StoreError;
use crate::storage::subscriptions::{
    SubscriptionFacts, SubscriptionReads, SubscriptionRow, SubscriptionWrites,
};

impl Sql<'_> {
    /// Runs one `UPDATE … WHERE id = ?1` with `value` as `?2`.
    fn update_subscription(
        &self,
        sql: &str,
        id: &str,
        value: impl rusqlite::ToSql,
    ) -> Result<(), StoreError> {
        self.0.prepare_cached(sql)?.execute(params![id, value])?;
        Ok(())
    }
}

impl SubscriptionReads for Sql<'_> {
    fn subscription(&self, id: &str) -> Result<Option<SubscriptionRow>, StoreError> {
        let row = self
            .0
            .prepare_cached(
                "SELECT status, customer_email, paid_through, cycles_paid, created_at,
                     updated_at, signed_up_at, order_id
                 FROM subscriptions WHERE id = ?1",
            )?
            .query_row([id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, Option<i64>>(2)?,
                    row.get::<_, u32>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, i64>(5)?,
                    row.get::<_, Option<i64>>(6)?,
                    row.get::<_, Option<String>>(7)?,
                ))
            })
            .optional()?;
        let Some((
            status,
            customer_email,
            paid_through,
            cycles_paid,
            created_at,
            updated_at,
            signed_up_at,
            order_id,
        )) = row
        else {
            return Ok(None);
        };
        Ok(Some(SubscriptionRow {
            id: id.to_owned(),
            status: SubscriptionStatus::parse(&status).ok_or_else(|| {
                anyhow::anyhow!("stored subscription status {status:?} is unknown")
            })?,
            customer_email,
            paid_through,
            cycles_paid,
            signed_up_at,
            order_id,
            created_at,
            updated_at,
        }))
    }

    fn subscription_facts(&self, id: &str) -> Result<Option<SubscriptionFacts>, StoreError> {
        let row = self
            .0
            .prepare_cached(
                "SELECT object, canceled_at IS NOT NULL, expired_at IS NOT NULL,
                     last_payment_pos, last_failure_pos,
                     order_id IS NOT NULL OR link_checked = 1
                 FROM subscriptions WHERE id = ?1",
            )?
            .query_row([id], |row| {
                Ok((
                    row.get::<_, Option<String>>(0)?,
                    SubscriptionFacts {
                        object: None,
                        canceled: row.get(1)?,
                        expired: row.get(2)?,
                        last_payment_at: row.get(3)?,
                        last_failure_at: row.get(4)?,
                        link_decided: row.get(5)?,
                    },
                ))
            })
            .optional()?;
        let Some((object, facts)) = row else {
            return Ok(None);
        };
        let object = object
            .map(|json| serde_json::from_str::<Subscription>(&json))
            .transpose()?;
        Ok(Some(SubscriptionFacts { object, ..facts }))
    }
}

impl SubscriptionWrites for Sql<'_> {
    fn ensure_subscription(
        &self,
        id: &str,
        email: Option<&str>,
        merchant_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO subscriptions (id, status, customer_email, merchant_id, created_at,
                     updated_at)
                 VALUES (?1, 'active', ?2, ?3, ?4, ?4)
                 ON CONFLICT (id) DO UPDATE SET
                     customer_email = COALESCE(subscriptions.customer_email,
                                               excluded.customer_email),
                     merchant_id = COALESCE(subscriptions.merchant_id, excluded.merchant_id)",
            )?
            .execute(params![id, email, merchant_id, now])?;
        Ok(())
    }

    fn subscription_paid(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.update_subscription(
            "UPDATE subscriptions SET last_payment_pos = MAX(COALESCE(last_payment_pos, 0), ?2)
             WHERE id = ?1",
            id,
            at,
        )
    }

    fn subscription_failed(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.update_subscription(
            "UPDATE subscriptions SET last_failure_pos = MAX(COALESCE(last_failure_pos, 0), ?2)
             WHERE id = ?1",
            id,
            at,
        )
    }

    fn subscription_canceled(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.update_subscription(
            "UPDATE subscriptions SET canceled_at = COALESCE(canceled_at, ?2) WHERE id = ?1",
            id,
            at,
        )
    }

    fn subscription_expired(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.update_subscription(
            "UPDATE subscriptions SET expired_at = COALESCE(expired_at, ?2) WHERE id = ?1",
            id,
            at,
        )
    }

    fn subscription_signed_up(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.update_subscription(
            "UPDATE subscriptions SET signed_up_at = COALESCE(signed_up_at, ?2) WHERE id = ?1",
            id,
            at,
        )
    }

    fn save_subscription_object(
        &self,
        id: &str,
        object: &Subscription,
        paid_through: Option<i64>,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE subscriptions SET object = ?2,
                     paid_through = MAX(COALESCE(paid_through, ?3), COALESCE(?3, paid_through))
                 WHERE id = ?1",
            )?
            .execute(params![id, serde_json::to_string(object)?, paid_through])?;
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
        self.0
            .prepare_cached(
                "UPDATE subscriptions SET status = ?2, cycles_paid = ?3, updated_at = ?5,
                     paid_through = MAX(COALESCE(paid_through, ?4), COALESCE(?4, paid_through))
                 WHERE id = ?1",
            )?
            .execute(params![id, status.as_str(), cycles_paid, paid_through, now])?;
        Ok(())
    }

    fn decide_subscription_link(&self, id: &str) -> Result<(), StoreError> {
        self.update_subscription(
            "UPDATE subscriptions SET link_checked = ?2 WHERE id = ?1",
            id,
            true,
        )
    }

    fn set_subscription_order(&self, id: &str, order_id: &str) -> Result<(), StoreError> {
        self.update_subscription(
            "UPDATE subscriptions SET order_id = ?2 WHERE id = ?1",
            id,
            order_id,
        )
    }
}
