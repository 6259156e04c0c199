//! Rows by pack, as stored: what validate, repack and the per-pack totals walk.

use std::ops::ControlFlow;

use super::{CompactRow, Index, PackStats, RawRow, key_of_text};
use crate::error::Result;

impl Index {
    /// Visit all rows ordered by `(pack_id, offset)` (rows of one pack are contiguous), until `f`
    /// breaks. SQLite sorts in a temporary B-tree, so memory stays bounded.
    pub fn scan_by_pack(
        &self,
        pack_id: Option<i64>,
        mut f: impl FnMut(RawRow) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let sql = if pack_id.is_some() {
            "SELECT id, hashkey, pack_id, \"offset\", length, compressed, size FROM db_object \
             WHERE pack_id = ?1 ORDER BY \"offset\", id"
        } else {
            "SELECT id, hashkey, pack_id, \"offset\", length, compressed, size FROM db_object \
             ORDER BY pack_id, \"offset\", id"
        };
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let mut rows = match pack_id {
            Some(p) => stmt.query([p]),
            None => stmt.query([]),
        }
        .map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let row = RawRow::from_sql(r).map_err(|e| self.err(e))?;
            if f(row)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Every row, sorted by `(pack_id, offset, id)` in memory (what [`Index::scan_by_pack`] with
    /// no pack visits, without SQLite's sort, which is serial and slower): `None` when there are
    /// more than `max_rows` rows or a key is not well formed (lowercase hex of the container's
    /// hash type), for the caller to fall
    /// back to the bounded-memory scan. Costs [`CompactRow`]'s 80 bytes per row.
    pub fn rows_by_pack_in_memory(&self, max_rows: usize) -> Result<Option<Vec<CompactRow>>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, hashkey, pack_id, \"offset\", length, compressed, size FROM db_object",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        let mut out: Vec<CompactRow> = Vec::new();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            if out.len() == max_rows {
                return Ok(None);
            }
            let Some(key) = key_of_text(self.hash, r.get_ref(1).map_err(|e| self.err(e))?) else {
                return Ok(None);
            };
            let row = (|| {
                Ok(CompactRow {
                    key,
                    id: r.get(0)?,
                    pack_id: r.get(2)?,
                    offset: r.get(3)?,
                    length: r.get(4)?,
                    size: r.get(6)?,
                    compressed: r.get::<_, i64>(5)? != 0,
                })
            })()
            .map_err(|e| self.err(e))?;
            out.push(row);
        }
        drop(rows);
        out.sort_unstable_by_key(|r| (r.pack_id, r.offset, r.id));
        Ok(Some(out))
    }

    /// The first row of pack `pack_id` that does not lie inside its `pack_len` bytes (negative
    /// offset or length, or an end past the pack), if any: one scan, nothing held.
    pub fn first_row_outside(&self, pack_id: i64, pack_len: u64) -> Result<Option<RawRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, hashkey, pack_id, \"offset\", length, compressed, size FROM db_object \
                 WHERE pack_id = ?1 AND (\"offset\" < 0 OR length < 0 \
                 OR \"offset\" > ?2 - length) LIMIT 1",
            )
            .map_err(|e| self.err(e))?;
        let len = i64::try_from(pack_len).unwrap_or(i64::MAX);
        let mut rows = stmt.query([pack_id, len]).map_err(|e| self.err(e))?;
        match rows.next().map_err(|e| self.err(e))? {
            Some(r) => RawRow::from_sql(r).map(Some).map_err(|e| self.err(e)),
            None => Ok(None),
        }
    }

    /// Objects and bytes of one pack (`None` when it has no rows).
    pub fn pack_stats_of(&self, pack_id: i64) -> Result<Option<PackStats>> {
        let (n, bytes): (i64, i64) = self
            .conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(length), 0) FROM db_object WHERE pack_id = ?1",
                [pack_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))?;
        Ok((n > 0).then(|| PackStats {
            pack_id,
            objects: u64::try_from(n).unwrap_or(0),
            bytes: u64::try_from(bytes).unwrap_or(0),
        }))
    }

    /// Whether pack `pack_id` holds a row whose compressed flag is `compressed`.
    pub fn pack_has_compressed(&self, pack_id: i64, compressed: bool) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM db_object WHERE pack_id = ?1 AND compressed = ?2)",
                [pack_id, i64::from(compressed)],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Visit the rows of one pack in storage order (no sort) until `f` breaks.
    pub fn scan_pack_unordered(
        &self,
        pack_id: i64,
        mut f: impl FnMut(RawRow) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, hashkey, pack_id, \"offset\", length, compressed, size FROM db_object \
                 WHERE pack_id = ?1",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([pack_id]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let row = RawRow::from_sql(r).map_err(|e| self.err(e))?;
            if f(row)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Rows of one pack, ordered by offset.
    pub fn rows_in_pack(&self, pack_id: i64) -> Result<Vec<RawRow>> {
        let mut v = Vec::new();
        self.scan_by_pack(Some(pack_id), |r| {
            v.push(r);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(v)
    }

    /// Rows, bytes per pack id present in the index.
    pub fn pack_stats(&self) -> Result<Vec<PackStats>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT pack_id, COUNT(*), COALESCE(SUM(length), 0) FROM db_object \
                 GROUP BY pack_id ORDER BY pack_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(PackStats {
                    pack_id: r.get(0)?,
                    objects: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    bytes: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }
}
