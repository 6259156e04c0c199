//! Errors of the container library.
//!
//! Every variant names what it concerns: the file (by path), the object (by key), or both, so
//! that a one-line message is enough for an operator to act; what went wrong is a typed value
//! (a [`Missing`], a [`SchemaProblem`], a [`Corruption`], a [`PackChange`]), never free text.
//! The CLI maps [`Error::is_not_found`] to its "negative result" exit code and everything else
//! to "error". Writes to packs have their own error, [`crate::write::Error`], which converts
//! into this one.

use std::io;
use std::path::{Path, PathBuf};

use crate::codec::InflateError;
use crate::config::ConfigError;
use crate::index::PackedLocation;
use crate::key::{InvalidKey, ObjectKey};

/// Result alias of the container library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while opening, reading or maintaining a container.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The folder holds no container.
    #[error("{path}: not an initialised container ({missing})")]
    NotInitialised {
        /// The container folder.
        path: PathBuf,
        /// What is missing.
        missing: Missing,
    },
    /// `init` was asked to create a container where files already exist.
    #[error("{path}: refusing to initialise a container in a folder that is not empty")]
    FolderNotEmpty {
        /// The folder.
        path: PathBuf,
    },
    /// `init` was asked to create a container where one exists.
    #[error("{path}: a container is already initialised here")]
    AlreadyInitialised {
        /// The folder.
        path: PathBuf,
    },
    /// `config.json` exists but cannot be used.
    #[error("{path}: {source}")]
    Config {
        /// Path of `config.json`.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: ConfigError,
    },
    /// `packs.idx` is not an index this library can use.
    #[error("{path}: {problem}")]
    IndexSchema {
        /// Path of `packs.idx`.
        path: PathBuf,
        /// What is wrong.
        problem: SchemaProblem,
    },
    /// A pack file the index refers to does not exist.
    #[error("{path}: pack file referenced by the index is missing")]
    MissingPack {
        /// The pack file.
        path: PathBuf,
    },
    /// dos's repack journal cannot be read.
    #[error("{path}: unreadable repack journal: {source}")]
    Journal {
        /// The journal.
        path: PathBuf,
        /// Why it cannot be parsed.
        #[source]
        source: serde_json::Error,
    },
    /// An operating-system error on a named file.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The file or folder the operation was about.
        path: PathBuf,
        /// The operation that failed ("open", "read", "fsync", ...).
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An error of the SQLite index `packs.idx`.
    #[error("{path}: index error: {source}{}", if *.disk_full { " (No space left on device)" } else { "" })]
    Index {
        /// Path of `packs.idx`.
        path: PathBuf,
        /// The underlying SQLite error.
        #[source]
        source: rusqlite::Error,
        /// SQLite failed to write and the index's filesystem has no space left (SQLite reports
        /// a full disk as a generic I/O error when its `-shm` or `-wal` file cannot grow).
        disk_full: bool,
    },
    /// The requested object is neither packed nor loose.
    #[error("object {key} not found in container {container}")]
    NotFound {
        /// The key that was asked for.
        key: ObjectKey,
        /// The container folder.
        container: PathBuf,
    },
    /// A string that is not a valid key for this container.
    #[error(transparent)]
    InvalidKey(#[from] InvalidKey),
    /// Stored bytes do not match what the index or the key promises.
    #[error("object {key} in {path}: {problem}{}", location_note(.location))]
    Corrupt {
        /// The object's key as stored (an index row's key text may itself be malformed).
        key: String,
        /// The file holding it (pack, loose file or index).
        path: PathBuf,
        /// What does not match.
        problem: Corruption,
        /// Where the index places it, when it is packed.
        location: Option<Box<PackedLocation>>,
    },
    /// Another process holds the append lock of a pack file.
    #[error(
        "{path}: pack is locked by another writer (waited {waited_ms} ms); if no process is \
         writing to this container the lock file is stale from a crash and may be removed"
    )]
    PackLocked {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        waited_ms: u64,
    },
    /// Another dos operation holds the container's maintenance lock.
    #[error("{path}: another dos operation is running on this container ({holder})")]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as recorded in the lock file.
        holder: String,
    },
    /// A pack file changed while we held its append lock: another writer ignored the lock.
    #[error("{path}: pack file changed under our append lock ({change}); nothing was committed")]
    PackModified {
        /// The pack file.
        path: PathBuf,
        /// What changed.
        change: PackChange,
    },
    /// A source given to a write operation could not be read.
    #[error("{source_name}: {source}")]
    Source {
        /// Description of the source (a path, or "source #N").
        source_name: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An object too large to be held in this process's memory.
    #[error("{bytes} bytes do not fit in memory")]
    TooLarge {
        /// Its size.
        bytes: u64,
    },
    /// A pack writer was used after an earlier error ended it.
    #[error("the pack writer stopped after an earlier error")]
    WriterStopped,
    /// A new backup failed its validation; it was not published.
    #[error("{path}: the new backup does not validate ({errors} errors); it was not published")]
    BackupInvalid {
        /// The unpublished backup folder.
        path: PathBuf,
        /// Errors validate found.
        errors: u64,
    },
    /// An argument outside what the format allows.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A request to the remote store failed (after the store's own retries).
    #[error(transparent)]
    Remote(#[from] crate::remote::RemoteError),
    /// The container has packs in a remote store, but this program was given no way to reach
    /// remote stores.
    #[error(
        "{url}: packs of this container are stored there, and this program cannot reach remote stores"
    )]
    NoRemoteAccess {
        /// The store.
        url: String,
    },
    /// The index records remote packs, or a remote operation was asked for, but the container
    /// names no remote store.
    #[error(
        "{path}: no remote store is set for this container (dos remote set s3://BUCKET/PREFIX)"
    )]
    NoRemote {
        /// The settings file that is missing.
        path: PathBuf,
    },
    /// A change was asked of a container opened read-only (a published snapshot).
    #[error("{what}: read-only container (a published snapshot); {op} is not possible")]
    ReadOnly {
        /// The container (URL or folder).
        what: String,
        /// The refused operation.
        op: &'static str,
    },
    /// The operation was interrupted by the caller (e.g. Ctrl-C); what was committed stays valid.
    #[error("interrupted; everything committed before the interruption is intact")]
    Interrupted,
}

