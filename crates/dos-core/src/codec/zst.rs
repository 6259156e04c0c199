//! zstd (RFC 8878) frames, the opt-in coding of compressed packed objects (`zstd+N`): whole-buffer
//! coders with reused contexts, and streaming ones. Python disk-objectstore cannot read them.
//!
//! An object of more than [`FRAME_CONTENT`] bytes is written as independent frames of that much
//! content each, followed by a seek table in zstd's seekable format (a skippable frame, which
//! every zstd decoder passes over): [`ZstdSeekReader`] then reaches any offset by decoding at
//! most one frame. Objects of one frame carry no table.

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};

use super::{InflateError, ZstdLevel};

/// The first four bytes of every zstd frame (little-endian 0xFD2FB528). A zlib stream never
/// starts with them: `0x28 0xB5` fails zlib's header check (`(CMF * 256 + FLG) % 31 == 0`).
pub const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Whether `head` (the first bytes of a compressed object) starts a zstd frame.
pub fn is_zstd(head: &[u8]) -> bool {
    head.starts_with(&MAGIC)
}

/// Uncompressed bytes per frame of a multi-frame object.
pub const FRAME_CONTENT: usize = 1 << 20;

/// Magic number of the skippable frame that holds the seek table (little-endian).
const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
/// Magic number that ends a seek table (little-endian).
const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
/// Bytes of the table's footer: frame count, descriptor, magic.
const FOOTER: u64 = 9;

/// Compressed and uncompressed sizes of the frames written so far, written out as a seek table.
#[derive(Default)]
struct SeekTable(Vec<(u32, u32)>);

impl SeekTable {
    fn push(&mut self, compressed: usize, content: usize) {
        // Frames hold at most FRAME_CONTENT bytes, so both sizes fit.
        self.0.push((
            u32::try_from(compressed).unwrap_or(u32::MAX),
            u32::try_from(content).unwrap_or(u32::MAX),
        ));
    }

    /// The skippable frame: header, one entry per frame (no checksums), footer.
    fn write_into(&self, out: &mut Vec<u8>) {
        let body = self.0.len() * 8 + FOOTER as usize;
        out.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
        out.extend_from_slice(&u32::try_from(body).unwrap_or(u32::MAX).to_le_bytes());
        for (c, d) in &self.0 {
            out.extend_from_slice(&c.to_le_bytes());
            out.extend_from_slice(&d.to_le_bytes());
        }
        let frames = u32::try_from(self.0.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&frames.to_le_bytes());
        out.push(0);
        out.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
    }
}

/// A reusable whole-buffer zstd compressor.
pub struct ZstdCompressor {
    inner: Option<zstd::bulk::Compressor<'static>>,
    level: ZstdLevel,
    /// zstd writes a `Vec` destination from its start: frames are made here, then appended.
    scratch: Vec<u8>,
}

impl ZstdCompressor {
    /// A compressor for `level`.
    pub fn new(level: ZstdLevel) -> Self {
        Self {
            inner: zstd::bulk::Compressor::new(level.level()).ok(),
            level,
            scratch: Vec::new(),
        }
    }

    /// Compress `input` as one zstd frame (with its content size), or, if it holds more than
    /// [`FRAME_CONTENT`] bytes, as frames of that size and a seek table; appends to `out`.
    pub fn compress_into(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if input.len() <= FRAME_CONTENT {
            return self.frame_into(input, out);
        }
        let mut table = SeekTable::default();
        for chunk in input.chunks(FRAME_CONTENT) {
            let before = out.len();
            self.frame_into(chunk, out);
            table.push(out.len() - before, chunk.len());
        }
        table.write_into(out);
    }

    /// Compress `input` as one zstd frame with its content size.
    fn frame_into(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let bound = zstd::zstd_safe::compress_bound(input.len());
        self.scratch.clear();
        self.scratch.reserve(bound);
        if let Some(c) = &mut self.inner
            && c.compress_to_buffer(input, &mut self.scratch).is_ok()
        {
            out.extend_from_slice(&self.scratch);
            return;
        }
        // Not expected (the output has zstd's worst-case room): a fresh context, and the
        // simple API, which allocates its own.
        self.inner = zstd::bulk::Compressor::new(self.level.level()).ok();
        match zstd::bulk::compress(input, self.level.level()) {
            Ok(v) => out.extend_from_slice(&v),
            // Only allocation failure remains; zstd then has no way to compress at all.
            Err(e) => panic!("zstd cannot compress {} bytes: {e}", input.len()),
        }
    }
}

/// A reusable whole-buffer zstd decompressor.
#[derive(Default)]
pub struct ZstdDecompressor {
    inner: Option<zstd::bulk::Decompressor<'static>>,
}

