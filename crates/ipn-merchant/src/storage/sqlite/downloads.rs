//! The `downloads` table and `download_secret`, the key links are signed
//! with (made by the schema with `randomblob`).

use anyhow::{Context as _, bail};
use ipn_storage::sqlite::conversion;
use rusqlite::{OptionalExtension as _, Row, params};
use time::OffsetDateTime;

use super::Sql;
use crate::clock::millis;
use crate::storage::StoreError;
use crate::storage::downloads::{DownloadReads, DownloadWrites, Grant, NewGrant};

pub(super) const COLUMNS: &str = "id, order_id, sku, name, file, created_at, expires_at, max_uses, uses, \
                       revoked_at, revoked_reason";

pub(super) fn grant(row: &Row<'_>) -> rusqlite::Result<Grant> {
    Ok(Grant {
        id: row.get(0)?,
        order_id: row.get(1)?,
        sku: row.get(2)?,
        name: row.get(3)?,
        file: row.get(4)?,
        created_at: at(row.get(5)?, 5)?,
        expires_at: at(row.get(6)?, 6)?,
        max_uses: row.get(7)?,
        uses: row.get(8)?,
        revoked_at: row
            .get::<_, Option<i64>>(9)?
            .map(|ms| at(ms, 9))
            .transpose()?,
        revoked_reason: row.get(10)?,
    })
}

/// Milliseconds since the Unix epoch, as column `index` holds them.
fn at(ms: i64, index: usize) -> rusqlite::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|error| conversion(index, error.to_string()))
}

impl DownloadReads for Sql<'_> {
    fn download(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        self.0
            .prepare_cached(&format!("SELECT {COLUMNS} FROM downloads WHERE id = ?1"))?
            .query_row([id], grant)
            .optional()
            .with_context(|| format!("reading download {id}"))
    }

    fn download_key(&self) -> Result<[u8; 32], StoreError> {
        let key: Vec<u8> = self
            .0
            .query_row("SELECT key FROM download_secret WHERE id = 1", [], |row| {
                row.get(0)
            })
            .context("reading the download signing key (has the downloads migration run?)")?;
        let Ok(key) = <[u8; 32]>::try_from(key.as_slice()) else {
            bail!("the download signing key is {} bytes, not 32", key.len());
        };
        Ok(key)
    }
}

impl DownloadWrites for Sql<'_> {
    fn grant(&self, new: &NewGrant<'_>) -> Result<Grant, StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO downloads
                     (id, order_id, sku, name, file, created_at, expires_at, max_uses)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (order_id, sku) DO NOTHING",
            )?
            .execute(params![
                new.id,
                new.order_id,
                new.sku,
                new.name,
                new.file,
                millis(new.created_at),
                millis(new.expires_at),
                new.max_uses,
            ])
            .with_context(|| format!("granting the download of order {}", new.order_id))?;
        self.0
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM downloads WHERE order_id = ?1 AND sku = ?2"
            ))?
            .query_row(params![new.order_id, new.sku], grant)
            .context("reading back a download grant")
    }

    fn revoke_downloads(
        &self,
        order_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<usize, StoreError> {
        self.0
            .prepare_cached(
                "UPDATE downloads SET revoked_at = ?1, revoked_reason = ?2
                 WHERE order_id = ?3 AND revoked_at IS NULL",
            )?
            .execute(params![now, reason, order_id])
            .with_context(|| format!("revoking the downloads of order {order_id}"))
    }

    fn restore_downloads(&self, order_id: &str, reason: &str) -> Result<usize, StoreError> {
        self.0
            .prepare_cached(
                "UPDATE downloads SET revoked_at = NULL, revoked_reason = NULL
                 WHERE order_id = ?1 AND revoked_reason = ?2",
            )?
            .execute(params![order_id, reason])
            .with_context(|| format!("restoring the downloads of order {order_id}"))
    }

    fn count_download_use(&self, id: &str) -> Result<(), StoreError> {
        self.0
            .prepare_cached("UPDATE downloads SET uses = uses + 1 WHERE id = ?1")?
            .execute([id])
            .with_context(|| format!("taking a use of download {id}"))?;
        Ok(())
    }
}
