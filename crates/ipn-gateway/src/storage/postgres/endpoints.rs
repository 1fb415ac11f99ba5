//! Merchants and their endpoints. Endpoint secrets are sealed for their
//! row and column as they are written and opened as they are read.

use anyhow::{Context as _, anyhow};
use ipn_core::Dialect;
use ipn_core::id::{EndpointId, MerchantId};
use ipn_storage::postgres::{Conn, Row, parse_column, text};

use crate::clock::Millis;
use crate::model::{Disabled, DisabledReason, Endpoint, EventFilter, Merchant};
use crate::secrets::EncryptionKey;
use crate::storage::StoreError;
use crate::storage::sealed::{open_endpoint_secret, seal_endpoint_secrets};

pub(super) fn merchants(conn: &Conn) -> Result<Vec<Merchant>, StoreError> {
    conn.query(
        "SELECT id, name, receiver_email, api_key_hash, created_at FROM merchants
         ORDER BY created_at, id",
        &[],
    )?
    .iter()
    .map(|row| {
        Ok(Merchant {
            id: parse_column(row, 0, MerchantId::parse)?,
            name: row.try_get(1)?,
            receiver_email: row.try_get(2)?,
            api_key_hash: row.try_get(3)?,
            created_at: row.try_get(4)?,
        })
    })
    .collect()
}

pub(super) fn create_merchant(tx: &Conn, m: &Merchant) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO merchants (id, name, receiver_email, api_key_hash, created_at)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &m.id.to_string(),
            &text(&m.name),
            &text(&m.receiver_email),
            &m.api_key_hash,
            &m.created_at,
        ],
    )?;
    Ok(())
}

pub(super) fn endpoints(conn: &Conn, key: &EncryptionKey) -> Result<Vec<Endpoint>, StoreError> {
    conn.query(
        "SELECT id, merchant_id, url, dialect, events, ordered, description, secret,
                previous_secret, previous_secret_expires, disabled_reason, disabled_at,
                failing_since, created_at
         FROM endpoints ORDER BY created_at, id",
        &[],
    )?
    .iter()
    .map(|row| endpoint_from_row(row, key))
    .collect()
}

/// Disables an endpoint and fails its pending deliveries.
pub(super) fn disable(
    tx: &Conn,
    id: EndpointId,
    reason: DisabledReason,
    now: Millis,
) -> Result<(), StoreError> {
    let id = id.to_string();
    tx.execute(
        "UPDATE endpoints SET disabled_reason = $2, disabled_at = $3 WHERE id = $1",
        &[&id, &reason.as_str(), &now],
    )?;
    tx.execute(
        "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL
         WHERE endpoint_id = $1 AND status = 'pending'",
        &[&id],
    )?;
    Ok(())
}

/// Saves an endpoint (inserted, or every column replaced), its secrets
/// sealed for their row and column.
pub(super) fn save(tx: &Conn, key: &EncryptionKey, e: &Endpoint) -> Result<(), StoreError> {
    let events = serde_json::to_string(&e.filter.entries())?;
    let id = e.id.to_string();
    let (secret, previous_secret) = seal_endpoint_secrets(key, e)?;
    tx.execute(
        "INSERT INTO endpoints
           (id, merchant_id, url, dialect, events, ordered, description, secret,
            previous_secret, previous_secret_expires, disabled_reason, disabled_at,
            failing_since, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (id) DO UPDATE SET
           merchant_id = excluded.merchant_id, url = excluded.url, dialect = excluded.dialect,
           events = excluded.events, ordered = excluded.ordered,
           description = excluded.description, secret = excluded.secret,
           previous_secret = excluded.previous_secret,
           previous_secret_expires = excluded.previous_secret_expires,
           disabled_reason = excluded.disabled_reason, disabled_at = excluded.disabled_at,
           failing_since = excluded.failing_since, created_at = excluded.created_at",
        &[
            &id,
            &e.merchant_id.to_string(),
            &text(&e.url),
            &e.dialect.as_str(),
            &events,
            &e.ordered,
            &text(&e.description),
            &secret,
            &previous_secret,
            &e.previous_secret.as_ref().map(|(_, at)| *at),
            &e.disabled.as_ref().map(|d| d.reason.as_str()),
            &e.disabled.as_ref().map(|d| d.at),
            &e.failing_since,
            &e.created_at,
        ],
    )?;
    Ok(())
}

fn endpoint_from_row(row: &Row, key: &EncryptionKey) -> Result<Endpoint, StoreError> {
    let id = parse_column(row, 0, EndpointId::parse)?;
    let dialect: Dialect = parse_column(row, 3, str::parse::<Dialect>)?;
    let entries: Vec<String> = serde_json::from_str(row.try_get(4)?).context("endpoints.events")?;
    let filter =
        EventFilter::parse(&entries, dialect).map_err(|e| anyhow!("endpoints.events: {e}"))?;
    let secret = open_endpoint_secret(key, row.try_get(7)?, "secret", id)?;
    let previous_secret = match row.try_get::<_, Option<&str>>(8)? {
        Some(text) => Some((
            open_endpoint_secret(key, text, "previous_secret", id)?,
            row.try_get::<_, Option<Millis>>(9)?.unwrap_or(0),
        )),
        None => None,
    };
    let disabled = match row.try_get::<_, Option<&str>>(10)? {
        Some(text) => Some(Disabled {
            reason: DisabledReason::parse(text)
                .ok_or_else(|| anyhow!("unknown disabled reason {text:?}"))?,
            at: row.try_get::<_, Option<Millis>>(11)?.unwrap_or(0),
        }),
        None => None,
    };
    Ok(Endpoint {
        id,
        merchant_id: parse_column(row, 1, MerchantId::parse)?,
        url: row.try_get(2)?,
        dialect,
        filter,
        ordered: row.try_get(5)?,
        description: row.try_get(6)?,
        secret,
        previous_secret,
        disabled,
        failing_since: row.try_get(12)?,
        created_at: row.try_get(13)?,
    })
}
