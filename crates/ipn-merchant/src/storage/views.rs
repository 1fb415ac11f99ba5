//! Read-only SQL for the shop's HTML pages (`pages/`): the listings the
//! admin dashboard shows. Nothing here writes; every function takes a plain
//! connection (the reader's) or a transaction on it.

use ipn_core::money::{Currency, Money};
use rusqlite::{Connection, Row, params};

use super::StoreError;
use crate::handler::store::FlagRow;

/// One line of the admin's order list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSummary {
    pub id: String,
    pub status: String,
    pub customer_email: String,
    pub total: Money,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// A page of orders, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPage {
    pub orders: Vec<OrderSummary>,
    /// The id to pass as `before` for the next (older) page, when there is
    /// one.
    pub next_before: Option<String>,
}

/// Orders newest first (by `created_at`, then id), `limit` of them, older
/// than the order `before` when given. The cursor is an order id: its
/// `(created_at, id)` is looked up in the same statement, so a page never
/// skips or repeats an order however many are added meanwhile. An id that
/// names no order gives an empty page.
pub fn recent_orders(
    conn: &Connection,
    before: Option<&str>,
    limit: usize,
) -> Result<OrderPage, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // One more than asked tells whether there is a next page.
    // Two statements rather than `?1 IS NULL OR …`, so that each walks the
    // `orders_by_created` index from where the page starts.
    let mut statement = conn.prepare_cached(match before {
        None => {
            "SELECT id, status, customer_email, currency, total, created_at FROM orders
             WHERE ?1 IS NULL
             ORDER BY created_at DESC, id DESC LIMIT ?2"
        }
        Some(_) => {
            "SELECT id, status, customer_email, currency, total, created_at FROM orders
             WHERE (created_at, id) < ((SELECT created_at FROM orders WHERE id = ?1), ?1)
             ORDER BY created_at DESC, id DESC LIMIT ?2"
        }
    })?;
    let mut orders = statement
        .query_map(params![before, limit.saturating_add(1)], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, i64>(5)?,
            ))
        })?
        .map(|row| {
            let (id, status, customer_email, currency, total, created_at) = row?;
            Ok(OrderSummary {
                id,
                status,
                customer_email,
                total: Money::new(total, Currency::parse(&currency)?),
                created_at,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let more = i64::try_from(orders.len()).unwrap_or(i64::MAX) > limit;
    if more {
        orders.pop();
    }
    let next_before = if more {
        orders.last().map(|order| order.id.clone())
    } else {
        None
    };
    Ok(OrderPage {
        orders,
        next_before,
    })
}

/// One inbox message as the admin pages show it (never its body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxSummary {
    pub id: i64,
    /// Milliseconds since the Unix epoch.
    pub received_at: i64,
    /// `standard` or `paypal`.
    pub dialect: String,
    /// Known once the handler read it.
    pub event_type: Option<String>,
    /// `received`, `unverified`, `verified`, `invalid`, `processed`, `failed`.
    pub status: String,
    /// The PayPal postback's answer: `VERIFIED` or `INVALID`; `None` for a
    /// standard message (its signature was checked before it was stored) or
    /// a PayPal one still waiting.
    pub verification: Option<String>,
    /// What the handler made of it: `applied`, `held`, `duplicate`, …
    pub outcome: Option<String>,
    pub outcome_detail: Option<String>,
    pub order_id: Option<String>,
}

const INBOX_COLUMNS: &str = "id, received_at, dialect, event_type, status, verification, \
                             outcome, outcome_detail, order_id";

fn inbox_row(row: &Row<'_>) -> rusqlite::Result<InboxSummary> {
    Ok(InboxSummary {
        id: row.get(0)?,
        received_at: row.get(1)?,
        dialect: row.get(2)?,
        event_type: row.get(3)?,
        status: row.get(4)?,
        verification: row.get(5)?,
        outcome: row.get(6)?,
        outcome_detail: row.get(7)?,
        order_id: row.get(8)?,
    })
}

/// The messages the handler tied to `order_id`, in arrival order (through
/// the `inbox_by_order` index).
pub fn order_inbox(conn: &Connection, order_id: &str) -> Result<Vec<InboxSummary>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {INBOX_COLUMNS} FROM inbox WHERE order_id = ?1 ORDER BY id"
    ))?;
    let rows = statement.query_map([order_id], inbox_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The latest `limit` messages, newest first.
pub fn recent_inbox(conn: &Connection, limit: usize) -> Result<Vec<InboxSummary>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {INBOX_COLUMNS} FROM inbox ORDER BY id DESC LIMIT ?1"
    ))?;
    let rows = statement.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], inbox_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Flags nobody resolved yet, on any order or on a message alone, oldest
