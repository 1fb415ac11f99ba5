//! Events: each stored once with the exact JSON delivered, in the order
//! stored (`seq`, the cursor of `GET /v1/events`), with its `sequence`
//! within its root object.
//!
//! `seq` is a BIGSERIAL: with one writer its order is the commit order, so
//! a cursor never skips an event. With several writers a transaction that
//! took a smaller `seq` can commit after one with a larger; a reader that
//! moved past the larger would skip it. Several nodes need a cursor that
//! only advances over committed, settled positions (not built yet).

use std::collections::HashMap;
use std::sync::Arc;

use ipn_core::event::EventType;
use ipn_core::id::{EventId, MerchantId};
use ipn_storage::postgres::{Conn, Row, opt_text, parse_column, text};

use crate::model::DeliveryFilter;
use crate::storage::{EventQuery, Ingested, NewEvent, Scheduled, StoreError, StoredEvent};

/// Records an event and one pending delivery per endpoint, due at its
/// creation: the event and its deliveries in one statement.
pub(super) fn insert(tx: &Conn, new: &NewEvent) -> Result<Ingested, StoreError> {
    let merchant = new.merchant_id.to_string();
    let sequence: i64 = match &new.object_id {
        // The counter row's lock orders two writers of one object.
        Some(object) => tx
            .query_one(
                "INSERT INTO object_sequences (merchant_id, object_id, last) VALUES ($1, $2, 1)
                 ON CONFLICT (merchant_id, object_id)
                 DO UPDATE SET last = object_sequences.last + 1
                 RETURNING last",
                &[&merchant, &text(object)],
            )?
            .try_get(0)?,
        None => 1,
    };
    let mut event = new.event.clone();
    event.sequence = u64::try_from(sequence)?;
    let body: Arc<[u8]> = serde_json::to_vec(&event)?.into();
    let created_at = crate::clock::to_millis(event.created_at);
    let event_id = event.id.to_string();
    let endpoints: Vec<String> = new.endpoint_ids.iter().map(ToString::to_string).collect();
    let rows = tx.query(
        "WITH event AS (
             INSERT INTO events (id, merchant_id, type, object_id, sequence, created_at, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id)
         INSERT INTO deliveries (event_id, endpoint_id, status, attempts, round_attempts,
                                 next_attempt_at)
         SELECT event.id, endpoint, 'pending', 0, 0, $6
         FROM event, unnest($8::text[]) AS endpoint
         RETURNING id, endpoint_id",
        &[
            &event_id,
            &merchant,
            &event.event_type.as_str(),
            &opt_text(new.object_id.as_deref()),
            &sequence,
            &created_at,
            &&body[..],
            &endpoints,
        ],
    )?;
    let mut ids = HashMap::with_capacity(rows.len());
    for row in &rows {
        ids.insert(row.try_get::<_, &str>(1)?, row.try_get::<_, i64>(0)?);
    }
    let object_id = new.object_id.as_deref().map(Arc::<str>::from);
    let deliveries = new
        .endpoint_ids
        .iter()
        .zip(&endpoints)
        .map(|(endpoint_id, text)| {
            Ok(Scheduled {
                delivery_id: *ids
                    .get(text.as_str())
                    .ok_or_else(|| anyhow::anyhow!("no delivery made for {text}"))?,
                event_id: event.id,
                endpoint_id: *endpoint_id,
                due: created_at,
                round_attempts: 0,
                attempts: 0,
                object_id: object_id.clone(),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Ingested {
        event_id: event.id,
        body,
        deliveries,
    })
}

pub(super) fn event(conn: &Conn, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
    conn.query_opt(
        "SELECT seq, id, merchant_id, body FROM events WHERE id = $1",
        &[&id.to_string()],
    )?
    .as_ref()
    .map(event_from_row)
    .transpose()
}

/// How many positions the endpoint-filtered scan reads per statement.
const SCAN_CHUNK: i64 = 1_000;

/// Events in order after the cursor; `true` when more follow.
pub(super) fn list(
    conn: &Conn,
    query: &EventQuery,
) -> Result<(Vec<StoredEvent>, bool), StoreError> {
    // First the positions and types only (no bodies), then the bodies of
    // the page: an endpoint's filter (wildcards, the PayPal rule) is
    // applied in between, row by row, reading on in chunks until the page
    // is full, so rows it skips cost no body.
    let scan = format!(
        "SELECT e.seq, e.type FROM events e
         WHERE ($1::text IS NULL OR e.merchant_id = $1)
           AND e.seq > $2
           AND ($3::text IS NULL OR e.type = $3)
           AND ($4::text IS NULL OR EXISTS (
                SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND {}))
         ORDER BY e.seq LIMIT $5",
        super::deliveries::filter_sql(4)
    );
    let wanted = |event_type: &str| {
        query.for_endpoint.as_ref().is_none_or(|endpoint| {
            EventType::parse_lenient(event_type).is_ok_and(|t| endpoint.wants(&t))
        })
    };
    let want = query.limit as usize + 1;
    let chunk = if query.for_endpoint.is_some() {
        SCAN_CHUNK.max(want as i64)
    } else {
        want as i64
    };
    let merchant = query.merchant_id.map(|id| id.to_string());
    let event_type = opt_text(query.event_type.as_deref());
    let delivery = query.delivery.map(DeliveryFilter::as_str);
    let mut page: Vec<i64> = Vec::new();
    let mut after = query.after_seq;
    'scan: loop {
        let rows = conn.query(&scan, &[&merchant, &after, &event_type, &delivery, &chunk])?;
        for row in &rows {
            let seq: i64 = row.try_get(0)?;
            after = seq;
            if wanted(row.try_get(1)?) {
                page.push(seq);
                if page.len() >= want {
                    break 'scan;
                }
            }
        }
        if (rows.len() as i64) < chunk {
            break;
        }
    }
    let mut events = conn
        .query(
            "SELECT seq, id, merchant_id, body FROM events WHERE seq = ANY($1) ORDER BY seq",
            &[&page],
        )?
        .iter()
        .map(event_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let has_more = events.len() > query.limit as usize;
    events.truncate(query.limit as usize);
    Ok((events, has_more))
}

/// The events of a root object, in sequence order.
pub(super) fn of_object(
    conn: &Conn,
    merchant: MerchantId,
    object_id: &str,
) -> Result<Vec<StoredEvent>, StoreError> {
    conn.query(
        "SELECT seq, id, merchant_id, body FROM events
         WHERE merchant_id = $1 AND object_id = $2 ORDER BY sequence",
        &[&merchant.to_string(), &text(object_id)],
    )?
    .iter()
    .map(event_from_row)
    .collect()
}

fn event_from_row(row: &Row) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        seq: row.try_get(0)?,
        id: parse_column(row, 1, EventId::parse)?,
        merchant_id: parse_column(row, 2, MerchantId::parse)?,
        body: row.try_get::<_, &[u8]>(3)?.into(),
    })
}
