//! Storage: everything the merchant keeps, behind an interface in the
//! merchant's own words that names no database type, so that a second
//! database is one new module beside `sqlite/`.
//!
//! - [`Store`]: the database. [`Store::read`] runs typed reads ([`Reads`])
//!   on a read connection, in one snapshot, never waiting for a commit;
//!   [`Store::write_batch`] and [`Store::write`] run typed writes ([`Tx`])
//!   in ONE transaction. Only the writer thread (`writer.rs`) calls them.
//! - [`Reads`] and [`Tx`]: one pair of traits per thing stored, each beside
//!   its rows: `inbox.rs` (messages, postbacks, what the handler made of
//!   them, reconciliation's cursor), `orders.rs`, `payments.rs` (payment
//!   facts, held claims, flags, the keys already applied),
//!   `subscriptions.rs`, `emails.rs`, `downloads.rs`. What a write means
//!   (what a notice does to an order, which email to queue, whether a
//!   download may be taken) is decided by the modules that call it; storage
//!   loads and saves rows.
//! - `views.rs`: what only the pages and the API read ([`ViewReads`]), and
//!   each page put together from it in one snapshot.
//! - [`Reader`]: [`Store::read`] for async code.
//! - `sqlite/`: the SQLite implementation, split by what it stores.

pub mod downloads;
pub mod emails;
pub mod inbox;
pub mod orders;
pub mod payments;
pub mod sqlite;
pub mod subscriptions;
pub mod views;

use std::path::Path;
use std::sync::Arc;

pub use self::downloads::{DownloadReads, DownloadWrites, Grant, NewGrant};
pub use self::emails::{EmailReads, EmailWrites, EmailsDue, FailedAttempt, NewEmail, QueuedEmail};
pub use self::inbox::{
    CursorReads, CursorWrites, Handled, InboxId, InboxReads, InboxStatus, InboxWrites, NewMessage,
    Outcome, PostbacksDue, Stored, Unverified, Verification, Waiting,
};
pub use self::orders::{Line, Order, OrderReads, OrderWrites};
pub use self::payments::{HeldClaim, Owner, PaymentReads, PaymentRecord, PaymentWrites};
pub use self::subscriptions::{SubscriptionReads, SubscriptionRow, SubscriptionWrites};
pub use self::views::{EmailRow, FlagRow, InboxSummary, PaymentRow, ViewReads};

/// A storage failure: the database is unreachable, full or corrupt. Never an
/// expected outcome, so it carries context, not structure.
pub type StoreError = ipn_storage::StoreError;

/// Applies one item of a batch through the transaction; its index in the
/// batch is the second argument.
pub type ApplyItem<'a> = dyn FnMut(&dyn Tx, usize) -> Result<(), StoreError> + 'a;

/// What a database must do for the merchant.
pub trait Store: std::fmt::Debug + Send + Sync + 'static {
    /// Runs `read` on a read connection, in ONE snapshot, so that what it
    /// reads agrees with itself. It never waits for a commit.
    fn read(
        &self,
        read: &mut dyn FnMut(&dyn Reads) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Runs `apply` for each of `len` items inside ONE transaction and
    /// commits; one result per item, in order. An item whose `apply` fails
    /// rolls back alone and the others still commit; a failing commit fails
    /// the whole batch. `apply` may run more than once for an item (the
    /// batch is redone when one fails): what it returns the last time is
    /// what committed.
    fn write_batch(
        &self,
        len: usize,
        apply: &mut ApplyItem<'_>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError>;

    /// Runs `work` in ONE transaction: committed when it returns `Ok`,
    /// rolled back otherwise.
    fn write(
        &self,
        work: &mut dyn FnMut(&dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
}

impl dyn Store {
    /// [`Store::read`], returning what `read` returns.
    pub fn read_with<T>(
        &self,
        read: impl FnOnce(&dyn Reads) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut read = Some(read);
        let mut value = None;
        self.read(&mut |reads| {
            if let Some(read) = read.take() {
                value = Some(read(reads)?);
            }
            Ok(())
        })?;
        value.ok_or_else(|| anyhow::anyhow!("the store did not run the read"))
    }

    /// [`Store::write`], returning what `work` returns.
    pub fn write_with<T>(
        &self,
        work: impl FnOnce(&dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut work = Some(work);
        let mut value = None;
        self.write(&mut |tx| {
            if let Some(work) = work.take() {
                value = Some(work(tx)?);
            }
            Ok(())
        })?;
        value.ok_or_else(|| anyhow::anyhow!("the store did not run the write"))
    }
}

/// Every typed read. Inside a [`Tx`] they see the transaction's own
/// writes.
pub trait Reads:
    InboxReads
    + CursorReads
    + OrderReads
    + PaymentReads
    + SubscriptionReads
    + EmailReads
    + DownloadReads
    + ViewReads
{
}

impl<T> Reads for T where
    T: InboxReads
        + CursorReads
        + ViewReads
        + OrderReads
        + PaymentReads
        + SubscriptionReads
        + EmailReads
        + DownloadReads
        + ?Sized
{
}

/// The reads and writes of one transaction of the writer.
pub trait Tx:
    Reads
    + InboxWrites
    + CursorWrites
    + OrderWrites
    + PaymentWrites
    + SubscriptionWrites
    + EmailWrites
    + DownloadWrites
{
    /// Runs `work` so that its writes can be undone alone: when it fails on
    /// its own (a message it cannot handle, a row that breaks a constraint)
    /// its writes are rolled back, the transaction goes on, and the answer
    /// is `Ok(Err(why))`. When the database itself fails (the disk, a lock,
    /// memory) the answer is `Err`: the whole transaction must be given up.
    fn attempt(
        &self,
        work: &mut dyn FnMut(&dyn Tx) -> Result<(), StoreError>,
    ) -> Result<Result<(), StoreError>, StoreError>;
}

/// Opens the merchant's database at `path` (created, with its folder, if
/// missing) and applies the migrations it has not had.
pub fn open(path: &Path) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(sqlite::Sqlite::open(path)?))
}

/// Typed reads for async code: each runs on the blocking pool, so a slow
/// disk never stalls the runtime. Cheap to clone.
#[derive(Clone)]
pub struct Reader {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

impl Reader {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Runs `read` in one snapshot and returns what it does.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&dyn Reads) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store.read_with(read)).await?
    }
}
