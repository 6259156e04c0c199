//! Writing objects: loose writes, and the batched direct-to-pack pipeline.
//!
//! ```text
//! sources ─► producer: chunks bounded in bytes ─► rayon: read · hash · compress (small objects)
//!         ─► bounded channel ─► one writer: append in input order to packs/<id> under its lock
//!         ─► per batch: fsync pack ─► one index transaction (INSERT OR IGNORE) ─► report keys
//! ```
//! Objects above [`PackWriteOptions::large_object`] bytes are not read by the workers: the writer
//! streams them through a fixed buffer, so memory stays bounded by
//! [`PackWriteOptions::memory_budget`] whatever the number and size of objects.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use rayon::prelude::*;

use crate::codec::{CompressMode, Compressor, ZlibLevel, auto_should_compress};
use crate::container::Container;
use crate::error::{Error, Result};
use crate::hashing::HashType;
use crate::index::{NewRow, PackedLocation};
use crate::loose;
use crate::pack::{PackAppender, choose_pack};
use crate::progress::{Interrupt, Progress, Unit};

/// Where the bytes of an object come from.
pub enum ObjectSource {
    /// Content in memory.
    Bytes(Vec<u8>),
    /// A file, read when its turn comes (so that millions of sources cost no memory upfront).
    File(PathBuf),
    /// Any stream; `name` is used in error messages.
    Reader {
        /// A description of the stream for errors.
        name: String,
        /// The stream.
        reader: Box<dyn Read + Send>,
    },
    /// Preparation done by the caller on a worker thread (e.g. inflating and checking an archive
    /// entry), which may hand over encoded bytes or reject the source.
    Deferred {
        /// A description of the source for errors.
        name: String,
        /// Bytes it will occupy in memory, for the memory budget.
        size_hint: u64,
        /// The preparation.
        prepare: PrepareFn,
    },
}

/// What a [`ObjectSource::Deferred`] preparation produced (on a worker thread).
pub enum Deferred {
    /// The object's content: hashed and (maybe) compressed by the pipeline, as for `Bytes`.
    Content(Vec<u8>),
    /// Bytes already encoded by the caller, stored as they are.
    Encoded(EncodedObject),
    /// Content too large to hold: the writer streams it; a read error rejects the object.
    Stream(Box<dyn Read + Send>),
    /// Encoded bytes too large to hold: the writer stores them as they come, and the stream's
    /// verdict at the end decides whether they are kept.
    EncodedStream(Box<dyn EncodedStream + Send>),
    /// The source is bad: nothing is stored; reported as [`StoreOutcome::Rejected`].
    Rejected(String),
}

/// An object encoded by the caller (e.g. an archive entry's deflate stream wrapped as zlib).
#[derive(Debug, Clone)]
pub struct EncodedObject {
    /// Key of the uncompressed content (computed by the caller).
    pub key: String,
    /// Uncompressed size.
    pub size: u64,
    /// The bytes to store.
    pub stored: Vec<u8>,
    /// Whether `stored` is a zlib stream.
    pub compressed: bool,
}

/// Encoded bytes produced piece by piece, with a verdict at the end.
pub trait EncodedStream {
    /// Whether the stored bytes are a zlib stream.
    fn compressed(&self) -> bool;
    /// Next stored bytes; `Ok(0)` at the end.
    fn read_stored(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// After the last bytes: the key and uncompressed size of the content, or why the object
    /// must be rejected (e.g. a checksum mismatch).
    fn finish(self: Box<Self>) -> std::result::Result<(String, u64), String>;
}

/// The closure of a deferred source.
pub type PrepareFn = Box<dyn FnOnce() -> Deferred + Send>;

impl std::fmt::Debug for ObjectSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectSource::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            ObjectSource::File(p) => write!(f, "File({})", p.display()),
            ObjectSource::Reader { name, .. } => write!(f, "Reader({name})"),
            ObjectSource::Deferred { name, .. } => write!(f, "Deferred({name})"),
        }
    }
}

impl ObjectSource {
    fn name(&self, idx: usize) -> String {
        match self {
            ObjectSource::Bytes(_) => format!("object #{idx}"),
            ObjectSource::File(p) => p.display().to_string(),
            ObjectSource::Reader { name, .. } | ObjectSource::Deferred { name, .. } => name.clone(),
        }
    }
}

/// One object to store: its source, and optionally the key it must have (e.g. a loose file's
/// name, or an archive entry's name). An object whose content does not hash to the expected key
/// is reported as [`StoreOutcome::Mismatch`] and never stored.
#[derive(Debug)]
pub struct PackItem {
    /// Where the bytes come from.
    pub source: ObjectSource,
    /// The key the content must hash to, if known in advance.
    pub expect: Option<String>,
}

impl From<ObjectSource> for PackItem {
    fn from(source: ObjectSource) -> Self {
        Self {
            source,
            expect: None,
        }
    }
}

/// What happened to one object of [`Container::add_to_pack`] (reported once durable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome<'a> {
    /// Appended to a pack and committed.
    Written {
        /// The key.
        key: &'a str,
        /// Where it went.
        location: PackedLocation,
    },
    /// Already stored (packed before, or earlier in this call): nothing written.
    AlreadyPacked {
        /// The key.
        key: &'a str,
    },
    /// A file source with an expected key no longer exists (e.g. a loose object removed by a
    /// concurrent clean): nothing stored, not an error.
    Vanished {
        /// The key the file was named after.
        expected: &'a str,
    },
    /// The source was rejected by its own checks (or failed while streamed): nothing stored.
    Rejected {
        /// The key the source was supposed to have, if known.
        expected: Option<&'a str>,
        /// Why.
        reason: &'a str,
    },
    /// The content does not hash to the expected key: nothing stored.
    Mismatch {
        /// The key the source was supposed to have.
        expected: &'a str,
        /// The key of the content actually read.
        actual: &'a str,
    },
}

