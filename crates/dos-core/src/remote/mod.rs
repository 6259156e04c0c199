//! Packs in object storage (S3 and compatible servers): what a remote store must do, where each
//! offloaded pack lives, and the operations that move packs between the disk and the bucket.
//!
//! The library does not speak any storage protocol itself: a program hands it a
//! [`RemoteOpener`] (the `dos-remote` crate implements one over S3), and the container opens
//! the store named by its `dos-remote.json` the first time it needs it, so that purely local
//! work never needs credentials or a network. Everything here is blocking; an implementation
//! runs its own asynchronous machinery behind these calls.
//!
//! Layout under the bucket prefix (see `docs/remote.md`):
//! - `packs/<id>.<16 hex>`: one sealed pack, byte for byte, under a name never reused;
//! - `snapshots/<UTC time>-<8 hex>/packs.idx` and `config.json`: a published snapshot;
//! - `snapshot.json`: which snapshot is current, replaced by one PUT.
//!
//! On disk, an offloaded pack leaves a directory `packs/<id>/` in place of its file (holding a
//! note that says where the pack went): Python disk-objectstore then fails with a clear error
//! when it tries to read from it or append to it, instead of writing a new pack under a number
//! the index already uses.

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

pub mod clean;
mod data;
mod fetch;
mod offload;
mod publish;
mod settings;
mod stub;

pub use clean::{RemoteCleanOptions, RemoteCleanSummary};
pub use data::{PackData, PendingRead, RemotePackReader};
pub use fetch::{FetchOptions, FetchSummary};
pub use offload::{OffloadOptions, OffloadSummary, OffloadedPack, PackPlace, PackPlaces};
pub use publish::{PreviousSnapshot, SnapshotFile, current_snapshot};
pub use publish::{PublishSummary, SnapshotPointer};
pub use settings::{REMOTE_SETTINGS_FILE, RemoteSettings, RemoteUrl};
pub use stub::STUB_NOTE;
pub(crate) use stub::is_stub;

/// Name (under the prefix) of the object that says which snapshot is current.
pub const SNAPSHOT_POINTER: &str = "snapshot.json";
/// Folder (under the prefix) of pack objects.
pub const PACKS_PREFIX: &str = "packs/";
/// Folder (under the prefix) of published snapshots.
pub const SNAPSHOTS_PREFIX: &str = "snapshots/";

/// An error of the remote store: the request, the object and what the server or the network
/// said. `transient` errors were already retried by the store and still failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{url}/{name}: {op}: {detail}")]
pub struct RemoteError {
    /// The store (`s3://bucket/prefix`).
    pub url: String,
    /// The object name under the prefix ("" for requests about the store itself).
    pub name: String,
    /// The request ("GET bytes 0-99", "multipart upload", "HEAD", ...).
    pub op: String,
    /// What went wrong.
    pub detail: String,
    /// The object does not exist.
    pub not_found: bool,
}

impl RemoteError {
    /// An error of `op` on `name` in `store`.
    pub fn new(
        store: &dyn RemoteStore,
        name: &str,
        op: impl Into<String>,
        detail: impl fmt::Display,
    ) -> Self {
        Self {
            url: store.url().to_string(),
            name: name.to_string(),
            op: op.into(),
            detail: detail.to_string(),
            not_found: false,
        }
    }
}

/// An object listed in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteObject {
    /// Its name under the prefix.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub modified: SystemTime,
}

/// What an upload stored, as the store verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadReceipt {
    /// Bytes stored (checked against the server's own account of the object).
    pub length: u64,
    /// SHA-256 of the bytes sent, lowercase hex.
    pub sha256: String,
}

/// A ranged read started in the background; [`PendingGet::wait`] blocks for its bytes.
pub struct PendingGet(Box<dyn FnOnce() -> Result<Vec<u8>, RemoteError> + Send>);

impl PendingGet {
    /// A read that runs when waited for (for stores without background requests).
    pub fn deferred(f: impl FnOnce() -> Result<Vec<u8>, RemoteError> + Send + 'static) -> Self {
        Self(Box::new(f))
    }

    /// The bytes (or the error) of the read.
    pub fn wait(self) -> Result<Vec<u8>, RemoteError> {
        (self.0)()
    }
}

impl fmt::Debug for PendingGet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PendingGet")
    }
}

/// Object storage holding a container's packs and snapshots: names are relative to the
/// store's prefix. Implementations retry transient failures (with backoff) before returning
/// an error, and verify what they upload.
pub trait RemoteStore: Send + Sync {
    /// The store as a URL (`s3://bucket/prefix`), for messages.
    fn url(&self) -> &str;

    /// Bytes `range` of object `name` (exactly that many, or an error).
    fn get_range(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>, RemoteError>;

    /// Start reading bytes `range` of `name` in the background.
    fn start_get_range(&self, name: &str, range: Range<u64>) -> PendingGet;

    /// The whole object `name`, streamed into `out`; `on_bytes` is told of each piece written.
    /// Returns the number of bytes.
    fn download(
        &self,
        name: &str,
        out: &mut dyn Write,
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<u64, RemoteError>;

    /// Upload the first `length` bytes of `file` as object `name` (in parts, in parallel, for
    /// large files), verify what the server stored, and return its receipt. `started` is told
    /// the id of a multipart upload before its parts are sent (so that a caller can record it
    /// and abort it after a crash); `on_bytes` is called as parts complete. A failed upload is
    /// aborted before the error returns.
    fn upload_file(
        &self,
        name: &str,
        file: &File,
        length: u64,
        started: &mut dyn FnMut(&str),
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<UploadReceipt, RemoteError>;

    /// Store a small object in one request (replacing any object of that name).
    fn put(&self, name: &str, data: Vec<u8>) -> Result<(), RemoteError>;

    /// The size of `name`, or `None` if it does not exist.
    fn head(&self, name: &str) -> Result<Option<u64>, RemoteError>;

    /// Every object whose name starts with `prefix`.
    fn list(&self, prefix: &str) -> Result<Vec<RemoteObject>, RemoteError>;

    /// Delete `name` (no error if it does not exist).
    fn delete(&self, name: &str) -> Result<(), RemoteError>;

    /// Abort the multipart upload `upload_id` of `name` (one a crash left unfinished; no error
    /// if it no longer exists).
    fn abort_upload(&self, name: &str, upload_id: &str) -> Result<(), RemoteError>;
}

impl fmt::Debug for dyn RemoteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteStore({})", self.url())
    }
}

/// Opens the store a container's settings name. Given to [`crate::IoOptions`] by the program
/// (which decides where credentials come from).
pub trait RemoteOpener: Send + Sync {
    /// Connect to the store of `settings` (no request needs to be made yet).
    fn open(&self, settings: &RemoteSettings) -> Result<Arc<dyn RemoteStore>, RemoteError>;
}

impl fmt::Debug for dyn RemoteOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RemoteOpener")
    }
}

/// A random lowercase hex string of `n` characters (names of uploads and snapshots).
pub(crate) fn random_hex(n: usize) -> std::io::Result<String> {
    let mut b = vec![0u8; n.div_ceil(2)];
    getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut s: String = b.iter().map(|x| format!("{x:02x}")).collect();
    s.truncate(n);
    Ok(s)
}
