//! The SQLite store: one file in WAL mode. One connection writes (the writer
//! task's); readers take connections from a small pool and never block it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use anyhow::{Context as _, anyhow};
use ipn_core::Dialect;
use ipn_core::event::EventType;
use ipn_core::id::{CheckoutSessionId, EndpointId, EventId, MerchantId, PaymentId, SubscriptionId};
use ipn_core::money::{Currency, Money};
use ipn_core::payment::Custom;
use ipn_core::standard::WebhookSecret;
use rusqlite::{Connection, OptionalExtension as _, Row, TransactionBehavior, params};

use super::{
    AttemptDone, DeliveryNext, EndpointHealth, EventQuery, IdempotencyKey, IdempotentResponse,
    Ingested, NewEvent, PaymentDone, Scheduled, Store, StoreError, StoredEvent, SubscriptionDone,
    Write, WriteRequest, Written,
};
use crate::checkout::{
    self, CheckoutPayment, CheckoutRefusal, CheckoutSession, CheckoutSubscription,
};
use crate::clock::{Millis, from_millis};
use crate::model::{
    Attempt, AttemptStatus, DeliveryFilter, DeliveryStatus, Disabled, DisabledReason, Endpoint,
    EventFilter, Merchant,
};
use crate::payments::{self, PaymentRefusal, PaymentWrite, StoredPayment};
use crate::secrets::{self, EncryptionKey};
use crate::subscriptions::{self, StoredSubscription, SubscriptionWrite};
use ipn_core::payment_flow::PaymentError;

/// Migrations in order; each runs once, in its own transaction.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_initial", include_str!("schema.sql")),
    (
        "0002_test_clock",
        // The test clock's offset, so time never goes back across a restart.
        "CREATE TABLE clock (id INTEGER PRIMARY KEY CHECK (id = 1), offset_ms INTEGER NOT NULL);",
    ),
    (
        "0003_delivery_indexes",
        // An index over every delivery by (endpoint, status) cost a third of
        // the writer's time: each delivery moved within it when delivered.
        // Only pending and failed deliveries are looked up by endpoint
        // (disable, recover, start-up), so only they are indexed; a retry
        // changes neither index.
        "DROP INDEX deliveries_by_endpoint;
         DROP INDEX deliveries_due;
         CREATE INDEX deliveries_pending ON deliveries (endpoint_id) WHERE status = 'pending';
         CREATE INDEX deliveries_failed ON deliveries (endpoint_id) WHERE status = 'failed';",
    ),
    (
        "0004_payments",
        // `object` is the payment as events carry it (the API's view adds
        // `payment_method`); the other columns are for lookups.
        "CREATE TABLE payments (
             id          TEXT PRIMARY KEY,
             merchant_id TEXT NOT NULL REFERENCES merchants (id),
             parent_id   TEXT REFERENCES payments (id),
             invoice     TEXT,
             status      TEXT NOT NULL,
             method      TEXT NOT NULL,
             object      TEXT NOT NULL,
             created_at  INTEGER NOT NULL
         );
         CREATE INDEX payments_by_merchant ON payments (merchant_id, created_at);
         CREATE INDEX payments_by_parent ON payments (parent_id) WHERE parent_id IS NOT NULL;",
    ),
    (
        "0005_checkout_sessions",
        // The order is fixed at creation; `payment_id` and `paid_at` are set
        // once, by the payment that pays it. Expiry is not a column that
        // changes: a session is expired once the clock passes `expires_at`.
        "CREATE TABLE checkout_sessions (
             id             TEXT PRIMARY KEY,
             merchant_id    TEXT NOT NULL REFERENCES merchants (id),
             invoice        TEXT,
             amount         INTEGER NOT NULL,
             currency       TEXT NOT NULL,
             items          TEXT NOT NULL,
             custom         TEXT,
             customer_email TEXT,
             success_url    TEXT NOT NULL,
             cancel_url     TEXT NOT NULL,
             created_at     INTEGER NOT NULL,
             expires_at     INTEGER NOT NULL,
             payment_id     TEXT UNIQUE REFERENCES payments (id),
             paid_at        INTEGER
         );
         CREATE INDEX checkout_sessions_by_merchant ON checkout_sessions (merchant_id, created_at);",
    ),
    (
        "0006_subscriptions",
        // `next_step_at` is when billing acts next (charge, retry, expire);
        // billing finds due subscriptions through its index, never a scan.
        "CREATE TABLE subscriptions (
             id              TEXT PRIMARY KEY,
             merchant_id     TEXT NOT NULL REFERENCES merchants (id),
             status          TEXT NOT NULL,
             method          TEXT NOT NULL,
             object          TEXT NOT NULL,
             failed_attempts INTEGER NOT NULL,
             next_step_at    INTEGER,
             created_at      INTEGER NOT NULL
         );
         CREATE INDEX subscriptions_due ON subscriptions (next_step_at)
             WHERE next_step_at IS NOT NULL;",
    ),
    (
        "0007_secrets",
        // Secrets the gateway makes for itself, once; `seal_secrets`
        // encrypts each at the next start (a migration cannot).
        "CREATE TABLE secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);
         INSERT INTO secrets (name, value) VALUES ('idempotency_hash_key', randomblob(32));",
    ),
    (
        "0008_checkout_subscriptions",
        // Subscription-mode sessions: `plan` is the terms as JSON (`null`
        // in payment mode), `subscription_id` is set once, by the signup
        // that pays it. SQLite cannot add a UNIQUE column, hence the index.
        "ALTER TABLE checkout_sessions ADD COLUMN plan TEXT;
         ALTER TABLE checkout_sessions ADD COLUMN subscription_id TEXT REFERENCES subscriptions (id);
         CREATE UNIQUE INDEX checkout_sessions_by_subscription ON checkout_sessions (subscription_id)
             WHERE subscription_id IS NOT NULL;",
    ),
    (
        "0009_payments_by_subscription",
        // A subscription's payments (the dashboard's subscription page,
        // refreshed every few seconds) without reading every payment of its
        // merchant. Only period payments and their refunds and reversals
        // have the field, so only they are indexed; a query uses the index
        // only when it writes this expression exactly.
        "CREATE INDEX payments_by_subscription ON payments (json_extract(object, '$.subscription_id'))
             WHERE json_extract(object, '$.subscription_id') IS NOT NULL;",
    ),
];