impl<'a> StoreOutcome<'a> {
    /// The key of the stored object (`None` for a mismatch).
    pub fn key(&self) -> Option<&'a str> {
        match *self {
            StoreOutcome::Written { key, .. } | StoreOutcome::AlreadyPacked { key } => Some(key),
            StoreOutcome::Mismatch { .. }
            | StoreOutcome::Vanished { .. }
            | StoreOutcome::Rejected { .. } => None,
        }
    }
}

/// Owned form of [`StoreOutcome`], kept until the batch is committed.
#[derive(Debug)]
enum Outcome {
    Written(String, PackedLocation),
    Known(String),
    Vanished(String),
    Rejected {
        expected: Option<String>,
        reason: String,
    },
    Mismatch {
        expected: String,
        actual: String,
    },
}

impl Outcome {
    fn as_ref(&self) -> StoreOutcome<'_> {
        match self {
            Outcome::Written(key, location) => StoreOutcome::Written {
                key,
                location: *location,
            },
            Outcome::Known(key) => StoreOutcome::AlreadyPacked { key },
            Outcome::Vanished(expected) => StoreOutcome::Vanished { expected },
            Outcome::Rejected { expected, reason } => StoreOutcome::Rejected {
                expected: expected.as_deref(),
                reason,
            },
            Outcome::Mismatch { expected, actual } => StoreOutcome::Mismatch { expected, actual },
        }
    }
}

/// Options of [`Container::add_to_pack`].
#[derive(Debug, Clone)]
pub struct PackWriteOptions {
    /// Compression of written objects.
    pub compress: CompressMode,
    /// Do not write the bytes of objects that are already packed (or already written earlier in
    /// this call). Without it, duplicates are appended and left as unreferenced holes, as Python's
    /// default `no_holes=False` does.
    pub skip_existing: bool,
    /// Commit the index after this many bytes were appended.
    pub batch_bytes: u64,
    /// Commit the index after this many objects.
    pub batch_objects: usize,
    /// Upper bound of object bytes held in memory between workers and writer.
    pub memory_budget: usize,
    /// Objects larger than this are streamed by the writer instead of being read whole.
    pub large_object: u64,
    /// How long to wait for another process's pack lock.
    pub lock_timeout: Duration,
    /// Cooperative cancellation: checked between objects.
    pub interrupt: Interrupt,
    /// Total bytes expected, for progress reporting (0 = unknown).
    pub total_hint: u64,
    /// With `skip_existing`: the caller has checked that no item's expected key was packed, at
    /// this [`Container::index_version`] (read *before* the check), and promises that expected
    /// keys are distinct and differ from the content key of every item without an expected key.
    /// While no other connection has committed since, the writer does not look those keys up
    /// again, which saves one index probe per object. (The version is asked once per chunk,
    /// except while this call's own commit holds the index; commits made through this same
    /// `Container` meanwhile, e.g. by a concurrent `add_to_pack`, do not change it.) Were the
    /// promise broken, a repeated key would be stored twice, the second copy an unreferenced
    /// hole, as without `skip_existing`.
    pub absent_as_of: Option<i64>,
}

impl Default for PackWriteOptions {
    fn default() -> Self {
        Self {
            compress: CompressMode::No,
            skip_existing: true,
            // Each commit rewrites the index pages its (random) keys fall in, which grows with the
            // index: fewer, larger batches cost less (memory: about 250 bytes per object).
            batch_bytes: 1 << 30,
            batch_objects: 100_000,
            memory_budget: 96 * 1024 * 1024,
            large_object: 8 * 1024 * 1024,
            lock_timeout: Duration::from_secs(30),
            interrupt: Interrupt::default(),
            total_hint: 0,
            absent_as_of: None,
        }
    }
}

/// What [`Container::add_to_pack`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PackWriteSummary {
    /// Sources processed.
    pub objects: u64,
    /// Objects whose bytes were appended to a pack.
    pub written: u64,
    /// Objects skipped because they were already packed.
    pub skipped: u64,
    /// Objects not stored because their content did not match the expected key.
    pub mismatched: u64,
    /// File sources with an expected key that no longer existed.
    pub vanished: u64,
    /// Sources rejected by their own checks.
    pub rejected: u64,
    /// Objects stored compressed.
    pub compressed: u64,
    /// Uncompressed bytes of all sources.
    pub bytes_in: u64,
    /// Bytes appended to packs.
    pub bytes_written: u64,
    /// Index transactions committed.
    pub commits: u64,
}

/// Chunk read from a stream.
const STREAM_CHUNK: usize = 1024 * 1024;

