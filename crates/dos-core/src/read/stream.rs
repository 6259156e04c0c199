//! Streaming object readers: a bounded reader over a pack range, a seekable zlib reader, and
//! plain loose files, behind one [`ObjectReader`] type implementing `Read + Seek`.
//!
//! Seeking in a compressed object never writes anything to disk (Python materialises a loose copy
//! for many seeks) and costs a bounded amount of decoding whatever the object's size: a zlib
//! object resumes from the nearest point its reader recorded (see [`crate::codec::zlib_points`]),
//! a multi-frame zstd object from the start of the frame holding the target (see
//! [`crate::codec::zst`]). `SeekFrom::End` uses the uncompressed size recorded in the index.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};

use crate::codec::zlib_points::ZlibSeekReader;
use crate::codec::zst::{self, ZstdSeekReader};
use crate::fileio::read_at;
pub use crate::fileio::read_exact_at;
use crate::remote::{PackData, RemotePackReader};

fn resolve_seek(pos: SeekFrom, current: u64, len: u64) -> io::Result<u64> {
    let target = match pos {
        SeekFrom::Start(n) => i128::from(n),
        SeekFrom::Current(d) => i128::from(current) + i128::from(d),
        SeekFrom::End(d) => i128::from(len) + i128::from(d),
    };
    if target < 0 || target > i128::from(len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("seek to {target} outside the object (0..={len})"),
        ));
    }
    Ok(u64::try_from(target).unwrap_or(len))
}

/// A reader of `length` bytes at `offset` of a pack (a local file or a remote object). Never
/// reads outside that range.
#[derive(Debug, Clone)]
pub struct PackRangeReader {
    data: PackData,
    offset: u64,
    length: u64,
    pos: u64,
    /// Read-ahead of a remote pack (unused for a local one), maybe shared with other readers
    /// of the same pack.
    remote: Arc<Mutex<RemotePackReader>>,
    /// How far the read-ahead may fetch: the object's end, or the pack's when shared.
    window_end: u64,
}

impl PackRangeReader {
    /// A reader of the range `[offset, offset + length)` of `file`.
    pub fn new(file: Arc<File>, offset: u64, length: u64) -> Self {
        Self::over(PackData::Local(file), offset, length)
    }

    /// A reader of the range `[offset, offset + length)` of a pack, local or remote.
    pub fn over(data: PackData, offset: u64, length: u64) -> Self {
        Self {
            data,
            offset,
            length,
            pos: 0,
            remote: Arc::default(),
            window_end: offset.saturating_add(length),
        }
    }

    /// A reader of the range `[offset, offset + length)` of a pack whose read-ahead is
    /// `shared` with the other readers of that pack, and may fetch up to `window_end` (the
    /// pack's length): readers of consecutive small objects then share GETs.
    pub fn over_shared(
        data: PackData,
        shared: Arc<Mutex<RemotePackReader>>,
        window_end: u64,
        offset: u64,
        length: u64,
    ) -> Self {
        Self {
            data,
            offset,
            length,
            pos: 0,
            remote: shared,
            window_end: window_end.max(offset.saturating_add(length)),
        }
    }

    /// Length of the range.
    pub fn len(&self) -> u64 {
        self.length
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }
}

impl Read for PackRangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.length - self.pos;
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let at = self.offset + self.pos;
        let got = match &self.data {
            PackData::Local(file) => read_at(file, &mut buf[..n], at)?,
            PackData::Remote(_) => self.remote.lock().unwrap_or_else(|p| p.into_inner()).read(
                &self.data,
                &mut buf[..n],
                at,
                self.window_end,
            )?,
        };
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "pack file ends at {} inside an object that should end at {}",
                    self.offset + self.pos,
                    self.offset + self.length
                ),
            ));
        }
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for PackRangeReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = resolve_seek(pos, self.pos, self.length)?;
        Ok(self.pos)
    }
}

/// A seekable reader of one compressed object (a zlib stream or zstd frames, told apart by their
/// first bytes) in a pack, yielding exactly the `size` the index records.
pub struct CompressedReader {
    stage: Stage,
    size: u64,
    pos: u64,
}

enum Stage {
    /// Before the first read: the codec is not known yet.
    Fresh(PackRangeReader),
    Zlib(Box<ZlibSeekReader<PackRangeReader>>),
    Zstd(Box<ZstdSeekReader<PackRangeReader>>),
    /// After an error that lost the source.
    Poisoned,
}

