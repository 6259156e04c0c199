//! `repack`: rewrite packs without their holes, optionally changing compression.
//!
//! Protocol (crash-safe, and Python never sees an inconsistent state):
//! 1. lock pack N (`packs/N.lock`, so nobody appends to it) and read its rows;
//! 2. write the journal `packs/dos-repack.json` = {old: N, new: M}, M a fresh id;
//! 3. write the live objects into the new pack M (under its lock), fsync it and `packs/`;
//! 4. one index transaction moves every row of N to its new place in M — the switch;
//! 5. remove N, fsync `packs/`, remove the journal.
//!
//! Before 4 every row points into the untouched N; after 4 every row points into the complete,
//! durable M. A crash anywhere leaves at most an unreferenced M (before 4) or an unreferenced N
//! (after 4), and the journal tells the next maintenance command which one to remove. Unlike
//! Python's `-1` protocol, no row ever points at a pack readers cannot open. The price: a repacked
//! pack gets a new number (rsync-based backups transfer it whole once).

use std::fs::{self, File, OpenOptions};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use serde::Serialize;

use super::lock::LockMode;
use crate::codec::{
    AUTO_RATIO_THRESHOLD, Codec, Decompressor, Encoder, InflateError, auto_should_compress,
    with_compressor,
};
use crate::container::Container;
use crate::durable;
use crate::error::{Corruption, Error, IoContext, Result};
use crate::fileio::read_exact_at;
use crate::index::RawRow;
use crate::location::PackedLocation;
use crate::pack::{self, AppendSink, PackAppender, PackLock};
use crate::progress::{Progress, Unit};
use crate::read::{CompressedReader, PackRangeReader};

use super::recover::{Journal, remove_if_exists};

/// Bytes of rows transformed in parallel at once.
const BLOCK: u64 = 16 * 1024 * 1024;
/// Objects larger than this are streamed one by one.
const LARGE: u64 = 8 * 1024 * 1024;
/// An orphan pack (no rows) must be this old before repack deletes it: a Python packer removes
/// its lock before committing its rows, so a brand-new pack may briefly look orphaned.
const ORPHAN_MIN_AGE: Duration = Duration::from_secs(600);

/// Rows of the pack sorted in memory at a time (about 90 bytes each; more are spilled).
const SORT_RUN_ROWS: usize = 1_000_000;
/// Rows copied as one range at most (back-to-back objects of a pack kept as it is).
const RUN_ROWS: usize = 100_000;

/// A window onto the pack's rows in offset order: rows are taken from the front, and looked at
/// ahead as far as a block needs.
struct RowWindow {
    rows: crate::index::MergedRows,
    ahead: std::collections::VecDeque<RawRow>,
}

impl RowWindow {
    fn new(rows: crate::index::MergedRows) -> Self {
        Self {
            rows,
            ahead: std::collections::VecDeque::new(),
        }
    }

