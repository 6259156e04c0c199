//! `packs.idx`: the SQLite index of packed objects.
//!
//! The schema is Python's (`db_object`, unique index `ix_db_object_hashkey`); containers created by
//! disk-objectstore ≤ 0.5 carry an extra `CHECK (compressed IN (0, 1))`, which changes nothing for
//! us. The database is in WAL mode, as Python forces. Statements run in autocommit mode (no
//! long-lived read transaction), so every query sees the latest committed state; writes are one
//! `BEGIN IMMEDIATE` transaction per batch.
//!
//! This file opens and checks the index; finding keys is in `lookup`, walking rows by pack in
//! `rows`, every change in `write`, and dos's own table of offloaded packs in `remote`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

mod lookup;
mod remote;
mod rows;
mod spill;
mod write;

pub use spill::{MergedRows, SPILL_PREFIX, SortedRows};

pub(crate) use remote::CREATE_REMOTE_SQL;
pub use remote::RemotePackRow;

use crate::error::{Corruption, Error, Result, SchemaProblem};
use crate::fault::FaultPlan;
use crate::hashing::HashType;
use crate::key::ObjectKey;
pub use crate::location::PackedLocation;

/// The `CREATE TABLE` statement exactly as SQLAlchemy emits it for Python disk-objectstore.
pub const CREATE_TABLE_SQL: &str = "CREATE TABLE db_object (\n\tid INTEGER NOT NULL, \n\thashkey VARCHAR NOT NULL, \n\tcompressed BOOLEAN NOT NULL, \n\tsize INTEGER NOT NULL, \n\t\"offset\" INTEGER NOT NULL, \n\tlength INTEGER NOT NULL, \n\tpack_id INTEGER NOT NULL, \n\tPRIMARY KEY (id)\n)";
/// The unique index on `hashkey`, as Python creates it.
pub const CREATE_INDEX_SQL: &str =
    "CREATE UNIQUE INDEX ix_db_object_hashkey ON db_object (hashkey)";

/// Keys per `IN (...)` query (Python uses 950; SQLite allows far more, fewer round trips win).
const IN_CHUNK: usize = 900;
/// How long a writer waits for another process's write transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(120);
/// SQLite's page cache of a connection, KiB.
const CACHE_KIB: u32 = 64 * 1024;

/// A row to insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewRow {
    /// The key.
    pub key: ObjectKey,
    /// Its location.
    pub loc: PackedLocation,
}

/// A row as stored, without interpretation (pack ids may be -1, values may be negative, the key
/// text may be malformed): what maintenance that must carry every row, whatever it holds, sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRow {
    /// Row id.
    pub id: i64,
    /// The key, as stored.
    pub key: String,
    /// Pack id (-1 during a Python repack).
    pub pack_id: i64,
    /// Offset in the pack.
    pub offset: i64,
    /// Length in the pack.
    pub length: i64,
    /// Compressed flag as stored.
    pub compressed: bool,
    /// Uncompressed size.
    pub size: i64,
}

impl RawRow {
    /// The row a statement selecting `id, hashkey, pack_id, "offset", length, compressed, size`
    /// (in that order) returned; a NULL key reads as an empty one (reported as malformed).
    pub(crate) fn from_sql(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawRow {
            id: r.get(0)?,
            key: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
            pack_id: r.get(2)?,
            offset: r.get(3)?,
            length: r.get(4)?,
            compressed: r.get::<_, i64>(5)? != 0,
            size: r.get(6)?,
        })
    }

    /// The location, if every field is in range.
    pub fn location(&self) -> Option<PackedLocation> {
        Some(PackedLocation {
            pack_id: u64::try_from(self.pack_id).ok()?,
            offset: u64::try_from(self.offset).ok()?,
            length: u64::try_from(self.length).ok()?,
            compressed: self.compressed,
            size: u64::try_from(self.size).ok()?,
        })
    }
}

