//! The gateway's own secrets and the key check, as on SQLite (the same
//! places, the same key check, the same refusal of a wrong key), except
//! that the store makes its own secrets here, sealed before they are
//! written: no migration ever stores one in plain text.

use anyhow::{Context as _, anyhow};
use ipn_storage::postgres::Conn;
use ring::rand::{SecureRandom as _, SystemRandom};

use crate::secrets::EncryptionKey;
use crate::storage::StoreError;
use crate::storage::sealed::{
    KEY_CHECK, OWN_SECRETS, check_key, endpoint_place, key_check, seal_plain, secret_place,
};

/// Serializes the first start of several processes on one new database:
/// only one makes the secrets and the key check.
const SEAL_LOCK: i64 = 0x6970_6e5f_7365_616c; // "ipn_seal"

/// Checks `key` against the database's key check. A database without one
/// gets, in one transaction, every endpoint secret stored in plain text
/// sealed in place (a database filled by other means), the gateway's own
/// secrets made sealed, and the key check; later starts check, and make a
/// secret a newer release added. Returns how many values it sealed.
pub(super) fn seal_secrets(conn: &Conn, key: &EncryptionKey) -> Result<usize, StoreError> {
    conn.batch_execute("BEGIN")?;
    match seal(conn, key) {
        Ok(sealed) => {
            conn.batch_execute("COMMIT")?;
            Ok(sealed)
        }
        Err(error) => {
            let _ = conn.batch_execute("ROLLBACK");
            Err(error)
        }
    }
}

fn seal(conn: &Conn, key: &EncryptionKey) -> Result<usize, StoreError> {
    conn.execute("SELECT pg_advisory_xact_lock($1)", &[&SEAL_LOCK])?;
    let check: Option<String> = conn
        .query_opt("SELECT value FROM secrets WHERE name = $1", &[&KEY_CHECK])?
        .map(|row| row.try_get(0))
        .transpose()?;
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
        let rows = conn.query("SELECT id, secret, previous_secret FROM endpoints", &[])?;
        for row in rows {
            let id: &str = row.try_get(0)?;
            let secret = seal(
                row.try_get::<_, &str>(1)?.as_bytes(),
                &endpoint_place("secret", id),
            )?;
            let previous = row
                .try_get::<_, Option<&str>>(2)?
                .map(|p| seal(p.as_bytes(), &endpoint_place("previous_secret", id)))
                .transpose()?;
            sealed += 1 + usize::from(previous.is_some());
            conn.execute(
                "UPDATE endpoints SET secret = $2, previous_secret = $3 WHERE id = $1",
                &[&id, &secret, &previous],
            )?;
        }
    }
    let random = SystemRandom::new();
    for name in OWN_SECRETS {
        let made = conn
            .query_opt("SELECT 1 FROM secrets WHERE name = $1", &[name])?
            .is_some();
        if made {
            continue;
        }
        let mut value = [0u8; 32];
        random
            .fill(&mut value)
            .map_err(|_| anyhow!("the system's random number generator failed"))?;
        let value = key.seal(&value, &secret_place(name))?;
        conn.execute(
            "INSERT INTO secrets (name, value) VALUES ($1, $2)",
            &[name, &value],
        )?;
    }
    if first {
        conn.execute(
            "INSERT INTO secrets (name, value) VALUES ($1, $2)",
            &[&KEY_CHECK, &key_check(key)?],
        )?;
    }
    Ok(sealed)
}

/// The gateway's secret for keyed request hashes, opened.
pub(super) fn idempotency_hash_key(
    conn: &Conn,
    key: &EncryptionKey,
) -> Result<Vec<u8>, StoreError> {
    const NAME: &str = "idempotency_hash_key";
    let sealed: String = conn
        .query_one("SELECT value FROM secrets WHERE name = $1", &[&NAME])?
        .try_get(0)?;
    let place = secret_place(NAME);
    key.open(&sealed, &place)
        .with_context(|| format!("reading {place}"))
}

#[cfg(test)]
mod tests {
    use ipn_storage::postgres::connect;

    use super::*;
    use crate::storage::Store as _;
    use crate::storage::postgres::Postgres;

    #[test]
    fn own_secrets_are_made_sealed_a_wrong_key_is_refused_and_plain_ones_are_sealed_once() {
        let test =
            "own_secrets_are_made_sealed_a_wrong_key_is_refused_and_plain_ones_are_sealed_once";
        let Some(database) = ipn_storage::postgres::test_database_if_reachable(test) else {
            return;
        };
        let key = EncryptionKey::generate().unwrap();
        // A schema alone (as `ipn migrate` leaves it) with an endpoint whose
        // secret is in plain text, as a database filled by other means.
        crate::storage::postgres::migrate(database.url()).unwrap();
        let conn = connect(&ipn_storage::postgres::parse_url(database.url()).unwrap()).unwrap();
        conn.batch_execute(
            "INSERT INTO merchants VALUES ('mer_1', 'shop', 'shop@example.com', 'h', 0);
             INSERT INTO endpoints (id, merchant_id, url, dialect, events, ordered, description,
                                    secret, created_at)
             VALUES ('ep_1', 'mer_1', 'http://127.0.0.1:9/', 'standard', '[]', false, '',
                     'whsec_plain', 0);",
        )
        .unwrap();
        let stored = |sql: &str| -> String { conn.query_one(sql, &[]).unwrap().get(0) };

        let store = Postgres::open(database.url(), key.clone()).unwrap();
        let hash_key = store.idempotency_hash_key().unwrap();
        assert_eq!(hash_key.len(), 32);
        let sealed = stored("SELECT value FROM secrets WHERE name = 'idempotency_hash_key'");
        assert_eq!(
            key.open(&sealed, "secrets.idempotency_hash_key").unwrap(),
            hash_key
        );
        let secret = stored("SELECT secret FROM endpoints WHERE id = 'ep_1'");
        assert_eq!(
            key.open(&secret, "endpoints.secret ep_1").unwrap(),
            b"whsec_plain"
        );
        drop(store);

        // A later start keeps what is there and seals nothing more.
        assert_eq!(seal_secrets(&conn, &key).unwrap(), 0);
        let store = Postgres::open(database.url(), key.clone()).unwrap();
        assert_eq!(store.idempotency_hash_key().unwrap(), hash_key);
        assert_eq!(
            stored("SELECT secret FROM endpoints WHERE id = 'ep_1'"),
            secret
        );
        drop(store);

        // A secret a newer release adds is made, sealed, at its first start.
        conn.batch_execute("DELETE FROM secrets WHERE name = 'idempotency_hash_key'")
            .unwrap();
        let store = Postgres::open(database.url(), key).unwrap();
        let made = store.idempotency_hash_key().unwrap();
        assert_eq!(made.len(), 32);
        assert_ne!(made, hash_key);
        drop(store);

        let error = Postgres::open(database.url(), EncryptionKey::generate().unwrap()).unwrap_err();
        assert!(
            format!("{error:#}").contains("the encryption key does not match this database"),
            "{error:#}"
        );
    }
}
