//! Events: each stored once with the exact JSON delivered, in the order
//! stored (`seq`, the cursor of `GET /v1/events`), with its `sequence`
//! within its root object.

use std::sync::Arc;

use ipn_core::event::EventType;
use ipn_core::id::{EventId, MerchantId};
use ipn_storage::sqlite::parse_column;
use rusqlite::{Connection, OptionalExtension as _, Row, params};

use crate::model::DeliveryFilter;
use crate::storage::{EventQuery, Ingested, NewEvent, Scheduled, StoreError, StoredEvent};

/// Records an event and one pending delivery per endpoint, due at its
/// creation.
pub(super) fn insert(tx: &Connection, new: &NewEvent) -> Result<Ingested, StoreError> {
    let merchant = new.merchant_id.to_string();
    let sequence: i64 = match &new.object_id {
        Some(object) => tx
            .prepare_cached(
                "SELECT COALESCE(MAX(sequence), 0) + 1 FROM events WHERE merchant_id = ?1 AND object_id = ?2",
            )?
            .query_row([&merchant, object], |row| row.get(0))?,
        None => 1,
    };
    let mut event = new.event.clone();
    event.sequence = u64::try_from(sequence)?;
    let body: Arc<[u8]> = serde_json::to_vec(&event)?.into();
    let created_at = crate::clock::to_millis(event.created_at);
    let event_id = event.id.to_string();
    tx.prepare_cached(
        "INSERT INTO events (id, merchant_id, type, object_id, sequence, created_at, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        event_id,
        merchant,
        event.event_type.as_str(),
        new.object_id,
        sequence,
        created_at,
        &body[..],
    ])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO deliveries (event_id, endpoint_id, status, attempts, round_attempts, next_attempt_at)
         VALUES (?1, ?2, 'pending', 0, 0, ?3)",
    )?;
    let mut deliveries = Vec::with_capacity(new.endpoint_ids.len());
    for endpoint_id in &new.endpoint_ids {
        insert.execute(params![event_id, endpoint_id.to_string(), created_at])?;
        deliveries.push(Scheduled {
            delivery_id: tx.last_insert_rowid(),
            event_id: event.id,
            endpoint_id: *endpoint_id,
            due: created_at,
            round_attempts: 0,
            attempts: 0,
            object_id: new.object_id.as_deref().map(Arc::from),
        });
    }
    Ok(Ingested {
        event_id: event.id,
        body,
        deliveries,
    })
}

pub(super) fn event(conn: &Connection, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT seq, id, merchant_id, body FROM events WHERE id = ?1")?
        .query_row([id.to_string()], event_from_row)
        .optional()?)
}

/// Events in order after the cursor; `true` when more follow.
pub(super) fn list(
    conn: &Connection,
    query: &EventQuery,
) -> Result<(Vec<StoredEvent>, bool), StoreError> {
    // First the positions and types only (no bodies, which may be
    // large and are read from their overflow pages), then the bodies
    // of the page: an endpoint's filter (wildcards, the PayPal rule)
    // is applied in between, row by row, reading on until the page
    // is full, so rows it skips cost no body.
    let mut scan = conn.prepare_cached(&format!(
        "SELECT e.seq, e.type FROM events e
         WHERE (?1 IS NULL OR e.merchant_id = ?1)
           AND e.seq > ?2
           AND (?3 IS NULL OR e.type = ?3)
           AND (?4 IS NULL OR EXISTS (
                SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND {}))
         ORDER BY e.seq LIMIT ?5",
        super::deliveries::filter_sql(4)
    ))?;
    let wanted = |event_type: &str| {
        query.for_endpoint.as_ref().is_none_or(|endpoint| {
            EventType::parse_lenient(event_type).is_ok_and(|t| endpoint.wants(&t))
        })
    };
    let rows_limit = if query.for_endpoint.is_some() {
        i64::MAX
    } else {
        i64::from(query.limit) + 1
    };
    let mut page = Vec::new();
    let mut rows = scan.query(params![
        query.merchant_id.map(|id| id.to_string()),
        query.after_seq,
        query.event_type,
        query.delivery.map(DeliveryFilter::as_str),
        rows_limit,
    ])?;
    while let Some(row) = rows.next()? {
        if wanted(row.get_ref(1)?.as_str()?) {
            page.push(row.get::<_, i64>(0)?);
            if page.len() > query.limit as usize {
                break;
            }
        }
    }
    let mut body =
        conn.prepare_cached("SELECT seq, id, merchant_id, body FROM events WHERE seq = ?1")?;
    let mut events = Vec::with_capacity(page.len());
    for seq in page {
        events.push(body.query_row([seq], event_from_row)?);
    }
    let has_more = events.len() > query.limit as usize;
    events.truncate(query.limit as usize);
    Ok((events, has_more))
}

/// The events of a root object, in sequence order.
pub(super) fn of_object(
    conn: &Connection,
    merchant: MerchantId,
    object_id: &str,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, id, merchant_id, body FROM events
         WHERE merchant_id = ?1 AND object_id = ?2 ORDER BY sequence",
    )?;
    let rows = stmt.query_map(params![merchant.to_string(), object_id], event_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        seq: row.get(0)?,
        id: parse_column(row, 1, EventId::parse)?,
        merchant_id: parse_column(row, 2, MerchantId::parse)?,
        body: row.get::<_, Vec<u8>>(3)?.into(),
    })
}
