//! Import an archive's repository files straight into a container's packs.
//!
//! Entries `repo/<sha256>` are read in archive order; on the pipeline's worker threads each one is
//! inflated and its size, CRC-32 and SHA-256 checked before anything pointing at it can be
//! committed. With compression requested, a deflated entry is stored **without recompressing**:
//! a zlib header, the entry's raw deflate bytes, and the Adler-32 computed while inflating for the
//! hash make a zlib stream Python reads like any other. A bad entry is reported (with every other
//! bad entry) and never becomes visible; good entries are kept.

use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dos_core::codec::AUTO_RATIO_THRESHOLD;
use dos_core::lock::LockMode;
use dos_core::write::{
    EncodedObject, EncodedStream, ObjectSource, PackItem, PackWriteOptions, PrepareObject,
    Prepared, Rejection, StoreOutcome, Stored, WriteTuning,
};
use dos_core::{CompressMode, Container, HashType, Interrupt, ObjectKey, Progress};
use flate2::{Decompress, FlushDecompress, Status};
use rayon::slice::ParallelSliceMut;
use serde::Serialize;
use sha2::Digest;

use crate::aiida::{self, FormatKind};
use crate::error::{ArchiveError, Result};
use crate::zip::{
    Entry, EntryName, Limits, METHOD_DEFLATE, METHOD_STORED, Unsupported, ZipArchive,
};
use dos_core::libdeflate::Inflated;

/// Options of [`import_archive`].
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Compression of the stored objects (`Yes`/`Auto` pass deflated entries through).
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