/// How hard a commit insists on reaching the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync at every commit: a power cut loses nothing acknowledged.
    Full,
    /// fsync at checkpoints: a killed process loses nothing, a power cut
    /// may lose the last commits.
    Normal,
}

#[derive(Debug)]
pub struct Sqlite {
    path: PathBuf,
    /// Seals the secrets it stores and opens them as it reads them.
    key: EncryptionKey,
    writer: Mutex<Connection>,
    readers: Mutex<Readers>,
    reader_free: Condvar,
}

/// At most this many reader connections: each holds its own page cache, and
/// a burst of retries loading bodies must not open hundreds.
const MAX_READERS: usize = 16;

#[derive(Debug, Default)]
struct Readers {
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

impl Sqlite {
    /// Opens (creating if needed) the database file, applies migrations,
    /// checks that `key` is this database's key, and on the first start with
    /// a key seals the secrets stored in plain text (see [`seal_secrets`]).
    pub fn open(
        path: &Path,
        durability: Durability,
        key: EncryptionKey,
    ) -> Result<Self, StoreError> {
        let writer = open_connection(path)?;
        let synchronous = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        writer.pragma_update(None, "synchronous", synchronous)?;
        // Statement journals and sorts in memory, not in temporary files.
        writer.pragma_update(None, "temp_store", "MEMORY")?;
        let mut writer = writer;
        migrate(&mut writer)?;
        let sealed = seal_secrets(&mut writer, &key)
            .with_context(|| format!("opening the gateway database {}", path.display()))?;
        if sealed > 0 {
            tracing::info!(sealed, "encrypted the secrets stored in plain text");
        }
        Ok(Self {
            path: path.to_owned(),
            key,
            writer: Mutex::new(writer),
            readers: Mutex::new(Readers::default()),
            reader_free: Condvar::new(),
        })
    }

    /// Runs `f` on a reader connection from the pool.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.take_reader()?;
        let result = f(&conn);
        lock(&self.readers).idle.push(conn);
        self.reader_free.notify_one();
        result.map_err(|e| anyhow!(e).context("reading the gateway database"))
    }

    /// An idle reader, a new one while under the cap, or else the next one
    /// given back.
    fn take_reader(&self) -> Result<Connection, StoreError> {
        let mut readers = lock(&self.readers);
        loop {
            if let Some(conn) = readers.idle.pop() {
                return Ok(conn);
            }
            if readers.open < MAX_READERS {
                readers.open += 1;
                drop(readers);
                // Readers cannot write: only the writer thread does.
                return open_connection(&self.path)
                    .and_then(|conn| {
                        conn.pragma_update(None, "query_only", "ON")?;
                        Ok(conn)
                    })
                    .inspect_err(|_| {
                        lock(&self.readers).open -= 1;
                        self.reader_free.notify_one(); // a waiter may open one
                    });
            }
            readers = self
                .reader_free
                .wait(readers)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)
        .with_context(|| format!("opening the SQLite database {}", path.display()))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// Applies the migrations not yet applied; returns how many ran.
pub fn migrate(conn: &mut Connection) -> Result<usize, StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    let mut applied = 0;
    for (name, sql) in MIGRATIONS {
        let tx = conn.transaction()?;
        let done: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = ?1)",
            [name],
            |row| row.get(0),
        )?;
        if !done {
            tx.execute_batch(sql)
                .with_context(|| format!("applying migration {name}"))?;
            tx.execute(
                "INSERT INTO schema_migrations (name, applied_at) VALUES (?1, unixepoch() * 1000)",
                [name],
            )?;
            applied += 1;
        }
        tx.commit()?;
    }
    Ok(applied)
}

/// The `secrets` row holding a known text sealed with the database's key:
/// every start opens it, so a wrong key is refused even on an empty database.
const KEY_CHECK: &str = "key_check";
const KEY_CHECK_TEXT: &[u8] = b"the ipn gateway's encryption key";

/// Where a sealed endpoint secret belongs (its associated data).
fn endpoint_place(column: &str, id: &str) -> String {
    format!("endpoints.{column} {id}")
}

/// Where one of the gateway's own sealed secrets belongs.
fn secret_place(name: &str) -> String {
    format!("secrets.{name}")
}

/// Checks `key` against the database's key check. A database without one
/// (new, or written by a release that stored secrets in plain text) gets
/// every stored secret sealed in place, endpoints' current and previous
/// secrets and the gateway's own, together with the key check in one
/// transaction; later starts only check (and seal a secret a newer
/// migration made for the gateway). Returns how many values it sealed.
///
/// Sealing overwrites the plain text where it lay (`secure_delete`) and
/// then empties the WAL, so no copy of it stays in the database's files.
fn seal_secrets(conn: &mut Connection, key: &EncryptionKey) -> Result<usize, StoreError> {
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
        Some(check) => match key.open(&check, &secret_place(KEY_CHECK)) {
            Ok(text) if text == KEY_CHECK_TEXT => false,
            _ => {
                return Err(anyhow!(
                    "the encryption key does not match this database: give the key it was \
                     first started with"
                ));
            }
        },
        None => true,
    };
    let seal = |value: &[u8], place: &str| {
        if secrets::is_sealed(value) {
            // Sealed where plain text is expected: not written by the gateway.
            return Err(anyhow!(
                "{place} is already encrypted where plain text was expected: the database \
                 was changed outside the gateway"
            ));
        }
        key.seal(value, place)
            .with_context(|| format!("encrypting {place}"))
    };
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
        let check = seal(KEY_CHECK_TEXT, &secret_place(KEY_CHECK))?;
        tx.execute(
            "INSERT INTO secrets (name, value) VALUES (?1, ?2)",
            params![KEY_CHECK, check],
        )?;
    }
    tx.commit()?;
    Ok(sealed)
}

