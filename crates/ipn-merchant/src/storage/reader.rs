//! The read connection: the postback worker's view of the inbox and the
//! shop's view of its orders. Reads run
//! on the blocking pool so a slow disk never stalls the runtime.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::anyhow;
use rusqlite::Connection;

use super::orders::{self, Order};
use super::postback::{self, Due};
use super::{StoreError, sqlite};

/// A handle to the read connection; cheap to clone.
#[derive(Clone)]
pub struct Reader {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

impl Reader {
    /// Opens a read connection on a database [`sqlite::open`] has migrated.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            conn: Arc::new(Mutex::new(sqlite::open_reader(path)?)),
        })
    }

    /// See [`postback::due`].
    pub async fn postbacks_due(&self, now: i64, limit: usize) -> Result<Due, StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let conn = conn
                .lock()
                .map_err(|_| anyhow!("the read connection's lock is poisoned"))?;
            postback::due(&conn, now, limit)
        })
        .await?
    }

    /// See [`orders::get`].
    pub async fn order(&self, id: String) -> Result<Option<Order>, StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let conn = conn
                .lock()
                .map_err(|_| anyhow!("the read connection's lock is poisoned"))?;
            orders::get(&conn, &id)
        })
        .await?
    }
}

/// An order with everything that happened to it.
#[derive(Debug, Clone)]
pub struct OrderDetails {
    pub order: Order,
    pub payments: Vec<crate::handler::store::PaymentRow>,
    pub flags: Vec<crate::handler::store::FlagRow>,
    pub emails: Vec<crate::mail::EmailRow>,
    pub downloads: Vec<crate::downloads::Grant>,
    /// The subscription the order started, for a subscription order.
    pub subscription: Option<crate::handler::subscriptions::Row>,
}

impl OrderDetails {
    /// `order` with what happened to it, read in the caller's transaction.
    fn read(conn: &Connection, order: Order) -> Result<Self, StoreError> {
        let id = order.id.as_str();
        let subscription = match &order.subscription_id {
            Some(sub) => crate::handler::subscriptions::get(conn, sub)?,
            None => None,
        };
        let mut payments = crate::handler::store::order_payments(conn, id)?;
        if let Some(sub) = &order.subscription_id {
            // A subscription order's money is its period payments.
            let owner = crate::handler::store::Owner::Subscription(sub);
            payments.extend(crate::handler::store::payments(conn, owner)?);
            payments.sort_by(|a, b| a.txn_id.cmp(&b.txn_id));
            // A refund may be both the order's and the subscription's.
            payments.dedup_by(|a, b| a.txn_id == b.txn_id);
        }
        Ok(Self {
            payments,
            flags: crate::handler::store::order_flags(conn, id)?,
            emails: crate::mail::for_order(conn, id)?,
            downloads: crate::downloads::for_order(conn, id)?,
            subscription,
            order,
        })
    }
}

impl Reader {
    /// Runs `read` on the connection, on the blocking pool.
    pub(crate) async fn with<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let conn = conn
                .lock()
                .map_err(|_| anyhow!("the read connection's lock is poisoned"))?;
            read(&conn)
        })
        .await?
    }

    /// The order `id` with its payments, flags, emails and downloads, read
    /// in one transaction so they agree with each other.
    pub async fn order_details(&self, id: String) -> Result<Option<OrderDetails>, StoreError> {
        self.with(move |conn| {
            let tx = conn.unchecked_transaction()?;
            let Some(order) = orders::get(&tx, &id)? else {
                return Ok(None);
            };
            let details = OrderDetails::read(&tx, order)?;
            tx.finish()?;
            Ok(Some(details))
        })
        .await
    }

    /// The subscription `id` with its emails.
    pub async fn subscription(
        &self,
        id: String,
    ) -> Result<
        Option<(
            crate::handler::subscriptions::Row,
            Vec<crate::mail::EmailRow>,
        )>,
        StoreError,
    > {
        self.with(move |conn| {
            let Some(row) = crate::handler::subscriptions::get(conn, &id)? else {
                return Ok(None);
            };
            Ok(Some((row, crate::mail::for_subscription(conn, &id)?)))
        })
        .await
    }
}

/// What the admin dashboard shows, read in one transaction.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub orders: super::views::OrderPage,
    pub flags: Vec<crate::handler::store::FlagRow>,
    pub inbox: Vec<super::views::InboxSummary>,
    pub emails: Vec<crate::mail::EmailRow>,
}

/// How many of each list the dashboard shows.
#[derive(Debug, Clone, Copy)]
pub struct DashboardLimits {
    pub orders: usize,
    pub flags: usize,
    pub inbox: usize,
    pub emails: usize,
}

impl Reader {
    /// The order `id` as its customer's page shows it, with the key that
    /// signs its download links.
    pub async fn order_page(
        &self,
        id: String,
    ) -> Result<Option<(OrderDetails, crate::downloads::SigningKey)>, StoreError> {
        let Some(details) = self.order_details(id).await? else {
            return Ok(None);
        };
        let key = self.with(crate::downloads::signing_key).await?;
        Ok(Some((details, key)))
    }

    /// The order `id` as the admin's page shows it: its details and the
    /// inbox messages tied to it.
    pub async fn admin_order(
        &self,
        id: String,
    ) -> Result<Option<(OrderDetails, Vec<super::views::InboxSummary>)>, StoreError> {
        self.with(move |conn| {
            let tx = conn.unchecked_transaction()?;
            let Some(order) = orders::get(&tx, &id)? else {
                return Ok(None);
            };
            let details = OrderDetails::read(&tx, order)?;
            let inbox = super::views::order_inbox(&tx, &id)?;
            tx.finish()?;
            Ok(Some((details, inbox)))
        })
        .await
    }

    /// The admin dashboard: a page of orders (older than the order
    /// `before`, when given), the open flags, the latest messages and
    /// emails.
    pub async fn dashboard(
        &self,
        before: Option<String>,
        limits: DashboardLimits,
    ) -> Result<Dashboard, StoreError> {
        self.with(move |conn| {
            let tx = conn.unchecked_transaction()?;
            let dashboard = Dashboard {
                orders: super::views::recent_orders(&tx, before.as_deref(), limits.orders)?,
                flags: super::views::open_flags(&tx, limits.flags)?,
                inbox: super::views::recent_inbox(&tx, limits.inbox)?,
                emails: crate::mail::recent(&tx, limits.emails)?,
            };
            tx.finish()?;
            Ok(dashboard)
        })
        .await
    }
}

impl Reader {
    /// The email `id` with its bodies, for the admin's email page.
    pub async fn admin_email(
        &self,
        id: i64,
    ) -> Result<Option<super::views::EmailView>, StoreError> {
        self.with(move |conn| super::views::email(conn, id)).await
    }
}
