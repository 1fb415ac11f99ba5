//! The handler's SQL: the waiting messages, the keys already applied, the
//! payment facts, flags and order states. Every function runs inside the
//! writer's transaction.

use rusqlite::{Connection, OptionalExtension as _, params};

use super::notice::{ChargeStatus, PaymentKind, PaymentNotice};
use super::order_state::{Fact, OrderStatus};
use crate::storage::{InboxId, StoreError};

/// How many times a message whose handling failed on a storage error is
/// tried again before it is set aside as `failed` (kept, shown to the
/// operator) so that it cannot hold up the messages behind it.
pub const MAX_ATTEMPTS: i64 = 5;

/// A message waiting for the handler.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub id: InboxId,
    pub dialect: String,
    pub body: Vec<u8>,
}

/// Messages ready for the handler, oldest first: standard ones that
/// verified on arrival, PayPal ones whose postback said `VERIFIED`. The
/// condition is exactly the `inbox_ready` index's, so SQLite walks that index
/// in id order and stops at the limit.
/// A message whose handling failed waits until its `handler_retry_at`.
pub const WAITING: &str = "SELECT id, dialect, body FROM inbox
     WHERE status IN ('received', 'verified') AND handler_retry_at <= ?1
     ORDER BY id LIMIT ?2";

/// `now` is wall-clock time in ms (retry delays are real time).
pub fn waiting(conn: &Connection, now: i64, limit: usize) -> Result<Vec<Waiting>, StoreError> {
    let mut statement = conn.prepare_cached(WAITING)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement.query_map(params![now, limit], |row| {
        Ok(Waiting {
            id: row.get(0)?,
            dialect: row.get(1)?,
            body: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What handling a message came to, kept on its inbox row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It changed (or confirmed) an order or subscription.
    Applied,
    /// A refund or reversal whose payment is not known yet: recorded, and
    /// it takes effect when the payment arrives.
    Held,
    /// The same notice was applied before (same key).
    Duplicate,
    /// It did not match its order (or named none): the order is flagged,
    /// nothing is marked paid.
    Flagged,
    /// Not about anything this shop tracks.
    Ignored,
    /// It could not be read.
    Rejected,
    /// Handling failed on storage errors [`MAX_ATTEMPTS`] times.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Held => "held",
            Self::Duplicate => "duplicate",
            Self::Flagged => "flagged",
            Self::Ignored => "ignored",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }
}

/// What to write on a handled message's row.
#[derive(Debug, Clone, Default)]
pub struct Handled<'a> {
    pub event_type: Option<&'a str>,
    pub order_id: Option<&'a str>,
    pub subscription_id: Option<&'a str>,
    pub detail: Option<&'a str>,
}

/// Marks a message handled: it leaves the waiting index for good.
pub fn mark(
    conn: &Connection,
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
    conn.prepare_cached(
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

/// Counts a failed attempt at a message, which waits 1 s, 2 s, 4 s … before
/// the next; returns the attempts so far. `now` is wall-clock ms.
pub fn count_attempt(
    conn: &Connection,
    id: InboxId,
    error: &str,
    now: i64,
) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE inbox SET handler_attempts = handler_attempts + 1, outcome_detail = ?2,
                 handler_retry_at = ?3 + (1000 << MIN(handler_attempts, 16))
             WHERE id = ?1 RETURNING handler_attempts",
        )?
        .query_row(params![id, error, now], |row| row.get(0))?)
}

/// When the earliest message waiting after a failure is due again.
pub fn next_retry(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT min(handler_retry_at) FROM inbox
             WHERE status IN ('received', 'verified') AND handler_attempts > 0",
        )?
        .query_row([], |row| row.get(0))?)
}

/// Sends a `failed` message back to the handler, as if it had just
/// arrived; false if it is not failed.
pub fn requeue(conn: &Connection, id: InboxId) -> Result<bool, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE inbox SET
                 status = CASE dialect WHEN 'paypal' THEN 'verified' ELSE 'received' END,
                 handler_attempts = 0, handler_retry_at = 0, outcome = NULL
             WHERE id = ?1 AND status = 'failed'",
        )?
        .execute([id])?;
    Ok(changed == 1)
}

/// The first of `keys` an earlier message claimed, if any: the notice is a
/// duplicate of that message's.
pub fn claimed(conn: &Connection, keys: &[String]) -> Result<Option<String>, StoreError> {
    let mut statement =
        conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM applied_keys WHERE key = ?1)")?;
    for key in keys {
        if statement.query_row([key], |row| row.get::<_, bool>(0))? {
            return Ok(Some(key.clone()));
        }
    }
    Ok(None)
}

