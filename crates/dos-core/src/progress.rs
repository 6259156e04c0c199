//! Progress reporting: a small trait the library calls and a front end implements.
//!
//! The library never draws anything; the `dos` CLI implements [`Progress`] with progress bars.
//! Implementations must be cheap: `inc` may be called from several worker threads.

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

/// A cooperative cancellation flag (set it from a signal handler to stop long operations at the
/// next safe point; committed work stays committed).
#[derive(Debug, Default)]
pub struct Interrupt(AtomicBool);

impl Interrupt {
    /// A flag that is not set.
    pub const fn new() -> Self {
        Self(AtomicBool::new(false))
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

/// A process-wide interrupt flag, for front ends that install a signal handler.
pub static GLOBAL_INTERRUPT: Interrupt = Interrupt::new();