/// What is missing from a folder that should hold a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Missing {
    /// The folder itself.
    #[error("no such folder")]
    Folder,
    /// Its `config.json`.
    #[error("config.json is missing")]
    Config,
    /// One of the four folders of a container.
    #[error("folder {0}/ is missing")]
    SubFolder(&'static str),
}

/// Why `packs.idx` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaProblem {
    /// The file does not exist.
    #[error("pack index packs.idx is missing")]
    Missing,
    /// `init` found an index already there.
    #[error("index already exists")]
    AlreadyExists,
    /// SQLite refused to switch to WAL mode.
    #[error("cannot switch the index to WAL mode (got {0})")]
    NotWal(String),
    /// No `db_object` table.
    #[error("not a disk-objectstore index: table db_object is missing")]
    NoTable,
    /// A column Python's schema has is absent.
    #[error("table db_object lacks column {0:?}")]
    NoColumn(&'static str),
    /// `hashkey` is not unique, which `INSERT OR IGNORE` relies on.
    #[error("table db_object has no unique index on hashkey")]
    NoUniqueKey,
}

/// How stored bytes disagree with what the index or the key promises.
#[derive(Debug, thiserror::Error)]
pub enum Corruption {
    /// The zlib stream of a compressed object does not decode to its size.
    #[error(transparent)]
    Inflate(#[from] InflateError),
    /// An object stored raw whose length differs from its size.
    #[error("uncompressed object with length != size")]
    LengthNotSize,
    /// Reading the object's bytes failed (e.g. the pack ends before them).
    #[error("{0}")]
    Read(io::Error),
    /// The pack ends before its objects do.
    #[error("pack ends before its objects do")]
    PackTooShort,
    /// An index row's field is negative.
    #[error("index row has negative {field} {value}")]
    NegativeField {
        /// The column.
        field: &'static str,
        /// Its value.
        value: i64,
    },
    /// An index row points at pack -1, the temporary pack of Python's repack.
    #[error(
        "index row points at pack -1: a repack was interrupted; run `dos repack` (or a Python \
         repack) to finish it"
    )]
    InterruptedRepack,
    /// An index row whose fields cannot describe a location.
    #[error("malformed index row (pack {pack_id}, offset {offset}, length {length}, size {size})")]
    MalformedRow {
        /// Pack id as stored.
        pack_id: i64,
        /// Offset as stored.
        offset: i64,
        /// Length as stored.
        length: i64,
        /// Size as stored.
        size: i64,
    },
}

/// How a pack file changed under our append lock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackChange {
    /// It is not the size we wrote it to.
    #[error("size is {on_disk}, we wrote up to {written}")]
    Size {
        /// Its size now.
        on_disk: u64,
        /// The size we wrote.
        written: u64,
    },
    /// Another file took its name meanwhile (a rename over it).
    #[error("another file took its place")]
    Replaced,
    /// Its lock file is no longer ours.
    #[error("lock file {} was removed or replaced", .lock.display())]
    LockReplaced {
        /// The lock file.
        lock: PathBuf,
    },
}

fn location_note(location: &Option<Box<PackedLocation>>) -> String {
    match location.as_deref() {
        Some(l) => format!(
            " (offset {}, length {}, compressed {})",
            l.offset, l.length, l.compressed
        ),
        None => String::new(),
    }
}

impl Error {
    /// Build an [`Error::Io`] for `path`.
    pub fn io(path: impl AsRef<Path>, op: &'static str, source: io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            op,
            source,
        }
    }

    /// True when the error means "the object does not exist" rather than a failure.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

/// Extension to attach a path and an operation name to `io::Result`s.
pub(crate) trait IoContext<T> {
    /// Map the error into [`Error::Io`] naming `path` and `op`.
    fn ctx(self, path: impl AsRef<Path>, op: &'static str) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, path: impl AsRef<Path>, op: &'static str) -> Result<T> {
        self.map_err(|e| Error::io(path, op, e))
    }
}

/// A size that must fit in memory.
pub(crate) fn usize_of(n: u64) -> Result<usize> {
    usize::try_from(n).map_err(|_| Error::TooLarge { bytes: n })
}

impl Error {
    /// An error of the index at `path`, noting a full disk when SQLite failed to write and the
    /// filesystem holding the index has (almost) no space left.
    pub fn index(path: &Path, source: rusqlite::Error) -> Error {
        let write_failed = matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::SystemIoFailure | rusqlite::ErrorCode::DiskFull)
        );
        let disk_full = write_failed && filesystem_is_full(path);
        Error::Index {
            path: path.to_path_buf(),
            source,
            disk_full,
        }
    }
}

/// Whether the filesystem holding `path` (or its folder) has less than 1 MiB available.
fn filesystem_is_full(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(path);
        let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
            return false;
        };
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `c` is a NUL-terminated path that outlives the call, and `st` points at
        // writable memory of the size statvfs fills; it is read only if the call succeeded.
        #[allow(unsafe_code)]
        let st = unsafe {
            if libc::statvfs(c.as_ptr(), st.as_mut_ptr()) != 0 {
                return false;
            }
            st.assume_init()
        };
        (st.f_bavail as u128) * (st.f_frsize as u128) < 1 << 20
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}
