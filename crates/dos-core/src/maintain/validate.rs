//! `validate`: re-hash and size-check every object in parallel, and check the structure.
//!
//! Packed objects are visited in `(pack, offset)` order (sorted in memory up to
//! [`ValidateOptions::max_rows_in_memory`] rows, by SQLite beyond, whose memory stays bounded) and
//! cut into work units of contiguous rows spanning at most [`UNIT`] bytes; rayon workers map each
//! unit read-only (or read it with one `pread`, see [`ValidateOptions::map_packs`]) and verify its
//! objects, while this thread checks overlaps and pack files.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::ops::ControlFlow;

use rayon::prelude::*;
use serde::Serialize;

use super::lock::LockMode;
use crate::codec::Decompressor;
use crate::container::Container;
use crate::error::{IoContext, Result};
use crate::index::{CompactRow, PackStats, RawRow, SortedRows};
use crate::pack::{self, LockState};
use crate::progress::{Progress, Unit};
use crate::read::{CompressedReader, PackRangeReader};
use crate::remote::{PackData, PendingRead};

/// The bytes a unit's rows span.
fn unit_span(rows: &[RawRow]) -> Option<std::ops::Range<u64>> {
    let start = u64::try_from(rows.first()?.offset).ok()?;
    let end = rows
        .iter()
        .filter_map(|r| u64::try_from(r.offset.checked_add(r.length)?).ok())
        .max()?;
    Some(start..end.max(start))
}

/// Per-pack totals of rows sorted by pack id (what [`crate::index::Index::pack_stats`] returns).
fn stats_of_sorted(rows: &[CompactRow]) -> Vec<PackStats> {
    rows.chunk_by(|a, b| a.pack_id == b.pack_id)
        .map(|g| PackStats {
            pack_id: g[0].pack_id,
            objects: g.len() as u64,
            bytes: u64::try_from(g.iter().fold(0i64, |s, r| s.saturating_add(r.length)))
                .unwrap_or(0),
        })
        .collect()
}

/// Map `span` bytes of `file` from `start`, read-only and with the page tables filled up front,
/// so that hashing reads the page cache in place instead of copying it (that copy was an eighth
/// of validate's CPU time). `None` (the caller then reads with `pread`) when the file is shorter
/// than the range or when mapping fails.
fn map_range(file: &File, start: u64, span: u64) -> Option<memmap2::Mmap> {
    let end = start.checked_add(span)?;
    if span == 0 || file.metadata().ok()?.len() < end {
        return None;
    }
    // SAFETY: the mapping is read-only and private to this call, and it covers only bytes of
    // committed index rows, which nobody may modify or cut while validate runs: validate holds
    // the maintenance lock in shared mode, so no dos repack rewrites this pack; Python's repack
    // writes a new file and renames it over the old one (the mapped inode stays intact); a
    // writer only ever appends, and on error truncates its pack back to its last commit, which
    // lies beyond every committed row; and the range was checked against the file's length just
    // above. A file cut by hand while mapped would end this process with SIGBUS instead of an
    // error, which is why `ValidateOptions::map_packs` can turn mapping off.
    #[allow(unsafe_code)]
    unsafe {
        memmap2::MmapOptions::new()
            .offset(start)
            .len(usize::try_from(span).ok()?)
            .populate()
            .map(file)
            .ok()
    }
}

/// Largest span of one work unit.
const UNIT: u64 = 8 * 1024 * 1024;

thread_local! {
    /// Each verifying thread's block buffer, reused across units.
    static BLOCK_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Options of [`Container::validate`].
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// Re-hash loose objects.
    pub loose: bool,
    /// Re-hash packed objects.
    pub packed: bool,
    /// Sort the index rows in memory (80 bytes each) when there are at most this many; larger
    /// indexes are sorted in runs of [`ValidateOptions::sort_run_rows`] spilled to `sandbox/`
    /// and merged, so that memory stays bounded. 0 always spills.
    pub max_rows_in_memory: usize,
    /// Rows sorted in memory at a time when the index is sorted in spilled runs (about 90 bytes
    /// each).
    pub sort_run_rows: usize,
    /// Hash packed bytes where they lie in the page cache, through a read-only mapping, instead
    /// of copying them out with `pread`. Sound while nobody cuts a pack file by hand during the
    /// run (which would end the process with SIGBUS); turn it off to rule that out.
    pub map_packs: bool,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        Self {
            loose: true,
            packed: true,
            max_rows_in_memory: 2_000_000,
            sort_run_rows: 1_000_000,
            map_packs: true,
        }
    }
}

