//! The SQLite inbox: one file in WAL mode, fsync at every commit (a message
//! acknowledged to the gateway must survive a power cut), migrations applied
//! at start.

use std::path::Path;

use anyhow::Context as _;
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, Transaction, params};

use super::{NewMessage, StoreError, Stored};

/// Migrations in order; each runs once, in its own transaction.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_inbox",
        // `id` orders messages by arrival, for the handler that walks them.
        // `webhook_id` is set only when a signature vouched for it, and is
        // unique then: a retried delivery cannot make a second row, and a forged
        // one cannot claim an id and shadow the real message. `status` has no
        // CHECK so that later slices can add states without rebuilding the
        // table; the Rust enum is its guard. `headers` is a JSON object.
        "CREATE TABLE inbox (
         id          INTEGER PRIMARY KEY,
         received_at INTEGER NOT NULL,
         dialect     TEXT NOT NULL CHECK (dialect IN ('standard', 'paypal')),
         webhook_id  TEXT,
         headers     TEXT NOT NULL,
         body        BLOB NOT NULL,
         status      TEXT NOT NULL
     );
     CREATE UNIQUE INDEX inbox_by_webhook_id ON inbox (webhook_id)
         WHERE webhook_id IS NOT NULL;
     CREATE INDEX inbox_waiting ON inbox (status, id)
         WHERE status IN ('received', 'unverified');",
    ),
    (
        "0002_postback",
        // The PayPal postback's outcome (`verification` is the gateway's
        // word, `verified_at` when it was had) and its retries: attempts that
        // did not reach an answer, when the next is due and why the last
        // failed. `next_postback_at` 0 means "now", so a new row is due at
        // once without the receiver setting it.
        "ALTER TABLE inbox ADD COLUMN verification TEXT;
         ALTER TABLE inbox ADD COLUMN verified_at INTEGER;
         ALTER TABLE inbox ADD COLUMN postback_attempts INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE inbox ADD COLUMN next_postback_at INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE inbox ADD COLUMN postback_error TEXT;",
    ),
    (
        "0003_orders",
        // The shop's orders (`storage/orders.rs`). `id` is `ord_<ULID>`, the
        // invoice at the gateway; `total` and the line amounts are minor
        // units of `currency`. A row is written only with its checkout
        // session, so both session columns are NOT NULL. `status` has no
        // CHECK, like the inbox's: the handler's states are guarded in Rust.
        // Lines keep the name and price the customer was shown.
        "CREATE TABLE orders (
             id                  TEXT PRIMARY KEY,
             status              TEXT NOT NULL,
             customer_email      TEXT NOT NULL,
             currency            TEXT NOT NULL,
             total               INTEGER NOT NULL CHECK (total > 0),
             checkout_session_id TEXT NOT NULL UNIQUE,
             checkout_url        TEXT NOT NULL,
             created_at          INTEGER NOT NULL
         );
         CREATE TABLE order_items (
             order_id    TEXT NOT NULL REFERENCES orders (id),
             line        INTEGER NOT NULL,
             sku         TEXT NOT NULL,
             name        TEXT NOT NULL,
             kind        TEXT NOT NULL CHECK (kind IN ('physical', 'digital')),
             quantity    INTEGER NOT NULL CHECK (quantity > 0),
             unit_amount INTEGER NOT NULL,
             amount      INTEGER NOT NULL,
             PRIMARY KEY (order_id, line)
         ) WITHOUT ROWID;",
    ),
    (
        "0004_handler",
        // The notification handler (`handler/`). Verified PayPal messages
        // now wait for it too, so the waiting index takes `verified` rows.
        // A handled message is `processed` with its `outcome` (applied,
        // held, duplicate, flagged, ignored, rejected) or, after repeated
        // storage errors, `failed`. `applied_keys` holds each notice's key
        // once (event id; PayPal `txn_id:payment_status`). `payments` is
        // every payment fact heard of, valid or not: an order's state is
        // derived from its valid ones. `flags` are reasons for review, on an
        // order or (unknown order) only on the message. Orders keep the
        // gateway merchant they were made with, to check the receiver.
        "DROP INDEX inbox_waiting;
         CREATE INDEX inbox_waiting ON inbox (status, id)
             WHERE status IN ('received', 'unverified', 'verified');
         ALTER TABLE inbox ADD COLUMN outcome TEXT;
         ALTER TABLE inbox ADD COLUMN outcome_detail TEXT;
         ALTER TABLE inbox ADD COLUMN event_type TEXT;
         ALTER TABLE inbox ADD COLUMN order_id TEXT;
         ALTER TABLE inbox ADD COLUMN subscription_id TEXT;
         ALTER TABLE inbox ADD COLUMN processed_at INTEGER;
         ALTER TABLE inbox ADD COLUMN handler_attempts INTEGER NOT NULL DEFAULT 0;
         CREATE INDEX inbox_by_order ON inbox (order_id) WHERE order_id IS NOT NULL;
         CREATE INDEX inbox_by_subscription ON inbox (subscription_id)
             WHERE subscription_id IS NOT NULL;
         CREATE TABLE applied_keys (
             key      TEXT PRIMARY KEY,
             inbox_id INTEGER NOT NULL
         ) WITHOUT ROWID;
         CREATE TABLE payments (
             txn_id          TEXT PRIMARY KEY,
             parent_id       TEXT,
             kind            TEXT NOT NULL
                 CHECK (kind IN ('charge', 'refund', 'reversal', 'reversal_canceled')),
             status          TEXT NOT NULL,
             order_id        TEXT,
             subscription_id TEXT,
             amount          INTEGER NOT NULL,
             currency        TEXT NOT NULL,
             valid           INTEGER NOT NULL,
             inbox_id        INTEGER NOT NULL,
             updated_at      INTEGER NOT NULL
         ) WITHOUT ROWID;
         CREATE INDEX payments_by_order ON payments (order_id) WHERE order_id IS NOT NULL;
         CREATE INDEX payments_by_parent ON payments (parent_id) WHERE parent_id IS NOT NULL;
         CREATE INDEX payments_by_subscription ON payments (subscription_id)
             WHERE subscription_id IS NOT NULL;
         CREATE TABLE flags (
             id          INTEGER PRIMARY KEY,
             order_id    TEXT,
             inbox_id    INTEGER NOT NULL,
             reason      TEXT NOT NULL,
             created_at  INTEGER NOT NULL,
             resolved_at INTEGER
         );
         CREATE INDEX flags_by_order ON flags (order_id) WHERE order_id IS NOT NULL;
         ALTER TABLE orders ADD COLUMN merchant_id TEXT;
         ALTER TABLE orders ADD COLUMN paid_at INTEGER;
         ALTER TABLE orders ADD COLUMN fulfilled_at INTEGER;
         ALTER TABLE orders ADD COLUMN updated_at INTEGER;
         CREATE TABLE subscriptions (
             id                TEXT PRIMARY KEY,
             status            TEXT NOT NULL,
             customer_email    TEXT,
             merchant_id       TEXT,
             object            TEXT,
             paid_through      INTEGER,
             cycles_paid       INTEGER NOT NULL DEFAULT 0,
             canceled_at       INTEGER,
             expired_at        INTEGER,
             last_payment_pos  INTEGER,
             last_failure_pos  INTEGER,
             created_at        INTEGER NOT NULL,
             updated_at        INTEGER NOT NULL
         ) WITHOUT ROWID;",
    ),
    // The email outbox (`mail/`).
    ("0005_emails", crate::mail::SCHEMA),
    // Download grants and the key their links are signed with (`downloads/`).
    ("0006_downloads", crate::downloads::SCHEMA),
    // Where reconciliation has read the gateway's events up to.
    ("0007_reconcile", crate::reconcile::SCHEMA),
    (
        "0008_payment_checks",
        // What a payment notice claimed beyond its amount (who was paid, live
        // or test), so that a refund or reversal that arrived before its
        // payment (`checked` 0) is validated against the order once the
        // payment comes, exactly as if it had arrived after it.
        "ALTER TABLE payments ADD COLUMN receiver TEXT;
         ALTER TABLE payments ADD COLUMN livemode INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE payments ADD COLUMN checked INTEGER NOT NULL DEFAULT 1;
         CREATE INDEX orders_by_created ON orders (created_at, id);",
    ),
    (
        "0009_handler_retry",
        // When a message whose handling failed (not on storage: on itself)
        // is tried again; 0 means now.
        "ALTER TABLE inbox ADD COLUMN handler_retry_at INTEGER NOT NULL DEFAULT 0;",
    ),
    (
        "0010_held_claims",
        // A refund or reversal that comes before its payment is kept as its
        // message claimed it, one row per message (two copies of one
        // transaction cannot overwrite each other), until the payment comes
        // and each claim is checked; `payments.checked` is 1 from here on.
        // `inbox_ready` is the handler's scan in id order without a sort;
        // `flags_open` the dashboard's; `signed_up_at` tells a subscription's
        // first payment from its renewals.
        "CREATE TABLE held_claims (
             inbox_id        INTEGER PRIMARY KEY,
             txn_id          TEXT NOT NULL,
             parent_id       TEXT NOT NULL,
             kind            TEXT NOT NULL,
             event_type      TEXT NOT NULL,
             amount          INTEGER NOT NULL,
             currency        TEXT NOT NULL,
             receiver        TEXT,
             livemode        INTEGER NOT NULL,
             invoice         TEXT,
             subscription_id TEXT,
             payer_email     TEXT
         );
         CREATE INDEX held_claims_by_parent ON held_claims (parent_id);
         CREATE INDEX inbox_ready ON inbox (id) WHERE status IN ('received', 'verified');
         CREATE INDEX flags_open ON flags (id) WHERE resolved_at IS NULL;
         ALTER TABLE subscriptions ADD COLUMN signed_up_at INTEGER;",
    ),
    (
        "0011_subscription_orders",
        // An order for a subscription product keeps its billing terms
        // (`plan`, JSON) and, once the gateway says it started, the
        // subscription it bought; the subscription points back.
        "ALTER TABLE orders ADD COLUMN plan TEXT;
         ALTER TABLE orders ADD COLUMN subscription_id TEXT;
         ALTER TABLE subscriptions ADD COLUMN order_id TEXT;",
    ),
    (
        "0012_subscription_link_checked",
        // Whether a subscription's tie to an order was decided (made or
        // refused), so that it is decided once.
        "ALTER TABLE subscriptions ADD COLUMN link_checked INTEGER NOT NULL DEFAULT 0;",
    ),
];

/// Opens (creating if needed) the database, sets it up for durable writes
/// and applies the migrations not yet applied.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)
        .with_context(|| format!("opening the SQLite database {}", path.display()))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// A second connection for reading, opened after [`open`] has migrated the
/// file. WAL lets it read while the writer commits.
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .with_context(|| format!("opening the SQLite database {} for reading", path.display()))?;
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