/// An object after the parallel stage.
enum Prepared {
    /// Hashed (and compressed) in memory.
    Ready {
        idx: usize,
        key: String,
        expect: Option<String>,
        size: u64,
        data: Vec<u8>,
        compressed: bool,
    },
    /// A file with an expected key that no longer exists.
    Vanished { idx: usize, expect: String },
    /// Rejected by a deferred preparation.
    Rejected {
        idx: usize,
        expect: Option<String>,
        reason: String,
    },
    /// Too large to hold: the writer streams it. `prefix` was already read from `rest`.
    Stream {
        idx: usize,
        expect: Option<String>,
        name: String,
        prefix: Vec<u8>,
        rest: Box<dyn Read + Send>,
        /// A read error rejects the object instead of failing the whole call.
        reject_on_error: bool,
    },
    /// Encoded bytes streamed as they come.
    EncodedStream {
        idx: usize,
        expect: Option<String>,
        stream: Box<dyn EncodedStream + Send>,
    },
}

thread_local! {
    /// Per worker: compressors by level. Two are kept, as AUTO samples large objects at level 1
    /// before compressing them at the container's level.
    static COMPRESSORS: RefCell<Vec<(ZlibLevel, Compressor)>> = const { RefCell::new(Vec::new()) };
}

pub(crate) fn with_compressor<T>(level: ZlibLevel, f: impl FnOnce(&mut Compressor) -> T) -> T {
    COMPRESSORS.with(|c| {
        let mut c = c.borrow_mut();
        let at = match c.iter().position(|(l, _)| *l == level) {
            Some(at) => at,
            None => {
                if c.len() >= 2 {
                    c.remove(0);
                }
                c.push((level, Compressor::new(level)));
                c.len() - 1
            }
        };
        f(&mut c[at].1)
    })
}

/// Hash and (maybe) compress an in-memory object.
fn finish_small(
    idx: usize,
    data: Vec<u8>,
    hash: HashType,
    mode: CompressMode,
    level: ZlibLevel,
) -> Prepared {
    let key = hash.key_of(&data);
    let size = data.len() as u64;
    let want = match mode {
        CompressMode::No => false,
        CompressMode::Yes => !data.is_empty(),
        // Small objects are compressed once and kept compressed if that paid; larger ones are
        // first judged on a sample (Python's plan), so incompressible data costs no full pass.
        CompressMode::Auto => {
            !data.is_empty() && (data.len() <= 131_072 || auto_should_compress(&data))
        }
    };
    if want {
        let z = with_compressor(level, |c| c.compress(&data));
        let keep = match mode {
            CompressMode::Auto => {
                (z.len() as f64) < (data.len() as f64) * crate::codec::AUTO_RATIO_THRESHOLD
            }
            _ => true,
        };
        if keep {
            return Prepared::Ready {
                idx,
                key,
                expect: None,
                size,
                data: z,
                compressed: true,
            };
        }
    }
    Prepared::Ready {
        idx,
        key,
        expect: None,
        size,
        data,
        compressed: false,
    }
}

/// Read `reader` up to `limit` bytes into a buffer pre-sized for `size_hint` bytes (so a file of
/// known size is read without the doubling growth of `read_to_end`). Returns the bytes and
/// whether EOF was reached.
fn read_up_to(reader: &mut dyn Read, limit: u64, size_hint: u64) -> io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::with_capacity(usize::try_from(size_hint.min(limit) + 1).unwrap_or(0));
    let n = reader.take(limit + 1).read_to_end(&mut buf)?;
    Ok((buf, (n as u64) <= limit))
}

fn prepare(
    idx: usize,
    item: PackItem,
    hash: HashType,
    mode: CompressMode,
    level: ZlibLevel,
    large: u64,
) -> Result<Prepared> {
    let expect = item.expect;
    let mut p = match (
        prepare_source(idx, item.source, hash, mode, level, large),
        &expect,
    ) {
        (Err(Error::Source { source, .. }), Some(e))
            if source.kind() == io::ErrorKind::NotFound =>
        {
            return Ok(Prepared::Vanished {
                idx,
                expect: e.clone(),
            });
        }
        (r, _) => r?,
    };
    match &mut p {
        Prepared::Ready { expect: e, .. }
        | Prepared::Stream { expect: e, .. }
        | Prepared::Rejected { expect: e, .. }
        | Prepared::EncodedStream { expect: e, .. } => *e = expect,
        Prepared::Vanished { .. } => {}
    }
    Ok(p)
}

fn prepare_source(
    idx: usize,
    src: ObjectSource,
    hash: HashType,
    mode: CompressMode,
    level: ZlibLevel,
    large: u64,
) -> Result<Prepared> {
    let name = src.name(idx);
    let source_err = |e| Error::Source {
        source_name: name.clone(),
        source: e,
    };
    match src {
        ObjectSource::Bytes(b) => Ok(finish_small(idx, b, hash, mode, level)),
        ObjectSource::File(p) => {
            let mut f = File::open(&p).map_err(source_err)?;
            let len = f.metadata().map_or(0, |m| m.len());
            let (data, eof) = read_up_to(&mut f, large, len).map_err(source_err)?;
            if eof {
                Ok(finish_small(idx, data, hash, mode, level))
            } else {
                Ok(Prepared::Stream {
                    idx,
                    expect: None,
                    name,
                    prefix: data,
                    rest: Box::new(f),
                    reject_on_error: false,
                })
            }
        }
        ObjectSource::Reader { name, mut reader } => {
            let (data, eof) =
                read_up_to(&mut reader, large, 64 * 1024).map_err(|e| Error::Source {
                    source_name: name.clone(),
                    source: e,
                })?;
            if eof {
                Ok(finish_small(idx, data, hash, mode, level))
            } else {
                Ok(Prepared::Stream {
                    idx,
                    expect: None,
                    name,
                    prefix: data,
                    rest: reader,
                    reject_on_error: false,
                })
            }
        }
        ObjectSource::Deferred { name, prepare, .. } => Ok(match prepare() {
            Deferred::Content(data) => finish_small(idx, data, hash, mode, level),
            Deferred::Encoded(e) => Prepared::Ready {
                idx,
                key: e.key,
                expect: None,
                size: e.size,
                data: e.stored,
                compressed: e.compressed,
            },
            Deferred::Stream(rest) => Prepared::Stream {
                idx,
                expect: None,
                name,
                prefix: Vec::new(),
                rest,
                reject_on_error: true,
            },
            Deferred::EncodedStream(stream) => Prepared::EncodedStream {
                idx,
                expect: None,
                stream,
            },
            Deferred::Rejected(reason) => Prepared::Rejected {
                idx,
                expect: None,
                reason,
            },
        }),
    }
}