/// An object that could not be verified, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ObjectProblem {
    /// The object.
    pub key: String,
    /// What is wrong.
    pub detail: String,
}

/// Index rows that point at a pack file that does not exist.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MissingPack {
    /// The pack id.
    pub pack_id: i64,
    /// How many objects the index places there.
    pub objects: u64,
}

/// The result of [`Container::validate`]. Errors make the container invalid; warnings do not.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ValidationReport {
    /// Objects whose content was verified.
    pub objects_checked: u64,
    /// Uncompressed bytes hashed.
    pub bytes_checked: u64,
    /// Error: loose files whose content does not hash to their name.
    pub invalid_hashes_loose: Vec<String>,
    /// Error: packed objects whose content does not hash to their key.
    pub invalid_hashes_packed: Vec<String>,
    /// Error: packed objects whose size differs from the index.
    pub invalid_sizes_packed: Vec<String>,
    /// Error: packed objects overlapping the previous object of their pack.
    pub overlapping_packed: Vec<String>,
    /// Error: packed objects that cannot be read (corrupt zlib stream, range past the pack end,
    /// malformed index row).
    pub unreadable_packed: Vec<ObjectProblem>,
    /// Error: index rows pointing at missing pack files.
    pub missing_packs: Vec<MissingPack>,
    /// Error: index rows with pack id -1 (an interrupted Python repack; `dos repack` finishes it).
    pub rows_in_pack_minus_one: u64,
    /// Warning: an interrupted dos repack left an unreferenced pack (every row is still valid;
    /// any maintenance command removes the leftover).
    pub interrupted_repack: Option<String>,
    /// Warning: pack files no index row references.
    pub orphan_packs: Vec<u64>,
    /// Warning: bytes of each pack that no index row references (holes; `repack` reclaims them).
    pub unreferenced_bytes: BTreeMap<u64, u64>,
    /// Warning: lock files of dead dos processes (removed by any maintenance command).
    pub stale_locks: Vec<String>,
    /// Warning: lock files held now, or of unknown owner (Python writes empty locks).
    pub other_locks: Vec<String>,
    /// Warning: files in `sandbox/` (leftovers of interrupted writes, or writes in progress).
    pub sandbox_files: u64,
}

impl ValidationReport {
    /// Number of errors (a valid container has none).
    pub fn errors(&self) -> usize {
        self.invalid_hashes_loose.len()
            + self.invalid_hashes_packed.len()
            + self.invalid_sizes_packed.len()
            + self.overlapping_packed.len()
            + self.unreadable_packed.len()
            + self.missing_packs.len()
            + usize::from(self.rows_in_pack_minus_one > 0)
    }

    /// True when no error was found (warnings allowed).
    pub fn is_valid(&self) -> bool {
        self.errors() == 0
    }
}

/// Per-unit verification result.
#[derive(Default)]
struct UnitResult {
    objects: u64,
    bytes: u64,
    bad_hash: Vec<String>,
    bad_size: Vec<String>,
    unreadable: Vec<ObjectProblem>,
}

impl UnitResult {
    fn merge(mut self, o: UnitResult) -> UnitResult {
        self.objects += o.objects;
        self.bytes += o.bytes;
        self.bad_hash.extend(o.bad_hash);
        self.bad_size.extend(o.bad_size);
        self.unreadable.extend(o.unreadable);
        self
    }
}

/// The index rows in `(pack, offset)` order: sorted in memory, or in spilled runs to merge.
enum Walk {
    Memory(Vec<CompactRow>),
    Spilled(SortedRows),
}

