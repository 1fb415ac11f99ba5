//! The PostgreSQL store, with SQLite's behaviour: one client writes (the
//! writer thread's, through [`Store::write_batch`] and [`Store::write`],
//! reopened if its connection was lost); reads take a read-only client from
//! a small pool and run in one REPEATABLE READ transaction, PostgreSQL's
//! snapshot, so they never wait for a commit and agree with themselves.
//! Split by what it stores, like `sqlite/`; each file holds that part's SQL
//! and row mapping. Statements are prepared once per client.
//!
//! One `ipn merchant` writes to a database, as on SQLite: the handler's
//! pass and the keys it claims assume that no other process handles the
//! same inbox.
//!
//! PostgreSQL's `text` cannot hold U+0000: every text a caller gives (a
//! message's ids, a reason quoting a bad field, an email's body) is written
//! and looked up through [`ipn_storage::postgres::text`], NUL as U+FFFD,
//! so the same input that SQLite stores is stored here too.

mod cursor;
mod downloads;
mod emails;
mod inbox;
mod orders;
mod payments;
mod subscriptions;
mod views;

use anyhow::Context as _;
use ipn_storage::Migration;
use ipn_storage::postgres::{Conn, Readers, WriteConn};

use super::{ApplyItem, Reads, Store, StoreError, Tx};

/// The schema, one change per file in `migrations/postgres/`. A database
/// records each name it has had, so a name must never change.
pub const MIGRATIONS: &[Migration] = ipn_storage::migrations!("../../../migrations/postgres":
    "0001_initial",
);

/// At most this many read clients (each is a server process). The pages,
/// the API and the workers share them.
const MAX_READERS: usize = 4;

/// The merchant's PostgreSQL database.
#[derive(Debug)]
pub struct Postgres {
    writer: WriteConn,
    readers: Readers,
}

impl Postgres {
    /// Connects to the database at `url`, applies the migrations it has
    /// not had, and makes the download signing key on the first start.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let config = ipn_storage::postgres::parse_url(url)?;
        let conn = ipn_storage::postgres::connect(&config)?;
        ipn_storage::postgres::migrate(&conn, MIGRATIONS)
            .context("migrating the merchant's PostgreSQL database")?;
        downloads::make_key(&conn).context("making the download signing key")?;
        Ok(Self {
            writer: WriteConn::new(config.clone(), conn),
            readers: Readers::new(config, MAX_READERS),
        })
    }
}

/// Refuses a URL that does not parse, before anything connects.
pub fn check_url(url: &str) -> Result<(), StoreError> {
    ipn_storage::postgres::parse_url(url).map(drop)
}

/// The typed reads and writes on one client, inside a transaction.
struct Pg<'a>(&'a Conn);

/// Runs `work` inside a transaction on `conn` opened with `begin`:
/// committed when it returns `Ok`, rolled back otherwise.
fn transaction(
    conn: &Conn,
    begin: &str,
    work: impl FnOnce(&Conn) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    conn.batch_execute(begin)?;
    match work(conn) {
        Ok(()) => conn
            .batch_execute("COMMIT")
            .context("committing a transaction"),
        Err(error) => {
            // A client that cannot roll back has lost its connection, and
            // its pool drops it.
            let _ = conn.batch_execute("ROLLBACK");
            Err(error)
        }
    }
}

impl Store for Postgres {
    fn read(
        &self,
        read: &mut dyn FnMut(&dyn Reads) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.readers
            .read(|conn| {
                // One snapshot for the whole read.
                transaction(
                    conn,
                    "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                    |conn| read(&Pg(conn)),
                )
            })
            .context("reading the merchant database")
    }

    fn write_batch(
        &self,
        len: usize,
        apply: &mut ApplyItem<'_>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let items: Vec<usize> = (0..len).collect();
        self.writer.with(|conn| {
            ipn_storage::postgres::apply_batch(conn, &items, |conn, &index| apply(&Pg(conn), index))
        })
    }

