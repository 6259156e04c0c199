//! Compression: every zlib and deflate coder of the workspace.
//!
//! A compressed packed object is one complete zlib (RFC 1950) stream: the only compression Python
//! disk-objectstore can read. The container's `compression_algorithm` (`zlib+1` .. `zlib+9`)
//! names a level ([`ZlibLevel`]). Objects held in memory are compressed and decoded with
//! libdeflate at that level: its level 1 compresses AiiDA-like data to a ratio of 0.485 (CPython's
//! zlib level 1: 0.511) at about 1.8× the speed of the streaming backend. Objects streamed
//! because they are large go through zlib-rs (flate2), whose level 1 is a "quick" strategy that
//! compresses markedly worse (0.628), so there `zlib+1` is written with zlib-rs level 2 (0.486).
//! See `docs/format.md`.
//!
//! A container may instead name `zstd+N` (opt-in; Python cannot read it): objects are then
//! written as zstd frames ([`zst`]). Readers tell the two apart by the object's first bytes (a
//! zstd frame's magic number is never a valid zlib header), so a container half-way through a
//! conversion (`dos repack --compression ...`) reads correctly.
//!
//! - coders for packed objects, zlib or zstd as the container's [`Compression`] says:
//!   [`Compressor`], [`Decompressor`] (whole buffers), [`Encoder`], [`Decoder`] (streams);
//! - [`deflate`]: raw deflate (RFC 1951), the coding of zip entries;
//! - AUTO's decision ([`auto_should_compress`]), Python's sampling plan.

pub mod deflate;
mod libdeflate;
pub mod zlib;
pub mod zlib_points;
pub mod zst;

use std::cell::RefCell;
use std::io::{self, BufRead, Read, Write};

pub use zlib::{InflateError, ZlibDecoder, ZlibEncoder};

/// A zlib level from a container's `compression_algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ZlibLevel(u8);

impl ZlibLevel {
    /// `zlib+1`, the default of Python and AiiDA.
    pub const DEFAULT: ZlibLevel = ZlibLevel(1);

    /// Level from 1 to 9, or `None`.
    pub fn new(level: u32) -> Option<Self> {
        (1..=9)
            .contains(&level)
            .then(|| Self(u8::try_from(level).unwrap_or(1)))
    }

    /// Parse `zlib+N`, N in 1..=9 (exactly what Python accepts).
    pub fn from_algorithm(s: &str) -> Option<Self> {
        let digits = s.strip_prefix("zlib+")?;
        if digits.len() != 1 {
            return None;
        }
        Self::new(digits.parse().ok()?)
    }

    /// The `compression_algorithm` string.
    pub fn algorithm(self) -> String {
        format!("zlib+{}", self.0)
    }

    /// The level as written in the configuration.
    pub fn level(self) -> u32 {
        u32::from(self.0)
    }

    /// The zlib-rs level used to honour this configured level when streaming (see the module
    /// docs).
    pub fn backend_level(self) -> flate2::Compression {
        flate2::Compression::new(match self.0 {
            1 => 2,
            n => u32::from(n),
        })
    }
}

/// A zstd level from a container's `compression_algorithm` (`zstd+1` .. `zstd+19`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ZstdLevel(u8);

impl ZstdLevel {
    /// Level from 1 to 19, or `None`.
    pub fn new(level: u32) -> Option<Self> {
        (1..=19)
            .contains(&level)
            .then(|| Self(u8::try_from(level).unwrap_or(3)))
    }

    /// The level.
    pub fn level(self) -> i32 {
        i32::from(self.0)
    }
}

/// How a container compresses the packed objects it writes: its `compression_algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// `zlib+N`: what Python disk-objectstore reads and writes.
    Zlib(ZlibLevel),
    /// `zstd+N`: dos only.
    Zstd(ZstdLevel),
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Zlib(ZlibLevel::DEFAULT)
    }
}

impl From<ZlibLevel> for Compression {
    fn from(l: ZlibLevel) -> Self {
        Compression::Zlib(l)
    }
}

impl Compression {
    /// Parse `zlib+N` (N in 1..=9, as Python accepts) or `zstd+N` (N in 1..=19).
    pub fn from_algorithm(s: &str) -> Option<Self> {
        if let Some(l) = ZlibLevel::from_algorithm(s) {
            return Some(Compression::Zlib(l));
        }
        let digits = s.strip_prefix("zstd+")?;
        if digits.is_empty() || digits.len() > 2 || digits.starts_with('0') {
            return None;
        }
        ZstdLevel::new(digits.parse().ok()?).map(Compression::Zstd)
    }

    /// The `compression_algorithm` string.
    pub fn algorithm(self) -> String {
        match self {
            Compression::Zlib(l) => l.algorithm(),
            Compression::Zstd(l) => format!("zstd+{}", l.0),
        }
    }

