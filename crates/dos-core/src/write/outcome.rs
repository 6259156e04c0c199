//! What a pack writer reports: per object once its fate is durable, and in sum.

use serde::Serialize;

use crate::key::ObjectKey;
use crate::location::PackedLocation;
use crate::write::Rejection;

/// How a written object's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stored {
    /// As they are.
    Raw,
    /// As a zlib stream the writer compressed.
    Compressed,
    /// As a zlib stream the caller handed over (e.g. an archive entry's own deflate stream,
    /// not recompressed).
    PassedThrough,
}

impl Stored {
    /// Whether the stored bytes are a zlib stream.
    pub fn is_compressed(self) -> bool {
        self != Stored::Raw
    }
}

/// What happened to one object of a [`PackWriter`](crate::write::PackWriter) (reported once
/// durable, in input order).
#[derive(Debug)]
pub enum StoreOutcome {
    /// Appended to a pack and committed.
    Written {
        /// The key.
        key: ObjectKey,
        /// Where it went.
        location: PackedLocation,
        /// How its bytes are stored.
        stored: Stored,
    },
    /// Already stored (packed before, or earlier in this session): nothing written.
    AlreadyPacked {
        /// The key.
        key: ObjectKey,
    },
    /// A file source with an expected key no longer exists (e.g. a loose object removed by a
    /// concurrent clean): nothing stored, not an error.
    Vanished {
        /// The key the file was named after.
        expected: ObjectKey,
    },
    /// The source was rejected by its own checks (or failed while streamed): nothing stored.
    Rejected {
        /// The key the source was supposed to have, if known.
        expected: Option<ObjectKey>,
        /// Why.
        reason: Rejection,
    },
    /// The content does not hash to the expected key: nothing stored.
    Mismatch {
        /// The key the source was supposed to have.
        expected: ObjectKey,
        /// The key of the content actually read.
        actual: ObjectKey,
    },
}

impl StoreOutcome {
    /// The key of the stored object (`None` when nothing was stored).
    pub fn key(&self) -> Option<ObjectKey> {
        match self {
            StoreOutcome::Written { key, .. } | StoreOutcome::AlreadyPacked { key } => Some(*key),
            StoreOutcome::Mismatch { .. }
            | StoreOutcome::Vanished { .. }
            | StoreOutcome::Rejected { .. } => None,
        }
    }
}

/// What a [`PackWriter`](crate::write::PackWriter) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
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
    /// Objects stored compressed (by the writer or passed through).
    pub compressed: u64,
    /// Of those, stored as the caller's own zlib stream.
    pub passed_through: u64,
    /// Uncompressed bytes of all sources.
    pub bytes_in: u64,
    /// Bytes appended to packs.
    pub bytes_written: u64,
    /// Index transactions committed.
    pub commits: u64,
}
