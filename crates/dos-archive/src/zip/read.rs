//! A zip reader driven by the central directory, for untrusted archives.
//!
//! Supported: zip64 (end record and locator; extras in central and local headers, including
//! local zip64 extras the central directory lacks, as aiida-core 2.0–2.4 wrote them), data
//! descriptors (sizes come from the central directory), STORED and DEFLATE. Everything else —
//! encryption, other methods, multi-disk archives — is a clear error when an entry is read.
//!
//! Opening checks the structure before anything is read: the end records agree with the file
//! size, entries lie inside the file and before the central directory, each local header and
//! its data fit before the next local header (no two entries overlap), names are unique, and
//! declared sizes respect the [`Limits`]. [`ZipArchive::open`] also reads every local header
//! and checks it against its central record and the exact data end;
//! [`ZipArchive::open_deferred`] makes those checks when an entry is first read. Entry names
//! are never used as paths.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dos_core::ObjectKey;
use dos_core::codec::deflate::DeflateDecoder;
use dos_core::fileio::read_exact_at;
use dos_core::read::PackRangeReader;
use rayon::prelude::*;

use crate::error::{
    ArchiveError, ContentProblem, DataStart, LimitExceeded, NotSupported, Result, ZipProblem,
};
use crate::zip::{
    CENTRAL_LEN, EOCD_LEN, EXTRA_ZIP64, Entry, EntryName, LOCAL_LEN, Limits, METHOD_DEFLATE,
    METHOD_STORED, SIG_CENTRAL, SIG_EOCD, SIG_LOCAL, SIG_Z64_EOCD, SIG_Z64_LOCATOR, Z64_EOCD_LEN,
    Z64_LOCATOR_LEN, ZIP64_COUNT_LIMIT, ZIP64_LIMIT, u16_at, u32_at, u64_at,
};

/// Bytes of local extra field read along with a local header (a zip64 extra field is 20).
const LOCAL_EXTRA_GUESS: usize = 32;

/// An open archive.
#[derive(Debug)]
pub struct ZipArchive {
    path: PathBuf,
    file: Arc<File>,
    /// Size of the archive file.
    pub len: u64,
    /// Entries in central-directory order.
    pub entries: Vec<Entry>,
    /// The archive uses the zip64 end records.
    pub zip64: bool,
    /// Offset of the central directory.
    pub cd_offset: u64,
}

/// The zip64 extra field values of a header, in the order the fixed fields ask for them.
struct Zip64Extra<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Zip64Extra<'_> {
    fn find(extra: &[u8]) -> Option<Zip64Extra<'_>> {
        let mut i = 0;
        while i + 4 <= extra.len() {
            let id = u16_at(extra, i);
            let size = usize::from(u16_at(extra, i + 2));
            let end = (i + 4 + size).min(extra.len());
            if id == EXTRA_ZIP64 {
                return Some(Zip64Extra {
                    data: &extra[i + 4..end],
                    pos: 0,
                });
            }
            i = i + 4 + size;
        }
        None
    }
    fn next(&mut self) -> Option<u64> {
        if self.pos + 8 > self.data.len() {
            return None;
        }
        let v = u64_at(self.data, self.pos);
        self.pos += 8;
        Some(v)
    }
}

impl ZipArchive {
    fn malformed(&self, problem: ZipProblem) -> ArchiveError {
        ArchiveError::Malformed {
            path: self.path.clone(),
            problem,
        }
    }

    fn unsupported(&self, what: NotSupported) -> ArchiveError {
        ArchiveError::Unsupported {
            path: self.path.clone(),
            what,
        }
    }