    /// Whether Python disk-objectstore can read what this writes.
    pub fn python_readable(self) -> bool {
        matches!(self, Compression::Zlib(_))
    }

    /// The coding this writes.
    pub fn codec(self) -> Codec {
        match self {
            Compression::Zlib(_) => Codec::Zlib,
            Compression::Zstd(_) => Codec::Zstd,
        }
    }
}

/// The coding of one compressed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// A zlib stream.
    Zlib,
    /// zstd frames.
    Zstd,
}

impl Codec {
    /// The coding of a compressed object whose stored bytes start with `head` (at least its
    /// first four bytes, when it has them).
    pub fn of(head: &[u8]) -> Codec {
        if zst::is_zstd(head) {
            Codec::Zstd
        } else {
            Codec::Zlib
        }
    }
}

/// A reusable whole-buffer compressor for a container's [`Compression`].
pub enum Compressor {
    /// zlib streams.
    Zlib(zlib::ZlibCompressor),
    /// zstd frames.
    Zstd(zst::ZstdCompressor),
}

impl Compressor {
    /// A compressor for `c`.
    pub fn new(c: impl Into<Compression>) -> Self {
        match c.into() {
            Compression::Zlib(l) => Compressor::Zlib(zlib::ZlibCompressor::new(l)),
            Compression::Zstd(l) => Compressor::Zstd(zst::ZstdCompressor::new(l)),
        }
    }

    /// Compress `input` as one complete stream (frame), appending to `out`.
    pub fn compress_into(&mut self, input: &[u8], out: &mut Vec<u8>) {
        match self {
            Compressor::Zlib(c) => c.compress_into(input, out),
            Compressor::Zstd(c) => c.compress_into(input, out),
        }
    }

    /// Compress `input` into a new buffer.
    pub fn compress(&mut self, input: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        self.compress_into(input, &mut v);
        v
    }
}

