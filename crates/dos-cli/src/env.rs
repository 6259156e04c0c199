//! What the process is given besides its arguments: the environment variables that choose how
//! containers do I/O (read here, once, and handed to the libraries as options), and Ctrl-C.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use dos_core::fault::FaultPlan;
use dos_core::remote::{RemoteOpener, RemoteSettings, RemoteUrl};
use dos_core::{Container, InitOptions, Interrupt, IoOptions};
use dos_remote::S3Opener;

/// The process's I/O choices and its interrupt flag.
pub struct Env {
    io: IoOptions,
    /// How remote stores are reached: credentials and defaults from the environment.
    s3: S3Opener,
    /// Where snapshots opened from a bucket are kept (`$DOS_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/dos`, else `~/.cache/dos`).
    cache_root: Option<PathBuf>,
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
    ///   `DOS_FAULT_TRACE=<file>`: append every fault point reached to that file;
    /// - remote stores: credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
    ///   `AWS_SESSION_TOKEN` or the AWS credentials file (`AWS_PROFILE`,
    ///   `AWS_SHARED_CREDENTIALS_FILE`), the server from `AWS_ENDPOINT_URL_S3` or
    ///   `AWS_ENDPOINT_URL`, the region from `AWS_REGION` or `AWS_DEFAULT_REGION`;
    ///   `DOS_S3_PART_SIZE` (bytes) and `DOS_S3_PARTS_IN_FLIGHT` tune uploads,
    ///   `DOS_S3_MAX_RETRIES` and `DOS_S3_RETRY_TIMEOUT` (seconds) the retries of a request,
    ///   `DOS_S3_CHECK_PART_ETAG=1` checks each part's MD5 against its ETag.
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
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let s3 = S3Opener::from_vars(&var, home.as_deref()).map_err(anyhow::Error::msg)?;
        let cache_root = S3Opener::cache_root(&var, home.as_deref());
        let io = IoOptions {
            direct_io: std::env::var_os("DOS_NO_DIRECT_IO").is_none(),
            early_writeback: std::env::var_os("DOS_NO_WRITEBACK").is_none(),
            faults: FaultPlan::new(at, trace),
            remote: None,
        };
        let env = Env {
            io,
            s3,
            cache_root,
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

    /// The I/O options of a container at `path`: remote stores reached with this process's
    /// credentials, ranges cached under `path/dos-cache` when the container's settings ask.
    fn io_for(&self, path: &Path) -> IoOptions {
        let mut io = self.io.clone();
        let opener = S3Opener {
            cache_dir: Some(path.join("dos-cache")),
            ..self.s3.clone()
        };
        io.remote = Some(Arc::new(opener));
        io
    }

    /// Open the container at `path`, or the published snapshot at `s3://bucket/prefix`
    /// (read-only).
    pub fn open(&self, path: &Path) -> Result<Container> {
        let text = path.to_string_lossy();
        if RemoteUrl::is_remote(&text) {
            let url = RemoteUrl::parse(&text).map_err(anyhow::Error::msg)?;
            let Some(root) = &self.cache_root else {
                anyhow::bail!("{url}: no cache folder for snapshots (set DOS_CACHE_DIR or HOME)");
            };
            let cache = root.join(&url.bucket).join(url.prefix.replace('/', "%"));
            let settings = RemoteSettings::new(url);
            let store = self.s3.open(&settings)?;
            let mut io = self.io.clone();
            io.remote = None;
            return Ok(Container::open_published(
                store,
                &cache.join("snapshots"),
                io,
            )?);
        }
        Ok(Container::open_with(path, self.io_for(path))?)
    }

    /// Create a container at `path`.
    pub fn init(&self, path: &Path, opts: &InitOptions) -> Result<Container> {
        Ok(Container::init_with(path, opts, self.io_for(path))?)
    }

    /// Open the remote store `settings` names, with this process's credentials.
    pub fn remote_store(
        &self,
        settings: &RemoteSettings,
    ) -> Result<Arc<dyn dos_core::remote::RemoteStore>> {
        Ok(self.s3.open(settings)?)
    }

    /// The interrupt flag, for a command that polls it (Ctrl-C then stops it tidily).
    pub fn interrupt(&self) -> Interrupt {
        self.graceful.store(true, Ordering::SeqCst);
        self.interrupt.clone()
    }
}
