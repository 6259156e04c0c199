//! Finding keys: single lookups, many at once (by `IN` queries or one sorted scan), listing.

use std::ops::ControlFlow;

use rusqlite::OptionalExtension;

use super::{IN_CHUNK, Index, key_of_text};
use crate::error::Result;
use crate::key::ObjectKey;
use crate::location::PackedLocation;

impl Index {
    /// Location of one object, if packed.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<PackedLocation>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT pack_id, \"offset\", length, compressed, size FROM db_object WHERE hashkey = ?1",
            )
            .map_err(|e| self.err(e))?;
        let row = stmt
            .query_row([key.hex()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()
            .map_err(|e| self.err(e))?;
        row.map(|r| self.row_to_loc(key, r)).transpose()
    }

    /// Look up many keys; `f` is called for each key found (in no particular order).
    /// Uses `IN` queries for few keys and one sorted scan of the whole index for many.
    pub fn lookup_many(
        &self,
        sorted_keys: &[ObjectKey],
        mut f: impl FnMut(ObjectKey, PackedLocation) -> Result<()>,
    ) -> Result<()> {
        if sorted_keys.is_empty() {
            return Ok(());
        }
        // The largest row id stands for the number of rows (COUNT(*) would scan the whole key
        // index, a second on 10^7 rows). A full scan costs ~total rows; IN lookups cost
        // ~k·log(total). Prefer the scan when the request covers a sizeable share of the index.
        let total = u64::try_from(self.max_row_id()?).unwrap_or(0);
        if (sorted_keys.len() as u64) * 8 < total || sorted_keys.len() <= IN_CHUNK {
            // One read transaction for all the queries: SQLite otherwise takes and drops its
            // locks around every statement (half the time of many small lookups).
            let _read = self.read_transaction()?;
            for chunk in sorted_keys.chunks(IN_CHUNK) {
                let placeholders = vec!["?"; chunk.len()].join(",");
                let sql = format!(
                    "SELECT hashkey, pack_id, \"offset\", length, compressed, size FROM db_object \
                     WHERE hashkey IN ({placeholders})"
                );
                let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
                let mut rows = stmt
                    .query(rusqlite::params_from_iter(chunk.iter().map(ObjectKey::hex)))
                    .map_err(|e| self.err(e))?;
                while let Some(r) = rows.next().map_err(|e| self.err(e))? {
                    let Some(key) = key_of_text(self.hash, r.get_ref(0).map_err(|e| self.err(e))?)
                    else {
                        continue;
                    };
                    let raw = (|| Ok((r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))()
                        .map_err(|e| self.err(e))?;
                    let loc = self.row_to_loc(&key, raw)?;
                    f(key, loc)?;
                }
            }
            Ok(())
        } else {
            // The table in rowid order, not the key index: walking the index costs a table
            // lookup per row (measured: 2 µs a row against 0.3 µs).
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT hashkey, pack_id, \"offset\", length, compressed, size FROM db_object",
                )
                .map_err(|e| self.err(e))?;
            let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
            while let Some(r) = rows.next().map_err(|e| self.err(e))? {
                let Some(key) = key_of_text(self.hash, r.get_ref(0).map_err(|e| self.err(e))?)
                else {
                    continue;
                };
                if sorted_keys.binary_search(&key).is_err() {
                    continue;
                }
                let raw = (|| Ok((r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))()
                    .map_err(|e| self.err(e))?;
                let loc = self.row_to_loc(&key, raw)?;
                f(key, loc)?;
            }
            Ok(())
        }
    }

    /// Scan every row with a well-formed key in key order until `f` breaks.
    pub fn scan_sorted(
        &self,
        mut f: impl FnMut(ObjectKey, Result<PackedLocation>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT hashkey, pack_id, \"offset\", length, compressed, size FROM db_object \
                 ORDER BY hashkey",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let Some(key) = key_of_text(self.hash, r.get_ref(0).map_err(|e| self.err(e))?) else {
                continue;
            };
            let raw = (|| Ok((r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))()
                .map_err(|e| self.err(e))?;
            let loc = self.row_to_loc(&key, raw);
            if f(key, loc)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Scan every well-formed key in order until `f` breaks (covering index only: the fastest
    /// listing).
    pub fn scan_sorted_keys(
        &self,
        mut f: impl FnMut(ObjectKey) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT hashkey FROM db_object ORDER BY hashkey")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let Some(key) = key_of_text(self.hash, r.get_ref(0).map_err(|e| self.err(e))?) else {
                continue;
            };
            if f(key)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Which of `sorted_keys` are in the index (one bool per key, same order).
    pub fn contains_sorted(&self, sorted_keys: &[ObjectKey]) -> Result<Vec<bool>> {
        let mut out = vec![false; sorted_keys.len()];
        if sorted_keys.is_empty() {
            return Ok(out);
        }
        // A point lookup costs about as much as walking 25 keys of the index in order
        // (measured on 10^7 keys: 3.9 µs against 0.14 µs), so the walk wins from a 25th of
        // the index on.
        let total = u64::try_from(self.max_row_id()?).unwrap_or(0);
        if (sorted_keys.len() as u64) * 25 < total {
            let _read = self.read_transaction()?;
            let mut stmt = self
                .conn
                .prepare_cached("SELECT 1 FROM db_object WHERE hashkey = ?1")
                .map_err(|e| self.err(e))?;
            for (i, k) in sorted_keys.iter().enumerate() {
                out[i] = stmt.exists([k.hex()]).map_err(|e| self.err(e))?;
            }
        } else {
            let mut i = 0;
            let n = sorted_keys.len();
            self.scan_sorted_keys(|key| {
                while i < n && sorted_keys[i] < key {
                    i += 1;
                }
                while i < n && sorted_keys[i] == key {
                    out[i] = true;
                    i += 1;
                }
                Ok(if i >= n {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            })?;
        }
        Ok(out)
    }
}
