//! Write an archive aiida-core imports: the objects an archive database references, taken from a
//! container and deflated in parallel, then `db.sqlite3`, then `metadata.json` (STORED); the
//! central directory lists `metadata.json` and `db.sqlite3` first (aiida-core only looks at the
//! first few records). Zip64 records are written when counts or sizes need them. The archive is
//! written to a temporary file next to the destination and renamed into place once complete and
//! durable.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use dos_core::{Container, ObjectContent, ObjectKey, Progress, Unit};
use flate2::{Compress, Compression, FlushCompress, Status};
use rayon::prelude::*;
use serde::Serialize;

use crate::aiida::{self, DB_NAME, LATEST_VERSION, META_NAME};
use crate::error::{ArchiveError, Result};
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
const ZIP64_LIMIT: u64 = 0xFFFF_FFFF;

/// One written entry, for the central directory.
struct Record {
    name: Vec<u8>,
    method: u16,
    crc: u32,
    csize: u64,
    usize: u64,
    offset: u64,
}

/// The output file, buffered, with its own position (and patching of headers written earlier).
struct Out {
    file: File,
    path: PathBuf,
    buf: Vec<u8>,
    pos: u64,
}

impl Out {
    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(b);
        self.pos += b.len() as u64;
        if self.buf.len() >= 4 << 20 {
            self.flush()?;
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        self.file
            .write_all(&self.buf)
            .map_err(|e| ArchiveError::io(&self.path, "write", e))?;
        self.buf.clear();
        Ok(())
    }
    fn patch(&mut self, offset: u64, b: &[u8]) -> Result<()> {
        self.flush()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            self.file
                .write_all_at(b, offset)
                .map_err(|e| ArchiveError::io(&self.path, "write", e))
        }
        #[cfg(not(unix))]
        {
            use std::io::{Seek, SeekFrom};
            self.file
                .seek(SeekFrom::Start(offset))
                .and_then(|_| self.file.write_all(b))
                .and_then(|_| self.file.seek(SeekFrom::End(0)).map(|_| ()))
                .map_err(|e| ArchiveError::io(&self.path, "write", e))
        }
    }
}

/// MS-DOS date and time of "now" (UTC; zip has no time zone).
fn dos_datetime() -> (u16, u16) {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let year = year.clamp(1980, 2107);
    let date = (((year - 1980) as u16) << 9) | ((month as u16) << 5) | day as u16;
    let time = (((rem / 3600) as u16) << 11)
        | ((((rem % 3600) / 60) as u16) << 5)
        | ((rem % 60) / 2) as u16;
    (date, time)
}

/// Writes entries and, at the end, the central directory.
struct ZipWriter {
    out: Out,
    records: Vec<Record>,
    date: u16,
    time: u16,
}

