//! The `emails` table. Due emails are read through the `emails_due` partial
//! index (`next_try_at`), which holds only `queued` rows, so the worker's
//! scan never walks the sent history.

use anyhow::Context as _;
use rusqlite::{OptionalExtension as _, params};

use super::{Sql, limit};
use crate::model::EmailStatus;
use crate::storage::StoreError;
use crate::storage::emails::{
    EmailReads, EmailWrites, EmailsDue, FailedAttempt, NewEmail, QueuedEmail,
};

const DUE: &str = "SELECT id, dedupe_key, kind, to_address, subject, text_body, html_body,
         attempts, created_at
     FROM emails WHERE status = 'queued' AND next_try_at <= ?1
     ORDER BY id LIMIT ?2";
const NEXT_DUE: &str = "SELECT min(next_try_at) FROM emails WHERE status = 'queued'";

impl EmailReads for Sql<'_> {
    fn email_queued(&self, dedupe_key: &str) -> Result<bool, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM emails WHERE dedupe_key = ?1)")?
            .query_row([dedupe_key], |row| row.get(0))?)
    }

    fn emails_due(&self, now: i64, max: usize) -> Result<EmailsDue, StoreError> {
        let rows = self
            .0
            .prepare_cached(DUE)?
            .query_map(params![now, limit(max)], |row| {
                Ok(QueuedEmail {
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
            return Ok(EmailsDue {
                rows,
                next_at: None,
            });
        }
        let next_at = self
            .0
            .prepare_cached(NEXT_DUE)?
            .query_row([], |row| row.get(0))
            .optional()?
            .flatten();
        Ok(EmailsDue { rows, next_at })
    }
}

impl EmailWrites for Sql<'_> {
    fn enqueue(&self, email: &NewEmail) -> Result<bool, StoreError> {
        // Due at once (`next_try_at` 0): `created_at` may come from a clock
        // other than the worker's (a gateway's test clock), which must not
        // hold it back.
        let inserted = self
            .0
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

    fn mark_sent(&self, id: i64, attempts: u32, at: i64) -> Result<bool, StoreError> {
        let changed = self
            .0
            .prepare_cached(
                "UPDATE emails SET status = 'sent', sent_at = ?3, attempts = ?2,
                     last_error = NULL
                 WHERE id = ?1 AND status = 'queued'",
            )?
            .execute(params![id, attempts, at])
            .with_context(|| format!("marking email {id} sent"))?;
        Ok(changed == 1)
    }

    fn mark_failed(&self, attempt: &FailedAttempt) -> Result<bool, StoreError> {
        let FailedAttempt {
            id,
            attempts,
            next_try_at,
            ref error,
            give_up,
        } = *attempt;
        let status = if give_up {
            EmailStatus::Failed
        } else {
            EmailStatus::Queued
        };
        let changed = self
            .0
            .prepare_cached(
                "UPDATE emails SET status = ?5, attempts = ?2, next_try_at = ?3, last_error = ?4
                 WHERE id = ?1 AND status = 'queued'",
            )?
            .execute(params![id, attempts, next_try_at, error, status.as_str()])
            .with_context(|| format!("recording a failed attempt of email {id}"))?;
        Ok(changed == 1)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::tests::{plan, store};
    use super::*;
    use crate::model::{EmailKind, Rendered};
    use crate::storage::Store;

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

    /// Queues `emails` in one transaction; whether each was new.
    pub(crate) fn queue(store: &dyn Store, emails: &[NewEmail]) -> Vec<bool> {
        store
            .write_with(|tx| emails.iter().map(|email| tx.enqueue(email)).collect())
            .unwrap()
    }

    #[test]
    fn enqueue_dedupes_by_key() {
        let (_dir, sqlite) = store();
        let store: &dyn Store = &sqlite;
        let first = [
            email("ord_1/paid", Some("ord_1"), 10),
            email("ord_2/paid", None, 11),
        ];
        assert_eq!(queue(store, &first), [true, true]);
        let mut again = email("ord_1/paid", Some("ord_1"), 20);
        again.rendered.subject = "another subject".into();
        assert_eq!(queue(store, &[again]), [false]);

        let rows = store.read_with(|r| r.order_emails("ord_1")).unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row.subject, "Subject of ord_1/paid", "the first one stays");
        assert_eq!(row.kind, EmailKind::OrderPaid);
        assert_eq!(row.status, EmailStatus::Queued);
        assert_eq!((row.attempts, row.created_at, row.sent_at), (0, 10, None));
        let recent = |n| store.read_with(move |r| r.recent_emails(n)).unwrap();
        assert_eq!(recent(10).len(), 2);
        assert_eq!(recent(1)[0].order_id, None, "newest first");
        assert!(store.read_with(|r| r.email_queued("ord_2/paid")).unwrap());
    }

    #[test]
    fn a_rolled_back_transaction_queues_nothing() {
        let (_dir, sqlite) = store();
        let store: &dyn Store = &sqlite;
        let failed = store.write(&mut |tx| {
            assert!(tx.enqueue(&email("k", Some("ord_1"), 1))?);
            anyhow::bail!("the state change failed")
        });
        assert!(failed.is_err());
        assert!(store.read_with(|r| r.recent_emails(10)).unwrap().is_empty());
    }

    fn failed(
        id: i64,
        attempts: u32,
        next_try_at: i64,
        error: &str,
        give_up: bool,
    ) -> FailedAttempt {
        FailedAttempt {
            id,
            attempts,
            next_try_at,
            error: error.to_owned(),
            give_up,
        }
    }

    #[test]
    fn due_rows_come_oldest_first_and_marks_settle_them() {
        let (_dir, sqlite) = store();
        let store: &dyn Store = &sqlite;
        queue(
            store,
            &[
                email("a", None, 100),
                email("b", None, 100),
                email("c", None, 100),
            ],
        );
        let due = |now| store.read_with(move |r| r.emails_due(now, 10)).unwrap();
        // New emails are due at once, whatever their `created_at`.
        let due_now = due(1);
        let keys: Vec<&str> = due_now.rows.iter().map(|r| r.dedupe_key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"]);

        let [a, b, c] = [0, 1, 2].map(|i| due_now.rows[i].id);
        store
            .write_with(|tx| {
                assert!(tx.mark_sent(a, 1, 150)?);
                assert!(!tx.mark_sent(a, 1, 160)?, "sent once");
                assert!(tx.mark_failed(&failed(b, 1, 500, "connection refused", false))?);
                assert!(tx.mark_failed(&failed(c, 10, 900, "550 no such user", true))?);
                Ok(())
            })
            .unwrap();

        let waiting = due(200);
        assert!(waiting.rows.is_empty());
        assert_eq!(waiting.next_at, Some(500));
        let later = due(500);
        assert_eq!(later.rows.len(), 1);
        assert_eq!((later.rows[0].id, later.rows[0].attempts), (b, 1));

        let rows = store.read_with(|r| r.recent_emails(10)).unwrap();
        let by_id = |id| rows.iter().find(|r| r.id == id).unwrap();
        assert_eq!(by_id(a).status, EmailStatus::Sent);
        assert_eq!(by_id(a).sent_at, Some(150));
        assert_eq!(by_id(b).last_error.as_deref(), Some("connection refused"));
        assert_eq!(by_id(c).status, EmailStatus::Failed);
        let again = store.write_with(|tx| tx.mark_sent(c, 11, 1000)).unwrap();
        assert!(!again, "failed stays failed");
        assert_eq!(due(i64::MAX).rows.len(), 1);
    }

    #[test]
    fn nothing_queued_means_nothing_to_wake_for() {
        let (_dir, sqlite) = store();
        let store: &dyn Store = &sqlite;
        let waiting = store.read_with(|r| r.emails_due(0, 10)).unwrap();
        assert!(waiting.rows.is_empty());
        assert_eq!(waiting.next_at, None);
    }

    #[test]
    fn the_worker_queries_use_the_partial_index() {
        let (_dir, sqlite) = store();
        for sql in [DUE, NEXT_DUE] {
            let sql = sql.replace("?1", "1").replace("?2", "10");
            let plan = plan(&sqlite, &sql);
            assert!(
                plan.iter().any(|step| step.contains("emails_due")),
                "{sql}: {plan:?}"
            );
        }
    }
}
