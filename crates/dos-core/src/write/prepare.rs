//! The parallel stage: reading, hashing and compressing objects on the rayon workers, a chunk at
//! a time, on the preparer thread.
//!
//! The session hands the preparer its pushed items in small groups; the preparer cuts them into
//! chunks bounded in bytes (it looks at each item's size, e.g. a file's, off the writer's
//! thread), prepares each chunk in parallel and queues it for the writer (at most [`QUEUED`]
//! chunks wait), so that the workers go on while the writer waits for the disk.

use std::fs::File;
use std::io::{self, Read};
use std::thread::JoinHandle;

use rayon::prelude::*;

use crate::codec::{self, AUTO_RATIO_THRESHOLD, CompressMode, Compression, auto_should_compress};
use crate::hashing::HashType;
use crate::key::ObjectKey;
use crate::write::outcome::Stored;
use crate::write::source::{Content, EncodedStream, ObjectSource, PackItem, Prepared};
use crate::write::{Error, Rejection};

/// Prepared chunks waiting for the writer. Five chunks can be alive at once (being prepared,
/// three queued, being written), and the one being prepared briefly holds both its input and
/// its compressed output: 6/8 of the memory budget with chunks of 1/8. Several smaller queued
/// chunks keep the workers going while the writer waits for the disk (at 840k archive entries:
/// peak RSS 224-230 MB with one queued chunk of a quarter of the budget, 206-214 MB like this,
/// in the same time).
const QUEUED: usize = 3;
/// Items per group handed to the preparer.
pub(super) const GROUP_ITEMS: usize = 512;
/// Groups of pushed items waiting for the preparer: enough that it has work while the writer,
/// on the caller's thread, is busy (an fsync, a commit to collect).
const TODO: usize = 8;
/// Items per chunk at most, whatever their size.
const CHUNK_ITEMS: usize = 16_384;

/// An object after the parallel stage, ready for the writer.
pub(super) enum Staged {
    /// Hashed (and compressed) in memory.
    Ready {
        idx: usize,
        key: ObjectKey,
        expect: Option<ObjectKey>,
        size: u64,
        data: Content,
        stored: Stored,
    },
    /// A file with an expected key that no longer exists.
    Vanished { idx: usize, expect: ObjectKey },
    /// Rejected by the caller's preparation.
    Rejected {
        idx: usize,
        expect: Option<ObjectKey>,
        reason: Rejection,
    },
    /// Too large to hold: the writer streams it. `prefix` was already read from `rest`.
    Stream {
        idx: usize,
        expect: Option<ObjectKey>,
        name: String,
        prefix: Vec<u8>,
        rest: Box<dyn Read + Send>,
        /// A read error rejects the object instead of failing the whole session.
        reject_on_error: bool,
    },
    /// Encoded bytes streamed as they come.
    EncodedStream {
        idx: usize,
        expect: Option<ObjectKey>,
        stream: Box<dyn EncodedStream + Send>,
    },
}

/// What the parallel stage needs to know: the container's hash and level, the session's mode.
#[derive(Debug, Clone, Copy)]
pub(super) struct StageParams {
    pub hash: HashType,
    pub mode: CompressMode,
    pub level: Compression,
    /// Objects above this many bytes are streamed by the writer.
    pub large: u64,
}

/// Items with their position in the session: a group the session hands over, or a chunk the
/// preparer prepares at once.
pub(super) type Items = Vec<(usize, PackItem)>;
/// A prepared chunk, or the first source error in it.
pub(super) type StagedChunk = Result<Vec<Staged>, Error>;

/// Bytes an item will occupy in memory once prepared (at most `large`: larger objects stream).
fn memory_estimate(source: &ObjectSource, large: u64) -> u64 {
    match source {
        ObjectSource::Bytes(b) => b.len() as u64,
        // Held bytes are not copied; what the writer holds for them is their compressed form
        // at most, counted as their length.
        ObjectSource::Held(b) => b.as_ref().as_ref().len() as u64,
        ObjectSource::File(p) => std::fs::metadata(p).map_or(0, |m| m.len()).min(large),
        ObjectSource::Reader { .. } => large,
        ObjectSource::Prepare(p) => p.size_hint().min(large),
    }
}

/// The preparer thread and its two channels.
pub(super) struct Preparer {
    /// Groups of items to prepare (`None` once the session has sent its last one).
    pub todo: Option<crossbeam_channel::Sender<Items>>,
    /// Prepared chunks, in order.
    pub done: crossbeam_channel::Receiver<StagedChunk>,
    pub thread: Option<JoinHandle<()>>,
}

