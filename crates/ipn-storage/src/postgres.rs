//! PostgreSQL as both services use it: clients of `tokio-postgres`
//! behind the same synchronous shape as `sqlite.rs` (a connection that
//! writes, batches in one transaction, a capped pool of readers, migrations
//! from `.sql` files).
//!
//! Why this shape: the services' storage interfaces are synchronous, and
//! they are called from `spawn_blocking` threads and from the writer's own
//! thread. The synchronous `postgres` crate and `Runtime::block_on` panic on
//! a thread inside a tokio runtime's context (spawn_blocking threads are),
//! so instead one background runtime of our own (one worker thread, started
//! on first use) drives every [`tokio_postgres::Connection`], and callers
//! wait on a client's futures with `futures::executor::block_on`, which
//! needs no runtime. It must never be nested: every method here blocks on
//! its own statements and returns, and none runs inside another's future.
//! The client's futures only talk to their connection's task through
//! channels, so they can be polled from any thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::str::FromStr as _;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

use anyhow::{Context as _, anyhow};
use tokio_postgres::{Client, NoTls, RowStream, Statement};

use crate::{Migration, StoreError};

pub use tokio_postgres::types::ToSql;
pub use tokio_postgres::{Config, Row};

/// A parameter of a statement.
pub type Param<'a> = &'a (dyn ToSql + Sync);

/// Reads a `postgres://user@host:port/db` (or `postgresql://`) URL.
pub fn parse_url(url: &str) -> Result<Config, StoreError> {
    // The URL is not repeated in the error: it may hold a password.
    Config::from_str(url).map_err(|e| anyhow!("the PostgreSQL URL does not parse: {e}"))
}

/// The runtime that drives every connection's socket.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ipn-postgres")
            .enable_all()
            .build()
            .expect("starting the PostgreSQL connections' runtime")
    })
}

/// Waits for a client's future on the calling thread. Never call it from
/// inside a future that this function is running.
pub fn block_on<F: Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}

/// One client and the statements it has prepared: a statement is prepared
/// once per client and reused (the plan is the server's, per session).
/// Used by one thread at a time (the writer's, or a reader's borrower).
#[derive(Debug)]
pub struct Conn {
    client: Client,
    statements: RefCell<HashMap<String, Statement>>,
}

/// Opens a client; its connection runs on the background runtime.
pub fn connect(config: &Config) -> Result<Conn, StoreError> {
    let config = config.clone();
    let task = runtime().spawn(async move {
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "a PostgreSQL connection ended");
            }
        });
        Ok::<_, tokio_postgres::Error>(client)
    });
    let client = block_on(task)
        .context("the PostgreSQL connection task failed")?
        .context("connecting to PostgreSQL")?;
    Ok(Conn {
        client,
        statements: RefCell::new(HashMap::new()),
    })
}

impl Conn {
    /// The statement for `sql`, prepared on first use.
    pub fn statement(&self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = block_on(self.client.prepare(sql))
            .with_context(|| format!("preparing {}", first_line(sql)))?;
        self.statements
            .borrow_mut()
            .insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    pub fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        let statement = self.statement(sql)?;
        Ok(block_on(self.client.query(&statement, params))?)
    }