/// `io::Write` over a pack appender (for the streaming zlib encoder).
struct AppendWriter<'a>(&'a mut PackAppender);

impl Write for AppendWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A key in 32 bytes, for the writer's sets of keys seen (a third of a `String`'s footprint).
/// A SHA-256 key (64 lowercase hex digits) maps to its own bytes; any other text to the SHA-256
/// of the text, so two different keys collide only as SHA-256 does.
type KeyBin = [u8; 32];

fn key_bin(key: &str) -> KeyBin {
    crate::hashing::from_hex32(key.as_bytes())
        .unwrap_or_else(|| <sha2::Sha256 as sha2::Digest>::digest(key.as_bytes()).into())
}

/// The single ordered writer of one `add_to_pack` call.
struct Writer<'c, 'p> {
    c: &'c Container,
    opts: &'c PackWriteOptions,
    progress: &'p dyn Progress,
    appender: Option<PackAppender>,
    /// Position of the pack after the last commit (what an error rolls back to).
    committed_pos: u64,
    /// A full pack whose last batch is being committed, with the position an error rolls it
    /// back to: its lock is kept until that commit is collected, while the writer goes on in
    /// the next pack.
    retiring: Option<(PackAppender, u64)>,
    rows: Vec<NewRow>,
    /// Keys written and not yet committed.
    batch_keys: HashSet<KeyBin>,
    /// Keys committed since the current chunk's existence query (which cannot know them).
    chunk_committed: HashSet<KeyBin>,
    /// Objects handled since the last commit (reported once it is durable).
    pending: Vec<(usize, Outcome)>,
    /// Objects durably stored, not yet reported.
    done: Vec<(usize, Outcome)>,
    batch_bytes: u64,
    summary: PackWriteSummary,
    /// The committer thread: index transactions run there while the writer appends the next
    /// batch (at most one in flight).
    committer: Option<Committer>,
    /// Whether a batch was handed to the committer and its result not yet collected.
    in_flight: bool,
    /// Whether the index was still at `opts.absent_as_of` when last asked.
    fresh: bool,
}

/// A batch whose pack bytes are durable, for the committer thread to commit to the index.
struct CommitJob {
    rows: Vec<NewRow>,
    /// Outcomes to report once the rows are committed.
    pending: Vec<(usize, Outcome)>,
    /// Pack position after the batch (what an error later rolls back to).
    pos: u64,
}

/// The committer's answer: the job's outcomes and position, or why the commit failed.
type CommitDone = Result<(Vec<(usize, Outcome)>, u64)>;

/// The writer's ends of the channels to the committer thread.
struct Committer {
    jobs: crossbeam_channel::Sender<CommitJob>,
    results: crossbeam_channel::Receiver<CommitDone>,
}

/// The error when the committer thread is gone while the writer still needs it.
fn committer_stopped() -> Error {
    Error::InvalidArgument("internal: the index committer stopped".into())
}

/// Commit each job's rows, in order, until the writer hangs up.
fn run_committer(
    c: &Container,
    jobs: &crossbeam_channel::Receiver<CommitJob>,
    results: &crossbeam_channel::Sender<CommitDone>,
) {
    for mut job in jobs {
        let r = c.index().insert_batch(&job.rows).map(|_| {
            c.io.faults.point("index.commit.after");
            // `record` pushed rows and `Written` outcomes in the same order, one each.
            debug_assert_eq!(
                job.rows.len(),
                job.pending
                    .iter()
                    .filter(|(_, o)| matches!(o, Outcome::Written(..)))
                    .count()
            );
            let mut keys = job.rows.drain(..).map(|r| r.key);
            for (_, o) in &mut job.pending {
                if let Outcome::Written(k, _) = o
                    && let Some(key) = keys.next()
                {
                    *k = key;
                }
            }
            (job.pending, job.pos)
        });
        if results.send(r).is_err() {
            return;
        }
    }
}

impl<'c, 'p> Writer<'c, 'p> {
    fn interrupted(&self) -> bool {
        self.opts.interrupt.is_set()
    }

    /// The appender to write the next object to, rolling over to a new pack when full.
    fn appender(&mut self) -> Result<&mut PackAppender> {
        let target = self.c.config.pack_size_target;
        let full = self.appender.as_ref().is_some_and(|a| a.pos() >= target);
        if full {
            // A pack boundary ends the batch. The writer does not wait for its commit: the full
            // pack (and its lock) retires until the commit is collected.
            self.commit()?;
            let next = self.appender.as_ref().map_or(0, |a| a.id() + 1);
            if let Some(old) = self.appender.take()
                && self.in_flight
            {
                self.retiring = Some((old, self.committed_pos));
            }
            self.open_pack(next)?;
        } else if self.appender.is_none() {
            self.open_pack(0)?;
        }
        self.appender
            .as_mut()
            .ok_or_else(|| Error::InvalidArgument("no pack open".into()))
    }

