//! The customer email outbox: what the handler queues, in the transaction
//! of the change that calls for it; what the mail worker reads and marks;
//! what the API and the admin pages list.

use super::StoreError;
use crate::model::{EmailKind, Rendered};

/// An email to queue.
#[derive(Debug, Clone)]
pub struct NewEmail {
    /// What makes this email unique, e.g. `"order_paid:ord_…"`: an email
    /// whose key was queued before is not queued again, so a message
    /// handled twice cannot email twice.
    pub dedupe_key: String,
    pub kind: EmailKind,
    /// The recipient's address (`a@example.com` or `Name <a@example.com>`).
    /// Not checked here: a bad address must not roll back the state change;
    /// the worker marks such an email `failed`.
    pub to: String,
    pub order_id: Option<String>,
    pub subscription_id: Option<String>,
    pub rendered: Rendered,
    /// Milliseconds since the Unix epoch; also the message's `Date`.
    pub created_at: i64,
}

/// A queued email, as the worker sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEmail {
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
pub struct EmailsDue {
    /// Emails due now, oldest first.
    pub rows: Vec<QueuedEmail>,
    /// When none is due: the earliest time one will be (milliseconds since
    /// the Unix epoch), or `None` when nothing is queued at all.
    pub next_at: Option<i64>,
}

/// A failed attempt at sending a queued email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedAttempt {
    pub id: i64,
    /// Attempts made so far, this one included.
    pub attempts: u32,
    /// When the next attempt is due (ms), unless given up.
    pub next_try_at: i64,
    pub error: String,
    /// The email is `failed` for good.
    pub give_up: bool,
}

pub trait EmailReads {
    /// Whether an email with this key was ever queued.
    fn email_queued(&self, dedupe_key: &str) -> Result<bool, StoreError>;
    /// Up to `limit` emails due at `now`, oldest first; if there are none,
    /// when the next one is.
    fn emails_due(&self, now: i64, limit: usize) -> Result<EmailsDue, StoreError>;
}

pub trait EmailWrites {
    /// Queues one email, due at once; one whose `dedupe_key` was queued
    /// before is not queued again (`false`).
    fn enqueue(&self, email: &NewEmail) -> Result<bool, StoreError>;
    /// Marks a queued email sent; only a `queued` row changes, and the
    /// answer says whether it did.
    fn mark_sent(&self, id: i64, attempts: u32, at: i64) -> Result<bool, StoreError>;
    /// Records a failed attempt at a queued email: due again at its
    /// `next_try_at`, or, given up, `failed` for good. Only a `queued` row
    /// changes, and the answer says whether it did.
    fn mark_failed(&self, attempt: &FailedAttempt) -> Result<bool, StoreError>;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{EmailKind, EmailStatus, Rendered};
    use crate::storage::Store;
    use crate::storage::testing::each_store;

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
        each_store("enqueue_dedupes_by_key", |store| {
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
        });
    }

    #[test]
    fn a_rolled_back_transaction_queues_nothing() {
        each_store("a_rolled_back_transaction_queues_nothing", |store| {
            let failed = store.write(&mut |tx| {
                assert!(tx.enqueue(&email("k", Some("ord_1"), 1))?);
                anyhow::bail!("the state change failed")
            });
            assert!(failed.is_err());
            assert!(store.read_with(|r| r.recent_emails(10)).unwrap().is_empty());
        });
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
        each_store(
            "due_rows_come_oldest_first_and_marks_settle_them",
            |store| {
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
            },
        );
    }

    #[test]
    fn nothing_queued_means_nothing_to_wake_for() {
        each_store("nothing_queued_means_nothing_to_wake_for", |store| {
            let waiting = store.read_with(|r| r.emails_due(0, 10)).unwrap();
            assert!(waiting.rows.is_empty());
            assert_eq!(waiting.next_at, None);
        });
    }
}