impl ZstdDecompressor {
    /// Decode `input`, one or more zstd frames (skippable frames are passed over) of exactly
    /// `expected` bytes in all, into `out` (cleared first), allocating at most `expected + 1`
    /// bytes. Bytes after the last frame are an error (zstd has no way to tell them apart from
    /// a damaged frame).
    pub fn inflate_exact(
        &mut self,
        input: &[u8],
        expected: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), InflateError> {
        let cap = usize::try_from(expected)
            .ok()
            .and_then(|e| e.checked_add(1))
            .ok_or(InflateError::TooLong { expected })?;
        if let Ok(Some(declared)) = zstd::zstd_safe::get_frame_content_size(input)
            && declared > expected
        {
            return Err(InflateError::TooLong { expected });
        }
        out.clear();
        if out.capacity() > cap.saturating_mul(4).max(1 << 20) {
            *out = Vec::new();
        }
        out.reserve_exact(cap);
        if self.inner.is_none() {
            self.inner = zstd::bulk::Decompressor::new().ok();
        }
        let Some(d) = &mut self.inner else {
            return Err(InflateError::Invalid(
                "cannot allocate a zstd decoder".into(),
            ));
        };
        match d.decompress_to_buffer(input, out) {
            Ok(n) if n as u64 == expected => Ok(()),
            Ok(n) if (n as u64) < expected => Err(InflateError::TooShort {
                expected,
                actual: n as u64,
            }),
            Ok(_) => {
                out.clear();
                Err(InflateError::TooLong { expected })
            }
            Err(e) => {
                out.clear();
                // The room is `expected + 1`: a frame that needs more decodes to too much.
                if e.to_string().contains("too small") {
                    Err(InflateError::TooLong { expected })
                } else {
                    Err(InflateError::Invalid(format!("zstd: {e}")))
                }
            }
        }
    }
}

/// A streaming zstd encoder into `W`: the object's bytes cut into frames of [`FRAME_CONTENT`]
/// bytes, with a seek table after them when there is more than one (as
/// [`ZstdCompressor::compress_into`] writes them).
pub struct ZstdEncoder<W: Write> {
    sink: W,
    compressor: ZstdCompressor,
    pending: Vec<u8>,
    out: Vec<u8>,
    table: SeekTable,
}

impl<W: Write> ZstdEncoder<W> {
    /// An encoder at `level` into `sink`.
    pub fn new(sink: W, level: ZstdLevel) -> io::Result<Self> {
        Ok(Self {
            sink,
            compressor: ZstdCompressor::new(level),
            pending: Vec::with_capacity(FRAME_CONTENT),
            out: Vec::new(),
            table: SeekTable::default(),
        })
    }

    /// Compress the pending bytes as one frame and write it.
    fn emit_frame(&mut self) -> io::Result<()> {
        self.out.clear();
        self.compressor.frame_into(&self.pending, &mut self.out);
        self.sink.write_all(&self.out)?;
        self.table.push(self.out.len(), self.pending.len());
        self.pending.clear();
        Ok(())
    }

    /// Write the last frame (and the seek table if there are several) and return the sink.
    pub fn finish(mut self) -> io::Result<W> {
        if self.table.0.is_empty() || !self.pending.is_empty() {
            self.emit_frame()?;
        }
        if self.table.0.len() > 1 {
            self.out.clear();
            self.table.write_into(&mut self.out);
            self.sink.write_all(&self.out)?;
        }
        Ok(self.sink)
    }
}

impl<W: Write> Write for ZstdEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // A full frame is emitted only once more data follows, so an object of exactly one
        // frame's size stays a single frame, as in the whole-buffer coder.
        if self.pending.len() == FRAME_CONTENT {
            self.emit_frame()?;
        }
        let n = buf.len().min(FRAME_CONTENT - self.pending.len());
        self.pending.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}

