//! SQLite as both services use it: one file in WAL mode, one connection
//! that writes (the writer thread's) and a small pool of connections that
//! only read, so reads never wait for a commit.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::{Connection, TransactionBehavior};

use crate::{Migration, StoreError};

/// How long a statement waits for a lock another connection holds (a
/// checkpoint, a second process migrating) before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How hard a commit insists on reaching the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync at every commit: a power cut loses nothing acknowledged.
    Full,
    /// fsync at checkpoints: a killed process loses nothing, a power cut
    /// may lose the last commits.
    Normal,
}

/// Opens (creating it and its folder if needed) the database file for
/// writing, and applies the migrations it has not had.
pub fn open_writer(
    path: &Path,
    durability: Durability,
    migrations: &[Migration],
) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut conn = open(path)?;
    let synchronous = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    // Statement journals and sorts in memory, not in temporary files.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    migrate(&mut conn, migrations)
        .with_context(|| format!("migrating the SQLite database {}", path.display()))?;
    Ok(conn)
}

/// A connection that can only read, on a file [`open_writer`] has migrated.
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = open(path)?;
    // Only the writer thread writes.
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(conn)
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)
        .with_context(|| format!("opening the SQLite database {}", path.display()))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Applies the migrations not yet applied, each in its own transaction with
/// the row that records it; returns how many ran.
pub fn migrate(conn: &mut Connection, migrations: &[Migration]) -> Result<usize, StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    let mut applied = 0;
    for migration in migrations {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let done: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = ?1)",
            [migration.name],
            |row| row.get(0),
        )?;
        if !done {
            tx.execute_batch(migration.sql)
                .with_context(|| format!("applying migration {}", migration.name))?;
            tx.execute(
                "INSERT INTO schema_migrations (name, applied_at) VALUES (?1, unixepoch() * 1000)",
                [migration.name],
            )?;
            applied += 1;
        }
        tx.commit()?;
    }
    Ok(applied)
}

/// Applies `items` in ONE transaction and commits; one result per item, in
/// order. An item whose `apply` fails rolls back alone (its result is the
/// error) and the others still commit; a failing commit fails them all.
///
/// The whole batch is tried first without savepoints, which cost a quarter
/// of a busy writer's time; items rarely fail, and when one does the batch
/// is redone with a savepoint around each.
pub fn apply_batch<I, T>(
    conn: &mut Connection,
    items: &[I],
    mut apply: impl FnMut(&Connection, &I) -> Result<T, StoreError>,
) -> Result<Vec<Result<T, StoreError>>, StoreError> {
    {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            match apply(&tx, item) {
                Ok(done) => results.push(Ok(done)),
                Err(_) => break,
            }
        }
        if results.len() == items.len() {
            tx.commit().context("committing a batch")?;
            return Ok(results);
        }
        // Dropping `tx` rolls the whole batch back; it is redone below.
    }
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let mut savepoint = tx.savepoint()?;
        match apply(&savepoint, item) {
            Ok(done) => {
                savepoint.commit()?;
                results.push(Ok(done));
            }
            Err(error) => {
                savepoint.rollback()?;
                results.push(Err(error));
            }
        }
    }
    tx.commit().context("committing a batch")?;
    Ok(results)
}

/// Read connections, opened as needed up to a cap and reused.
#[derive(Debug)]
pub struct Readers {
    path: PathBuf,
    max: usize,
    pool: Mutex<Pool>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct Pool {
    idle: Vec<Connection>,
    open: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Connections stay usable after a panic elsewhere: SQLite rolls back an
    // interrupted transaction itself.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Readers {
    /// At most `max` connections to `path`: each holds its own page cache,
    /// and a burst of reads must not open hundreds.
    pub fn new(path: &Path, max: usize) -> Self {
        Self {
            path: path.to_owned(),
            max: max.max(1),
            pool: Mutex::new(Pool::default()),
            freed: Condvar::new(),
        }
    }

    /// Runs `f` on a read connection; waits for one while all are busy.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.take()?;
        let result = f(&conn);
        lock(&self.pool).idle.push(conn);
        self.freed.notify_one();
        result
    }

    /// An idle connection, a new one while under the cap, or else the next
    /// one given back.
    fn take(&self) -> Result<Connection, StoreError> {
        let mut pool = lock(&self.pool);
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(conn);
            }
            if pool.open < self.max {
                pool.open += 1;
                drop(pool);
                return open_reader(&self.path).inspect_err(|_| {
                    lock(&self.pool).open -= 1;
                    self.freed.notify_one(); // a waiter may open one
                });
            }
            pool = self.freed.wait(pool).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// A row's text column parsed into a typed value, the parse error kept as
/// the conversion failure SQLite's row mapping expects.
pub fn parse_column<T, E>(
    row: &rusqlite::Row<'_>,
    index: usize,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> rusqlite::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let text = row.get_ref(index)?.as_str()?;
    parse(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// A conversion failure of column `index`, for values that do not parse.
pub fn conversion(index: usize, message: impl Into<String>) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        message.into().into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &[Migration] = &[
        Migration {
            name: "0001_a",
            sql: "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE);",
        },
        Migration {
            name: "0002_b",
            sql: "ALTER TABLE a ADD COLUMN w INTEGER;",
        },
    ];

    #[test]
    fn migrations_run_once_each_and_are_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/t.db");
        let mut conn = open_writer(&path, Durability::Normal, &SCHEMA[..1]).unwrap();
        assert_eq!(migrate(&mut conn, SCHEMA).unwrap(), 1, "only the new one");
        assert_eq!(migrate(&mut conn, SCHEMA).unwrap(), 0);
        let names: Vec<String> = conn
            .prepare("SELECT name FROM schema_migrations ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(names, ["0001_a", "0002_b"]);
    }

    #[test]
    fn a_failing_migration_leaves_nothing_of_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let bad = [
            SCHEMA[0],
            Migration {
                name: "0002_bad",
                sql: "ALTER TABLE a ADD COLUMN x INTEGER; SELECT * FROM nowhere;",
            },
        ];
        assert!(open_writer(&path, Durability::Normal, &bad).is_err());
        let mut conn = open_writer(&path, Durability::Normal, &SCHEMA[..1]).unwrap();
        assert_eq!(
            migrate(&mut conn, SCHEMA).unwrap(),
            1,
            "0002_b applies cleanly"
        );
    }

    #[test]
    fn a_failing_item_rolls_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = open_writer(&path, Durability::Normal, SCHEMA).unwrap();
        let items = ["x", "y", "x", "z"];
        let results = apply_batch(&mut conn, &items, |tx, v| {
            tx.execute("INSERT INTO a (v) VALUES (?1)", [v])?;
            Ok(*v)
        })
        .unwrap();
        let failed: Vec<bool> = results.iter().map(Result::is_err).collect();
        assert_eq!(failed, [false, false, true, false]);
        let readers = Readers::new(&path, 2);
        let stored: Vec<String> = readers
            .read(|conn| {
                Ok(conn
                    .prepare("SELECT v FROM a ORDER BY id")?
                    .query_map([], |row| row.get(0))?
                    .collect::<Result<_, _>>()?)
            })
            .unwrap();
        assert_eq!(stored, ["x", "y", "z"]);
    }

    #[test]
    fn readers_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(open_writer(&path, Durability::Full, SCHEMA).unwrap());
        let readers = Readers::new(&path, 1);
        let wrote = readers.read(|conn| Ok(conn.execute("INSERT INTO a (v) VALUES ('n')", [])?));
        assert!(wrote.is_err());
    }
}