/// Claims a notice's key for message `id`; false if an earlier message
/// holds it.
pub fn claim_key(conn: &Connection, key: &str, id: InboxId) -> Result<bool, StoreError> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO applied_keys (key, inbox_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?
        .execute(params![key, id])?;
    Ok(inserted == 1)
}

/// The order a known payment belongs to, if the payment is known.
pub fn payment_order(
    conn: &Connection,
    txn_id: &str,
) -> Result<Option<Option<String>>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT order_id FROM payments WHERE txn_id = ?1")?
        .query_row([txn_id], |row| row.get(0))
        .optional()?)
}

/// How a payment fact is recorded.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The order it belongs to (or names, when that order does not exist).
    pub order_id: Option<&'a str>,
    /// False when it failed validation: it never counts.
    pub valid: bool,
}

/// Records what a payment notice says. A charge's status only moves
/// forward (pending → completed, failed or denied), so a late `Pending`
/// after its `Completed` changes nothing. A valid claim wins over an invalid
/// one for the same transaction whichever came first: a bad copy (another
/// currency, another receiver) can neither shadow nor spoil the real one.
pub fn record_payment(
    conn: &Connection,
    notice: &PaymentNotice,
    record: &Record<'_>,
    inbox_id: InboxId,
    now: i64,
) -> Result<(), StoreError> {
    let status = match notice.kind {
        PaymentKind::Charge(status) => status.as_str(),
        _ => "completed",
    };
    conn.prepare_cached(
        "INSERT INTO payments (txn_id, parent_id, kind, status, order_id, subscription_id,
             amount, currency, valid, inbox_id, updated_at, receiver, livemode, checked)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (txn_id) DO UPDATE SET
             status = CASE
                 WHEN payments.valid = 0 AND excluded.valid = 1 THEN excluded.status
                 WHEN excluded.valid = 1 AND payments.status = 'pending'
                      AND excluded.status <> 'pending' THEN excluded.status
                 ELSE payments.status END,
             order_id = CASE WHEN payments.valid = 0 AND excluded.valid = 1
                             THEN excluded.order_id
                             ELSE COALESCE(payments.order_id, excluded.order_id) END,
             amount = CASE WHEN payments.valid = 0 AND excluded.valid = 1
                           THEN excluded.amount ELSE payments.amount END,
             currency = CASE WHEN payments.valid = 0 AND excluded.valid = 1
                             THEN excluded.currency ELSE payments.currency END,
             receiver = CASE WHEN payments.valid = 0 AND excluded.valid = 1
                             THEN excluded.receiver ELSE payments.receiver END,
             livemode = CASE WHEN payments.valid = 0 AND excluded.valid = 1
                             THEN excluded.livemode ELSE payments.livemode END,
             inbox_id = CASE WHEN payments.valid = 0 AND excluded.valid = 1
                             THEN excluded.inbox_id ELSE payments.inbox_id END,
             valid = MAX(payments.valid, excluded.valid),
             updated_at = excluded.updated_at",
    )?
    .execute(params![
        notice.txn_id,
        notice.parent_id,
        notice.kind.as_str(),
        status,
        record.order_id,
        notice.subscription_id,
        notice.amount.minor(),
        notice.amount.currency().code(),
        record.valid,
        inbox_id,
        now,
        notice.receiver,
        notice.livemode,
        true,
    ])?;
    Ok(())
}

/// Whose payments: an order's (charges naming it as invoice) or a
/// subscription's (its period payments).
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    Order(&'a str),
    Subscription(&'a str),
}

impl Owner<'_> {
    fn column(self) -> &'static str {
        match self {
            Self::Order(_) => "order_id",
            Self::Subscription(_) => "subscription_id",
        }
    }

    fn id(&self) -> &str {
        match self {
            Self::Order(id) | Self::Subscription(id) => id,
        }
    }
}

/// The valid facts of an order: its charges, and the refunds and
/// reversals of those charges (which may have come without an invoice).
pub fn order_facts(conn: &Connection, order_id: &str) -> Result<Vec<Fact>, StoreError> {
    facts(conn, Owner::Order(order_id))
}

