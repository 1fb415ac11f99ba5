//! The test clock's offset, kept so that time never goes back across a
//! restart.

use ipn_storage::postgres::Conn;

use crate::clock::Millis;
use crate::storage::StoreError;

pub(super) fn offset(conn: &Conn) -> Result<Millis, StoreError> {
    Ok(conn
        .query_opt("SELECT offset_ms FROM clock WHERE id = 1", &[])?
        .map(|row| row.try_get(0))
        .transpose()?
        .unwrap_or_default())
}

/// Saves the offset unless a larger one is saved: it only ever grows.
pub(super) fn save_offset(tx: &Conn, offset: Millis) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO clock (id, offset_ms) VALUES (1, $1)
         ON CONFLICT (id) DO UPDATE SET offset_ms = GREATEST(clock.offset_ms, excluded.offset_ms)",
        &[&offset],
    )?;
    Ok(())
}