    /// Whether at least `n` rows are left (reading ahead as needed).
    fn fill(&mut self, n: usize) -> Result<bool> {
        while self.ahead.len() < n {
            match self.rows.next() {
                Some(r) => self.ahead.push_back(r?),
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Row `i` ahead (after `fill(i + 1)` returned true).
    fn get(&self, i: usize) -> &RawRow {
        &self.ahead[i]
    }

    /// The next `n` rows.
    fn take(&mut self, n: usize) -> Vec<RawRow> {
        self.ahead.drain(..n.min(self.ahead.len())).collect()
    }
}

/// The new location of every moved row, written to a file in `sandbox/` as the copy goes (so
/// that memory does not grow with the pack's objects) and read back for the switch.
struct MoveLog {
    path: std::path::PathBuf,
    out: Option<std::io::BufWriter<File>>,
    count: u64,
    end: u64,
}

impl MoveLog {
    fn create(dir: &std::path::Path) -> Result<Self> {
        let path = dir.join(format!(
            "dos-repack-moves-{}-{}",
            std::process::id(),
            crate::remote::random_hex(8).ctx(dir, "random name")?
        ));
        let f = File::create(&path).ctx(&path, "create")?;
        Ok(Self {
            out: Some(std::io::BufWriter::with_capacity(1 << 18, f)),
            path,
            count: 0,
            end: 0,
        })
    }

    fn push(&mut self, id: i64, loc: PackedLocation) -> Result<()> {
        use std::io::Write;
        let mut rec = [0u8; 41];
        rec[0..8].copy_from_slice(&id.to_le_bytes());
        rec[8..16].copy_from_slice(&loc.pack_id.to_le_bytes());
        rec[16..24].copy_from_slice(&loc.offset.to_le_bytes());
        rec[24..32].copy_from_slice(&loc.length.to_le_bytes());
        rec[32..40].copy_from_slice(&loc.size.to_le_bytes());
        rec[40] = u8::from(loc.compressed);
        if let Some(w) = self.out.as_mut() {
            w.write_all(&rec).ctx(&self.path, "write")?;
        }
        self.count += 1;
        Ok(())
    }

    /// No more moves; empty objects will be placed at `end`, the new pack's length.
    fn finish(&mut self, end: u64) -> Result<()> {
        use std::io::Write;
        if let Some(mut w) = self.out.take() {
            w.flush().ctx(&self.path, "write")?;
        }
        self.end = end;
        Ok(())
    }

    fn len(&self) -> u64 {
        self.count
    }

    /// The moves, read back in the order they were made.
    fn replay(&self) -> Result<impl Iterator<Item = Result<(i64, PackedLocation)>> + '_> {
        use std::io::Read;
        let mut r = std::io::BufReader::with_capacity(
            1 << 18,
            File::open(&self.path).ctx(&self.path, "open")?,
        );
        let mut left = self.count;
        Ok(std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let mut rec = [0u8; 41];
            if let Err(e) = r.read_exact(&mut rec) {
                return Some(Err(Error::io(&self.path, "read", e)));
            }
            let int = |i: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&rec[i..i + 8]);
                u64::from_le_bytes(b)
            };
            let mut loc = PackedLocation {
                pack_id: int(8),
                offset: int(16),
                length: int(24),
                size: int(32),
                compressed: rec[40] != 0,
            };
            if loc.length == 0 {
                loc.offset = self.end;
            }
            Some(Ok((int(0) as i64, loc)))
        }))
    }
}

impl Drop for MoveLog {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Compression of repacked objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum RepackCompress {
    /// Keep each object as it is (raw bytes copied, nothing decoded).
    #[default]
    Keep,
    /// Store every object uncompressed.
    No,
    /// Compress every (non-empty) object.
    Yes,
    /// Compress objects for which it pays; keep compressed ones compressed only if it pays.
    Auto,
}

/// Options of [`Container::repack`].
#[derive(Debug, Clone, Default)]
pub struct RepackOptions {
    /// Compression of the rewritten objects.
    pub compress: RepackCompress,
    /// Rewrite every pack, even those without holes that need no compression change.
    pub force: bool,
    /// Only this pack (Python's `repack_pack`); `None`: every pack.
    pub only_pack: Option<u64>,
    /// How old a pack file without index rows must be before it is deleted (`None`: 10
    /// minutes, so that a pack a concurrent Python writer has written but not yet committed is
    /// left alone; `Some(ZERO)` when no other process writes, as Python's `repack` assumes).
    pub empty_pack_min_age: Option<Duration>,
    /// Cooperative cancellation, checked between packs and before each switch (an interrupted
    /// pack is rolled back: its new copy is removed).
    pub interrupt: crate::progress::Interrupt,
    /// Re-encode compressed objects whose coding is not the container's (zlib in a `zstd+N`
    /// container, or the reverse), and rewrite every pack holding one: a conversion
    /// ([`Container::convert_compression`]).
    pub recode: bool,
}

/// What [`Container::repack`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepackSummary {
    /// Interrupted operations finished or rolled back first.
    pub recovered: Vec<String>,
    /// Packs looked at.
    pub packs_examined: u64,
    /// Packs rewritten (old id, new id).
    pub packs_rewritten: Vec<(u64, u64)>,
    /// Packs without any object, removed.
    pub packs_removed: Vec<u64>,
    /// Sum of the sizes of the rewritten packs before.
    pub bytes_before: u64,
    /// ... and after.
    pub bytes_after: u64,
    /// Objects moved.
    pub objects_moved: u64,
    /// Packs that changed under us (a writer ignored the lock) and were kept as they are.
    pub packs_kept: Vec<u64>,
}

