//! What the pages and the API show, and only they: listings and pages of
//! orders, messages, payments, flags, emails and downloads. [`ViewReads`]
//! reads them; the views below put a page's parts together from those
//! reads in one snapshot ([`super::Store::read`]), so they agree with each
//! other and are the same on every database.

use ipn_core::money::Money;
use serde::Serialize;

use super::inbox::InboxId;
use super::orders::Order;
use super::payments::Owner;
use super::subscriptions::SubscriptionRow;
use super::{Grant, Reads, StoreError};
use crate::model::{EmailKind, EmailStatus};

/// One line of the admin's order list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSummary {
    pub id: String,
    pub status: String,
    pub customer_email: String,
    pub total: Money,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// A page of orders, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPage {
    pub orders: Vec<OrderSummary>,
    /// The id to pass as `before` for the next (older) page, when there is
    /// one.
    pub next_before: Option<String>,
}

/// One inbox message as the admin pages show it (never its body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxSummary {
    pub id: i64,
    /// Milliseconds since the Unix epoch.
    pub received_at: i64,
    /// `standard` or `paypal`.
    pub dialect: String,
    /// Known once the handler read it.
    pub event_type: Option<String>,
    /// `received`, `unverified`, `verified`, `invalid`, `processed`, `failed`.
    pub status: String,
    /// The PayPal postback's answer: `VERIFIED` or `INVALID`; `None` for a
    /// standard message (its signature was checked before it was stored) or
    /// a PayPal one still waiting.
    pub verification: Option<String>,
    /// What the handler made of it: `applied`, `held`, `duplicate`, …
    pub outcome: Option<String>,
    pub outcome_detail: Option<String>,
    pub order_id: Option<String>,
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

/// One email as the API and the admin page show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmailRow {
    pub id: i64,
    pub kind: EmailKind,
    pub to: String,
    pub order_id: Option<String>,
    pub subscription_id: Option<String>,
    pub subject: String,
    pub status: EmailStatus,
    /// Attempts made so far, the successful one included.
    pub attempts: u32,
    /// Why the last attempt failed (`None` once sent).
    pub last_error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When the next attempt is due, while `queued`.
    pub next_try_at: i64,
    pub sent_at: Option<i64>,
}

/// One stored email with its bodies, for the admin's email page. Kind and
/// status are the stored names, like the inbox's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailView {
    pub id: i64,
    /// `order_paid`, `download_link`, …
    pub kind: String,
    pub to: String,
    pub order_id: Option<String>,
    pub subscription_id: Option<String>,
    pub subject: String,
    /// `queued`, `sent` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub text_body: String,
    pub html_body: String,
}

