//! The `payments`, `held_claims`, `flags` and `applied_keys` tables.

use ipn_core::event::EventType;
use ipn_core::money::{Currency, Money};
use ipn_storage::postgres::{Row, opt_text, text};

use super::Pg;
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

fn held_claim(row: &Row) -> Result<HeldClaim, StoreError> {
    Ok(HeldClaim {
        inbox_id: row.try_get(0)?,
        txn_id: row.try_get(1)?,
        parent_id: row.try_get(2)?,
        kind: parse_kind(row.try_get(3)?, "completed")?,
        event_type: EventType::parse_lenient(row.try_get(4)?)?,
        amount: Money::new(row.try_get(5)?, Currency::parse(row.try_get(6)?)?),
        receiver: row.try_get(7)?,
        livemode: row.try_get(8)?,
        invoice: row.try_get(9)?,
        subscription_id: row.try_get(10)?,
        payer_email: row.try_get(11)?,
    })
}

impl PaymentReads for Pg<'_> {
    fn payment_order(&self, txn_id: &str) -> Result<Option<Option<String>>, StoreError> {
        self.0
            .query_opt(
                "SELECT order_id FROM payments WHERE txn_id = $1",
                &[&text(txn_id)],
            )?
            .map(|row| Ok(row.try_get(0)?))
            .transpose()
    }

    fn facts(&self, owner: Owner<'_>) -> Result<Vec<Fact>, StoreError> {
        let column = column(owner);
        self.0
            .query(
                &format!(
                    "SELECT txn_id, parent_id, kind, status, amount FROM payments
                     WHERE valid AND kind = 'charge' AND {column} = $1
                     UNION ALL
                     SELECT child.txn_id, child.parent_id, child.kind, child.status,
                         child.amount
                     FROM payments AS child
                         JOIN payments AS charge ON charge.txn_id = child.parent_id
                     WHERE child.valid AND child.checked AND charge.valid
                       AND charge.kind = 'charge' AND charge.{column} = $1
                     ORDER BY 1"
                ),
                &[&text(owner_id(owner))],
            )?
            .iter()
            .map(|row| {
                Ok(Fact {
                    txn_id: row.try_get(0)?,
                    parent_id: row.try_get(1)?,
                    kind: parse_kind(row.try_get(2)?, row.try_get(3)?)?,
                    amount: row.try_get(4)?,
                })
            })
            .collect()
    }

    fn paid_periods(&self, subscription_id: &str) -> Result<u32, StoreError> {
        let count: i64 = self
            .0
            .query_one(
                "SELECT count(*) FROM payments
                 WHERE subscription_id = $1 AND kind = 'charge' AND status = 'completed'
                   AND valid",
                &[&text(subscription_id)],
            )?
            .try_get(0)?;
        super::to_u32(count, "paid periods")
    }

    fn held_for_order(&self, order_id: &str) -> Result<Vec<HeldClaim>, StoreError> {
        self.0
            .query(
                "SELECT held.inbox_id, held.txn_id, held.parent_id, held.kind, held.event_type,
                     held.amount, held.currency, held.receiver, held.livemode, held.invoice,
                     held.subscription_id, held.payer_email
                 FROM held_claims AS held
                     JOIN payments AS charge ON charge.txn_id = held.parent_id
                 WHERE charge.kind = 'charge' AND charge.order_id = $1
                 ORDER BY held.inbox_id",
                &[&text(order_id)],
            )?
            .iter()
            .map(held_claim)
            .collect()
    }

    fn claimed(&self, keys: &[String]) -> Result<Option<String>, StoreError> {
        for key in keys {
            let taken: bool = self
                .0
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM applied_keys WHERE key = $1)",
                    &[&text(key)],
                )?
                .try_get(0)?;
            if taken {
                return Ok(Some(key.clone()));
            }
        }
        Ok(None)
    }

    fn is_flagged(&self, order_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .0
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM flags WHERE order_id = $1 AND resolved_at IS NULL)",
                &[&text(order_id)],
            )?
            .try_get(0)?)
    }
}