/// first (the longest waiting at the top), at most `limit`.
pub fn open_flags(conn: &Connection, limit: usize) -> Result<Vec<FlagRow>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, order_id, inbox_id, reason, created_at, resolved_at
         FROM flags WHERE resolved_at IS NULL ORDER BY id LIMIT ?1",
    )?;
    let rows = statement.query_map(
        [i64::try_from(limit).unwrap_or(i64::MAX)],
        crate::handler::store::flag_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One stored email with its bodies, for the admin's email page. Kind and
/// status are the stored names, like the inbox's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailView {
    pub id: i64,
    /// `order_paid`, `download_link`, …
    pub kind: String,
    pub to: String,
    pub order_id: Option<String>,
    pub subscription_id: Option<String>,
    pub subject: String,
    /// `queued`, `sent` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub text_body: String,
    pub html_body: String,
}

/// The email `id`, bodies included.
pub fn email(conn: &Connection, id: i64) -> Result<Option<EmailView>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, kind, to_address, order_id, subscription_id, subject, status, attempts,
             last_error, created_at, sent_at, text_body, html_body
         FROM emails WHERE id = ?1",
    )?;
    let mut rows = statement.query_map([id], |row| {
        Ok(EmailView {
            id: row.get(0)?,
            kind: row.get(1)?,
            to: row.get(2)?,
            order_id: row.get(3)?,
            subscription_id: row.get(4)?,
            subject: row.get(5)?,
            status: row.get(6)?,
            attempts: row.get(7)?,
            last_error: row.get(8)?,
            created_at: row.get(9)?,
            sent_at: row.get(10)?,
            text_body: row.get(11)?,
            html_body: row.get(12)?,
        })
    })?;
    Ok(rows.next().transpose()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sqlite;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        sqlite::migrate(&mut conn).unwrap();
        for (id, at) in [("ord_a", 1), ("ord_b", 2), ("ord_c", 2), ("ord_d", 3)] {
            conn.execute(
                "INSERT INTO orders (id, status, customer_email, currency, total,
                     checkout_session_id, checkout_url, created_at)
                 VALUES (?1, 'created', 'ann@example.com', 'USD', 100, ?1, 'u', ?2)",
                params![id, at],
            )
            .unwrap();
        }
        conn
    }

    fn ids(page: &OrderPage) -> Vec<&str> {
        page.orders.iter().map(|o| o.id.as_str()).collect()
    }

    #[test]
    fn orders_page_newest_first_without_gaps_or_repeats() {
        let conn = db();
        let first = recent_orders(&conn, None, 2).unwrap();
        assert_eq!(ids(&first), ["ord_d", "ord_c"]);
        assert_eq!(first.next_before.as_deref(), Some("ord_c"));
        let second = recent_orders(&conn, first.next_before.as_deref(), 2).unwrap();
        assert_eq!(ids(&second), ["ord_b", "ord_a"]);
        assert_eq!(second.next_before, None);
        assert_eq!(second.orders[0].total.to_string(), "1.00 USD");
        assert!(
            recent_orders(&conn, Some("ord_nope"), 2)
                .unwrap()
                .orders
                .is_empty()
        );
    }

    #[test]
    fn inbox_and_flags() {
        let conn = db();
        conn.execute_batch(
            "INSERT INTO inbox (id, received_at, dialect, headers, body, status, order_id,
                 outcome, verification)
             VALUES (1, 10, 'paypal', '{}', x'', 'processed', 'ord_a', 'applied', 'VERIFIED'),
                    (2, 11, 'standard', '{}', x'', 'received', NULL, NULL, NULL);
             INSERT INTO flags (order_id, inbox_id, reason, created_at, resolved_at)
             VALUES ('ord_a', 1, 'open one', 5, NULL), ('ord_a', 1, 'closed', 5, 6);",
        )
        .unwrap();
        let mine = order_inbox(&conn, "ord_a").unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].verification.as_deref(), Some("VERIFIED"));
        assert_eq!(mine[0].outcome.as_deref(), Some("applied"));
        let latest = recent_inbox(&conn, 10).unwrap();
        assert_eq!(latest.iter().map(|m| m.id).collect::<Vec<_>>(), [2, 1]);
        let flags = open_flags(&conn, 10).unwrap();
        assert_eq!(flags.len(), 1);
        assert_eq!(flags[0].reason, "open one");
    }

    #[test]
    fn an_email_reads_with_its_bodies() {
        let conn = db();
        conn.execute_batch(
            "INSERT INTO emails (id, dedupe_key, kind, to_address, order_id, subject,
                 text_body, html_body, status, attempts, next_try_at, created_at, sent_at)
             VALUES (4, 'k', 'download_link', 'ann@example.com', 'ord_a', 'Your download',
                 'Get it: http://shop/downloads/x', '<p>Get it</p>', 'sent', 1, 0, 10, 11);",
        )
        .unwrap();
        let got = email(&conn, 4).unwrap().unwrap();
        assert_eq!(got.kind, "download_link");
        assert_eq!(got.status, "sent");
        assert_eq!(got.order_id.as_deref(), Some("ord_a"));
        assert_eq!(got.text_body, "Get it: http://shop/downloads/x");
        assert_eq!(got.html_body, "<p>Get it</p>");
        assert_eq!(got.sent_at, Some(11));
        assert_eq!(email(&conn, 5).unwrap(), None);
    }
}
