//! Rows in `(pack_id, offset, id)` order for indexes too large to sort in memory: read once in
//! storage order (a sequential scan, the index lock held only for that), sorted in runs of a
//! bounded number of rows, each run spilled to a file, and the runs merged. Memory stays near one
//! run whatever the number of rows; the files take about 80 bytes per row while they exist.
//!
//! SQLite's own `ORDER BY pack_id, offset` does the same in principle, but serially and through
//! its generic record format: on 10^7 rows it took longer than hashing every object.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use super::{Index, PackStats, RawRow};
use crate::error::{Error, IoContext, Result};
use crate::hashing::to_hex;

/// `(pack_id, offset, id)`: the order of the merge.
type SortKey = (i64, i64, i64);

/// Names of spilled runs start with this (in `sandbox/`).
pub const SPILL_PREFIX: &str = "dos-sort-";

/// A row as sorted and spilled; a key that is lowercase hex of at most 64 characters is kept as
/// its bytes (no allocation, half the size), anything else (a damaged row) as its text.
struct Spilled {
    pack_id: i64,
    offset: i64,
    id: i64,
    length: i64,
    size: i64,
    compressed: bool,
    /// Raw key bytes, the first `key_len` of them.
    key: [u8; 32],
    key_len: u8,
    /// The key's text when it is not such hex.
    text: Option<Box<[u8]>>,
}

impl Spilled {
    fn of(r: RawRow) -> Self {
        let t = r.key.as_bytes();
        let is_hex = t.len().is_multiple_of(2)
            && t.len() <= 64
            && t.iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
        let mut key = [0u8; 32];
        let (key_len, text) = if is_hex {
            let v = |c: u8| {
                if c.is_ascii_digit() {
                    c - b'0'
                } else {
                    c - b'a' + 10
                }
            };
            for (i, p) in t.chunks(2).enumerate() {
                key[i] = (v(p[0]) << 4) | v(p[1]);
            }
            ((t.len() / 2) as u8, None)
        } else {
            (0, Some(r.key.into_bytes().into_boxed_slice()))
        };
        Self {
            pack_id: r.pack_id,
            offset: r.offset,
            id: r.id,
            length: r.length,
            size: r.size,
            compressed: r.compressed,
            key,
            key_len,
            text,
        }
    }

    fn order(&self) -> (i64, i64, i64) {
        (self.pack_id, self.offset, self.id)
    }

    fn into_row(self) -> RawRow {
        RawRow {
            id: self.id,
            key: match &self.text {
                None => to_hex(&self.key[..usize::from(self.key_len)]),
                Some(t) => String::from_utf8_lossy(t).into_owned(),
            },
            pack_id: self.pack_id,
            offset: self.offset,
            length: self.length,
            compressed: self.compressed,
            size: self.size,
        }
    }

    fn write(&self, w: &mut impl Write) -> io::Result<()> {
        for v in [self.pack_id, self.offset, self.id, self.length, self.size] {
            w.write_all(&v.to_le_bytes())?;
        }
        let bytes: &[u8] = match &self.text {
            None => &self.key[..usize::from(self.key_len)],
            Some(t) => t,
        };
        w.write_all(&[u8::from(self.compressed) | (u8::from(self.text.is_none()) << 1)])?;
        let len = u32::try_from(bytes.len()).map_err(io::Error::other)?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(bytes)
    }

