//! Converting a container's compression in place: `zlib+N` to `zstd+N` and back
//! (`dos repack --compression ...`).
//!
//! Order: a marker naming the target goes into `packs/` (Python ignores files there that are not
//! pack ids), then `config.json` is replaced (atomically) so that everything written from then on
//! uses the target, then every pack holding an object in the other coding is rewritten by an
//! ordinary, crash-safe repack, and the marker goes. A conversion killed at any point leaves a
//! container every dos reader reads (readers tell the codings apart by each object's first
//! bytes); running the same conversion again finishes it. While the marker is there, `dos
//! status` says so, and Python cannot be assumed to read the container.

use std::fs;
use std::io;

use super::lock::LockMode;
use super::repack::{RepackOptions, RepackSummary};
use crate::codec::Compression;
use crate::container::{Container, write_file_atomically};
use crate::durable;
use crate::error::{Error, IoContext, Result};
use crate::progress::Progress;

/// Name of the conversion marker in `packs/` (not a pack id, so Python ignores it).
pub const CONVERT_MARKER: &str = "dos-convert.json";

impl Container {
    /// The target of a conversion that has not finished (its marker is present), if any.
    pub fn unfinished_conversion(&self) -> Result<Option<String>> {
        let p = self.layout.packs.join(CONVERT_MARKER);
        match fs::read(&p) {
            Ok(b) => {
                let v: serde_json::Value =
                    serde_json::from_slice(&b).map_err(|source| Error::Journal {
                        path: p.clone(),
                        source,
                    })?;
                Ok(Some(v["to"].as_str().unwrap_or("?").to_string()))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&p, "read", e)),
        }
    }

    /// Whether Python disk-objectstore can read every object: the container is `zlib+N` and no
    /// conversion is unfinished.
    pub fn python_readable(&self) -> Result<bool> {
        Ok(self.config.compression.python_readable()
            && self.unfinished_conversion()?.is_none()
            && self.pack_places()?.remote_only().0 == 0)
    }

    /// Convert the container to `to`: every compressed object is re-encoded (whatever else
    /// `opts` asks of the repack is done at the same time), and new objects are written with
    /// it. Returns the container as reopened with its new configuration, and what the repack
    /// did. Crash-safe (see the module docs); run it while no other process writes, as a
    /// writer that opened the container before keeps writing in the old coding.
    pub fn convert_compression(
        &self,
        to: Compression,
        opts: &RepackOptions,
        progress: &dyn Progress,
    ) -> Result<(Container, RepackSummary)> {
        let _lock = self.lock_maintenance(LockMode::Exclusive, "convert")?;
        let recovered = self.recover()?;
        let marker = self.layout.packs.join(CONVERT_MARKER);
        let body = serde_json::json!({ "to": to.algorithm() }).to_string();
        write_file_atomically(&self.layout, &marker, body.as_bytes())?;
        durable::sync_dir(&self.layout.packs)?;
        self.io
            .faults
            .point("convert.marker.after")
            .ctx(&marker, "fsync")?;
        let mut config = self.config.clone();
        config.compression = to;
        write_file_atomically(
            &self.layout,
            &self.layout.config,
            config.to_python_json().as_bytes(),
        )?;
        durable::sync_dir(&self.layout.root)?;
        self.io
            .faults
            .point("convert.config.after")
            .ctx(&self.layout.config, "fsync")?;
        let converted = Container::open_with(&self.layout.root, self.io.clone())?;
        let mut s = converted.repack_locked(
            &RepackOptions {
                recode: true,
                ..opts.clone()
            },
            progress,
        )?;
        s.recovered = recovered;
        fs::remove_file(&marker).ctx(&marker, "remove conversion marker")?;
        durable::sync_dir(&self.layout.packs)?;
        Ok((converted, s))
    }
}