/// The valid facts of `owner`'s charges, with their refunds and reversals.
pub fn facts(conn: &Connection, owner: Owner<'_>) -> Result<Vec<Fact>, StoreError> {
    let column = owner.column();
    let mut statement = conn.prepare_cached(&format!(
        "SELECT txn_id, parent_id, kind, status, amount FROM payments
         WHERE valid = 1 AND kind = 'charge' AND {column} = ?1
         UNION ALL
         SELECT child.txn_id, child.parent_id, child.kind, child.status, child.amount
         FROM payments AS child JOIN payments AS charge ON charge.txn_id = child.parent_id
         WHERE child.valid = 1 AND child.checked = 1 AND charge.valid = 1
           AND charge.kind = 'charge' AND charge.{column} = ?1
         ORDER BY 1"
    ))?;
    let rows = statement.query_map([owner.id()], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, Option<String>>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, i64>(4)?,
        ))
    })?;
    rows.map(|row| {
        let (txn_id, parent_id, kind, status, amount) = row?;
        Ok(Fact {
            txn_id,
            parent_id,
            kind: parse_kind(&kind, &status)?,
            amount,
        })
    })
    .collect()
}

fn parse_kind(kind: &str, status: &str) -> Result<PaymentKind, StoreError> {
    Ok(match kind {
        "charge" => PaymentKind::Charge(
            ChargeStatus::parse(status)
                .ok_or_else(|| anyhow::anyhow!("stored charge status {status:?} is unknown"))?,
        ),
        "refund" => PaymentKind::Refund,
        "reversal" => PaymentKind::Reversal,
        "reversal_canceled" => PaymentKind::ReversalCanceled,
        other => anyhow::bail!("stored payment kind {other:?} is unknown"),
    })
}

/// Keeps a refund or reversal whose payment is not known yet, as its
/// message `inbox_id` claims it.
pub fn hold(
    conn: &Connection,
    inbox_id: InboxId,
    notice: &PaymentNotice,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO held_claims (inbox_id, txn_id, parent_id, kind, event_type, amount,
             currency, receiver, livemode, invoice, subscription_id, payer_email)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        inbox_id,
        notice.txn_id,
        notice.parent_id,
        notice.kind.as_str(),
        notice.event_type.as_str(),
        notice.amount.minor(),
        notice.amount.currency().code(),
        notice.receiver,
        notice.livemode,
        notice.invoice,
        notice.subscription_id,
        notice.payer_email,
    ])?;
    Ok(())
}

/// The held claims on the charges of `order_id`, by message, oldest first.
pub fn held_for_order(
    conn: &Connection,
    order_id: &str,
) -> Result<Vec<(InboxId, PaymentNotice)>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT held.inbox_id, held.txn_id, held.parent_id, held.kind, held.event_type,
             held.amount, held.currency, held.receiver, held.livemode, held.invoice,
             held.subscription_id, held.payer_email
         FROM held_claims AS held JOIN payments AS charge ON charge.txn_id = held.parent_id
         WHERE charge.kind = 'charge' AND charge.order_id = ?1
         ORDER BY held.inbox_id",
    )?;
    let rows = statement.query_map([order_id], |row| {
        Ok((
            row.get::<_, InboxId>(0)?,
            (
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
            ),
            (
                row.get::<_, i64>(5)?,
                row.get::<_, String>(6)?,
                row.get::<_, Option<String>>(7)?,
                row.get::<_, bool>(8)?,
            ),
            (
                row.get::<_, Option<String>>(9)?,
                row.get::<_, Option<String>>(10)?,
                row.get::<_, Option<String>>(11)?,
            ),
        ))
    })?;
    rows.map(|row| {
        let (
            inbox_id,
            (txn_id, parent_id, kind, event_type),
            (amount, currency, receiver, livemode),
            (invoice, subscription_id, payer_email),
        ) = row?;
        let currency = ipn_core::money::Currency::parse(&currency)?;
        Ok((
            inbox_id,
            PaymentNotice {
                event_type: ipn_core::event::EventType::parse_lenient(&event_type)?,
                txn_id,
                parent_id: Some(parent_id),
                kind: parse_kind(&kind, "completed")?,
                amount: ipn_core::money::Money::new(amount, currency),
                invoice,
                receiver,
                livemode,
                subscription_id,
                payer_email,
            },
        ))
    })
    .collect()
}

/// Forgets a held claim once it was checked.
pub fn release(conn: &Connection, inbox_id: InboxId) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM held_claims WHERE inbox_id = ?1")?
        .execute([inbox_id])?;
    Ok(())
}

/// Updates a handled message's outcome (a held notice that now counted, or
/// was found not to match).
pub fn set_outcome(
    conn: &Connection,
    inbox_id: InboxId,
    outcome: Outcome,
    order_id: &str,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE inbox SET outcome = ?2, order_id = ?3, outcome_detail = ?4 WHERE id = ?1",
    )?
    .execute(params![inbox_id, outcome.as_str(), order_id, detail])?;
    Ok(())
}

