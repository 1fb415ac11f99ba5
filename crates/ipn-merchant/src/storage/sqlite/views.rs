//! What only the pages and the API read: listings and pages of orders,
//! messages, payments, flags, emails and downloads.

use anyhow::Context as _;
use ipn_core::money::{Currency, Money};
use ipn_storage::sqlite::conversion;
use rusqlite::{OptionalExtension as _, Row, params};

use super::downloads::{COLUMNS, grant};
use super::payments::{column, owner_id};
use super::{Sql, limit};
use crate::model::{EmailKind, EmailStatus};
use crate::storage::payments::Owner;
use crate::storage::views::{
    EmailRow, EmailView, FlagRow, InboxSummary, OrderPage, OrderSummary, PaymentRow, ViewReads,
};
use crate::storage::{Grant, StoreError};

const SUMMARY_COLUMNS: &str = "id, received_at, dialect, event_type, status, verification, \
                               outcome, outcome_detail, order_id";

fn summary(row: &Row<'_>) -> rusqlite::Result<InboxSummary> {
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

const FLAG_COLUMNS: &str = "id, order_id, inbox_id, reason, created_at, resolved_at";

fn flag_row(row: &Row<'_>) -> rusqlite::Result<FlagRow> {
    Ok(FlagRow {
        id: row.get(0)?,
        order_id: row.get(1)?,
        inbox_id: row.get(2)?,
        reason: row.get(3)?,
        created_at: row.get(4)?,
        resolved_at: row.get(5)?,
    })
}

const ROW_COLUMNS: &str = "id, kind, to_address, order_id, subscription_id, subject, status,
     attempts, last_error, created_at, next_try_at, sent_at";

fn email_row(row: &Row<'_>) -> rusqlite::Result<EmailRow> {
    let kind: String = row.get(1)?;
    let status: String = row.get(6)?;
    Ok(EmailRow {
        id: row.get(0)?,
        kind: kind
            .parse::<EmailKind>()
            .map_err(|_| conversion(1, format!("unknown value `{kind}`")))?,
        to: row.get(2)?,
        order_id: row.get(3)?,
        subscription_id: row.get(4)?,
        subject: row.get(5)?,
        status: EmailStatus::parse(&status)
            .ok_or_else(|| conversion(6, format!("unknown value `{status}`")))?,
        attempts: row.get(7)?,
        last_error: row.get(8)?,
        created_at: row.get(9)?,
        next_try_at: row.get(10)?,
        sent_at: row.get(11)?,
    })
}

impl Sql<'_> {
    fn email_rows(
        &self,
        condition: &str,
        value: impl rusqlite::ToSql,
        what: &str,
    ) -> Result<Vec<EmailRow>, StoreError> {
        let rows = self
            .0
            .prepare_cached(&format!("SELECT {ROW_COLUMNS} FROM emails {condition}"))?
            .query_map([value], email_row)?
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading {what}"))?;
        Ok(rows)
    }
}

impl ViewReads for Sql<'_> {
    fn orders_page(&self, before: Option<&str>, max: usize) -> Result<OrderPage, StoreError> {
        let max = limit(max);
        // One more than asked tells whether there is a next page. Two
        // statements rather than `?1 IS NULL OR …`, so that each walks the
        // `orders_by_created` index from where the page starts; the cursor's
        // `(created_at, id)` is looked up in the same statement.
        let mut statement = self.0.prepare_cached(match before {
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
            .query_map(params![before, max.saturating_add(1)], |row| {
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
        let mut statement = self.0.prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM inbox WHERE order_id = ?1 ORDER BY id"
        ))?;
        let rows = statement.query_map([order_id], summary)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn recent_messages(&self, max: usize) -> Result<Vec<InboxSummary>, StoreError> {
        let mut statement = self.0.prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM inbox ORDER BY id DESC LIMIT ?1"
        ))?;
        let rows = statement.query_map([limit(max)], summary)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn payments(&self, owner: Owner<'_>) -> Result<Vec<PaymentRow>, StoreError> {
        let column = column(owner);
        let mut statement = self.0.prepare_cached(&format!(
            "SELECT txn_id, parent_id, kind, status, amount, currency, valid, updated_at
             FROM payments WHERE {column} = ?1
                OR parent_id IN (SELECT txn_id FROM payments
                                 WHERE {column} = ?1 AND kind = 'charge')
             ORDER BY txn_id"
        ))?;
        let rows = statement.query_map([owner_id(owner)], |row| {
            Ok(PaymentRow {
                txn_id: row.get(0)?,
                parent_id: row.get(1)?,
                kind: row.get(2)?,
                status: row.get(3)?,
                amount: row.get(4)?,
                currency: row.get(5)?,
                valid: row.get(6)?,
                updated_at: row.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn order_flags(&self, order_id: &str) -> Result<Vec<FlagRow>, StoreError> {
        let mut statement = self.0.prepare_cached(&format!(
            "SELECT {FLAG_COLUMNS} FROM flags WHERE order_id = ?1 ORDER BY id"
        ))?;
        let rows = statement.query_map([order_id], flag_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn open_flags(&self, max: usize) -> Result<Vec<FlagRow>, StoreError> {
        let mut statement = self.0.prepare_cached(&format!(
            "SELECT {FLAG_COLUMNS} FROM flags WHERE resolved_at IS NULL ORDER BY id LIMIT ?1"
        ))?;
        let rows = statement.query_map([limit(max)], flag_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn order_emails(&self, order_id: &str) -> Result<Vec<EmailRow>, StoreError> {
        self.email_rows(
            "WHERE order_id = ?1 ORDER BY id",
            order_id,
            &format!("the emails of order {order_id}"),
        )
    }

    fn subscription_emails(&self, subscription_id: &str) -> Result<Vec<EmailRow>, StoreError> {
        self.email_rows(
            "WHERE subscription_id = ?1 ORDER BY id",
            subscription_id,
            &format!("the emails of subscription {subscription_id}"),
        )
    }

    fn recent_emails(&self, max: usize) -> Result<Vec<EmailRow>, StoreError> {
        self.email_rows("ORDER BY id DESC LIMIT ?1", limit(max), "the latest emails")
    }

    fn email(&self, id: i64) -> Result<Option<EmailView>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT id, kind, to_address, order_id, subscription_id, subject, status,
                     attempts, last_error, created_at, sent_at, text_body, html_body
                 FROM emails WHERE id = ?1",
            )?
            .query_row([id], |row| {
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
            })
            .optional()?)
    }

    fn order_downloads(&self, order_id: &str) -> Result<Vec<Grant>, StoreError> {
        self.0
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM downloads WHERE order_id = ?1 ORDER BY rowid"
            ))?
            .query_map([order_id], grant)?
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading the downloads of order {order_id}"))
    }
}
