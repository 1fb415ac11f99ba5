//! The `emails` table: what the handler queues, what the worker reads and
//! marks, what the API and the admin page list.
//!
//! Due emails are read through the `emails_due` partial index
//! (`next_try_at`), which holds only `queued` rows, so the worker's scan
//! never walks the sent history.

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension as _, Row, Transaction, params};

use super::{EmailRow, EmailStatus, NewEmail};

/// Queues one email in the caller's transaction; an email whose
/// `dedupe_key` was queued before is not queued again (returns `false`).
///
/// A new email is due at once (`next_try_at` 0): `created_at` may come from
/// a clock other than the worker's (a gateway's test clock), which must not
/// hold it back.
pub fn enqueue(tx: &Transaction<'_>, email: &NewEmail) -> Result<bool, anyhow::Error> {
    let inserted = tx
        .prepare_cached(
            "INSERT INTO emails (dedupe_key, kind, to_address, order_id, subscription_id,
                 subject, text_body, html_body, status, attempts, next_try_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', 0, 0, ?9)
             ON CONFLICT (dedupe_key) DO NOTHING",
        )?
        .execute(params![
            email.dedupe_key,
            email.kind.as_str(),
            email.to,
            email.order_id,
            email.subscription_id,
            email.rendered.subject,
            email.rendered.text,
            email.rendered.html,
            email.created_at,
        ])
        .with_context(|| format!("queuing the email {}", email.dedupe_key))?;
    Ok(inserted == 1)
}

const ROW_COLUMNS: &str = "id, kind, to_address, order_id, subscription_id, subject, status,
     attempts, last_error, created_at, next_try_at, sent_at";

fn email_row(row: &Row<'_>) -> rusqlite::Result<EmailRow> {
    let kind: String = row.get(1)?;
    let status: String = row.get(6)?;
    let invalid = |column: usize, value: String| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            format!("unknown value `{value}`").into(),
        )
    };
    Ok(EmailRow {
        id: row.get(0)?,
        kind: kind.parse().map_err(|_| invalid(1, kind))?,
        to: row.get(2)?,
        order_id: row.get(3)?,
        subscription_id: row.get(4)?,
        subject: row.get(5)?,
        status: EmailStatus::parse(&status).ok_or_else(|| invalid(6, status))?,
        attempts: row.get(7)?,
        last_error: row.get(8)?,
        created_at: row.get(9)?,
        next_try_at: row.get(10)?,
        sent_at: row.get(11)?,
    })
}

/// The emails of an order, oldest first.
pub fn for_order(conn: &Connection, order_id: &str) -> Result<Vec<EmailRow>, anyhow::Error> {
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM emails WHERE order_id = ?1 ORDER BY id"
        ))?
        .query_map([order_id], email_row)?
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading the emails of order {order_id}"))?;
    Ok(rows)
}

/// The emails of a subscription, oldest first.
pub fn for_subscription(
    conn: &Connection,
    subscription_id: &str,
) -> Result<Vec<EmailRow>, anyhow::Error> {
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM emails WHERE subscription_id = ?1 ORDER BY id"
        ))?
        .query_map([subscription_id], email_row)?
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading the emails of subscription {subscription_id}"))?;
    Ok(rows)
}

/// The latest `limit` emails, newest first (for the admin page).
pub fn recent(conn: &Connection, limit: usize) -> Result<Vec<EmailRow>, anyhow::Error> {
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM emails ORDER BY id DESC LIMIT ?1"
        ))?
        .query_map([i64::try_from(limit)?], email_row)?
        .collect::<Result<_, _>>()
        .context("reading the latest emails")?;
    Ok(rows)
}

/// A queued email, as the worker sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Queued {
    pub id: i64,
    pub dedupe_key: String,
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub attempts: u32,
    pub created_at: i64,
}