    pub fn query_one(&self, sql: &str, params: &[Param<'_>]) -> Result<Row, StoreError> {
        let statement = self.statement(sql)?;
        Ok(block_on(self.client.query_one(&statement, params))?)
    }

    pub fn query_opt(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>, StoreError> {
        let statement = self.statement(sql)?;
        Ok(block_on(self.client.query_opt(&statement, params))?)
    }

    /// Runs a statement; how many rows it changed.
    pub fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        let statement = self.statement(sql)?;
        Ok(block_on(self.client.execute(&statement, params))?)
    }

    /// Streams the rows to `each` as they arrive, never holding them all:
    /// the connection reads on only as they are taken.
    pub fn for_each(
        &self,
        sql: &str,
        params: &[Param<'_>],
        mut each: impl FnMut(Row) -> Result<(), StoreError>,
    ) -> Result<usize, StoreError> {
        use futures::StreamExt as _;
        let statement = self.statement(sql)?;
        let stream: RowStream =
            block_on(self.client.query_raw(&statement, params.iter().copied()))?;
        let mut stream = std::pin::pin!(stream);
        let mut count = 0;
        while let Some(row) = block_on(stream.next()) {
            each(row?)?;
            count += 1;
        }
        Ok(count)
    }

    /// Runs statements without parameters, as one simple query.
    pub fn batch_execute(&self, sql: &str) -> Result<(), StoreError> {
        Ok(block_on(self.client.batch_execute(sql))?)
    }

    /// Whether the connection is gone (the server restarted, the network
    /// failed): a closed client is dropped, never reused.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

/// Whether an error means the client's connection is gone (the client may
/// learn it a moment after the error).
fn lost(conn: &Conn, error: &StoreError) -> bool {
    conn.is_closed()
        || error.chain().any(|cause| {
            cause
                .downcast_ref::<tokio_postgres::Error>()
                .is_some_and(tokio_postgres::Error::is_closed)
        })
}

/// Whether a failure is the database's (the connection, the server, a
/// lock, a serialization conflict) rather than the work's own: a
/// constraint the work broke (class 23), a value that does not fit (class
/// 22), a trigger's refusal (`RAISE EXCEPTION`, P0001), a row that does not
/// read as the type asked for, or anything that is not PostgreSQL's. The
/// counterpart of SQLite's constraint and type-mismatch codes: work that
/// fails on its own can be rolled back to a savepoint and the transaction
/// goes on; a database failure gives the whole transaction up.
pub fn is_database_failure(error: &StoreError) -> bool {
    error.chain().any(|cause| {
        let Some(error) = cause.downcast_ref::<tokio_postgres::Error>() else {
            return false;
        };
        match error.as_db_error() {
            Some(db) => {
                let code = db.code().code();
                !(code.starts_with("22") || code.starts_with("23") || code == "P0001")
            }
            None => {
                error.is_closed()
                    || std::error::Error::source(error)
                        .is_some_and(|source| source.is::<std::io::Error>())
            }
        }
    })
}

fn first_line(sql: &str) -> &str {
    sql.trim().lines().next().unwrap_or_default()
}

/// Serializes schema changes across processes: several gateways starting on
/// one database must not apply the same migration twice.
const MIGRATION_LOCK: i64 = 0x6970_6e5f_6d69_6772; // "ipn_migr"

/// Applies the migrations not yet applied, each in its own transaction with
/// the `schema_migrations` row that records it, under a transaction-scoped
/// advisory lock; returns how many ran.
pub fn migrate(conn: &Conn, migrations: &[Migration]) -> Result<usize, StoreError> {
    let mut applied = 0;
    for migration in migrations {
        conn.batch_execute("BEGIN")?;
        let result = (|| {
            conn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
            // No notice at every start that the table already exists.
            conn.batch_execute(
                "SET LOCAL client_min_messages = warning;
                 CREATE TABLE IF NOT EXISTS schema_migrations (
                     name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )?;
            let done: bool = conn
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = $1)",
                    &[&migration.name],
                )?
                .try_get(0)?;
            if done {
                return Ok(false);
            }
            conn.batch_execute(migration.sql)
                .with_context(|| format!("applying migration {}", migration.name))?;
            conn.execute(
                "INSERT INTO schema_migrations (name, applied_at)
                 VALUES ($1, (extract(epoch FROM now()) * 1000)::bigint)",
                &[&migration.name],
            )?;
            Ok::<_, StoreError>(true)
        })();
        match result {
            Ok(ran) => {
                conn.batch_execute("COMMIT")?;
                applied += usize::from(ran);
            }
            Err(error) => {
                let _ = conn.batch_execute("ROLLBACK");
                return Err(error);
            }
        }
    }
    Ok(applied)
}

/// Applies `items` in ONE transaction and commits; one result per item, in
/// order. An item whose `apply` fails rolls back alone (its result is the
/// error) and the others still commit; a failing commit fails them all.
///
/// As on SQLite, the batch is first tried without savepoints; when an item
/// fails (which aborts a PostgreSQL transaction) it is rolled back and
/// redone with a savepoint around each item.
pub fn apply_batch<I, T>(
    conn: &Conn,
    items: &[I],
    mut apply: impl FnMut(&Conn, &I) -> Result<T, StoreError>,
) -> Result<Vec<Result<T, StoreError>>, StoreError> {
    conn.batch_execute("BEGIN")?;
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        match apply(conn, item) {
            Ok(done) => results.push(Ok(done)),
            Err(_) => break,
        }
    }
    if results.len() == items.len() {
        conn.batch_execute("COMMIT").context("committing a batch")?;
        return Ok(results);
    }
    conn.batch_execute("ROLLBACK")?;
    conn.batch_execute("BEGIN")?;
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        conn.batch_execute("SAVEPOINT item")?;
        match apply(conn, item) {
            Ok(done) => {
                conn.batch_execute("RELEASE SAVEPOINT item")?;
                results.push(Ok(done));
            }
            Err(error) => {
                conn.batch_execute("ROLLBACK TO SAVEPOINT item; RELEASE SAVEPOINT item")?;
                results.push(Err(error));
            }
        }
    }
    match conn.batch_execute("COMMIT") {
        Ok(()) => Ok(results),
        Err(error) => Err(error.context("committing a batch")),
    }
}

