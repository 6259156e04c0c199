//! Errors of the archive crate. Every variant names the archive (and the entry, where there is
//! one); what is wrong is a typed value ([`ZipProblem`], [`NotSupported`], [`LimitExceeded`],
//! [`ContentProblem`]).

use std::io;
use std::path::PathBuf;

use dos_core::{HashType, ObjectKey};

use crate::zip::Unsupported;

/// Result alias of the archive crate.
pub type Result<T, E = ArchiveError> = std::result::Result<T, E>;

/// What can go wrong with an archive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// An operating-system error.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operation.
        op: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Not a zip file, or a zip file whose structure is broken or lies.
    #[error("{path}: not a valid zip archive: {problem}")]
    Malformed {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        problem: ZipProblem,
    },
    /// The archive is valid zip but not something we may read safely or at all.
    #[error("{path}: {what}")]
    Unsupported {
        /// The archive (or the container, or the file to write).
        path: PathBuf,
        /// What is not supported.
        what: NotSupported,
    },
    /// Declared sizes beyond the configured limits (zip bombs, lying headers, full disks).
    #[error("{path}: {limit}")]
    Limit {
        /// The archive (or the container).
        path: PathBuf,
        /// Which limit.
        limit: LimitExceeded,
    },
    /// `metadata.json` or `db.sqlite3` is missing or unreadable, or the objects they name are.
    #[error("{path}: {problem}")]
    Content {
        /// The archive (or the database, or the container).
        path: PathBuf,
        /// What is wrong.
        problem: ContentProblem,
    },
    /// An error of the target container.
    #[error(transparent)]
    Container(#[from] dos_core::Error),
}

/// Where an entry's data starts, for messages about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataStart {
    /// At this offset (its local header was read).
    At(u64),
    /// Right after the local header at this offset, at the earliest.
    AfterLocalHeader(u64),
}

impl std::fmt::Display for DataStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataStart::At(o) => write!(f, "at {o}"),
            DataStart::AfterLocalHeader(o) => write!(f, "after the local header at {o}"),
        }
    }
}

/// How a zip file's structure is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZipProblem {
    /// Fewer bytes than a record needs.
    #[error("truncated: expected {len} bytes at offset {offset}")]
    Truncated {
        /// Bytes needed.
        len: usize,
        /// Where.
        offset: u64,
    },
    /// Shorter than an end record.
    #[error("too short to be a zip file")]
    TooShort,
    /// No end of central directory record.
    #[error("end of central directory not found (not a zip file, or truncated)")]
    NoEndRecord,
    /// The zip64 locator points outside the file.
    #[error("zip64 end record offset {0} lies outside the archive")]
    Zip64RecordOutside(u64),
    /// The zip64 locator points at something else.
    #[error("zip64 locator does not point at a zip64 end record")]
    Zip64LocatorDangling,
    /// Saturated end-record fields without zip64 records.
    #[error("zip64 values without a zip64 end record")]
    Zip64WithoutRecord,
    /// The central directory does not lie inside the file.
    #[error("central directory ({size} bytes at {offset}) lies outside the archive")]
    DirectoryOutside {
        /// Its declared size.
        size: u64,
        /// Its declared offset.
        offset: u64,
    },
    /// More entries declared than the central directory can hold.
    #[error("{count} entries cannot fit in a central directory of {size} bytes")]
    DirectoryTooSmall {
        /// Declared entries.
        count: u64,
        /// Directory size.
        size: u64,
    },
    /// The central directory ends before its last record.
    #[error("central directory ends at entry {0}")]
    DirectoryEnds(u64),
    /// A central directory record without its signature.
    #[error("bad central directory record {0}")]
    BadRecord(u64),
    /// The central directory ends inside a record.
    #[error("central directory ends inside entry {0}")]
    DirectoryEndsInside(u64),
    /// Saturated fields without the zip64 extra field that holds their values.
    #[error("entry {0} needs a zip64 extra field but has none")]
    Zip64ExtraMissing(String),
    /// A zip64 extra field too short for the values it must hold.
    #[error("zip64 extra field of {0} is too short")]
    Zip64ExtraShort(String),
    /// Two entries with one name: one would shadow the other.
    #[error("duplicate entry name {0} (one would shadow the other)")]
    DuplicateName(String),
    /// A local header outside the data area.
    #[error("entry {name}: local header at {offset} lies outside the data area")]
    LocalHeaderOutside {
        /// The entry.
        name: String,
        /// The local header's offset.
        offset: u64,
    },
    /// No local header where the central directory says.
    #[error("entry {name}: no local header at offset {offset}")]
    NoLocalHeader {
        /// The entry.
        name: String,
        /// The offset.
        offset: u64,
    },
    /// The local header has another compression method.
    #[error("entry {0}: local and central headers disagree on the method")]
    MethodDisagrees(String),
    /// The local header names another file.
    #[error("entry {name}: local header names another file ({local})")]
    LocalNameDiffers {
        /// The entry.
        name: String,
        /// The name in its local header.
        local: String,
    },
    /// An entry's data runs past the central directory.
    #[error("entry {name}: {csize} bytes of data {start} run past the data area")]
    DataPastEnd {
        /// The entry.
        name: String,
        /// Its compressed size.
        csize: u64,
        /// Where its data starts.
        start: DataStart,
    },
    /// An entry's data overlaps the next entry (a classic zip-bomb construction).
    #[error(
        "entry {name}: {csize} bytes of data {start} overlap the next entry (its local header is \
         at {next})"
    )]
    DataOverlaps {
        /// The entry.
        name: String,
        /// Its compressed size.
        csize: u64,
        /// Where its data starts.
        start: DataStart,
        /// The next local header.
        next: u64,
    },
    /// A stored entry whose two sizes differ.
    #[error("stored entry {name} has compressed size {csize} but size {size}")]
    StoredSizesDiffer {
        /// The entry.
        name: String,
        /// Compressed size.
        csize: u64,
        /// Size.
        size: u64,
    },
    /// The file ends inside an entry's data.
    #[error("truncated inside entry {0}")]
    TruncatedEntry(String),
}

