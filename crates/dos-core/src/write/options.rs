//! Settings of a pack writer: what one write asks for, and the pipeline's tuning.

use std::time::Duration;

use crate::codec::CompressMode;
use crate::progress::Interrupt;

/// Options of one [`PackWriter`](crate::write::PackWriter) session.
#[derive(Debug, Clone)]
pub struct PackWriteOptions {
    /// Compression of written objects.
    pub compress: CompressMode,
    /// Do not write the bytes of objects that are already packed (or already written earlier in
    /// this session). Without it, duplicates are appended and left as unreferenced holes, as
    /// Python's default `no_holes=False` does.
    pub skip_existing: bool,
    /// Total bytes expected, for progress reporting and even batches (0 = unknown).
    pub total_hint: u64,
    /// With `skip_existing`: the caller has checked that no item's expected key was packed, at
    /// this [`Container::index_version`](crate::Container::index_version) (read *before* the
    /// check), and promises that expected keys are distinct and differ from the content key of
    /// every item without an expected key. While no other connection has committed since, the
    /// writer does not look those keys up again, which saves one index probe per object. (The
    /// version is asked once per chunk, except while this session's own commit holds the
    /// index; commits made through this same `Container` meanwhile, e.g. by a concurrent
    /// session, do not change it.) Were the promise broken, a repeated key would be stored
    /// twice, the second copy an unreferenced hole, as without `skip_existing`.
    pub absent_as_of: Option<i64>,
    /// Cooperative cancellation: checked between objects.
    pub interrupt: Interrupt,
    /// Batch sizes, memory budget and lock timeout.
    pub tuning: WriteTuning,
}

impl Default for PackWriteOptions {
    fn default() -> Self {
        Self {
            compress: CompressMode::No,
            skip_existing: true,
            total_hint: 0,
            absent_as_of: None,
            interrupt: Interrupt::default(),
            tuning: WriteTuning::default(),
        }
    }
}

/// How the write pipeline batches, buffers and waits: the same for every write of a program.
#[derive(Debug, Clone)]
pub struct WriteTuning {
    /// Commit the index after this many bytes were appended.
    pub batch_bytes: u64,
    /// Commit the index after this many objects.
    pub batch_objects: usize,
    /// Upper bound of object bytes held in memory between workers and writer.
    pub memory_budget: usize,
    /// Objects larger than this are streamed by the writer instead of being read whole.
    pub large_object: u64,
    /// How long to wait for another process's pack lock.
    pub lock_timeout: Duration,
}

impl Default for WriteTuning {
    fn default() -> Self {
        Self {
            // Each commit rewrites the index pages its (random) keys fall in, which grows with the
            // index: fewer, larger batches cost less (memory: about 250 bytes per object).
            batch_bytes: 1 << 30,
            batch_objects: 100_000,
            memory_budget: 96 * 1024 * 1024,
            large_object: 8 * 1024 * 1024,
            lock_timeout: Duration::from_secs(30),
        }
    }
}