/// A [`RawRow`] whose key is well formed, held as an [`ObjectKey`] (80 bytes in all, against
/// about 150 for a `RawRow` and its string), for holding every row in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactRow {
    /// The key.
    pub key: ObjectKey,
    /// Row id.
    pub id: i64,
    /// Pack id as stored.
    pub pack_id: i64,
    /// Offset as stored.
    pub offset: i64,
    /// Length as stored.
    pub length: i64,
    /// Uncompressed size as stored.
    pub size: i64,
    /// Compressed flag as stored.
    pub compressed: bool,
}

impl From<CompactRow> for RawRow {
    fn from(c: CompactRow) -> Self {
        RawRow {
            id: c.id,
            key: c.key.hex().as_str().to_owned(),
            pack_id: c.pack_id,
            offset: c.offset,
            length: c.length,
            compressed: c.compressed,
            size: c.size,
        }
    }
}

/// Per-pack totals of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackStats {
    /// Pack id as stored.
    pub pack_id: i64,
    /// Rows in this pack.
    pub objects: u64,
    /// Sum of lengths.
    pub bytes: u64,
}

/// An open read transaction of an [`Index`]; ends (COMMIT, nothing to write) when dropped.
pub(crate) struct ReadTransaction<'a> {
    conn: &'a Connection,
}

impl Drop for ReadTransaction<'_> {
    fn drop(&mut self) {
        // A read-only transaction: ending it cannot fail in a way that loses anything.
        let _ = self.conn.execute_batch("COMMIT");
    }
}

/// A connection to `packs.idx`.
pub struct Index {
    conn: Connection,
    path: PathBuf,
    /// The hash type of the container's keys (to read key text back as keys).
    hash: HashType,
    faults: FaultPlan,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("path", &self.path).finish()
    }
}

/// Convert a signed SQLite integer column to u64, naming the object on failure.
fn to_u64(v: i64, field: &'static str, key: &ObjectKey, path: &Path) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::Corrupt {
        key: key.to_string(),
        path: path.to_path_buf(),
        problem: if field == "pack_id" && v == -1 {
            Corruption::InterruptedRepack
        } else {
            Corruption::NegativeField { field, value: v }
        },
        location: None,
    })
}

/// The key of an index row's text, if it is a well-formed key of `hash` (rows with anything
/// else cannot be the object of any key asked for).
fn key_of_text(hash: HashType, v: rusqlite::types::ValueRef<'_>) -> Option<ObjectKey> {
    match v {
        rusqlite::types::ValueRef::Text(t) => ObjectKey::from_canonical(hash, t),
        _ => None,
    }
}

