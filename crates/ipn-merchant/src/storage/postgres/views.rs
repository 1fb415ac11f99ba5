//! What only the pages and the API read: listings and pages of orders,
//! messages, payments, flags, emails and downloads.

use anyhow::Context as _;
use ipn_core::money::{Currency, Money};
use ipn_storage::postgres::{Param, Row, parse_column, text};

use super::downloads::{COLUMNS, grant};
use super::payments::{column, owner_id};
use super::{Pg, limit, to_u32};
use crate::model::{EmailKind, EmailStatus};
use crate::storage::payments::Owner;
use crate::storage::views::{
    EmailRow, EmailView, FlagRow, InboxSummary, OrderPage, OrderSummary, PaymentRow, ViewReads,
};
use crate::storage::{Grant, StoreError};

const SUMMARY_COLUMNS: &str = "id, received_at, dialect, event_type, status, verification, \
                               outcome, outcome_detail, order_id";

fn summary(row: &Row) -> Result<InboxSummary, StoreError> {
    Ok(InboxSummary {
        id: row.try_get(0)?,
        received_at: row.try_get(1)?,
        dialect: row.try_get(2)?,
        event_type: row.try_get(3)?,
        status: row.try_get(4)?,
        verification: row.try_get(5)?,
        outcome: row.try_get(6)?,
        outcome_detail: row.try_get(7)?,
        order_id: row.try_get(8)?,
    })
}

const FLAG_COLUMNS: &str = "id, order_id, inbox_id, reason, created_at, resolved_at";

fn flag_row(row: &Row) -> Result<FlagRow, StoreError> {
    Ok(FlagRow {
        id: row.try_get(0)?,
        order_id: row.try_get(1)?,
        inbox_id: row.try_get(2)?,
        reason: row.try_get(3)?,
        created_at: row.try_get(4)?,
        resolved_at: row.try_get(5)?,
    })
}

const ROW_COLUMNS: &str = "id, kind, to_address, order_id, subscription_id, subject, status,
     attempts, last_error, created_at, next_try_at, sent_at";

fn email_row(row: &Row) -> Result<EmailRow, StoreError> {
    Ok(EmailRow {
        id: row.try_get(0)?,
        kind: parse_column(row, 1, |kind| {
            kind.parse::<EmailKind>()
                .map_err(|_| format!("unknown value `{kind}`"))
        })?,
        to: row.try_get(2)?,
        order_id: row.try_get(3)?,
        subscription_id: row.try_get(4)?,
        subject: row.try_get(5)?,
        status: parse_column(row, 6, |status| {
            EmailStatus::parse(status).ok_or_else(|| format!("unknown value `{status}`"))
        })?,
        attempts: to_u32(row.try_get(7)?, "emails.attempts")?,
        last_error: row.try_get(8)?,
        created_at: row.try_get(9)?,
        next_try_at: row.try_get(10)?,
        sent_at: row.try_get(11)?,
    })
}

impl Pg<'_> {
    fn email_rows(
        &self,
        condition: &str,
        value: Param<'_>,
        what: &str,
    ) -> Result<Vec<EmailRow>, StoreError> {
        self.0
            .query(
                &format!("SELECT {ROW_COLUMNS} FROM emails {condition}"),
                &[value],
            )?
            .iter()
            .map(email_row)
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading {what}"))
    }

    fn rows<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        each: impl Fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.0.query(sql, params)?.iter().map(each).collect()
    }
}