pub trait ViewReads {
    /// Orders newest first (by `created_at`, then id), `limit` of them,
    /// older than the order `before` when given. The cursor is an order id,
    /// so a page never skips or repeats an order however many are added
    /// meanwhile; an id that names no order gives an empty page.
    fn orders_page(&self, before: Option<&str>, limit: usize) -> Result<OrderPage, StoreError>;
    /// The messages the handler tied to `order_id`, in arrival order.
    fn order_messages(&self, order_id: &str) -> Result<Vec<InboxSummary>, StoreError>;
    /// The latest `limit` messages, newest first.
    fn recent_messages(&self, limit: usize) -> Result<Vec<InboxSummary>, StoreError>;
    /// Every payment heard of for `owner`, valid or not, with the refunds
    /// and reversals of its charges, by transaction.
    fn payments(&self, owner: Owner<'_>) -> Result<Vec<PaymentRow>, StoreError>;
    /// An order's flags, oldest first.
    fn order_flags(&self, order_id: &str) -> Result<Vec<FlagRow>, StoreError>;
    /// Flags nobody resolved yet, on any order or on a message alone,
    /// oldest first, at most `limit`.
    fn open_flags(&self, limit: usize) -> Result<Vec<FlagRow>, StoreError>;
    /// The emails of an order, oldest first.
    fn order_emails(&self, order_id: &str) -> Result<Vec<EmailRow>, StoreError>;
    /// The emails of a subscription, oldest first.
    fn subscription_emails(&self, subscription_id: &str) -> Result<Vec<EmailRow>, StoreError>;
    /// The latest `limit` emails, newest first.
    fn recent_emails(&self, limit: usize) -> Result<Vec<EmailRow>, StoreError>;
    /// The email `id`, bodies included.
    fn email(&self, id: i64) -> Result<Option<EmailView>, StoreError>;
    /// The download grants of an order, in the order they were made.
    fn order_downloads(&self, order_id: &str) -> Result<Vec<Grant>, StoreError>;
}

/// An order with everything that happened to it.
#[derive(Debug, Clone)]
pub struct OrderDetails {
    pub order: Order,
    pub payments: Vec<PaymentRow>,
    pub flags: Vec<FlagRow>,
    pub emails: Vec<EmailRow>,
    pub downloads: Vec<Grant>,
    /// The subscription the order started, for a subscription order.
    pub subscription: Option<SubscriptionRow>,
}

/// What the admin dashboard shows.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub orders: OrderPage,
    pub flags: Vec<FlagRow>,
    pub inbox: Vec<InboxSummary>,
    pub emails: Vec<EmailRow>,
}

/// How many of each list the dashboard shows.
#[derive(Debug, Clone, Copy)]
pub struct DashboardLimits {
    pub orders: usize,
    pub flags: usize,
    pub inbox: usize,
    pub emails: usize,
}

/// The order `id` with its payments, flags, emails, downloads and
/// subscription.
pub fn order_details<R: Reads + ?Sized>(
    reads: &R,
    id: &str,
) -> Result<Option<OrderDetails>, StoreError> {
    let Some(order) = reads.order(id)? else {
        return Ok(None);
    };
    let subscription = match &order.subscription_id {
        Some(sub) => reads.subscription(sub)?,
        None => None,
    };
    let mut payments = reads.payments(Owner::Order(id))?;
    if let Some(sub) = &order.subscription_id {
        // A subscription order's money is its period payments.
        payments.extend(reads.payments(Owner::Subscription(sub))?);
        payments.sort_by(|a, b| a.txn_id.cmp(&b.txn_id));
        // A refund may be both the order's and the subscription's.
        payments.dedup_by(|a, b| a.txn_id == b.txn_id);
    }
    Ok(Some(OrderDetails {
        payments,
        flags: reads.order_flags(id)?,
        emails: reads.order_emails(id)?,
        downloads: reads.order_downloads(id)?,
        subscription,
        order,
    }))
}

/// The order `id` as the admin's page shows it: its details and the inbox
/// messages tied to it.
pub fn admin_order<R: Reads + ?Sized>(
    reads: &R,
    id: &str,
) -> Result<Option<(OrderDetails, Vec<InboxSummary>)>, StoreError> {
    let Some(details) = order_details(reads, id)? else {
        return Ok(None);
    };
    Ok(Some((details, reads.order_messages(id)?)))
}

/// The admin dashboard: a page of orders (older than the order `before`,
/// when given), the open flags, the latest messages and emails.
pub fn dashboard<R: Reads + ?Sized>(
    reads: &R,
    before: Option<&str>,
    limits: DashboardLimits,
) -> Result<Dashboard, StoreError> {
    Ok(Dashboard {
        orders: reads.orders_page(before, limits.orders)?,
        flags: reads.open_flags(limits.flags)?,
        inbox: reads.recent_messages(limits.inbox)?,
        emails: reads.recent_emails(limits.emails)?,
    })
}

/// The subscription `id` with its emails.
pub fn subscription<R: Reads + ?Sized>(
    reads: &R,
    id: &str,
) -> Result<Option<(SubscriptionRow, Vec<EmailRow>)>, StoreError> {
    let Some(row) = reads.subscription(id)? else {
        return Ok(None);
    };
    Ok(Some((row, reads.subscription_emails(id)?)))
}

