//! The `downloads` table and `download_secret`, the key links are signed
//! with: made here, when the store first opens the database, from the
//! operating system's generator.

use anyhow::{Context as _, bail};
use ipn_storage::postgres::{Conn, Row, column_name, text};
use rand::RngCore as _;
use time::OffsetDateTime;

use super::{Pg, to_u32};
use crate::clock::millis;
use crate::storage::StoreError;
use crate::storage::downloads::{DownloadReads, DownloadWrites, Grant, NewGrant};

pub(super) const COLUMNS: &str = "id, order_id, sku, name, file, created_at, expires_at, \
                                  max_uses, uses, revoked_at, revoked_reason";

pub(super) fn grant(row: &Row) -> Result<Grant, StoreError> {
    Ok(Grant {
        id: row.try_get(0)?,
        order_id: row.try_get(1)?,
        sku: row.try_get(2)?,
        name: row.try_get(3)?,
        file: row.try_get(4)?,
        created_at: at(row, 5)?,
        expires_at: at(row, 6)?,
        max_uses: to_u32(row.try_get(7)?, "downloads.max_uses")?,
        uses: to_u32(row.try_get(8)?, "downloads.uses")?,
        revoked_at: match row.try_get::<_, Option<i64>>(9)? {
            Some(_) => Some(at(row, 9)?),
            None => None,
        },
        revoked_reason: row.try_get(10)?,
    })
}

/// Milliseconds since the Unix epoch, as column `index` holds them.
fn at(row: &Row, index: usize) -> Result<OffsetDateTime, StoreError> {
    let ms: i64 = row.try_get(index)?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .with_context(|| format!("column {}", column_name(row, index)))
}

/// Makes the signing key if the database has none (its first start; two
/// starting at once keep the first).
pub(super) fn make_key(conn: &Conn) -> Result<(), StoreError> {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    conn.execute(
        "INSERT INTO download_secret (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        &[&&key[..]],
    )?;
    Ok(())
}

impl DownloadReads for Pg<'_> {
    fn download(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        self.0
            .query_opt(
                &format!("SELECT {COLUMNS} FROM downloads WHERE id = $1"),
                &[&text(id)],
            )?
            .as_ref()
            .map(grant)
            .transpose()
            .with_context(|| format!("reading download {id}"))
    }

    fn download_key(&self) -> Result<[u8; 32], StoreError> {
        let key: Vec<u8> = self
            .0
            .query_one("SELECT key FROM download_secret WHERE id = 1", &[])
            .context("reading the download signing key (was the store opened?)")?
            .try_get(0)?;
        let Ok(key) = <[u8; 32]>::try_from(key.as_slice()) else {
            bail!("the download signing key is {} bytes, not 32", key.len());
        };
        Ok(key)
    }
}

impl DownloadWrites for Pg<'_> {
    fn grant(&self, new: &NewGrant<'_>) -> Result<Grant, StoreError> {
        let order_id = text(new.order_id);
        let sku = text(new.sku);
        self.0
            .execute(
                "INSERT INTO downloads
                     (id, order_id, sku, name, file, created_at, expires_at, max_uses)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (order_id, sku) DO NOTHING",
                &[
                    &text(new.id),
                    &order_id,
                    &sku,
                    &text(new.name),
                    &text(new.file),
                    &millis(new.created_at),
                    &millis(new.expires_at),
                    &i64::from(new.max_uses),
                ],
            )
            .with_context(|| format!("granting the download of order {}", new.order_id))?;
        let row = self
            .0
            .query_one(
                &format!("SELECT {COLUMNS} FROM downloads WHERE order_id = $1 AND sku = $2"),
                &[&order_id, &sku],
            )
            .context("reading back a download grant")?;
        grant(&row)
    }

    fn revoke_downloads(
        &self,
        order_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<usize, StoreError> {
        let changed = self
            .0
            .execute(
                "UPDATE downloads SET revoked_at = $1, revoked_reason = $2
                 WHERE order_id = $3 AND revoked_at IS NULL",
                &[&now, &text(reason), &text(order_id)],
            )
            .with_context(|| format!("revoking the downloads of order {order_id}"))?;
        Ok(usize::try_from(changed)?)
    }

    fn restore_downloads(&self, order_id: &str, reason: &str) -> Result<usize, StoreError> {
        let changed = self
            .0
            .execute(
                "UPDATE downloads SET revoked_at = NULL, revoked_reason = NULL
                 WHERE order_id = $1 AND revoked_reason = $2",
                &[&text(order_id), &text(reason)],
            )
            .with_context(|| format!("restoring the downloads of order {order_id}"))?;
        Ok(usize::try_from(changed)?)
    }

    fn count_download_use(&self, id: &str) -> Result<(), StoreError> {
        self.0
            .execute(
                "UPDATE downloads SET uses = uses + 1 WHERE id = $1",
                &[&text(id)],
            )
            .with_context(|| format!("taking a use of download {id}"))?;
        Ok(())
    }
}