    /// The next row of a run, `None` at its end.
    fn read(r: &mut impl Read) -> io::Result<Option<Self>> {
        let mut head = [0u8; 45];
        // The run ends only where a record would start; a record cut short is an error.
        let mut got = 0;
        while got < head.len() {
            match r.read(&mut head[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "a sorted run ends inside a record",
                    ));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let int = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[i * 8..i * 8 + 8]);
            i64::from_le_bytes(b)
        };
        let flags = head[40];
        let mut lb = [0u8; 4];
        lb.copy_from_slice(&head[41..45]);
        let mut bytes = vec![0u8; u32::from_le_bytes(lb) as usize];
        r.read_exact(&mut bytes)?;
        let mut key = [0u8; 32];
        let (key_len, text) = if flags & 2 != 0 && bytes.len() <= 32 {
            key[..bytes.len()].copy_from_slice(&bytes);
            (bytes.len() as u8, None)
        } else {
            (0, Some(bytes.into_boxed_slice()))
        };
        Ok(Some(Self {
            pack_id: int(0),
            offset: int(1),
            id: int(2),
            length: int(3),
            size: int(4),
            compressed: flags & 1 != 0,
            key,
            key_len,
            text,
        }))
    }
}

/// Spill files, removed when dropped.
struct Runs(Vec<PathBuf>);

impl Drop for Runs {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Index {
    /// Every row, to be visited ordered by `(pack_id, offset, id)` (as [`Index::scan_by_pack`]
    /// for all packs), sorting at most `run_rows` rows in memory at a time and spilling sorted
    /// runs to files in `tmp_dir`; also the per-pack totals ([`Index::pack_stats`]). All rows
    /// are read before this returns: the caller may release the index before visiting them.
    pub fn sorted_rows_external(&self, run_rows: usize, tmp_dir: &Path) -> Result<SortedRows> {
        self.sorted_rows_spilled(None, run_rows, tmp_dir)
    }

    /// The rows of pack `pack_id` only, in `(offset, id)` order, sorted as
    /// [`Index::sorted_rows_external`] sorts all rows (what a repack of one pack walks, with
    /// memory bounded whatever the pack's number of objects).
    pub fn pack_rows_external(
        &self,
        pack_id: i64,
        run_rows: usize,
        tmp_dir: &Path,
    ) -> Result<SortedRows> {
        self.sorted_rows_spilled(Some(pack_id), run_rows, tmp_dir)
    }

    fn sorted_rows_spilled(
        &self,
        pack: Option<i64>,
        run_rows: usize,
        tmp_dir: &Path,
    ) -> Result<SortedRows> {
        let run_rows = run_rows.max(1);
        let mut runs = Runs(Vec::new());
        // Room for what there is, not for a whole run (the largest row id bounds the rows).
        let rows_bound = usize::try_from(self.max_row_id()?.max(0)).unwrap_or(usize::MAX);
        let mut batch: Vec<Spilled> = Vec::with_capacity(run_rows.min(rows_bound).min(1 << 20));
        let spill = |batch: &mut Vec<Spilled>, runs: &mut Runs| -> Result<()> {
            batch.sort_unstable_by_key(Spilled::order);
            let name = format!(
                "{SPILL_PREFIX}{}-{}.run",
                std::process::id(),
                crate::remote::random_hex(8).ctx(tmp_dir, "random name")?
            );
            let path = tmp_dir.join(name);
            runs.0.push(path.clone());
            let cap = (batch.len() * 64).clamp(4096, 1 << 20);
            let mut w = BufWriter::with_capacity(cap, File::create(&path).ctx(&path, "create")?);
            for r in batch.drain(..) {
                r.write(&mut w).ctx(&path, "write")?;
            }
            w.flush().ctx(&path, "write")?;
            Ok(())
        };
        let sql = if pack.is_some() {
            "SELECT id, hashkey, pack_id, \"offset\", length, compressed, size FROM db_object \
             WHERE pack_id = ?1"
        } else {
            "SELECT id, hashkey, pack_id, \"offset\", length, compressed, size FROM db_object"
        };
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let mut rows = match pack {
            Some(p) => stmt.query([p]),
            None => stmt.query([]),
        }
        .map_err(|e| self.err(e))?;
        let mut stats: Vec<PackStats> = Vec::new();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let row = RawRow::from_sql(r).map_err(|e| self.err(e))?;
            let st = match stats.last_mut() {
                Some(s) if s.pack_id == row.pack_id => s,
                _ => match stats.iter().position(|s| s.pack_id == row.pack_id) {
                    Some(i) => &mut stats[i],
                    None => {
                        stats.push(PackStats {
                            pack_id: row.pack_id,
                            objects: 0,
                            bytes: 0,
                        });
                        let last = stats.len() - 1;
                        &mut stats[last]
                    }
                },
            };
            st.objects += 1;
            st.bytes = st
                .bytes
                .saturating_add(u64::try_from(row.length).unwrap_or(0));
            batch.push(Spilled::of(row));
            if batch.len() == run_rows {
                spill(&mut batch, &mut runs)?;
            }
        }
        batch.sort_unstable_by_key(Spilled::order);
        stats.sort_by_key(|s| s.pack_id);
        Ok(SortedRows {
            memory: batch.into_iter(),
            runs,
            stats,
        })
    }
}

