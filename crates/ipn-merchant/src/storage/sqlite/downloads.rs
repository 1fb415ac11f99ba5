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

#[cfg(test)]
pub(crate) mod tests {
    use time::macros::datetime;

    use super::super::orders::tests::order;
    use super::super::tests::store;
    use super::*;
    use crate::storage::Store;

    const NOW: OffsetDateTime = datetime!(2026-11-25 12:00 UTC);

    /// A store with two orders, `ord_1` and `ord_2`, to grant downloads of.
    pub(crate) fn shop() -> (tempfile::TempDir, super::super::Sqlite) {
        let (dir, sqlite) = store();
        let store: &dyn Store = &sqlite;
        store
            .write_with(|tx| {
                tx.insert_order(&order("ord_1", "cs_1"))?;
                tx.insert_order(&order("ord_2", "cs_2"))
            })
            .unwrap();
        (dir, sqlite)
    }

    fn new<'a>(id: &'a str, order_id: &'a str, sku: &'a str, max_uses: u32) -> NewGrant<'a> {
        NewGrant {
            id,
            order_id,
            sku,
            name: "The Book",
            file: "book.pdf",
            created_at: NOW,
            expires_at: NOW + time::Duration::days(7),
            max_uses,
        }
    }

    #[test]
    fn a_grant_is_stored_once_per_order_and_sku() {
        let (_dir, sqlite) = shop();
        let store: &dyn Store = &sqlite;
        let first = store
            .write_with(|tx| tx.grant(&new("dl_1", "ord_1", "book", 5)))
            .unwrap();
        assert_eq!(
            (first.id.as_str(), first.uses, first.max_uses),
            ("dl_1", 0, 5)
        );
        assert_eq!(first.expires_at, NOW + time::Duration::days(7));
        let again = store
            .write_with(|tx| {
                tx.count_download_use("dl_1")?;
                tx.grant(&new("dl_2", "ord_1", "book", 1))
            })
            .unwrap();
        assert_eq!(
            again,
            Grant {
                uses: 1,
                ..first.clone()
            },
            "the first one stays"
        );
        store
            .write_with(|tx| tx.grant(&new("dl_3", "ord_1", "song", 5)))
            .unwrap();
        let ids: Vec<String> = store
            .read_with(|r| r.order_downloads("ord_1"))
            .unwrap()
            .into_iter()
            .map(|g| g.id)
            .collect();
        assert_eq!(ids, ["dl_1", "dl_3"]);
        assert!(store.read_with(|r| r.download("dl_2")).unwrap().is_none());
    }

    #[test]
    fn revoking_keeps_the_first_reason_and_restoring_lifts_only_its_own() {
        let (_dir, sqlite) = shop();
        let store: &dyn Store = &sqlite;
        store
            .write_with(|tx| {
                tx.grant(&new("dl_1", "ord_1", "book", 5))?;
                tx.grant(&new("dl_2", "ord_1", "song", 5))?;
                tx.grant(&new("dl_3", "ord_2", "book", 5))?;
                assert_eq!(tx.revoke_downloads("ord_1", "refunded", 7)?, 2);
                assert_eq!(tx.revoke_downloads("ord_1", "reversed", 8)?, 0);
                assert_eq!(tx.revoke_downloads("ord_9", "refunded", 7)?, 0);
                assert_eq!(tx.restore_downloads("ord_1", "reversed")?, 0);
                Ok(())
            })
            .unwrap();
        let book = store.read_with(|r| r.download("dl_1")).unwrap().unwrap();
        assert_eq!(book.revoked_reason.as_deref(), Some("refunded"));
        assert_eq!(book.revoked_at.map(millis), Some(7));
        let other = store.read_with(|r| r.download("dl_3")).unwrap().unwrap();
        assert_eq!(other.revoked_at, None);
        let restored = store
            .write_with(|tx| tx.restore_downloads("ord_1", "refunded"))
            .unwrap();
        assert_eq!(restored, 2);
    }

    #[test]
    fn the_schema_makes_one_random_key_per_database() {
        let (_a_dir, a) = store();
        let (_b_dir, b) = store();
        let key = |sqlite: &super::super::Sqlite| {
            let store: &dyn Store = sqlite;
            store.read_with(|r| r.download_key()).unwrap()
        };
        assert_ne!(key(&a), key(&b));
        assert_ne!(key(&a), [0; 32]);
        let second = super::super::tests::try_execute(
            &a,
            "INSERT INTO download_secret (id, key) VALUES (2, randomblob(32))",
        );
        assert!(second.is_err());
    }
}
