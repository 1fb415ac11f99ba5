//! The `inbox` table.
//!
//! Messages waiting for a postback are read through the `inbox_waiting`
//! partial index (status, id) and those waiting for the handler through
//! `inbox_ready` (id): each holds only messages still waiting, so no scan
//! walks the settled history.

use anyhow::Context as _;
use ipn_core::Dialect;
use ipn_core::paypal::Answer;
use ipn_storage::postgres::{opt_text, parse_column, text};

use super::{Pg, limit, to_u32};
use crate::storage::StoreError;
use crate::storage::inbox::{
    Handled, InboxId, InboxReads, InboxStatus, InboxWrites, NewMessage, Outcome, PostbacksDue,
    Stored, Unverified, Verification, Waiting,
};

/// Messages ready for the handler, oldest first: the `inbox_ready` index's
/// condition, walked in id order up to the limit.
pub(super) const WAITING: &str = "SELECT id, dialect, body, handler_attempts FROM inbox
     WHERE status IN ('received', 'verified') AND handler_retry_at <= $1
     ORDER BY id LIMIT $2";

/// PayPal messages whose postback is due, through `inbox_waiting`.
pub(super) const POSTBACKS_DUE: &str = "SELECT id, body, postback_attempts FROM inbox
     WHERE status = 'unverified' AND next_postback_at <= $1
     ORDER BY id LIMIT $2";
pub(super) const NEXT_POSTBACK: &str =
    "SELECT min(next_postback_at) FROM inbox WHERE status = 'unverified'";

impl InboxReads for Pg<'_> {
    fn postbacks_due(&self, now: i64, max: usize) -> Result<PostbacksDue, StoreError> {
        let rows = self
            .0
            .query(POSTBACKS_DUE, &[&now, &limit(max)])?
            .iter()
            .map(|row| {
                Ok(Unverified {
                    id: row.try_get(0)?,
                    body: row.try_get(1)?,
                    attempts: to_u32(row.try_get(2)?, "inbox.postback_attempts")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        if !rows.is_empty() {
            return Ok(PostbacksDue {
                rows,
                next_at: None,
            });
        }
        let next_at = self.0.query_one(NEXT_POSTBACK, &[])?.try_get(0)?;
        Ok(PostbacksDue { rows, next_at })
    }

    fn waiting(&self, now: i64, max: usize) -> Result<Vec<Waiting>, StoreError> {
        self.0
            .query(WAITING, &[&now, &limit(max)])?
            .iter()
            .map(|row| {
                Ok(Waiting {
                    id: row.try_get(0)?,
                    dialect: parse_column(row, 1, str::parse::<Dialect>)?,
                    body: row.try_get(2)?,
                    attempts: to_u32(row.try_get(3)?, "inbox.handler_attempts")?,
                })
            })
            .collect()
    }

    fn next_retry(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .0
            .query_one(
                "SELECT min(handler_retry_at) FROM inbox
                 WHERE status IN ('received', 'verified') AND handler_attempts > 0",
                &[],
            )?
            .try_get(0)?)
    }

    fn waiting_count(&self) -> Result<u64, StoreError> {
        let count: i64 = self
            .0
            .query_one(
                "SELECT count(*) FROM inbox WHERE status IN ('received', 'verified')",
                &[],
            )?
            .try_get(0)?;
        Ok(u64::try_from(count)?)
    }

    fn last_handled_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .0
            .query_one("SELECT max(processed_at) FROM inbox", &[])?
            .try_get(0)?)
    }
}

impl InboxWrites for Pg<'_> {
    fn insert_message(&self, message: &NewMessage) -> Result<Stored, StoreError> {
        // NUL in a header is escaped by JSON, so only the id needs `text`.
        let headers = serde_json::Value::Object(
            message
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), serde_json::Value::from(value.as_str())))
                .collect(),
        );
        let webhook_id = opt_text(message.webhook_id.as_deref());
        let inserted = self.0.query_opt(
            "INSERT INTO inbox (received_at, dialect, webhook_id, headers, body, status)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT DO NOTHING
             RETURNING id",
            &[
                &message.received_at,
                &message.dialect.as_str(),
                &webhook_id,
                &headers.to_string(),
                &message.body,
                &message.status.as_str(),
            ],
        )?;
        if let Some(row) = inserted {
            return Ok(Stored::New(row.try_get(0)?));
        }
        let earlier = self
            .0
            .query_opt("SELECT id FROM inbox WHERE webhook_id = $1", &[&webhook_id])?
            .context("an inbox insert changed nothing, yet no row holds its webhook-id")?
            .try_get(0)?;
        Ok(Stored::Duplicate(earlier))
    }

    fn record_postback(&self, outcome: &Verification) -> Result<bool, StoreError> {
        let changed = match outcome {
            Verification::Answered { id, answer, at } => {
                let status = match answer {
                    Answer::Verified => InboxStatus::Verified,
                    Answer::Invalid => InboxStatus::Invalid,
                };
                self.0.execute(
                    "UPDATE inbox SET status = $2, verification = $3, verified_at = $4,
                         postback_error = NULL
                     WHERE id = $1 AND status = 'unverified'",
                    &[id, &status.as_str(), &answer.as_str(), at],
                )?
            }
            Verification::Failed {
                id,
                attempts,
                next_try_at,
                error,
            } => self.0.execute(
                "UPDATE inbox SET postback_attempts = $2, next_postback_at = $3,
                     postback_error = $4
                 WHERE id = $1 AND status = 'unverified'",
                &[id, &i64::from(*attempts), next_try_at, &text(error)],
            )?,
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
        self.0.execute(
            "UPDATE inbox SET status = $2, outcome = $3, event_type = $4, order_id = $5,
                 subscription_id = $6, outcome_detail = $7, processed_at = $8
             WHERE id = $1",
            &[
                &id,
                &status,
                &outcome.as_str(),
                &opt_text(handled.event_type),
                &opt_text(handled.order_id),
                &opt_text(handled.subscription_id),
                &opt_text(handled.detail),
                &now,
            ],
        )?;
        Ok(())
    }

    fn record_failure(
        &self,
        id: InboxId,
        attempts: u32,
        error: &str,
        retry_at: i64,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE inbox SET handler_attempts = $2, outcome_detail = $3,
                 handler_retry_at = $4
             WHERE id = $1",
            &[&id, &i64::from(attempts), &text(error), &retry_at],
        )?;
        Ok(())
    }

    fn requeue(&self, id: InboxId) -> Result<bool, StoreError> {
        let changed = self.0.execute(
            "UPDATE inbox SET
                 status = CASE dialect WHEN 'paypal' THEN 'verified' ELSE 'received' END,
                 handler_attempts = 0, handler_retry_at = 0, outcome = NULL
             WHERE id = $1 AND status = 'failed'",
            &[&id],
        )?;
        Ok(changed == 1)
    }

    fn set_outcome(
        &self,
        id: InboxId,
        outcome: Outcome,
        order_id: &str,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE inbox SET outcome = $2, order_id = $3, outcome_detail = $4 WHERE id = $1",
            &[&id, &outcome.as_str(), &text(order_id), &opt_text(detail)],
        )?;
        Ok(())
    }
}
