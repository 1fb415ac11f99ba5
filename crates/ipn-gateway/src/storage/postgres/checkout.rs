//! Checkout sessions. The order is fixed at creation; what paid it
//! (`payment_id` or `subscription_id`) and `paid_at` are set once.

use anyhow::Context as _;
use ipn_core::id::{CheckoutSessionId, MerchantId, PaymentId, SubscriptionId};
use ipn_core::money::{Currency, Money};
use ipn_core::payment::Custom;
use ipn_storage::postgres::{Conn, opt_text, parse_column, text};

use crate::clock::{Millis, from_millis};
use crate::model::{CheckoutSession, PaidBy};
use crate::storage::StoreError;

pub(super) fn create(tx: &Conn, s: &CheckoutSession) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO checkout_sessions (id, merchant_id, invoice, amount, currency, items, custom,
                                        customer_email, success_url, cancel_url, created_at,
                                        expires_at, plan)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        &[
            &s.id.to_string(),
            &s.merchant_id.to_string(),
            &opt_text(s.invoice.as_deref()),
            &s.amount.minor(),
            &s.amount.currency().code(),
            &serde_json::to_string(&s.items)?,
            &opt_text(s.custom.as_ref().map(Custom::as_str)),
            &opt_text(s.customer_email.as_deref()),
            &text(&s.success_url),
            &text(&s.cancel_url),
            &crate::clock::to_millis(s.created_at),
            &crate::clock::to_millis(s.expires_at),
            &s.plan.as_ref().map(serde_json::to_string).transpose()?,
        ],
    )?;
    Ok(())
}

/// A session; `lock` holds its row until the writer's transaction ends, so
/// two payments of one session wait for each other and the second finds
/// it paid.
pub(super) fn find(
    conn: &Conn,
    id: CheckoutSessionId,
    lock: bool,
) -> Result<Option<CheckoutSession>, StoreError> {
    const COLUMNS: &str = "SELECT id, merchant_id, invoice, amount, currency, items, custom,
                customer_email, success_url, cancel_url, created_at, expires_at, payment_id,
                paid_at, plan, subscription_id
         FROM checkout_sessions WHERE id = $1";
    let row = if lock {
        conn.query_opt(&format!("{COLUMNS} FOR UPDATE"), &[&id.to_string()])?
    } else {
        conn.query_opt(COLUMNS, &[&id.to_string()])?
    };
    let Some(row) = row else {
        return Ok(None);
    };
    let currency = parse_column(&row, 4, Currency::parse)?;
    let items = serde_json::from_str(row.try_get(5)?).context("checkout_sessions.items")?;
    let custom = match row.try_get::<_, Option<&str>>(6)? {
        Some(text) => Some(Custom::parse(text).context("checkout_sessions.custom")?),
        None => None,
    };
    let payment_id = match row.try_get::<_, Option<&str>>(12)? {
        Some(_) => Some(parse_column(&row, 12, PaymentId::parse)?),
        None => None,
    };
    // Checked again as it is read (`Plan` validates when deserialized).
    let plan = match row.try_get::<_, Option<&str>>(14)? {
        Some(text) => Some(serde_json::from_str(text).context("checkout_sessions.plan")?),
        None => None,
    };
    let subscription_id = match row.try_get::<_, Option<&str>>(15)? {
        Some(_) => Some(parse_column(&row, 15, SubscriptionId::parse)?),
        None => None,
    };
    Ok(Some(CheckoutSession {
        id: parse_column(&row, 0, CheckoutSessionId::parse)?,
        merchant_id: parse_column(&row, 1, MerchantId::parse)?,
        invoice: row.try_get(2)?,
        amount: Money::new(row.try_get(3)?, currency),
        items,
        custom,
        customer_email: row.try_get(7)?,
        success_url: row.try_get(8)?,
        cancel_url: row.try_get(9)?,
        plan,
        created_at: from_millis(row.try_get(10)?),
        expires_at: from_millis(row.try_get(11)?),
        payment_id,
        subscription_id,
        paid_at: row.try_get::<_, Option<Millis>>(13)?.map(from_millis),
    }))
}

/// Marks a session paid if nothing paid it yet; `false` if something did.
pub(super) fn mark_paid(
    tx: &Conn,
    id: CheckoutSessionId,
    by: PaidBy,
    at: Millis,
) -> Result<bool, StoreError> {
    let (payment, subscription) = match by {
        PaidBy::Payment(id) => (Some(id.to_string()), None),
        PaidBy::Subscription(id) => (None, Some(id.to_string())),
    };
    let marked = tx.execute(
        "UPDATE checkout_sessions SET payment_id = $2, subscription_id = $3, paid_at = $4
         WHERE id = $1 AND payment_id IS NULL AND subscription_id IS NULL",
        &[&id.to_string(), &payment, &subscription, &at],
    )?;
    Ok(marked == 1)
}
