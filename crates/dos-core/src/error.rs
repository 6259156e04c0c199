//! Errors of the container library.
//!
//! Every variant names what it concerns: the file (by path), the object (by hash key), or both, so
//! that a one-line message is enough for an operator to act. The CLI maps [`Error::is_not_found`]
//! to its "negative result" exit code and everything else to "error".

use std::io;
use std::path::{Path, PathBuf};

use crate::config::ConfigError;

/// Result alias of the container library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while opening, reading or writing a container.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The folder holds no container (no parsable `config.json` or a missing top-level folder).
    #[error("{path}: not an initialised container ({detail})")]
    NotInitialised {
        /// The container folder.
        path: PathBuf,
        /// What is missing.
        detail: String,
    },
    /// `init` was asked to create a container where files already exist.
    #[error("{path}: refusing to initialise a container in a folder that is not empty")]
    FolderNotEmpty {
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
    /// The container is structurally broken (missing `packs.idx`, unexpected schema, ...).
    #[error("{path}: {detail}")]
    Layout {
        /// The offending file or folder.
        path: PathBuf,
        /// What is wrong.
        detail: String,
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
    #[error("{path}: index error: {source}")]
    Index {
        /// Path of `packs.idx`.
        path: PathBuf,
        /// The underlying SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The requested object is neither packed nor loose.
    #[error("object {key} not found in container {container}")]
    NotFound {
        /// The hash key that was asked for.
        key: String,
        /// The container folder.
        container: PathBuf,
    },
    /// A string that is not a valid hash key for this container.
    #[error("invalid object key {key:?}: expected {expected}")]
    InvalidKey {
        /// The rejected input.
        key: String,
        /// A description of valid keys.
        expected: String,
    },
    /// Stored bytes do not match what the index or the key promises.
    #[error("object {key} in {path}: {detail}")]
    Corrupt {
        /// The object.
        key: String,
        /// The file holding it (pack or loose file).
        path: PathBuf,
        /// What does not match.
        detail: String,
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
    #[error("{path}: pack file changed under our append lock ({detail}); nothing was committed")]
    PackModified {
        /// The pack file.
        path: PathBuf,
        /// What changed.
        detail: String,
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
    /// An argument outside what the format allows.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The operation was interrupted by the caller (e.g. Ctrl-C); what was committed stays valid.
    #[error("interrupted; everything committed before the interruption is intact")]
    Interrupted,
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