impl Container {
    /// Rewrite packs that have holes (or whose objects need the requested compression), then
    /// VACUUM the index. Packs without holes that need no change are skipped (Python rewrites
    /// everything).
    pub fn repack(&self, opts: &RepackOptions, progress: &dyn Progress) -> Result<RepackSummary> {
        let _lock = self.lock_maintenance(LockMode::Exclusive, "repack")?;
        let recovered = self.recover()?;
        let mut s = self.repack_locked(opts, progress)?;
        s.recovered = recovered;
        Ok(s)
    }

    pub(crate) fn repack_locked(
        &self,
        opts: &RepackOptions,
        progress: &dyn Progress,
    ) -> Result<RepackSummary> {
        let mut s = RepackSummary::default();
        let stats = self.index().pack_stats()?;
        for id in pack::list_pack_ids(&self.layout)? {
            if opts.only_pack.is_some_and(|only| only != id) {
                continue;
            }
            if opts.interrupt.is_set() {
                return Err(Error::Interrupted);
            }
            s.packs_examined += 1;
            let path = self.layout.pack(id);
            let meta = fs::metadata(&path).ctx(&path, "stat")?;
            if meta.is_dir() {
                // An offloaded pack (its stub).
                let st = stats.iter().find(|st| st.pack_id == id as i64);
                self.repack_remote(id, st, opts, progress, &mut s)?;
                continue;
            }
            let Some(st) = stats.iter().find(|st| st.pack_id == id as i64) else {
                let old = meta
                    .modified()
                    .ok()
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .is_some_and(|age| age >= opts.empty_pack_min_age.unwrap_or(ORPHAN_MIN_AGE));
                if old
                    && let Some(lock) =
                        PackLock::try_acquire(&self.layout.pack_lock(id), &self.io.faults)?
                {
                    if self.index().pack_stats_of(id as i64)?.is_none() {
                        self.index().delete_remote_pack(id)?;
                        remove_if_exists(&path)?;
                        durable::sync_dir(&self.layout.packs)?;
                        s.packs_removed.push(id);
                    }
                    drop(lock);
                }
                continue;
            };
            let holes = meta.len() > st.bytes;
            if !(opts.force
                || holes
                || self.needs_recompression(id, opts.compress)?
                || (opts.recode && self.needs_recoding(id)?))
            {
                continue;
            }
            self.repack_pack(id, opts, progress, &mut s)?;
        }
        let idx = self.index();
        idx.vacuum()?;
        idx.checkpoint()?;
        Ok(s)
    }

    /// Repack an offloaded pack when it has holes (or `force`): bring it back (`fetch`),
    /// repack it locally, then offload the new pack; each step is crash-safe on its own. An
    /// offloaded pack without rows is forgotten (its stub removed; `clean` deletes the remote
    /// object). Compression changes of offloaded packs need `dos fetch-packs` first.
    fn repack_remote(
        &self,
        id: u64,
        st: Option<&crate::index::PackStats>,
        opts: &RepackOptions,
        progress: &dyn Progress,
        s: &mut RepackSummary,
    ) -> Result<()> {
        let Some(row) = self.index().remote_pack(id)? else {
            return Ok(());
        };
        let Some(st) = st else {
            self.index().delete_remote_pack(id)?;
            fs::remove_dir_all(self.layout.pack(id)).ctx(self.layout.pack(id), "remove stub")?;
            durable::sync_dir(&self.layout.packs)?;
            s.packs_removed.push(id);
            return Ok(());
        };
        if !(opts.force || row.length > st.bytes) {
            return Ok(());
        }
        let store = self.remote_store()?;
        self.fetch_one(store.as_ref(), id, &crate::progress::NoProgress)?;
        self.io
            .faults
            .point("repack.remote.fetched")
            .ctx(self.layout.pack(id), "repack remote pack")?;
        let before = s.packs_rewritten.len();
        self.repack_pack(id, opts, progress, s)?;
        if let Some(&(_, new_id)) = s.packs_rewritten.get(before) {
            self.offload_new_pack(store.as_ref(), new_id)?;
        }
        Ok(())
    }

    /// After a failure before the switch: remove the new pack (no row refers to it) and the
    /// journal naming it, best effort (what is left, the next maintenance command removes).
    fn abandon_new_pack(&self, new_id: u64) {
        if remove_if_exists(&self.layout.pack(new_id)).is_ok() {
            let _ = durable::sync_dir(&self.layout.packs);
            let _ = self.remove_journal();
        }
    }

