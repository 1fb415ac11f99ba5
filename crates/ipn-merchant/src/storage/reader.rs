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
