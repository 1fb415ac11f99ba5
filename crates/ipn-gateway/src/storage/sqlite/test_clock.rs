//! The test clock's offset, kept so that time never goes back across a
//! restart.

use rusqlite::{Connection, OptionalExtension as _};

use crate::clock::Millis;
use crate::storage::StoreError;

pub(super) fn offset(conn: &Connection) -> Result<Millis, StoreError> {
    Ok(conn
        .prepare_cached("SELECT offset_ms FROM clock WHERE id = 1")?
        .query_row([], |row| row.get(0))
        .optional()?
        .unwrap_or_default())
}

/// Saves the offset unless a larger one is saved: it only ever grows.
pub(super) fn save_offset(tx: &Connection, offset: Millis) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO clock (id, offset_ms) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET offset_ms = MAX(offset_ms, excluded.offset_ms)",
    )?
    .execute([offset])?;
    Ok(())
}