impl Store for Sqlite {
    fn apply(
        &self,
        batch: &[WriteRequest],
    ) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        let mut conn = lock(&self.writer);
        // Fast path: the whole batch in one transaction. Savepoints cost a
        // quarter of the writer's time, and requests rarely fail.
        {
            let tx = conn.transaction()?;
            let mut results = Vec::with_capacity(batch.len());
            for request in batch {
                match apply_one(&tx, &self.key, request) {
                    Ok(written) => results.push(Ok(written)),
                    Err(_) => break,
                }
            }
            if results.len() == batch.len() {
                tx.commit().context("committing a batch")?;
                return Ok(results);
            }
            // Dropping `tx` rolls the whole batch back; redo it below.
        }
        // Slow path: a savepoint per request, so the bad one rolls back alone.
        let mut tx = conn.transaction()?;
        let mut results = Vec::with_capacity(batch.len());
        for request in batch {
            let mut sp = tx.savepoint()?;
            match apply_one(&sp, &self.key, request) {
                Ok(written) => {
                    sp.commit()?;
                    results.push(Ok(written));
                }
                Err(error) => {
                    sp.rollback()?;
                    results.push(Err(error));
                }
            }
        }
        tx.commit().context("committing a batch")?;
        Ok(results)
    }

    fn merchants(&self) -> Result<Vec<Merchant>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, receiver_email, api_key_hash, created_at FROM merchants ORDER BY created_at, id",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok(Merchant {
                    id: parse_id(row, 0, MerchantId::parse)?,
                    name: row.get(1)?,
                    receiver_email: row.get(2)?,
                    api_key_hash: row.get(3)?,
                    created_at: row.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, merchant_id, url, dialect, events, ordered, description, secret,
                        previous_secret, previous_secret_expires, disabled_reason, disabled_at,
                        failing_since, created_at
                 FROM endpoints ORDER BY created_at, id",
            )?;
            let rows = stmt.query_map([], |row| endpoint_from_row(row, &self.key))?;
            rows.collect()
        })
    }

    fn pending_deliveries(&self, each: &mut dyn FnMut(Scheduled)) -> Result<usize, StoreError> {
        self.read(|conn| {
            // In event order, so ordered endpoints queue each object's
            // deliveries as they were created.
            let mut stmt = conn.prepare_cached(
                "SELECT d.id, d.event_id, d.endpoint_id, d.next_attempt_at, d.round_attempts,
                        d.attempts, e.object_id
                 FROM deliveries d JOIN events e ON e.id = d.event_id
                 WHERE d.status = 'pending' ORDER BY e.seq",
            )?;
            let mut count = 0;
            for row in stmt.query_map([], scheduled_from_row)? {
                each(row?);
                count += 1;
            }
            Ok(count)
        })
    }

    fn event(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT seq, id, merchant_id, body FROM events WHERE id = ?1")?
                .query_row([id.to_string()], event_from_row)
                .optional()
        })
    }

    fn list_events(&self, query: &EventQuery) -> Result<(Vec<StoredEvent>, bool), StoreError> {
        self.read(|conn| {
            // First the positions and types only (no bodies, which may be
            // large and are read from their overflow pages), then the bodies
            // of the page: an endpoint's filter (wildcards, the PayPal rule)
            // is applied in between, row by row, reading on until the page
            // is full, so rows it skips cost no body.
            let mut scan = conn.prepare_cached(&format!(
                "SELECT e.seq, e.type FROM events e
                 WHERE (?1 IS NULL OR e.merchant_id = ?1)
                   AND e.seq > ?2
                   AND (?3 IS NULL OR e.type = ?3)
                   AND (?4 IS NULL OR EXISTS (
                        SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND {}))
                 ORDER BY e.seq LIMIT ?5",
                super::delivery_filter_sql(4)
            ))?;
            let wanted = |event_type: &str| {
                query.for_endpoint.as_ref().is_none_or(|endpoint| {
                    EventType::parse_lenient(event_type).is_ok_and(|t| endpoint.wants(&t))
                })
            };
            let rows_limit = if query.for_endpoint.is_some() {
                i64::MAX
            } else {
                i64::from(query.limit) + 1
            };
            let mut page = Vec::new();
            let mut rows = scan.query(params![
                query.merchant_id.map(|id| id.to_string()),
                query.after_seq,
                query.event_type,
                query.delivery.map(DeliveryFilter::as_str),
                rows_limit,
            ])?;
            while let Some(row) = rows.next()? {
                if wanted(row.get_ref(1)?.as_str()?) {
                    page.push(row.get::<_, i64>(0)?);
                    if page.len() > query.limit as usize {
                        break;
                    }
                }
            }
            let mut body = conn
                .prepare_cached("SELECT seq, id, merchant_id, body FROM events WHERE seq = ?1")?;
            let mut events = Vec::with_capacity(page.len());
            for seq in page {
                events.push(body.query_row([seq], event_from_row)?);
            }
            let has_more = events.len() > query.limit as usize;
            events.truncate(query.limit as usize);
            Ok((events, has_more))
        })
    }

    fn attempts(&self, event_id: EventId) -> Result<Vec<Attempt>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT d.event_id, d.endpoint_id, a.number, a.status, a.response_status,
                        a.duration_ms, a.error, a.response_body, a.attempted_at
                 FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
                 WHERE d.event_id = ?1 ORDER BY a.attempted_at, a.id",
            )?;
            let rows = stmt.query_map([event_id.to_string()], |row| {
                Ok(Attempt {
                    event_id: parse_id(row, 0, EventId::parse)?,
                    endpoint_id: parse_id(row, 1, EndpointId::parse)?,
                    number: row.get(2)?,
                    status: match row.get_ref(3)?.as_str()? {
                        "succeeded" => AttemptStatus::Succeeded,
                        _ => AttemptStatus::Failed,
                    },
                    response_status: row.get(4)?,
                    duration_ms: row.get(5)?,
                    error: row.get(6)?,
                    response_body: row.get(7)?,
                    attempted_at: from_millis(row.get(8)?),
                })
            })?;
            rows.collect()
        })
    }

    fn idempotent_response(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotentResponse>, StoreError> {
        self.read(|conn| find_idempotent(conn, scope, key))
    }

    fn payment(
        &self,
        merchant: MerchantId,
        id: PaymentId,
    ) -> Result<Option<StoredPayment>, StoreError> {
        self.read(|conn| find_payment(conn, merchant, id))
    }

    fn subscription(
        &self,
        merchant: MerchantId,
        id: SubscriptionId,
    ) -> Result<Option<StoredSubscription>, StoreError> {
        self.read(|conn| find_subscription(conn, merchant, id))
    }

    fn due_subscriptions(
        &self,
        now: Millis,
        limit: u32,
    ) -> Result<Vec<(MerchantId, SubscriptionId)>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT merchant_id, id FROM subscriptions
                 WHERE next_step_at IS NOT NULL AND next_step_at <= ?1
                 ORDER BY next_step_at LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now, limit], |row| {
                Ok((
                    parse_id(row, 0, MerchantId::parse)?,
                    parse_id(row, 1, SubscriptionId::parse)?,
                ))
            })?;
            rows.collect()
        })
    }

    fn next_subscription_step(&self) -> Result<Option<Millis>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT MIN(next_step_at) FROM subscriptions WHERE next_step_at IS NOT NULL",
            )?
            .query_row([], |row| row.get(0))
        })
    }

    fn object_events(
        &self,
        merchant: MerchantId,
        object_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, id, merchant_id, body FROM events
                 WHERE merchant_id = ?1 AND object_id = ?2 ORDER BY sequence",
            )?;
            let rows = stmt.query_map(params![merchant.to_string(), object_id], event_from_row)?;
            rows.collect()
        })
    }

    fn idempotency_hash_key(&self) -> Result<Vec<u8>, StoreError> {
        const NAME: &str = "idempotency_hash_key";
        let sealed: String = self.read(|conn| {
            conn.prepare_cached("SELECT value FROM secrets WHERE name = ?1")?
                .query_row([NAME], |row| row.get(0))
        })?;
        let place = secret_place(NAME);
        self.key
            .open(&sealed, &place)
            .with_context(|| format!("reading {place}"))
    }

    fn clock_offset(&self) -> Result<Millis, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT offset_ms FROM clock WHERE id = 1")?
                .query_row([], |row| row.get(0))
                .optional()
                .map(Option::unwrap_or_default)
        })
    }

    fn checkout_session(
        &self,
        id: CheckoutSessionId,
    ) -> Result<Option<CheckoutSession>, StoreError> {
        self.read(|conn| find_checkout_session(conn, id))
    }

    fn read_sqlite(
        &self,
        f: &mut dyn FnMut(&Connection) -> rusqlite::Result<()>,
    ) -> Result<(), StoreError> {
        self.read(|conn| f(conn))
    }

    fn paypal_sending(&self, event_id: EventId) -> Result<Option<bool>, StoreError> {
        self.read(|conn| {
            // A delivery row exists from the moment the message goes out, so
            // a listener verifying before it answers is already covered.
            conn.prepare_cached(
                "SELECT MAX(d.attempts > d.round_attempts) FROM deliveries d
                 JOIN endpoints p ON p.id = d.endpoint_id
                 WHERE d.event_id = ?1 AND p.dialect = 'paypal'",
            )?
            .query_row([event_id.to_string()], |row| row.get::<_, Option<bool>>(0))
        })
    }
}

