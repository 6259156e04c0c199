//! Errors of the archive crate. Every variant names the archive (and the entry, where there is
//! one).

use std::io;
use std::path::PathBuf;

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
    #[error("{path}: not a valid zip archive: {detail}")]
    Malformed {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The archive is valid zip but not something we may read safely or at all.
    #[error("{path}: {detail}")]
    Unsupported {
        /// The archive.
        path: PathBuf,
        /// What is not supported.
        detail: String,
    },
    /// Declared sizes beyond the configured limits (zip bombs, lying headers, full disks).
    #[error("{path}: {detail}")]
    Limit {
        /// The archive.
        path: PathBuf,
        /// Which limit.
        detail: String,
    },
    /// `metadata.json` or `db.sqlite3` is missing or unreadable.
    #[error("{path}: {detail}")]
    Content {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// An error of the target container.
    #[error(transparent)]
    Container(#[from] dos_core::Error),
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