    fn open_pack(&mut self, start: u64) -> Result<()> {
        let target = self.c.config.pack_size_target;
        let id = choose_pack(&self.c.layout, start, target)?;
        let a = PackAppender::open(&self.c.layout, id, self.opts.lock_timeout, &self.c.io)?;
        self.committed_pos = a.pos();
        self.appender = Some(a);
        Ok(())
    }

    fn record(&mut self, idx: usize, key: String, loc: PackedLocation) {
        self.summary.written += 1;
        self.summary.bytes_written += loc.length;
        self.summary.compressed += u64::from(loc.compressed);
        self.batch_bytes += loc.length;
        self.batch_keys.insert(key_bin(&key));
        self.rows.push(NewRow { key, loc });
        // The key stays in `rows` until the commit hands it over (one copy per object).
        self.pending
            .push((idx, Outcome::Written(String::new(), loc)));
    }

    /// Bytes per batch: `batch_bytes`, or, when the total is known, the total split evenly
    /// into as many batches as `batch_bytes` asks for. The last commit is the one nothing
    /// overlaps (the workers are done): even batches keep it from being the large remainder
    /// of a batch that began late, or leaving a large batch committing as the input ends.
    fn batch_limit(&self) -> u64 {
        let (total, max) = (self.opts.total_hint, self.opts.batch_bytes.max(1));
        if total == 0 {
            return max;
        }
        let n = total.div_ceil(max);
        total.div_ceil(n).min(max)
    }

    fn maybe_commit(&mut self) -> Result<()> {
        if self.batch_bytes >= self.batch_limit() || self.rows.len() >= self.opts.batch_objects {
            self.commit()?;
        }
        Ok(())
    }

    /// Durability point: fsync the pack, then commit the batch's rows in one transaction, on
    /// the committer thread when there is one (the writer goes on appending meanwhile; an
    /// earlier batch's commit is collected first, so at most one is in flight).
    fn commit(&mut self) -> Result<()> {
        self.c.io.faults.point("pack.sync.before");
        let pos = match self.appender.as_mut() {
            Some(a) => {
                a.sync()?;
                a.pos()
            }
            None => self.committed_pos,
        };
        self.c.io.faults.point("pack.sync.after");
        self.wait_commit()?;
        self.chunk_committed.extend(self.batch_keys.drain());
        self.batch_bytes = 0;
        let job = CommitJob {
            rows: std::mem::take(&mut self.rows),
            pending: std::mem::take(&mut self.pending),
            pos,
        };
        if job.rows.is_empty() {
            self.committed_pos = pos;
            self.done.extend(job.pending);
            return Ok(());
        }
        let c = self.committer.as_ref().ok_or_else(committer_stopped)?;
        c.jobs.send(job).map_err(|_| committer_stopped())?;
        self.in_flight = true;
        Ok(())
    }

    /// Collect the result of the batch in flight, if any: its outcomes become reportable and
    /// its end becomes the position an error rolls back to.
    fn wait_commit(&mut self) -> Result<()> {
        self.collect_commit(true)
    }

    /// [`Self::wait_commit`] if the commit in flight has finished; nothing otherwise.
    fn poll_commit(&mut self) -> Result<()> {
        self.collect_commit(false)
    }

