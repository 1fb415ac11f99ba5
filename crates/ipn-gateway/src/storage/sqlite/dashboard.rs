//! The dashboard's reads (see `storage::dashboard`): lists and figures by
//! date, content and status, on a reader connection.

use ipn_core::id::{EndpointId, MerchantId};
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::clock::Millis;
use crate::storage::dashboard::{
    DeliveryRow, EventRow, EventSearch, FILTER_WINDOW, Health, HistoryRow, ObjectFilter, ObjectRow,
};

pub(super) fn events(
    conn: &Connection,
    filter: &EventSearch,
) -> rusqlite::Result<(Vec<EventRow>, bool)> {
    let filtered = filter.event_type.is_some()
        || filter.delivery.is_some()
        || filter.from.is_some()
        || filter.until.is_some()
        || filter.search.is_some();
    let floor: Option<i64> = if filtered {
        let newest: Option<i64> =
            conn.query_row("SELECT max(seq) FROM events", [], |row| row.get(0))?;
        newest.map(|seq| seq - FILTER_WINDOW)
    } else {
        None
    };
    // The search term as a JSON string, quotes included: it matches a whole
    // value in the stored body ("inv-1" does not find "inv-10").
    let quoted = filter
        .search
        .as_ref()
        .map(|s| serde_json::to_string(s).unwrap_or_default());
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT e.seq, e.id, e.merchant_id, e.type, e.created_at, e.object_id,
                (SELECT count(*) FROM deliveries d WHERE d.event_id = e.id
                    AND d.status = 'pending' AND d.round_attempts = 0),
                (SELECT count(*) FROM deliveries d WHERE d.event_id = e.id
                    AND d.status = 'pending' AND d.round_attempts > 0),
                (SELECT count(*) FROM deliveries d WHERE d.event_id = e.id AND d.status = 'delivered'),
                (SELECT count(*) FROM deliveries d WHERE d.event_id = e.id AND d.status = 'failed')
         FROM events e
         WHERE (?1 IS NULL OR e.merchant_id = ?1)
           AND (?2 IS NULL OR e.type = ?2)
           AND (?3 IS NULL OR EXISTS (
                SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND {}))
           AND (?4 IS NULL OR e.created_at >= ?4)
           AND (?5 IS NULL OR e.created_at < ?5)
           AND (?6 IS NULL OR e.id = ?6 OR e.object_id = ?6
                OR instr(CAST(e.body AS TEXT), ?7) > 0)
           AND (?8 IS NULL OR e.seq < ?8)
           AND (?10 IS NULL OR e.seq > ?10)
         ORDER BY e.seq DESC LIMIT ?9",
        super::deliveries::filter_sql(3)
    ))?;
    let mut rows: Vec<EventRow> = stmt
        .query_map(
            params![
                filter.merchant.map(|m| m.to_string()),
                filter.event_type,
                filter.delivery,
                filter.from,
                filter.until,
                filter.search,
                quoted,
                filter.before_seq,
                i64::from(filter.limit) + 1,
                floor,
            ],
            |row| {
                Ok(EventRow {
                    seq: row.get(0)?,
                    id: row.get(1)?,
                    merchant_id: row.get(2)?,
                    event_type: row.get(3)?,
                    created_at: row.get(4)?,
                    object_id: row.get(5)?,
                    pending: row.get(6)?,
                    retrying: row.get(7)?,
                    delivered: row.get(8)?,
                    failed: row.get(9)?,
                })
            },
        )?
        .collect::<rusqlite::Result<_>>()?;
    let more = rows.len() > filter.limit as usize;
    rows.truncate(filter.limit as usize);
    Ok((rows, more))
}

/// The event types a merchant (or everyone) has events of, for the filter.
pub(super) fn event_types(
    conn: &Connection,
    merchant: Option<MerchantId>,
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT type FROM events WHERE (?1 IS NULL OR merchant_id = ?1)
         ORDER BY type LIMIT 200",
    )?;
    let rows = stmt.query_map([merchant.map(|m| m.to_string())], |row| row.get(0))?;
    rows.collect()
}

