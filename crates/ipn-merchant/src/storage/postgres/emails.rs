//! The `emails` table. Due emails are read through the `emails_due` partial
//! index (`next_try_at`), which holds only `queued` rows, so the worker's
//! scan never walks the sent history.

use anyhow::Context as _;
use ipn_storage::postgres::{opt_text, text};

use super::{Pg, limit, to_u32};
use crate::model::EmailStatus;
use crate::storage::StoreError;
use crate::storage::emails::{
    EmailReads, EmailWrites, EmailsDue, FailedAttempt, NewEmail, QueuedEmail,
};

pub(super) const DUE: &str = "SELECT id, dedupe_key, kind, to_address, subject, text_body,
         html_body, attempts, created_at
     FROM emails WHERE status = 'queued' AND next_try_at <= $1
     ORDER BY id LIMIT $2";
pub(super) const NEXT_DUE: &str = "SELECT min(next_try_at) FROM emails WHERE status = 'queued'";

impl EmailReads for Pg<'_> {
    fn email_queued(&self, dedupe_key: &str) -> Result<bool, StoreError> {
        Ok(self
            .0
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM emails WHERE dedupe_key = $1)",
                &[&text(dedupe_key)],
            )?
            .try_get(0)?)
    }

    fn emails_due(&self, now: i64, max: usize) -> Result<EmailsDue, StoreError> {
        let rows = self
            .0
            .query(DUE, &[&now, &limit(max)])?
            .iter()
            .map(|row| {
                Ok(QueuedEmail {
                    id: row.try_get(0)?,
                    dedupe_key: row.try_get(1)?,
                    kind: row.try_get(2)?,
                    to: row.try_get(3)?,
                    subject: row.try_get(4)?,
                    text: row.try_get(5)?,
                    html: row.try_get(6)?,
                    attempts: to_u32(row.try_get(7)?, "emails.attempts")?,
                    created_at: row.try_get(8)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()
            .context("reading the emails due")?;
        if !rows.is_empty() {
            return Ok(EmailsDue {
                rows,
                next_at: None,
            });
        }
        let next_at = self.0.query_one(NEXT_DUE, &[])?.try_get(0)?;
        Ok(EmailsDue { rows, next_at })
    }
}

impl EmailWrites for Pg<'_> {
    fn enqueue(&self, email: &NewEmail) -> Result<bool, StoreError> {
        // Due at once (`next_try_at` 0): `created_at` may come from a clock
        // other than the worker's (a gateway's test clock), which must not
        // hold it back.
        let inserted = self
            .0
            .execute(
                "INSERT INTO emails (dedupe_key, kind, to_address, order_id, subscription_id,
                     subject, text_body, html_body, status, attempts, next_try_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', 0, 0, $9)
                 ON CONFLICT (dedupe_key) DO NOTHING",
                &[
                    &text(&email.dedupe_key),
                    &email.kind.as_str(),
                    &text(&email.to),
                    &opt_text(email.order_id.as_deref()),
                    &opt_text(email.subscription_id.as_deref()),
                    &text(&email.rendered.subject),
                    &text(&email.rendered.text),
                    &text(&email.rendered.html),
                    &email.created_at,
                ],
            )
            .with_context(|| format!("queuing the email {}", email.dedupe_key))?;
        Ok(inserted == 1)
    }

    fn mark_sent(&self, id: i64, attempts: u32, at: i64) -> Result<bool, StoreError> {
        let changed = self
            .0
            .execute(
                "UPDATE emails SET status = 'sent', sent_at = $3, attempts = $2,
                     last_error = NULL
                 WHERE id = $1 AND status = 'queued'",
                &[&id, &i64::from(attempts), &at],
            )
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
            .execute(
                "UPDATE emails SET status = $5, attempts = $2, next_try_at = $3, last_error = $4
                 WHERE id = $1 AND status = 'queued'",
                &[
                    &id,
                    &i64::from(attempts),
                    &next_try_at,
                    &text(error),
                    &status.as_str(),
                ],
            )
            .with_context(|| format!("recording a failed attempt of email {id}"))?;
        Ok(changed == 1)
    }
}
