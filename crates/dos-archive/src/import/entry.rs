//! One repository entry, prepared on a worker thread: read, inflated and checked (size, CRC-32
//! where it tells something, SHA-256), then handed to the pack writer raw, as content to
//! compress, or as its own deflate stream framed as zlib (passthrough).

use std::sync::Arc;

use dos_core::codec::AUTO_RATIO_THRESHOLD;
use dos_core::codec::deflate::{self, Inflated, ZLIB_HEADER, adler32};
use dos_core::write::{EncodedObject, PrepareObject, Prepared};
use dos_core::{CompressMode, ObjectKey};
use sha2::Digest;

use super::passthrough::Passthrough;
use crate::error::ArchiveError;
use crate::zip::{Entry, EntryName, METHOD_DEFLATE, METHOD_STORED, Unsupported, ZipArchive};

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

thread_local! {
    /// Per worker: the buffer entries are inflated into when the content is only needed for
    /// checking (passthrough), and the buffer raw deflate bytes are read into otherwise.
    static SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// One repository entry to import: read, inflated and checked on a worker thread.
pub(super) struct EntryImport {
    pub z: Arc<ZipArchive>,
    pub index: u32,
    pub mode: CompressMode,
    pub large: u64,
    /// Whether the container's coding is zlib, so a deflate stream may be stored as it is.
    pub passthrough_allowed: bool,
}

impl PrepareObject for EntryImport {
    fn size_hint(&self) -> u64 {
        let e = &self.z.entries[self.index as usize];
        e.usize.saturating_add(e.csize)
    }

    fn prepare(self: Box<Self>) -> Prepared {
        let e = &self.z.entries[self.index as usize];
        match prepare_entry(&self.z, e, self.mode, self.large, self.passthrough_allowed) {
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
    passthrough_allowed: bool,
) -> std::result::Result<Prepared, EntryProblem> {
    if let Some(why) = e.unsupported() {
        return Err(EntryProblem::Unsupported(why));
    }
    let passthrough_pays = passthrough_allowed
        && e.method == METHOD_DEFLATE
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
            let adler = adler32(1, inflated);
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
    // Inflated here; stored raw, or handed to the writer to compress.
    let data = SCRATCH.with(|s| {
        let raw = &mut s.borrow_mut().1;
        raw.resize(e.csize as usize, 0);
        z.read_raw_into(e, raw)?;
        let mut out = Vec::new();
        inflate_raw_into(raw, e.usize, &mut out)?;
        Ok::<_, EntryProblem>(out)
    })?;
    let key = check(e, &data)?;
    if mode != CompressMode::No {
        // Compression wanted but not by passthrough (a zstd container, or AUTO judging the
        // entry's deflate stream not worth it): the writer codes the content as the container
        // says.
        return Ok(Prepared::Content(data));
    }
    Ok(Prepared::Encoded(EncodedObject {
        key,
        size: data.len() as u64,
        stored: data,
        compressed: false,
    }))
}

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
    match deflate::inflate(raw, cap, out) {
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
