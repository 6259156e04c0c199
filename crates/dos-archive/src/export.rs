//! Write an archive aiida-core imports: the objects an archive database references, taken from a
//! container and deflated in parallel, then `db.sqlite3`, then `metadata.json` (STORED); the
//! central directory lists `metadata.json` and `db.sqlite3` first (aiida-core only looks at the
//! first few records). Zip64 records are written when counts or sizes need them. The archive is
//! written to a temporary file next to the destination and renamed into place once complete and
//! durable.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use dos_core::codec::deflate;
use dos_core::{Container, ObjectContent, ObjectKey, Progress, Unit};
use rayon::prelude::*;
use serde::Serialize;

use crate::aiida::{self, DB_NAME, LATEST_VERSION, META_NAME};
use crate::error::{ArchiveError, ContentProblem, NotSupported, Result};
use crate::zip::write::ZipWriter;
use crate::zip::{METHOD_DEFLATE, METHOD_STORED};

/// Options of [`export_archive`].
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Deflate level 1–9, or 0 to store entries uncompressed (aiida's default is 6).
    pub level: u32,
    /// The `metadata.json` to write (default: a minimal one with `export_version` main_0001).
    pub metadata: Option<Vec<u8>>,
    /// Replace an existing file at the destination.
    pub overwrite: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            level: 6,
            metadata: None,
            overwrite: false,
        }
    }
}

/// What [`export_archive`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    /// The archive written.
    pub path: PathBuf,
    /// Repository objects written.
    pub objects: u64,
    /// Their uncompressed bytes.
    pub bytes: u64,
    /// Size of the archive.
    pub archive_size: u64,
    /// Zip64 records were needed.
    pub zip64: bool,
}

/// Batches of objects deflated in parallel hold at most this many bytes.
const BATCH: usize = 32 << 20;

/// A new archive being written: repository entries first (deflated in parallel), then
/// `db.sqlite3` and `metadata.json` in [`ArchiveWriter::finish`], which writes the central
/// directory in aiida's order and renames the completed, fsynced file into place.
pub struct ArchiveWriter {
    w: ZipWriter,
    tmp: tempfile::NamedTempFile,
    out_path: PathBuf,
    dir: PathBuf,
    level: u32,
    overwrite: bool,
}

impl ArchiveWriter {
    /// Start writing `out_path` (a temporary file next to it until `finish`).
    pub fn create(out_path: &Path, level: u32, overwrite: bool) -> Result<Self> {
        if level > 9 {
            return Err(ArchiveError::Unsupported {
                path: out_path.to_path_buf(),
                what: NotSupported::Level(level),
            });
        }
        if !overwrite && out_path.exists() {
            return Err(ArchiveError::Unsupported {
                path: out_path.to_path_buf(),
                what: NotSupported::Exists,
            });
        }
        let dir = out_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let tmp = tempfile::Builder::new()
            .prefix(".dos-export-")
            .tempfile_in(&dir)
            .map_err(|e| ArchiveError::io(&dir, "create temporary file", e))?;
        let file = tmp
            .reopen()
            .map_err(|e| ArchiveError::io(tmp.path(), "open", e))?;
        Ok(Self {
            w: ZipWriter::new(file, tmp.path().to_path_buf()),
            tmp,
            out_path: out_path.to_path_buf(),
            dir,
            level,
            overwrite,
        })
    }

    /// Add repository objects `(key, content)`, deflated in parallel, written in the given order.
    pub fn add_objects(&mut self, batch: &mut Vec<(ObjectKey, Vec<u8>)>) -> Result<()> {
        let level = self.level;
        let encoded: Vec<(u32, Vec<u8>)> = batch
            .par_iter()
            .map(|(_, data)| {
                let crc = crc32fast::hash(data);
                (
                    crc,
                    if level == 0 {
                        Vec::new()
                    } else {
                        deflate::compress(data, level)
                    },
                )
            })
            .collect();
        for ((key, data), (crc, z)) in batch.drain(..).zip(encoded) {
            let name = format!("repo/{key}").into_bytes();
            if level == 0 {
                self.w
                    .entry(name, METHOD_STORED, crc, data.len() as u64, &data)?;
            } else {
                self.w
                    .entry(name, METHOD_DEFLATE, crc, data.len() as u64, &z)?;
            }
        }
        Ok(())
    }

    /// Add one (large) repository object streamed from `r`, which yields exactly `size` bytes.
    pub fn add_object_stream(
        &mut self,
        key: &ObjectKey,
        r: &mut dyn Read,
        size: u64,
    ) -> Result<()> {
        let level = self.level;
        self.w
            .stream_entry(format!("repo/{key}").into_bytes(), r, size, level)
    }

    /// Write `db.sqlite3` (from the file `db`), `metadata.json` (default: a minimal one) and the
    /// central directory; make the archive durable and move it into place. Returns the archive
    /// size and whether zip64 records were needed.
    pub fn finish(mut self, db: &Path, metadata: Option<Vec<u8>>) -> Result<(u64, bool)> {
        let level = self.level;
        let mut dbf = File::open(db).map_err(|e| ArchiveError::io(db, "open", e))?;
        let db_size = dbf
            .metadata()
            .map_err(|e| ArchiveError::io(db, "stat", e))?
            .len();
        self.w
            .stream_entry(DB_NAME.as_bytes().to_vec(), &mut dbf, db_size, level)?;
        let meta = metadata.unwrap_or_else(|| default_metadata(level));
        self.w.entry(
            META_NAME.as_bytes().to_vec(),
            METHOD_STORED,
            crc32fast::hash(&meta),
            meta.len() as u64,
            &meta,
        )?;
        // Central directory: metadata.json, db.sqlite3, then the repository entries.
        let n = self.w.entries();
        let mut order = vec![n - 1, n - 2];
        order.extend(0..n - 2);
        let (file, size, zip64) = self.w.finish(&order)?;
        file.sync_all()
            .map_err(|e| ArchiveError::io(self.tmp.path(), "fsync", e))?;
        drop(file);
        let persist = if self.overwrite {
            self.tmp.persist(&self.out_path).map(|_| ())
        } else {
            self.tmp.persist_noclobber(&self.out_path).map(|_| ())
        };
        persist.map_err(|e| ArchiveError::io(&self.out_path, "rename into place", e.error))?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok((size, zip64))
    }
}

