//! The `payments`, `held_claims`, `flags` and `applied_keys` tables.

use ipn_core::event::EventType;
use ipn_core::money::{Currency, Money};
use rusqlite::{OptionalExtension as _, params};

use super::Sql;
use crate::model::{ChargeStatus, Fact, PaymentKind};
use crate::storage::StoreError;
use crate::storage::inbox::InboxId;
use crate::storage::payments::{HeldClaim, Owner, PaymentReads, PaymentRecord, PaymentWrites};

pub(super) fn column(owner: Owner<'_>) -> &'static str {
    match owner {
        Owner::Order(_) => "order_id",
        Owner::Subscription(_) => "subscription_id",
    }
}

pub(super) fn owner_id(owner: Owner<'_>) -> &str {
    match owner {
        Owner::Order(id) | Owner::Subscription(id) => id,
    }
}

/// A payment's `kind` and `status` columns as a [`PaymentKind`].
fn parse_kind(kind: &str, status: &str) -> Result<PaymentKind, StoreError> {
    Ok(match kind {
        "charge" => PaymentKind::Charge(
            ChargeStatus::parse(status)
                .ok_or_else(|| anyhow::anyhow!("stored charge status {status:?} is unknown"))?,
        ),
        "refund" => PaymentKind::Refund,
        "reversal" => PaymentKind::Reversal,
        "reversal_canceled" => PaymentKind::ReversalCanceled,
        other => anyhow::bail!("stored payment kind {other:?} is unknown"),
    })
}

impl PaymentReads for Sql<'_> {
    fn payment_order(&self, txn_id: &str) -> Result<Option<Option<String>>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT order_id FROM payments WHERE txn_id = ?1")?
            .query_row([txn_id], |row| row.get(0))
            .optional()?)
    }

    fn facts(&self, owner: Owner<'_>) -> Result<Vec<Fact>, StoreError> {
        let column = column(owner);
        let mut statement = self.0.prepare_cached(&format!(
            "SELECT txn_id, parent_id, kind, status, amount FROM payments
             WHERE valid = 1 AND kind = 'charge' AND {column} = ?1
             UNION ALL
             SELECT child.txn_id, child.parent_id, child.kind, child.status, child.amount
             FROM payments AS child JOIN payments AS charge ON charge.txn_id = child.parent_id
             WHERE child.valid = 1 AND child.checked = 1 AND charge.valid = 1
               AND charge.kind = 'charge' AND charge.{column} = ?1
             ORDER BY 1"
        ))?;
        let rows = statement.query_map([owner_id(owner)], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(4)?,
            ))
        })?;
        rows.map(|row| {
            let (txn_id, parent_id, kind, status, amount) = row?;
            Ok(Fact {
                txn_id,
                parent_id,
                kind: parse_kind(&kind, &status)?,
                amount,
            })
        })
        .collect()
    }

    fn paid_periods(&self, subscription_id: &str) -> Result<u32, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT COUNT(*) FROM payments
                 WHERE subscription_id = ?1 AND kind = 'charge' AND status = 'completed'
                   AND valid = 1",
            )?
            .query_row([subscription_id], |row| row.get(0))?)
    }

    fn held_for_order(&self, order_id: &str) -> Result<Vec<HeldClaim>, StoreError> {
        let mut statement = self.0.prepare_cached(
            "SELECT held.inbox_id, held.txn_id, held.parent_id, held.kind, held.event_type,
                 held.amount, held.currency, held.receiver, held.livemode, held.invoice,
                 held.subscription_id, held.payer_email
             FROM held_claims AS held JOIN payments AS charge ON charge.txn_id = held.parent_id
             WHERE charge.kind = 'charge' AND charge.order_id = ?1
             ORDER BY held.inbox_id",
        )?;
        let rows = statement.query_map([order_id], |row| {
            Ok((
                row.get::<_, InboxId>(0)?,
                (
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                ),
                (
                    row.get::<_, i64>(5)?,
                    row.get::<_, String>(6)?,
                    row.get::<_, Option<String>>(7)?,
                    row.get::<_, bool>(8)?,
                ),
                (
                    row.get::<_, Option<String>>(9)?,
                    row.get::<_, Option<String>>(10)?,
                    row.get::<_, Option<String>>(11)?,
                ),
            ))
        })?;
        rows.map(|row| {
            let (
                inbox_id,
                (txn_id, parent_id, kind, event_type),
                (amount, currency, receiver, livemode),
                (invoice, subscription_id, payer_email),
            ) = row?;
            Ok(HeldClaim {
                inbox_id,
                event_type: EventType::parse_lenient(&event_type)?,
                txn_id,
                parent_id,
                kind: parse_kind(&kind, "completed")?,
                amount: Money::new(amount, Currency::parse(&currency)?),
                invoice,
                receiver,
                livemode,
                subscription_id,
                payer_email,
            })
        })
        .collect()
    }

    fn claimed(&self, keys: &[String]) -> Result<Option<String>, StoreError> {
        let mut statement = self
            .0
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM applied_keys WHERE key = ?1)")?;
        for key in keys {
            if statement.query_row([key], |row| row.get::<_, bool>(0))? {
                return Ok(Some(key.clone()));
            }
        }
        Ok(None)
    }

    fn is_flagged(&self, order_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM flags WHERE order_id = ?1 AND resolved_at IS NULL)",
            )?
            .query_row([order_id], |row| row.get(0))?)
    }
}

