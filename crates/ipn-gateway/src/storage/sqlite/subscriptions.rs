//! Subscriptions. `next_step_at` is when billing acts next; billing finds
//! due subscriptions through its index, never a scan.

use ipn_core::id::{MerchantId, SubscriptionId};
use ipn_storage::sqlite::{conversion, parse_column};
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::clock::{Millis, from_millis};
use crate::model::StoredSubscription;
use crate::storage::StoreError;

pub(super) fn find(
    conn: &Connection,
    merchant: MerchantId,
    id: SubscriptionId,
) -> Result<Option<StoredSubscription>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT object, method, failed_attempts, next_step_at FROM subscriptions
         WHERE id = ?1 AND merchant_id = ?2",
        )?
        .query_row(params![id.to_string(), merchant.to_string()], |row| {
            let object: String = row.get(0)?;
            let method: String = row.get(1)?;
            let next: Option<Millis> = row.get(3)?;
            Ok(StoredSubscription {
                subscription: serde_json::from_str(&object)
                    .map_err(|e| conversion(0, e.to_string()))?,
                method: serde_json::from_str(&method).map_err(|e| conversion(1, e.to_string()))?,
                failed_attempts: row.get(2)?,
                next_action_at: next.map(from_millis),
            })
        })
        .optional()?)
}

/// Inserts or updates a subscription.
pub(super) fn save(tx: &Connection, row: &StoredSubscription) -> Result<(), StoreError> {
    let sub = &row.subscription;
    tx.prepare_cached(
        "INSERT INTO subscriptions (id, merchant_id, status, method, object, failed_attempts,
                                    next_step_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, method = excluded.method,
             object = excluded.object, failed_attempts = excluded.failed_attempts,
             next_step_at = excluded.next_step_at",
    )?
    .execute(params![
        sub.id.to_string(),
        sub.merchant_id.to_string(),
        sub.status.as_str(),
        serde_json::to_string(&row.method)?,
        serde_json::to_string(sub)?,
        row.failed_attempts,
        row.next_action_at.map(crate::clock::to_millis),
        crate::clock::to_millis(sub.created_at),
    ])?;
    Ok(())
}

/// Subscriptions whose next billing step is due at `now`, earliest first.
pub(super) fn due(
    conn: &Connection,
    now: Millis,
    limit: u32,
) -> Result<Vec<(MerchantId, SubscriptionId)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT merchant_id, id FROM subscriptions
         WHERE next_step_at IS NOT NULL AND next_step_at <= ?1
         ORDER BY next_step_at LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now, limit], |row| {
        Ok((
            parse_column(row, 0, MerchantId::parse)?,
            parse_column(row, 1, SubscriptionId::parse)?,
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// When the next billing step of any subscription is due.
pub(super) fn next_step(conn: &Connection) -> Result<Option<Millis>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT MIN(next_step_at) FROM subscriptions WHERE next_step_at IS NOT NULL",
        )?
        .query_row([], |row| row.get(0))?)
}