thread_local! {
    /// Per thread: compressors by compression. Two are kept, as AUTO samples large objects at
    /// zlib level 1 before compressing them as the container says.
    static COMPRESSORS: RefCell<Vec<(Compression, Compressor)>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` with this thread's compressor for `c` (kept between calls, so that workers
/// compressing many objects allocate once).
pub fn with_compressor<T>(c: impl Into<Compression>, f: impl FnOnce(&mut Compressor) -> T) -> T {
    let c = c.into();
    COMPRESSORS.with(|all| {
        let mut all = all.borrow_mut();
        let at = match all.iter().position(|(l, _)| *l == c) {
            Some(at) => at,
            None => {
                if all.len() >= 2 {
                    all.remove(0);
                }
                all.push((c, Compressor::new(c)));
                all.len() - 1
            }
        };
        f(&mut all[at].1)
    })
}

/// A reusable whole-buffer decoder of compressed packed objects, zlib or zstd (told apart by
/// their first bytes).
#[derive(Default)]
pub struct Decompressor {
    zlib: zlib::ZlibDecompressor,
    zstd: zst::ZstdDecompressor,
}

impl Decompressor {
    /// A fresh decompressor.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decode `input`, one compressed object of exactly `expected` bytes, into `out` (cleared
    /// first), allocating at most `expected + 1` bytes for it.
    pub fn inflate_exact(
        &mut self,
        input: &[u8],
        expected: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), InflateError> {
        // No stream decodes to more than its codec's largest ratio (deflate: 1032:1; zstd:
        // one 128 KiB block from 4 bytes): a larger recorded size is refused before anything is
        // allocated for it.
        let ratio: u64 = if zst::is_zstd(input) { 32_768 } else { 1_032 };
        if expected
            > (input.len() as u64)
                .saturating_mul(ratio)
                .saturating_add(1024)
        {
            return Err(InflateError::Implausible {
                expected,
                compressed: input.len() as u64,
            });
        }
        if zst::is_zstd(input) {
            self.zstd.inflate_exact(input, expected, out)
        } else {
            self.zlib.inflate_exact(input, expected, out)
        }
    }
}

/// A streaming encoder, for objects too large to compress in memory.
pub enum Encoder<W: Write> {
    /// One zlib stream.
    Zlib(ZlibEncoder<W>),
    /// One zstd frame.
    Zstd(zst::ZstdEncoder<W>),
}

impl<W: Write> Encoder<W> {
    /// An encoder for `c` into `sink`.
    pub fn new(sink: W, c: Compression) -> io::Result<Self> {
        Ok(match c {
            Compression::Zlib(l) => Encoder::Zlib(ZlibEncoder::new(sink, l)),
            Compression::Zstd(l) => Encoder::Zstd(zst::ZstdEncoder::new(sink, l)?),
        })
    }

    /// Write the end of the stream and return the sink.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Zlib(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Zlib(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Zlib(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

/// A streaming decoder of one compressed object over its buffered bytes: zlib or zstd, told
/// apart by the first bytes.
pub enum Decoder<R: BufRead> {
    /// A zlib stream.
    Zlib(ZlibDecoder<R>),
    /// zstd frames.
    Zstd(zst::ZstdDecoder<R>),
}

impl<R: BufRead> Decoder<R> {
    /// A decoder of the object whose compressed bytes `source` yields.
    pub fn new(mut source: R) -> io::Result<Self> {
        let zstd = zst::is_zstd(source.fill_buf()?);
        Ok(if zstd {
            Decoder::Zstd(zst::ZstdDecoder::new(source)?)
        } else {
            Decoder::Zlib(ZlibDecoder::new(source))
        })
    }

    /// The source back (positioned wherever decoding left it).
    pub fn into_inner(self) -> R {
        match self {
            Decoder::Zlib(d) => d.into_inner(),
            Decoder::Zstd(d) => d.into_inner(),
        }
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Zlib(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
        }
    }
}

/// Decode and discard until `pos(r)` reaches `target` (or the stream ends), `read` decoding the
/// next bytes of `r` into the buffer it is given: how the seekable readers skip forward.
pub(crate) fn discard_until<T>(
    r: &mut T,
    target: u64,
    pos: fn(&T) -> u64,
    read: fn(&mut T, &mut [u8]) -> io::Result<usize>,
) -> io::Result<()> {
    let mut scratch = vec![0u8; 64 * 1024];
    while pos(r) < target {
        let want = usize::try_from(target - pos(r))
            .unwrap_or(usize::MAX)
            .min(scratch.len());
        if read(r, &mut scratch[..want])? == 0 {
            break;
        }
    }
    Ok(())
}

/// Whether to compress objects written to packs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompressMode {
    /// Store raw bytes.
    #[default]
    No,
    /// Compress every object, the empty one too (as Python does).
    Yes,
    /// Compress only objects for which it pays (compressed size below 90% of the original).
    Auto,
}

/// Python's AUTO threshold: compress when compressed/original is below this ratio.
pub const AUTO_RATIO_THRESHOLD: f64 = 0.9;

/// Python's AUTO estimate: compress a sample with zlib level 1 and report whether the ratio is
/// below [`AUTO_RATIO_THRESHOLD`]. An empty sample is never worth compressing.
pub fn sample_is_compressible(sample: &[u8]) -> bool {
    if sample.is_empty() {
        return false;
    }
    let out = with_compressor(ZlibLevel(1), |c| c.compress(sample));
    (out.len() as f64) / (sample.len() as f64) < AUTO_RATIO_THRESHOLD
}

/// Python's sampling plan for AUTO: 1 KiB chunks every `size / 128` bytes up to 128 KiB of sample;
/// objects under 128 KiB are sampled whole. Returns (offset, length) pairs.
pub fn auto_sample_ranges(size: u64) -> Vec<(u64, u64)> {
    const SAMPLE: u64 = 1024;
    const MAX_SAMPLED: u64 = 131_072;
    if size <= MAX_SAMPLED {
        return vec![(0, size)];
    }
    let interval = size / 128;
    let mut v = Vec::new();
    let mut off = 0;
    let mut total = 0;
    while off < size && total < MAX_SAMPLED {
        let len = SAMPLE.min(size - off);
        v.push((off, len));
        total += len;
        off += interval;
    }
    v
}

/// Decide AUTO compression for an in-memory object following Python's sampling plan.
pub fn auto_should_compress(data: &[u8]) -> bool {
    let ranges = auto_sample_ranges(data.len() as u64);
    if ranges.len() == 1 {
        return sample_is_compressible(data);
    }
    let mut sample = Vec::with_capacity(131_072);
    for (off, len) in ranges {
        // Ranges are within `data` by construction.
        let (o, l) = (off as usize, len as usize);
        sample.extend_from_slice(&data[o..o + l]);
    }
    sample_is_compressible(&sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_strings() {
        for n in 1..=9 {
            let l = ZlibLevel::from_algorithm(&format!("zlib+{n}")).unwrap();
            assert_eq!(l.level(), n);
            assert_eq!(l.algorithm(), format!("zlib+{n}"));
        }
        for bad in [
            "zlib", "zlib+0", "zlib+10", "zlib+a", "gzip", "zlib+01", "zstd+1", "",
        ] {
            assert!(ZlibLevel::from_algorithm(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn auto_decision() {
        assert!(auto_should_compress(&b"abc".repeat(1000)));
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let random: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(!auto_should_compress(&random));
        assert!(!auto_should_compress(b""));
        let ranges = auto_sample_ranges(10_000_000);
        assert_eq!(ranges.iter().map(|r| r.1).sum::<u64>(), 128 * 1024);
    }
}
