//! Writing objects straight into pack files: the pack writer session.
//!
//! ```text
//! caller ── push ──► chunks bounded in bytes ──► preparer thread: rayon workers read · hash ·
//!        compress (small objects) ──► ≤ 3 prepared chunks queued ──► the ordered writer (the
//!        caller's thread, inside push/finish): append in input order to packs/<id> under its
//!        lock ──► per batch: fsync pack ──► committer thread: one index transaction (INSERT OR
//!        IGNORE) ──► outcomes reported to the caller, in order
//! ```
//! Objects above [`WriteTuning::large_object`] bytes are not read by the workers: the writer
//! streams them through a fixed buffer, so memory stays bounded by
//! [`WriteTuning::memory_budget`] whatever the number and size of objects.
//!
//! One file per stage: [`source`] (what is written), `prepare` (the parallel stage), `writer`
//! (the ordered writer), `commit` (the committer thread), `session` (the [`PackWriter`] that
//! drives them), and [`outcome`], [`options`] and [`Error`](enum@Error) for what callers see.

mod commit;
mod error;
pub mod options;
pub mod outcome;
mod prepare;
mod session;
pub mod source;
mod writer;

pub use error::Error;
pub use options::{PackWriteOptions, WriteTuning};
pub use outcome::{PackWriteSummary, StoreOutcome, Stored};
pub use session::PackWriter;
pub use source::{
    EncodedObject, EncodedStream, ObjectSource, PackItem, PrepareObject, Prepared, Rejection,
};

use crate::container::Container;
use crate::key::ObjectKey;
use crate::progress::NoProgress;

impl Container {
    /// Convenience: write in-memory objects to packs; returns their keys in input order.
    pub fn add_objects_to_pack(
        &self,
        contents: Vec<Vec<u8>>,
        opts: &PackWriteOptions,
    ) -> Result<Vec<ObjectKey>, Error> {
        let mut keys: Vec<Option<ObjectKey>> = vec![None; contents.len()];
        let mut w = self.pack_writer(opts, &NoProgress, |i, o| keys[i] = o.key())?;
        for c in contents {
            w.push(ObjectSource::Bytes(c))?;
        }
        w.finish()?;
        // Every in-memory object is written or found stored: each has its key.
        Ok(keys.into_iter().flatten().collect())
    }
}
