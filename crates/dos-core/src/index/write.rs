//! Changing the index: inserting a batch, moving and deleting rows, each in one transaction;
//! vacuum and checkpoint.

use rusqlite::params;

use super::{Index, NewRow, i64_of};
use crate::error::{Error, Result};
use crate::key::ObjectKey;
use crate::location::PackedLocation;

impl Index {
    /// Move rows (by id) to new locations in one transaction, the moves coming from an
    /// iterator (a long list read back from a file); an error of the iterator aborts it.
    pub fn relocate_all(
        &mut self,
        moves: impl Iterator<Item = Result<(i64, PackedLocation)>>,
    ) -> Result<()> {
        let mut failure = None;
        self.write_tx("index.relocate.before", |tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE db_object SET pack_id = ?1, \"offset\" = ?2, length = ?3, \
                 compressed = ?4 WHERE id = ?5",
            )?;
            for m in moves {
                let (id, loc) = match m {
                    Ok(m) => m,
                    Err(e) => {
                        failure = Some(e);
                        // Rolled back: the transaction is dropped uncommitted.
                        return Err(rusqlite::Error::InvalidQuery);
                    }
                };
                stmt.execute(params![
                    i64_of(loc.pack_id),
                    i64_of(loc.offset),
                    i64_of(loc.length),
                    i64::from(loc.compressed),
                    id
                ])?;
            }
            Ok(())
        })
        .map_err(|e| failure.take().unwrap_or(e))
    }

    /// Point every row of pack `from` at pack `to` (same offsets) in one transaction.
    pub fn rename_pack(&mut self, from: i64, to: i64) -> Result<usize> {
        self.conn
            .execute(
                "UPDATE db_object SET pack_id = ?1 WHERE pack_id = ?2",
                [to, from],
            )
            .map_err(|e| self.err(e))
    }

    /// Delete the rows of `keys` in one transaction; returns the keys that had a row.
    pub fn delete_keys(&mut self, keys: &[ObjectKey]) -> Result<Vec<ObjectKey>> {
        self.write_tx("index.delete.before", |tx| {
            let mut stmt = tx.prepare_cached("DELETE FROM db_object WHERE hashkey = ?1")?;
            let mut deleted = Vec::new();
            for k in keys {
                if stmt.execute([k.hex()])? > 0 {
                    deleted.push(*k);
                }
            }
            Ok(deleted)
        })
    }

    /// Rebuild the database file compactly (after large deletions or repacks).
    pub fn vacuum(&self) -> Result<()> {
        self.conn.execute_batch("VACUUM").map_err(|e| self.err(e))
    }

    /// Fold the WAL back into the database and truncate it.
    pub fn checkpoint(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| self.err(e))
    }

    /// Run `f` in one `BEGIN IMMEDIATE` transaction and commit it (the fault point `fault` sits
    /// right before the commit).
    pub(super) fn write_tx<T>(
        &mut self,
        fault: &str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let path = self.path.clone();
        let err = |e| Error::index(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let out = f(&tx).map_err(err)?;
        self.faults
            .point(fault)
            .map_err(|e| Error::io(&path, "commit index", e))?;
        tx.commit().map_err(err)?;
        Ok(out)
    }

    /// Whether a batch is in the index: after a commit that reported an error, which may still
    /// have committed (a failed fsync of the log, say), one row of it found at its own location
    /// tells (a transaction is all or nothing). Rows whose key was already stored elsewhere
    /// prove nothing and are passed over.
    pub fn batch_present(&self, rows: &[NewRow]) -> Result<bool> {
        for r in rows {
            if self.get(&r.key)? == Some(r.loc) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Insert rows in one transaction; rows whose key is already present are ignored.
    /// Returns how many rows were actually inserted.
    ///
    /// Rows go in in key order: the hashkey index then grows at a few places at a time instead
    /// of at one random leaf per row (a batch of random keys touched about a page per row).
    /// Empty objects go first, so that an empty object keeps a smaller row id than an object
    /// that starts at the same offset: validators (Python's too) walk a pack's rows by offset,
    /// ties in row-id order, and would otherwise see the empty one inside its neighbour.
    pub fn insert_batch(&mut self, rows: &[NewRow]) -> Result<usize> {
        let mut sorted: Vec<&NewRow> = rows.iter().collect();
        sorted.sort_by(|a, b| {
            (a.loc.length != 0)
                .cmp(&(b.loc.length != 0))
                .then_with(|| a.key.cmp(&b.key))
        });
        self.write_tx("index.commit.before", |tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO db_object (hashkey, compressed, size, \"offset\", \
                 length, pack_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut inserted = 0;
            for r in sorted {
                inserted += stmt.execute(params![
                    r.key.hex(),
                    i64::from(r.loc.compressed),
                    i64_of(r.loc.size),
                    i64_of(r.loc.offset),
                    i64_of(r.loc.length),
                    i64_of(r.loc.pack_id),
                ])?;
            }
            Ok(inserted)
        })
    }
}