impl std::fmt::Debug for CompressedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompressedReader")
            .field("size", &self.size)
            .field("pos", &self.pos)
            .finish()
    }
}

impl CompressedReader {
    /// Wrap the compressed range; `size` is the uncompressed size from the index.
    pub fn new(raw: PackRangeReader, size: u64) -> Self {
        Self {
            stage: Stage::Fresh(raw),
            size,
            pos: 0,
        }
    }

    /// Bytes decoded so far, seeks included: what reading and seeking this object cost.
    pub fn decoded(&self) -> u64 {
        match &self.stage {
            Stage::Zlib(r) => r.decoded(),
            Stage::Zstd(r) => r.decoded(),
            Stage::Fresh(_) | Stage::Poisoned => 0,
        }
    }

    /// Tell the codec from the first bytes and set up its reader.
    fn start(&mut self) -> io::Result<()> {
        if !matches!(self.stage, Stage::Fresh(_)) {
            return Ok(());
        }
        let Stage::Fresh(mut raw) = std::mem::replace(&mut self.stage, Stage::Poisoned) else {
            return Err(poisoned());
        };
        let mut head = [0u8; 4];
        let mut got = 0;
        while got < head.len() {
            match raw.read(&mut head[got..])? {
                0 => break,
                n => got += n,
            }
        }
        raw.seek(SeekFrom::Start(0))?;
        self.stage = if zst::is_zstd(&head[..got]) {
            let len = raw.len();
            Stage::Zstd(Box::new(ZstdSeekReader::new(raw, len, self.size)?))
        } else {
            Stage::Zlib(Box::new(ZlibSeekReader::new(raw, self.size)?))
        };
        Ok(())
    }

    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.start()?;
        match &mut self.stage {
            Stage::Zlib(r) => r.read_some(buf),
            Stage::Zstd(r) => r.read_some(buf),
            Stage::Fresh(_) | Stage::Poisoned => Err(poisoned()),
        }
    }
}

fn poisoned() -> io::Error {
    io::Error::other("reader poisoned by an earlier error")
}

impl Read for CompressedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.size - self.pos;
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let got = self.read_some(&mut buf[..n]).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                e
            } else {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("corrupt compressed stream: {e}"),
                )
            }
        })?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "compressed stream ends after {} of {} bytes",
                    self.pos, self.size
                ),
            ));
        }
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for CompressedReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = resolve_seek(pos, self.pos, self.size)?;
        if target == self.pos {
            return Ok(self.pos);
        }
        self.start()?;
        let at = match &mut self.stage {
            Stage::Zlib(r) => {
                r.seek_to(target)?;
                r.position()
            }
            Stage::Zstd(r) => {
                r.seek_to(target)?;
                r.position()
            }
            Stage::Fresh(_) | Stage::Poisoned => return Err(poisoned()),
        };
        self.pos = at;
        if at < target {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("compressed stream ends after {at} of {} bytes", self.size),
            ));
        }
        Ok(self.pos)
    }
}