/// The `metadata.json` written when none is given: what is true of this archive, in aiida-core's
/// format (aiida-core itself needs only `export_version`). It names no aiida-core version, since
/// none wrote it; `ctime` is the time of writing as aiida-core writes it (ISO 8601, here in UTC).
fn default_metadata(level: u32) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    serde_json::json!({
        "export_version": LATEST_VERSION,
        "key_format": "sha256",
        "compression": level,
        "ctime": iso8601_utc(now.as_secs(), now.subsec_micros()),
        "creation_parameters": {
            "exported_by": format!("dos {}", env!("CARGO_PKG_VERSION")),
        },
    })
    .to_string()
    .into_bytes()
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff+00:00` of `secs` (and `micros`) since the Unix epoch.
fn iso8601_utc(secs: u64, micros: u32) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Days to civil date (proleptic Gregorian), counted from 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The `metadata.json` of the archive at `path`, byte for byte (to keep a source archive's
/// metadata in an export made from it).
pub fn metadata_of(path: &Path) -> Result<Vec<u8>> {
    let z = crate::zip::read::ZipArchive::open_deferred(path, &crate::Limits::default())?;
    let e = z.find(META_NAME).ok_or_else(|| ArchiveError::Content {
        path: path.to_path_buf(),
        problem: ContentProblem::NoMetadata,
    })?;
    if e.usize > 64 << 20 {
        return Err(ArchiveError::Content {
            path: path.to_path_buf(),
            problem: ContentProblem::MetadataTooLarge(e.usize),
        });
    }
    z.read_entry(e)
}

/// Export the objects referenced by the archive database `db` from `c` into a new archive `out`.
pub fn export_archive(
    c: &Container,
    db: &Path,
    out_path: &Path,
    opts: &ExportOptions,
    progress: &dyn Progress,
) -> Result<ExportSummary> {
    let (keys, malformed) = aiida::referenced_keys(db)?;
    if let Some(k) = malformed.first() {
        return Err(ArchiveError::Content {
            path: db.to_path_buf(),
            problem: ContentProblem::MalformedReference(k.clone()),
        });
    }
    let have = c.has_objects(&keys)?;
    let missing: Vec<&ObjectKey> = keys
        .iter()
        .zip(&have)
        .filter(|(_, h)| !**h)
        .map(|(k, _)| k)
        .collect();
    if let Some(first) = missing.first() {
        return Err(ArchiveError::Content {
            path: c.path().to_path_buf(),
            problem: ContentProblem::MissingObjects {
                count: missing.len(),
                db: db.to_path_buf(),
                first: **first,
            },
        });
    }
    let mut w = ArchiveWriter::create(out_path, opts.level, opts.overwrite)?;
    progress.start(keys.len() as u64, Unit::Objects, "Exporting objects");
    let mut batch: Vec<(ObjectKey, Vec<u8>)> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut bytes = 0u64;
    let mut failure: Option<ArchiveError> = None;
    let vanished = c.read_objects(&keys, |key, content, meta| {
        if failure.is_some() {
            return Ok(());
        }
        let r = (|| -> Result<()> {
            match content {
                ObjectContent::Bytes(b) => {
                    bytes += b.len() as u64;
                    batch_bytes += b.len();
                    batch.push((key, b.to_vec()));
                    if batch_bytes >= BATCH {
                        progress.inc(batch.len() as u64);
                        w.add_objects(&mut batch)?;
                        batch_bytes = 0;
                    }
                }
                ObjectContent::Reader(r) => {
                    progress.inc(batch.len() as u64 + 1);
                    w.add_objects(&mut batch)?;
                    batch_bytes = 0;
                    let size = meta.size.unwrap_or(0);
                    bytes += size;
                    w.add_object_stream(&key, r, size)?;
                }
            }
            Ok(())
        })();
        if let Err(e) = r {
            failure = Some(e);
        }
        Ok(())
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    if let Some(first) = vanished.first() {
        return Err(ArchiveError::Content {
            path: c.path().to_path_buf(),
            problem: ContentProblem::Vanished {
                count: vanished.len(),
                first: *first,
            },
        });
    }
    progress.inc(batch.len() as u64);
    w.add_objects(&mut batch)?;
    progress.finish();
    let (archive_size, zip64) = w.finish(db, opts.metadata.clone())?;
    Ok(ExportSummary {
        path: out_path.to_path_buf(),
        objects: keys.len() as u64,
        bytes,
        archive_size,
        zip64,
    })
}

#[cfg(test)]
mod metadata_tests {
    use super::*;

    #[test]
    fn ctime_in_aiida_format() {
        assert_eq!(iso8601_utc(0, 0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(
            iso8601_utc(1_796_083_199, 12),
            "2026-11-30T23:59:59.000012+00:00"
        );
        let m: serde_json::Value = serde_json::from_slice(&default_metadata(6)).unwrap();
        assert!(m.get("aiida_version").is_none());
        assert_eq!(m["export_version"], LATEST_VERSION);
    }
}
