//! Deliveries (one per event and endpoint) and their attempts.

use std::sync::Arc;

use ipn_core::id::{EndpointId, EventId};
use ipn_storage::postgres::{Conn, Row, opt_text, parse_column};

use super::to_u32;
use crate::clock::{Millis, from_millis};
use crate::model::{Attempt, AttemptStatus, DeliveryStatus};
use crate::storage::{AttemptDone, DeliveryNext, EndpointHealth, Scheduled, StoreError};

/// SQL that tells whether the delivery `d` matches the filter named by the
/// text parameter `$N`: `filter_sql(3)`. The names are `DeliveryFilter`'s,
/// the parameter's values.
pub(super) fn filter_sql(param: u8) -> String {
    format!(
        "CASE ${param}::text
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
/// Streamed: a million of them are never held at once.
pub(super) fn pending(conn: &Conn, each: &mut dyn FnMut(Scheduled)) -> Result<usize, StoreError> {
    conn.for_each(
        "SELECT d.id, d.event_id, d.endpoint_id, d.next_attempt_at, d.round_attempts,
                d.attempts, e.object_id
         FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE d.status = 'pending' ORDER BY e.seq",
        &[],
        |row| {
            each(scheduled_from_row(&row)?);
            Ok(())
        },
    )
}

/// Puts the event's deliveries to these endpoints back to pending, due
/// `now`; creates those that never existed. One statement for them all;
/// the result follows `endpoint_ids`' order.
pub(super) fn resend(
    tx: &Conn,
    event_id: EventId,
    endpoint_ids: &[EndpointId],
    now: Millis,
) -> Result<Vec<Scheduled>, StoreError> {
    let mut endpoints: Vec<String> = endpoint_ids.iter().map(ToString::to_string).collect();
    // One row can take one change per statement.
    endpoints.sort_unstable();
    endpoints.dedup();
    let rows = tx.query(
        "INSERT INTO deliveries (event_id, endpoint_id, status, attempts, round_attempts,
                                 next_attempt_at)
         SELECT $1, endpoint, 'pending', 0, 0, $3 FROM unnest($2::text[]) AS endpoint
         ON CONFLICT (event_id, endpoint_id) DO UPDATE
           SET status = 'pending', round_attempts = 0, next_attempt_at = excluded.next_attempt_at
         RETURNING id, event_id, endpoint_id, next_attempt_at, round_attempts, attempts,
                   (SELECT object_id FROM events WHERE id = $1)",
        &[&event_id.to_string(), &endpoints, &now],
    )?;
    let mut made: Vec<Scheduled> = rows
        .iter()
        .map(scheduled_from_row)
        .collect::<Result<_, _>>()?;
    made.sort_by_key(|s| endpoint_ids.iter().position(|id| *id == s.endpoint_id));
    Ok(made)
}

/// Puts an endpoint's failed deliveries of events created at or after
/// `since` back to pending, due `now`, in event order (so ordered endpoints
/// queue them as created).
pub(super) fn recover(
    tx: &Conn,
    endpoint_id: EndpointId,
    since: Millis,
    now: Millis,
) -> Result<Vec<Scheduled>, StoreError> {
    let mut rows = tx.query(
        "UPDATE deliveries d SET status = 'pending', round_attempts = 0, next_attempt_at = $3
         FROM events e
         WHERE e.id = d.event_id AND d.endpoint_id = $1 AND d.status = 'failed'
           AND e.created_at >= $2
         RETURNING d.id, d.event_id, d.endpoint_id, d.next_attempt_at, d.round_attempts,
                   d.attempts, e.object_id, e.seq",
        &[&endpoint_id.to_string(), &since, &now],
    )?;
    rows.sort_by_key(|row| row.get::<_, i64>(7));
    rows.iter().map(scheduled_from_row).collect()
}

/// Records an attempt's outcome and moves its delivery on.
pub(super) fn record_attempt(tx: &Conn, done: &AttemptDone) -> Result<(), StoreError> {
    let a = &done.attempt;
    let attempted_at = crate::clock::to_millis(a.attempted_at);
    let (status, next_at) = match done.next {
        DeliveryNext::Delivered => (DeliveryStatus::Delivered, None),
        DeliveryNext::RetryAt(at) => (DeliveryStatus::Pending, Some(at)),
        DeliveryNext::Failed => (DeliveryStatus::Failed, None),
    };
    // The attempt and its delivery's move in one statement. A delivery
    // resent while this attempt was in flight stays pending: the resend's
    // own attempt is already scheduled. One failed meanwhile (its endpoint
    // was disabled) stays failed, unless this attempt delivered it.
    tx.execute(
        "WITH attempt AS (
             INSERT INTO attempts (delivery_id, number, status, response_status, duration_ms,
                                   error, response_body, attempted_at)
             VALUES ($1, $5, $6, $7, $8, $9, $10, $4))
         UPDATE deliveries SET status = $2, next_attempt_at = $3, attempts = attempts + 1,
                round_attempts = round_attempts + 1, last_attempt_at = $4
         WHERE id = $1 AND (status = 'pending' OR $2 = 'delivered')",
        &[
            &done.delivery_id,
            &status.as_str(),
            &next_at,
            &attempted_at,
            &i32::try_from(a.number)?,
            &match a.status {
                AttemptStatus::Succeeded => "succeeded",
                AttemptStatus::Failed => "failed",
            },
            &a.response_status.map(i32::from),
            &i64::try_from(a.duration_ms)?,
            &opt_text(a.error.as_deref()),
            &opt_text(a.response_body.as_deref()),
        ],
    )?;
    let failing_since = match done.health {
        EndpointHealth::Unchanged => return Ok(()),
        EndpointHealth::Healthy => None,
        EndpointHealth::FailingSince(at) => Some(at),
    };
    tx.execute(
        "UPDATE endpoints SET failing_since = $2 WHERE id = $1",
        &[&a.endpoint_id.to_string(), &failing_since],
    )?;
    Ok(())
}

