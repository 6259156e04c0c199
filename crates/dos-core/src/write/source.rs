//! What a pack writer is given: objects' sources, and the preparation a caller can run on the
//! writer's worker threads.

use std::io::{self, Read};
use std::path::PathBuf;

use crate::key::ObjectKey;

/// Where the bytes of an object come from.
pub enum ObjectSource {
    /// Content in memory.
    Bytes(Vec<u8>),
    /// Content in memory that the caller keeps owning (e.g. a Python `bytes` object): the
    /// writer hashes and stores it from there, without copying it first.
    Held(Box<dyn AsRef<[u8]> + Send>),
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
    /// entry), which may hand over encoded bytes or reject the object.
    Prepare(Box<dyn PrepareObject>),
}

/// An object the caller prepares itself, on one of the writer's worker threads.
pub trait PrepareObject: Send {
    /// Bytes the prepared object will occupy in memory, for the memory budget (objects larger
    /// than the large-object threshold count as that threshold: they are streamed).
    fn size_hint(&self) -> u64;

    /// Read, decode, check — whatever the object needs before it can be stored.
    fn prepare(self: Box<Self>) -> Prepared;
}

/// What a [`PrepareObject`] produced.
pub enum Prepared {
    /// The object's content: hashed and (maybe) compressed by the writer, as for
    /// [`ObjectSource::Bytes`].
    Content(Vec<u8>),
    /// Bytes already encoded by the caller, stored as they are.
    Encoded(EncodedObject),
    /// Content too large to hold: the writer streams it; a read error rejects the object.
    Stream(Box<dyn Read + Send>),
    /// Encoded bytes too large to hold: the writer stores them as they come, and the stream's
    /// verdict at the end decides whether they are kept.
    EncodedStream(Box<dyn EncodedStream + Send>),
    /// The object is bad: nothing is stored; reported as
    /// [`StoreOutcome::Rejected`](crate::write::StoreOutcome::Rejected).
    Rejected(Rejection),
}

/// Why a caller's preparation refused an object (its own error type, boxed).
pub type Rejection = Box<dyn std::error::Error + Send + Sync>;

/// An object encoded by the caller (e.g. an archive entry's deflate stream wrapped as zlib).
#[derive(Debug, Clone)]
pub struct EncodedObject {
    /// Key of the uncompressed content (computed by the caller).
    pub key: ObjectKey,
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
    fn finish(self: Box<Self>) -> Result<(ObjectKey, u64), Rejection>;
}

impl std::fmt::Debug for ObjectSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectSource::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            ObjectSource::Held(b) => write!(f, "Held({} bytes)", b.as_ref().as_ref().len()),
            ObjectSource::File(p) => write!(f, "File({})", p.display()),
            ObjectSource::Reader { name, .. } => write!(f, "Reader({name})"),
            ObjectSource::Prepare(p) => write!(f, "Prepare({} bytes)", p.size_hint()),
        }
    }
}

/// The bytes of a prepared object: owned, or held by the caller ([`ObjectSource::Held`]).
pub(crate) enum Content {
    /// Bytes the writer owns.
    Owned(Vec<u8>),
    /// Bytes the caller owns.
    Held(Box<dyn AsRef<[u8]> + Send>),
}

impl std::ops::Deref for Content {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Content::Owned(v) => v,
            Content::Held(b) => b.as_ref().as_ref(),
        }
    }
}

/// One object to store: its source, and optionally the key it must have (e.g. a loose file's
/// name, or an archive entry's name). An object whose content does not hash to the expected key
/// is reported as [`StoreOutcome::Mismatch`](crate::write::StoreOutcome::Mismatch) and never
/// stored.
#[derive(Debug)]
pub struct PackItem {
    /// Where the bytes come from.
    pub source: ObjectSource,
    /// The key the content must hash to, if known in advance.
    pub expect: Option<ObjectKey>,
}

impl From<ObjectSource> for PackItem {
    fn from(source: ObjectSource) -> Self {
        Self {
            source,
            expect: None,
        }
    }
}