    fn collect_commit(&mut self, block: bool) -> Result<()> {
        if !self.in_flight {
            return Ok(());
        }
        let results = &self
            .committer
            .as_ref()
            .ok_or_else(committer_stopped)?
            .results;
        let done = if block {
            results.recv().map_err(|_| committer_stopped())?
        } else {
            match results.try_recv() {
                Ok(d) => d,
                Err(crossbeam_channel::TryRecvError::Empty) => return Ok(()),
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    return Err(committer_stopped());
                }
            }
        };
        self.in_flight = false;
        let (outcomes, pos) = done?;
        self.summary.commits += 1;
        // The commit in flight was either the retiring pack's last (now durable: its lock goes)
        // or the current pack's.
        if self.retiring.take().is_none() {
            self.committed_pos = pos;
        }
        self.done.extend(outcomes);
        Ok(())
    }

    fn is_known(&self, key: &str) -> Result<bool> {
        let bin = key_bin(key);
        Ok(self.batch_keys.contains(&bin)
            || self.chunk_committed.contains(&bin)
            || self.c.index().get(key)?.is_some())
    }

    fn write_chunk(&mut self, chunk: Vec<Prepared>) -> Result<()> {
        self.poll_commit()?;
        // Keys the caller checked, with the index unchanged by others since, need no probe.
        // While a commit of ours is in flight the committer holds the index: keep the last
        // answer rather than wait for it (a commit by another process is then noticed one
        // commit later; at worst its objects are stored again, as without `skip_existing`).
        let fresh = match self.opts.absent_as_of {
            Some(v) if self.opts.skip_existing => {
                if self.fresh && !self.in_flight {
                    self.fresh = self.c.index().data_version()? == v;
                }
                self.fresh
            }
            _ => false,
        };
        let existing: HashSet<String> = if self.opts.skip_existing {
            let mut keys: Vec<&str> = chunk
                .iter()
                .filter_map(|p| match p {
                    Prepared::Ready { key, expect, .. }
                        if !(fresh && expect.as_deref() == Some(key.as_str())) =>
                    {
                        Some(key.as_str())
                    }
                    Prepared::Ready { .. } => None,
                    Prepared::Stream { .. }
                    | Prepared::Vanished { .. }
                    | Prepared::Rejected { .. }
                    | Prepared::EncodedStream { .. } => None,
                })
                .collect();
            keys.sort_unstable();
            keys.dedup();
            let found = if keys.is_empty() {
                Vec::new()
            } else {
                self.c.index().contains_sorted(&keys)?
            };
            // Everything committed so far is in the index now, unless a commit was still in
            // flight (and keys not probed are distinct from it, by the caller's promise).
            if !self.in_flight {
                self.chunk_committed.clear();
            }
            keys.iter()
                .zip(found)
                .filter(|(_, f)| *f)
                .map(|(k, _)| (*k).to_string())
                .collect()
        } else {
            HashSet::new()
        };
        for p in chunk {
            if self.interrupted() {
                return Err(Error::Interrupted);
            }
            self.summary.objects += 1;
            match p {
                Prepared::Ready {
                    idx,
                    key,
                    expect,
                    size,
                    data,
                    compressed,
                } => {
                    self.summary.bytes_in += size;
                    self.progress.inc(size);
                    if let Some(expected) = expect.filter(|e| *e != key) {
                        self.summary.mismatched += 1;
                        self.pending.push((
                            idx,
                            Outcome::Mismatch {
                                expected,
                                actual: key,
                            },
                        ));
                        continue;
                    }
                    if self.opts.skip_existing
                        && (existing.contains(&key) || {
                            let bin = key_bin(&key);
                            self.batch_keys.contains(&bin) || self.chunk_committed.contains(&bin)
                        })
                    {
                        self.summary.skipped += 1;
                        self.pending.push((idx, Outcome::Known(key)));
                        continue;
                    }
                    let c = self.c;
                    let a = self.appender()?;
                    let offset = a.pos();
                    a.write(&data)?;
                    c.io.faults.point("pack.append");
                    let pack_id = a.id();
                    self.record(
                        idx,
                        key,
                        PackedLocation {
                            pack_id,
                            offset,
                            length: data.len() as u64,
                            compressed,
                            size,
                        },
                    );
                }
                Prepared::Stream {
                    idx,
                    expect,
                    name,
                    prefix,
                    rest,
                    reject_on_error,
                } => self.write_stream(idx, expect, &name, prefix, rest, reject_on_error)?,
                Prepared::EncodedStream {
                    idx,
                    expect,
                    stream,
                } => self.write_encoded_stream(idx, expect, stream)?,
                Prepared::Rejected {
                    idx,
                    expect,
                    reason,
                } => {
                    self.summary.rejected += 1;
                    self.pending.push((
                        idx,
                        Outcome::Rejected {
                            expected: expect,
                            reason,
                        },
                    ));
                }
                Prepared::Vanished { idx, expect } => {
                    self.summary.vanished += 1;
                    self.pending.push((idx, Outcome::Vanished(expect)));
                }
            }
            self.maybe_commit()?;
        }
        Ok(())
    }

    /// Stream one large object into the pack through a fixed buffer.
    fn write_stream(
        &mut self,
        idx: usize,
        expect: Option<String>,
        name: &str,
        prefix: Vec<u8>,
        mut rest: Box<dyn Read + Send>,
        reject_on_error: bool,
    ) -> Result<()> {
        let hash = self.c.config.hash_type;
        let level = self.c.config.compression;
        let compress = match self.opts.compress {
            CompressMode::No => false,
            CompressMode::Yes => true,
            // The sample is the start of the stream (streams cannot be sampled elsewhere).
            CompressMode::Auto => auto_should_compress(&prefix[..prefix.len().min(131_072)]),
        };
        let progress = self.progress;
        let interrupt = self.opts.interrupt.clone();
        let a = self.appender()?;
        let pack_id = a.id();
        let offset = a.pos();
        let mut hasher = hash.hasher();
        let mut size = 0u64;
        let mut feed = |chunk: &[u8], sink: &mut dyn Write| -> std::result::Result<(), PumpError> {
            hasher.update(chunk);
            size += chunk.len() as u64;
            progress.inc(chunk.len() as u64);
            sink.write_all(chunk)
                .map_err(|e| PumpError::Fatal(io_to_error(e, pack_id, name)))
        };
        let result = (|| -> std::result::Result<(), PumpError> {
            let mut buf = vec![0u8; STREAM_CHUNK];
            let mut pump = |sink: &mut dyn Write| -> std::result::Result<(), PumpError> {
                feed(&prefix, sink)?;
                loop {
                    if interrupt.is_set() {
                        return Err(PumpError::Fatal(Error::Interrupted));
                    }
                    let n = match rest.read(&mut buf) {
                        Ok(0) => return Ok(()),
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(PumpError::Source(e)),
                    };
                    feed(&buf[..n], sink)?;
                }
            };
            if compress {
                let mut enc =
                    flate2::write::ZlibEncoder::new(AppendWriter(a), level.backend_level());
                pump(&mut enc)?;
                enc.finish()
                    .map_err(|e| PumpError::Fatal(io_to_error(e, pack_id, name)))?;
            } else {
                pump(&mut AppendWriter(a))?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {}
            Err(PumpError::Source(e)) if reject_on_error => {
                return self.reject_streamed(idx, expect, offset, e.to_string());
            }
            Err(PumpError::Source(e)) => {
                return Err(Error::Source {
                    source_name: name.to_string(),
                    source: e,
                });
            }
            Err(PumpError::Fatal(e)) => return Err(e),
        }
        let key = hasher.finalize_hex();
        self.summary.bytes_in += size;
        self.settle_streamed(idx, expect, key, pack_id, offset, size, compress)
    }

    /// Store an encoded stream as it comes; its verdict at the end decides.
    fn write_encoded_stream(
        &mut self,
        idx: usize,
        expect: Option<String>,
        mut stream: Box<dyn EncodedStream + Send>,
    ) -> Result<()> {
        let compressed = stream.compressed();
        let progress = self.progress;
        let interrupt = self.opts.interrupt.clone();
        let a = self.appender()?;
        let pack_id = a.id();
        let offset = a.pos();
        let mut buf = vec![0u8; STREAM_CHUNK];
        loop {
            if interrupt.is_set() {
                return Err(Error::Interrupted);
            }
            match stream.read_stored(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    a.write(&buf[..n])?;
                    progress.inc(n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.reject_streamed(idx, expect, offset, e.to_string()),
            }
        }
        match stream.finish() {
            Ok((key, size)) => {
                self.summary.bytes_in += size;
                self.settle_streamed(idx, expect, key, pack_id, offset, size, compressed)
            }
            Err(reason) => self.reject_streamed(idx, expect, offset, reason),
        }
    }

    /// A streamed object failed its source's checks: cut its bytes (never committed).
    fn reject_streamed(
        &mut self,
        idx: usize,
        expect: Option<String>,
        offset: u64,
        reason: String,
    ) -> Result<()> {
        if let Some(a) = self.appender.as_mut() {
            a.truncate_to(offset)?;
        }
        self.summary.rejected += 1;
        self.pending.push((
            idx,
            Outcome::Rejected {
                expected: expect,
                reason,
            },
        ));
        Ok(())
    }

    /// A streamed object is complete: keep it, or cut it if it is a mismatch or a duplicate.
    #[allow(clippy::too_many_arguments)]
    fn settle_streamed(
        &mut self,
        idx: usize,
        expect: Option<String>,
        key: String,
        pack_id: u64,
        offset: u64,
        size: u64,
        compressed: bool,
    ) -> Result<()> {
        let a = self
            .appender
            .as_mut()
            .ok_or_else(|| Error::InvalidArgument("no pack open".into()))?;
        let length = a.pos() - offset;
        if let Some(expected) = expect.filter(|e| *e != key) {
            // Not what it claims to be: cut the bytes just appended (never committed).
            a.truncate_to(offset)?;
            self.summary.mismatched += 1;
            self.pending.push((
                idx,
                Outcome::Mismatch {
                    expected,
                    actual: key,
                },
            ));
            return Ok(());
        }
        if self.opts.skip_existing && self.is_known(&key)? {
            // Already stored: cut the bytes we just appended (never committed, never visible).
            if let Some(a) = self.appender.as_mut() {
                a.truncate_to(offset)?;
            }
            self.summary.skipped += 1;
            self.pending.push((idx, Outcome::Known(key)));
            return Ok(());
        }
        self.record(
            idx,
            key,
            PackedLocation {
                pack_id,
                offset,
                length,
                compressed,
                size,
            },
        );
        Ok(())
    }

    /// After a failure: cut the uncommitted tail so the pack holds only committed objects.
    fn roll_back(&mut self) {
        if let Some(a) = self.appender.as_mut() {
            let _ = a.truncate_to(self.committed_pos);
        }
        if let Some((mut a, pos)) = self.retiring.take() {
            let _ = a.truncate_to(pos);
        }
        self.rows.clear();
        self.pending.clear();
    }
}

/// Why pumping a stream into a pack stopped.
enum PumpError {
    /// Reading the source failed.
    Source(io::Error),
    /// Anything else (writing the pack, interruption).
    Fatal(Error),
}

fn io_to_error(e: io::Error, pack_id: u64, name: &str) -> Error {
    // Appender errors travel through io::Error::other; keep their message.
    Error::Source {
        source_name: format!("{name} (writing to pack {pack_id})"),
        source: e,
    }
}

impl Container {
    /// Write objects straight into pack files, in batches.
    ///
    /// Hashing and compression run in parallel; one writer appends in input order to the pack
    /// Python would choose, under its lock file. For every batch the pack is fsynced before the
    /// batch's index rows are committed in one transaction. `on_object(i, outcome)` is called for
    /// item `i` once its outcome is final (the object durably stored, found already stored, or
    /// rejected because it did not match its expected key), in input order.
    ///
    /// On error or interruption, everything committed before stays; uncommitted bytes are cut
    /// from the pack.
    pub fn add_to_pack<I, T>(
        &self,
        sources: I,
        opts: &PackWriteOptions,
        progress: &dyn Progress,
        mut on_object: impl FnMut(usize, StoreOutcome<'_>),
    ) -> Result<PackWriteSummary>
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send,
        T: Into<PackItem>,
    {
        let hash = self.config.hash_type;
        let level = self.config.compression;
        let mode = opts.compress;
        let large = opts.large_object;
        // Five chunks can be alive at once (being prepared, three queued, being written), and the
        // one being prepared briefly holds both its input and its compressed output: 6/8 of the
        // budget. Several smaller queued chunks keep the workers going while the writer waits
        // for the disk (at 840k archive entries: peak RSS 224-230 MB with one queued chunk of a
        // quarter of the budget, 206-214 MB like this, in the same time).
        let chunk_budget = (opts.memory_budget / 8).max(1);
        let (tx, rx) = crossbeam_channel::bounded::<Result<Vec<Prepared>>>(3);
        progress.start(opts.total_hint, Unit::Bytes, "Writing to packs");

        let w = Writer {
            c: self,
            opts,
            progress,
            appender: None,
            committed_pos: 0,
            retiring: None,
            rows: Vec::new(),
            batch_keys: HashSet::new(),
            chunk_committed: HashSet::new(),
            pending: Vec::new(),
            done: Vec::new(),
            batch_bytes: 0,
            summary: PackWriteSummary::default(),
            committer: None,
            in_flight: false,
            fresh: true,
        };
        let sources = sources.into_iter();
        let (result, mut w) = std::thread::scope(|s| {
            // The writer is moved in: should anything below panic, unwinding drops it and with it
            // the committer's job channel, so the committer thread ends and the scope can finish.
            let mut w = w;
            let (job_tx, job_rx) = crossbeam_channel::bounded::<CommitJob>(1);
            let (done_tx, done_rx) = crossbeam_channel::bounded::<CommitDone>(1);
            s.spawn(move || run_committer(self, &job_rx, &done_tx));
            w.committer = Some(Committer {
                jobs: job_tx,
                results: done_rx,
            });
            s.spawn(move || {
                let mut chunk: Vec<(usize, PackItem)> = Vec::new();
                let mut chunk_bytes = 0u64;
                let flush = |chunk: Vec<(usize, PackItem)>| -> bool {
                    let prepared: Result<Vec<Prepared>> = chunk
                        .into_par_iter()
                        .map(|(i, src)| prepare(i, src, hash, mode, level, large))
                        .collect();
                    let failed = prepared.is_err();
                    tx.send(prepared).is_ok() && !failed
                };
                for (i, src) in sources.enumerate() {
                    let src: PackItem = src.into();
                    let est = match &src.source {
                        ObjectSource::Bytes(b) => b.len() as u64,
                        ObjectSource::File(p) => {
                            std::fs::metadata(p).map_or(0, |m| m.len()).min(large)
                        }
                        ObjectSource::Reader { .. } => large,
                        ObjectSource::Deferred { size_hint, .. } => (*size_hint).min(large),
                    };
                    chunk.push((i, src));
                    chunk_bytes += est + 256;
                    if chunk_bytes >= chunk_budget as u64 || chunk.len() >= 16_384 {
                        chunk_bytes = 0;
                        if !flush(std::mem::take(&mut chunk)) {
                            return;
                        }
                    }
                }
                if !chunk.is_empty() {
                    flush(chunk);
                }
            });
            let mut run = || -> Result<()> {
                for chunk in &rx {
                    w.write_chunk(chunk?)?;
                    for (i, o) in w.done.drain(..) {
                        on_object(i, o.as_ref());
                    }
                }
                w.commit()?;
                for (i, o) in w.done.drain(..) {
                    on_object(i, o.as_ref());
                }
                Ok(())
            };
            let r = run();
            // Unblock and stop the producer if we stopped early.
            drop(rx);
            // Collect the batch in flight (its result decides what an error rolls back to), then
            // let the committer thread end.
            let waited = w.wait_commit();
            w.committer = None;
            // Whatever was committed is reported, also when the call fails afterwards.
            for (i, o) in w.done.drain(..) {
                on_object(i, o.as_ref());
            }
            (r.and(waited), w)
        });
        if let Err(e) = result {
            w.roll_back();
            progress.finish();
            return Err(e);
        }
        progress.finish();
        Ok(w.summary)
    }

    /// Convenience: write in-memory objects to packs; returns their keys in input order.
    pub fn add_objects_to_pack(
        &self,
        contents: Vec<Vec<u8>>,
        opts: &PackWriteOptions,
    ) -> Result<Vec<String>> {
        let mut keys = vec![String::new(); contents.len()];
        self.add_to_pack(
            contents.into_iter().map(ObjectSource::Bytes),
            opts,
            &crate::progress::NoProgress,
            |i, o| keys[i] = o.key().unwrap_or_default().to_string(),
        )?;
        Ok(keys)
    }

    /// Write one loose object from memory (durable when this returns).
    pub fn add_object(&self, content: &[u8]) -> Result<String> {
        self.add_streamed_object(&mut &content[..])
    }

    /// Write one loose object from a stream (durable when this returns). Safe to call from many
    /// processes at once, with the same or different content.
    pub fn add_streamed_object(&self, reader: &mut dyn Read) -> Result<String> {
        loose::write_stream(
            &self.layout,
            self.config.loose_prefix_len,
            self.config.hash_type,
            reader,
            &self.io.faults,
        )
        .map(|(k, _)| k)
    }

    /// Write many files as loose objects with batched syncs; everything is durable when this
    /// returns. Returns `(key, size)` per file, in input order.
    pub fn add_files_loose(
        &self,
        paths: &[PathBuf],
        progress: &dyn Progress,
    ) -> Result<Vec<loose::WrittenFile>> {
        loose::write_files(
            &self.layout,
            self.config.loose_prefix_len,
            self.config.hash_type,
            paths,
            progress,
            &self.io.faults,
        )
    }
}