    fn limit(&self, limit: LimitExceeded) -> ArchiveError {
        ArchiveError::Limit {
            path: self.path.clone(),
            limit,
        }
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open and check an archive (see the module docs for what is checked), reading every
    /// local header now.
    pub fn open(path: &Path, limits: &Limits) -> Result<ZipArchive> {
        let mut z = Self::open_deferred(path, limits)?;
        z.resolve_local_headers()?;
        Ok(z)
    }

    /// Open and check an archive from its central directory alone; each local header is read
    /// and checked when its entry is first read (for a bulk import: no separate pass over a
    /// million scattered headers before the work starts). An entry whose local header turns out
    /// bad then fails alone, naming itself.
    pub fn open_deferred(path: &Path, limits: &Limits) -> Result<ZipArchive> {
        let file = File::open(path).map_err(|e| ArchiveError::io(path, "open", e))?;
        let len = file
            .metadata()
            .map_err(|e| ArchiveError::io(path, "stat", e))?
            .len();
        let mut z = ZipArchive {
            path: path.to_path_buf(),
            file: Arc::new(file),
            len,
            entries: Vec::new(),
            zip64: false,
            cd_offset: 0,
        };
        z.read_central_directory(limits)?;
        z.check_layout(limits)?;
        Ok(z)
    }

    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.read_exact_at(offset, &mut buf)?;
        Ok(buf)
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len();
        read_exact_at(&self.file, buf, offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.malformed(ZipProblem::Truncated { len, offset })
            } else {
                ArchiveError::io(&self.path, "read", e)
            }
        })
    }

    fn read_central_directory(&mut self, limits: &Limits) -> Result<()> {
        if self.len < EOCD_LEN {
            return Err(self.malformed(ZipProblem::TooShort));
        }
        // The end record sits at the end, followed only by its comment (at most 65535 bytes).
        let tail_len = self.len.min(EOCD_LEN + 65_535);
        let tail_start = self.len - tail_len;
        let tail = self.read_at(tail_start, tail_len as usize)?;
        let mut eocd_at = None;
        for p in (0..=tail.len() - EOCD_LEN as usize).rev() {
            if u32_at(&tail, p) == SIG_EOCD
                && p + EOCD_LEN as usize + usize::from(u16_at(&tail, p + 20)) == tail.len()
            {
                eocd_at = Some(p);
                break;
            }
        }
        let Some(p) = eocd_at else {
            return Err(self.malformed(ZipProblem::NoEndRecord));
        };
        let eocd_pos = tail_start + p as u64;
        let e = &tail[p..];
        if u16_at(e, 4) != 0 || u16_at(e, 6) != 0 {
            return Err(self.unsupported(NotSupported::MultiDisk));
        }
        let mut count = u64::from(u16_at(e, 10));
        let mut cd_size = u64::from(u32_at(e, 12));
        let mut cd_offset = u64::from(u32_at(e, 16));
        let mut cd_end_limit = eocd_pos;
        // Zip64 locator right before the end record.
        const LOCATOR: u64 = Z64_LOCATOR_LEN as u64;
        let has_locator = eocd_pos >= LOCATOR
            && u32_at(&self.read_at(eocd_pos - LOCATOR, 4)?, 0) == SIG_Z64_LOCATOR;
        if has_locator {
            let loc = self.read_at(eocd_pos - LOCATOR, Z64_LOCATOR_LEN)?;
            let z64_pos = u64_at(&loc, 8);
            if z64_pos
                .checked_add(Z64_EOCD_LEN as u64)
                .is_none_or(|end| end > eocd_pos - LOCATOR)
            {
                return Err(self.malformed(ZipProblem::Zip64RecordOutside(z64_pos)));
            }
            let r = self.read_at(z64_pos, Z64_EOCD_LEN)?;
            if u32_at(&r, 0) != SIG_Z64_EOCD {
                return Err(self.malformed(ZipProblem::Zip64LocatorDangling));
            }
            count = u64_at(&r, 32);
            cd_size = u64_at(&r, 40);
            cd_offset = u64_at(&r, 48);
            cd_end_limit = z64_pos;
            self.zip64 = true;
        } else if count == ZIP64_COUNT_LIMIT || cd_size == ZIP64_LIMIT || cd_offset == ZIP64_LIMIT {
            return Err(self.malformed(ZipProblem::Zip64WithoutRecord));
        }
        if cd_offset
            .checked_add(cd_size)
            .is_none_or(|end| end > cd_end_limit)
        {
            return Err(self.malformed(ZipProblem::DirectoryOutside {
                size: cd_size,
                offset: cd_offset,
            }));
        }
        if count > cd_size / CENTRAL_LEN as u64 {
            return Err(self.malformed(ZipProblem::DirectoryTooSmall {
                count,
                size: cd_size,
            }));
        }
        if count > limits.max_entries {
            return Err(self.limit(LimitExceeded::Entries {
                count,
                max: limits.max_entries,
            }));
        }
        self.cd_offset = cd_offset;

        // Parse the central directory through a buffered bounded reader.
        let raw = PackRangeReader::new(self.file.clone(), cd_offset, cd_size);
        let mut r = BufReader::with_capacity(
            usize::try_from(cd_size.clamp(4096, 1 << 20)).unwrap_or(1 << 20),
            raw,
        );
        let mut entries = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(1 << 24));
        let mut fixed = [0u8; CENTRAL_LEN];
        let mut var = Vec::new();
        for i in 0..count {
            r.read_exact(&mut fixed)
                .map_err(|_| self.malformed(ZipProblem::DirectoryEnds(i)))?;
            if u32_at(&fixed, 0) != SIG_CENTRAL {
                return Err(self.malformed(ZipProblem::BadRecord(i)));
            }
            let nlen = usize::from(u16_at(&fixed, 28));
            let xlen = usize::from(u16_at(&fixed, 30));
            let clen = usize::from(u16_at(&fixed, 32));
            var.resize(nlen + xlen + clen, 0);
            r.read_exact(&mut var)
                .map_err(|_| self.malformed(ZipProblem::DirectoryEndsInside(i)))?;
            let name_bytes = &var[..nlen];
            let extra = &var[nlen..nlen + xlen];
            let mut usize_ = u64::from(u32_at(&fixed, 24));
            let mut csize = u64::from(u32_at(&fixed, 20));
            let mut offset = u64::from(u32_at(&fixed, 42));
            let disk = u16_at(&fixed, 34);
            let z64 = Zip64Extra::find(extra);
            let zip64_central = z64.is_some();
            if usize_ == ZIP64_LIMIT || csize == ZIP64_LIMIT || offset == ZIP64_LIMIT {
                let mut z = z64.ok_or_else(|| {
                    self.malformed(ZipProblem::Zip64ExtraMissing(
                        String::from_utf8_lossy(name_bytes).into_owned(),
                    ))
                })?;
                let missing = || {
                    self.malformed(ZipProblem::Zip64ExtraShort(
                        String::from_utf8_lossy(name_bytes).into_owned(),
                    ))
                };
                if usize_ == ZIP64_LIMIT {
                    usize_ = z.next().ok_or_else(missing)?;
                }
                if csize == ZIP64_LIMIT {
                    csize = z.next().ok_or_else(missing)?;
                }
                if offset == ZIP64_LIMIT {
                    offset = z.next().ok_or_else(missing)?;
                }
            }
            if disk != 0 && u64::from(disk) != ZIP64_COUNT_LIMIT {
                return Err(self.unsupported(NotSupported::MultiDisk));
            }
            let name = EntryName::from_bytes(name_bytes);
            entries.push(Entry {
                name,
                method: u16_at(&fixed, 10),
                flags: u16_at(&fixed, 8),
                crc32: u32_at(&fixed, 16),
                csize,
                usize: usize_,
                header_offset: offset,
                data_offset: 0,
                data_limit: 0,
                zip64_central,
                zip64_local: false,
            });
        }
        // Names must be unique: one entry would shadow another (zipfile reads the last one).
        // Repository keys are sorted by value on both cores (at a million entries, sorting
        // references to the names was a third of a second); a name maps to one variant only.
        let mut keys: Vec<ObjectKey> = Vec::new();
        let mut others: Vec<&str> = Vec::new();
        for e in &entries {
            match &e.name {
                EntryName::Repo(k) => keys.push(*k),
                EntryName::Other(s) => others.push(s),
            }
        }
        keys.par_sort_unstable();
        others.sort_unstable();
        let dup = keys
            .windows(2)
            .find(|w| w[0] == w[1])
            .map(|w| EntryName::Repo(w[0]).as_str().into_owned())
            .or_else(|| {
                others
                    .windows(2)
                    .find(|w| w[0] == w[1])
                    .map(|w| w[0].to_string())
            });
        if let Some(name) = dup {
            return Err(self.malformed(ZipProblem::DuplicateName(name)));
        }
        drop((keys, others));
        self.entries = entries;
        Ok(())
    }

    /// Read every local header (in parallel): data offsets, and consistency with the central
    /// directory.
    fn resolve_local_headers(&mut self) -> Result<()> {
        let me = &*self;
        let resolved: Vec<(u64, bool)> = me
            .entries
            .par_iter()
            .map(|e| me.resolve_entry(e))
            .collect::<Result<_>>()?;
        for (e, (data_offset, z64)) in self.entries.iter_mut().zip(resolved) {
            e.data_offset = data_offset;
            e.zip64_local = z64;
        }
        Ok(())
    }

    /// Read and check an entry's local header: where its data starts (which must leave room
    /// for its compressed size before `data_limit`), and whether it has a zip64 extra field.
    fn resolve_entry(&self, e: &Entry) -> Result<(u64, bool)> {
        // The name as text only for messages (formatting it allocates).
        let name = || e.name.as_str().into_owned();
        if e.header_offset
            .checked_add(LOCAL_LEN as u64)
            .is_none_or(|x| x > self.cd_offset)
        {
            return Err(self.malformed(ZipProblem::LocalHeaderOutside {
                name: name(),
                offset: e.header_offset,
            }));
        }
        // One read for the header, the name (as long as the central one) and a likely
        // extra field; a second one only when the local extra field is longer.
        let guess = (LOCAL_LEN + e.name.byte_len() + LOCAL_EXTRA_GUESS) as u64;
        let first = guess.min(self.cd_offset - e.header_offset) as usize;
        let mut small = [0u8; 160];
        let mut big = Vec::new();
        let h: &mut [u8] = if first <= small.len() {
            &mut small[..first]
        } else {
            big.resize(first, 0);
            &mut big
        };
        self.read_exact_at(e.header_offset, h)?;
        let mut h: Cow<'_, [u8]> = Cow::Borrowed(&*h);
        if u32_at(&h, 0) != SIG_LOCAL {
            return Err(self.malformed(ZipProblem::NoLocalHeader {
                name: name(),
                offset: e.header_offset,
            }));
        }
        if u16_at(&h, 8) != e.method {
            return Err(self.malformed(ZipProblem::MethodDisagrees(name())));
        }
        let nlen = u16_at(&h, 26) as usize;
        let xlen = u16_at(&h, 28) as usize;
        if LOCAL_LEN + nlen + xlen > h.len() {
            let more = self.read_at(
                e.header_offset + h.len() as u64,
                LOCAL_LEN + nlen + xlen - h.len(),
            )?;
            h.to_mut().extend(more);
        }
        let var = &h[LOCAL_LEN..LOCAL_LEN + nlen + xlen];
        if EntryName::from_bytes(&var[..nlen]) != e.name {
            return Err(self.malformed(ZipProblem::LocalNameDiffers {
                name: name(),
                local: String::from_utf8_lossy(&var[..nlen]).into_owned(),
            }));
        }
        let zip64_local = Zip64Extra::find(&var[nlen..]).is_some();
        let data_offset = e.header_offset + (LOCAL_LEN + nlen + xlen) as u64;
        self.check_data_end(e, DataStart::At(data_offset))?;
        Ok((data_offset, zip64_local))
    }

    /// The entry's data, starting at `start` (or, before its local header was read, right
    /// after a local header with no name or extra field at least: the bound checkable from the
    /// central directory), must end by its `data_limit`.
    fn check_data_end(&self, e: &Entry, start: DataStart) -> Result<()> {
        let first = match start {
            DataStart::At(o) => Some(o),
            DataStart::AfterLocalHeader(h) => h.checked_add(LOCAL_LEN as u64),
        };
        if first
            .and_then(|s| s.checked_add(e.csize))
            .is_some_and(|end| end <= e.data_limit)
        {
            return Ok(());
        }
        // The name as text only for the message (formatting it allocates).
        let name = e.name.as_str().into_owned();
        Err(self.malformed(if e.data_limit >= self.cd_offset {
            ZipProblem::DataPastEnd {
                name,
                csize: e.csize,
                start,
            }
        } else {
            ZipProblem::DataOverlaps {
                name,
                csize: e.csize,
                start,
                next: e.data_limit,
            }
        }))
    }

    /// Where an entry's data starts (reading its local header if not done yet).
    pub fn data_offset(&self, e: &Entry) -> Result<u64> {
        if e.data_offset != 0 {
            return Ok(e.data_offset);
        }
        Ok(self.resolve_entry(e)?.0)
    }

    fn check_layout(&mut self, limits: &Limits) -> Result<()> {
        // Each entry's data must end before the next local header in the file (entries that
        // overlap are a classic zip-bomb construction), the last one before the central
        // directory.
        let mut order: Vec<usize> = (0..self.entries.len()).collect();
        if !order.is_sorted_by_key(|&i| self.entries[i].header_offset) {
            let entries = &self.entries;
            order.par_sort_unstable_by_key(|&i| entries[i].header_offset);
        }
        for w in 0..order.len() {
            let limit = order
                .get(w + 1)
                .map_or(self.cd_offset, |&j| self.entries[j].header_offset);
            self.entries[order[w]].data_limit = limit;
        }
        let mut total = 0u64;
        for e in &self.entries {
            // The name as text only for messages (formatting it allocates).
            let name = || e.name.as_str().into_owned();
            // A local header and the data after it must fit before the next local header (the
            // exact check, with the local header's own lengths, is made when it is read).
            self.check_data_end(e, DataStart::AfterLocalHeader(e.header_offset))?;
            if e.usize > limits.max_entry_size {
                return Err(self.limit(LimitExceeded::EntrySize {
                    name: name(),
                    size: e.usize,
                    max: limits.max_entry_size,
                }));
            }
            if e.method == METHOD_STORED && e.csize != e.usize && !e.encrypted() {
                return Err(self.malformed(ZipProblem::StoredSizesDiffer {
                    name: name(),
                    csize: e.csize,
                    size: e.usize,
                }));
            }
            if e.method == METHOD_DEFLATE
                && e.usize > 0
                && (e.csize == 0 || e.usize / e.csize > limits.max_ratio)
            {
                return Err(self.limit(LimitExceeded::Ratio {
                    name: name(),
                    size: e.usize,
                    csize: e.csize,
                    max: limits.max_ratio,
                }));
            }
            total = total.saturating_add(e.usize);
        }
        if total > limits.max_total_size {
            return Err(self.limit(LimitExceeded::Total {
                total,
                max: limits.max_total_size,
            }));
        }
        Ok(())
    }

    /// A reader of an entry's stored (compressed) bytes.
    pub fn raw_reader(&self, e: &Entry) -> Result<PackRangeReader> {
        Ok(PackRangeReader::new(
            self.file.clone(),
            self.data_offset(e)?,
            e.csize,
        ))
    }

    /// Read an entry's stored bytes into `buf` (exactly `csize` bytes long).
    pub fn read_raw_into(&self, e: &Entry, buf: &mut [u8]) -> Result<()> {
        let at = self.data_offset(e)?;
        read_exact_at(&self.file, buf, at).map_err(|err| {
            if err.kind() == io::ErrorKind::UnexpectedEof {
                self.malformed(ZipProblem::TruncatedEntry(e.name.as_str().into_owned()))
            } else {
                ArchiveError::io(&self.path, "read", err)
            }
        })
    }

    /// Read an entry's stored bytes whole.
    pub fn read_raw(&self, e: &Entry) -> Result<Vec<u8>> {
        self.read_at(
            self.data_offset(e)?,
            usize::try_from(e.csize).unwrap_or(usize::MAX),
        )
    }

    /// A streaming reader of an entry's content that checks size and CRC-32 at the end (an
    /// `InvalidData` error if they do not match) and never yields more than the declared size.
    pub fn entry_reader(&self, e: &Entry) -> Result<EntryReader> {
        if let Some(why) = e.unsupported() {
            return Err(self.unsupported(NotSupported::Entry {
                name: e.name.as_str().into_owned(),
                why,
            }));
        }
        let raw = BufReader::with_capacity(256 * 1024, self.raw_reader(e)?);
        let inner: Box<dyn Read + Send> = if e.method == METHOD_DEFLATE {
            Box::new(DeflateDecoder::new(raw))
        } else {
            Box::new(raw)
        };
        Ok(EntryReader {
            inner,
            name: e.name.as_str().into_owned(),
            expected: e.usize,
            crc: e.crc32,
            hasher: crc32fast::Hasher::new(),
            produced: 0,
            done: false,
        })
    }

    /// Read a (small) entry's content whole, verified.
    pub fn read_entry(&self, e: &Entry) -> Result<Vec<u8>> {
        let mut r = self.entry_reader(e)?;
        let mut v = Vec::with_capacity(usize::try_from(e.usize).unwrap_or(0).min(1 << 30));
        r.read_to_end(&mut v)
            .map_err(|source| ArchiveError::Content {
                path: self.path.clone(),
                problem: ContentProblem::EntryRead {
                    name: e.name.as_str().into_owned(),
                    source,
                },
            })?;
        Ok(v)
    }

    /// The entry with this exact name.
    pub fn find(&self, name: &str) -> Option<&Entry> {
        let want = EntryName::from_bytes(name.as_bytes());
        self.entries.iter().find(|e| e.name == want)
    }
}

