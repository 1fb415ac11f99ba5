//! Merchants and their endpoints. Endpoint secrets are sealed for their
//! row and column as they are written and opened as they are read.

use ipn_core::Dialect;
use ipn_core::id::{EndpointId, MerchantId};
use ipn_storage::sqlite::{conversion, parse_column};
use rusqlite::{Connection, Row, params};

use crate::clock::Millis;
use crate::model::{Disabled, DisabledReason, Endpoint, EventFilter, Merchant};
use crate::secrets::EncryptionKey;
use crate::storage::StoreError;
use crate::storage::sealed::{open_endpoint_secret, seal_endpoint_secrets};

pub(super) fn merchants(conn: &Connection) -> Result<Vec<Merchant>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, receiver_email, api_key_hash, created_at FROM merchants
         ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok(Merchant {
            id: parse_column(row, 0, MerchantId::parse)?,
            name: row.get(1)?,
            receiver_email: row.get(2)?,
            api_key_hash: row.get(3)?,
            created_at: row.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn create_merchant(tx: &Connection, m: &Merchant) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO merchants (id, name, receiver_email, api_key_hash, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        m.id.to_string(),
        m.name,
        m.receiver_email,
        m.api_key_hash,
        m.created_at
    ])?;
    Ok(())
}

pub(super) fn endpoints(
    conn: &Connection,
    key: &EncryptionKey,
) -> Result<Vec<Endpoint>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, merchant_id, url, dialect, events, ordered, description, secret,
                previous_secret, previous_secret_expires, disabled_reason, disabled_at,
                failing_since, created_at
         FROM endpoints ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map([], |row| endpoint_from_row(row, key))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Disables an endpoint and fails its pending deliveries.
pub(super) fn disable(
    tx: &Connection,
    id: EndpointId,
    reason: DisabledReason,
    now: Millis,
) -> Result<(), StoreError> {
    tx.prepare_cached("UPDATE endpoints SET disabled_reason = ?2, disabled_at = ?3 WHERE id = ?1")?
        .execute(params![id.to_string(), reason.as_str(), now])?;
    tx.prepare_cached(
        "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL
         WHERE endpoint_id = ?1 AND status = 'pending'",
    )?
    .execute([id.to_string()])?;
    Ok(())
}

/// Saves an endpoint, its secrets sealed for their row and column.
pub(super) fn save(tx: &Connection, key: &EncryptionKey, e: &Endpoint) -> Result<(), StoreError> {
    let events = serde_json::to_string(&e.filter.entries())?;
    let id = e.id.to_string();
    let (secret, previous_secret) = seal_endpoint_secrets(key, e)?;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO endpoints
           (id, merchant_id, url, dialect, events, ordered, description, secret,
            previous_secret, previous_secret_expires, disabled_reason, disabled_at,
            failing_since, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        id,
        e.merchant_id.to_string(),
        e.url,
        e.dialect.as_str(),
        events,
        e.ordered,
        e.description,
        secret,
        previous_secret,
        e.previous_secret.as_ref().map(|(_, at)| *at),
        e.disabled.as_ref().map(|d| d.reason.as_str()),
        e.disabled.as_ref().map(|d| d.at),
        e.failing_since,
        e.created_at,
    ])?;
    Ok(())
}

fn endpoint_from_row(row: &Row<'_>, key: &EncryptionKey) -> rusqlite::Result<Endpoint> {
    let id = parse_column(row, 0, EndpointId::parse)?;
    let dialect: Dialect = row
        .get_ref(3)?
        .as_str()?
        .parse()
        .map_err(|e: ipn_core::dialect::UnknownDialect| conversion(3, e.to_string()))?;
    let entries: Vec<String> = serde_json::from_str(row.get_ref(4)?.as_str()?)
        .map_err(|e| conversion(4, e.to_string()))?;
    let filter = EventFilter::parse(&entries, dialect).map_err(|e| conversion(4, e.to_string()))?;
    let secret = open_endpoint_secret(key, row.get_ref(7)?.as_str()?, "secret", id)
        .map_err(|e| conversion(7, format!("{e:#}")))?;
    let previous_secret = match row.get_ref(8)?.as_str_or_null()? {
        Some(text) => Some((
            open_endpoint_secret(key, text, "previous_secret", id)
                .map_err(|e| conversion(8, format!("{e:#}")))?,
            row.get::<_, Option<Millis>>(9)?.unwrap_or(0),
        )),
        None => None,
    };
    let disabled = match row.get_ref(10)?.as_str_or_null()? {
        Some(text) => Some(Disabled {
            reason: DisabledReason::parse(text)
                .ok_or_else(|| conversion(10, format!("unknown disabled reason {text:?}")))?,
            at: row.get::<_, Option<Millis>>(11)?.unwrap_or(0),
        }),
        None => None,
    };
    Ok(Endpoint {
        id,
        merchant_id: parse_column(row, 1, MerchantId::parse)?,
        url: row.get(2)?,
        dialect,
        filter,
        ordered: row.get(5)?,
        description: row.get(6)?,
        secret,
        previous_secret,
        disabled,
        failing_since: row.get(12)?,
        created_at: row.get(13)?,
    })
}