/// What an archive asks for that is not supported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotSupported {
    /// A zip archive spread over several disks.
    #[error("multi-disk zip archives are not supported")]
    MultiDisk,
    /// A container whose keys are not SHA-256.
    #[error("archives name objects by sha256, but this container uses {0} keys")]
    HashType(HashType),
    /// The legacy (0.x) archive format.
    #[error(
        "legacy archive format {0} (files under nodes/, not repo/): migrate it first with \
         `verdi archive migrate`"
    )]
    LegacyFormat(String),
    /// A deflate level outside 0..=9.
    #[error("compression level {0} is not in 0..=9")]
    Level(u32),
    /// The file to write exists.
    #[error("already exists (use --overwrite to replace it)")]
    Exists,
    /// An entry that cannot be read.
    #[error("entry {name} {why}")]
    Entry {
        /// The entry.
        name: String,
        /// Why.
        why: Unsupported,
    },
}

/// A configured limit an archive exceeds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitExceeded {
    /// Too many entries.
    #[error("{count} entries exceed the limit of {max}")]
    Entries {
        /// Declared entries.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// One entry too large.
    #[error("entry {name} declares {size} bytes, over the per-entry limit of {max}")]
    EntrySize {
        /// The entry.
        name: String,
        /// Declared size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A declared ratio deflate cannot reach.
    #[error(
        "entry {name} declares {size} bytes from {csize} compressed: a ratio over {max}:1 (a zip \
         bomb or a lying header)"
    )]
    Ratio {
        /// The entry.
        name: String,
        /// Declared size.
        size: u64,
        /// Compressed size.
        csize: u64,
        /// The limit.
        max: u64,
    },
    /// All entries together too large.
    #[error("entries declare {total} bytes in total, over the limit of {max}")]
    Total {
        /// Declared sum.
        total: u64,
        /// The limit.
        max: u64,
    },
    /// Not enough free space for the import.
    #[error(
        "the import needs about {need} bytes for the objects and {margin} for the index and \
         headroom, but only {avail} are free on the container's filesystem"
    )]
    FreeSpace {
        /// Bytes the objects need.
        need: u64,
        /// Bytes kept free besides (index rows, its journal, the filesystem's own needs).
        margin: u64,
        /// Bytes free.
        avail: u64,
    },
}

/// What is wrong with an archive's AiiDA content, or with the objects it names.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContentProblem {
    /// No `metadata.json`.
    #[error("no metadata.json: not an AiiDA archive")]
    NoMetadata,
    /// A `metadata.json` too large to be one.
    #[error("metadata.json declares {0} bytes: implausibly large")]
    MetadataTooLarge(u64),
    /// `metadata.json` does not parse.
    #[error("metadata.json is not valid JSON: {0}")]
    MetadataNotJson(serde_json::Error),
    /// No `db.sqlite3`.
    #[error("no db.sqlite3 in the archive")]
    NoDatabase,
    /// `db.sqlite3` cannot be queried.
    #[error("cannot read the archive database: {0}")]
    Database(rusqlite::Error),
    /// A node's `repository_metadata` does not parse.
    #[error("a node's repository_metadata is not JSON: {0}")]
    RepositoryMetadata(serde_json::Error),
    /// `repository_metadata` names something that is not a SHA-256 key.
    #[error("repository_metadata references {0:?}, which is not a sha256 key")]
    MalformedReference(String),
    /// Objects the database references that the container does not hold.
    #[error("{count} objects referenced by {} are not in the container (first: {first})", .db.display())]
    MissingObjects {
        /// How many.
        count: usize,
        /// The database.
        db: PathBuf,
        /// The first of them.
        first: ObjectKey,
    },
    /// Objects that were present when the export started and gone when read.
    #[error("{count} objects vanished during the export (first: {first})")]
    Vanished {
        /// How many.
        count: usize,
        /// The first of them.
        first: ObjectKey,
    },
    /// An entry's content failed its checks while read.
    #[error("entry {name}: {source}")]
    EntryRead {
        /// The entry.
        name: String,
        /// What the read said.
        #[source]
        source: io::Error,
    },
    /// `db.sqlite3` failed its checks while extracted.
    #[error("db.sqlite3: {0}")]
    DatabaseRead(io::Error),
    /// A stream handed to the writer gave another number of bytes than announced.
    #[error("{name}: read {read} bytes, expected {expected}")]
    ShortStream {
        /// The entry.
        name: String,
        /// Bytes read.
        read: u64,
        /// Bytes announced.
        expected: u64,
    },
}

impl ArchiveError {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            op,
            source,
        }
    }
}

impl From<dos_core::write::Error> for ArchiveError {
    fn from(e: dos_core::write::Error) -> Self {
        Self::Container(e.into())
    }
}