struct WorkUnit {
    data: PackData,
    rows: Vec<RawRow>,
    /// The unit's bytes, already requested (remote packs: fetched ahead of the verifiers).
    prefetch: Option<PendingRead>,
}

impl Container {
    /// Verify every object and the container's structure. Takes the maintenance lock in shared
    /// mode (so no repack runs meanwhile) and changes nothing.
    pub fn validate(
        &self,
        opts: &ValidateOptions,
        progress: &dyn Progress,
    ) -> Result<ValidationReport> {
        let _lock = self.lock_maintenance(LockMode::Shared, "validate")?;
        let mut r = ValidationReport::default();
        // When the rows fit in memory, one unordered read and a sort here replace SQLite's
        // (serial) sort and the two aggregate queries: hashing starts sooner.
        let rows = if opts.packed {
            let idx = self.index();
            let in_memory = if idx.max_row_id()? <= opts.max_rows_in_memory as i64 {
                idx.rows_by_pack_in_memory(opts.max_rows_in_memory)?
            } else {
                None
            };
            Some(match in_memory {
                Some(v) => Walk::Memory(v),
                None => Walk::Spilled(
                    idx.sorted_rows_external(opts.sort_run_rows, &self.layout.sandbox)?,
                ),
            })
        } else {
            None
        };
        let stats = match &rows {
            Some(Walk::Memory(v)) => stats_of_sorted(v),
            Some(Walk::Spilled(s)) => s.stats().to_vec(),
            None => self.index().pack_stats()?,
        };
        self.check_structure(&mut r, &stats)?;
        if opts.packed {
            // Saturating: the lengths of a hostile index may add up past u64.
            let total = stats.iter().fold(0u64, |t, s| t.saturating_add(s.bytes));
            self.validate_packed(&mut r, rows, total, opts.map_packs, progress)?;
        }
        if opts.loose {
            self.validate_loose(&mut r, progress)?;
        }
        r.invalid_hashes_packed.sort();
        r.invalid_sizes_packed.sort();
        r.invalid_hashes_loose.sort();
        Ok(r)
    }