fn find_idempotent(
    conn: &Connection,
    scope: &str,
    key: &str,
) -> rusqlite::Result<Option<IdempotentResponse>> {
    conn.prepare_cached(
        "SELECT request_hash, status, body FROM idempotency_keys WHERE scope = ?1 AND key = ?2",
    )?
    .query_row([scope, key], |row| {
        Ok(IdempotentResponse {
            request_hash: row.get(0)?,
            status: row.get(1)?,
            body: row.get(2)?,
        })
    })
    .optional()
}

fn apply_one(
    tx: &Connection,
    key: &EncryptionKey,
    request: &WriteRequest,
) -> Result<Written, StoreError> {
    if let Some(key) = &request.idempotency
        && let Some(first) = find_idempotent(tx, &key.scope, &key.key)?
    {
        return Ok(Written::Replay(first));
    }
    let written = apply_write(tx, key, &request.write)?;
    if let Some(key) = &request.idempotency {
        save_idempotent(tx, key, &request.write, &written)?;
    }
    Ok(written)
}

fn save_idempotent(
    tx: &Connection,
    key: &IdempotencyKey,
    write: &Write,
    written: &Written,
) -> Result<(), StoreError> {
    let rendered;
    let (status, body): (u16, &[u8]) = match (&key.response, written, write) {
        (Some(response), _, _) => (response.status, &response.body),
        (None, Written::Ingested(ingested), _) => (201, &ingested.body),
        (None, Written::Payment(done), Write::Payment(w)) => {
            rendered = (w.respond)(Ok(done));
            (rendered.0, &rendered.1)
        }
        (None, Written::PaymentRefused(refusal), Write::Payment(w)) => {
            rendered = (w.respond)(Err(refusal));
            (rendered.0, &rendered.1)
        }
        (None, Written::Subscription(done), Write::Subscription(w)) if w.respond.is_some() => {
            rendered = w
                .respond
                .map_or_else(Default::default, |respond| respond(Ok(done.as_ref())));
            (rendered.0, &rendered.1)
        }
        (None, Written::SubscriptionRefused(refusal), Write::Subscription(w))
            if w.respond.is_some() =>
        {
            rendered = w
                .respond
                .map_or_else(Default::default, |respond| respond(Err(refusal)));
            (rendered.0, &rendered.1)
        }
        (None, _, _) => return Err(anyhow!("no response to store for idempotency key")),
    };
    tx.prepare_cached(
        "INSERT INTO idempotency_keys (scope, key, request_hash, status, body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        key.scope,
        key.key,
        key.request_hash,
        status,
        body,
        key.now
    ])?;
    Ok(())
}

