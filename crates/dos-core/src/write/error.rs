//! The error of a pack writer session.

use std::io;

/// Why a [`PackWriter`](crate::write::PackWriter) stopped. Everything committed before stays
/// committed; bytes appended after the last commit are cut from the pack.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading an object's source failed (a file, a stream).
    #[error("{name}: {source}")]
    Source {
        /// The source: its path, its stream name, or "object #N".
        name: String,
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// The session's interrupt flag was set.
    #[error("interrupted; everything committed before the interruption is intact")]
    Interrupted,
    /// The session was used after an earlier error ended it.
    #[error("the pack writer stopped after an earlier error")]
    Stopped,
    /// The container failed: a pack lock, a pack write or fsync, an index commit.
    #[error(transparent)]
    Container(#[from] crate::Error),
}

impl From<Error> for crate::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Source { name, source } => crate::Error::Source {
                source_name: name,
                source,
            },
            Error::Interrupted => crate::Error::Interrupted,
            Error::Stopped => crate::Error::WriterStopped,
            Error::Container(e) => e,
        }
    }
}
