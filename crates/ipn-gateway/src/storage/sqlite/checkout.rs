//! Checkout sessions. The order is fixed at creation; what paid it
//! (`payment_id` or `subscription_id`) and `paid_at` are set once.

use ipn_core::id::{CheckoutSessionId, MerchantId, PaymentId, SubscriptionId};
use ipn_core::money::{Currency, Money};
use ipn_core::payment::Custom;
use ipn_storage::sqlite::{conversion, parse_column};
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::clock::{Millis, from_millis};
use crate::model::{CheckoutSession, PaidBy};
use crate::storage::StoreError;

pub(super) fn create(tx: &Connection, s: &CheckoutSession) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO checkout_sessions (id, merchant_id, invoice, amount, currency, items, custom,
                                        customer_email, success_url, cancel_url, created_at,
                                        expires_at, plan)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        s.id.to_string(),
        s.merchant_id.to_string(),
        s.invoice,
        s.amount.minor(),
        s.amount.currency().code(),
        serde_json::to_string(&s.items)?,
        s.custom.as_ref().map(Custom::as_str),
        s.customer_email,
        s.success_url,
        s.cancel_url,
        crate::clock::to_millis(s.created_at),
        crate::clock::to_millis(s.expires_at),
        s.plan.as_ref().map(serde_json::to_string).transpose()?,
    ])?;
    Ok(())
}

pub(super) fn find(
    conn: &Connection,
    id: CheckoutSessionId,
) -> Result<Option<CheckoutSession>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, merchant_id, invoice, amount, currency, items, custom, customer_email,
                success_url, cancel_url, created_at, expires_at, payment_id, paid_at, plan,
                subscription_id
         FROM checkout_sessions WHERE id = ?1",
        )?
        .query_row([id.to_string()], |row| {
            let currency = parse_column(row, 4, Currency::parse)?;
            let items = serde_json::from_str(row.get_ref(5)?.as_str()?)
                .map_err(|e| conversion(5, e.to_string()))?;
            let custom = match row.get_ref(6)?.as_str_or_null()? {
                Some(text) => Some(Custom::parse(text).map_err(|e| conversion(6, e.to_string()))?),
                None => None,
            };
            let payment_id = match row.get_ref(12)?.as_str_or_null()? {
                Some(_) => Some(parse_column(row, 12, PaymentId::parse)?),
                None => None,
            };
            // Checked again as it is read (`Plan` validates when deserialized).
            let plan = match row.get_ref(14)?.as_str_or_null()? {
                Some(text) => {
                    Some(serde_json::from_str(text).map_err(|e| conversion(14, e.to_string()))?)
                }
                None => None,
            };
            let subscription_id = match row.get_ref(15)?.as_str_or_null()? {
                Some(_) => Some(parse_column(row, 15, SubscriptionId::parse)?),
                None => None,
            };
            Ok(CheckoutSession {
                id: parse_column(row, 0, CheckoutSessionId::parse)?,
                merchant_id: parse_column(row, 1, MerchantId::parse)?,
                invoice: row.get(2)?,
                amount: Money::new(row.get(3)?, currency),
                items,
                custom,
                customer_email: row.get(7)?,
                success_url: row.get(8)?,
                cancel_url: row.get(9)?,
                plan,
                created_at: from_millis(row.get(10)?),
                expires_at: from_millis(row.get(11)?),
                payment_id,
                subscription_id,
                paid_at: row.get::<_, Option<Millis>>(13)?.map(from_millis),
            })
        })
        .optional()?)
}

/// Marks a session paid if nothing paid it yet; `false` if something did.
pub(super) fn mark_paid(
    tx: &Connection,
    id: CheckoutSessionId,
    by: PaidBy,
    at: Millis,
) -> Result<bool, StoreError> {
    let (payment, subscription) = match by {
        PaidBy::Payment(id) => (Some(id.to_string()), None),
        PaidBy::Subscription(id) => (None, Some(id.to_string())),
    };
    let marked = tx
        .prepare_cached(
            "UPDATE checkout_sessions SET payment_id = ?2, subscription_id = ?3, paid_at = ?4
             WHERE id = ?1 AND payment_id IS NULL AND subscription_id IS NULL",
        )?
        .execute(params![id.to_string(), payment, subscription, at])?;
    Ok(marked == 1)
}
