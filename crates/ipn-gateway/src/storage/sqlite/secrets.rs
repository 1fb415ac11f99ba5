//! The gateway's own secrets and the key check: every secret that could
//! sign is stored sealed with the encryption key (`crate::secrets`), and a
//! wrong key is refused at start, even on an empty database.

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};

use crate::secrets::EncryptionKey;
use crate::storage::StoreError;
use crate::storage::sealed::{
    KEY_CHECK, check_key, endpoint_place, key_check, seal_plain, secret_place,
};

/// Checks `key` against the database's key check. A database without one
/// (new, or written by a release that stored secrets in plain text) gets
/// every stored secret sealed in place, endpoints' current and previous
/// secrets and the gateway's own, together with the key check in one
/// transaction; later starts only check (and seal a secret a newer
/// migration made for the gateway). Returns how many values it sealed.
///
/// Sealing overwrites the plain text where it lay (`secure_delete`) and
/// then empties the WAL, so no copy of it stays in the database's files.
pub(super) fn seal_secrets(
    conn: &mut Connection,
    key: &EncryptionKey,
) -> Result<usize, StoreError> {
    let secure_delete: i64 = conn.pragma_query_value(None, "secure_delete", |row| row.get(0))?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    let sealed = seal_plaintext(conn, key);
    conn.pragma_update(None, "secure_delete", secure_delete)?;
    let sealed = sealed?;
    if sealed > 0 {
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
        if busy != 0 {
            tracing::warn!("the WAL could not be emptied after encrypting the secrets");
        }
    }
    Ok(sealed)
}

fn seal_plaintext(conn: &mut Connection, key: &EncryptionKey) -> Result<usize, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let check: Option<String> = tx
        .query_row(
            "SELECT value FROM secrets WHERE name = ?1",
            [KEY_CHECK],
            |row| row.get(0),
        )
        .optional()?;
    let first = match check {
        Some(check) => {
            check_key(key, &check)?;
            false
        }
        None => true,
    };
    let seal = |value: &[u8], place: &str| seal_plain(key, value, place);
    let mut sealed = 0;
    if first {
        let endpoints = tx
            .prepare("SELECT id, secret, previous_secret FROM endpoints")?
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<String>>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for (id, secret, previous) in endpoints {
            let secret = seal(secret.as_bytes(), &endpoint_place("secret", &id))?;
            let previous = previous
                .map(|p| seal(p.as_bytes(), &endpoint_place("previous_secret", &id)))
                .transpose()?;
            sealed += 1 + usize::from(previous.is_some());
            tx.execute(
                "UPDATE endpoints SET secret = ?2, previous_secret = ?3 WHERE id = ?1",
                params![id, secret, previous],
            )?;
        }
    }
    // The gateway's own secrets are made by migrations (`randomblob`), which
    // cannot seal: any still a blob is sealed here, at the first start after
    // the migration that made it. Sealed ones are text.
    let own = tx
        .prepare("SELECT name, value FROM secrets WHERE typeof(value) = 'blob'")?
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (name, value) in own {
        let value = seal(&value, &secret_place(&name))?;
        sealed += 1;
        tx.execute(
            "UPDATE secrets SET value = ?2 WHERE name = ?1",
            params![name, value],
        )?;
    }
    if first {
        let check = key_check(key)?;
        tx.execute(
            "INSERT INTO secrets (name, value) VALUES (?1, ?2)",
            params![KEY_CHECK, check],
        )?;
    }
    tx.commit()?;
    Ok(sealed)
}

/// The gateway's secret for keyed request hashes, opened.
pub(super) fn idempotency_hash_key(
    conn: &Connection,
    key: &EncryptionKey,
) -> Result<Vec<u8>, StoreError> {
    const NAME: &str = "idempotency_hash_key";
    let sealed: String = conn
        .prepare_cached("SELECT value FROM secrets WHERE name = ?1")?
        .query_row([NAME], |row| row.get(0))?;
    let place = secret_place(NAME);
    key.open(&sealed, &place)
        .with_context(|| format!("reading {place}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Store as _;
    use crate::storage::sqlite::{Durability, Sqlite};

    #[test]
    fn a_secret_a_later_migration_makes_is_sealed_at_the_next_start_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let key = EncryptionKey::generate().unwrap();
        let store = Sqlite::open(&path, Durability::Normal, key.clone()).unwrap();
        let hash_key = store.idempotency_hash_key().unwrap();
        assert_eq!(hash_key.len(), 32);
        drop(store);

        // As a migration would make one: a random blob.
        let mut conn = Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO secrets (name, value) VALUES ('session_key', randomblob(32))",
            [],
        )
        .unwrap();
        let plain: Vec<u8> = conn
            .query_row(
                "SELECT value FROM secrets WHERE name = 'session_key'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(seal_secrets(&mut conn, &key).unwrap(), 1);
        let sealed: String = conn
            .query_row(
                "SELECT value FROM secrets WHERE name = 'session_key'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(key.open(&sealed, "secrets.session_key").unwrap(), plain);
        assert_eq!(seal_secrets(&mut conn, &key).unwrap(), 0, "nothing more");
        drop(conn);

        let store = Sqlite::open(&path, Durability::Normal, key).unwrap();
        assert_eq!(store.idempotency_hash_key().unwrap(), hash_key);
    }
}
