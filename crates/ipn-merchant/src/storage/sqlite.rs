//! The SQLite inbox: one file in WAL mode, fsync at every commit (a message
//! acknowledged to the gateway must survive a power cut), migrations applied
//! at start.

use std::path::Path;

use anyhow::Context as _;
use ipn_storage::Migration;
use ipn_storage::sqlite::Durability;
use rusqlite::{Connection, OptionalExtension as _, Transaction, params};

use super::{NewMessage, StoreError, Stored};

/// The merchant's schema, one change per file in `migrations/sqlite/`. A
/// database records each name it has had, so a name must never change.
pub const MIGRATIONS: &[Migration] = ipn_storage::migrations!("../../migrations/sqlite":
    "0001_inbox",
    "0002_postback",
    "0003_orders",
    "0004_handler",
    "0005_emails",
    "0006_downloads",
    "0007_reconcile",
    "0008_payment_checks",
    "0009_handler_retry",
    "0010_held_claims",
    "0011_subscription_orders",
    "0012_subscription_link_checked",
);

/// Opens (creating it and its folder if needed) the database for writing,
/// fsync at every commit, and applies the migrations not yet applied.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    ipn_storage::sqlite::open_writer(path, Durability::Full, MIGRATIONS)
}

/// A connection that only reads, opened after [`open`] has migrated the
/// file. WAL lets it read while the writer commits.
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    ipn_storage::sqlite::open_reader(path)
}

/// Applies the migrations not yet applied; returns how many ran.
pub fn migrate(conn: &mut Connection) -> Result<usize, StoreError> {
    ipn_storage::sqlite::migrate(conn, MIGRATIONS)
}

/// Inserts one message, or finds the row that already holds its `webhook-id`.
pub fn insert(tx: &Transaction<'_>, message: &NewMessage) -> Result<Stored, StoreError> {
    let headers = serde_json::Value::Object(
        message
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), serde_json::Value::from(value.as_str())))
            .collect(),
    );
    let inserted = tx
        .prepare_cached(
            "INSERT INTO inbox (received_at, dialect, webhook_id, headers, body, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            message.received_at,
            message.dialect.as_str(),
            message.webhook_id,
            headers.to_string(),
            message.body,
            message.status.as_str(),
        ])?;
    if inserted == 1 {
        return Ok(Stored::New(tx.last_insert_rowid()));
    }
    let earlier = tx
        .prepare_cached("SELECT id FROM inbox WHERE webhook_id = ?1")?
        .query_row([&message.webhook_id], |row| row.get(0))
        .optional()?
        .context("an inbox insert changed nothing, yet no row holds its webhook-id")?;
    Ok(Stored::Duplicate(earlier))
}

#[cfg(test)]
mod tests {
    use ipn_core::Dialect;

    use super::*;
    use crate::storage::InboxStatus;

    fn message(webhook_id: Option<&str>, body: &[u8]) -> NewMessage {
        NewMessage {
            dialect: Dialect::Standard,
            webhook_id: webhook_id.map(str::to_owned),
            headers: vec![("webhook-id".into(), "evt_1".into())],
            body: body.to_vec(),
            status: InboxStatus::Received,
            received_at: 1,
        }
    }

    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        let problems = ipn_storage::migrations::disagreements(&dir, MIGRATIONS).unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn migrations_run_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inbox.db");
        drop(open(&path).unwrap());
        let mut conn = open(&path).unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), 0);
    }

    #[test]
    fn a_webhook_id_is_stored_once_and_none_never_collides() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let tx = conn.transaction().unwrap();
        let first = insert(&tx, &message(Some("evt_1"), b"a")).unwrap();
        let Stored::New(id) = first else {
            panic!("{first:?}")
        };
        assert_eq!(
            insert(&tx, &message(Some("evt_1"), b"b")).unwrap(),
            Stored::Duplicate(id)
        );
        assert!(matches!(
            insert(&tx, &message(None, b"c")).unwrap(),
            Stored::New(_)
        ));
        assert!(matches!(
            insert(&tx, &message(None, b"c")).unwrap(),
            Stored::New(_)
        ));
        tx.commit().unwrap();
        let bodies: Vec<Vec<u8>> = conn
            .prepare("SELECT body FROM inbox ORDER BY id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(bodies, [b"a".to_vec(), b"c".to_vec(), b"c".to_vec()]);
    }
}
