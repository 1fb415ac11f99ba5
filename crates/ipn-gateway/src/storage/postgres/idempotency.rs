//! Idempotency keys: a POST's first answer, replayed for a retry with the
//! same key. Keys are per caller (`scope`: `admin` or a merchant id).

use anyhow::bail;
use ipn_storage::postgres::Conn;

use crate::clock::Millis;
use crate::storage::{IdempotentResponse, StoreError};

pub(super) fn find(
    conn: &Conn,
    scope: &str,
    key: &str,
) -> Result<Option<IdempotentResponse>, StoreError> {
    conn.query_opt(
        "SELECT request_hash, status, body FROM idempotency_keys WHERE scope = $1 AND key = $2",
        &[&scope, &key],
    )?
    .map(|row| {
        Ok(IdempotentResponse {
            request_hash: row.try_get(0)?,
            status: u16::try_from(row.try_get::<_, i32>(1)?)?,
            body: row.try_get(2)?,
        })
    })
    .transpose()
}

/// Claims the key with the request's answer. A key another transaction
/// claimed first (it committed while this one ran; the insert waits for
/// it) fails this request, which then rolls back alone: at most one
/// request's effect is kept under a key.
pub(super) fn save(
    tx: &Conn,
    scope: &str,
    key: &str,
    answer: &IdempotentResponse,
    now: Millis,
) -> Result<(), StoreError> {
    let claimed = tx.execute(
        "INSERT INTO idempotency_keys (scope, key, request_hash, status, body, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (scope, key) DO NOTHING",
        &[
            &scope,
            &key,
            &answer.request_hash,
            &i32::from(answer.status),
            &answer.body,
            &now,
        ],
    )?;
    if claimed == 0 {
        bail!("the Idempotency-Key was used by a request that committed meanwhile");
    }
    Ok(())
}
