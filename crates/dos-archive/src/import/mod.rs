//! Import an archive's repository files straight into a container's packs.
//!
//! Entries `repo/<sha256>` are read in archive order; on the pipeline's worker threads each one is
//! inflated and its size, CRC-32 and SHA-256 checked before anything pointing at it can be
//! committed. With compression requested, a deflated entry is stored **without recompressing**
//! into a zlib container: a zlib header, the entry's raw deflate bytes, and the Adler-32 computed
//! while inflating for the hash make a zlib stream Python reads like any other. Into a zstd
//! container every entry is inflated and coded as zstd. A bad entry is reported (with every other
//! bad entry) and never becomes visible; good entries are kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dos_core::maintain::LockMode;
use dos_core::write::{
    ObjectSource, PackItem, PackWriteOptions, StoreOutcome, Stored, WriteTuning,
};
use dos_core::{CompressMode, Container, HashType, Interrupt, ObjectKey, Progress};
use rayon::slice::ParallelSliceMut;
use serde::Serialize;

mod entry;
mod passthrough;

use entry::EntryImport;
pub use entry::EntryProblem;

use crate::aiida::{self, FormatKind};
use crate::error::{ArchiveError, LimitExceeded, NotSupported, Result};
use crate::zip::{EntryName, Limits, ZipArchive};

/// Options of [`import_archive`].
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Compression of the stored objects (`Yes`/`Auto` pass deflated entries through into a
    /// zlib container, and code them anew into a zstd one).
    pub compress: CompressMode,
    /// Import only the objects that `db.sqlite3` references.
    pub referenced_only: bool,
    /// Caps on declared sizes.
    pub limits: Limits,
    /// Refuse to start when the container's filesystem lacks the room for the import.
    pub check_free_space: bool,
    /// Pipeline tuning (batch sizes, memory budget, lock timeout).
    pub tuning: WriteTuning,
    /// Cooperative cancellation, checked between objects.
    pub interrupt: Interrupt,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            compress: CompressMode::No,
            referenced_only: false,
            limits: Limits::default(),
            check_free_space: true,
            tuning: WriteTuning::default(),
            interrupt: Interrupt::default(),
        }
    }
}

/// An entry that was not imported, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BadEntry {
    /// The entry name.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
}

/// What [`import_archive`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArchiveImportSummary {
    /// The archive.
    pub archive: PathBuf,
    /// Its `export_version`.
    pub format_version: Option<String>,
    /// Zip entries.
    pub entries: u64,
    /// Entries named `repo/<sha256>`.
    pub repo_entries: u64,
    /// Other entries (metadata, database, directories, foreign files): not imported.
    pub ignored_entries: u64,
    /// Keys referenced by the database (with `referenced_only`).
    pub referenced: Option<u64>,
    /// Repository entries no node references (skipped with `referenced_only`).
    pub unreferenced_skipped: u64,
    /// Referenced keys neither in the archive nor in the container.
    pub missing_referenced: Vec<ObjectKey>,
    /// Repository entries already in the container (not read).
    pub already_present: u64,
    /// Objects imported.
    pub imported: u64,
    /// Of those, stored as the archive's own deflate stream (no recompression).
    pub passthrough: u64,
    /// Uncompressed bytes imported.
    pub bytes_in: u64,
    /// Bytes appended to packs.
    pub bytes_written: u64,
    /// Entries rejected (bad CRC, size, hash, unsupported method, …): none of them is visible.
    pub bad_entries: Vec<BadEntry>,
}

impl ArchiveImportSummary {
    /// True when every selected entry was imported and nothing referenced is missing.
    pub fn is_complete(&self) -> bool {
        self.bad_entries.is_empty() && self.missing_referenced.is_empty()
    }
}

