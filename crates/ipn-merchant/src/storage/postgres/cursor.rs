//! The `reconcile_cursor` table: one row, the id of the last event
//! reconciliation stored.

use ipn_storage::postgres::text;

use super::Pg;
use crate::storage::StoreError;
use crate::storage::inbox::{CursorReads, CursorWrites};

impl CursorReads for Pg<'_> {
    fn reconcile_cursor(&self) -> Result<Option<String>, StoreError> {
        self.0
            .query_opt("SELECT after FROM reconcile_cursor WHERE id = 1", &[])?
            .map(|row| Ok(row.try_get(0)?))
            .transpose()
    }
}

impl CursorWrites for Pg<'_> {
    fn save_reconcile_cursor(&self, after: &str, now: i64) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO reconcile_cursor (id, after, updated_at) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET
                 after = excluded.after, updated_at = excluded.updated_at",
            &[&text(after), &now],
        )?;
        Ok(())
    }
}
