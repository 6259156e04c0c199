//! What the process is given besides its arguments: the environment variables that choose how
//! containers do I/O (read here, once, and handed to the libraries as options), and Ctrl-C.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use dos_core::fault::FaultPlan;
use dos_core::{Container, InitOptions, Interrupt, IoOptions};

/// The process's I/O choices and its interrupt flag.
pub struct Env {
    io: IoOptions,
    interrupt: Interrupt,
    /// Set by commands that poll `interrupt` and stop tidily on Ctrl-C.
    graceful: Arc<AtomicBool>,
}

impl Env {
    /// Read the environment and install the Ctrl-C handler.
    ///
    /// - `DOS_NO_DIRECT_IO`: write packs through the page cache only (no O_DIRECT);
    /// - `DOS_NO_WRITEBACK`: no early writeback of buffered pack writes;
    /// - `DOS_FAULT=[eio:]<point>:<n>`: abort the process (with `eio:`, make the operation there
    ///   fail with an I/O error) the n-th time it reaches a fault point (crash and fault tests);
    ///   `DOS_FAULT_TRACE=<file>`: append every fault point reached to that file.
    pub fn from_process() -> Result<Env> {
        let at =
            match std::env::var("DOS_FAULT") {
                Ok(spec) => Some(FaultPlan::parse(&spec).with_context(|| {
                    format!("DOS_FAULT={spec:?}: expected [eio:]<point>:<count>")
                })?),
                Err(_) => None,
            };
        let trace = match std::env::var_os("DOS_FAULT_TRACE") {
            Some(p) => Some(
                File::options()
                    .create(true)
                    .append(true)
                    .open(&p)
                    .with_context(|| format!("DOS_FAULT_TRACE={}", Path::new(&p).display()))?,
            ),
            None => None,
        };
        let io = IoOptions {
            direct_io: std::env::var_os("DOS_NO_DIRECT_IO").is_none(),
            early_writeback: std::env::var_os("DOS_NO_WRITEBACK").is_none(),
            faults: FaultPlan::new(at, trace),
        };
        let env = Env {
            io,
            interrupt: Interrupt::new(),
            graceful: Arc::new(AtomicBool::new(false)),
        };
        let (interrupt, graceful) = (env.interrupt.clone(), env.graceful.clone());
        let _ = ctrlc::set_handler(move || {
            // Stopping at any instant is safe (everything is crash-safe), but commands that poll
            // the flag stop more tidily: they cut uncommitted bytes and release their locks. A
            // second Ctrl-C, or one during a command that does not poll, exits at once.
            if !graceful.load(Ordering::SeqCst) || interrupt.is_set() {
                std::process::exit(130);
            }
            interrupt.trigger();
        });
        Ok(env)
    }

    /// Open the container at `path`.
    pub fn open(&self, path: &Path) -> Result<Container> {
        Ok(Container::open_with(path, self.io.clone())?)
    }

    /// Create a container at `path`.
    pub fn init(&self, path: &Path, opts: &InitOptions) -> Result<Container> {
        Ok(Container::init_with(path, opts, self.io.clone())?)
    }

    /// The interrupt flag, for a command that polls it (Ctrl-C then stops it tidily).
    pub fn interrupt(&self) -> Interrupt {
        self.graceful.store(true, Ordering::SeqCst);
        self.interrupt.clone()
    }
}