fn apply_write(tx: &Connection, key: &EncryptionKey, write: &Write) -> Result<Written, StoreError> {
    match write {
        Write::CreateMerchant(m) => {
            tx.prepare_cached(
                "INSERT INTO merchants (id, name, receiver_email, api_key_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                m.id.to_string(),
                m.name,
                m.receiver_email,
                m.api_key_hash,
                m.created_at
            ])?;
            Ok(Written::Done)
        }
        Write::SaveEndpoint(e) => {
            save_endpoint(tx, key, e)?;
            Ok(Written::Done)
        }
        Write::Ingest(new) => ingest(tx, new).map(Written::Ingested),
        Write::AttemptDone(done) => {
            attempt_done(tx, done)?;
            Ok(Written::Done)
        }
        Write::Resend {
            event_id,
            endpoint_ids,
            now,
        } => {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO deliveries (event_id, endpoint_id, status, attempts, round_attempts, next_attempt_at)
                 VALUES (?1, ?2, 'pending', 0, 0, ?3)
                 ON CONFLICT (event_id, endpoint_id) DO UPDATE
                   SET status = 'pending', round_attempts = 0, next_attempt_at = excluded.next_attempt_at
                 RETURNING id, event_id, endpoint_id, next_attempt_at, round_attempts, attempts,
                           (SELECT object_id FROM events WHERE id = ?1)",
            )?;
            let mut scheduled = Vec::with_capacity(endpoint_ids.len());
            for endpoint_id in endpoint_ids {
                scheduled.push(stmt.query_row(
                    params![event_id.to_string(), endpoint_id.to_string(), now],
                    scheduled_from_row,
                )?);
            }
            Ok(Written::Scheduled(scheduled))
        }
        Write::Recover {
            endpoint_id,
            since,
            now,
        } => {
            // In event order, so ordered endpoints queue them as created.
            let scheduled = tx
                .prepare_cached(
                    "SELECT d.id, d.event_id, d.endpoint_id, ?3, 0, d.attempts, e.object_id
                     FROM deliveries d JOIN events e ON e.id = d.event_id
                     WHERE d.endpoint_id = ?1 AND d.status = 'failed' AND e.created_at >= ?2
                     ORDER BY e.seq",
                )?
                .query_map(
                    params![endpoint_id.to_string(), since, now],
                    scheduled_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut update = tx.prepare_cached(
                "UPDATE deliveries SET status = 'pending', round_attempts = 0, next_attempt_at = ?2
                 WHERE id = ?1",
            )?;
            for delivery in &scheduled {
                update.execute(params![delivery.delivery_id, now])?;
            }
            Ok(Written::Scheduled(scheduled))
        }
        Write::Remember => Ok(Written::Done),
        Write::SaveClockOffset(offset) => {
            tx.prepare_cached(
                "INSERT INTO clock (id, offset_ms) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET offset_ms = MAX(offset_ms, excluded.offset_ms)",
            )?
            .execute([offset])?;
            Ok(Written::Done)
        }
        Write::Payment(write) => payment_write(tx, write),
        Write::CreateCheckoutSession(session) => {
            save_checkout_session(tx, session)?;
            Ok(Written::Done)
        }
        Write::CheckoutPayment(write) => checkout_payment_write(tx, write),
        Write::CheckoutSubscription(write) => checkout_subscription_write(tx, write),
        Write::Subscription(write) => subscription_write(tx, write),
        Write::DisableEndpoint {
            endpoint_id,
            reason,
            now,
        } => {
            tx.prepare_cached(
                "UPDATE endpoints SET disabled_reason = ?2, disabled_at = ?3 WHERE id = ?1",
            )?
            .execute(params![endpoint_id.to_string(), reason.as_str(), now])?;
            tx.prepare_cached(
                "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL
                 WHERE endpoint_id = ?1 AND status = 'pending'",
            )?
            .execute([endpoint_id.to_string()])?;
            Ok(Written::Done)
        }
    }
}

fn find_payment(
    conn: &Connection,
    merchant: MerchantId,
    id: PaymentId,
) -> rusqlite::Result<Option<StoredPayment>> {
    conn.prepare_cached("SELECT object, method FROM payments WHERE id = ?1 AND merchant_id = ?2")?
        .query_row(params![id.to_string(), merchant.to_string()], |row| {
            let object: String = row.get(0)?;
            let method: String = row.get(1)?;
            let payment =
                serde_json::from_str(&object).map_err(|e| conversion(0, e.to_string()))?;
            let method = serde_json::from_str(&method).map_err(|e| conversion(1, e.to_string()))?;
            Ok(StoredPayment { payment, method })
        })
        .optional()
}

/// Reads the payment, applies the operation and commits its rows and events
/// (see `payments.rs`); a refused operation writes nothing.
fn payment_write(tx: &Connection, write: &PaymentWrite) -> Result<Written, StoreError> {
    let current = find_payment(tx, write.merchant_id, write.payment_id)?;
    let applied = match payments::apply(current, write) {
        Ok(applied) => applied,
        // Stored data that breaks the rules is a failure of the gateway,
        // not an answer to remember.
        Err(PaymentRefusal::Rule(PaymentError::Inconsistent(why))) => {
            return Err(anyhow!(
                "payment {} as stored breaks the payment rules: {why}",
                write.payment_id
            ));
        }
        Err(refusal) => return Ok(Written::PaymentRefused(refusal)),
    };
    for row in &applied.rows {
        save_payment(tx, row)?;
    }
    let events = record_events(tx, write.merchant_id, &write.subscribers, applied.events)?;
    Ok(Written::Payment(PaymentDone {
        rows: applied.rows,
        events,
    }))
}

fn save_payment(tx: &Connection, row: &StoredPayment) -> Result<(), StoreError> {
    let p = &row.payment;
    tx.prepare_cached(
        "INSERT INTO payments (id, merchant_id, parent_id, invoice, status, method, object, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, object = excluded.object",
    )?
    .execute(params![
        p.id.to_string(),
        p.merchant_id.to_string(),
        p.parent_id.map(|id| id.to_string()),
        p.invoice,
        p.status.as_str(),
        serde_json::to_string(&row.method)?,
        serde_json::to_string(p)?,
        crate::clock::to_millis(p.created_at),
    ])?;
    Ok(())
}

/// Records events in order, each with a delivery to the subscribers that
/// want it (the outbox, in the caller's transaction).
fn record_events(
    tx: &Connection,
    merchant_id: MerchantId,
    subscribers: &[Endpoint],
    events: Vec<ipn_core::event::Event>,
) -> Result<Vec<Ingested>, StoreError> {
    let mut recorded = Vec::with_capacity(events.len());
    for event in events {
        let endpoint_ids = subscribers
            .iter()
            .filter(|e| e.is_enabled() && e.wants(&event.event_type))
            .map(|e| e.id)
            .collect();
        let object_id = crate::publish::root_object(&event.data);
        recorded.push(ingest(
            tx,
            &NewEvent {
                merchant_id,
                event,
                object_id,
                endpoint_ids,
            },
        )?);
    }
    Ok(recorded)
}