impl PaymentWrites for Pg<'_> {
    fn record_payment(&self, record: &PaymentRecord<'_>) -> Result<(), StoreError> {
        let status = match record.kind {
            PaymentKind::Charge(status) => status.as_str(),
            _ => "completed",
        };
        self.0.execute(
            "INSERT INTO payments (txn_id, parent_id, kind, status, order_id,
                 subscription_id, amount, currency, valid, inbox_id, updated_at, receiver,
                 livemode, checked)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, true)
             ON CONFLICT (txn_id) DO UPDATE SET
                 status = CASE
                     WHEN NOT payments.valid AND excluded.valid THEN excluded.status
                     WHEN excluded.valid AND payments.status = 'pending'
                          AND excluded.status <> 'pending' THEN excluded.status
                     ELSE payments.status END,
                 order_id = CASE WHEN NOT payments.valid AND excluded.valid
                                 THEN excluded.order_id
                                 ELSE COALESCE(payments.order_id, excluded.order_id) END,
                 amount = CASE WHEN NOT payments.valid AND excluded.valid
                               THEN excluded.amount ELSE payments.amount END,
                 currency = CASE WHEN NOT payments.valid AND excluded.valid
                                 THEN excluded.currency ELSE payments.currency END,
                 receiver = CASE WHEN NOT payments.valid AND excluded.valid
                                 THEN excluded.receiver ELSE payments.receiver END,
                 livemode = CASE WHEN NOT payments.valid AND excluded.valid
                                 THEN excluded.livemode ELSE payments.livemode END,
                 inbox_id = CASE WHEN NOT payments.valid AND excluded.valid
                                 THEN excluded.inbox_id ELSE payments.inbox_id END,
                 valid = payments.valid OR excluded.valid,
                 updated_at = excluded.updated_at",
            &[
                &text(record.txn_id),
                &opt_text(record.parent_id),
                &record.kind.as_str(),
                &status,
                &opt_text(record.order_id),
                &opt_text(record.subscription_id),
                &record.amount.minor(),
                &record.amount.currency().code(),
                &record.valid,
                &record.inbox_id,
                &record.at,
                &opt_text(record.receiver),
                &record.livemode,
            ],
        )?;
        Ok(())
    }

    fn hold(&self, claim: &HeldClaim) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO held_claims (inbox_id, txn_id, parent_id, kind, event_type, amount,
                 currency, receiver, livemode, invoice, subscription_id, payer_email)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &[
                &claim.inbox_id,
                &text(&claim.txn_id),
                &text(&claim.parent_id),
                &claim.kind.as_str(),
                &text(claim.event_type.as_str()),
                &claim.amount.minor(),
                &claim.amount.currency().code(),
                &opt_text(claim.receiver.as_deref()),
                &claim.livemode,
                &opt_text(claim.invoice.as_deref()),
                &opt_text(claim.subscription_id.as_deref()),
                &opt_text(claim.payer_email.as_deref()),
            ],
        )?;
        Ok(())
    }

    fn release(&self, inbox_id: InboxId) -> Result<(), StoreError> {
        self.0
            .execute("DELETE FROM held_claims WHERE inbox_id = $1", &[&inbox_id])?;
        Ok(())
    }

    fn claim_key(&self, key: &str, inbox_id: InboxId) -> Result<bool, StoreError> {
        let inserted = self.0.execute(
            "INSERT INTO applied_keys (key, inbox_id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
            &[&text(key), &inbox_id],
        )?;
        Ok(inserted == 1)
    }

    fn flag(
        &self,
        order_id: Option<&str>,
        inbox_id: InboxId,
        reason: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO flags (order_id, inbox_id, reason, created_at)
             VALUES ($1, $2, $3, $4)",
            &[&opt_text(order_id), &inbox_id, &text(reason), &now],
        )?;
        Ok(())
    }

    fn resolve_flag(&self, flag_id: i64, now: i64) -> Result<Option<String>, StoreError> {
        self.0
            .query_opt(
                "UPDATE flags SET resolved_at = COALESCE(resolved_at, $2) WHERE id = $1
                 RETURNING COALESCE(order_id, '')",
                &[&flag_id, &now],
            )?
            .map(|row| Ok(row.try_get(0)?))
            .transpose()
    }
}
