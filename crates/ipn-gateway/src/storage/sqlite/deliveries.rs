//! Deliveries (one per event and endpoint) and their attempts.

use std::sync::Arc;

use ipn_core::id::{EndpointId, EventId};
use ipn_storage::sqlite::parse_column;
use rusqlite::{Connection, Row, params};

use crate::clock::{Millis, from_millis};
use crate::model::{Attempt, AttemptStatus, DeliveryStatus};
use crate::storage::{AttemptDone, DeliveryNext, EndpointHealth, Scheduled, StoreError};

/// SQL that tells whether the delivery `d` matches the filter named by the
/// text parameter `?N`: `filter_sql(3)`. The names are `DeliveryFilter`'s,
/// the parameter's values.
pub(super) fn filter_sql(param: u8) -> String {
    format!(
        "CASE ?{param}
           WHEN 'pending' THEN d.status = 'pending'
           WHEN 'retrying' THEN d.status = 'pending' AND d.round_attempts > 0
           WHEN 'delivered' THEN d.status = 'delivered'
           WHEN 'failed' THEN d.status = 'failed' OR (d.status = 'pending' AND d.round_attempts > 0)
           WHEN 'dead' THEN d.status = 'failed'
         END"
    )
}

/// Every pending delivery, one at a time to `each`, in event order, so
/// ordered endpoints queue each object's deliveries as they were created.
pub(super) fn pending(
    conn: &Connection,
    each: &mut dyn FnMut(Scheduled),
) -> Result<usize, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.id, d.event_id, d.endpoint_id, d.next_attempt_at, d.round_attempts,
                d.attempts, e.object_id
         FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE d.status = 'pending' ORDER BY e.seq",
    )?;
    let mut count = 0;
    for row in stmt.query_map([], scheduled_from_row)? {
        each(row?);
        count += 1;
    }
    Ok(count)
}

/// Puts the event's deliveries to these endpoints back to pending, due
/// `now`; creates those that never existed.
pub(super) fn resend(
    tx: &Connection,
    event_id: EventId,
    endpoint_ids: &[EndpointId],
    now: Millis,
) -> Result<Vec<Scheduled>, StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO deliveries (event_id, endpoint_id, status, attempts, round_attempts, next_attempt_at)
         VALUES (?1, ?2, 'pending', 0, 0, ?3)
         ON CONFLICT (event_id, endpoint_id) DO UPDATE
           SET status = 'pending', round_attempts = 0, next_attempt_at = excluded.next_attempt_at
         RETURNING id, event_id, endpoint_id, next_attempt_at, round_attempts, attempts,
                   (SELECT object_id FROM events WHERE id = ?1)",
    )?;
    let mut scheduled = Vec::with_capacity(endpoint_ids.len());
    for endpoint_id in endpoint_ids {
        scheduled.push(stmt.query_row(
            params![event_id.to_string(), endpoint_id.to_string(), now],
            scheduled_from_row,
        )?);
    }
    Ok(scheduled)
}

