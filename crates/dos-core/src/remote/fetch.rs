//! `fetch-packs`: bring offloaded packs back to local files.
//!
//! Per pack: download into `sandbox/`, checking the length and SHA-256 recorded at offload;
//! fsync; swap the file for the stub directory in one rename; then one index transaction
//! forgets the remote copy. Before the commit readers use the remote copy, after the swap the
//! local one, and both hold the same bytes. The remote object stays until `clean` finds no
//! index (nor the published snapshot) referring to it.

use std::fs::{self, File};
use std::io::{self, Write};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{RemoteStore, random_hex, stub};
use crate::container::Container;
use crate::error::{Error, IoContext, PackChange, Result};
use crate::hashing::to_hex;
use crate::index::RemotePackRow;
use crate::maintain::LockMode;
use crate::pack::{self, PackLock};
use crate::progress::{Interrupt, Progress, Unit};

/// Options of [`Container::fetch_packs`].
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Only these packs (`None`: every offloaded pack).
    pub packs: Option<Vec<u64>>,
    /// Cooperative cancellation, checked between packs.
    pub interrupt: Interrupt,
}

/// What [`Container::fetch_packs`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FetchSummary {
    /// Packs made local again.
    pub fetched: Vec<u64>,
    /// Bytes downloaded.
    pub bytes: u64,
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Container {
    /// Download offloaded packs back into local files (verified against the length and SHA-256
    /// recorded when they were offloaded) and record them as local. Takes the maintenance lock
    /// in shared mode.
    pub fn fetch_packs(
        &self,
        opts: &FetchOptions,
        progress: &dyn Progress,
    ) -> Result<FetchSummary> {
        self.writable("fetch-packs")?;
        let _lock = self.lock_maintenance(LockMode::Shared, "fetch-packs")?;
        let rows: Vec<RemotePackRow> = self
            .index()
            .remote_packs()?
            .into_iter()
            .filter(|r| {
                opts.packs
                    .as_ref()
                    .is_none_or(|only| only.contains(&r.pack_id))
            })
            .collect();
        if let Some(only) = &opts.packs
            && let Some(missing) = only
                .iter()
                .find(|id| !rows.iter().any(|r| r.pack_id == **id))
        {
            return Err(Error::InvalidArgument(format!(
                "pack {missing} is not an offloaded pack of this container"
            )));
        }
        let mut s = FetchSummary::default();
        if rows.is_empty() {
            return Ok(s);
        }
        let store = self.remote_store()?;
        progress.start(
            rows.iter().map(|r| r.length).sum(),
            Unit::Bytes,
            "Fetching packs",
        );
        let result = (|| {
            for row in &rows {
                if opts.interrupt.is_set() {
                    return Err(Error::Interrupted);
                }
                s.bytes += self.fetch_one(store.as_ref(), row.pack_id, progress)?;
                s.fetched.push(row.pack_id);
            }
            Ok(())
        })();
        progress.finish();
        result?;
        Ok(s)
    }

    /// Make offloaded pack `id` local; returns the bytes downloaded. Under the pack's lock,
    /// which offloads also take, so that the two never interleave on one pack.
    pub(crate) fn fetch_one(
        &self,
        store: &dyn RemoteStore,
        id: u64,
        progress: &dyn Progress,
    ) -> Result<u64> {
        let path = self.layout.pack(id);
        pack::remove_if_stale(&self.layout.pack_lock(id))?;
        let _lock = PackLock::acquire(
            &self.layout.pack_lock(id),
            std::time::Duration::from_secs(120),
            &self.io.faults,
        )?;
        // Decided under the lock: another fetch may have brought it back meanwhile.
        let Some(row) = self.index().remote_pack(id)? else {
            return Ok(0);
        };
        let row = &row;
        // A local copy already there (kept at offload, or a fetch that crashed after its
        // swap): only the index changes.
        if let Ok(m) = fs::symlink_metadata(&path)
            && m.is_file()
        {
            if m.len() != row.length {
                return Err(Error::PackModified {
                    path,
                    change: PackChange::Size {
                        on_disk: m.len(),
                        written: row.length,
                    },
                });
            }
            self.index().delete_remote_pack(id)?;
            return Ok(0);
        }
        let tmp = self.layout.sandbox.join(format!(
            "dos-fetch-{id}-{}",
            random_hex(8).ctx(&self.layout.sandbox, "random name")?
        ));
        let result = (|| -> Result<u64> {
            let file = File::create(&tmp).ctx(&tmp, "create")?;
            let mut out = Hashing {
                inner: io::BufWriter::with_capacity(1 << 20, &file),
                hash: Sha256::new(),
            };
            self.io
                .faults
                .point("fetch.download")
                .ctx(&path, "download")?;
            let n = store.download(&row.name, &mut out, &mut |k| progress.inc(k))?;
            out.flush().ctx(&tmp, "write")?;
            let digest = to_hex(out.hash.clone().finalize().as_slice());
            let Hashing { inner, .. } = out;
            drop(inner);
            if n != row.length || digest != row.sha256 {
                return Err(Error::Remote(super::RemoteError::new(
                    store,
                    &row.name,
                    "download",
                    format!(
                        "got {n} bytes with SHA-256 {digest}, the index records {} bytes with \
                         SHA-256 {}; the pack was not fetched",
                        row.length, row.sha256
                    ),
                )));
            }
            file.sync_all().ctx(&tmp, "fsync")?;
            stub::replace_stub_with_pack(&self.layout, id, &tmp, &self.io.faults)?;
            Ok(n)
        })();
        let n = match result {
            Ok(n) => n,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        self.io.faults.point("fetch.commit").ctx(&path, "fetch")?;
        self.index().delete_remote_pack(id)?;
        Ok(n)
    }
}