/// Import the repository files of the archive at `path` into `c`.
pub fn import_archive(
    c: &Container,
    path: &Path,
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ArchiveImportSummary> {
    if c.hash_type() != HashType::Sha256 {
        return Err(ArchiveError::Unsupported {
            path: c.path().to_path_buf(),
            what: NotSupported::HashType(c.hash_type()),
        });
    }
    // Local headers are read by the workers, each just before its entry's data.
    let z = Arc::new(ZipArchive::open_deferred(path, &opts.limits)?);
    let meta = aiida::read_metadata(&z)?;
    if meta.kind == FormatKind::Legacy {
        return Err(ArchiveError::Unsupported {
            path: path.to_path_buf(),
            what: NotSupported::LegacyFormat(
                meta.export_version.clone().unwrap_or_else(|| "?".into()),
            ),
        });
    }
    let _lock = c.lock_maintenance(LockMode::Shared, "import-archive")?;
    let mut s = ArchiveImportSummary {
        archive: path.to_path_buf(),
        format_version: meta.export_version.clone(),
        entries: z.entries.len() as u64,
        ..ArchiveImportSummary::default()
    };

    // Repository entries as (key, index into z.entries), sorted by key: 37 bytes each (hex
    // strings would cost three times as much at a million entries).
    let mut repo: Vec<(ObjectKey, u32)> = z
        .entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match &e.name {
            EntryName::Repo(k) => Some((*k, u32::try_from(i).ok()?)),
            EntryName::Other(_) => None,
        })
        .collect();
    s.repo_entries = repo.len() as u64;
    s.ignored_entries = s.entries - s.repo_entries;
    // On both cores: at 840k entries this sort was a fifth of a second of the serial start.
    repo.par_sort_unstable();

    if opts.referenced_only {
        let db = aiida::extract_db(&z, &c.layout().sandbox)?;
        let (referenced, malformed) = aiida::referenced_keys(db.path())?;
        s.referenced = Some(referenced.len() as u64);
        for k in malformed {
            s.bad_entries.push(BadEntry {
                name: format!("repository_metadata key {k:?}"),
                reason: "not a sha256 key: ignored".into(),
            });
        }
        let before = repo.len();
        repo.retain(|(k, _)| referenced.binary_search(k).is_ok());
        s.unreferenced_skipped = (before - repo.len()) as u64;
        // Referenced keys the archive does not carry must already be in the container.
        let absent: Vec<ObjectKey> = referenced
            .into_iter()
            .filter(|k| repo.binary_search_by(|(rk, _)| rk.cmp(k)).is_err())
            .collect();
        for_each_existence(c, &absent, |k, have| {
            if !have {
                s.missing_referenced.push(*k);
            }
        })?;
    }

    // Names are unique (the zip reader refuses repeated ones); the writer is promised distinct
    // keys below, so make that local.
    repo.dedup_by_key(|(k, _)| *k);
    // Skip what the container already has (sorted passes over the index, in bounded chunks).
    // The index version read first lets the writer trust this check while nobody else commits.
    let checked_at = c.index_version()?;
    let keys: Vec<ObjectKey> = repo.iter().map(|(k, _)| *k).collect();
    let mut wanted = vec![false; z.entries.len()];
    let mut n = 0;
    for_each_existence(c, &keys, |_, have| {
        if !have {
            wanted[repo[n].1 as usize] = true;
        }
        n += 1;
    })?;
    drop(keys);
    drop(repo);
    // Archive order: sequential reads. Central directories list entries in file order (then
    // this is one pass); any other order is sorted.
    let mut todo: Vec<u32> = (0..z.entries.len())
        .filter(|&i| wanted[i])
        .filter_map(|i| u32::try_from(i).ok())
        .collect();
    drop(wanted);
    if !todo.is_sorted_by_key(|&i| z.entries[i as usize].header_offset) {
        todo.par_sort_unstable_by_key(|&i| z.entries[i as usize].header_offset);
    }
    s.already_present = s.repo_entries - s.unreferenced_skipped - todo.len() as u64;

    let mode = opts.compress;
    let need: u64 = todo
        .iter()
        .map(|&i| {
            let e = &z.entries[i as usize];
            if mode == CompressMode::No {
                e.usize
            } else {
                e.csize.min(e.usize)
            }
        })
        .sum();
    // Besides the objects: index rows (~300 bytes each with the key index), its journal, and
    // headroom; 1 MiB plus a sixteenth, at most 64 MiB.
    let margin = ((1u64 << 20) + need / 16 + 512 * todo.len() as u64).min(64 << 20);
    if opts.check_free_space
        && let Some(avail) = crate::space::available(c.path())
        && avail < need.saturating_add(margin)
    {
        return Err(ArchiveError::Limit {
            path: c.path().to_path_buf(),
            limit: LimitExceeded::FreeSpace {
                need,
                margin,
                avail,
            },
        });
    }

    let write = PackWriteOptions {
        compress: mode,
        skip_existing: true,
        total_hint: todo.iter().map(|&i| z.entries[i as usize].usize).sum(),
        // Keys were checked above and are distinct (deduplicated).
        absent_as_of: Some(checked_at),
        interrupt: opts.interrupt.clone(),
        tuning: opts.tuning.clone(),
    };
    let large = write.tuning.large_object;
    // An entry's deflate stream framed as zlib is a valid object only in a zlib container; a
    // zstd container gets every entry coded anew.
    let passthrough_allowed = c.config().compression.python_readable();
    let mut bad: Vec<BadEntry> = Vec::new();
    let (mut imported, mut bytes_written, mut passthrough, mut present) = (0, 0, 0, 0);
    let name_of = |n: usize| z.entries[todo[n] as usize].name.as_str().into_owned();
    let mut w = c.pack_writer(&write, progress, |n, outcome| match outcome {
        StoreOutcome::Written {
            location, stored, ..
        } => {
            imported += 1;
            bytes_written += location.length;
            passthrough += u64::from(stored == Stored::PassedThrough);
        }
        StoreOutcome::AlreadyPacked { .. } => present += 1,
        StoreOutcome::Mismatch { actual, .. } => bad.push(BadEntry {
            name: name_of(n),
            reason: format!("content does not match its name (its sha256 is {actual})"),
        }),
        StoreOutcome::Rejected { reason, .. } => bad.push(BadEntry {
            name: name_of(n),
            reason: reason.to_string(),
        }),
        StoreOutcome::Vanished { .. } => {}
    })?;
    for &i in &todo {
        let e = &z.entries[i as usize];
        w.push(PackItem {
            source: ObjectSource::Prepare(Box::new(EntryImport {
                z: z.clone(),
                index: i,
                mode,
                large,
                passthrough_allowed,
            })),
            expect: e.name.repo_key(),
        })?;
    }
    let written = w.finish()?;
    s.imported = imported;
    s.bytes_written = bytes_written;
    s.passthrough = passthrough;
    s.already_present += present;
    s.bytes_in = written.bytes_in;
    s.bad_entries.extend(bad);
    Ok(s)
}

/// Report whether each of `keys` (sorted) is in the container, in order, checking 65,536 keys at
/// a time.
fn for_each_existence(
    c: &Container,
    keys: &[ObjectKey],
    mut f: impl FnMut(&ObjectKey, bool),
) -> Result<()> {
    // One listing of the loose folder for all chunks (it may hold a million files).
    let loose = c.list_loose()?;
    if loose.is_empty() && c.no_packed_objects()? {
        // A new container (the common first import): nothing to look up.
        for k in keys {
            f(k, false);
        }
        return Ok(());
    }
    for chunk in keys.chunks(1 << 16) {
        let have = c.has_objects_with_loose(chunk, &loose)?;
        for (k, h) in chunk.iter().zip(have) {
            f(k, h);
        }
    }
    Ok(())
}
