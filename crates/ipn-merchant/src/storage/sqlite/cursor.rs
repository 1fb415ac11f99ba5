//! The `reconcile_cursor` table: one row, the id of the last event
//! reconciliation stored.

use rusqlite::{OptionalExtension as _, params};

use super::Sql;
use crate::storage::StoreError;
use crate::storage::inbox::{CursorReads, CursorWrites};

impl CursorReads for Sql<'_> {
    fn reconcile_cursor(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT after FROM reconcile_cursor WHERE id = 1")?
            .query_row([], |row| row.get(0))
            .optional()?)
    }
}

impl CursorWrites for Sql<'_> {
    fn save_reconcile_cursor(&self, after: &str, now: i64) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO reconcile_cursor (id, after, updated_at) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET
                     after = excluded.after, updated_at = excluded.updated_at",
            )?
            .execute(params![after, now])?;
        Ok(())
    }
}
