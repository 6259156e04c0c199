//! A streaming zip writer: entries whose data is in memory or streamed (the local header is
//! patched with the CRC-32 and sizes afterwards), then the central directory in any order, with
//! zip64 records where counts, sizes or offsets need them.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use dos_core::codec::deflate::DeflateEncoder;
use dos_core::fileio::write_all_at;

use crate::error::{ArchiveError, ContentProblem, Result};
use crate::zip::{
    EXTRA_ZIP64, METHOD_DEFLATE, METHOD_STORED, SIG_CENTRAL, SIG_EOCD, SIG_LOCAL, SIG_Z64_EOCD,
    SIG_Z64_LOCATOR, ZIP64_COUNT_LIMIT, ZIP64_LIMIT,
};

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
        write_all_at(&self.file, b, offset).map_err(|e| ArchiveError::io(&self.path, "write", e))
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
pub struct ZipWriter {
    out: Out,
    records: Vec<Record>,
    date: u16,
    time: u16,
}

impl ZipWriter {
    /// A writer of a new zip file into `file` (at its start), named `path` in errors; entries
    /// are dated now.
    pub fn new(file: File, path: PathBuf) -> Self {
        let (date, time) = dos_datetime();
        Self {
            out: Out {
                file,
                path,
                buf: Vec::with_capacity(8 << 20),
                pos: 0,
            },
            records: Vec::new(),
            date,
            time,
        }
    }

    /// Entries written so far.
    pub fn entries(&self) -> usize {
        self.records.len()
    }

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
        h.extend_from_slice(&SIG_LOCAL.to_le_bytes());
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
            h.extend_from_slice(&EXTRA_ZIP64.to_le_bytes());
            h.extend_from_slice(&16u16.to_le_bytes());
            h.extend_from_slice(&usize.to_le_bytes());
            h.extend_from_slice(&csize.to_le_bytes());
        }
        self.out.write(&h)?;
        Ok(offset)
    }

    /// An entry whose data is in memory.
    pub fn entry(
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
    pub fn stream_entry(
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
            let mut enc = DeflateEncoder::new(OutSink(&mut self.out), level);
            io::copy(&mut counting, &mut enc).map_err(io_err)?;
            enc.finish().map_err(io_err)?;
        }
        let total = counting.n;
        let crc = counting.crc.clone();
        if total != size {
            return Err(ArchiveError::Content {
                path: self.out.path.clone(),
                problem: ContentProblem::ShortStream {
                    name: String::from_utf8_lossy(&name).into_owned(),
                    read: total,
                    expected: size,
                },
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

    /// Write the central directory (the entries in `order`, as positions in write order) and the
    /// end records, and flush. Returns the file, its size, and whether zip64 records were needed.
    pub fn finish(mut self, order: &[usize]) -> Result<(File, u64, bool)> {
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
            h.extend_from_slice(&SIG_CENTRAL.to_le_bytes());
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
                h.extend_from_slice(&EXTRA_ZIP64.to_le_bytes());
                h.extend_from_slice(&(extra.len() as u16).to_le_bytes());
                h.extend_from_slice(&extra);
            }
            self.out.write(&h)?;
        }
        let cd_size = self.out.pos - cd_start;
        let n = order.len() as u64;
        let need64 =
            any64 || n >= ZIP64_COUNT_LIMIT || cd_start >= ZIP64_LIMIT || cd_size >= ZIP64_LIMIT;
        if need64 {
            let z64_pos = self.out.pos;
            let mut r = Vec::with_capacity(76);
            r.extend_from_slice(&SIG_Z64_EOCD.to_le_bytes());
            r.extend_from_slice(&44u64.to_le_bytes());
            r.extend_from_slice(&(0x0300u16 | 45).to_le_bytes());
            r.extend_from_slice(&45u16.to_le_bytes());
            r.extend_from_slice(&0u32.to_le_bytes());
            r.extend_from_slice(&0u32.to_le_bytes());
            r.extend_from_slice(&n.to_le_bytes());
            r.extend_from_slice(&n.to_le_bytes());
            r.extend_from_slice(&cd_size.to_le_bytes());
            r.extend_from_slice(&cd_start.to_le_bytes());
            r.extend_from_slice(&SIG_Z64_LOCATOR.to_le_bytes());
            r.extend_from_slice(&0u32.to_le_bytes());
            r.extend_from_slice(&z64_pos.to_le_bytes());
            r.extend_from_slice(&1u32.to_le_bytes());
            self.out.write(&r)?;
        }
        let mut e = Vec::with_capacity(22);
        e.extend_from_slice(&SIG_EOCD.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        let n16 = if need64 { u16::MAX } else { n as u16 };
        e.extend_from_slice(&n16.to_le_bytes());
        e.extend_from_slice(&n16.to_le_bytes());
        e.extend_from_slice(&(if need64 { u32::MAX } else { cd_size as u32 }).to_le_bytes());
        e.extend_from_slice(&(if need64 { u32::MAX } else { cd_start as u32 }).to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        self.out.write(&e)?;
        self.out.flush()?;
        Ok((self.out.file, self.out.pos, need64))
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