fn i64_of(v: u64) -> i64 {
    // Pack offsets and sizes are file sizes, far below 2^63.
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Index {
    fn err(&self, e: rusqlite::Error) -> Error {
        Error::index(&self.path, e)
    }

    fn setup(conn: Connection, path: &Path, hash: HashType, faults: FaultPlan) -> Result<Self> {
        let me = Self {
            conn,
            path: path.to_path_buf(),
            hash,
            faults,
        };
        me.conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| me.err(e))?;
        let mode: String = me
            .conn
            .query_row("PRAGMA journal_mode=wal", [], |r| r.get(0))
            .map_err(|e| me.err(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::IndexSchema {
                path: path.to_path_buf(),
                problem: SchemaProblem::NotWal(mode),
            });
        }
        // Commits must be durable when they return: loose copies are deleted after them.
        // A page cache of 64 MiB instead of SQLite's 2 MiB: the interior pages of a key index
        // of 10^7 objects (1.7 GB) then stay in it (docs/performance.md, "Ten million
        // objects", also for the options measured and not taken).
        me.conn
            .execute_batch(&format!(
                "PRAGMA synchronous=FULL; PRAGMA cache_size=-{}",
                CACHE_KIB
            ))
            .map_err(|e| me.err(e))?;
        Ok(me)
    }

    /// Create a new, empty index at `path` (which must not exist) of keys of `hash`; its
    /// commits pass the fault points of `faults`.
    pub fn create(path: &Path, hash: HashType, faults: FaultPlan) -> Result<Self> {
        if path.exists() {
            return Err(Error::IndexSchema {
                path: path.to_path_buf(),
                problem: SchemaProblem::AlreadyExists,
            });
        }
        let conn = Connection::open(path).map_err(|e| Error::index(path, e))?;
        let me = Self::setup(conn, path, hash, faults)?;
        me.conn
            .execute_batch(&format!(
                "BEGIN; {CREATE_TABLE_SQL}; {CREATE_INDEX_SQL}; COMMIT;"
            ))
            .map_err(|e| me.err(e))?;
        Ok(me)
    }

    /// Open an existing index of keys of `hash` and check its schema; its commits pass the
    /// fault points of `faults`.
    pub fn open(path: &Path, hash: HashType, faults: FaultPlan) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::IndexSchema {
                path: path.to_path_buf(),
                problem: SchemaProblem::Missing,
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::index(path, e))?;
        let me = Self::setup(conn, path, hash, faults)?;
        me.check_schema()?;
        Ok(me)
    }

    fn check_schema(&self) -> Result<()> {
        let bad = |problem: SchemaProblem| Error::IndexSchema {
            path: self.path.clone(),
            problem,
        };
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM pragma_table_info('db_object')")
            .map_err(|e| self.err(e))?;
        let cols: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))?;
        if cols.is_empty() {
            return Err(bad(SchemaProblem::NoTable));
        }
        for want in [
            "id",
            "hashkey",
            "compressed",
            "size",
            "offset",
            "length",
            "pack_id",
        ] {
            if !cols.iter().any(|c| c == want) {
                return Err(bad(SchemaProblem::NoColumn(want)));
            }
        }
        // Uniqueness of hashkey is relied upon by INSERT OR IGNORE.
        let unique: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM pragma_index_list('db_object') AS il \
                 WHERE il.\"unique\" = 1 AND (SELECT group_concat(name) FROM \
                 pragma_index_info(il.name)) = 'hashkey')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        if !unique {
            return Err(bad(SchemaProblem::NoUniqueKey));
        }
        Ok(())
    }

    /// Path of the index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The hash type of the keys.
    pub fn hash_type(&self) -> HashType {
        self.hash
    }

    fn row_to_loc(&self, key: &ObjectKey, r: (i64, i64, i64, i64, i64)) -> Result<PackedLocation> {
        let (pack_id, offset, length, compressed, size) = r;
        Ok(PackedLocation {
            pack_id: to_u64(pack_id, "pack_id", key, &self.path)?,
            offset: to_u64(offset, "offset", key, &self.path)?,
            length: to_u64(length, "length", key, &self.path)?,
            compressed: compressed != 0,
            size: to_u64(size, "size", key, &self.path)?,
        })
    }

    /// SQLite's `data_version`: changes whenever another connection commits.
    pub fn data_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Whether no object is packed (without counting them).
    pub fn is_empty(&self) -> Result<bool> {
        self.conn
            .query_row("SELECT NOT EXISTS (SELECT 1 FROM db_object)", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))
    }

    /// A read transaction (ended when dropped) around many statements: one snapshot, and one
    /// acquisition of SQLite's locks instead of one per statement. Never around anything that
    /// writes.
    pub(crate) fn read_transaction(&self) -> Result<ReadTransaction<'_>> {
        self.conn
            .execute_batch("BEGIN DEFERRED")
            .map_err(|e| self.err(e))?;
        Ok(ReadTransaction { conn: &self.conn })
    }

    /// The largest row id (0 when empty): an upper bound of the number of rows, found without a
    /// scan.
    pub fn max_row_id(&self) -> Result<i64> {
        self.conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM db_object", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))
    }

    /// Number of packed objects.
    pub fn count(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM db_object", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// `(SUM(size), SUM(length))` over all packed objects.
    pub fn sums(&self) -> Result<(u64, u64)> {
        let (a, b): (i64, i64) = self
            .conn
            .query_row(
                "SELECT COALESCE(SUM(size), 0), COALESCE(SUM(length), 0) FROM db_object",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))?;
        Ok((u64::try_from(a).unwrap_or(0), u64::try_from(b).unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(pack_id: u64, offset: u64) -> PackedLocation {
        PackedLocation {
            pack_id,
            offset,
            length: 3,
            compressed: false,
            size: 3,
        }
    }

    fn key(i: u64) -> ObjectKey {
        ObjectKey::from_canonical(HashType::Sha256, format!("{i:064x}").as_bytes()).unwrap()
    }

    #[test]
    fn create_insert_lookup() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("packs.idx");
        let mut idx = Index::create(&p, HashType::Sha256, FaultPlan::default()).unwrap();
        let keys: Vec<ObjectKey> = (0..3000).map(key).collect();
        let rows: Vec<NewRow> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| NewRow {
                key: *k,
                loc: loc(0, i as u64 * 3),
            })
            .collect();
        assert_eq!(idx.insert_batch(&rows).unwrap(), 3000);
        // Re-inserting is ignored and keeps the first location.
        let again = vec![NewRow {
            key: keys[5],
            loc: loc(9, 9),
        }];
        assert_eq!(idx.insert_batch(&again).unwrap(), 0);
        assert_eq!(idx.get(&keys[5]).unwrap(), Some(loc(0, 15)));
        let missing = ObjectKey::sha256([0xff; 32]);
        assert_eq!(idx.get(&missing).unwrap(), None);
        drop(idx);

        let idx = Index::open(&p, HashType::Sha256, FaultPlan::default()).unwrap();
        assert_eq!(idx.count().unwrap(), 3000);
        // Both lookup strategies agree.
        for subset in [&keys[10..20], &keys[..]] {
            let mut want: Vec<ObjectKey> = subset.to_vec();
            want.push(missing);
            want.sort();
            let mut found = Vec::new();
            idx.lookup_many(&want, |k, _| {
                found.push(k);
                Ok(())
            })
            .unwrap();
            found.sort();
            assert_eq!(found, subset.to_vec());
            let has = idx.contains_sorted(&want).unwrap();
            assert_eq!(has.iter().filter(|b| **b).count(), subset.len());
            assert!(!has[want.len() - 1]);
        }
    }

    #[test]
    fn schema_checks() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("packs.idx");
        let open = |p: &Path| Index::open(p, HashType::Sha256, FaultPlan::default());
        assert!(matches!(
            open(&p),
            Err(Error::IndexSchema {
                problem: SchemaProblem::Missing,
                ..
            })
        ));
        let c = Connection::open(&p).unwrap();
        c.execute_batch("CREATE TABLE other (x)").unwrap();
        drop(c);
        let e = open(&p).unwrap_err().to_string();
        assert!(e.contains("db_object is missing"), "{e}");

        // The legacy schema with a CHECK constraint is accepted.
        let p2 = d.path().join("legacy.idx");
        let c = Connection::open(&p2).unwrap();
        c.execute_batch(
            "CREATE TABLE db_object (id INTEGER NOT NULL, hashkey VARCHAR NOT NULL, \
             compressed BOOLEAN NOT NULL, size INTEGER NOT NULL, \"offset\" INTEGER NOT NULL, \
             length INTEGER NOT NULL, pack_id INTEGER NOT NULL, PRIMARY KEY (id), \
             CHECK (compressed IN (0, 1))); CREATE UNIQUE INDEX ix_db_object_hashkey ON db_object (hashkey);",
        )
        .unwrap();
        drop(c);
        let mut idx = open(&p2).unwrap();
        let k = ObjectKey::sha256([0xaa; 32]);
        idx.insert_batch(&[NewRow {
            key: k,
            loc: loc(0, 0),
        }])
        .unwrap();

        // A -1 pack id is reported as an interrupted repack.
        let c = Connection::open(&p2).unwrap();
        c.execute_batch("UPDATE db_object SET pack_id = -1")
            .unwrap();
        let e = idx.get(&k).unwrap_err().to_string();
        assert!(e.contains("repack was interrupted"), "{e}");
    }
}