/// A verified streaming reader of one entry (see [`ZipArchive::entry_reader`]).
pub struct EntryReader {
    inner: Box<dyn Read + Send>,
    name: String,
    expected: u64,
    crc: u32,
    hasher: crc32fast::Hasher,
    produced: u64,
    done: bool,
}

impl Read for EntryReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let left = self.expected - self.produced;
        if left == 0 {
            // Declared end: the stream must end here, and the checksum must match.
            let mut probe = [0u8; 1];
            let extra = self
                .inner
                .read(&mut probe)
                .map_err(|e| bad(&self.name, e))?;
            self.done = true;
            if extra > 0 {
                return Err(invalid(format!(
                    "entry {} inflates past its declared size of {} bytes",
                    self.name, self.expected
                )));
            }
            let crc = std::mem::take(&mut self.hasher).finalize();
            if crc != self.crc {
                return Err(invalid(format!(
                    "entry {}: bad CRC-32 (computed {crc:08x}, declared {:08x})",
                    self.name, self.crc
                )));
            }
            return Ok(0);
        }
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let got = self
            .inner
            .read(&mut buf[..n])
            .map_err(|e| bad(&self.name, e))?;
        if got == 0 {
            self.done = true;
            return Err(invalid(format!(
                "entry {} ends after {} of its declared {} bytes",
                self.name, self.produced, self.expected
            )));
        }
        self.hasher.update(&buf[..got]);
        self.produced += got as u64;
        Ok(got)
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn bad(name: &str, e: io::Error) -> io::Error {
    invalid(format!("entry {name}: {e}"))
}
