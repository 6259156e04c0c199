//! Progress reporting: a small trait the library calls and a front end implements.
//!
//! The library never draws anything; the `dos` CLI implements [`Progress`] with progress bars.
//! Implementations must be cheap: `inc` may be called from several worker threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a progress total counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Objects.
    Objects,
    /// Bytes.
    Bytes,
}

/// Receiver of progress events. Every method has a no-op default.
pub trait Progress: Sync {
    /// A new phase starts, with `total` units of work (0 when unknown).
    fn start(&self, total: u64, unit: Unit, what: &str) {
        let _ = (total, unit, what);
    }
    /// `n` more units are done.
    fn inc(&self, n: u64) {
        let _ = n;
    }
    /// The current phase is over.
    fn finish(&self) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// A cooperative cancellation flag, shared by its clones: a front end keeps one (e.g. set from
/// its Ctrl-C handler) and passes it to long operations, which stop at their next safe point.
/// Committed work stays committed. The default flag is never set unless triggered.
#[derive(Debug, Default, Clone)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Ask running operations to stop.
    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