/// Rows sorted by [`Index::sorted_rows_external`], ready to be merged.
pub struct SortedRows {
    /// The last run, kept in memory.
    memory: std::vec::IntoIter<Spilled>,
    runs: Runs,
    stats: Vec<PackStats>,
}

impl SortedRows {
    /// Per-pack totals, by pack id (as [`Index::pack_stats`]).
    pub fn stats(&self) -> &[PackStats] {
        &self.stats
    }

    /// Visit the rows in order until `f` breaks.
    pub fn visit(self, mut f: impl FnMut(RawRow) -> Result<ControlFlow<()>>) -> Result<()> {
        for row in self.into_rows()? {
            if f(row?)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// The rows in order, merged from the runs as they are taken.
    pub fn into_rows(self) -> Result<MergedRows> {
        let SortedRows { memory, runs, .. } = self;
        let mut readers = Vec::with_capacity(runs.0.len());
        for p in &runs.0 {
            let len = std::fs::metadata(p).ctx(p, "stat")?.len();
            readers.push(BufReader::with_capacity(
                usize::try_from(len.clamp(4096, 256 * 1024)).unwrap_or(256 * 1024),
                File::open(p).ctx(p, "open")?,
            ));
        }
        let mut m = MergedRows {
            memory,
            readers,
            heads: Vec::new(),
            heap: BinaryHeap::new(),
            runs,
        };
        // The head of each source: the spilled runs, then the in-memory one (index = len).
        for i in 0..=m.readers.len() {
            let h = m.pull(i)?;
            if let Some(s) = &h {
                m.heap.push(Reverse((s.order(), i)));
            }
            m.heads.push(h);
        }
        Ok(m)
    }
}

/// The rows of a [`SortedRows`] in order (an iterator that merges the runs).
pub struct MergedRows {
    memory: std::vec::IntoIter<Spilled>,
    readers: Vec<BufReader<File>>,
    heads: Vec<Option<Spilled>>,
    /// The heads' sort keys and sources, smallest first.
    heap: BinaryHeap<Reverse<(SortKey, usize)>>,
    /// Kept for the files' names (and removed with this).
    runs: Runs,
}

impl MergedRows {
    /// The next row of source `i`.
    fn pull(&mut self, i: usize) -> Result<Option<Spilled>> {
        if i == self.readers.len() {
            Ok(self.memory.next())
        } else {
            Spilled::read(&mut self.readers[i]).map_err(|e| Error::io(&self.runs.0[i], "read", e))
        }
    }
}

impl Iterator for MergedRows {
    type Item = Result<RawRow>;

    fn next(&mut self) -> Option<Result<RawRow>> {
        let Reverse((_, i)) = self.heap.pop()?;
        let row = self.heads[i].take()?;
        match self.pull(i) {
            Ok(following) => {
                if let Some(s) = &following {
                    self.heap.push(Reverse((s.order(), i)));
                }
                self.heads[i] = following;
            }
            Err(e) => return Some(Err(e)),
        }
        Some(Ok(row.into_row()))
    }
}
