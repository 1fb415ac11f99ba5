//! Payments (refunds and reversals are payments too, with a parent). The
//! `object` column is the payment as events carry it; the others are for
//! lookups.

use anyhow::Context as _;
use ipn_core::id::{MerchantId, PaymentId};
use ipn_storage::postgres::{Conn, opt_text};

use crate::model::StoredPayment;
use crate::storage::StoreError;

/// A merchant's payment; `lock` (inside the writer's transaction) holds
/// its row until the transaction ends, so no other writer changes it
/// between this read and the save that follows.
pub(super) fn find(
    conn: &Conn,
    merchant: MerchantId,
    id: PaymentId,
    lock: bool,
) -> Result<Option<StoredPayment>, StoreError> {
    let sql = if lock {
        "SELECT object, method FROM payments WHERE id = $1 AND merchant_id = $2 FOR UPDATE"
    } else {
        "SELECT object, method FROM payments WHERE id = $1 AND merchant_id = $2"
    };
    let Some(row) = conn.query_opt(sql, &[&id.to_string(), &merchant.to_string()])? else {
        return Ok(None);
    };
    Ok(Some(StoredPayment {
        payment: serde_json::from_str(row.try_get(0)?).context("payments.object")?,
        method: serde_json::from_str(row.try_get(1)?).context("payments.method")?,
    }))
}

/// Inserts a payment, or updates its status and object.
pub(super) fn save(tx: &Conn, row: &StoredPayment) -> Result<(), StoreError> {
    let p = &row.payment;
    tx.execute(
        "INSERT INTO payments (id, merchant_id, parent_id, invoice, status, method, object,
                               subscription_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, object = excluded.object",
        &[
            &p.id.to_string(),
            &p.merchant_id.to_string(),
            &p.parent_id.map(|id| id.to_string()),
            &opt_text(p.invoice.as_deref()),
            &p.status.as_str(),
            &serde_json::to_string(&row.method)?,
            &serde_json::to_string(p)?,
            &p.subscription_id.map(|id| id.to_string()),
            &crate::clock::to_millis(p.created_at),
        ],
    )?;
    Ok(())
}