fn find_subscription(
    conn: &Connection,
    merchant: MerchantId,
    id: SubscriptionId,
) -> rusqlite::Result<Option<StoredSubscription>> {
    conn.prepare_cached(
        "SELECT object, method, failed_attempts, next_step_at FROM subscriptions
         WHERE id = ?1 AND merchant_id = ?2",
    )?
    .query_row(params![id.to_string(), merchant.to_string()], |row| {
        let object: String = row.get(0)?;
        let method: String = row.get(1)?;
        let next: Option<Millis> = row.get(3)?;
        Ok(StoredSubscription {
            subscription: serde_json::from_str(&object)
                .map_err(|e| conversion(0, e.to_string()))?,
            method: serde_json::from_str(&method).map_err(|e| conversion(1, e.to_string()))?,
            failed_attempts: row.get(2)?,
            next_action_at: next.map(from_millis),
        })
    })
    .optional()
}

/// Reads the subscription, applies the step and commits its row, its
/// payments and its events (see `subscriptions.rs`); a refused step writes
/// nothing.
fn subscription_write(tx: &Connection, write: &SubscriptionWrite) -> Result<Written, StoreError> {
    let current = find_subscription(tx, write.merchant_id, write.subscription_id)?;
    let applied = match subscriptions::apply(current, write) {
        Ok(applied) => applied,
        Err(refusal) => return Ok(Written::SubscriptionRefused(refusal)),
    };
    let row = &applied.row;
    let sub = &row.subscription;
    tx.prepare_cached(
        "INSERT INTO subscriptions (id, merchant_id, status, method, object, failed_attempts,
                                    next_step_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, method = excluded.method,
             object = excluded.object, failed_attempts = excluded.failed_attempts,
             next_step_at = excluded.next_step_at",
    )?
    .execute(params![
        sub.id.to_string(),
        sub.merchant_id.to_string(),
        sub.status.as_str(),
        serde_json::to_string(&row.method)?,
        serde_json::to_string(sub)?,
        row.failed_attempts,
        row.next_action_at.map(crate::clock::to_millis),
        crate::clock::to_millis(sub.created_at),
    ])?;
    for payment in &applied.payments {
        save_payment(tx, payment)?;
    }
    let events = record_events(tx, write.merchant_id, &write.subscribers, applied.events)?;
    Ok(Written::Subscription(Box::new(SubscriptionDone {
        row: applied.row,
        events,
    })))
}

fn save_checkout_session(tx: &Connection, s: &CheckoutSession) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO checkout_sessions (id, merchant_id, invoice, amount, currency, items, custom,
                                        customer_email, success_url, cancel_url, created_at,
                                        expires_at, plan)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        s.id.to_string(),
        s.merchant_id.to_string(),
        s.invoice,
        s.amount.minor(),
        s.amount.currency().code(),
        serde_json::to_string(&s.items)?,
        s.custom.as_ref().map(Custom::as_str),
        s.customer_email,
        s.success_url,
        s.cancel_url,
        crate::clock::to_millis(s.created_at),
        crate::clock::to_millis(s.expires_at),
        s.plan.as_ref().map(serde_json::to_string).transpose()?,
    ])?;
    Ok(())
}

fn find_checkout_session(
    conn: &Connection,
    id: CheckoutSessionId,
) -> rusqlite::Result<Option<CheckoutSession>> {
    conn.prepare_cached(
        "SELECT id, merchant_id, invoice, amount, currency, items, custom, customer_email,
                success_url, cancel_url, created_at, expires_at, payment_id, paid_at, plan,
                subscription_id
         FROM checkout_sessions WHERE id = ?1",
    )?
    .query_row([id.to_string()], |row| {
        let currency = parse_id(row, 4, Currency::parse)?;
        let items = serde_json::from_str(row.get_ref(5)?.as_str()?)
            .map_err(|e| conversion(5, e.to_string()))?;
        let custom = match row.get_ref(6)?.as_str_or_null()? {
            Some(text) => Some(Custom::parse(text).map_err(|e| conversion(6, e.to_string()))?),
            None => None,
        };
        let payment_id = match row.get_ref(12)?.as_str_or_null()? {
            Some(_) => Some(parse_id(row, 12, PaymentId::parse)?),
            None => None,
        };
        // Checked again as it is read (`Plan` validates when deserialized).
        let plan = match row.get_ref(14)?.as_str_or_null()? {
            Some(text) => {
                Some(serde_json::from_str(text).map_err(|e| conversion(14, e.to_string()))?)
            }
            None => None,
        };
        let subscription_id = match row.get_ref(15)?.as_str_or_null()? {
            Some(_) => Some(parse_id(row, 15, SubscriptionId::parse)?),
            None => None,
        };
        Ok(CheckoutSession {
            id: parse_id(row, 0, CheckoutSessionId::parse)?,
            merchant_id: parse_id(row, 1, MerchantId::parse)?,
            invoice: row.get(2)?,
            amount: Money::new(row.get(3)?, currency),
            items,
            custom,
            customer_email: row.get(7)?,
            success_url: row.get(8)?,
            cancel_url: row.get(9)?,
            plan,
            created_at: from_millis(row.get(10)?),
            expires_at: from_millis(row.get(11)?),
            payment_id,
            subscription_id,
            paid_at: row.get::<_, Option<Millis>>(13)?.map(from_millis),
        })
    })
    .optional()
}