#[cfg(test)]
mod tests {
    use ipn_core::money::Currency;

    use super::*;
    use crate::storage::orders::tests::order;
    use crate::storage::testing::each_store;

    #[test]
    fn orders_page_newest_first_without_gaps_or_repeats() {
        each_store(
            "orders_page_newest_first_without_gaps_or_repeats",
            |store| {
                store
                    .write_with(|tx| {
                        for (id, at) in [("ord_a", 1), ("ord_b", 2), ("ord_c", 2), ("ord_d", 3)] {
                            let order = Order {
                                total: Money::new(100, Currency::USD),
                                lines: Vec::new(),
                                created_at: at,
                                ..order(id, id)
                            };
                            tx.insert_order(&order)?;
                        }
                        Ok(())
                    })
                    .unwrap();
                let page = |before: Option<&'static str>| {
                    store.read_with(move |r| r.orders_page(before, 2)).unwrap()
                };
                let ids = |page: &OrderPage| -> Vec<String> {
                    page.orders.iter().map(|o| o.id.clone()).collect()
                };
                let first = page(None);
                assert_eq!(ids(&first), ["ord_d", "ord_c"]);
                assert_eq!(first.next_before.as_deref(), Some("ord_c"));
                let second = page(Some("ord_c"));
                assert_eq!(ids(&second), ["ord_b", "ord_a"]);
                assert_eq!(second.next_before, None);
                assert_eq!(second.orders[0].total.to_string(), "1.00 USD");
                assert!(page(Some("ord_nope")).orders.is_empty());
            },
        );
    }

    #[test]
    fn listings_show_messages_newest_first_or_by_order() {
        each_store("listings_show_messages_newest_first_or_by_order", |store| {
            store.execute(
                "INSERT INTO inbox (id, received_at, dialect, headers, body, status, order_id,
                     outcome, verification)
                 VALUES (1, 10, 'paypal', '{}', '', 'processed', 'ord_a', 'applied', 'VERIFIED'),
                        (2, 11, 'standard', '{}', '', 'received', NULL, NULL, NULL);",
            );
            let mine = store.read_with(|r| r.order_messages("ord_a")).unwrap();
            assert_eq!(mine.len(), 1);
            assert_eq!(mine[0].verification.as_deref(), Some("VERIFIED"));
            assert_eq!(mine[0].outcome.as_deref(), Some("applied"));
            let latest = store.read_with(|r| r.recent_messages(10)).unwrap();
            assert_eq!(latest.iter().map(|m| m.id).collect::<Vec<_>>(), [2, 1]);
            assert_eq!(store.read_with(|r| r.waiting_count()).unwrap(), 1);
        });
    }

    #[test]
    fn an_email_reads_with_its_bodies() {
        each_store("an_email_reads_with_its_bodies", |store| {
            store.execute(
                "INSERT INTO emails (id, dedupe_key, kind, to_address, order_id, subject,
                     text_body, html_body, status, attempts, next_try_at, created_at, sent_at)
                 VALUES (4, 'k', 'download_link', 'ann@example.com', 'ord_a', 'Your download',
                     'Get it: http://shop/downloads/x', '<p>Get it</p>', 'sent', 1, 0, 10, 11);",
            );
            let got = store.read_with(|r| r.email(4)).unwrap().unwrap();
            assert_eq!(got.kind, "download_link");
            assert_eq!(got.status, "sent");
            assert_eq!(got.order_id.as_deref(), Some("ord_a"));
            assert_eq!(got.text_body, "Get it: http://shop/downloads/x");
            assert_eq!(got.html_body, "<p>Get it</p>");
            assert_eq!(got.sent_at, Some(11));
            assert_eq!(store.read_with(|r| r.email(5)).unwrap(), None);
        });
    }
}