impl PaymentWrites for Sql<'_> {
    fn record_payment(&self, record: &PaymentRecord<'_>) -> Result<(), StoreError> {
        let status = match record.kind {
            PaymentKind::Charge(status) => status.as_str(),
            _ => "completed",
        };
        self.0
            .prepare_cached(
                "INSERT INTO payments (txn_id, parent_id, kind, status, order_id,
                     subscription_id, amount, currency, valid, inbox_id, updated_at, receiver,
                     livemode, checked)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 ON CONFLICT (txn_id) DO UPDATE SET
                     status = CASE
                         WHEN payments.valid = 0 AND excluded.valid = 1 THEN excluded.status
                         WHEN excluded.valid = 1 AND payments.status = 'pending'
                              AND excluded.status <> 'pending' THEN excluded.status
                         ELSE payments.status END,
                     order_id = CASE WHEN payments.valid = 0 AND excluded.valid = 1
                                     THEN excluded.order_id
                                     ELSE COALESCE(payments.order_id, excluded.order_id) END,
                     amount = CASE WHEN payments.valid = 0 AND excluded.valid = 1
                                   THEN excluded.amount ELSE payments.amount END,
                     currency = CASE WHEN payments.valid = 0 AND excluded.valid = 1
                                     THEN excluded.currency ELSE payments.currency END,
                     receiver = CASE WHEN payments.valid = 0 AND excluded.valid = 1
                                     THEN excluded.receiver ELSE payments.receiver END,
                     livemode = CASE WHEN payments.valid = 0 AND excluded.valid = 1
                                     THEN excluded.livemode ELSE payments.livemode END,
                     inbox_id = CASE WHEN payments.valid = 0 AND excluded.valid = 1
                                     THEN excluded.inbox_id ELSE payments.inbox_id END,
                     valid = MAX(payments.valid, excluded.valid),
                     updated_at = excluded.updated_at",
            )?
            .execute(params![
                record.txn_id,
                record.parent_id,
                record.kind.as_str(),
                status,
                record.order_id,
                record.subscription_id,
                record.amount.minor(),
                record.amount.currency().code(),
                record.valid,
                record.inbox_id,
                record.at,
                record.receiver,
                record.livemode,
                true,
            ])?;
        Ok(())
    }

    fn hold(&self, claim: &HeldClaim) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO held_claims (inbox_id, txn_id, parent_id, kind, event_type, amount,
                     currency, receiver, livemode, invoice, subscription_id, payer_email)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                claim.inbox_id,
                claim.txn_id,
                claim.parent_id,
                claim.kind.as_str(),
                claim.event_type.as_str(),
                claim.amount.minor(),
                claim.amount.currency().code(),
                claim.receiver,
                claim.livemode,
                claim.invoice,
                claim.subscription_id,
                claim.payer_email,
            ])?;
        Ok(())
    }

    fn release(&self, inbox_id: InboxId) -> Result<(), StoreError> {
        self.0
            .prepare_cached("DELETE FROM held_claims WHERE inbox_id = ?1")?
            .execute([inbox_id])?;
        Ok(())
    }

    fn claim_key(&self, key: &str, inbox_id: InboxId) -> Result<bool, StoreError> {
        let inserted = self
            .0
            .prepare_cached(
                "INSERT INTO applied_keys (key, inbox_id) VALUES (?1, ?2)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![key, inbox_id])?;
        Ok(inserted == 1)
    }

    fn flag(
        &self,
        order_id: Option<&str>,
        inbox_id: InboxId,
        reason: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO flags (order_id, inbox_id, reason, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![order_id, inbox_id, reason, now])?;
        Ok(())
    }

    fn resolve_flag(&self, flag_id: i64, now: i64) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "UPDATE flags SET resolved_at = COALESCE(resolved_at, ?2) WHERE id = ?1
                 RETURNING COALESCE(order_id, '')",
            )?
            .query_row(params![flag_id, now], |row| row.get(0))
            .optional()?)
    }
}