/// Puts an endpoint's failed deliveries of events created at or after
/// `since` back to pending, due `now`, in event order (so ordered endpoints
/// queue them as created).
pub(super) fn recover(
    tx: &Connection,
    endpoint_id: EndpointId,
    since: Millis,
    now: Millis,
) -> Result<Vec<Scheduled>, StoreError> {
    let scheduled = tx
        .prepare_cached(
            "SELECT d.id, d.event_id, d.endpoint_id, ?3, 0, d.attempts, e.object_id
             FROM deliveries d JOIN events e ON e.id = d.event_id
             WHERE d.endpoint_id = ?1 AND d.status = 'failed' AND e.created_at >= ?2
             ORDER BY e.seq",
        )?
        .query_map(
            params![endpoint_id.to_string(), since, now],
            scheduled_from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut update = tx.prepare_cached(
        "UPDATE deliveries SET status = 'pending', round_attempts = 0, next_attempt_at = ?2
         WHERE id = ?1",
    )?;
    for delivery in &scheduled {
        update.execute(params![delivery.delivery_id, now])?;
    }
    Ok(scheduled)
}

/// Records an attempt's outcome and moves its delivery on.
pub(super) fn record_attempt(tx: &Connection, done: &AttemptDone) -> Result<(), StoreError> {
    let a = &done.attempt;
    let attempted_at = crate::clock::to_millis(a.attempted_at);
    tx.prepare_cached(
        "INSERT INTO attempts (delivery_id, number, status, response_status, duration_ms, error,
                               response_body, attempted_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        done.delivery_id,
        a.number,
        match a.status {
            AttemptStatus::Succeeded => "succeeded",
            AttemptStatus::Failed => "failed",
        },
        a.response_status,
        a.duration_ms,
        a.error,
        a.response_body,
        attempted_at,
    ])?;
    let (status, next_at) = match done.next {
        DeliveryNext::Delivered => (DeliveryStatus::Delivered, None),
        DeliveryNext::RetryAt(at) => (DeliveryStatus::Pending, Some(at)),
        DeliveryNext::Failed => (DeliveryStatus::Failed, None),
    };
    // A delivery resent while this attempt was in flight stays pending: the
    // resend's own attempt is already scheduled. One failed meanwhile (its
    // endpoint was disabled) stays failed, unless this attempt delivered it.
    tx.prepare_cached(
        "UPDATE deliveries SET status = ?2, next_attempt_at = ?3, attempts = attempts + 1,
                round_attempts = round_attempts + 1, last_attempt_at = ?4
         WHERE id = ?1 AND (status = 'pending' OR ?2 = 'delivered')",
    )?
    .execute(params![
        done.delivery_id,
        status.as_str(),
        next_at,
        attempted_at
    ])?;
    let failing_since = match done.health {
        EndpointHealth::Unchanged => return Ok(()),
        EndpointHealth::Healthy => None,
        EndpointHealth::FailingSince(at) => Some(at),
    };
    tx.prepare_cached("UPDATE endpoints SET failing_since = ?2 WHERE id = ?1")?
        .execute(params![a.endpoint_id.to_string(), failing_since])?;
    Ok(())
}

/// An event's attempts, to every endpoint, in the order made.
pub(super) fn attempts(conn: &Connection, event_id: EventId) -> Result<Vec<Attempt>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.event_id, d.endpoint_id, a.number, a.status, a.response_status,
                a.duration_ms, a.error, a.response_body, a.attempted_at
         FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
         WHERE d.event_id = ?1 ORDER BY a.attempted_at, a.id",
    )?;
    let rows = stmt.query_map([event_id.to_string()], |row| {
        Ok(Attempt {
            event_id: parse_column(row, 0, EventId::parse)?,
            endpoint_id: parse_column(row, 1, EndpointId::parse)?,
            number: row.get(2)?,
            status: match row.get_ref(3)?.as_str()? {
                "succeeded" => AttemptStatus::Succeeded,
                _ => AttemptStatus::Failed,
            },
            response_status: row.get(4)?,
            duration_ms: row.get(5)?,
            error: row.get(6)?,
            response_body: row.get(7)?,
            attempted_at: from_millis(row.get(8)?),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// How an event went to paypal endpoints: `None` if it never did,
/// `Some(resent)` if it did. A delivery row exists from the moment the
/// message goes out, so a listener verifying before it answers is covered.
pub(super) fn paypal_sending(
    conn: &Connection,
    event_id: EventId,
) -> Result<Option<bool>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT MAX(d.attempts > d.round_attempts) FROM deliveries d
             JOIN endpoints p ON p.id = d.endpoint_id
             WHERE d.event_id = ?1 AND p.dialect = 'paypal'",
        )?
        .query_row([event_id.to_string()], |row| row.get::<_, Option<bool>>(0))?)
}

pub(super) fn scheduled_from_row(row: &Row<'_>) -> rusqlite::Result<Scheduled> {
    Ok(Scheduled {
        delivery_id: row.get(0)?,
        event_id: parse_column(row, 1, EventId::parse)?,
        endpoint_id: parse_column(row, 2, EndpointId::parse)?,
        due: row.get::<_, Option<Millis>>(3)?.unwrap_or(0),
        round_attempts: row.get(4)?,
        attempts: row.get(5)?,
        object_id: row.get::<_, Option<String>>(6)?.map(Arc::from),
    })
}
