//! Where a test gateway keeps its data, and reads of it beside the running
//! gateway that do not depend on the database: row counts, stored values,
//! whether a secret lies anywhere in it.
//!
//! `IPN_TEST_DATABASE=postgres` puts it in a fresh PostgreSQL database
//! (`ipn_test_<random>` on `IPN_TEST_POSTGRES_URL`'s server, by default
//! the machine's at 127.0.0.1:5432 as `postgres`), dropped with it;
//! otherwise it is a SQLite file in a temporary folder.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ipn_gateway::Database;
use ipn_storage::postgres::{Conn, Param, Row, TestDatabase, ToSql, connect, parse_url};
use rusqlite::OpenFlags;

/// A test's data: a temporary folder, and its database.
pub struct Data {
    pub dir: tempfile::TempDir,
    postgres: Option<TestDatabase>,
}

/// A parameter of [`Data::execute`].
pub enum SqlValue<'a> {
    Text(&'a str),
    Int(i64),
}

impl Default for Data {
    fn default() -> Self {
        Self::new()
    }
}

impl Data {
    /// Fresh data on the database the run asks for.
    pub fn new() -> Self {
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
            postgres,
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// The gateway's setting for it.
    pub fn database(&self) -> Database {
        match &self.postgres {
            Some(database) => Database::Postgres(database.url().to_owned()),
            None => Database::Sqlite(self.sqlite_path()),
        }
    }

    fn sqlite_path(&self) -> PathBuf {
        self.dir.path().join("gateway.db")
    }

    fn postgres(&self) -> Option<Conn> {
        let database = self.postgres.as_ref()?;
        Some(connect(&parse_url(database.url()).unwrap()).unwrap())
    }

    fn sqlite(&self, flags: OpenFlags) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(self.sqlite_path(), flags).unwrap()
    }

    /// Row counts of every table.
    pub fn table_counts(&self) -> BTreeMap<String, i64> {
        let tables: Vec<String> = match self.postgres() {
            Some(conn) => conn
                .query(
                    "SELECT table_name::text FROM information_schema.tables
                     WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|row| row.get(0))
                .collect(),
            None => self
                .sqlite(OpenFlags::SQLITE_OPEN_READ_ONLY)
                .prepare(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                )
                .unwrap()
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap(),
        };
        tables
            .into_iter()
            .map(|table| (table.clone(), self.count_rows(&format!("\"{table}\""))))
            .collect()
    }

    /// How many rows a table holds (WAL readers never block the gateway).
    pub fn count_rows(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match self.postgres() {
            Some(conn) => conn.query_one(&sql, &[]).unwrap().get(0),
            None => self
                .sqlite(OpenFlags::SQLITE_OPEN_READ_ONLY)
                .query_row(&sql, [], |row| row.get(0))
                .unwrap(),
        }
    }

    /// Runs a statement written with `$1`, `$2`… placeholders (SQLite
    /// reads them as `?1`, `?2`…), to put data in as something other than
    /// the gateway would.
    pub fn execute(&self, sql: &str, params: &[SqlValue<'_>]) {
        match self.postgres() {
            Some(conn) => {
                let owned: Vec<Box<dyn ToSql + Sync>> = params
                    .iter()
                    .map(|p| -> Box<dyn ToSql + Sync> {
                        match p {
                            SqlValue::Text(text) => Box::new((*text).to_owned()),
                            SqlValue::Int(n) => Box::new(*n),
                        }
                    })
                    .collect();
                let refs: Vec<Param<'_>> = owned.iter().map(|p| p.as_ref() as Param<'_>).collect();
                conn.execute(sql, &refs).unwrap();
            }
            None => {
                let mut sqlite_sql = sql.to_owned();
                for n in (1..=params.len()).rev() {
                    sqlite_sql = sqlite_sql.replace(&format!("${n}"), &format!("?{n}"));
                }
                let values: Vec<rusqlite::types::Value> = params
                    .iter()
                    .map(|p| match p {
                        SqlValue::Text(text) => rusqlite::types::Value::Text((*text).to_owned()),
                        SqlValue::Int(n) => rusqlite::types::Value::Integer(*n),
                    })
                    .collect();
                self.sqlite(OpenFlags::SQLITE_OPEN_READ_WRITE)
                    .execute(&sqlite_sql, rusqlite::params_from_iter(values))
                    .unwrap();
            }
        }
    }

    /// An endpoint's stored `secret` and `previous_secret` columns.
    pub fn endpoint_secrets(&self, endpoint_id: &str) -> (String, Option<String>) {
        const SQL: &str = "SELECT secret, previous_secret FROM endpoints WHERE id = ";
        match self.postgres() {
            Some(conn) => {
                let row = conn
                    .query_one(&format!("{SQL}$1"), &[&endpoint_id])
                    .unwrap();
                (row.get(0), row.get(1))
            }
            None => self
                .sqlite(OpenFlags::SQLITE_OPEN_READ_ONLY)
                .query_row(&format!("{SQL}?1"), [endpoint_id], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .unwrap(),
        }
    }

    /// The gateway's own stored secrets, by name, as stored.
    pub fn own_secrets(&self) -> Vec<(String, Vec<u8>)> {
        match self.postgres() {
            Some(conn) => conn
                .query(
                    "SELECT name, convert_to(value, 'UTF8') FROM secrets ORDER BY name",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|row: &Row| (row.get(0), row.get(1)))
                .collect(),
            None => {
                let conn = self.sqlite(OpenFlags::SQLITE_OPEN_READ_ONLY);
                let mut stmt = conn
                    .prepare("SELECT name, CAST(value AS BLOB) FROM secrets ORDER BY name")
                    .unwrap();
                stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                    .unwrap()
                    .collect::<rusqlite::Result<_>>()
                    .unwrap()
            }
        }
    }

    /// Whether `needle` lies anywhere in what a copy of the database holds.
    /// SQLite: the bytes of its files (main and WAL), freed pages included.
    /// PostgreSQL: every row of every table, as a dump would hold it (its
    /// files are the server's, shared with other databases, and old row
    /// versions live on there until vacuumed).
    pub fn contains(&self, needle: &[u8]) -> bool {
        let Some(conn) = self.postgres() else {
            return ["gateway.db", "gateway.db-wal"].iter().any(|name| {
                std::fs::read(self.dir.path().join(name))
                    .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
                    .unwrap_or(false)
            });
        };
        let hex: String = needle.iter().map(|b| format!("{b:02x}")).collect();
        let text = std::str::from_utf8(needle).ok();
        self.table_counts().keys().any(|table| {
            conn.query(&format!("SELECT t::text FROM \"{table}\" t"), &[])
                .unwrap()
                .iter()
                .any(|row| {
                    let row: &str = row.get(0);
                    row.contains(&hex) || text.is_some_and(|text| row.contains(text))
                })
        })
    }
}
