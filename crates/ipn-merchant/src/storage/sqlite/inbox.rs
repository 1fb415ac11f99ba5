//! The `inbox` table and reconciliation's cursor.
//!
//! Messages waiting for a postback are read through the `inbox_waiting`
//! partial index (status, id) and those waiting for the handler through
//! `inbox_ready` (id): each holds only messages still waiting, so no scan
//! walks the settled history.

use anyhow::Context as _;
use ipn_core::Dialect;
use ipn_core::paypal::Answer;
use ipn_storage::sqlite::parse_column;
use rusqlite::{OptionalExtension as _, params};

use super::{Sql, limit};
use crate::storage::StoreError;
use crate::storage::inbox::{
    Handled, InboxId, InboxReads, InboxStatus, InboxWrites, NewMessage, Outcome, PostbacksDue,
    Stored, Unverified, Verification, Waiting,
};

/// Messages ready for the handler, oldest first. The condition is exactly
/// the `inbox_ready` index's, so SQLite walks that index in id order and
/// stops at the limit.
const WAITING: &str = "SELECT id, dialect, body, handler_attempts FROM inbox
     WHERE status IN ('received', 'verified') AND handler_retry_at <= ?1
     ORDER BY id LIMIT ?2";

/// The status test is written as the `inbox_waiting` index's own condition
/// so that SQLite sees the partial index applies.
const POSTBACKS_DUE: &str = "SELECT id, body, postback_attempts FROM inbox
     WHERE status IN ('received', 'unverified', 'verified') AND status = 'unverified'
       AND next_postback_at <= ?1
     ORDER BY id LIMIT ?2";
const NEXT_POSTBACK: &str = "SELECT min(next_postback_at) FROM inbox
     WHERE status IN ('received', 'unverified', 'verified') AND status = 'unverified'";

impl InboxReads for Sql<'_> {
    fn postbacks_due(&self, now: i64, max: usize) -> Result<PostbacksDue, StoreError> {
        let rows = self
            .0
            .prepare_cached(POSTBACKS_DUE)?
            .query_map(params![now, limit(max)], |row| {
                Ok(Unverified {
                    id: row.get(0)?,
                    body: row.get(1)?,
                    attempts: row.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        if !rows.is_empty() {
            return Ok(PostbacksDue {
                rows,
                next_at: None,
            });
        }
        let next_at = self
            .0
            .prepare_cached(NEXT_POSTBACK)?
            .query_row([], |row| row.get(0))?;
        Ok(PostbacksDue { rows, next_at })
    }

    fn waiting(&self, now: i64, max: usize) -> Result<Vec<Waiting>, StoreError> {
        let mut statement = self.0.prepare_cached(WAITING)?;
        let rows = statement.query_map(params![now, limit(max)], |row| {
            Ok(Waiting {
                id: row.get(0)?,
                dialect: parse_column(row, 1, str::parse::<Dialect>)?,
                body: row.get(2)?,
                attempts: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn next_retry(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT min(handler_retry_at) FROM inbox
                 WHERE status IN ('received', 'verified') AND handler_attempts > 0",
            )?
            .query_row([], |row| row.get(0))?)
    }

    fn waiting_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT count(*) FROM inbox WHERE status IN ('received', 'verified')")?
            .query_row([], |row| row.get(0))?)
    }

    fn last_handled_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT max(processed_at) FROM inbox")?
            .query_row([], |row| row.get(0))?)
    }
}

impl InboxWrites for Sql<'_> {
    fn insert_message(&self, message: &NewMessage) -> Result<Stored, StoreError> {
        let headers = serde_json::Value::Object(
            message
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), serde_json::Value::from(value.as_str())))
                .collect(),
        );
        let inserted = self
            .0
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
            return Ok(Stored::New(self.0.last_insert_rowid()));
        }
        let earlier = self
            .0
            .prepare_cached("SELECT id FROM inbox WHERE webhook_id = ?1")?
            .query_row([&message.webhook_id], |row| row.get(0))
            .optional()?
            .context("an inbox insert changed nothing, yet no row holds its webhook-id")?;
        Ok(Stored::Duplicate(earlier))
    }

    fn record_postback(&self, outcome: &Verification) -> Result<bool, StoreError> {
        let changed = match outcome {
            Verification::Answered { id, answer, at } => {
                let status = match answer {
                    Answer::Verified => InboxStatus::Verified,
                    Answer::Invalid => InboxStatus::Invalid,
                };
                self.0
                    .prepare_cached(
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
            } => self
                .0
                .prepare_cached(
                    "UPDATE inbox SET postback_attempts = ?2, next_postback_at = ?3,
                         postback_error = ?4
                     WHERE id = ?1 AND status = 'unverified'",
                )?
                .execute(params![id, attempts, next_try_at, error])?,
        };
        Ok(changed == 1)
    }

    fn mark_handled(
        &self,
        id: InboxId,
        outcome: Outcome,
        handled: &Handled<'_>,
        now: i64,
    ) -> Result<(), StoreError> {
        let status = if outcome == Outcome::Failed {
            "failed"
        } else {
            "processed"
        };
        self.0
            .prepare_cached(
                "UPDATE inbox SET status = ?2, outcome = ?3, event_type = ?4, order_id = ?5,
                     subscription_id = ?6, outcome_detail = ?7, processed_at = ?8
                 WHERE id = ?1",
            )?
            .execute(params![
                id,
                status,
                outcome.as_str(),
                handled.event_type,
                handled.order_id,
                handled.subscription_id,
                handled.detail,
                now
            ])?;
        Ok(())
    }

    fn record_failure(
        &self,
        id: InboxId,
        attempts: u32,
        error: &str,
        retry_at: i64,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE inbox SET handler_attempts = ?2, outcome_detail = ?3,
                     handler_retry_at = ?4
                 WHERE id = ?1",
            )?
            .execute(params![id, attempts, error, retry_at])?;
        Ok(())
    }

    fn requeue(&self, id: InboxId) -> Result<bool, StoreError> {
        let changed = self
            .0
            .prepare_cached(
                "UPDATE inbox SET
                     status = CASE dialect WHEN 'paypal' THEN 'verified' ELSE 'received' END,
                     handler_attempts = 0, handler_retry_at = 0, outcome = NULL
                 WHERE id = ?1 AND status = 'failed'",
            )?
            .execute([id])?;
        Ok(changed == 1)
    }

    fn set_outcome(
        &self,
        id: InboxId,
        outcome: Outcome,
        order_id: &str,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE inbox SET outcome = ?2, order_id = ?3, outcome_detail = ?4 WHERE id = ?1",
            )?
            .execute(params![id, outcome.as_str(), order_id, detail])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{plan, store};
    use super::*;

    #[test]
    fn the_waiting_queries_use_their_partial_indexes() {
        let (_dir, sqlite) = store();
        for (sql, index) in [
            (POSTBACKS_DUE, "inbox_waiting"),
            (NEXT_POSTBACK, "inbox_waiting"),
            (WAITING, "inbox_ready"),
        ] {
            let sql = sql.replace("?1", "1").replace("?2", "10");
            let plan = plan(&sqlite, &sql);
            assert!(
                plan.iter().any(|step| step.contains(index)),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.contains("TEMP B-TREE")),
                "no sort: {plan:?}"
            );
        }
    }
}