/// A streaming zstd decoder over buffered compressed bytes (all frames, one after the other).
pub struct ZstdDecoder<R: BufRead>(zstd::stream::read::Decoder<'static, R>);

impl<R: BufRead> ZstdDecoder<R> {
    /// A decoder reading compressed bytes from `source`.
    pub fn new(source: R) -> io::Result<Self> {
        zstd::stream::read::Decoder::with_buffer(source).map(Self)
    }

    /// The source back.
    pub fn into_inner(self) -> R {
        self.0.finish()
    }
}

impl<R: BufRead> Read for ZstdDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

/// Where each frame of a multi-frame object starts: (compressed offset, uncompressed offset).
type Frames = Vec<(u64, u64)>;

fn le32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// The frames of the object in `src` (`len` compressed bytes holding `size` bytes) from its seek
/// table, each checked against the frame header it points at (magic and declared content
/// size), or `None` if it has no table or one that does not match the object.
fn read_seek_table<R: Read + Seek>(src: &mut R, len: u64, size: u64) -> io::Result<Option<Frames>> {
    if len < FOOTER + 8 {
        return Ok(None);
    }
    let mut footer = [0u8; FOOTER as usize];
    src.seek(SeekFrom::Start(len - FOOTER))?;
    src.read_exact(&mut footer)?;
    if le32(&footer[5..]) != SEEKABLE_MAGIC || footer[4] & 0x7C != 0 {
        return Ok(None);
    }
    let entry = if footer[4] & 0x80 != 0 { 12 } else { 8 };
    let count = u64::from(le32(&footer[..4]));
    let body = count * entry + FOOTER;
    let Some(start) = len.checked_sub(body + 8) else {
        return Ok(None);
    };
    let mut table = vec![0u8; usize::try_from(body + 8).unwrap_or(usize::MAX)];
    src.seek(SeekFrom::Start(start))?;
    src.read_exact(&mut table)?;
    if le32(&table) != SKIPPABLE_MAGIC || u64::from(le32(&table[4..])) != body {
        return Ok(None);
    }
    let mut frames = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let (mut c, mut u) = (0u64, 0u64);
    for e in table[8..8 + (count * entry) as usize].chunks_exact(entry as usize) {
        frames.push((c, u));
        c += u64::from(le32(e));
        u += u64::from(le32(&e[4..]));
    }
    if c != start || u != size {
        return Ok(None);
    }
    let mut header = [0u8; 18];
    for (i, &(c_off, u_off)) in frames.iter().enumerate() {
        let next_u = frames.get(i + 1).map_or(size, |f| f.1);
        let next_c = frames.get(i + 1).map_or(start, |f| f.0);
        let n = usize::try_from((next_c - c_off).min(18)).unwrap_or(18);
        src.seek(SeekFrom::Start(c_off))?;
        src.read_exact(&mut header[..n])?;
        let declared = zstd::zstd_safe::get_frame_content_size(&header[..n]);
        if !is_zstd(&header[..n]) || !matches!(declared, Ok(Some(d)) if d == next_u - u_off) {
            return Ok(None);
        }
    }
    Ok(Some(frames))
}

/// A seekable reader of one zstd-coded object read from `R`: with a seek table, a seek decodes
/// at most one frame; without one (an object of one frame), a backward seek starts over.
pub struct ZstdSeekReader<R: Read + Seek> {
    dec: Option<ZstdDecoder<BufReader<R>>>,
    frames: Frames,
    pos: u64,
    decoded: u64,
}

impl<R: Read + Seek> ZstdSeekReader<R> {
    /// A reader of the `len` compressed bytes of `src` (from its position 0) holding `size`
    /// bytes.
    pub fn new(mut src: R, len: u64, size: u64) -> io::Result<Self> {
        let frames = read_seek_table(&mut src, len, size)?.unwrap_or_else(|| vec![(0, 0)]);
        src.seek(SeekFrom::Start(0))?;
        let dec = ZstdDecoder::new(BufReader::with_capacity(128 * 1024, src))?;
        Ok(Self {
            dec: Some(dec),
            frames,
            pos: 0,
            decoded: 0,
        })
    }

    /// Bytes of output so far (the reader's position).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Frames found in the seek table (1 for an object without one).
    pub fn frames(&self) -> usize {
        self.frames.len()
    }

    /// Bytes decoded since the reader was made, seeks included.
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    fn decoder(&mut self) -> io::Result<&mut ZstdDecoder<BufReader<R>>> {
        self.dec
            .as_mut()
            .ok_or_else(|| io::Error::other("zstd reader lost its source after an error"))
    }

    /// Decode into `buf`; 0 at the end of the frames.
    pub fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.decoder()?.read(buf)?;
        self.pos += n as u64;
        self.decoded += n as u64;
        Ok(n)
    }

    /// Move to uncompressed offset `target`: to the start of its frame when that is ahead of
    /// the current position or the target is behind, then decode and discard up to it.
    pub fn seek_to(&mut self, target: u64) -> io::Result<()> {
        if target == self.pos {
            return Ok(());
        }
        let i = self
            .frames
            .partition_point(|f| f.1 <= target)
            .saturating_sub(1);
        let (c_off, u_off) = self.frames[i];
        if target < self.pos || u_off > self.pos {
            let dec = self
                .dec
                .take()
                .ok_or_else(|| io::Error::other("zstd reader lost its source"))?;
            let mut src = dec.into_inner();
            src.seek(SeekFrom::Start(c_off))?;
            self.dec = Some(ZstdDecoder::new(src)?);
            self.pos = u_off;
        }
        super::discard_until(self, target, Self::position, Self::read_some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn sample(n: usize) -> Vec<u8> {
        let mut x: u64 = 7;
        (0..n)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if (x >> 60) < 3 {
                    (x >> 32) as u8
                } else {
                    (i % 97) as u8
                }
            })
            .collect()
    }

    fn level() -> ZstdLevel {
        ZstdLevel::new(3).unwrap()
    }

    #[test]
    fn large_objects_are_frames_with_a_seek_table_either_way() {
        let data = sample(3 * FRAME_CONTENT + 12_345);
        let mut whole = Vec::new();
        ZstdCompressor::new(level()).compress_into(&data, &mut whole);
        let mut e = ZstdEncoder::new(Vec::new(), level()).unwrap();
        for piece in data.chunks(77_777) {
            e.write_all(piece).unwrap();
        }
        assert_eq!(
            e.finish().unwrap(),
            whole,
            "streamed and whole-buffer coding agree"
        );
        let mut out = Vec::new();
        ZstdDecompressor::default()
            .inflate_exact(&whole, data.len() as u64, &mut out)
            .unwrap();
        assert_eq!(out, data);
        let mut streamed = Vec::new();
        ZstdDecoder::new(&whole[..])
            .unwrap()
            .read_to_end(&mut streamed)
            .unwrap();
        assert_eq!(streamed, data);
        let r = ZstdSeekReader::new(Cursor::new(&whole), whole.len() as u64, data.len() as u64)
            .unwrap();
        assert_eq!(r.frames(), 4);
        // One frame's worth, exactly, stays a single frame without a table.
        let one = &data[..FRAME_CONTENT];
        let mut single = Vec::new();
        ZstdCompressor::new(level()).compress_into(one, &mut single);
        let mut e = ZstdEncoder::new(Vec::new(), level()).unwrap();
        e.write_all(one).unwrap();
        assert_eq!(e.finish().unwrap(), single);
        let r = ZstdSeekReader::new(Cursor::new(&single), single.len() as u64, one.len() as u64)
            .unwrap();
        assert_eq!(r.frames(), 1);
    }

    fn read_at(r: &mut ZstdSeekReader<Cursor<&Vec<u8>>>, at: u64, n: usize) -> Vec<u8> {
        r.seek_to(at).unwrap();
        let mut out = vec![0u8; n];
        let mut got = 0;
        while got < n {
            match r.read_some(&mut out[got..]).unwrap() {
                0 => break,
                k => got += k,
            }
        }
        out.truncate(got);
        out
    }

    #[test]
    fn a_seek_decodes_at_most_one_frame() {
        let data = sample(9 * FRAME_CONTENT + 5);
        let mut z = Vec::new();
        ZstdCompressor::new(level()).compress_into(&data, &mut z);
        let mut r =
            ZstdSeekReader::new(Cursor::new(&z), z.len() as u64, data.len() as u64).unwrap();
        let mut x: u64 = 5;
        for _ in 0..200 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (x >> 16) % data.len() as u64;
            let before = r.decoded();
            let got = read_at(&mut r, at, 4096);
            assert_eq!(
                got,
                &data[at as usize..(at as usize + 4096).min(data.len())]
            );
            assert!(r.decoded() - before <= FRAME_CONTENT as u64 + 4096);
        }
    }

    #[test]
    fn a_damaged_seek_table_is_ignored_and_reads_stay_right() {
        let data = sample(2 * FRAME_CONTENT + 99);
        let mut z = Vec::new();
        ZstdCompressor::new(level()).compress_into(&data, &mut z);
        // Move a frame boundary in the table (sizes still sum up): the table no longer matches
        // the frames' own headers and is not used.
        let entries = z.len() - 9 - 3 * 8;
        let c0 = le32(&z[entries..]);
        z[entries..entries + 4].copy_from_slice(&(c0 - 10).to_le_bytes());
        let c1 = le32(&z[entries + 8..]);
        z[entries + 8..entries + 12].copy_from_slice(&(c1 + 10).to_le_bytes());
        let mut r =
            ZstdSeekReader::new(Cursor::new(&z), z.len() as u64, data.len() as u64).unwrap();
        assert_eq!(r.frames(), 1);
        let at = data.len() as u64 - 50;
        assert_eq!(read_at(&mut r, at, 50), &data[at as usize..]);
        assert_eq!(read_at(&mut r, 10, 50), &data[10..60]);
    }
}