    fn check_structure(&self, r: &mut ValidationReport, stats: &[PackStats]) -> Result<()> {
        if let Some(j) = self.read_journal()? {
            r.interrupted_repack = Some(format!(
                "repack of pack {} into pack {} was interrupted",
                j.old, j.new
            ));
        }
        let on_disk = pack::list_pack_ids(&self.layout)?;
        let remote = self.index().remote_packs()?;
        for s in stats {
            if s.pack_id == -1 {
                r.rows_in_pack_minus_one = s.objects;
                continue;
            }
            let Ok(id) = u64::try_from(s.pack_id) else {
                r.missing_packs.push(super::validate::MissingPack {
                    pack_id: s.pack_id,
                    objects: s.objects,
                });
                continue;
            };
            let p = self.layout.pack(id);
            let local = match fs::symlink_metadata(&p) {
                Ok(m) if m.is_file() => Some(m.len()),
                Ok(_) => None,
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(crate::error::Error::io(&p, "stat", e)),
            };
            let len = local.or_else(|| remote.iter().find(|r| r.pack_id == id).map(|r| r.length));
            match len {
                Some(len) => {
                    if len > s.bytes {
                        r.unreferenced_bytes.insert(id, len - s.bytes);
                    }
                }
                None => r.missing_packs.push(super::validate::MissingPack {
                    pack_id: s.pack_id,
                    objects: s.objects,
                }),
            }
        }
        for id in on_disk {
            if !stats.iter().any(|s| s.pack_id == id as i64) {
                r.orphan_packs.push(id);
            }
        }
        for e in fs::read_dir(&self.layout.packs).ctx(&self.layout.packs, "list")? {
            let e = e.ctx(&self.layout.packs, "list")?;
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".lock") {
                match pack::inspect_lock(&e.path())? {
                    LockState::Stale { .. } => r.stale_locks.push(name),
                    LockState::Missing => {}
                    LockState::Live | LockState::Unknown => r.other_locks.push(name),
                }
            }
        }
        // Sorted runs of a validate (this one, or another running) are no leftovers.
        r.sandbox_files = fs::read_dir(&self.layout.sandbox)
            .ctx(&self.layout.sandbox, "list")?
            .filter(|e| {
                e.as_ref().map_or(true, |e| {
                    !e.file_name()
                        .to_string_lossy()
                        .starts_with(crate::index::SPILL_PREFIX)
                })
            })
            .count() as u64;
        Ok(())
    }

    fn validate_packed(
        &self,
        r: &mut ValidationReport,
        rows: Option<Walk>,
        total: u64,
        map_packs: bool,
        progress: &dyn Progress,
    ) -> Result<()> {
        progress.start(total, Unit::Bytes, "Validating packs");
        let (tx, rx) = crossbeam_channel::bounded::<WorkUnit>(4);
        let result = std::thread::scope(|s| -> Result<UnitResult> {
            let verifier = s.spawn(move || {
                rx.into_iter()
                    .par_bridge()
                    .map(|u| {
                        let span = u
                            .rows
                            .iter()
                            .fold(0u64, |t, r| t.saturating_add(r.length.max(0) as u64));
                        let res = self.verify_unit(u, map_packs);
                        progress.inc(span);
                        res
                    })
                    .reduce(UnitResult::default, UnitResult::merge)
            });
            let produced = self.produce_units(r, rows, tx);
            let verified = verifier
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            produced?;
            Ok(verified)
        });
        progress.finish();
        let u = result?;
        r.objects_checked += u.objects;
        r.bytes_checked += u.bytes;
        r.invalid_hashes_packed.extend(u.bad_hash);
        r.invalid_sizes_packed.extend(u.bad_size);
        r.unreadable_packed.extend(u.unreadable);
        Ok(())
    }

    /// Walk the index in (pack, offset) order (`rows` if sorted in memory, else SQLite's sorted
    /// scan), check overlaps and ranges, and cut work units.
    fn produce_units(
        &self,
        r: &mut ValidationReport,
        rows: Option<Walk>,
        tx: crossbeam_channel::Sender<WorkUnit>,
    ) -> Result<()> {
        // The pack being walked: its id, and its open file and length (None if missing).
        // Known before the walk: SQLite's sorted scan holds the index while it visits rows.
        let remote = self.index().remote_packs()?;
        type Current = (i64, Option<(PackData, u64)>);
        let mut current: Option<Current> = None;
        let mut prev_end: i64 = 0;
        let mut unit: Vec<RawRow> = Vec::new();
        let mut unit_file: Option<PackData> = None;
        let flush = |unit: &mut Vec<RawRow>, data: &Option<PackData>| {
            if let (false, Some(d)) = (unit.is_empty(), data) {
                let rows = std::mem::take(unit);
                // A remote unit's bytes are requested now, so that several GETs run while the
                // verifiers hash (the channel's bound limits how many).
                let prefetch = match d {
                    PackData::Remote(_) => unit_span(&rows)
                        .filter(|r| r.end - r.start <= UNIT)
                        .map(|r| d.start_read(r)),
                    PackData::Local(_) => None,
                };
                let _ = tx.send(WorkUnit {
                    data: d.clone(),
                    rows,
                    prefetch,
                });
            }
            unit.clear();
        };
        let mut visit = |row: RawRow| {
            if current.as_ref().map(|c| c.0) != Some(row.pack_id) {
                flush(&mut unit, &unit_file);
                prev_end = 0;
                let opened = match u64::try_from(row.pack_id) {
                    Ok(id) => match self
                        // The list read before the walk, else the index now (a pack offloaded
                        // since; no index lock is held while the sorted rows are walked).
                        .open_pack_with(id, || match remote.iter().find(|r| r.pack_id == id) {
                            Some(r) => Ok(Some(r.clone())),
                            None => self.index().remote_pack(id),
                        }) {
                        Ok(d) => d.len().ok().map(|len| (d, len)),
                        // Reported by the structure check.
                        Err(crate::error::Error::MissingPack { .. }) => None,
                        Err(e) => return Err(e),
                    },
                    Err(_) => None,
                };
                unit_file = opened.as_ref().map(|(f, _)| f.clone());
                current = Some((row.pack_id, opened));
            }
            let Some((_, Some((_, pack_len)))) = &current else {
                // Missing pack (or pack -1): reported by the structure check.
                return Ok(ControlFlow::Continue(()));
            };
            let Some(loc) = row.location() else {
                r.unreadable_packed.push(ObjectProblem {
                    key: row.key.clone(),
                    detail: format!(
                        "malformed index row (offset {}, length {}, size {})",
                        row.offset, row.length, row.size
                    ),
                });
                return Ok(ControlFlow::Continue(()));
            };
            // Ties in row-id order, as Python's validate sees them: an empty object stored
            // after an object that starts at its offset counts as overlapping there too.
            if row.offset < prev_end {
                r.overlapping_packed.push(row.key.clone());
            }
            // Saturating: both are non-negative here, but may sum past i64::MAX.
            prev_end = prev_end.max(row.offset.saturating_add(row.length));
            if loc.offset + loc.length > *pack_len {
                r.unreadable_packed.push(ObjectProblem {
                    key: row.key.clone(),
                    detail: format!(
                        "range {}..{} lies beyond the end of pack {} ({} bytes)",
                        loc.offset,
                        loc.offset + loc.length,
                        loc.pack_id,
                        pack_len
                    ),
                });
                return Ok(ControlFlow::Continue(()));
            }
            let start = unit.first().map_or(row.offset, |f| f.offset);
            if !unit.is_empty() && (row.offset + row.length - start) as u64 > UNIT {
                flush(&mut unit, &unit_file);
            }
            unit.push(row);
            Ok(ControlFlow::Continue(()))
        };
        match rows {
            Some(Walk::Memory(v)) => {
                for c in v {
                    let _ = visit(c.into())?;
                }
            }
            Some(Walk::Spilled(s)) => s.visit(&mut visit)?,
            None => self.index().scan_by_pack(None, &mut visit)?,
        }
        flush(&mut unit, &unit_file);
        Ok(())
    }

    fn verify_unit(&self, mut u: WorkUnit, map_packs: bool) -> UnitResult {
        let hash = self.config.hash_type;
        let mut res = UnitResult::default();
        let Some(first) = u.rows.first() else {
            return res;
        };
        let start = first.offset as u64;
        let end = u
            .rows
            .iter()
            .map(|r| (r.offset + r.length) as u64)
            .max()
            .unwrap_or(start);
        let span = end - start;
        if span > UNIT {
            // One large object: stream it.
            for row in &u.rows {
                res.objects += 1;
                let Some(loc) = row.location() else { continue };
                let raw = PackRangeReader::over(u.data.clone(), loc.offset, loc.length);
                let mut reader: Box<dyn Read> = if loc.compressed {
                    Box::new(CompressedReader::new(raw, loc.size))
                } else {
                    Box::new(raw)
                };
                let mut h = hash.hasher();
                let mut buf = vec![0u8; 1 << 20];
                let mut n = 0u64;
                let outcome = loop {
                    match reader.read(&mut buf) {
                        Ok(0) => break Ok(()),
                        Ok(k) => {
                            h.update(&buf[..k]);
                            n += k as u64;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                res.bytes += n;
                match outcome {
                    Err(e) => res.unreadable.push(ObjectProblem {
                        key: row.key.clone(),
                        detail: e.to_string(),
                    }),
                    Ok(()) => {
                        if !loc.compressed && loc.length != loc.size {
                            res.bad_size.push(row.key.clone());
                        } else if *h.finalize().hex() != row.key {
                            res.bad_hash.push(row.key.clone());
                        }
                    }
                }
            }
            return res;
        }
        BLOCK_BUF.with(|b| {
            let mut block = b.borrow_mut();
            self.verify_block(&mut u, start, span, map_packs, &mut block, res)
        })
    }

    /// Verify the rows of a unit that fits in one block read (into a reused buffer).
    fn verify_block(
        &self,
        u: &mut WorkUnit,
        start: u64,
        span: u64,
        map_packs: bool,
        buf: &mut Vec<u8>,
        mut res: UnitResult,
    ) -> UnitResult {
        let hash = self.config.hash_type;
        // An injected read error stands for the pack's bytes being unreadable.
        let injected = self.io.faults.point("pack.read");
        let map = match (map_packs && injected.is_ok(), u.data.local_file()) {
            (true, Some(file)) => map_range(file, start, span),
            _ => None,
        };
        let block: &[u8] = match &map {
            Some(m) => m,
            None => {
                // Grow only: the pages stay mapped between units (no zeroing, no page faults).
                if buf.len() < span as usize {
                    buf.resize(span as usize, 0);
                }
                let read = match u.prefetch.take() {
                    Some(pending) => injected.and_then(|()| pending.wait_into(buf)),
                    None => injected
                        .and_then(|()| u.data.read_exact_at(&mut buf[..span as usize], start)),
                };
                let block = &buf[..span as usize];
                if let Err(e) = read {
                    for row in &u.rows {
                        res.unreadable.push(ObjectProblem {
                            key: row.key.clone(),
                            detail: format!("cannot read pack: {e}"),
                        });
                    }
                    return res;
                }
                block
            }
        };
        let mut dec = Decompressor::new();
        let mut out = Vec::new();
        for row in &u.rows {
            res.objects += 1;
            let Some(loc) = row.location() else { continue };
            let a = (loc.offset - start) as usize;
            let raw = &block[a..a + loc.length as usize];
            let content: &[u8] = if loc.compressed {
                match dec.inflate_exact(raw, loc.size, &mut out) {
                    Ok(()) => &out,
                    Err(crate::codec::InflateError::TooLong { .. })
                    | Err(crate::codec::InflateError::TooShort { .. }) => {
                        res.bad_size.push(row.key.clone());
                        continue;
                    }
                    Err(e) => {
                        res.unreadable.push(ObjectProblem {
                            key: row.key.clone(),
                            detail: e.to_string(),
                        });
                        continue;
                    }
                }
            } else {
                if loc.length != loc.size {
                    res.bad_size.push(row.key.clone());
                    continue;
                }
                raw
            };
            res.bytes += content.len() as u64;
            if *hash.key_of(content).hex() != row.key {
                res.bad_hash.push(row.key.clone());
            }
        }
        res
    }

    fn validate_loose(&self, r: &mut ValidationReport, progress: &dyn Progress) -> Result<()> {
        let loose = self.list_loose()?;
        progress.start(
            loose.len() as u64,
            Unit::Objects,
            "Validating loose objects",
        );
        let hash = self.config.hash_type;
        let results: Vec<Option<(u64, bool)>> = loose
            .par_iter()
            .map(|k| {
                let p = self.loose_path(k);
                let res = match File::open(&p) {
                    Ok(mut f) => {
                        let mut h = hash.hasher();
                        let mut buf = vec![0u8; 256 * 1024];
                        let mut n = 0u64;
                        loop {
                            match f.read(&mut buf) {
                                Ok(0) => break,
                                Ok(m) => {
                                    h.update(&buf[..m]);
                                    n += m as u64;
                                }
                                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                                Err(e) => return Err(crate::error::Error::io(&p, "read", e)),
                            }
                        }
                        Some((n, h.finalize() == *k))
                    }
                    // Packed and cleaned by a concurrent packer.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                    Err(e) => return Err(crate::error::Error::io(&p, "open", e)),
                };
                progress.inc(1);
                Ok(res)
            })
            .collect::<Result<_>>()?;
        progress.finish();
        for (k, res) in loose.into_iter().zip(results) {
            if let Some((n, ok)) = res {
                r.objects_checked += 1;
                r.bytes_checked += n;
                if !ok {
                    r.invalid_hashes_loose.push(k.to_string());
                }
            }
        }
        Ok(())
    }
}
