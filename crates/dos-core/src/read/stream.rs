//! Streaming object readers: a bounded reader over a pack range, a seekable zlib reader, and
//! plain loose files, behind one [`ObjectReader`] type implementing `Read + Seek`.
//!
//! Seeking in a compressed object never writes anything to disk (Python materialises a loose copy
//! for many seeks): a forward seek decodes and discards, a backward seek restarts the stream, and
//! `SeekFrom::End` uses the uncompressed size recorded in the index.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::sync::Arc;

use crate::codec::Decoder;
use crate::fileio::read_at;
pub use crate::fileio::read_exact_at;

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

/// A reader of `length` bytes at `offset` of a pack file. Never reads outside that range.
#[derive(Debug, Clone)]
pub struct PackRangeReader {
    file: Arc<File>,
    offset: u64,
    length: u64,
    pos: u64,
}

impl PackRangeReader {
    /// A reader of the range `[offset, offset + length)` of `file`.
    pub fn new(file: Arc<File>, offset: u64, length: u64) -> Self {
        Self {
            file,
            offset,
            length,
            pos: 0,
        }
    }
}

impl Read for PackRangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.length - self.pos;
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let got = read_at(&self.file, &mut buf[..n], self.offset + self.pos)?;
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

/// Buffer size between the pack and the inflater.
const ZBUF: usize = 256 * 1024;

/// A seekable reader of one compressed object (a zlib stream or zstd frames, told apart by their
/// first bytes) in a pack, yielding exactly the `size` the index records.
pub struct CompressedReader {
    stage: Stage,
    size: u64,
    pos: u64,
}

enum Stage {
    /// Before the first read: the codec is not known yet.
    Fresh(BufReader<PackRangeReader>),
    Decoding(Decoder<BufReader<PackRangeReader>>),
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
            stage: Stage::Fresh(BufReader::with_capacity(ZBUF, raw)),
            size,
            pos: 0,
        }
    }

    fn restart(&mut self) -> io::Result<()> {
        let mut inner = match std::mem::replace(&mut self.stage, Stage::Poisoned) {
            Stage::Fresh(r) => r,
            Stage::Decoding(d) => d.into_inner(),
            Stage::Poisoned => return Err(poisoned()),
        };
        inner.seek(SeekFrom::Start(0))?;
        self.stage = Stage::Fresh(inner);
        self.pos = 0;
        Ok(())
    }

    fn decoder(&mut self) -> io::Result<&mut Decoder<BufReader<PackRangeReader>>> {
        if let Stage::Fresh(_) = self.stage {
            let Stage::Fresh(r) = std::mem::replace(&mut self.stage, Stage::Poisoned) else {
                return Err(poisoned());
            };
            self.stage = Stage::Decoding(Decoder::new(r)?);
        }
        match &mut self.stage {
            Stage::Decoding(d) => Ok(d),
            _ => Err(poisoned()),
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
        let got = self.decoder()?.read(&mut buf[..n]).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("corrupt compressed stream: {e}"),
            )
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
        if target < self.pos {
            self.restart()?;
        }
        let mut skip = target - self.pos;
        let mut scratch = [0u8; 16 * 1024];
        while skip > 0 {
            let n = usize::try_from(skip)
                .unwrap_or(usize::MAX)
                .min(scratch.len());
            let got = self.read(&mut scratch[..n])?;
            skip -= got as u64;
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
}