/// An event's attempts, to every endpoint, in the order made.
pub(super) fn attempts(conn: &Conn, event_id: EventId) -> Result<Vec<Attempt>, StoreError> {
    conn.query(
        "SELECT d.event_id, d.endpoint_id, a.number, a.status, a.response_status,
                a.duration_ms, a.error, a.response_body, a.attempted_at
         FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
         WHERE d.event_id = $1 ORDER BY a.attempted_at, a.id",
        &[&event_id.to_string()],
    )?
    .iter()
    .map(|row| {
        Ok(Attempt {
            event_id: parse_column(row, 0, EventId::parse)?,
            endpoint_id: parse_column(row, 1, EndpointId::parse)?,
            number: u32::try_from(row.try_get::<_, i32>(2)?)?,
            status: match row.try_get(3)? {
                "succeeded" => AttemptStatus::Succeeded,
                _ => AttemptStatus::Failed,
            },
            response_status: row
                .try_get::<_, Option<i32>>(4)?
                .map(u16::try_from)
                .transpose()?,
            duration_ms: u64::try_from(row.try_get::<_, i64>(5)?)?,
            error: row.try_get(6)?,
            response_body: row.try_get(7)?,
            attempted_at: from_millis(row.try_get(8)?),
        })
    })
    .collect()
}

/// How an event went to paypal endpoints: `None` if it never did,
/// `Some(resent)` if it did. A delivery row exists from the moment the
/// message goes out, so a listener verifying before it answers is covered.
pub(super) fn paypal_sending(conn: &Conn, event_id: EventId) -> Result<Option<bool>, StoreError> {
    Ok(conn
        .query_one(
            "SELECT bool_or(d.attempts > d.round_attempts) FROM deliveries d
             JOIN endpoints p ON p.id = d.endpoint_id
             WHERE d.event_id = $1 AND p.dialect = 'paypal'",
            &[&event_id.to_string()],
        )?
        .try_get(0)?)
}

pub(super) fn scheduled_from_row(row: &Row) -> Result<Scheduled, StoreError> {
    Ok(Scheduled {
        delivery_id: row.try_get(0)?,
        event_id: parse_column(row, 1, EventId::parse)?,
        endpoint_id: parse_column(row, 2, EndpointId::parse)?,
        due: row.try_get::<_, Option<Millis>>(3)?.unwrap_or(0),
        round_attempts: to_u32(row.try_get::<_, i32>(4)?.into(), "round_attempts")?,
        attempts: to_u32(row.try_get::<_, i32>(5)?.into(), "attempts")?,
        object_id: row.try_get::<_, Option<&str>>(6)?.map(Arc::from),
    })
}