/// A reader of one object, whatever its storage.
#[derive(Debug)]
pub enum ObjectReader {
    /// A loose file.
    Loose(File),
    /// Raw bytes in a pack.
    Packed(PackRangeReader),
    /// A compressed object in a pack.
    Compressed(Box<CompressedReader>),
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ObjectReader::Loose(f) => f.read(buf),
            ObjectReader::Packed(r) => r.read(buf),
            ObjectReader::Compressed(r) => r.read(buf),
        }
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match self {
            ObjectReader::Loose(f) => f.seek(pos),
            ObjectReader::Packed(r) => r.seek(pos),
            ObjectReader::Compressed(r) => r.seek(pos),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Compressor, ZlibLevel};
    use std::io::Write;

    fn pack_with(parts: &[&[u8]]) -> (tempfile::NamedTempFile, Vec<(u64, u64)>) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let mut ranges = Vec::new();
        let mut off = 0;
        for p in parts {
            f.write_all(p).unwrap();
            ranges.push((off, p.len() as u64));
            off += p.len() as u64;
        }
        (f, ranges)
    }

    #[test]
    fn range_reader_is_bounded_and_seekable() {
        let (f, r) = pack_with(&[b"AAAA", b"hello world", b"BBBB"]);
        let file = Arc::new(File::open(f.path()).unwrap());
        let mut rr = PackRangeReader::new(file.clone(), r[1].0, r[1].1);
        let mut s = String::new();
        rr.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello world");
        assert_eq!(rr.seek(SeekFrom::End(-5)).unwrap(), 6);
        s.clear();
        rr.read_to_string(&mut s).unwrap();
        assert_eq!(s, "world");
        assert!(rr.seek(SeekFrom::Start(12)).is_err());
        assert!(rr.seek(SeekFrom::Current(-100)).is_err());
        // A range past the end of the file is an error, not silent truncation.
        let mut bad = PackRangeReader::new(file, 10, 100);
        assert_eq!(
            bad.read_to_end(&mut Vec::new()).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn zlib_reader_seeks_without_materialising() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let z = Compressor::new(ZlibLevel::new(1).unwrap()).compress(&data);
        let (f, r) = pack_with(&[b"xx", &z, b"yy"]);
        let file = Arc::new(File::open(f.path()).unwrap());
        let mut zr = CompressedReader::new(
            PackRangeReader::new(file, r[1].0, r[1].1),
            data.len() as u64,
        );
        let mut buf = [0u8; 10];
        zr.seek(SeekFrom::Start(5000)).unwrap();
        zr.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, &data[5000..5010]);
        zr.seek(SeekFrom::Current(1)).unwrap(); // small forward relative seek
        zr.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, &data[5011..5021]);
        zr.seek(SeekFrom::Start(3)).unwrap(); // backwards
        zr.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, &data[3..13]);
        assert_eq!(zr.seek(SeekFrom::End(-10)).unwrap(), data.len() as u64 - 10);
        let mut tail = Vec::new();
        zr.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, &data[data.len() - 10..]);
        assert!(zr.seek(SeekFrom::End(1)).is_err());
    }

    /// Random seeks (from the start, the current position and the end) and reads of random
    /// sizes agree with the data, for zlib and zstd objects of many frames, and each costs at
    /// most about one spacing or frame of decoding.
    #[test]
    fn compressed_reader_agrees_with_a_model_under_random_seeks() {
        use crate::codec::{Compression, ZstdLevel};
        let data: Vec<u8> = (0..5_000_000u64)
            .map(|i| {
                if (i * 2654435761) % 11 < 2 {
                    ((i * 7919) >> 5) as u8
                } else {
                    (i % 61) as u8
                }
            })
            .collect();
        for c in [
            Compression::Zlib(ZlibLevel::new(1).unwrap()),
            Compression::Zlib(ZlibLevel::new(9).unwrap()),
            Compression::Zstd(ZstdLevel::new(3).unwrap()),
        ] {
            let z = Compressor::new(c).compress(&data);
            let (f, r) = pack_with(&[b"head", &z, b"tail"]);
            let file = Arc::new(File::open(f.path()).unwrap());
            let mut zr = CompressedReader::new(
                PackRangeReader::new(file, r[1].0, r[1].1),
                data.len() as u64,
            );
            let len = data.len() as i64;
            // The first pass to the end records the points (zlib has no index to start from).
            let mut pos = zr.seek(SeekFrom::End(0)).unwrap() as i64;
            let mut x: u64 = 31;
            let mut worst = 0;
            for step in 0..400 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let how = match step % 3 {
                    0 => SeekFrom::Start((x >> 20) % data.len() as u64),
                    1 => SeekFrom::Current(((x >> 20) % 400_000) as i64 - 200_000),
                    _ => SeekFrom::End(-(((x >> 20) % 300_000) as i64)),
                };
                let expect = match how {
                    SeekFrom::Start(n) => n as i64,
                    SeekFrom::Current(d) => pos + d,
                    SeekFrom::End(d) => len + d,
                };
                if !(0..=len).contains(&expect) {
                    assert!(zr.seek(how).is_err());
                    continue;
                }
                let before = zr.decoded();
                pos = zr.seek(how).unwrap() as i64;
                assert_eq!(pos, expect);
                let mut buf = vec![0u8; ((x >> 8) % 5000) as usize];
                let n = zr.read(&mut buf).unwrap();
                let end = (pos as usize + buf.len()).min(data.len());
                assert!(n > 0 || pos == len);
                assert_eq!(&buf[..n], &data[pos as usize..pos as usize + n]);
                assert!(pos as usize + n <= end);
                pos += n as i64;
                worst = worst.max(zr.decoded() - before);
            }
            assert!(
                worst <= 600 * 1024 + 5000
                    || matches!(c, Compression::Zstd(_)) && worst <= (1 << 20) + 5000,
                "{c:?}: {worst}"
            );
        }
    }
}
