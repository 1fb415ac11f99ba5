//! Storage tests on both databases from the same test code: [`each_store`]
//! runs a test on a fresh SQLite file and then, when a server is
//! reachable, on a fresh PostgreSQL database (or says by name that that
//! half was skipped; with `IPN_REQUIRE_POSTGRES=1` an unreachable server
//! fails the test).

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

use ipn_storage::postgres::TestDatabase;

use super::{Store, StoreError, postgres, sqlite};

/// A store on a fresh database, with a connection of the test's own to it.
#[derive(Debug)]
pub(crate) struct TestStore {
    /// Dropped before the database it is on.
    store: Arc<dyn Store>,
    database: Raw,
}

#[derive(Debug)]
enum Raw {
    Sqlite {
        path: PathBuf,
        _dir: tempfile::TempDir,
    },
    Postgres(Box<TestDatabase>),
}

impl Deref for TestStore {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

impl Store for TestStore {
    fn read(
        &self,
        read: &mut dyn FnMut(&dyn super::Reads) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.store.read(read)
    }

    fn write_batch(
        &self,
        len: usize,
        apply: &mut super::ApplyItem<'_>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        self.store.write_batch(len, apply)
    }

    fn write(
        &self,
        work: &mut dyn FnMut(&dyn super::Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.store.write(work)
    }
}

impl TestStore {
    /// A SQLite file in a temporary folder.
    pub(crate) fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.db");
        Self {
            store: Arc::new(sqlite::Sqlite::open(&path).unwrap()),
            database: Raw::Sqlite { path, _dir: dir },
        }
    }

    /// A fresh PostgreSQL database, when a server is reachable.
    pub(crate) fn postgres(test: &str) -> Option<Self> {
        let (store, database) = postgres::test_store(test)?;
        Some(Self {
            store: Arc::new(store),
            database: Raw::Postgres(Box::new(database)),
        })
    }

    /// `sqlite` or `postgres`, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self.database {
            Raw::Sqlite { .. } => "sqlite",
            Raw::Postgres(_) => "postgres",
        }
    }

    /// The store, shared.
    pub(crate) fn shared(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// Runs `sql`, statements both databases read, on a connection of the
    /// test's own: a fixture put in as something other than the merchant
    /// would, or a write the schema must refuse.
    pub(crate) fn try_execute(&self, sql: &str) -> Result<(), StoreError> {
        match &self.database {
            Raw::Sqlite { path, .. } => Ok(rusqlite::Connection::open(path)?.execute_batch(sql)?),
            Raw::Postgres(database) => connect(database)?.batch_execute(sql),
        }
    }

    pub(crate) fn execute(&self, sql: &str) {
        self.try_execute(sql).unwrap();
    }

    /// The rows of `sql`, every column as text (`CAST(… AS TEXT)` reads
    /// any other type as text on both databases).
    pub(crate) fn texts(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        match &self.database {
            Raw::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                let mut statement = conn.prepare(sql).unwrap();
                let width = statement.column_count();
                statement
                    .query_map([], |row| (0..width).map(|i| row.get(i)).collect())
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap()
            }
            Raw::Postgres(database) => connect(database)
                .unwrap()
                .query(sql, &[])
                .unwrap()
                .iter()
                .map(|row| (0..row.len()).map(|i| row.get(i)).collect())
                .collect(),
        }
    }
}

fn connect(database: &TestDatabase) -> Result<ipn_storage::postgres::Conn, StoreError> {
    ipn_storage::postgres::connect(&ipn_storage::postgres::parse_url(database.url())?)
}

/// Runs `check` on a fresh store of each database (PostgreSQL's only when
/// a server is reachable); `test` names the test where the PostgreSQL half
/// is skipped.
pub(crate) fn each_store(test: &str, mut check: impl FnMut(&TestStore)) {
    let sqlite = TestStore::sqlite();
    eprintln!("{test}: on sqlite");
    check(&sqlite);
    drop(sqlite);
    if let Some(postgres) = TestStore::postgres(test) {
        eprintln!("{test}: on postgres");
        check(&postgres);
    }
}