impl Preparer {
    /// Start the preparer thread: it cuts the groups it is given into chunks of about
    /// `chunk_budget` bytes, prepares one chunk at a time on the rayon pool, and stops at the
    /// first source error, when `todo` is closed (after preparing what is left), or when the
    /// writer hangs up.
    pub fn start(params: StageParams, chunk_budget: u64) -> io::Result<Self> {
        let (todo_tx, todo_rx) = crossbeam_channel::bounded::<Items>(TODO);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<StagedChunk>(QUEUED);
        let thread = std::thread::Builder::new()
            .name("dos-prepare".into())
            .spawn(move || {
                // Prepare a chunk and hand it over; false once the preparer must stop.
                let prepare = |chunk: Items| {
                    let staged: StagedChunk = chunk
                        .into_par_iter()
                        .map(|(i, item)| stage(i, item, params))
                        .collect();
                    let failed = staged.is_err();
                    done_tx.send(staged).is_ok() && !failed
                };
                let mut chunk: Items = Vec::new();
                let mut chunk_bytes = 0u64;
                for group in todo_rx {
                    for (i, item) in group {
                        chunk_bytes += memory_estimate(&item.source, params.large) + 256;
                        chunk.push((i, item));
                        if chunk_bytes >= chunk_budget || chunk.len() >= CHUNK_ITEMS {
                            chunk_bytes = 0;
                            if !prepare(std::mem::take(&mut chunk)) {
                                return;
                            }
                        }
                    }
                }
                if !chunk.is_empty() {
                    prepare(chunk);
                }
            })?;
        Ok(Self {
            todo: Some(todo_tx),
            done: done_rx,
            thread: Some(thread),
        })
    }
}

/// Hash and (maybe) compress an in-memory object.
fn stage_bytes(idx: usize, data: Content, p: StageParams) -> Staged {
    let key = p.hash.key_of(&data);
    let size = data.len() as u64;
    let want = match p.mode {
        CompressMode::No => false,
        // As Python: the empty object too (a zlib stream of no bytes).
        CompressMode::Yes => true,
        // Small objects are compressed once and kept compressed if that paid; larger ones are
        // first judged on a sample (Python's plan), so incompressible data costs no full pass.
        CompressMode::Auto => {
            !data.is_empty() && (data.len() <= 131_072 || auto_should_compress(&data))
        }
    };
    if want {
        let z = codec::with_compressor(p.level, |c| c.compress(&data));
        let keep = match p.mode {
            CompressMode::Auto => (z.len() as f64) < (data.len() as f64) * AUTO_RATIO_THRESHOLD,
            _ => true,
        };
        if keep {
            return Staged::Ready {
                idx,
                key,
                expect: None,
                size,
                data: Content::Owned(z),
                stored: Stored::Compressed,
            };
        }
    }
    Staged::Ready {
        idx,
        key,
        expect: None,
        size,
        data,
        stored: Stored::Raw,
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

/// Prepare one item (on a worker thread).
fn stage(idx: usize, item: PackItem, p: StageParams) -> Result<Staged, Error> {
    let expect = item.expect;
    let mut staged = match (stage_source(idx, item.source, p), expect) {
        (Err(Error::Source { source, .. }), Some(e))
            if source.kind() == io::ErrorKind::NotFound =>
        {
            return Ok(Staged::Vanished { idx, expect: e });
        }
        (r, _) => r?,
    };
    match &mut staged {
        Staged::Ready { expect: e, .. }
        | Staged::Stream { expect: e, .. }
        | Staged::Rejected { expect: e, .. }
        | Staged::EncodedStream { expect: e, .. } => *e = expect,
        Staged::Vanished { .. } => {}
    }
    Ok(staged)
}

fn stage_source(idx: usize, src: ObjectSource, p: StageParams) -> Result<Staged, Error> {
    let streamed = |name: String, prefix: Vec<u8>, rest: Box<dyn Read + Send>| Staged::Stream {
        idx,
        expect: None,
        name,
        prefix,
        rest,
        reject_on_error: false,
    };
    match src {
        ObjectSource::Bytes(b) => Ok(stage_bytes(idx, Content::Owned(b), p)),
        ObjectSource::Held(b) => Ok(stage_bytes(idx, Content::Held(b), p)),
        ObjectSource::File(path) => {
            let source_err = |source| Error::Source {
                name: path.display().to_string(),
                source,
            };
            let mut f = File::open(&path).map_err(source_err)?;
            let len = f.metadata().map_or(0, |m| m.len());
            let (data, eof) = read_up_to(&mut f, p.large, len).map_err(source_err)?;
            Ok(if eof {
                stage_bytes(idx, Content::Owned(data), p)
            } else {
                streamed(path.display().to_string(), data, Box::new(f))
            })
        }
        ObjectSource::Reader { name, mut reader } => {
            let (data, eof) = match read_up_to(&mut reader, p.large, 64 * 1024) {
                Ok(r) => r,
                Err(source) => return Err(Error::Source { name, source }),
            };
            Ok(if eof {
                stage_bytes(idx, Content::Owned(data), p)
            } else {
                streamed(name, data, reader)
            })
        }
        ObjectSource::Prepare(prep) => Ok(match prep.prepare() {
            Prepared::Content(data) => stage_bytes(idx, Content::Owned(data), p),
            Prepared::Encoded(e) => Staged::Ready {
                idx,
                key: e.key,
                expect: None,
                size: e.size,
                data: Content::Owned(e.stored),
                stored: if e.compressed {
                    Stored::PassedThrough
                } else {
                    Stored::Raw
                },
            },
            Prepared::Stream(rest) => Staged::Stream {
                idx,
                expect: None,
                name: format!("object #{idx}"),
                prefix: Vec::new(),
                rest,
                reject_on_error: true,
            },
            Prepared::EncodedStream(stream) => Staged::EncodedStream {
                idx,
                expect: None,
                stream,
            },
            Prepared::Rejected(reason) => Staged::Rejected {
                idx,
                expect: None,
                reason,
            },
        }),
    }
}
