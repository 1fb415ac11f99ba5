//! The SQLite store: one file in WAL mode, fsync at every commit (a message
//! acknowledged to the gateway must survive a power cut). One connection
//! writes (the writer thread's, through [`Store::write_batch`] and
//! [`Store::write`]); reads take a `query_only` connection from a small
//! pool and never wait for it. Split by what it stores; each file holds
//! that part's SQL and row mapping.

mod cursor;
mod downloads;
mod emails;
mod inbox;
mod orders;
mod payments;
mod subscriptions;
mod views;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use anyhow::Context as _;
use ipn_storage::Migration;
use ipn_storage::sqlite::{Durability, Readers};
use rusqlite::{Connection, TransactionBehavior};

use super::{ApplyItem, Reads, Store, StoreError, Tx};

/// The schema, one change per file in `migrations/sqlite/`. A database
/// records each name it has had, so a name must never change.
pub const MIGRATIONS: &[Migration] = ipn_storage::migrations!("../../../migrations/sqlite":
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

/// At most this many read connections: each holds its own page cache. The
/// pages, the API and the workers share them.
const MAX_READERS: usize = 4;

/// The merchant's SQLite database.
#[derive(Debug)]
pub struct Sqlite {
    writer: Mutex<Connection>,
    readers: Readers,
}

impl Sqlite {
    /// Opens (creating if needed) the database file and applies the
    /// migrations it has not had.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let writer = ipn_storage::sqlite::open_writer(path, Durability::Full, MIGRATIONS)?;
        Ok(Self {
            writer: Mutex::new(writer),
            readers: Readers::new(path, MAX_READERS),
        })
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // The connection stays usable after a panic elsewhere: SQLite rolls
        // back an interrupted transaction itself.
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The typed reads and writes on one connection, inside a transaction.
struct Sql<'a>(&'a Connection);

impl Store for Sqlite {
    fn read(
        &self,
        read: &mut dyn FnMut(&dyn Reads) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.readers
            .read(|conn| {
                // One snapshot for the whole read.
                let tx = conn.unchecked_transaction()?;
                read(&Sql(&tx))?;
                tx.finish()?;
                Ok(())
            })
            .context("reading the merchant database")
    }

    fn write_batch(
        &self,
        len: usize,
        apply: &mut ApplyItem<'_>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let items: Vec<usize> = (0..len).collect();
        ipn_storage::sqlite::apply_batch(&mut self.writer(), &items, |conn, &index| {
            apply(&Sql(conn), index)
        })
    }

    fn write(
        &self,
        work: &mut dyn FnMut(&dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        work(&Sql(&tx))?;
        tx.commit().context("committing a transaction")
    }
}

impl Tx for Sql<'_> {
    fn attempt(
        &self,
        work: &mut dyn FnMut(&dyn Tx) -> Result<(), StoreError>,
    ) -> Result<Result<(), StoreError>, StoreError> {
        self.0.execute_batch("SAVEPOINT attempt")?;
        match work(self) {
            Ok(()) => {
                self.0.execute_batch("RELEASE attempt")?;
                Ok(Ok(()))
            }
            Err(error) if is_database_failure(&error) => Err(error),
            Err(error) => {
                self.0
                    .execute_batch("ROLLBACK TO attempt; RELEASE attempt")?;
                Ok(Err(error))
            }
        }
    }
}

/// Whether a failure is the database's (the disk, a lock, memory) rather
/// than the work's own: a constraint the work broke, a value that does not
/// fit, or anything that is not SQLite's.
fn is_database_failure(error: &StoreError) -> bool {
    use rusqlite::ErrorCode as Code;
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(failure, _))
                if !matches!(failure.code, Code::ConstraintViolation | Code::TypeMismatch)
        )
    })
}

/// A limit as SQLite takes it.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh database in a temporary folder, kept while the folder is.
    pub(crate) fn store() -> (tempfile::TempDir, Sqlite) {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(&dir.path().join("shop.db")).unwrap();
        (dir, store)
    }

    /// What `EXPLAIN QUERY PLAN` says of `sql`.
    pub(crate) fn plan(store: &Sqlite, sql: &str) -> Vec<String> {
        store
            .writer()
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map([], |row| row.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        let problems = ipn_storage::migrations::disagreements(&dir, MIGRATIONS).unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn migrations_run_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.db");
        drop(Sqlite::open(&path).unwrap());
        let mut conn = Connection::open(&path).unwrap();
        assert_eq!(
            ipn_storage::sqlite::migrate(&mut conn, MIGRATIONS).unwrap(),
            0
        );
    }
}