/// The one connection that writes, reopened when it was lost.
#[derive(Debug)]
pub struct WriteConn {
    config: Config,
    conn: Mutex<Option<Conn>>,
}

impl WriteConn {
    pub fn new(config: Config, conn: Conn) -> Self {
        Self {
            config,
            conn: Mutex::new(Some(conn)),
        }
    }

    /// Runs `f` on the connection, opening a new one if the last was lost.
    /// A batch that failed with the connection is not retried here: its
    /// callers get the error, as on any failed commit.
    pub fn with<T>(&self, f: impl FnOnce(&Conn) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut slot = lock(&self.conn);
        if slot.as_ref().is_none_or(Conn::is_closed) {
            *slot = None;
            *slot = Some(connect(&self.config)?);
        }
        let conn = slot.as_ref().expect("just opened");
        let result = f(conn);
        if result.as_ref().is_err_and(|e| lost(conn, e)) {
            *slot = None;
        }
        result
    }
}

/// Read clients, opened as needed up to a cap and reused.
#[derive(Debug)]
pub struct Readers {
    config: Config,
    max: usize,
    pool: Mutex<Pool>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct Pool {
    idle: Vec<Conn>,
    open: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A client stays usable after a panic elsewhere: the server rolls back
    // what a broken session left open, and a closed one is dropped.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Readers {
    /// At most `max` clients: each is a server process.
    pub fn new(config: Config, max: usize) -> Self {
        Self {
            config,
            max: max.max(1),
            pool: Mutex::new(Pool::default()),
            freed: Condvar::new(),
        }
    }

    /// Runs `f` on a read client; waits for one while all are busy. Each
    /// statement sees what was committed when it started (no transaction
    /// spans the calls of `f`).
    pub fn read<T>(&self, f: impl FnOnce(&Conn) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let conn = self.take()?;
        let result = f(&conn);
        let mut pool = lock(&self.pool);
        if conn.is_closed() || result.as_ref().is_err_and(|e| lost(&conn, e)) {
            pool.open -= 1;
        } else {
            pool.idle.push(conn);
        }
        drop(pool);
        self.freed.notify_one();
        result
    }

    fn take(&self) -> Result<Conn, StoreError> {
        let mut pool = lock(&self.pool);
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(conn);
            }
            if pool.open < self.max {
                pool.open += 1;
                drop(pool);
                return open_reader(&self.config).inspect_err(|_| {
                    lock(&self.pool).open -= 1;
                    self.freed.notify_one(); // a waiter may open one
                });
            }
            pool = self.freed.wait(pool).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// A client whose transactions cannot write: only the writer writes.
fn open_reader(config: &Config) -> Result<Conn, StoreError> {
    let conn = connect(config)?;
    conn.batch_execute("SET default_transaction_read_only = on")?;
    Ok(conn)
}

/// Text as PostgreSQL can hold it: its `text` cannot hold U+0000, so a
/// NUL in a caller's text (a name, a URL, a platform's object id, a search)
/// is written and compared as U+FFFD. Without this the same input that
/// SQLite stores would fail the statement. Borrowed when there is no NUL.
pub fn text(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains('\0') {
        value.replace('\0', "\u{FFFD}").into()
    } else {
        value.into()
    }
}

/// [`text`] for an optional value.
pub fn opt_text(value: Option<&str>) -> Option<std::borrow::Cow<'_, str>> {
    value.map(text)
}

/// A text column parsed into a typed value; the error names the column.
pub fn parse_column<T, E: Display>(
    row: &Row,
    index: usize,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, StoreError> {
    let text: &str = row.try_get(index)?;
    parse(text).map_err(|e| anyhow!("column {}: {e}", column_name(row, index)))
}

/// A column's name, for errors.
pub fn column_name(row: &Row, index: usize) -> &str {
    row.columns().get(index).map_or("?", |c| c.name())
}

/// A fresh, empty database for one test, dropped (its sessions ended) when
/// this is dropped. Made on the server that `admin_url` names, by a user
/// allowed to create databases.
#[derive(Debug)]
pub struct TestDatabase {
    admin: Config,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates `ipn_test_<random>`.
    pub fn create(admin_url: &str) -> Result<Self, StoreError> {
        let admin = parse_url(admin_url)?;
        let name = format!("ipn_test_{:016x}", random_u64());
        let conn = connect(&admin)?;
        conn.batch_execute(&format!("CREATE DATABASE {name}"))?;
        let url = with_database(admin_url, &name)?;
        Ok(Self { admin, name, url })
    }

    /// Its `postgres://` URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let dropped = connect(&self.admin).and_then(|conn| {
            conn.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
        });
        if let Err(error) = dropped {
            tracing::warn!(database = self.name, error = %format!("{error:#}"), "not dropped");
        }
    }
}