impl ZipWriter {
    /// Write a local header; returns its offset. `zip64` reserves 64-bit sizes in an extra.
    fn local_header(
        &mut self,
        name: &[u8],
        method: u16,
        crc: u32,
        csize: u64,
        usize: u64,
        zip64: bool,
    ) -> Result<u64> {
        let offset = self.out.pos;
        let mut h = Vec::with_capacity(30 + name.len() + 20);
        h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        h.extend_from_slice(&(if zip64 { 45u16 } else { 20u16 }).to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // flags
        h.extend_from_slice(&method.to_le_bytes());
        h.extend_from_slice(&self.time.to_le_bytes());
        h.extend_from_slice(&self.date.to_le_bytes());
        h.extend_from_slice(&crc.to_le_bytes());
        if zip64 {
            h.extend_from_slice(&u32::MAX.to_le_bytes());
            h.extend_from_slice(&u32::MAX.to_le_bytes());
        } else {
            h.extend_from_slice(&(csize as u32).to_le_bytes());
            h.extend_from_slice(&(usize as u32).to_le_bytes());
        }
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(&(if zip64 { 20u16 } else { 0 }).to_le_bytes());
        h.extend_from_slice(name);
        if zip64 {
            h.extend_from_slice(&1u16.to_le_bytes());
            h.extend_from_slice(&16u16.to_le_bytes());
            h.extend_from_slice(&usize.to_le_bytes());
            h.extend_from_slice(&csize.to_le_bytes());
        }
        self.out.write(&h)?;
        Ok(offset)
    }

    /// An entry whose data is in memory.
    fn entry(
        &mut self,
        name: Vec<u8>,
        method: u16,
        crc: u32,
        usize: u64,
        data: &[u8],
    ) -> Result<()> {
        let csize = data.len() as u64;
        let zip64 = csize >= ZIP64_LIMIT || usize >= ZIP64_LIMIT;
        let offset = self.local_header(&name, method, crc, csize, usize, zip64)?;
        self.out.write(data)?;
        self.records.push(Record {
            name,
            method,
            crc,
            csize,
            usize,
            offset,
        });
        Ok(())
    }

    /// An entry streamed from `r` (`size` bytes), deflated at `level` (0 = stored); the local
    /// header is patched with the CRC and compressed size afterwards.
    fn stream_entry(
        &mut self,
        name: Vec<u8>,
        r: &mut dyn Read,
        size: u64,
        level: u32,
    ) -> Result<()> {
        // Deflate may expand incompressible data slightly: reserve zip64 early.
        let zip64 = size >= ZIP64_LIMIT - size / 100 - (1 << 20);
        let method = if level == 0 {
            METHOD_STORED
        } else {
            METHOD_DEFLATE
        };
        let offset = self.local_header(&name, method, 0, 0, size, zip64)?;
        let start = self.out.pos;
        let mut counting = CrcReader {
            inner: r,
            crc: crc32fast::Hasher::new(),
            n: 0,
        };
        let path = self.out.path.clone();
        let io_err = |e| ArchiveError::io(&path, "write entry", e);
        if level == 0 {
            io::copy(&mut counting, &mut OutSink(&mut self.out)).map_err(io_err)?;
        } else {
            let mut enc =
                flate2::write::DeflateEncoder::new(OutSink(&mut self.out), Compression::new(level));
            io::copy(&mut counting, &mut enc).map_err(io_err)?;
            enc.finish().map_err(io_err)?;
        }
        let total = counting.n;
        let crc = counting.crc.clone();
        if total != size {
            return Err(ArchiveError::Content {
                path: self.out.path.clone(),
                detail: format!(
                    "{}: read {total} bytes, expected {size}",
                    String::from_utf8_lossy(&name)
                ),
            });
        }
        let csize = self.out.pos - start;
        let crc = crc.finalize();
        // Patch CRC (and sizes) into the local header.
        let mut p = Vec::with_capacity(12);
        p.extend_from_slice(&crc.to_le_bytes());
        if zip64 {
            self.out.patch(offset + 14, &p)?;
            let extra_at = offset + 30 + name.len() as u64 + 4;
            let mut sizes = Vec::with_capacity(16);
            sizes.extend_from_slice(&size.to_le_bytes());
            sizes.extend_from_slice(&csize.to_le_bytes());
            self.out.patch(extra_at, &sizes)?;
        } else {
            p.extend_from_slice(&(csize as u32).to_le_bytes());
            p.extend_from_slice(&(size as u32).to_le_bytes());
            self.out.patch(offset + 14, &p)?;
        }
        self.records.push(Record {
            name,
            method,
            crc,
            csize,
            usize: size,
            offset,
        });
        Ok(())
    }

    /// Central directory (records in `order`) and end records.
    fn finish(mut self, order: &[usize]) -> Result<(Out, bool)> {
        let cd_start = self.out.pos;
        let mut any64 = false;
        for &i in order {
            let r = &self.records[i];
            let mut extra = Vec::new();
            let big_u = r.usize >= ZIP64_LIMIT;
            let big_c = r.csize >= ZIP64_LIMIT;
            let big_o = r.offset >= ZIP64_LIMIT;
            if big_u {
                extra.extend_from_slice(&r.usize.to_le_bytes());
            }
            if big_c {
                extra.extend_from_slice(&r.csize.to_le_bytes());
            }
            if big_o {
                extra.extend_from_slice(&r.offset.to_le_bytes());
            }
            let zip64 = !extra.is_empty();
            any64 |= zip64;
            let mut h = Vec::with_capacity(46 + r.name.len() + 28);
            h.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            let v: u16 = if zip64 { 45 } else { 20 };
            h.extend_from_slice(&(0x0300 | v).to_le_bytes()); // made by: Unix
            h.extend_from_slice(&v.to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            h.extend_from_slice(&r.method.to_le_bytes());
            h.extend_from_slice(&self.time.to_le_bytes());
            h.extend_from_slice(&self.date.to_le_bytes());
            h.extend_from_slice(&r.crc.to_le_bytes());
            h.extend_from_slice(&(if big_c { u32::MAX } else { r.csize as u32 }).to_le_bytes());
            h.extend_from_slice(&(if big_u { u32::MAX } else { r.usize as u32 }).to_le_bytes());
            h.extend_from_slice(&(r.name.len() as u16).to_le_bytes());
            h.extend_from_slice(&(if zip64 { extra.len() as u16 + 4 } else { 0 }).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // comment
            h.extend_from_slice(&0u16.to_le_bytes()); // disk
            h.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
            h.extend_from_slice(&((0o100_600u32) << 16).to_le_bytes());
            h.extend_from_slice(&(if big_o { u32::MAX } else { r.offset as u32 }).to_le_bytes());
            h.extend_from_slice(&r.name);
            if zip64 {
                h.extend_from_slice(&1u16.to_le_bytes());
                h.extend_from_slice(&(extra.len() as u16).to_le_bytes());
                h.extend_from_slice(&extra);
            }
            self.out.write(&h)?;
        }
        let cd_size = self.out.pos - cd_start;
        let n = order.len() as u64;
        let need64 = any64 || n >= 0xFFFF || cd_start >= ZIP64_LIMIT || cd_size >= ZIP64_LIMIT;
        if need64 {
            let z64_pos = self.out.pos;
            let mut r = Vec::with_capacity(76);
            r.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
            r.extend_from_slice(&44u64.to_le_bytes());
            r.extend_from_slice(&(0x0300u16 | 45).to_le_bytes());
            r.extend_from_slice(&45u16.to_le_bytes());
            r.extend_from_slice(&0u32.to_le_bytes());
            r.extend_from_slice(&0u32.to_le_bytes());
            r.extend_from_slice(&n.to_le_bytes());
            r.extend_from_slice(&n.to_le_bytes());
            r.extend_from_slice(&cd_size.to_le_bytes());
            r.extend_from_slice(&cd_start.to_le_bytes());
            r.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
            r.extend_from_slice(&0u32.to_le_bytes());
            r.extend_from_slice(&z64_pos.to_le_bytes());
            r.extend_from_slice(&1u32.to_le_bytes());
            self.out.write(&r)?;
        }
        let mut e = Vec::with_capacity(22);
        e.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        let n16 = if need64 { 0xFFFF } else { n as u16 };
        e.extend_from_slice(&n16.to_le_bytes());
        e.extend_from_slice(&n16.to_le_bytes());
        e.extend_from_slice(&(if need64 { u32::MAX } else { cd_size as u32 }).to_le_bytes());
        e.extend_from_slice(&(if need64 { u32::MAX } else { cd_start as u32 }).to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        self.out.write(&e)?;
        self.out.flush()?;
        Ok((self.out, need64))
    }
}

/// `io::Write` into the output.
struct OutSink<'a>(&'a mut Out);

impl Write for OutSink<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b).map_err(io::Error::other)?;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that computes the CRC-32 and length of what passes through.
struct CrcReader<'a> {
    inner: &'a mut dyn Read,
    crc: crc32fast::Hasher,
    n: u64,
}

impl Read for CrcReader<'_> {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(b)?;
        self.crc.update(&b[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

/// Deflate `data` completely at `level` (raw deflate).
fn deflate(data: &[u8], level: u32) -> Vec<u8> {
    let mut c = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let before = c.total_in() as usize;
        match c.compress_vec(&data[before..], &mut out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => break,
            _ => out.reserve(out.capacity().max(4096)),
        }
    }
    out
}

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
                detail: format!("compression level {level} is not in 0..=9"),
            });
        }
        if !overwrite && out_path.exists() {
            return Err(ArchiveError::Unsupported {
                path: out_path.to_path_buf(),
                detail: "already exists (use --overwrite to replace it)".into(),
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
        let (date, time) = dos_datetime();
        Ok(Self {
            w: ZipWriter {
                out: Out {
                    file,
                    path: tmp.path().to_path_buf(),
                    buf: Vec::with_capacity(8 << 20),
                    pos: 0,
                },
                records: Vec::new(),
                date,
                time,
            },
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
                        deflate(data, level)
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
        let n = self.w.records.len();
        let mut order = vec![n - 1, n - 2];
        order.extend(0..n - 2);
        let (out, zip64) = self.w.finish(&order)?;
        out.file
            .sync_all()
            .map_err(|e| ArchiveError::io(&out.path, "fsync", e))?;
        let size = out.pos;
        drop(out);
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

/// A minimal `metadata.json` (aiida-core requires only `export_version`).
fn default_metadata(level: u32) -> Vec<u8> {
    serde_json::json!({
        "export_version": LATEST_VERSION,
        "aiida_version": "2.0.0",
        "key_format": "sha256",
        "compression": level,
        "ctime": SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string(),
        "creation_parameters": {"exported_by": "dos"},
    })
    .to_string()
    .into_bytes()
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
            detail: format!("repository_metadata references {k:?}, which is not a sha256 key"),
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
            detail: format!(
                "{} objects referenced by {} are not in the container (first: {first})",
                missing.len(),
                db.display()
            ),
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
            detail: format!(
                "{} objects vanished during the export (first: {first})",
                vanished.len()
            ),
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
