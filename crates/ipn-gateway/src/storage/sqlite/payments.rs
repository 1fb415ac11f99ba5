//! Payments (refunds and reversals are payments too, with a parent). The
//! `object` column is the payment as events carry it; the others are for
//! lookups.

use ipn_core::id::{MerchantId, PaymentId};
use ipn_storage::sqlite::conversion;
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::model::StoredPayment;
use crate::storage::StoreError;

pub(super) fn find(
    conn: &Connection,
    merchant: MerchantId,
    id: PaymentId,
) -> Result<Option<StoredPayment>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT object, method FROM payments WHERE id = ?1 AND merchant_id = ?2")?
        .query_row(params![id.to_string(), merchant.to_string()], |row| {
            let object: String = row.get(0)?;
            let method: String = row.get(1)?;
            let payment =
                serde_json::from_str(&object).map_err(|e| conversion(0, e.to_string()))?;
            let method = serde_json::from_str(&method).map_err(|e| conversion(1, e.to_string()))?;
            Ok(StoredPayment { payment, method })
        })
        .optional()?)
}

/// Inserts a payment, or updates its status and object.
pub(super) fn save(tx: &Connection, row: &StoredPayment) -> Result<(), StoreError> {
    let p = &row.payment;
    tx.prepare_cached(
        "INSERT INTO payments (id, merchant_id, parent_id, invoice, status, method, object, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, object = excluded.object",
    )?
    .execute(params![
        p.id.to_string(),
        p.merchant_id.to_string(),
        p.parent_id.map(|id| id.to_string()),
        p.invoice,
        p.status.as_str(),
        serde_json::to_string(&row.method)?,
        serde_json::to_string(p)?,
        crate::clock::to_millis(p.created_at),
    ])?;
    Ok(())
}
