//! The dashboard's reads (see `storage::dashboard`): lists and figures by
//! date, content and status, on a read client.

use ipn_core::id::{EndpointId, MerchantId};
use ipn_storage::postgres::{Conn, Row, opt_text, text};

use super::to_u32;
use crate::clock::Millis;
use crate::storage::StoreError;
use crate::storage::dashboard::{
    DeliveryRow, EventRow, EventSearch, FILTER_WINDOW, Health, HistoryRow, ObjectFilter, ObjectRow,
};

pub(super) fn events(
    conn: &Conn,
    filter: &EventSearch,
) -> Result<(Vec<EventRow>, bool), StoreError> {
    let filtered = filter.event_type.is_some()
        || filter.delivery.is_some()
        || filter.from.is_some()
        || filter.until.is_some()
        || filter.search.is_some();
    let floor: Option<i64> = if filtered {
        let newest: Option<i64> = conn
            .query_one("SELECT max(seq) FROM events", &[])?
            .try_get(0)?;
        newest.map(|seq| seq - FILTER_WINDOW)
    } else {
        None
    };
    // The search term as a JSON string, quotes included: it matches a whole
    // value in the stored body ("inv-1" does not find "inv-10"). Bytes in
    // bytes, as SQLite's `instr` on the body: no decoding of the body.
    let quoted = filter
        .search
        .as_ref()
        .map(|s| serde_json::to_vec(s).unwrap_or_default());
    let sql = format!(
        "SELECT e.seq, e.id, e.merchant_id, e.type, e.created_at, e.object_id,
                (SELECT count(*) FROM deliveries d WHERE d.event_id = e.id
                    AND d.status = 'pending' AND d.round_attempts = 0),
                (SELECT count(*) FROM deliveries d WHERE d.event_id = e.id
                    AND d.status = 'pending' AND d.round_attempts > 0),
                (SELECT count(*) FROM deliveries d WHERE d.event_id = e.id AND d.status = 'delivered'),
                (SELECT count(*) FROM deliveries d WHERE d.event_id = e.id AND d.status = 'failed')
         FROM events e
         WHERE ($1::text IS NULL OR e.merchant_id = $1)
           AND ($2::text IS NULL OR e.type = $2)
           AND ($3::text IS NULL OR EXISTS (
                SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND {}))
           AND ($4::bigint IS NULL OR e.created_at >= $4)
           AND ($5::bigint IS NULL OR e.created_at < $5)
           AND ($6::text IS NULL OR e.id = $6 OR e.object_id = $6
                OR position($7::bytea IN e.body) > 0)
           AND ($8::bigint IS NULL OR e.seq < $8)
           AND ($10::bigint IS NULL OR e.seq > $10)
         ORDER BY e.seq DESC LIMIT $9",
        super::deliveries::filter_sql(3)
    );
    let rows = conn.query(
        &sql,
        &[
            &filter.merchant.map(|m| m.to_string()),
            &opt_text(filter.event_type.as_deref()),
            &filter.delivery,
            &filter.from,
            &filter.until,
            &opt_text(filter.search.as_deref()),
            &quoted,
            &filter.before_seq,
            &(i64::from(filter.limit) + 1),
            &floor,
        ],
    )?;
    let count = |row: &Row, index: usize| to_u32(row.try_get(index)?, "a delivery count");
    let mut rows: Vec<EventRow> = rows
        .iter()
        .map(|row| {
            Ok(EventRow {
                seq: row.try_get(0)?,
                id: row.try_get(1)?,
                merchant_id: row.try_get(2)?,
                event_type: row.try_get(3)?,
                created_at: row.try_get(4)?,
                object_id: row.try_get(5)?,
                pending: count(row, 6)?,
                retrying: count(row, 7)?,
                delivered: count(row, 8)?,
                failed: count(row, 9)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    let more = rows.len() > filter.limit as usize;
    rows.truncate(filter.limit as usize);
    Ok((rows, more))
}

/// The event types a merchant (or everyone) has events of, for the filter.
pub(super) fn event_types(
    conn: &Conn,
    merchant: Option<MerchantId>,
) -> Result<Vec<String>, StoreError> {
    conn.query(
        "SELECT DISTINCT type FROM events WHERE ($1::text IS NULL OR merchant_id = $1)
         ORDER BY type LIMIT 200",
        &[&merchant.map(|m| m.to_string())],
    )?
    .iter()
    .map(|row| Ok(row.try_get(0)?))
    .collect()
}

pub(super) fn deliveries(conn: &Conn, event_id: &str) -> Result<Vec<DeliveryRow>, StoreError> {
    conn.query(
        "SELECT endpoint_id,
                CASE WHEN status = 'pending' AND round_attempts > 0 THEN 'retrying' ELSE status END,
                attempts, next_attempt_at FROM deliveries
         WHERE event_id = $1 ORDER BY id",
        &[&text(event_id)],
    )?
    .iter()
    .map(|row| {
        Ok(DeliveryRow {
            endpoint_id: row.try_get(0)?,
            status: row.try_get(1)?,
            attempts: to_u32(row.try_get::<_, i32>(2)?.into(), "attempts")?,
            next_attempt_at: row.try_get(3)?,
        })
    })
    .collect()
}

/// The health of one endpoint over attempts made at or after `since`.
pub(super) fn health(
    conn: &Conn,
    endpoint: EndpointId,
    since: Millis,
) -> Result<Health, StoreError> {
    let id = endpoint.to_string();
    let row = conn.query_one(
        "SELECT count(*), count(*) FILTER (WHERE a.status = 'succeeded'), max(a.attempted_at)
         FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
         WHERE d.endpoint_id = $1 AND a.attempted_at >= $2",
        &[&id, &since],
    )?;
    let (attempts, succeeded, last_attempt_at) = (
        to_u32(row.try_get(0)?, "attempts")?,
        to_u32(row.try_get(1)?, "attempts")?,
        row.try_get(2)?,
    );
    let last_error = conn
        .query_opt(
            "SELECT coalesce(a.error, 'failed'), a.attempted_at
             FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.endpoint_id = $1 AND a.status = 'failed'
             ORDER BY a.attempted_at DESC, a.id DESC LIMIT 1",
            &[&id],
        )?
        .map(|row| Ok::<_, StoreError>((row.try_get(0)?, row.try_get(1)?)))
        .transpose()?;
    let counts = conn.query_one(
        "SELECT count(*) FILTER (WHERE status = 'pending'),
                count(*) FILTER (WHERE status = 'failed')
         FROM deliveries WHERE endpoint_id = $1 AND status IN ('pending', 'failed')",
        &[&id],
    )?;
    Ok(Health {
        attempts,
        succeeded,
        last_attempt_at,
        last_error,
        pending: to_u32(counts.try_get(0)?, "deliveries")?,
        failed: to_u32(counts.try_get(1)?, "deliveries")?,
    })
}

fn object_row(row: &Row) -> Result<ObjectRow, StoreError> {
    let json = |index: usize| -> Result<serde_json::Value, StoreError> {
        Ok(serde_json::from_str(row.try_get(index)?).unwrap_or_default())
    };
    Ok(ObjectRow {
        position: row.try_get(0)?,
        merchant_id: row.try_get(1)?,
        object: json(2)?,
        method: json(3)?,
    })
}

fn page(mut rows: Vec<ObjectRow>, limit: u32) -> (Vec<ObjectRow>, bool) {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    (rows, more)
}

/// Payments (refunds and reversals included), newest first.
pub(super) fn payments(
    conn: &Conn,
    f: &ObjectFilter,
) -> Result<(Vec<ObjectRow>, bool), StoreError> {
    filtered(
        conn,
        "SELECT position, merchant_id, object, method FROM payments
         WHERE ($1::text IS NULL OR merchant_id = $1)
           AND ($2::text IS NULL OR status = $2)
           AND ($3::text IS NULL OR id = $3 OR invoice = $3 OR parent_id = $3)
           AND ($4::bigint IS NULL OR position < $4)
         ORDER BY position DESC LIMIT $5",
        f,
    )
}

/// A page of a list query whose parameters are the filter's: `$1`
/// merchant, `$2` status, `$3` search, `$4` before, `$5` one more than a
/// page (to know whether there are more).
fn filtered(
    conn: &Conn,
    sql: &str,
    f: &ObjectFilter,
) -> Result<(Vec<ObjectRow>, bool), StoreError> {
    let rows = conn
        .query(
            sql,
            &[
                &f.merchant.map(|m| m.to_string()),
                &opt_text(f.status.as_deref()),
                &opt_text(f.search.as_deref()),
                &f.before,
                &(i64::from(f.limit) + 1),
            ],
        )?
        .iter()
        .map(object_row)
        .collect::<Result<_, _>>()?;
    Ok(page(rows, f.limit))
}

/// The refunds and reversals of a payment, oldest first.
pub(super) fn children(conn: &Conn, payment_id: &str) -> Result<Vec<ObjectRow>, StoreError> {
    conn.query(
        "SELECT position, merchant_id, object, method FROM payments
         WHERE parent_id = $1 ORDER BY position",
        &[&text(payment_id)],
    )?
    .iter()
    .map(object_row)
    .collect()
}

/// Whose payment this is (the admin sees every merchant's).
pub(super) fn payment_merchant(
    conn: &Conn,
    payment_id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_opt(
            "SELECT merchant_id FROM payments WHERE id = $1",
            &[&text(payment_id)],
        )?
        .map(|row| row.try_get(0))
        .transpose()?)
}

/// Subscriptions, newest first.
pub(super) fn subscriptions(
    conn: &Conn,
    f: &ObjectFilter,
) -> Result<(Vec<ObjectRow>, bool), StoreError> {
    filtered(
        conn,
        "SELECT position, merchant_id, object, method FROM subscriptions
         WHERE ($1::text IS NULL OR merchant_id = $1)
           AND ($2::text IS NULL OR status = $2)
           AND ($3::text IS NULL OR id = $3 OR object::json ->> 'invoice' = $3)
           AND ($4::bigint IS NULL OR position < $4)
         ORDER BY position DESC LIMIT $5",
        f,
    )
}

/// Whose subscription this is (the admin sees every merchant's).
pub(super) fn subscription_merchant(
    conn: &Conn,
    subscription_id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_opt(
            "SELECT merchant_id FROM subscriptions WHERE id = $1",
            &[&text(subscription_id)],
        )?
        .map(|row| row.try_get(0))
        .transpose()?)
}

/// A subscription's payments (its periods' charges, and their refunds and
/// reversals), oldest first, through the `payments_by_subscription` index.
pub(super) fn subscription_payments(
    conn: &Conn,
    merchant: &str,
    subscription_id: &str,
) -> Result<Vec<ObjectRow>, StoreError> {
    conn.query(
        "SELECT position, merchant_id, object, method FROM payments
         WHERE subscription_id = $2 AND merchant_id = $1
         ORDER BY created_at, position",
        &[&text(merchant), &text(subscription_id)],
    )?
    .iter()
    .map(object_row)
    .collect()
}

/// The newest `limit` events about an object, oldest of them first; `true`
/// when older ones were left out.
pub(super) fn object_events(
    conn: &Conn,
    merchant: &str,
    object_id: &str,
    limit: u32,
) -> Result<(Vec<HistoryRow>, bool), StoreError> {
    let mut rows: Vec<HistoryRow> = conn
        .query(
            "SELECT id, body FROM events WHERE merchant_id = $1 AND object_id = $2
             ORDER BY sequence DESC LIMIT $3",
            &[&text(merchant), &text(object_id), &(i64::from(limit) + 1)],
        )?
        .iter()
        .map(|row| {
            Ok(HistoryRow {
                id: row.try_get(0)?,
                body: row.try_get(1)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    rows.reverse();
    Ok((rows, more))
}