    /// Whether pack `id` holds a compressed object not in the container's coding (the first
    /// bytes of each compressed object tell).
    fn needs_recoding(&self, id: u64) -> Result<bool> {
        let target = self.config.compression.codec();
        let path = self.layout.pack(id);
        let file = File::open(&path).ctx(&path, "open pack")?;
        let mut found = false;
        self.index().scan_pack_unordered(id as i64, |r| {
            if !r.compressed || r.length <= 0 || r.offset < 0 {
                return Ok(std::ops::ControlFlow::Continue(()));
            }
            let mut head = [0u8; 4];
            let n = (r.length as usize).min(4);
            read_exact_at(&file, &mut head[..n], r.offset as u64).ctx(&path, "read")?;
            found = Codec::of(&head[..n]) != target;
            Ok(if found {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            })
        })?;
        Ok(found)
    }

    fn needs_recompression(&self, id: u64, mode: RepackCompress) -> Result<bool> {
        Ok(match mode {
            RepackCompress::Keep => false,
            RepackCompress::Auto => true,
            RepackCompress::No => self.index().pack_has_compressed(id as i64, true)?,
            RepackCompress::Yes => self.index().pack_has_compressed(id as i64, false)?,
        })
    }

    fn repack_pack(
        &self,
        id: u64,
        opts: &RepackOptions,
        progress: &dyn Progress,
        s: &mut RepackSummary,
    ) -> Result<()> {
        let mode = opts.compress;
        let old_path = self.layout.pack(id);
        // 1. Nobody appends to N from now on; its rows are stable.
        let old_lock = PackLock::acquire(
            &self.layout.pack_lock(id),
            Duration::from_secs(30),
            &self.io.faults,
        )?;
        let old_len = fs::metadata(&old_path).ctx(&old_path, "stat")?.len();
        // Every row must lie inside the pack: a hostile or damaged row (negative, overflowing
        // or past the end) stops the repack of this pack before anything is written.
        if let Some(r) = self.index().first_row_outside(id as i64, old_len)? {
            return Err(Error::Corrupt {
                key: r.key.clone(),
                path: old_path.clone(),
                problem: Corruption::PackTooShort,
                location: r.location().map(Box::new),
            });
        }
        // The pack's rows in offset order, sorted in bounded memory (spilled runs), and how
        // many bytes they hold.
        let (rows_at_start, bytes_of_rows) = self
            .index()
            .pack_stats_of(id as i64)?
            .map_or((0, 0), |st| (st.objects, st.bytes));
        let sorted =
            self.index()
                .pack_rows_external(id as i64, SORT_RUN_ROWS, &self.layout.sandbox)?;
        let mut rows = RowWindow::new(sorted.into_rows()?);
        let old_file = Arc::new(File::open(&old_path).ctx(&old_path, "open pack")?);

        // 2. A fresh pack id, created exclusively, and the journal naming both.
        let (new_id, mut out) = self.create_fresh_pack()?;
        let journaled = self
            .write_journal(Journal {
                old: id,
                new: new_id,
            })
            .and_then(|()| {
                self.io
                    .faults
                    .point("repack.journal.after")
                    .ctx(self.journal_path(), "fsync journal")
            });
        if let Err(e) = journaled {
            drop(out);
            self.abandon_new_pack(new_id);
            return Err(e);
        }

        // 3. Copy / transform the live objects, in offset order. On any failure (a full disk,
        // an I/O error, a corrupt source) the new pack, never referenced, is removed at once.
        let copied = (|| -> Result<(MoveLog, u64)> {
            progress.start(bytes_of_rows, Unit::Bytes, &format!("Repacking pack {id}"));
            let mut moves = MoveLog::create(&self.layout.sandbox)?;
            let level = self.config.compression;
            while rows.fill(1)? {
                if mode == RepackCompress::Keep && !opts.recode {
                    // Runs of back-to-back objects are copied as they are, one range at a time.
                    let loc = self.row_loc(rows.get(0))?;
                    let mut n = 1;
                    let mut end = loc.offset + loc.length;
                    while rows.fill(n + 1)? {
                        let l = self.row_loc(rows.get(n))?;
                        if l.offset != end || n >= RUN_ROWS {
                            break;
                        }
                        end += l.length;
                        n += 1;
                    }
                    let dest = out.pos();
                    out.append_from(&old_file, &old_path, loc.offset, end - loc.offset)
                        .map_err(|e| match e {
                            Error::Io { source, .. }
                                if source.kind() == std::io::ErrorKind::UnexpectedEof =>
                            {
                                Error::Corrupt {
                                    key: rows.get(0).key.clone(),
                                    path: old_path.clone(),
                                    problem: Corruption::PackTooShort,
                                    location: Some(Box::new(loc)),
                                }
                            }
                            e => e,
                        })?;
                    for r in rows.take(n) {
                        let l = self.row_loc(&r)?;
                        moves.push(
                            r.id,
                            PackedLocation {
                                pack_id: new_id,
                                offset: dest + (l.offset - loc.offset),
                                ..l
                            },
                        )?;
                    }
                    progress.inc(end - loc.offset);
                    continue;
                }
                // A block of rows spanning at most BLOCK bytes (or one large row).
                let start = rows.get(0).offset.max(0) as u64;
                let mut j = 1;
                while rows.fill(j + 1)?
                    && ((rows.get(j).offset + rows.get(j).length).max(0) as u64) - start <= BLOCK
                {
                    j += 1;
                }
                let block_rows = rows.take(j);
                let loc0 = self.row_loc(&block_rows[0])?;
                if block_rows.len() == 1 && (loc0.length > LARGE || loc0.size > LARGE) {
                    let offset = out.pos();
                    let (length, compressed) = self.stream_row(
                        &old_file,
                        loc0,
                        &block_rows[0].key,
                        mode,
                        opts.recode,
                        &mut out,
                    )?;
                    moves.push(
                        block_rows[0].id,
                        PackedLocation {
                            pack_id: new_id,
                            offset,
                            length,
                            compressed,
                            size: loc0.size,
                        },
                    )?;
                } else {
                    let end = block_rows
                        .iter()
                        .map(|r| (r.offset + r.length).max(0) as u64)
                        .max()
                        .unwrap_or(start);
                    let mut block = vec![0u8; (end - start) as usize];
                    let read = self.io.faults.point("pack.read");
                    read.and_then(|()| read_exact_at(&old_file, &mut block, start))
                        .map_err(|e| Error::Corrupt {
                            key: block_rows[0].key.clone(),
                            path: old_path.clone(),
                            problem: Corruption::Read(e),
                            location: Some(Box::new(loc0)),
                        })?;
                    let transformed: Vec<(Vec<u8>, bool)> = block_rows
                        .par_iter()
                        .map(|r| {
                            let loc = self.row_loc(r)?;
                            let a = (loc.offset - start) as usize;
                            let raw = &block[a..a + loc.length as usize];
                            transform(raw, loc, mode, level, opts.recode).map_err(|e| {
                                Error::Corrupt {
                                    key: r.key.clone(),
                                    path: old_path.clone(),
                                    problem: e.into(),
                                    location: Some(Box::new(loc)),
                                }
                            })
                        })
                        .collect::<Result<_>>()?;
                    for (r, (bytes, compressed)) in block_rows.iter().zip(transformed) {
                        let offset = out.pos();
                        out.write(&bytes)?;
                        let loc = self.row_loc(r)?;
                        moves.push(
                            r.id,
                            PackedLocation {
                                pack_id: new_id,
                                offset,
                                length: bytes.len() as u64,
                                compressed,
                                size: loc.size,
                            },
                        )?;
                    }
                }
                progress.inc(block_rows.iter().map(|r| r.length.max(0) as u64).sum());
            }
            progress.finish();
            // Empty objects go to the end of the pack, where no object starts: validators (and
            // Python's) order rows of equal offset by row id, and an empty object whose row id
            // is larger than that of an object starting at its offset counts as inside it.
            moves.finish(out.pos())?;
            self.io
                .faults
                .point("repack.write.after")
                .ctx(out.path(), "write pack")?;
            out.sync()?;
            durable::sync_dir(&self.layout.packs)?;
            Ok((moves, out.pos()))
        })();
        // `out` (the new pack's lock) is kept until the switch has committed or the new pack is
        // removed: a writer that took the new pack, the highest, before that would append rows
        // to a file the roll-back then deletes.
        let (moves, new_len) = match copied {
            Ok(v) => v,
            Err(e) => {
                self.abandon_new_pack(new_id);
                return Err(e);
            }
        };

        // Every row the pack had must have moved (rows a writer that ignored the lock added
        // since stay, with the old pack: see step 5).
        if moves.len() < rows_at_start {
            self.abandon_new_pack(new_id);
            return Err(Error::io(
                &old_path,
                "repack",
                std::io::Error::other(format!(
                    "{} rows were copied, the pack had {rows_at_start}; nothing was changed",
                    moves.len()
                )),
            ));
        }

        // 4. The switch (or, if asked to stop, the roll-back: the new pack was never referenced).
        if opts.interrupt.is_set() {
            remove_if_exists(&self.layout.pack(new_id))?;
            self.remove_journal()?;
            return Err(Error::Interrupted);
        }
        let switched = self
            .io
            .faults
            .point("repack.switch.before")
            .ctx(&self.layout.index, "commit index")
            .and_then(|()| self.index().relocate_all(moves.replay()?))
            .and_then(|()| {
                // An error reported by a commit that happened all the same.
                self.io
                    .faults
                    .point("repack.switch.after")
                    .ctx(&self.layout.index, "commit index")
            });
        if let Err(e) = switched {
            // Nothing points at the new pack unless the switch was committed after all.
            if self
                .index()
                .pack_stats_of(new_id as i64)
                .is_ok_and(|st| st.is_none())
            {
                self.abandon_new_pack(new_id);
            }
            return Err(e);
        }

        // Committed: writers may append to the new pack from here on.
        drop(out);

        // The old pack's remote copy (a pack offloaded but kept local) no longer holds its rows:
        // retired, for `clean`.
        self.index().delete_remote_pack(id)?;

        // 5. Drop the old pack — unless someone appended to it behind our lock (a Python process
        // whose failed lock attempt deleted our lock file, followed by another one): then its new
        // rows still point into it, and it stays.
        let unchanged =
            old_lock.still_ours() && fs::metadata(&old_path).is_ok_and(|m| m.len() == old_len);
        if unchanged {
            // At once, so that a repack on a nearly full disk frees each pack's space before
            // the next one. A reader that looked the object up before the switch then finds the
            // pack gone: dos's readers look it up again (docs/durability.md, "Readers").
            remove_if_exists(&old_path)?;
            durable::sync_dir(&self.layout.packs)?;
        } else {
            s.packs_kept.push(id);
        }
        self.io
            .faults
            .point("repack.unlink.after")
            .ctx(&self.layout.packs, "fsync packs folder")?;
        self.remove_journal()?;
        drop(old_lock);
        s.packs_rewritten.push((id, new_id));
        s.bytes_before += old_len;
        s.bytes_after += new_len;
        s.objects_moved += moves.len();
        Ok(())
    }

