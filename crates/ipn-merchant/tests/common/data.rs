//! Where a test's gateway or shop keeps its data, and reads of it beside
//! the running service that do not depend on the database, as an operator
//! would make them: row counts, rows, a statement of the test's own.
//!
//! `IPN_TEST_DATABASE=postgres` puts each in a fresh PostgreSQL database
//! (`ipn_test_<random>` on `IPN_TEST_POSTGRES_URL`'s server, by default the
//! machine's at 127.0.0.1:5432 as `postgres`), dropped with it; otherwise
//! it is a SQLite file in a temporary folder. Statements are written with
//! `$1`, `$2`… placeholders, which SQLite reads as `?1`, `?2`….

use std::collections::BTreeMap;
use std::path::PathBuf;

use ipn_storage::postgres::{Conn, Param, Row, TestDatabase, ToSql, connect, parse_url};
use rusqlite::types::ValueRef;

/// A service's data: a temporary folder (its files), and its database.
pub struct Data {
    pub dir: tempfile::TempDir,
    /// The SQLite file's name in `dir`.
    file: &'static str,
    postgres: Option<TestDatabase>,
}

/// A value read or written: what both databases hold alike (a boolean
/// reads as an integer, as SQLite stores it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlValue {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl SqlValue {
    pub fn int(&self) -> i64 {
        match self {
            Self::Int(n) => *n,
            other => panic!("not an integer: {other:?}"),
        }
    }

    pub fn opt_int(&self) -> Option<i64> {
        match self {
            Self::Null => None,
            other => Some(other.int()),
        }
    }

    pub fn text(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            other => panic!("not text: {other:?}"),
        }
    }

    pub fn opt_text(&self) -> Option<String> {
        match self {
            Self::Null => None,
            other => Some(other.text()),
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Bytes(bytes) => bytes.clone(),
            other => panic!("not bytes: {other:?}"),
        }
    }
}