/// Pays a checkout session if it is open at the write's time (see
/// `checkout.rs`). The check, the payment (the same create operation as the
/// payments API) and the mark happen in this one transaction of the one
/// writer, so a session is paid at most once however many submits race: the
/// second is applied after the first and finds it paid.
fn checkout_payment_write(tx: &Connection, write: &CheckoutPayment) -> Result<Written, StoreError> {
    let payment = &write.payment;
    let Some(session) = find_checkout_session(tx, write.session_id)?
        .filter(|s| s.merchant_id == payment.merchant_id)
    else {
        return Ok(Written::CheckoutRefused(CheckoutRefusal::NotFound));
    };
    if let Err(refusal) = session.payable(payment.now) {
        return Ok(Written::CheckoutRefused(refusal));
    }
    if session.plan.is_some() {
        // The page pays a session in its own mode; this is a gateway bug.
        return Err(anyhow!(
            "checkout session {} starts a subscription, not a payment",
            write.session_id
        ));
    }
    let written = payment_write(tx, payment)?;
    if let Written::Payment(done) = &written
        && done
            .rows
            .first()
            .is_some_and(|row| checkout::settles(row.payment.status))
    {
        let marked = tx
            .prepare_cached(
                "UPDATE checkout_sessions SET payment_id = ?2, paid_at = ?3
                 WHERE id = ?1 AND payment_id IS NULL",
            )?
            .execute(params![
                write.session_id.to_string(),
                payment.payment_id.to_string(),
                crate::clock::to_millis(payment.now),
            ])?;
        if marked != 1 {
            // Found open above in this same transaction, so this cannot
            // happen; if it does, the error rolls the payment back too.
            return Err(anyhow!(
                "checkout session {} was paid twice in one transaction",
                write.session_id
            ));
        }
    }
    Ok(written)
}

/// Pays a subscription-mode checkout session if it is open at the write's
/// time: the same check, then the signup (the same create operation as the
/// subscriptions API), then the mark, in this one transaction, so a session
/// starts at most one subscription however many submits race.
fn checkout_subscription_write(
    tx: &Connection,
    write: &CheckoutSubscription,
) -> Result<Written, StoreError> {
    let subscription = &write.subscription;
    let Some(session) = find_checkout_session(tx, write.session_id)?
        .filter(|s| s.merchant_id == subscription.merchant_id)
    else {
        return Ok(Written::CheckoutRefused(CheckoutRefusal::NotFound));
    };
    if let Err(refusal) = session.payable(subscription.now) {
        return Ok(Written::CheckoutRefused(refusal));
    }
    if session.plan.is_none() {
        // The page pays a session in its own mode; this is a gateway bug.
        return Err(anyhow!(
            "checkout session {} is for a payment, not a subscription",
            write.session_id
        ));
    }
    let written = subscription_write(tx, subscription)?;
    if let Written::Subscription(done) = &written {
        let marked = tx
            .prepare_cached(
                "UPDATE checkout_sessions SET subscription_id = ?2, paid_at = ?3
                 WHERE id = ?1 AND payment_id IS NULL AND subscription_id IS NULL",
            )?
            .execute(params![
                write.session_id.to_string(),
                done.row.subscription.id.to_string(),
                crate::clock::to_millis(subscription.now),
            ])?;
        if marked != 1 {
            // Found open above in this same transaction, so this cannot
            // happen; if it does, the error rolls the subscription back too.
            return Err(anyhow!(
                "checkout session {} was paid twice in one transaction",
                write.session_id
            ));
        }
    }
    Ok(written)
}

/// Saves an endpoint, its secrets sealed for their row and column.
fn save_endpoint(tx: &Connection, key: &EncryptionKey, e: &Endpoint) -> Result<(), StoreError> {
    let events = serde_json::to_string(&e.filter.entries())?;
    let id = e.id.to_string();
    let secret = key.seal(e.secret.reveal().as_bytes(), &endpoint_place("secret", &id))?;
    let previous_secret = match &e.previous_secret {
        Some((previous, _)) => Some(key.seal(
            previous.reveal().as_bytes(),
            &endpoint_place("previous_secret", &id),
        )?),
        None => None,
    };
    tx.prepare_cached(
        "INSERT OR REPLACE INTO endpoints
           (id, merchant_id, url, dialect, events, ordered, description, secret,
            previous_secret, previous_secret_expires, disabled_reason, disabled_at,
            failing_since, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        id,
        e.merchant_id.to_string(),
        e.url,
        e.dialect.as_str(),
        events,
        e.ordered,
        e.description,
        secret,
        previous_secret,
        e.previous_secret.as_ref().map(|(_, at)| *at),
        e.disabled.as_ref().map(|d| d.reason.as_str()),
        e.disabled.as_ref().map(|d| d.at),
        e.failing_since,
        e.created_at,
    ])?;
    Ok(())
}

fn ingest(tx: &Connection, new: &NewEvent) -> Result<Ingested, StoreError> {
    let merchant = new.merchant_id.to_string();
    let sequence: i64 = match &new.object_id {
        Some(object) => tx
            .prepare_cached(
                "SELECT COALESCE(MAX(sequence), 0) + 1 FROM events WHERE merchant_id = ?1 AND object_id = ?2",
            )?
            .query_row([&merchant, object], |row| row.get(0))?,
        None => 1,
    };
    let mut event = new.event.clone();
    event.sequence = u64::try_from(sequence)?;
    let body: Arc<[u8]> = serde_json::to_vec(&event)?.into();
    let created_at = crate::clock::to_millis(event.created_at);
    let event_id = event.id.to_string();
    tx.prepare_cached(
        "INSERT INTO events (id, merchant_id, type, object_id, sequence, created_at, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        event_id,
        merchant,
        event.event_type.as_str(),
        new.object_id,
        sequence,
        created_at,
        &body[..],
    ])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO deliveries (event_id, endpoint_id, status, attempts, round_attempts, next_attempt_at)
         VALUES (?1, ?2, 'pending', 0, 0, ?3)",
    )?;
    let mut deliveries = Vec::with_capacity(new.endpoint_ids.len());
    for endpoint_id in &new.endpoint_ids {
        insert.execute(params![event_id, endpoint_id.to_string(), created_at])?;
        deliveries.push(Scheduled {
            delivery_id: tx.last_insert_rowid(),
            event_id: event.id,
            endpoint_id: *endpoint_id,
            due: created_at,
            round_attempts: 0,
            attempts: 0,
            object_id: new.object_id.as_deref().map(Arc::from),
        });
    }
    Ok(Ingested {
        event_id: event.id,
        body,
        deliveries,
    })
}