/// What is waiting to be sent.
#[derive(Debug, Clone, Default)]
pub(super) struct Due {
    /// Emails due now, oldest first.
    pub rows: Vec<Queued>,
    /// When none is due: the earliest time one will be (milliseconds since
    /// the Unix epoch), or `None` when nothing is queued at all.
    pub next_at: Option<i64>,
}

/// Up to `limit` emails due at `now`; if there are none, when the next
/// one is.
pub(super) fn due(conn: &Connection, now: i64, limit: usize) -> Result<Due, anyhow::Error> {
    let rows = conn
        .prepare_cached(
            "SELECT id, dedupe_key, kind, to_address, subject, text_body, html_body,
                 attempts, created_at
             FROM emails WHERE status = 'queued' AND next_try_at <= ?1
             ORDER BY id LIMIT ?2",
        )?
        .query_map(params![now, i64::try_from(limit)?], |row| {
            Ok(Queued {
                id: row.get(0)?,
                dedupe_key: row.get(1)?,
                kind: row.get(2)?,
                to: row.get(3)?,
                subject: row.get(4)?,
                text: row.get(5)?,
                html: row.get(6)?,
                attempts: row.get(7)?,
                created_at: row.get(8)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()
        .context("reading the emails due")?;
    if !rows.is_empty() {
        return Ok(Due {
            rows,
            next_at: None,
        });
    }
    let next_at = conn
        .prepare_cached("SELECT min(next_try_at) FROM emails WHERE status = 'queued'")?
        .query_row([], |row| row.get(0))
        .optional()?
        .flatten();
    Ok(Due { rows, next_at })
}

/// Marks an email sent (one statement, so its own transaction). Only a
/// `queued` row changes; returns whether it did.
pub(super) fn mark_sent(
    conn: &Connection,
    id: i64,
    attempts: u32,
    at: i64,
) -> Result<bool, anyhow::Error> {
    let changed = conn
        .prepare_cached(
            "UPDATE emails SET status = 'sent', sent_at = ?3, attempts = ?2, last_error = NULL
             WHERE id = ?1 AND status = 'queued'",
        )?
        .execute(params![id, attempts, at])
        .with_context(|| format!("marking email {id} sent"))?;
    Ok(changed == 1)
}

/// Records a failed attempt: the email is due again at `next_try_at`, or,
/// with `give_up`, `failed` for good.
pub(super) fn mark_failed(
    conn: &Connection,
    id: i64,
    attempts: u32,
    next_try_at: i64,
    error: &str,
    give_up: bool,
) -> Result<bool, anyhow::Error> {
    let status = if give_up {
        EmailStatus::Failed
    } else {
        EmailStatus::Queued
    };
    let changed = conn
        .prepare_cached(
            "UPDATE emails SET status = ?5, attempts = ?2, next_try_at = ?3, last_error = ?4
             WHERE id = ?1 AND status = 'queued'",
        )?
        .execute(params![id, attempts, next_try_at, error, status.as_str()])
        .with_context(|| format!("recording a failed attempt of email {id}"))?;
    Ok(changed == 1)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::mail::{EmailKind, Rendered};

    pub(crate) fn outbox() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::storage::sqlite::migrate(&mut conn).unwrap();
        conn
    }

    pub(crate) fn email(key: &str, order: Option<&str>, created_at: i64) -> NewEmail {
        NewEmail {
            dedupe_key: key.to_owned(),
            kind: EmailKind::OrderPaid,
            to: "ada@example.com".to_owned(),
            order_id: order.map(str::to_owned),
            subscription_id: None,
            rendered: Rendered {
                subject: format!("Subject of {key}"),
                text: format!("Text of {key}\n"),
                html: format!("<p>HTML of {key}</p>"),
            },
            created_at,
        }
    }

    pub(crate) fn queue(conn: &mut Connection, emails: &[NewEmail]) -> Vec<bool> {
        let tx = conn.transaction().unwrap();
        let queued = emails.iter().map(|e| enqueue(&tx, e).unwrap()).collect();
        tx.commit().unwrap();
        queued
    }

    #[test]
    fn enqueue_dedupes_by_key() {
        let mut conn = outbox();
        assert_eq!(
            queue(
                &mut conn,
                &[
                    email("ord_1/paid", Some("ord_1"), 10),
                    email("ord_2/paid", None, 11)
                ]
            ),
            [true, true]
        );
        let mut again = email("ord_1/paid", Some("ord_1"), 20);
        again.rendered.subject = "another subject".into();
        assert_eq!(queue(&mut conn, &[again]), [false]);

        let rows = for_order(&conn, "ord_1").unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row.subject, "Subject of ord_1/paid", "the first one stays");
        assert_eq!(row.kind, EmailKind::OrderPaid);
        assert_eq!(row.status, EmailStatus::Queued);
        assert_eq!((row.attempts, row.created_at, row.sent_at), (0, 10, None));
        assert_eq!(recent(&conn, 10).unwrap().len(), 2);
        assert_eq!(recent(&conn, 1).unwrap()[0].order_id, None, "newest first");
    }

    #[test]
    fn a_rolled_back_transaction_queues_nothing() {
        let mut conn = outbox();
        let tx = conn.transaction().unwrap();
        assert!(enqueue(&tx, &email("k", Some("ord_1"), 1)).unwrap());
        drop(tx);
        assert!(recent(&conn, 10).unwrap().is_empty());
    }

    #[test]
    fn due_rows_come_oldest_first_and_marks_settle_them() {
        let mut conn = outbox();
        queue(
            &mut conn,
            &[
                email("a", None, 100),
                email("b", None, 100),
                email("c", None, 100),
            ],
        );
        // New emails are due at once, whatever their `created_at`.
        let due_now = due(&conn, 1, 10).unwrap();
        let keys: Vec<&str> = due_now.rows.iter().map(|r| r.dedupe_key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"]);

        let [a, b, c] = [0, 1, 2].map(|i| due_now.rows[i].id);
        assert!(mark_sent(&conn, a, 1, 150).unwrap());
        assert!(!mark_sent(&conn, a, 1, 160).unwrap(), "sent once");
        assert!(mark_failed(&conn, b, 1, 500, "connection refused", false).unwrap());
        assert!(mark_failed(&conn, c, 10, 900, "550 no such user", true).unwrap());

        let waiting = due(&conn, 200, 10).unwrap();
        assert!(waiting.rows.is_empty());
        assert_eq!(waiting.next_at, Some(500));
        let later = due(&conn, 500, 10).unwrap();
        assert_eq!(later.rows.len(), 1);
        assert_eq!((later.rows[0].id, later.rows[0].attempts), (b, 1));

        let rows = recent(&conn, 10).unwrap();
        let by_id = |id| rows.iter().find(|r| r.id == id).unwrap();
        assert_eq!(by_id(a).status, EmailStatus::Sent);
        assert_eq!(by_id(a).sent_at, Some(150));
        assert_eq!(by_id(b).last_error.as_deref(), Some("connection refused"));
        assert_eq!(by_id(c).status, EmailStatus::Failed);
        assert!(
            !mark_sent(&conn, c, 11, 1000).unwrap(),
            "failed stays failed"
        );
        assert_eq!(due(&conn, i64::MAX, 10).unwrap().rows.len(), 1);
    }

    #[test]
    fn nothing_queued_means_nothing_to_wake_for() {
        let conn = outbox();
        let waiting = due(&conn, 0, 10).unwrap();
        assert!(waiting.rows.is_empty());
        assert_eq!(waiting.next_at, None);
    }

    #[test]
    fn the_worker_queries_use_the_partial_index() {
        let conn = outbox();
        for sql in [
            "SELECT id FROM emails WHERE status = 'queued' AND next_try_at <= 1
             ORDER BY id LIMIT 10",
            "SELECT min(next_try_at) FROM emails WHERE status = 'queued'",
        ] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map([], |row| row.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                plan.iter().any(|step| step.contains("emails_due")),
                "{sql}: {plan:?}"
            );
        }
    }
}