impl From<&str> for SqlValue {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

impl From<i64> for SqlValue {
    fn from(n: i64) -> Self {
        Self::Int(n)
    }
}

impl Data {
    /// Fresh data on the database the run asks for; `file` names the SQLite
    /// file (`gateway.db`, `shop.db`).
    pub fn new(file: &'static str) -> Self {
        let postgres = match std::env::var("IPN_TEST_DATABASE").as_deref() {
            Ok("postgres") => Some(
                TestDatabase::create(&ipn_storage::postgres::test_server_url())
                    .expect("IPN_TEST_DATABASE=postgres: a fresh PostgreSQL database"),
            ),
            Ok("sqlite") | Err(_) => None,
            Ok(other) => panic!("IPN_TEST_DATABASE={other:?}: use sqlite or postgres"),
        };
        Self {
            dir: tempfile::tempdir().unwrap(),
            file,
            postgres,
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// The gateway's setting for it.
    pub fn gateway_database(&self) -> ipn_gateway::Database {
        match &self.postgres {
            Some(database) => ipn_gateway::Database::Postgres(database.url().to_owned()),
            None => ipn_gateway::Database::Sqlite(self.sqlite_path()),
        }
    }

    /// The shop's setting for it.
    pub fn shop_database(&self) -> ipn_merchant::Database {
        match &self.postgres {
            Some(database) => ipn_merchant::Database::Postgres(database.url().to_owned()),
            None => ipn_merchant::Database::Sqlite(self.sqlite_path()),
        }
    }

    fn sqlite_path(&self) -> PathBuf {
        self.dir.path().join(self.file)
    }

    fn postgres(&self) -> Option<Conn> {
        let database = self.postgres.as_ref()?;
        Some(connect(&parse_url(database.url()).unwrap()).unwrap())
    }

    fn sqlite(&self) -> rusqlite::Connection {
        // WAL readers never block the service; its writes wait for ours.
        let conn = rusqlite::Connection::open(self.sqlite_path()).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        conn
    }

    /// The rows of `sql` with `params`.
    pub fn rows(&self, sql: &str, params: &[SqlValue]) -> Vec<Vec<SqlValue>> {
        match self.postgres() {
            Some(conn) => conn
                .query(
                    sql,
                    &postgres_params(params)
                        .iter()
                        .map(|p| p.as_ref() as Param<'_>)
                        .collect::<Vec<_>>(),
                )
                .unwrap()
                .iter()
                .map(|row| (0..row.len()).map(|i| postgres_value(row, i)).collect())
                .collect(),
            None => {
                let conn = self.sqlite();
                let mut statement = conn.prepare(&sqlite_sql(sql, params.len())).unwrap();
                let width = statement.column_count();
                statement
                    .query_map(rusqlite::params_from_iter(sqlite_params(params)), |row| {
                        Ok((0..width)
                            .map(|i| sqlite_value(row.get_ref(i).unwrap()))
                            .collect())
                    })
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap()
            }
        }
    }

    /// The one value `sql` reads.
    pub fn value(&self, sql: &str, params: &[SqlValue]) -> SqlValue {
        let rows = self.rows(sql, params);
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        rows[0][0].clone()
    }

    /// Runs a statement, to put data in as something other than the
    /// service would.
    pub fn execute(&self, sql: &str, params: &[SqlValue]) {
        match self.postgres() {
            Some(conn) => {
                let owned = postgres_params(params);
                let refs: Vec<Param<'_>> = owned.iter().map(|p| p.as_ref() as Param<'_>).collect();
                conn.execute(sql, &refs).unwrap();
            }
            None => {
                self.sqlite()
                    .execute(
                        &sqlite_sql(sql, params.len()),
                        rusqlite::params_from_iter(sqlite_params(params)),
                    )
                    .unwrap();
            }
        }
    }

    /// How many rows `table` holds.
    pub fn count(&self, table: &str) -> i64 {
        self.value(&format!("SELECT COUNT(*) FROM {table}"), &[])
            .int()
    }

    /// Row counts of every table.
    pub fn table_counts(&self) -> BTreeMap<String, i64> {
        let sql = match self.postgres {
            Some(_) => {
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            }
            None => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            }
        };
        self.rows(sql, &[])
            .into_iter()
            .map(|row| {
                let table = row[0].text();
                let count = self.count(&format!("\"{table}\""));
                (table, count)
            })
            .collect()
    }

    /// From now on every insert into `table` fails with `message`, as a
    /// bug or a bad row would (a trigger; not a failure of the database).
    pub fn fail_inserts(&self, table: &str, message: &str) {
        match self.postgres() {
            Some(conn) => conn
                .batch_execute(&format!(
                    "CREATE FUNCTION fail_{table}() RETURNS trigger LANGUAGE plpgsql
                         AS $$ BEGIN RAISE EXCEPTION '{message}'; END $$;
                     CREATE TRIGGER fail_{table} BEFORE INSERT ON {table}
                         FOR EACH ROW EXECUTE FUNCTION fail_{table}();"
                ))
                .unwrap(),
            None => self
                .sqlite()
                .execute_batch(&format!(
                    "CREATE TRIGGER fail_{table} BEFORE INSERT ON {table}
                     BEGIN SELECT RAISE(ABORT, '{message}'); END"
                ))
                .unwrap(),
        }
    }

    /// Inserts into `table` work again.
    pub fn allow_inserts(&self, table: &str) {
        match self.postgres() {
            Some(conn) => conn
                .batch_execute(&format!(
                    "DROP TRIGGER fail_{table} ON {table}; DROP FUNCTION fail_{table}();"
                ))
                .unwrap(),
            None => self
                .sqlite()
                .execute_batch(&format!("DROP TRIGGER fail_{table}"))
                .unwrap(),
        }
    }
}

/// `$n` as SQLite's `?n`.
fn sqlite_sql(sql: &str, params: usize) -> String {
    let mut sql = sql.to_owned();
    for n in (1..=params).rev() {
        sql = sql.replace(&format!("${n}"), &format!("?{n}"));
    }
    sql
}

fn sqlite_params(params: &[SqlValue]) -> Vec<rusqlite::types::Value> {
    params
        .iter()
        .map(|value| match value {
            SqlValue::Null => rusqlite::types::Value::Null,
            SqlValue::Int(n) => rusqlite::types::Value::Integer(*n),
            SqlValue::Text(text) => rusqlite::types::Value::Text(text.clone()),
            SqlValue::Bytes(bytes) => rusqlite::types::Value::Blob(bytes.clone()),
        })
        .collect()
}

fn sqlite_value(value: ValueRef<'_>) -> SqlValue {
    match value {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(n) => SqlValue::Int(n),
        ValueRef::Text(text) => SqlValue::Text(String::from_utf8(text.to_vec()).unwrap()),
        ValueRef::Blob(bytes) => SqlValue::Bytes(bytes.to_vec()),
        ValueRef::Real(real) => panic!("a test reads no float: {real}"),
    }
}

fn postgres_params(params: &[SqlValue]) -> Vec<Box<dyn ToSql + Sync>> {
    params
        .iter()
        .map(|value| -> Box<dyn ToSql + Sync> {
            match value {
                SqlValue::Null => Box::new(None::<String>),
                SqlValue::Int(n) => Box::new(*n),
                SqlValue::Text(text) => Box::new(text.clone()),
                SqlValue::Bytes(bytes) => Box::new(bytes.clone()),
            }
        })
        .collect()
}

/// Column `i` as a [`SqlValue`], by the first type that reads it.
fn postgres_value(row: &Row, i: usize) -> SqlValue {
    let value = |found: Option<SqlValue>| found.unwrap_or(SqlValue::Null);
    if let Ok(n) = row.try_get::<_, Option<i64>>(i) {
        return value(n.map(SqlValue::Int));
    }
    if let Ok(n) = row.try_get::<_, Option<i32>>(i) {
        return value(n.map(|n| SqlValue::Int(n.into())));
    }
    if let Ok(flag) = row.try_get::<_, Option<bool>>(i) {
        return value(flag.map(|flag| SqlValue::Int(flag.into())));
    }
    if let Ok(text) = row.try_get::<_, Option<String>>(i) {
        return value(text.map(SqlValue::Text));
    }
    if let Ok(bytes) = row.try_get::<_, Option<Vec<u8>>>(i) {
        return value(bytes.map(SqlValue::Bytes));
    }
    panic!(
        "column {i} of {:?} is of a type tests do not read",
        row.columns()
    );
}