/// Flags an order (or, with no order, just the message) for review.
pub fn flag(
    conn: &Connection,
    order_id: Option<&str>,
    inbox_id: InboxId,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO flags (order_id, inbox_id, reason, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![order_id, inbox_id, reason, now])?;
    Ok(())
}

/// Whether an order has flags nobody resolved.
pub fn is_flagged(conn: &Connection, order_id: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM flags WHERE order_id = ?1 AND resolved_at IS NULL)",
        )?
        .query_row([order_id], |row| row.get(0))?)
}

/// Writes an order's derived state; `paid_at` is set the first time it is
/// paid and kept after.
pub fn set_order_status(
    conn: &Connection,
    order_id: &str,
    status: OrderStatus,
    paid: bool,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE orders SET status = ?2, updated_at = ?3,
             paid_at = CASE WHEN ?4 THEN COALESCE(paid_at, ?3) ELSE paid_at END
         WHERE id = ?1",
    )?
    .execute(params![order_id, status.as_str(), now, paid])?;
    Ok(())
}

/// Marks an order shipped (once).
pub fn set_fulfilled(conn: &Connection, order_id: &str, now: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE orders SET fulfilled_at = COALESCE(fulfilled_at, ?2), updated_at = ?2 WHERE id = ?1",
    )?
    .execute(params![order_id, now])?;
    Ok(())
}

/// Resolves a flag. `None`: there is no such flag; otherwise its order id,
/// empty for a flag on a message that named no order.
pub fn resolve_flag(
    conn: &Connection,
    flag_id: i64,
    now: i64,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE flags SET resolved_at = COALESCE(resolved_at, ?2) WHERE id = ?1
             RETURNING COALESCE(order_id, '')",
        )?
        .query_row(params![flag_id, now], |row| row.get(0))
        .optional()?)
}

/// Whether an email with this key was ever queued.
pub fn email_queued(conn: &Connection, dedupe_key: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM emails WHERE dedupe_key = ?1)")?
        .query_row([dedupe_key], |row| row.get(0))?)
}

/// A payment fact as the order's page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRow {
    pub txn_id: String,
    pub parent_id: Option<String>,
    pub kind: String,
    pub status: String,
    /// Signed minor units of `currency`.
    pub amount: i64,
    pub currency: String,
    /// False when it did not match the order: it never counted.
    pub valid: bool,
    pub updated_at: i64,
}

/// Every payment fact about an order, valid or not, with the refunds and
/// reversals of its charges, oldest first.
pub fn order_payments(conn: &Connection, order_id: &str) -> Result<Vec<PaymentRow>, StoreError> {
    payments(conn, Owner::Order(order_id))
}

/// Every payment heard of for `owner`, valid or not, with the refunds and
/// reversals of its charges.
pub fn payments(conn: &Connection, owner: Owner<'_>) -> Result<Vec<PaymentRow>, StoreError> {
    let column = owner.column();
    let mut statement = conn.prepare_cached(&format!(
        "SELECT txn_id, parent_id, kind, status, amount, currency, valid, updated_at
         FROM payments WHERE {column} = ?1
            OR parent_id IN (SELECT txn_id FROM payments WHERE {column} = ?1 AND kind = 'charge')
         ORDER BY txn_id"
    ))?;
    let rows = statement.query_map([owner.id()], |row| {
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

/// A reason for review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagRow {
    pub id: i64,
    pub order_id: Option<String>,
    /// The message that raised it.
    pub inbox_id: InboxId,
    pub reason: String,
    pub created_at: i64,
    pub resolved_at: Option<i64>,
}

/// An order's flags, oldest first.
pub fn order_flags(conn: &Connection, order_id: &str) -> Result<Vec<FlagRow>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, order_id, inbox_id, reason, created_at, resolved_at
         FROM flags WHERE order_id = ?1 ORDER BY id",
    )?;
    let rows = statement.query_map([order_id], flag_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A `flags` row read as `id, order_id, inbox_id, reason, created_at,
/// resolved_at`.
pub fn flag_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<FlagRow> {
    Ok(FlagRow {
        id: row.get(0)?,
        order_id: row.get(1)?,
        inbox_id: row.get(2)?,
        reason: row.get(3)?,
        created_at: row.get(4)?,
        resolved_at: row.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sqlite;

    #[test]
    fn waiting_messages_are_found_through_the_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        sqlite::migrate(&mut conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {WAITING}"))
            .unwrap()
            .query_map([0, 10], |row| row.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|step| step.contains("inbox_ready")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.contains("TEMP B-TREE")),
            "no sort: {plan:?}"
        );
    }
}