/// What is wrong with one repository entry (it is then not imported; the others are).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EntryProblem {
    /// Encrypted, or compressed with a method other than stored and deflate.
    #[error("entry {0}")]
    Unsupported(Unsupported),
    /// The archive could not be read at the entry (truncated, a bad local header, I/O).
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The content's CRC-32 is not the one declared.
    #[error("bad CRC-32 (computed {computed:08x}, declared {declared:08x})")]
    Crc {
        /// CRC-32 of the content read.
        computed: u32,
        /// CRC-32 in the central directory.
        declared: u32,
    },
    /// The deflate stream produces more than the declared size.
    #[error("inflates past its declared size of {declared} bytes")]
    TooLong {
        /// The declared size.
        declared: u64,
    },
    /// The content is not of the declared size.
    #[error("inflates to {produced} bytes, declared {declared}")]
    WrongSize {
        /// Bytes of content.
        produced: u64,
        /// The declared size.
        declared: u64,
    },
    /// The deflate stream ends before its declared size.
    #[error("deflate stream ends after {produced} of {declared} bytes (truncated)")]
    Truncated {
        /// Bytes of content decoded.
        produced: u64,
        /// The declared size.
        declared: u64,
    },
    /// The deflate stream is invalid.
    #[error("corrupt or truncated deflate stream")]
    CorruptDeflate,
    /// Bytes follow the end of the deflate stream within the entry.
    #[error("bytes after the end of the deflate stream")]
    TrailingBytes,
    /// Larger than this process can hold.
    #[error("entry too large")]
    TooLarge,
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
            detail: format!(
                "archives name objects by sha256, but this container uses {} keys",
                c.hash_type()
            ),
        });
    }
    // Local headers are read by the workers, each just before its entry's data.
    let z = Arc::new(ZipArchive::open_deferred(path, &opts.limits)?);
    let meta = aiida::read_metadata(&z)?;
    if meta.kind == FormatKind::Legacy {
        return Err(ArchiveError::Unsupported {
            path: path.to_path_buf(),
            detail: format!(
                "legacy archive format {} (files under nodes/, not repo/): migrate it first with \
                 `verdi archive migrate`",
                meta.export_version.as_deref().unwrap_or("?")
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
    if opts.check_free_space
        && let Some(avail) = crate::space::available(c.path())
        && avail < need.saturating_add(64 << 20)
    {
        return Err(ArchiveError::Limit {
            path: c.path().to_path_buf(),
            detail: format!(
                "the import needs about {need} bytes but only {avail} are free on the \
                 container's filesystem"
            ),
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

thread_local! {
    /// Per worker: the buffer entries are inflated into when the content is only needed for
    /// checking (passthrough), and the buffer raw deflate bytes are read into otherwise.
    static SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
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

/// One repository entry to import: read, inflated and checked on a worker thread.
struct EntryImport {
    z: Arc<ZipArchive>,
    index: u32,
    mode: CompressMode,
    large: u64,
}

impl PrepareObject for EntryImport {
    fn size_hint(&self) -> u64 {
        let e = &self.z.entries[self.index as usize];
        e.usize.saturating_add(e.csize)
    }

    fn prepare(self: Box<Self>) -> Prepared {
        let e = &self.z.entries[self.index as usize];
        match prepare_entry(&self.z, e, self.mode, self.large) {
            Ok(p) => p,
            Err(problem) => Prepared::Rejected(Box::new(problem)),
        }
    }
}

/// The key of content that should be `e`: its SHA-256, once its CRC-32 is known to match.
fn check(e: &Entry, data: &[u8]) -> std::result::Result<ObjectKey, EntryProblem> {
    let key = ObjectKey::sha256(sha2::Sha256::digest(data).into());
    // Content that hashes to its name is what the archive meant: its CRC-32 cannot add
    // anything (and costs a pass over the bytes). Otherwise the CRC-32 tells a damaged
    // archive from an entry that was stored under the wrong name.
    if !matches!(&e.name, EntryName::Repo(k) if *k == key) {
        let computed = crc32fast::hash(data);
        if computed != e.crc32 {
            return Err(EntryProblem::Crc {
                computed,
                declared: e.crc32,
            });
        }
    }
    Ok(key)
}

/// Read, inflate and check one entry (on a worker thread).
fn prepare_entry(
    z: &ZipArchive,
    e: &Entry,
    mode: CompressMode,
    large: u64,
) -> std::result::Result<Prepared, EntryProblem> {
    if let Some(why) = e.unsupported() {
        return Err(EntryProblem::Unsupported(why));
    }
    let passthrough_pays = e.method == METHOD_DEFLATE
        && match mode {
            CompressMode::No => false,
            CompressMode::Yes => e.usize > 0,
            CompressMode::Auto => (e.csize as f64) < (e.usize as f64) * AUTO_RATIO_THRESHOLD,
        };
    if e.usize > large || e.csize > large {
        return Ok(if passthrough_pays {
            Prepared::EncodedStream(Box::new(Passthrough::new(z, e)?))
        } else {
            Prepared::Stream(Box::new(z.entry_reader(e)?))
        });
    }
    if e.method == METHOD_STORED {
        // Read straight into the buffer that will be stored.
        let data = z.read_raw(e)?;
        let key = check(e, &data)?;
        return Ok(if mode == CompressMode::No {
            Prepared::Encoded(EncodedObject {
                key,
                size: data.len() as u64,
                stored: data,
                compressed: false,
            })
        } else {
            Prepared::Content(data)
        });
    }
    if passthrough_pays {
        // The stored bytes: header, the raw deflate stream read in place, then the Adler-32.
        let csize = e.csize as usize;
        let mut stored = vec![0u8; csize + 6];
        stored[..2].copy_from_slice(&ZLIB_HEADER);
        z.read_raw_into(e, &mut stored[2..2 + csize])?;
        let (key, adler, leftover) = SCRATCH.with(|s| {
            let inflated = &mut s.borrow_mut().0;
            let consumed_all = inflate_raw_into(&stored[2..2 + csize], e.usize, inflated)?;
            let key = check(e, inflated)?;
            let adler = dos_core::libdeflate::adler32(1, inflated);
            // Trailing bytes after the deflate stream: the content is compressed anew.
            let leftover = (!consumed_all).then(|| inflated.clone());
            Ok::<_, EntryProblem>((key, adler, leftover))
        })?;
        return Ok(match leftover {
            None => {
                stored[2 + csize..].copy_from_slice(&adler.to_be_bytes());
                Prepared::Encoded(EncodedObject {
                    key,
                    size: e.usize,
                    stored,
                    compressed: true,
                })
            }
            Some(data) => Prepared::Content(data),
        });
    }
    // Stored raw: the inflated content is what goes to the pack.
    let data = SCRATCH.with(|s| {
        let raw = &mut s.borrow_mut().1;
        raw.resize(e.csize as usize, 0);
        z.read_raw_into(e, raw)?;
        let mut out = Vec::new();
        inflate_raw_into(raw, e.usize, &mut out)?;
        Ok::<_, EntryProblem>(out)
    })?;
    let key = check(e, &data)?;
    Ok(Prepared::Encoded(EncodedObject {
        key,
        size: data.len() as u64,
        stored: data,
        compressed: false,
    }))
}

/// zlib header of a deflate stream with a 32 KiB window (CMF 0x78, FLG 0x9C: FCHECK valid).
const ZLIB_HEADER: [u8; 2] = [0x78, 0x9C];

/// Inflate a raw deflate stream of exactly `expected` bytes into `out` (holding exactly that),
/// with libdeflate. Returns whether the stream used up all the input (no trailing bytes), which
/// passthrough needs.
fn inflate_raw_into(
    raw: &[u8],
    expected: u64,
    out: &mut Vec<u8>,
) -> std::result::Result<bool, EntryProblem> {
    let cap = usize::try_from(expected)
        .ok()
        .and_then(|e| e.checked_add(1))
        .ok_or(EntryProblem::TooLarge)?;
    // One probe byte beyond the declared size catches entries that inflate past it.
    match dos_core::libdeflate::inflate_raw_vec(raw, cap, out) {
        Inflated::Done { consumed, produced } => {
            if produced as u64 > expected {
                return Err(EntryProblem::TooLong { declared: expected });
            }
            if produced as u64 != expected {
                return Err(EntryProblem::WrongSize {
                    produced: produced as u64,
                    declared: expected,
                });
            }
            Ok(consumed == raw.len())
        }
        Inflated::TooLong => Err(EntryProblem::TooLong { declared: expected }),
        Inflated::Corrupt => Err(EntryProblem::CorruptDeflate),
    }
}

/// The zlib stream of a large deflated entry, produced piece by piece: the header, the entry's
/// raw deflate bytes as read, then the Adler-32 trailer. Inflating alongside computes the key,
/// checks size and CRC-32, and bounds the output by the declared size.
struct Passthrough {
    raw: BufReader<dos_core::reader::PackRangeReader>,
    inflater: Decompress,
    scratch: Vec<u8>,
    sha: sha2::Sha256,
    crc: crc32fast::Hasher,
    adler: u32,
    expected: u64,
    declared_crc: u32,
    csize: u64,
    state: PassState,
}

#[derive(PartialEq, Eq)]
enum PassState {
    Header,
    Body,
    Done,
}

impl Passthrough {
    fn new(z: &ZipArchive, e: &Entry) -> crate::Result<Self> {
        Ok(Self {
            raw: BufReader::with_capacity(1 << 20, z.raw_reader(e)?),
            inflater: Decompress::new(false),
            scratch: vec![0u8; 1 << 20],
            sha: sha2::Sha256::new(),
            crc: crc32fast::Hasher::new(),
            adler: 1,
            expected: e.usize,
            declared_crc: e.crc32,
            csize: e.csize,
            state: PassState::Header,
        })
    }

    /// Inflate `input` completely (for the hash and checks), discarding the output.
    fn inflate(&mut self, mut input: &[u8]) -> io::Result<()> {
        while !input.is_empty() {
            let before_in = self.inflater.total_in();
            let before_out = self.inflater.total_out();
            let status = self
                .inflater
                .decompress(input, &mut self.scratch, FlushDecompress::None)
                .map_err(|_| invalid(EntryProblem::CorruptDeflate))?;
            let used = (self.inflater.total_in() - before_in) as usize;
            let made = (self.inflater.total_out() - before_out) as usize;
            let out = &self.scratch[..made];
            self.sha.update(out);
            self.crc.update(out);
            self.adler = dos_core::libdeflate::adler32(self.adler, out);
            if self.inflater.total_out() > self.expected {
                return Err(invalid(EntryProblem::TooLong {
                    declared: self.expected,
                }));
            }
            input = &input[used..];
            if status == Status::StreamEnd {
                if !input.is_empty() || self.inflater.total_in() != self.csize {
                    return Err(invalid(EntryProblem::TrailingBytes));
                }
                return Ok(());
            }
            if used == 0 && made == 0 {
                return Ok(());
            }
        }
        Ok(())
    }
}

impl EncodedStream for Passthrough {
    fn compressed(&self) -> bool {
        true
    }

    fn read_stored(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.state {
            PassState::Header => {
                buf[..2].copy_from_slice(&ZLIB_HEADER);
                self.state = PassState::Body;
                Ok(2)
            }
            PassState::Body => {
                let n = self.raw.read(buf)?;
                if n == 0 {
                    // Flush the inflater: everything must be out now.
                    let mut probe = [0u8; 1];
                    let status = self
                        .inflater
                        .decompress(&[], &mut probe, FlushDecompress::Finish)
                        .map_err(|_| invalid(EntryProblem::CorruptDeflate))?;
                    if status != Status::StreamEnd {
                        return Err(invalid(EntryProblem::Truncated {
                            produced: self.inflater.total_out(),
                            declared: self.expected,
                        }));
                    }
                    let trailer = self.adler.to_be_bytes();
                    buf[..4].copy_from_slice(&trailer);
                    self.state = PassState::Done;
                    return Ok(4);
                }
                self.inflate(&buf[..n])?;
                Ok(n)
            }
            PassState::Done => Ok(0),
        }
    }

    fn finish(self: Box<Self>) -> std::result::Result<(ObjectKey, u64), Rejection> {
        let produced = self.inflater.total_out();
        if self.state != PassState::Done {
            return Err(Box::new(EntryProblem::Truncated {
                produced,
                declared: self.expected,
            }));
        }
        if produced != self.expected {
            return Err(Box::new(EntryProblem::WrongSize {
                produced,
                declared: self.expected,
            }));
        }
        let computed = self.crc.finalize();
        if computed != self.declared_crc {
            return Err(Box::new(EntryProblem::Crc {
                computed,
                declared: self.declared_crc,
            }));
        }
        Ok((ObjectKey::sha256(self.sha.finalize().into()), produced))
    }
}

/// An entry's problem as the error of a read of its stream.
fn invalid(problem: EntryProblem) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, problem)
}