    fn row_loc(&self, r: &RawRow) -> Result<PackedLocation> {
        r.location().ok_or_else(|| Error::Corrupt {
            key: r.key.clone(),
            path: self.layout.index.clone(),
            problem: Corruption::MalformedRow {
                pack_id: r.pack_id,
                offset: r.offset,
                length: r.length,
                size: r.size,
            },
            location: None,
        })
    }

    /// Create a pack file under a new id (above every existing one), exclusively.
    fn create_fresh_pack(&self) -> Result<(u64, PackAppender)> {
        let mut id = self.next_free_pack_id()?;
        loop {
            let path = self.layout.pack(id);
            if !path.exists() {
                let lock = PackLock::try_acquire(&self.layout.pack_lock(id), &self.io.faults)?;
                if let Some(lock) = lock {
                    match OpenOptions::new().write(true).create_new(true).open(&path) {
                        Ok(_) => {
                            // Keep the lock: a writer starts at the highest pack, which this
                            // new one now is, and must not take it before the appender holds it.
                            let a = PackAppender::open_locked(
                                &self.layout,
                                id,
                                lock,
                                Duration::ZERO,
                                &self.io,
                            )?;
                            return Ok((id, a));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(Error::io(&path, "create pack", e)),
                    }
                }
            }
            id += 1;
        }
    }

    /// Stream one large object into `out`, transforming it as `mode` asks.
    fn stream_row(
        &self,
        file: &Arc<File>,
        loc: PackedLocation,
        key: &str,
        mode: RepackCompress,
        recode: bool,
        out: &mut PackAppender,
    ) -> Result<(u64, bool)> {
        let start = out.pos();
        let raw = PackRangeReader::new(file.clone(), loc.offset, loc.length);
        let foreign = recode && loc.compressed && {
            let mut head = [0u8; 4];
            let n = (loc.length as usize).min(4);
            read_exact_at(file, &mut head[..n], loc.offset)
                .ctx(self.layout.pack(loc.pack_id), "read")?;
            Codec::of(&head[..n]) != self.config.compression.codec()
        };
        let target = match mode {
            RepackCompress::Keep => loc.compressed,
            RepackCompress::No => false,
            RepackCompress::Yes => loc.size > 0,
            RepackCompress::Auto if loc.compressed => {
                (loc.length as f64) < (loc.size as f64) * AUTO_RATIO_THRESHOLD
            }
            RepackCompress::Auto => {
                let mut head = vec![0u8; 131_072.min(loc.size as usize)];
                read_exact_at(file, &mut head, loc.offset)
                    .ctx(self.layout.pack(loc.pack_id), "read")?;
                auto_should_compress(&head)
            }
        };
        let path = self.layout.pack(loc.pack_id);
        let corrupt = |e: std::io::Error| Error::Corrupt {
            key: key.to_string(),
            path: path.clone(),
            problem: Corruption::Read(e),
            location: Some(Box::new(loc)),
        };
        let mut sink = AppendSink::new(out);
        let copied = if foreign && target {
            // Another coding: decode, and encode as the container says.
            let mut r = CompressedReader::new(raw, loc.size);
            Encoder::new(&mut sink, self.config.compression).and_then(|mut enc| {
                std::io::copy(&mut r, &mut enc).and_then(|_| enc.finish().map(|_| ()))
            })
        } else if target == loc.compressed {
            let mut r = raw;
            std::io::copy(&mut r, &mut sink).map(|_| ())
        } else if target {
            let mut r = raw;
            Encoder::new(&mut sink, self.config.compression).and_then(|mut enc| {
                std::io::copy(&mut r, &mut enc).and_then(|_| enc.finish().map(|_| ()))
            })
        } else {
            let mut r = CompressedReader::new(raw, loc.size);
            std::io::copy(&mut r, &mut sink).map(|_| ())
        };
        // A failed write into the new pack is that pack's error; anything else is the old
        // pack's bytes failing to read or decode.
        if let Some(e) = sink.into_error() {
            return Err(e);
        }
        copied.map_err(corrupt)?;
        Ok((out.pos() - start, target))
    }
}

/// Transform one object's stored bytes as `mode` asks. Returns the new bytes and whether they
/// are compressed.
fn transform(
    raw: &[u8],
    loc: PackedLocation,
    mode: RepackCompress,
    level: crate::codec::Compression,
    recode: bool,
) -> std::result::Result<(Vec<u8>, bool), InflateError> {
    let inflate = || -> std::result::Result<Vec<u8>, InflateError> {
        let mut v = Vec::new();
        Decompressor::new().inflate_exact(raw, loc.size, &mut v)?;
        Ok(v)
    };
    let compress = |data: &[u8]| with_compressor(level, |c| c.compress(data));
    if recode && loc.compressed && mode != RepackCompress::No && Codec::of(raw) != level.codec() {
        // Another coding: decode, and store as the container says (AUTO: compressed only if
        // that pays).
        let data = inflate()?;
        let z = compress(&data);
        let pays = (z.len() as f64) < (data.len() as f64) * AUTO_RATIO_THRESHOLD;
        return Ok(if mode == RepackCompress::Auto && !pays {
            (data, false)
        } else {
            (z, true)
        });
    }
    Ok(match (mode, loc.compressed) {
        (RepackCompress::Keep, c) => (raw.to_vec(), c),
        (RepackCompress::No, false) | (RepackCompress::Yes, true) => (raw.to_vec(), loc.compressed),
        (RepackCompress::No, true) => (inflate()?, false),
        // As Python: the empty object too (a zlib stream of no bytes).
        (RepackCompress::Yes, false) => (compress(raw), true),
        (RepackCompress::Auto, true) => {
            if (loc.length as f64) < (loc.size as f64) * AUTO_RATIO_THRESHOLD {
                (raw.to_vec(), true)
            } else {
                (inflate()?, false)
            }
        }
        (RepackCompress::Auto, false) => {
            if raw.is_empty() || !(raw.len() <= 131_072 || auto_should_compress(raw)) {
                (raw.to_vec(), false)
            } else {
                let z = compress(raw);
                if (z.len() as f64) < (raw.len() as f64) * AUTO_RATIO_THRESHOLD {
                    (z, true)
                } else {
                    (raw.to_vec(), false)
                }
            }
        }
    })
}