/// The URL of database `name` on the server of `url`, created first if
/// it is missing (by the user `url` names, connected to `url`'s own
/// database, or to `postgres` when that one does not exist either): how
/// `ipn up` gives each service a database of its own on one server. Two
/// processes creating it at once both succeed.
pub fn ensure_database(url: &str, name: &str) -> Result<String, StoreError> {
    let conn = match connect(&parse_url(url)?) {
        Ok(conn) => conn,
        Err(error) if has_code(&error, "3D000") => {
            connect(&parse_url(&with_database(url, "postgres")?)?)?
        }
        Err(error) => return Err(error),
    };
    let exists: bool = conn
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&name],
        )?
        .try_get(0)?;
    if !exists {
        let created = conn.batch_execute(&format!("CREATE DATABASE {}", quote_identifier(name)));
        // duplicate_database, or the catalog's unique index when two
        // creations overlap.
        let raced = |error: &StoreError| has_code(error, "42P04") || has_code(error, "23505");
        if let Err(error) = created
            && !raced(&error)
        {
            return Err(error.context(format!("creating the database {name}")));
        }
    }
    with_database(url, &percent_encode(name))
}

/// Whether PostgreSQL answered `error` with SQLSTATE `code`.
fn has_code(error: &StoreError, code: &str) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(tokio_postgres::Error::as_db_error)
            .is_some_and(|db| db.code().code() == code)
    })
}

/// `text` as one segment of a URL's path.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The database `url` names (PostgreSQL's default when it names none: the
/// user's name).
pub fn database_name(url: &str) -> Result<String, StoreError> {
    let config = parse_url(url)?;
    config
        .get_dbname()
        .or_else(|| config.get_user())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the PostgreSQL URL names neither a database nor a user"))
}

/// `name` as an SQL identifier, quoted.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> Result<String, StoreError> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let after_scheme = base
        .find("://")
        .map(|i| i + 3)
        .ok_or_else(|| anyhow!("the PostgreSQL URL has no scheme"))?;
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    let mut url = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    Ok(url)
}

