//! Download grants, one per digital line of a paid order, and the key
//! their links are signed with. The row is the truth: expiry, the use
//! count and revocation are read from it at every request.

use time::OffsetDateTime;

use super::StoreError;

/// A download grant, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `dl_<ULID>`.
    pub id: String,
    pub order_id: String,
    pub sku: String,
    pub name: String,
    pub file: String,
    pub created_at: OffsetDateTime,
    /// The first instant at which the link no longer works.
    pub expires_at: OffsetDateTime,
    pub max_uses: u32,
    /// Downloads started so far.
    pub uses: u32,
    pub revoked_at: Option<OffsetDateTime>,
    /// Why: `refunded`, `reversed`. Set exactly when `revoked_at` is.
    pub revoked_reason: Option<String>,
}

/// A grant to make.
#[derive(Debug, Clone, Copy)]
pub struct NewGrant<'a> {
    pub id: &'a str,
    pub order_id: &'a str,
    pub sku: &'a str,
    pub name: &'a str,
    pub file: &'a str,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub max_uses: u32,
}

pub trait DownloadReads {
    fn download(&self, id: &str) -> Result<Option<Grant>, StoreError>;
    /// The 32 random bytes that sign download links, made with the database
    /// (by SQLite's schema; by the PostgreSQL store when it first opens it).
    fn download_key(&self) -> Result<[u8; 32], StoreError>;
}

pub trait DownloadWrites {
    /// Stores a grant unless its order and sku have one already; returns
    /// the grant stored (that one unchanged, uses and revocation included).
    fn grant(&self, grant: &NewGrant<'_>) -> Result<Grant, StoreError>;
    /// Revokes every grant of the order not already revoked, with `reason`;
    /// returns how many changed. A second call keeps the first reason.
    fn revoke_downloads(&self, order_id: &str, reason: &str, now: i64)
    -> Result<usize, StoreError>;
    /// Lifts the revocations of the order made with `reason`; returns how
    /// many changed. A revocation for another reason stays.
    fn restore_downloads(&self, order_id: &str, reason: &str) -> Result<usize, StoreError>;
    /// Counts one use of a grant.
    fn count_download_use(&self, id: &str) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::clock::millis;
    use crate::storage::orders::tests::order;
    use crate::storage::testing::{TestStore, each_store};

    const NOW: OffsetDateTime = datetime!(2026-11-25 12:00 UTC);

    /// Two orders, `ord_1` and `ord_2`, to grant downloads of.
    fn shop(store: &TestStore) {
        store
            .write_with(|tx| {
                tx.insert_order(&order("ord_1", "cs_1"))?;
                tx.insert_order(&order("ord_2", "cs_2"))
            })
            .unwrap();
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
        each_store("a_grant_is_stored_once_per_order_and_sku", |store| {
            shop(store);
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
        });
    }

    #[test]
    fn grants_list_in_the_order_they_were_made() {
        each_store("grants_list_in_the_order_they_were_made", |store| {
            shop(store);
            store
                .write_with(|tx| {
                    for (id, sku) in [("dl_c", "a"), ("dl_a", "b"), ("dl_b", "c")] {
                        tx.grant(&new(id, "ord_1", sku, 5))?;
                    }
                    Ok(())
                })
                .unwrap();
            let ids: Vec<String> = store
                .read_with(|r| r.order_downloads("ord_1"))
                .unwrap()
                .into_iter()
                .map(|g| g.id)
                .collect();
            assert_eq!(ids, ["dl_c", "dl_a", "dl_b"]);
        });
    }

    #[test]
    fn revoking_keeps_the_first_reason_and_restoring_lifts_only_its_own() {
        each_store("revoking_keeps_the_first_reason", |store| {
            shop(store);
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
        });
    }

    #[test]
    fn the_database_refuses_a_use_past_the_last() {
        each_store("the_database_refuses_a_use_past_the_last", |store| {
            shop(store);
            store
                .write(&mut |tx| {
                    tx.grant(&new("dl_1", "ord_1", "book", 1))?;
                    tx.count_download_use("dl_1")?;
                    let extra = tx.attempt(&mut |tx| tx.count_download_use("dl_1"))?;
                    assert!(extra.is_err(), "{}: the CHECK refuses it", store.kind());
                    Ok(())
                })
                .unwrap();
            let grant = store.read_with(|r| r.download("dl_1")).unwrap().unwrap();
            assert_eq!((grant.uses, grant.max_uses), (1, 1));
        });
    }

    #[test]
    fn each_database_has_its_own_random_key() {
        each_store("each_database_has_its_own_random_key", |a| {
            let b = match a.kind() {
                "sqlite" => TestStore::sqlite(),
                _ => TestStore::postgres("each_database_has_its_own_random_key").unwrap(),
            };
            let key = |store: &TestStore| store.read_with(|r| r.download_key()).unwrap();
            assert_ne!(key(a), key(&b));
            assert_ne!(key(a), [0; 32]);
            let second = a.try_execute(
                "INSERT INTO download_secret (id, key) SELECT 2, key FROM download_secret",
            );
            assert!(second.is_err());
        });
    }
}
