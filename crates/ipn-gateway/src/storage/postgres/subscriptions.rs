//! Subscriptions. `next_step_at` is when billing acts next; billing finds
//! due subscriptions through its index, never a scan.

use anyhow::Context as _;
use ipn_core::id::{MerchantId, SubscriptionId};
use ipn_storage::postgres::{Conn, parse_column};

use super::to_u32;
use crate::clock::{Millis, from_millis};
use crate::model::StoredSubscription;
use crate::storage::StoreError;

/// A merchant's subscription; `lock` holds its row until the writer's
/// transaction ends (see `payments::find`).
pub(super) fn find(
    conn: &Conn,
    merchant: MerchantId,
    id: SubscriptionId,
    lock: bool,
) -> Result<Option<StoredSubscription>, StoreError> {
    let sql = if lock {
        "SELECT object, method, failed_attempts, next_step_at FROM subscriptions
         WHERE id = $1 AND merchant_id = $2 FOR UPDATE"
    } else {
        "SELECT object, method, failed_attempts, next_step_at FROM subscriptions
         WHERE id = $1 AND merchant_id = $2"
    };
    let Some(row) = conn.query_opt(sql, &[&id.to_string(), &merchant.to_string()])? else {
        return Ok(None);
    };
    let next: Option<Millis> = row.try_get(3)?;
    Ok(Some(StoredSubscription {
        subscription: serde_json::from_str(row.try_get(0)?).context("subscriptions.object")?,
        method: serde_json::from_str(row.try_get(1)?).context("subscriptions.method")?,
        failed_attempts: to_u32(row.try_get::<_, i32>(2)?.into(), "failed_attempts")?,
        next_action_at: next.map(from_millis),
    }))
}

/// Inserts or updates a subscription.
pub(super) fn save(tx: &Conn, row: &StoredSubscription) -> Result<(), StoreError> {
    let sub = &row.subscription;
    tx.execute(
        "INSERT INTO subscriptions (id, merchant_id, status, method, object, failed_attempts,
                                    next_step_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, method = excluded.method,
             object = excluded.object, failed_attempts = excluded.failed_attempts,
             next_step_at = excluded.next_step_at",
        &[
            &sub.id.to_string(),
            &sub.merchant_id.to_string(),
            &sub.status.as_str(),
            &serde_json::to_string(&row.method)?,
            &serde_json::to_string(sub)?,
            &i32::try_from(row.failed_attempts)?,
            &row.next_action_at.map(crate::clock::to_millis),
            &crate::clock::to_millis(sub.created_at),
        ],
    )?;
    Ok(())
}

/// Subscriptions whose next billing step is due at `now`, earliest first.
pub(super) fn due(
    conn: &Conn,
    now: Millis,
    limit: u32,
) -> Result<Vec<(MerchantId, SubscriptionId)>, StoreError> {
    conn.query(
        "SELECT merchant_id, id FROM subscriptions
         WHERE next_step_at IS NOT NULL AND next_step_at <= $1
         ORDER BY next_step_at LIMIT $2",
        &[&now, &i64::from(limit)],
    )?
    .iter()
    .map(|row| {
        Ok((
            parse_column(row, 0, MerchantId::parse)?,
            parse_column(row, 1, SubscriptionId::parse)?,
        ))
    })
    .collect()
}

/// When the next billing step of any subscription is due.
pub(super) fn next_step(conn: &Conn) -> Result<Option<Millis>, StoreError> {
    Ok(conn
        .query_one(
            "SELECT MIN(next_step_at) FROM subscriptions WHERE next_step_at IS NOT NULL",
            &[],
        )?
        .try_get(0)?)
}
