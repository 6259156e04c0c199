//! `dos_remote_pack`: dos's own table of packs that live in object storage (Python's code never
//! queries it; its presence changes nothing for Python). Created by the first offload.

use rusqlite::{OptionalExtension, params};

use super::{Index, i64_of};
use crate::error::Result;

pub(crate) const CREATE_REMOTE_SQL: &str = "CREATE TABLE IF NOT EXISTS dos_remote_pack (\
    pack_id INTEGER NOT NULL PRIMARY KEY, \
    name TEXT NOT NULL, \
    length INTEGER NOT NULL, \
    sha256 TEXT NOT NULL, \
    offloaded_at INTEGER NOT NULL); \
    CREATE TABLE IF NOT EXISTS dos_remote_retired (\
    name TEXT NOT NULL PRIMARY KEY, \
    retired_at INTEGER NOT NULL)";

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Where one offloaded pack lives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RemotePackRow {
    /// The pack id.
    pub pack_id: u64,
    /// The object's name under the store's prefix (`packs/<id>.<hex>`).
    pub name: String,
    /// Its length in bytes.
    pub length: u64,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
    /// When it was recorded, in seconds since the Unix epoch.
    pub offloaded_at: i64,
}

impl Index {
    fn has_remote_table(&self) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' \
                 AND name = 'dos_remote_pack')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Every offloaded pack, by id (none if the table does not exist).
    pub fn remote_packs(&self) -> Result<Vec<RemotePackRow>> {
        if !self.has_remote_table()? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT pack_id, name, length, sha256, offloaded_at FROM dos_remote_pack \
                 ORDER BY pack_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))?;
        // A row whose numbers are negative names no pack (a damaged table): skipped.
        Ok(rows
            .into_iter()
            .filter_map(|(id, name, length, sha256, at)| {
                Some(RemotePackRow {
                    pack_id: u64::try_from(id).ok()?,
                    name,
                    length: u64::try_from(length).ok()?,
                    sha256,
                    offloaded_at: at,
                })
            })
            .collect())
    }

    /// Where pack `pack_id` lives remotely, if it does.
    pub fn remote_pack(&self, pack_id: u64) -> Result<Option<RemotePackRow>> {
        if !self.has_remote_table()? {
            return Ok(None);
        }
        let row = self
            .conn
            .query_row(
                "SELECT name, length, sha256, offloaded_at FROM dos_remote_pack \
                 WHERE pack_id = ?1",
                [i64_of(pack_id)],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(row.and_then(|(name, length, sha256, at)| {
            Some(RemotePackRow {
                pack_id,
                name,
                length: u64::try_from(length).ok()?,
                sha256,
                offloaded_at: at,
            })
        }))
    }

    /// Record that `row.pack_id` lives remotely, in one transaction (replacing an earlier
    /// record of that pack).
    pub fn insert_remote_pack(&mut self, row: &RemotePackRow) -> Result<()> {
        self.write_tx("index.remote.before", |tx| {
            tx.execute_batch(CREATE_REMOTE_SQL)?;
            // An earlier object of this pack (uploaded again) is retired now.
            tx.execute(
                "INSERT OR REPLACE INTO dos_remote_retired (name, retired_at) \
                 SELECT name, ?2 FROM dos_remote_pack WHERE pack_id = ?1 AND name != ?3",
                params![i64_of(row.pack_id), now_secs(), row.name],
            )?;
            tx.execute(
                "INSERT OR REPLACE INTO dos_remote_pack (pack_id, name, length, sha256, \
                 offloaded_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    i64_of(row.pack_id),
                    row.name,
                    i64_of(row.length),
                    row.sha256,
                    row.offloaded_at
                ],
            )?;
            Ok(())
        })
    }

    /// Forget that pack `pack_id` lives remotely (it is local again, or gone), in one
    /// transaction; its object is recorded as retired now (`clean` deletes it once its grace
    /// period has passed since).
    pub fn delete_remote_pack(&mut self, pack_id: u64) -> Result<()> {
        if !self.has_remote_table()? {
            return Ok(());
        }
        self.write_tx("index.remote.before", |tx| {
            tx.execute_batch(CREATE_REMOTE_SQL)?;
            tx.execute(
                "INSERT OR REPLACE INTO dos_remote_retired (name, retired_at) \
                 SELECT name, ?2 FROM dos_remote_pack WHERE pack_id = ?1",
                params![i64_of(pack_id), now_secs()],
            )?;
            tx.execute(
                "DELETE FROM dos_remote_pack WHERE pack_id = ?1",
                [i64_of(pack_id)],
            )?;
            Ok(())
        })
    }

    /// Objects no longer used by this index and when they stopped being used (seconds since
    /// the epoch).
    pub fn retired_remote_objects(&self) -> Result<Vec<(String, i64)>> {
        if !self.has_remote_table()? {
            return Ok(Vec::new());
        }
        let exists: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' \
                 AND name = 'dos_remote_retired')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        if !exists {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, retired_at FROM dos_remote_retired")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Forget retired objects that were deleted from the store.
    pub fn forget_retired(&mut self, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        self.write_tx("index.remote.before", |tx| {
            let mut stmt = tx.prepare_cached("DELETE FROM dos_remote_retired WHERE name = ?1")?;
            for n in names {
                stmt.execute([n])?;
            }
            Ok(())
        })
    }
}