impl ViewReads for Pg<'_> {
    fn orders_page(&self, before: Option<&str>, max: usize) -> Result<OrderPage, StoreError> {
        let max = limit(max);
        // One more than asked tells whether there is a next page. Two
        // statements, so that each walks the `orders_by_created` index from
        // where the page starts; the cursor's `(created_at, id)` is looked
        // up in the same statement.
        let fetch = max.saturating_add(1);
        let rows = match before {
            None => self.0.query(
                "SELECT id, status, customer_email, currency, total, created_at FROM orders
                 ORDER BY created_at DESC, id DESC LIMIT $1",
                &[&fetch],
            )?,
            Some(before) => self.0.query(
                "SELECT id, status, customer_email, currency, total, created_at FROM orders
                 WHERE (created_at, id) < ((SELECT created_at FROM orders WHERE id = $1), $1)
                 ORDER BY created_at DESC, id DESC LIMIT $2",
                &[&text(before), &fetch],
            )?,
        };
        let mut orders = rows
            .iter()
            .map(|row| {
                Ok(OrderSummary {
                    id: row.try_get(0)?,
                    status: row.try_get(1)?,
                    customer_email: row.try_get(2)?,
                    total: Money::new(row.try_get(4)?, Currency::parse(row.try_get(3)?)?),
                    created_at: row.try_get(5)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let more = i64::try_from(orders.len()).unwrap_or(i64::MAX) > max;
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

    fn order_messages(&self, order_id: &str) -> Result<Vec<InboxSummary>, StoreError> {
        self.rows(
            &format!("SELECT {SUMMARY_COLUMNS} FROM inbox WHERE order_id = $1 ORDER BY id"),
            &[&text(order_id)],
            summary,
        )
    }

    fn recent_messages(&self, max: usize) -> Result<Vec<InboxSummary>, StoreError> {
        self.rows(
            &format!("SELECT {SUMMARY_COLUMNS} FROM inbox ORDER BY id DESC LIMIT $1"),
            &[&limit(max)],
            summary,
        )
    }

    fn payments(&self, owner: Owner<'_>) -> Result<Vec<PaymentRow>, StoreError> {
        let column = column(owner);
        self.rows(
            &format!(
                "SELECT txn_id, parent_id, kind, status, amount, currency, valid, updated_at
                 FROM payments WHERE {column} = $1
                    OR parent_id IN (SELECT txn_id FROM payments
                                     WHERE {column} = $1 AND kind = 'charge')
                 ORDER BY txn_id"
            ),
            &[&text(owner_id(owner))],
            |row| {
                Ok(PaymentRow {
                    txn_id: row.try_get(0)?,
                    parent_id: row.try_get(1)?,
                    kind: row.try_get(2)?,
                    status: row.try_get(3)?,
                    amount: row.try_get(4)?,
                    currency: row.try_get(5)?,
                    valid: row.try_get(6)?,
                    updated_at: row.try_get(7)?,
                })
            },
        )
    }

    fn order_flags(&self, order_id: &str) -> Result<Vec<FlagRow>, StoreError> {
        self.rows(
            &format!("SELECT {FLAG_COLUMNS} FROM flags WHERE order_id = $1 ORDER BY id"),
            &[&text(order_id)],
            flag_row,
        )
    }

    fn open_flags(&self, max: usize) -> Result<Vec<FlagRow>, StoreError> {
        self.rows(
            &format!(
                "SELECT {FLAG_COLUMNS} FROM flags WHERE resolved_at IS NULL ORDER BY id LIMIT $1"
            ),
            &[&limit(max)],
            flag_row,
        )
    }

    fn order_emails(&self, order_id: &str) -> Result<Vec<EmailRow>, StoreError> {
        self.email_rows(
            "WHERE order_id = $1 ORDER BY id",
            &text(order_id),
            &format!("the emails of order {order_id}"),
        )
    }

    fn subscription_emails(&self, subscription_id: &str) -> Result<Vec<EmailRow>, StoreError> {
        self.email_rows(
            "WHERE subscription_id = $1 ORDER BY id",
            &text(subscription_id),
            &format!("the emails of subscription {subscription_id}"),
        )
    }

    fn recent_emails(&self, max: usize) -> Result<Vec<EmailRow>, StoreError> {
        self.email_rows(
            "ORDER BY id DESC LIMIT $1",
            &limit(max),
            "the latest emails",
        )
    }

    fn email(&self, id: i64) -> Result<Option<EmailView>, StoreError> {
        self.0
            .query_opt(
                "SELECT id, kind, to_address, order_id, subscription_id, subject, status,
                     attempts, last_error, created_at, sent_at, text_body, html_body
                 FROM emails WHERE id = $1",
                &[&id],
            )?
            .map(|row| {
                Ok(EmailView {
                    id: row.try_get(0)?,
                    kind: row.try_get(1)?,
                    to: row.try_get(2)?,
                    order_id: row.try_get(3)?,
                    subscription_id: row.try_get(4)?,
                    subject: row.try_get(5)?,
                    status: row.try_get(6)?,
                    attempts: to_u32(row.try_get(7)?, "emails.attempts")?,
                    last_error: row.try_get(8)?,
                    created_at: row.try_get(9)?,
                    sent_at: row.try_get(10)?,
                    text_body: row.try_get(11)?,
                    html_body: row.try_get(12)?,
                })
            })
            .transpose()
    }

    fn order_downloads(&self, order_id: &str) -> Result<Vec<Grant>, StoreError> {
        self.rows(
            &format!("SELECT {COLUMNS} FROM downloads WHERE order_id = $1 ORDER BY position"),
            &[&text(order_id)],
            grant,
        )
        .with_context(|| format!("reading the downloads of order {order_id}"))
    }
}