    fn write(
        &self,
        work: &mut dyn FnMut(&dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.writer
            .with(|conn| transaction(conn, "BEGIN", |conn| work(&Pg(conn))))
    }
}

impl Tx for Pg<'_> {
    fn attempt(
        &self,
        work: &mut dyn FnMut(&dyn Tx) -> Result<(), StoreError>,
    ) -> Result<Result<(), StoreError>, StoreError> {
        self.0.batch_execute("SAVEPOINT attempt")?;
        match work(self) {
            Ok(()) => {
                self.0.batch_execute("RELEASE SAVEPOINT attempt")?;
                Ok(Ok(()))
            }
            Err(error) if ipn_storage::postgres::is_database_failure(&error) => Err(error),
            Err(error) => {
                self.0
                    .batch_execute("ROLLBACK TO SAVEPOINT attempt; RELEASE SAVEPOINT attempt")?;
                Ok(Err(error))
            }
        }
    }
}

/// A limit as PostgreSQL takes it.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A count or attempt number read from a BIGINT column.
fn to_u32(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).with_context(|| format!("{what} out of range: {value}"))
}

/// A store on a fresh database, and the database (dropped after the
/// store); `None`, said by name, when no server is reachable.
#[cfg(test)]
pub(crate) fn test_store(test: &str) -> Option<(Postgres, ipn_storage::postgres::TestDatabase)> {
    let database = ipn_storage::postgres::test_database_if_reachable(test)?;
    let store = Postgres::open(database.url()).unwrap();
    Some((store, database))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
        let problems = ipn_storage::migrations::disagreements(&dir, MIGRATIONS).unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn migrations_run_once_and_the_key_is_made_once() {
        let Some((store, database)) = test_store("merchant migrations_run_once") else {
            return;
        };
        let key = (&store as &dyn Store)
            .read_with(|r| r.download_key())
            .unwrap();
        drop(store);
        let again = Postgres::open(database.url()).unwrap();
        let store: &dyn Store = &again;
        assert_eq!(store.read_with(|r| r.download_key()).unwrap(), key);
        let config = ipn_storage::postgres::parse_url(database.url()).unwrap();
        let conn = ipn_storage::postgres::connect(&config).unwrap();
        assert_eq!(
            ipn_storage::postgres::migrate(&conn, MIGRATIONS).unwrap(),
            0
        );
    }

    /// What `EXPLAIN` says of `sql` with sequential and bitmap scans made
    /// as dear as PostgreSQL allows, and sorts too unless `sorts`: on an
    /// empty table the planner would take any of them, so this shows what
    /// it can do without (a sort that no index spares still appears).
    fn plan(url: &str, sql: &str, sorts: bool) -> String {
        let config = ipn_storage::postgres::parse_url(url).unwrap();
        let conn = ipn_storage::postgres::connect(&config).unwrap();
        conn.batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
            .unwrap();
        if !sorts {
            conn.batch_execute("SET enable_sort = off").unwrap();
        }
        let rows = conn.query(&format!("EXPLAIN {sql}"), &[]).unwrap();
        let lines: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        lines.join("\n")
    }

    #[test]
    fn the_waiting_scans_walk_their_partial_indexes_without_a_sort() {
        let Some((_store, database)) = test_store("merchant waiting scans use their indexes")
        else {
            return;
        };
        for (sql, index) in [
            (inbox::POSTBACKS_DUE, "inbox_waiting"),
            (inbox::NEXT_POSTBACK, "inbox_waiting"),
            (inbox::WAITING, "inbox_ready"),
        ] {
            let sql = sql.replace("$1", "1").replace("$2", "10");
            let plan = plan(database.url(), &sql, false);
            assert!(plan.contains(index), "{sql}: {plan}");
            assert!(!plan.contains("Sort"), "{sql}: {plan}");
        }
    }

    #[test]
    fn the_mail_worker_queries_use_the_partial_index() {
        let Some((_store, database)) = test_store("merchant mail queries use their index") else {
            return;
        };
        for sql in [emails::DUE, emails::NEXT_DUE] {
            let sql = sql.replace("$1", "1").replace("$2", "10");
            let plan = plan(database.url(), &sql, true);
            assert!(plan.contains("emails_due"), "{sql}: {plan}");
        }
    }
}