pub(super) fn deliveries(conn: &Connection, event_id: &str) -> rusqlite::Result<Vec<DeliveryRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT endpoint_id,
                CASE WHEN status = 'pending' AND round_attempts > 0 THEN 'retrying' ELSE status END,
                attempts, next_attempt_at FROM deliveries
         WHERE event_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([event_id], |row| {
        Ok(DeliveryRow {
            endpoint_id: row.get(0)?,
            status: row.get(1)?,
            attempts: row.get(2)?,
            next_attempt_at: row.get(3)?,
        })
    })?;
    rows.collect()
}

/// The health of one endpoint over attempts made at or after `since`.
pub(super) fn health(
    conn: &Connection,
    endpoint: EndpointId,
    since: Millis,
) -> rusqlite::Result<Health> {
    let id = endpoint.to_string();
    let (attempts, succeeded, last_attempt_at) = conn
        .prepare_cached(
            "SELECT count(*), coalesce(sum(a.status = 'succeeded'), 0), max(a.attempted_at)
             FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.endpoint_id = ?1 AND a.attempted_at >= ?2",
        )?
        .query_row(params![id, since], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    let last_error = conn
        .prepare_cached(
            "SELECT coalesce(a.error, 'failed'), a.attempted_at
             FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.endpoint_id = ?1 AND a.status = 'failed'
             ORDER BY a.attempted_at DESC, a.id DESC LIMIT 1",
        )?
        .query_row([&id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let count = |status: &str| -> rusqlite::Result<u32> {
        conn.prepare_cached(
            "SELECT count(*) FROM deliveries WHERE endpoint_id = ?1 AND status = ?2",
        )?
        .query_row(params![id, status], |row| row.get(0))
    };
    Ok(Health {
        attempts,
        succeeded,
        last_attempt_at,
        last_error,
        pending: count("pending")?,
        failed: count("failed")?,
    })
}

fn object_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ObjectRow> {
    let json = |index: usize| -> rusqlite::Result<serde_json::Value> {
        let text: String = row.get(index)?;
        Ok(serde_json::from_str(&text).unwrap_or_default())
    };
    Ok(ObjectRow {
        position: row.get(0)?,
        merchant_id: row.get(1)?,
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
    conn: &Connection,
    f: &ObjectFilter,
) -> rusqlite::Result<(Vec<ObjectRow>, bool)> {
    filtered(
        conn,
        "SELECT rowid, merchant_id, object, method FROM payments
         WHERE (?1 IS NULL OR merchant_id = ?1)
           AND (?2 IS NULL OR status = ?2)
           AND (?3 IS NULL OR id = ?3 OR invoice = ?3 OR parent_id = ?3)
           AND (?4 IS NULL OR rowid < ?4)
         ORDER BY rowid DESC LIMIT ?5",
        f,
    )
}

/// A page of a list query whose parameters are the filter's: `?1`
/// merchant, `?2` status, `?3` search, `?4` before, `?5` one more than a
/// page (to know whether there are more).
fn filtered(
    conn: &Connection,
    sql: &str,
    f: &ObjectFilter,
) -> rusqlite::Result<(Vec<ObjectRow>, bool)> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt
        .query_map(
            params![
                f.merchant.map(|m| m.to_string()),
                f.status,
                f.search,
                f.before,
                i64::from(f.limit) + 1
            ],
            object_row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(page(rows, f.limit))
}

/// The refunds and reversals of a payment, oldest first.
pub(super) fn children(conn: &Connection, payment_id: &str) -> rusqlite::Result<Vec<ObjectRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT rowid, merchant_id, object, method FROM payments
         WHERE parent_id = ?1 ORDER BY rowid",
    )?;
    let rows = stmt.query_map([payment_id], object_row)?;
    rows.collect()
}

/// Whose payment this is (the admin sees every merchant's).
pub(super) fn payment_merchant(
    conn: &Connection,
    payment_id: &str,
) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT merchant_id FROM payments WHERE id = ?1")?
        .query_row([payment_id], |row| row.get(0))
        .optional()
}

/// Subscriptions, newest first.
pub(super) fn subscriptions(
    conn: &Connection,
    f: &ObjectFilter,
) -> rusqlite::Result<(Vec<ObjectRow>, bool)> {
    filtered(
        conn,
        "SELECT rowid, merchant_id, object, method FROM subscriptions
         WHERE (?1 IS NULL OR merchant_id = ?1)
           AND (?2 IS NULL OR status = ?2)
           AND (?3 IS NULL OR id = ?3 OR json_extract(object, '$.invoice') = ?3)
           AND (?4 IS NULL OR rowid < ?4)
         ORDER BY rowid DESC LIMIT ?5",
        f,
    )
}

/// Whose subscription this is (the admin sees every merchant's).
pub(super) fn subscription_merchant(
    conn: &Connection,
    subscription_id: &str,
) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT merchant_id FROM subscriptions WHERE id = ?1")?
        .query_row([subscription_id], |row| row.get(0))
        .optional()
}

/// A subscription's payments (its periods' charges, and their refunds and
/// reversals), oldest first. The payments table has no subscription column:
/// the expression is the one of the `payments_by_subscription` index, so
/// that the index finds the rows rather than a walk through the merchant's
/// payments. The merchant's check is unary-plussed out of the index choice.
const SUBSCRIPTION_PAYMENTS: &str = "SELECT rowid, merchant_id, object, method FROM payments
     WHERE json_extract(object, '$.subscription_id') = ?2 AND +merchant_id = ?1
     ORDER BY created_at, rowid";

pub(super) fn subscription_payments(
    conn: &Connection,
    merchant: &str,
    subscription_id: &str,
) -> rusqlite::Result<Vec<ObjectRow>> {
    let mut stmt = conn.prepare_cached(SUBSCRIPTION_PAYMENTS)?;
    let rows = stmt.query_map(params![merchant, subscription_id], object_row)?;
    rows.collect()
}

const OBJECT_EVENTS: &str = "SELECT id, body FROM events WHERE merchant_id = ?1 AND object_id = ?2
     ORDER BY sequence DESC LIMIT ?3";

/// The newest `limit` events about an object, oldest of them first; `true`
/// when older ones were left out.
pub(super) fn object_events(
    conn: &Connection,
    merchant: &str,
    object_id: &str,
    limit: u32,
) -> rusqlite::Result<(Vec<HistoryRow>, bool)> {
    let mut stmt = conn.prepare_cached(OBJECT_EVENTS)?;
    let mut rows: Vec<HistoryRow> = stmt
        .query_map(params![merchant, object_id, i64::from(limit) + 1], |row| {
            Ok(HistoryRow {
                id: row.get(0)?,
                body: row.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    rows.reverse();
    Ok((rows, more))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sqlite::{Durability, Sqlite};

    /// The plan's lines, as `EXPLAIN QUERY PLAN` words them (parameters
    /// null: the plan does not depend on their values).
    fn plan(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![None::<i64>; stmt.parameter_count()];
        let rows = stmt
            .query_map(rusqlite::params_from_iter(nulls), |row| {
                row.get::<_, String>(3)
            })
            .unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    #[test]
    fn a_subscriptions_payments_and_events_are_found_through_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(
            &dir.path().join("t.db"),
            Durability::Normal,
            crate::EncryptionKey::generate().unwrap(),
        )
        .unwrap();
        let (payments, events) = store
            .read(|conn| Ok((plan(conn, SUBSCRIPTION_PAYMENTS), plan(conn, OBJECT_EVENTS))))
            .unwrap();
        assert!(
            payments[0].starts_with("SEARCH payments USING INDEX payments_by_subscription"),
            "{payments:?}"
        );
        assert!(
            events[0].starts_with("SEARCH events USING INDEX events_by_object"),
            "{events:?}"
        );
    }
}