fn attempt_done(tx: &Connection, done: &AttemptDone) -> Result<(), StoreError> {
    let a = &done.attempt;
    let attempted_at = crate::clock::to_millis(a.attempted_at);
    tx.prepare_cached(
        "INSERT INTO attempts (delivery_id, number, status, response_status, duration_ms, error,
                               response_body, attempted_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        done.delivery_id,
        a.number,
        match a.status {
            AttemptStatus::Succeeded => "succeeded",
            AttemptStatus::Failed => "failed",
        },
        a.response_status,
        a.duration_ms,
        a.error,
        a.response_body,
        attempted_at,
    ])?;
    let (status, next_at) = match done.next {
        DeliveryNext::Delivered => (DeliveryStatus::Delivered, None),
        DeliveryNext::RetryAt(at) => (DeliveryStatus::Pending, Some(at)),
        DeliveryNext::Failed => (DeliveryStatus::Failed, None),
    };
    // A delivery resent while this attempt was in flight stays pending: the
    // resend's own attempt is already scheduled. One failed meanwhile (its
    // endpoint was disabled) stays failed, unless this attempt delivered it.
    tx.prepare_cached(
        "UPDATE deliveries SET status = ?2, next_attempt_at = ?3, attempts = attempts + 1,
                round_attempts = round_attempts + 1, last_attempt_at = ?4
         WHERE id = ?1 AND (status = 'pending' OR ?2 = 'delivered')",
    )?
    .execute(params![
        done.delivery_id,
        status.as_str(),
        next_at,
        attempted_at
    ])?;
    let failing_since = match done.health {
        EndpointHealth::Unchanged => return Ok(()),
        EndpointHealth::Healthy => None,
        EndpointHealth::FailingSince(at) => Some(at),
    };
    tx.prepare_cached("UPDATE endpoints SET failing_since = ?2 WHERE id = ?1")?
        .execute(params![a.endpoint_id.to_string(), failing_since])?;
    Ok(())
}

fn parse_id<T, E: std::error::Error + Send + Sync + 'static>(
    row: &Row<'_>,
    index: usize,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> rusqlite::Result<T> {
    let text = row.get_ref(index)?.as_str()?;
    parse(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn conversion(index: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, message.into())
}

fn endpoint_from_row(row: &Row<'_>, key: &EncryptionKey) -> rusqlite::Result<Endpoint> {
    let id = parse_id(row, 0, EndpointId::parse)?;
    let dialect: Dialect = row
        .get_ref(3)?
        .as_str()?
        .parse()
        .map_err(|e: ipn_core::dialect::UnknownDialect| conversion(3, e.to_string()))?;
    let entries: Vec<String> = serde_json::from_str(row.get_ref(4)?.as_str()?)
        .map_err(|e| conversion(4, e.to_string()))?;
    let filter = EventFilter::parse(&entries, dialect).map_err(|e| conversion(4, e.to_string()))?;
    let secret = open_endpoint_secret(key, row.get_ref(7)?.as_str()?, "secret", id, 7)?;
    let previous_secret = match row.get_ref(8)?.as_str_or_null()? {
        Some(text) => Some((
            open_endpoint_secret(key, text, "previous_secret", id, 8)?,
            row.get::<_, Option<Millis>>(9)?.unwrap_or(0),
        )),
        None => None,
    };
    let disabled = match row.get_ref(10)?.as_str_or_null()? {
        Some(text) => Some(Disabled {
            reason: DisabledReason::parse(text)
                .ok_or_else(|| conversion(10, format!("unknown disabled reason {text:?}")))?,
            at: row.get::<_, Option<Millis>>(11)?.unwrap_or(0),
        }),
        None => None,
    };
    Ok(Endpoint {
        id,
        merchant_id: parse_id(row, 1, MerchantId::parse)?,
        url: row.get(2)?,
        dialect,
        filter,
        ordered: row.get(5)?,
        description: row.get(6)?,
        secret,
        previous_secret,
        disabled,
        failing_since: row.get(12)?,
        created_at: row.get(13)?,
    })
}

/// An endpoint's secret, opened from its column. The key was checked at
/// start, so a value that does not open was changed or moved.
fn open_endpoint_secret(
    key: &EncryptionKey,
    sealed: &str,
    column: &str,
    id: EndpointId,
    index: usize,
) -> rusqlite::Result<WebhookSecret> {
    let place = endpoint_place(column, &id.to_string());
    let opened = key
        .open(sealed, &place)
        .map_err(|e| conversion(index, format!("{place}: {e}")))?;
    let text = String::from_utf8(opened)
        .map_err(|_| conversion(index, format!("{place}: not UTF-8 once decrypted")))?;
    WebhookSecret::parse(&text).map_err(|e| conversion(index, format!("{place}: {e}")))
}

fn scheduled_from_row(row: &Row<'_>) -> rusqlite::Result<Scheduled> {
    Ok(Scheduled {
        delivery_id: row.get(0)?,
        event_id: parse_id(row, 1, EventId::parse)?,
        endpoint_id: parse_id(row, 2, EndpointId::parse)?,
        due: row.get::<_, Option<Millis>>(3)?.unwrap_or(0),
        round_attempts: row.get(4)?,
        attempts: row.get(5)?,
        object_id: row.get::<_, Option<String>>(6)?.map(Arc::from),
    })
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        seq: row.get(0)?,
        id: parse_id(row, 1, EventId::parse)?,
        merchant_id: parse_id(row, 2, MerchantId::parse)?,
        body: row.get::<_, Vec<u8>>(3)?.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    fn merchant(key: &str) -> Merchant {
        Merchant {
            id: MerchantId::generate(OffsetDateTime::now_utc()),
            name: key.to_owned(),
            receiver_email: format!("{key}@example.com"),
            api_key_hash: key.to_owned(),
            created_at: 0,
        }
    }

    fn request(write: Write) -> WriteRequest {
        WriteRequest {
            write,
            idempotency: None,
        }
    }

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

    #[test]
    fn a_failing_request_rolls_back_alone_and_the_rest_of_the_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(
            &dir.path().join("t.db"),
            Durability::Normal,
            crate::EncryptionKey::generate().unwrap(),
        )
        .unwrap();
        let first = merchant("a");
        let mut clash = merchant("b");
        clash.id = first.id; // same primary key: this insert fails
        let results = store
            .apply(&[
                request(Write::CreateMerchant(first)),
                request(Write::CreateMerchant(clash)),
                request(Write::CreateMerchant(merchant("c"))),
            ])
            .unwrap();
        assert!(results[0].is_ok());
        assert!(results[1].is_err());
        assert!(results[2].is_ok());
        let names: Vec<String> = store
            .merchants()
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains(&"a".to_owned()) && names.contains(&"c".to_owned()));
    }
}
