//! The inbox queries of the PayPal postback: which messages are due, when
//! the next one falls due, and recording what a postback came to.
//!
//! Due messages are read through the `inbox_waiting` partial index (status,
//! id), oldest first; the index holds only messages still waiting, so the
//! scan never walks the settled history.

use ipn_core::paypal::Answer;
use rusqlite::{Connection, Transaction, params};

use super::{InboxStatus, StoreError, Unverified, Verification};

/// What is waiting for a postback.
#[derive(Debug, Clone, Default)]
pub struct Due {
    /// Messages due now, oldest first.
    pub rows: Vec<Unverified>,
    /// When none is due: the earliest time one will be (milliseconds since
    /// the Unix epoch), or `None` when no message waits at all.
    pub next_at: Option<i64>,
}

/// Up to `limit` messages whose postback is due at `now`; if there are
/// none, when the next one is.
pub fn due(conn: &Connection, now: i64, limit: usize) -> Result<Due, StoreError> {
    // The status test is written as the index's own condition so that
    // SQLite sees the partial index applies.
    let rows = conn
        .prepare_cached(
            "SELECT id, body, postback_attempts FROM inbox
             WHERE status IN ('received', 'unverified', 'verified') AND status = 'unverified'
               AND next_postback_at <= ?1
             ORDER BY id LIMIT ?2",
        )?
        .query_map(params![now, i64::try_from(limit)?], |row| {
            Ok(Unverified {
                id: row.get(0)?,
                body: row.get(1)?,
                attempts: row.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    if !rows.is_empty() {
        return Ok(Due {
            rows,
            next_at: None,
        });
    }
    let next_at = conn
        .prepare_cached(
            "SELECT min(next_postback_at) FROM inbox
             WHERE status IN ('received', 'unverified', 'verified') AND status = 'unverified'",
        )?
        .query_row([], |row| row.get(0))?;
    Ok(Due { rows, next_at })
}

/// Records one outcome; only a row still `unverified` changes, so an
/// outcome recorded twice (or for a row settled meanwhile) is harmless.
/// Returns whether the row changed.
pub fn record(tx: &Transaction<'_>, outcome: &Verification) -> Result<bool, StoreError> {
    let changed = match outcome {
        Verification::Answered { id, answer, at } => {
            let status = match answer {
                Answer::Verified => InboxStatus::Verified,
                Answer::Invalid => InboxStatus::Invalid,
            };
            tx.prepare_cached(
                "UPDATE inbox SET status = ?2, verification = ?3, verified_at = ?4,
                     postback_error = NULL
                 WHERE id = ?1 AND status = 'unverified'",
            )?
            .execute(params![id, status.as_str(), answer.as_str(), at])?
        }
        Verification::Failed {
            id,
            attempts,
            next_try_at,
            error,
        } => tx
            .prepare_cached(
                "UPDATE inbox SET postback_attempts = ?2, next_postback_at = ?3,
                     postback_error = ?4
                 WHERE id = ?1 AND status = 'unverified'",
            )?
            .execute(params![id, attempts, next_try_at, error])?,
    };
    Ok(changed == 1)
}

#[cfg(test)]
mod tests {
    use ipn_core::Dialect;

    use super::*;
    use crate::storage::{NewMessage, Stored, sqlite};

    fn paypal(body: &[u8]) -> NewMessage {
        NewMessage {
            dialect: Dialect::Paypal,
            webhook_id: None,
            headers: Vec::new(),
            body: body.to_vec(),
            status: InboxStatus::Unverified,
            received_at: 1,
        }
    }

    fn inbox() -> (Connection, Vec<i64>) {
        let mut conn = Connection::open_in_memory().unwrap();
        sqlite::migrate(&mut conn).unwrap();
        let tx = conn.transaction().unwrap();
        let ids = [b"a=1", b"a=2", b"a=3"]
            .iter()
            .map(|body| match sqlite::insert(&tx, &paypal(*body)).unwrap() {
                Stored::New(id) => id,
                other => panic!("{other:?}"),
            })
            .collect();
        tx.commit().unwrap();
        (conn, ids)
    }

    fn apply(conn: &mut Connection, outcome: Verification) -> bool {
        let tx = conn.transaction().unwrap();
        let changed = record(&tx, &outcome).unwrap();
        tx.commit().unwrap();
        changed
    }

    #[test]
    fn due_rows_come_oldest_first_and_backoff_defers_them() {
        let (mut conn, ids) = inbox();
        let due_now = due(&conn, 100, 10).unwrap();
        let got: Vec<i64> = due_now.rows.iter().map(|r| r.id).collect();
        assert_eq!(got, ids);
        assert_eq!(due(&conn, 100, 2).unwrap().rows.len(), 2);

        for (id, at) in [(ids[0], 500), (ids[1], 300)] {
            assert!(apply(
                &mut conn,
                Verification::Failed {
                    id,
                    attempts: 1,
                    next_try_at: at,
                    error: "refused".into(),
                }
            ));
        }
        assert!(apply(
            &mut conn,
            Verification::Answered {
                id: ids[2],
                answer: Answer::Invalid,
                at: 100,
            }
        ));
        let waiting = due(&conn, 100, 10).unwrap();
        assert!(waiting.rows.is_empty());
        assert_eq!(waiting.next_at, Some(300));
        let later = due(&conn, 300, 10).unwrap();
        assert_eq!(later.rows.len(), 1);
        assert_eq!(later.rows[0].id, ids[1]);
        assert_eq!(later.rows[0].attempts, 1);
    }

    #[test]
    fn an_answer_settles_a_row_once() {
        let (mut conn, ids) = inbox();
        let verified = Verification::Answered {
            id: ids[0],
            answer: Answer::Verified,
            at: 42,
        };
        assert!(apply(&mut conn, verified.clone()));
        assert!(!apply(&mut conn, verified), "already settled");
        assert!(!apply(
            &mut conn,
            Verification::Answered {
                id: ids[0],
                answer: Answer::Invalid,
                at: 43,
            }
        ));
        let row: (String, String, i64) = conn
            .query_row(
                "SELECT status, verification, verified_at FROM inbox WHERE id = ?1",
                [ids[0]],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        assert_eq!(row, ("verified".into(), "VERIFIED".into(), 42));
    }

    #[test]
    fn no_waiting_row_means_nothing_to_wake_for() {
        let mut conn = Connection::open_in_memory().unwrap();
        sqlite::migrate(&mut conn).unwrap();
        let waiting = due(&conn, 0, 10).unwrap();
        assert!(waiting.rows.is_empty());
        assert_eq!(waiting.next_at, None);
    }

    #[test]
    fn the_queries_use_the_partial_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        sqlite::migrate(&mut conn).unwrap();
        for sql in [
            "SELECT id FROM inbox
             WHERE status IN ('received', 'unverified', 'verified') AND status = 'unverified'
               AND next_postback_at <= 1 ORDER BY id LIMIT 10",
            "SELECT min(next_postback_at) FROM inbox
             WHERE status IN ('received', 'unverified', 'verified') AND status = 'unverified'",
        ] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map([], |row| row.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                plan.iter().any(|step| step.contains("inbox_waiting")),
                "{sql}: {plan:?}"
            );
        }
    }
}
