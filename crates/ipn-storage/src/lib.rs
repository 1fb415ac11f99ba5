//! `ipn-storage`: what the gateway and the merchant both need of a database,
//! written once and knowing nothing of payments or orders.
//!
//! - `migrations`: a service's schema changes as `.sql` files, one change
//!   per file, applied in order and recorded.
//! - `postgres`: the same for PostgreSQL (`tokio-postgres` clients behind
//!   synchronous calls, driven by one background runtime), a migration
//!   runner that several processes can start at once, and fresh databases
//!   for tests.
//! - `sqlite`: opening a SQLite file (WAL, the pragmas both services use),
//!   the pool of read connections, and a batch applied in one transaction
//!   where a failing item rolls back alone.
//! - `writer`: the one thread that writes, committing whatever has queued up
//!   as one transaction (group commit), and its handle.
//!
//! Each service keeps its own SQL in its own `storage/` module; this crate
//! holds none.

pub mod migrations;
pub mod postgres;
pub mod sqlite;
pub mod writer;

pub use migrations::Migration;
pub use writer::{Committer, Linger, Tuning, Wake, WriteError, Writer};

/// A storage failure: the database is unreachable, full or corrupt. Never an
/// expected outcome of a request, so it carries context, not structure.
pub type StoreError = anyhow::Error;