/// Enough randomness for a test database's name, without a crate for it.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// The server tests make their databases on: `IPN_TEST_POSTGRES_URL`, or
/// the machine's own (`postgres://postgres@127.0.0.1:5432/postgres`).
pub fn test_server_url() -> String {
    std::env::var("IPN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// For a test that runs on SQLite and also on PostgreSQL when a server is
/// reachable: a fresh database, or `None` after saying by name that the
/// PostgreSQL half of `test` was skipped and why. With
/// `IPN_REQUIRE_POSTGRES=1` (CI) an unreachable server fails the test.
pub fn test_database_if_reachable(test: &str) -> Option<TestDatabase> {
    match TestDatabase::create(&test_server_url()) {
        Ok(database) => Some(database),
        Err(error) if std::env::var("IPN_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
            panic!("{test}: PostgreSQL is required (IPN_REQUIRE_POSTGRES=1): {error:#}")
        }
        Err(error) => {
            eprintln!("{test}: PostgreSQL half skipped: no server reachable ({error:#})");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &[Migration] = &[
        Migration {
            name: "0001_a",
            sql: "CREATE TABLE a (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL UNIQUE);",
        },
        Migration {
            name: "0002_b",
            sql: "ALTER TABLE a ADD COLUMN w BIGINT;",
        },
    ];

    fn database(test: &str) -> Option<(TestDatabase, Config)> {
        let database = test_database_if_reachable(test)?;
        let config = parse_url(database.url()).unwrap();
        Some((database, config))
    }

    #[test]
    fn migrations_apply_once_even_from_several_processes_at_once() {
        let Some((_database, config)) = database("migrations_apply_once") else {
            return;
        };
        let runs: Vec<usize> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| migrate(&connect(&config).unwrap(), SCHEMA).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(runs.iter().sum::<usize>(), 2, "{runs:?}");
        let conn = connect(&config).unwrap();
        assert_eq!(migrate(&conn, SCHEMA).unwrap(), 0);
        let names: Vec<String> = conn
            .query("SELECT name FROM schema_migrations ORDER BY name", &[])
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(names, ["0001_a", "0002_b"]);
    }

    #[test]
    fn a_failing_migration_leaves_nothing_of_itself() {
        let Some((_database, config)) = database("a_failing_migration_leaves_nothing") else {
            return;
        };
        let conn = connect(&config).unwrap();
        let bad = [
            SCHEMA[0],
            Migration {
                name: "0002_bad",
                sql: "ALTER TABLE a ADD COLUMN x BIGINT; SELECT * FROM nowhere;",
            },
        ];
        assert!(migrate(&conn, &bad).is_err());
        assert_eq!(migrate(&conn, SCHEMA).unwrap(), 1, "0002_b applies cleanly");
    }

    #[test]
    fn a_failing_item_rolls_back_alone_and_a_read_client_sees_the_commit() {
        let Some((_database, config)) = database("a_failing_item_rolls_back_alone") else {
            return;
        };
        let conn = connect(&config).unwrap();
        migrate(&conn, SCHEMA).unwrap();
        let items = ["x", "y", "x", "z"];
        let results = apply_batch(&conn, &items, |tx, v| {
            tx.execute("INSERT INTO a (v) VALUES ($1)", &[v])?;
            Ok(*v)
        })
        .unwrap();
        let failed: Vec<bool> = results.iter().map(Result::is_err).collect();
        assert_eq!(failed, [false, false, true, false]);
        let readers = Readers::new(config, 2);
        let stored: Vec<String> = readers
            .read(|conn| {
                Ok(conn
                    .query("SELECT v FROM a ORDER BY id", &[])?
                    .iter()
                    .map(|row| row.get(0))
                    .collect())
            })
            .unwrap();
        assert_eq!(stored, ["x", "y", "z"]);
        // Streamed rows arrive in order, all of them.
        let mut seen = Vec::new();
        let count = readers
            .read(|conn| {
                conn.for_each("SELECT v FROM a ORDER BY id", &[], |row| {
                    seen.push(row.get::<_, String>(0));
                    Ok(())
                })
            })
            .unwrap();
        assert_eq!((count, seen.len()), (3, 3));
        let wrote = readers.read(|conn| conn.execute("INSERT INTO a (v) VALUES ('n')", &[]));
        assert!(wrote.is_err(), "readers cannot write");
    }

    #[test]
    fn a_lost_writer_connection_is_reopened() {
        let Some((_database, config)) = database("a_lost_writer_connection_is_reopened") else {
            return;
        };
        let writer = WriteConn::new(config.clone(), connect(&config).unwrap());
        let pid: i32 = writer
            .with(|conn| Ok(conn.query_one("SELECT pg_backend_pid()", &[])?.get(0)))
            .unwrap();
        connect(&config)
            .unwrap()
            .execute("SELECT pg_terminate_backend($1, 5000)", &[&pid])
            .unwrap();
        // The first use after the loss may fail; the next has a new session.
        let _ = writer.with(|conn| conn.batch_execute("SELECT 1"));
        let again: i32 = writer
            .with(|conn| Ok(conn.query_one("SELECT pg_backend_pid()", &[])?.get(0)))
            .unwrap();
        assert_ne!(again, pid);
    }

    #[test]
    fn text_without_nul_is_borrowed_and_nul_becomes_a_replacement_character() {
        assert!(matches!(text("abc"), std::borrow::Cow::Borrowed("abc")));
        assert_eq!(text("a\0b\0"), "a\u{FFFD}b\u{FFFD}");
    }

    #[test]
    fn a_missing_database_is_created_once_and_kept() {
        let Some((database, _config)) = database("a_missing_database_is_created") else {
            return;
        };
        let name = format!("{}_x y", database.name());
        let urls: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..3)
                .map(|_| scope.spawn(|| ensure_database(database.url(), &name).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(urls.iter().all(|url| url.ends_with("_x%20y")), "{urls:?}");
        let conn = connect(&parse_url(&urls[0]).unwrap()).unwrap();
        let current: String = conn
            .query_one("SELECT current_database()::text", &[])
            .unwrap()
            .get(0);
        assert_eq!(current, name);
        conn.batch_execute("CREATE TABLE kept (n BIGINT)").unwrap();
        drop(conn);
        let again = ensure_database(database.url(), &name).unwrap();
        // From a database that does not exist, through `postgres`.
        let nowhere =
            with_database(database.url(), &format!("{}_nowhere", database.name())).unwrap();
        assert_eq!(ensure_database(&nowhere, &name).unwrap(), again);
        let conn = connect(&parse_url(&again).unwrap()).unwrap();
        conn.batch_execute("SELECT n FROM kept").unwrap();
        drop(conn);
        connect(&parse_url(database.url()).unwrap())
            .unwrap()
            .batch_execute(&format!(
                "DROP DATABASE {} WITH (FORCE)",
                quote_identifier(&name)
            ))
            .unwrap();
    }

    #[test]
    fn only_the_works_own_failures_are_its_own() {
        let Some((_database, config)) = database("only_the_works_own_failures") else {
            return;
        };
        let conn = connect(&config).unwrap();
        migrate(&conn, SCHEMA).unwrap();
        conn.execute("INSERT INTO a (v) VALUES ('x')", &[]).unwrap();
        let duplicate = conn
            .execute("INSERT INTO a (v) VALUES ('x')", &[])
            .unwrap_err();
        assert!(!is_database_failure(&duplicate), "{duplicate:#}");
        let too_big = conn.execute("SELECT 1 / 0", &[]).unwrap_err();
        assert!(!is_database_failure(&too_big), "{too_big:#}");
        let raised = conn
            .batch_execute("DO $$ BEGIN RAISE EXCEPTION 'boom'; END $$")
            .unwrap_err();
        assert!(!is_database_failure(&raised), "{raised:#}");
        let misread = conn
            .query_one("SELECT 'x'::text", &[])
            .and_then(|row| Ok(row.try_get::<_, i64>(0)?))
            .unwrap_err();
        assert!(!is_database_failure(&misread), "{misread:#}");
        assert!(!is_database_failure(&anyhow!(
            "a message that does not parse"
        )));
        let missing = conn.execute("SELECT * FROM nowhere", &[]).unwrap_err();
        assert!(is_database_failure(&missing), "{missing:#}");
        let pid: i32 = conn
            .query_one("SELECT pg_backend_pid()", &[])
            .unwrap()
            .get(0);
        connect(&config)
            .unwrap()
            .execute("SELECT pg_terminate_backend($1, 5000)", &[&pid])
            .unwrap();
        let lost = conn.batch_execute("SELECT 1").unwrap_err();
        assert!(is_database_failure(&lost), "{lost:#}");
    }

    #[test]
    fn a_url_names_its_database_or_its_user() {
        assert_eq!(database_name("postgres://u@h:1/shop").unwrap(), "shop");
        assert_eq!(database_name("postgresql://ann@h").unwrap(), "ann");
    }

    #[test]
    fn a_url_gets_another_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x").unwrap(),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgresql://u@h", "x").unwrap(),
            "postgresql://u@h/x"
        );
        assert_eq!(
            with_database("postgres://u@h:1/db?sslmode=disable", "x").unwrap(),
            "postgres://u@h:1/x?sslmode=disable"
        );
    }
}
