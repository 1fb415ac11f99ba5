//! Idempotency keys: a POST's first answer, replayed for a retry with the
//! same key. Keys are per caller (`scope`: `admin` or a merchant id).

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::clock::Millis;
use crate::storage::{IdempotentResponse, StoreError};

pub(super) fn find(
    conn: &Connection,
    scope: &str,
    key: &str,
) -> Result<Option<IdempotentResponse>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT request_hash, status, body FROM idempotency_keys WHERE scope = ?1 AND key = ?2",
        )?
        .query_row([scope, key], |row| {
            Ok(IdempotentResponse {
                request_hash: row.get(0)?,
                status: row.get(1)?,
                body: row.get(2)?,
            })
        })
        .optional()?)
}

pub(super) fn save(
    tx: &Connection,
    scope: &str,
    key: &str,
    answer: &IdempotentResponse,
    now: Millis,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO idempotency_keys (scope, key, request_hash, status, body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        scope,
        key,
        answer.request_hash,
        answer.status,
        answer.body,
        now
    ])?;
    Ok(())
}
