//! Storage: everything the merchant keeps, behind an interface in the
//! merchant's own words that names no database type, so that each database
//! is one module (`sqlite/`, `postgres/`) with the same behaviour.
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
//! - `sqlite/` and `postgres/`: the two implementations, with the same
//!   behaviour, each split by what it stores; [`Database`] says which one
//!   [`open`] opens. The tests of each thing stored run on both (`testing.rs`).

pub mod downloads;
pub mod emails;
pub mod inbox;
pub mod orders;
pub mod payments;
pub mod postgres;
pub mod sqlite;
pub mod subscriptions;
#[cfg(test)]
pub(crate) mod testing;
pub mod views;

use std::path::{Path, PathBuf};
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

/// Where the merchant keeps its data.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file (created, with its folder, if missing).
    Sqlite(PathBuf),
    /// A `postgres://user@host:port/db` URL.
    Postgres(String),
}

impl Database {
    /// Reads `sqlite://FILE` (or `sqlite:FILE`), or
    /// `postgres://user@host:port/db` (or `postgresql://…`).
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                anyhow::bail!("database URL {url:?} names no file: use sqlite://FILE");
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            postgres::check_url(url)?;
            return Ok(Self::Postgres(url.to_owned()));
        }
        // Not repeated whole: a URL of another kind may hold a password.
        let scheme = url.split_once(':').map_or("(none)", |(scheme, _)| scheme);
        anyhow::bail!(
            "a database URL of scheme {scheme:?} is neither sqlite://FILE nor \
             postgres://user@host:port/db"
        );
    }

    /// The folder the SQLite file is in (`None` on PostgreSQL): where the
    /// merchant's other files go unless told otherwise.
    pub fn folder(&self) -> Option<&Path> {
        match self {
            Self::Sqlite(path) => Some(path.parent().unwrap_or(Path::new(""))),
            Self::Postgres(_) => None,
        }
    }
}

/// The file, or the URL without its password.
impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(url) => match url::Url::parse(url) {
                Ok(mut parsed) if parsed.password().is_some() => {
                    let _ = parsed.set_password(Some("***"));
                    write!(f, "{parsed}")
                }
                Ok(_) => f.write_str(url),
                Err(_) => f.write_str("postgres://(unparsed)"),
            },
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(_) => f.debug_tuple("Postgres").field(&self.to_string()).finish(),
        }
    }
}

/// Opens the merchant's database (a SQLite file is created, with its
/// folder, if missing) and applies the migrations it has not had.
pub fn open(database: &Database) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match database {
        Database::Sqlite(path) => Arc::new(sqlite::Sqlite::open(path)?),
        Database::Postgres(url) => Arc::new(postgres::Postgres::open(url)?),
    })
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

#[cfg(test)]
mod tests {
    use super::testing::each_store;

    #[test]
    fn an_attempt_that_fails_on_its_own_is_undone_alone() {
        each_store(
            "an_attempt_that_fails_on_its_own_is_undone_alone",
            |store| {
                store
                    .write(&mut |tx| {
                        tx.save_reconcile_cursor("evt_1", 1)?;
                        let failed = tx.attempt(&mut |tx| {
                            tx.save_reconcile_cursor("evt_2", 2)?;
                            anyhow::bail!("this message is broken")
                        })?;
                        assert!(failed.is_err());
                        // A constraint the work breaks is its own failure too.
                        let order = super::orders::tests::order("ord_1", "cs_1");
                        tx.insert_order(&order)?;
                        let again = tx.attempt(&mut |tx| tx.insert_order(&order))?;
                        assert!(again.is_err());
                        Ok(())
                    })
                    .unwrap();
                let cursor = store.read_with(|r| r.reconcile_cursor()).unwrap();
                assert_eq!(cursor.as_deref(), Some("evt_1"));
                assert!(store.read_with(|r| r.order("ord_1")).unwrap().is_some());
            },
        );
    }

    #[test]
    fn a_database_failure_in_an_attempt_gives_the_transaction_up() {
        each_store("a_database_failure_in_an_attempt", |store| {
            store.execute("DROP TABLE reconcile_cursor");
            let given_up = store.write(&mut |tx| {
                let attempt = tx.attempt(&mut |tx| tx.save_reconcile_cursor("evt_1", 1));
                assert!(attempt.is_err(), "{}: {attempt:?}", store.kind());
                attempt?.map_err(|_| anyhow::anyhow!("not the work's own failure"))
            });
            assert!(given_up.is_err());
        });
    }

    #[test]
    fn a_read_is_one_snapshot() {
        each_store("a_read_is_one_snapshot", |store| {
            let mut first = None;
            store
                .read(&mut |reads| {
                    first = Some(reads.reconcile_cursor()?);
                    // Committed meanwhile, by another transaction.
                    store.write(&mut |tx| tx.save_reconcile_cursor("evt_1", 1))?;
                    assert_eq!(reads.reconcile_cursor()?, None, "{}", store.kind());
                    Ok(())
                })
                .unwrap();
            assert_eq!(first, Some(None));
            let after = store.read_with(|r| r.reconcile_cursor()).unwrap();
            assert_eq!(after.as_deref(), Some("evt_1"));
        });
    }
}
