//! zlib streams: the only compression Python disk-objectstore can read.
//!
//! A compressed packed object is one complete zlib (RFC 1950) stream. The container's
//! `compression_algorithm` (`zlib+1` .. `zlib+9`) names a level. Objects held in memory are
//! compressed and decoded with libdeflate ([`crate::libdeflate`]) at the same level: its level 1
//! compresses AiiDA-like data to a ratio of 0.485 (CPython's zlib level 1: 0.511) at about 1.8× the
//! speed of the streaming backend. Objects streamed because they are large go through zlib-rs
//! (flate2), whose level 1 is a "quick" strategy that compresses markedly worse (0.628), so there
//! `zlib+1` is written with zlib-rs level 2 (0.486). See `docs/format.md`.

use std::cell::RefCell;
use std::io::{self, Write};

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};

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

/// Whether to compress objects written to packs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompressMode {
    /// Store raw bytes.
    #[default]
    No,
    /// Compress every object (the empty object stays raw: zero bytes cannot shrink).
    Yes,
    /// Compress only objects for which it pays (compressed size below 90% of the original).
    Auto,
}

/// Python's AUTO threshold: compress when compressed/original is below this ratio.
pub const AUTO_RATIO_THRESHOLD: f64 = 0.9;

/// A reusable whole-buffer zlib compressor (keeps its allocations between objects): libdeflate,
/// or zlib-rs should libdeflate fail to allocate or to compress.
pub struct Compressor {
    inner: Backend,
    level: ZlibLevel,
}

enum Backend {
    Libdeflate(crate::libdeflate::ZlibCompressor),
    ZlibRs(Compress),
}

impl Compressor {
    /// A compressor for `level`.
    pub fn new(level: ZlibLevel) -> Self {
        let inner = match crate::libdeflate::ZlibCompressor::new(i32::from(level.0)) {
            Some(c) => Backend::Libdeflate(c),
            None => Backend::ZlibRs(Compress::new(level.backend_level(), true)),
        };
        Self { inner, level }
    }

    /// Compress `input` as one complete zlib stream, appending to `out`.
    pub fn compress_into(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if let Backend::Libdeflate(c) = &mut self.inner {
            if c.compress_into(input, out) {
                return;
            }
            // Not expected (the output has libdeflate's own worst-case room), but never store
            // an empty stream: compress with zlib-rs from now on.
            self.inner = Backend::ZlibRs(Compress::new(self.level.backend_level(), true));
        }
        let Backend::ZlibRs(c) = &mut self.inner else {
            return;
        };
        c.reset();
        let start_in = c.total_in();
        out.reserve(input.len() + input.len() / 16 + 64);
        loop {
            let consumed = usize::try_from(c.total_in() - start_in).unwrap_or(usize::MAX);
            let rest = input.get(consumed..).unwrap_or(&[]);
            // Only possible errors are API misuse; a finished stream reports StreamEnd.
            match c.compress_vec(rest, out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => break,
                Ok(_) | Err(_) => out.reserve(out.capacity().max(4096)),
            }
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
    /// Per thread: compressors by level. Two are kept, as AUTO samples large objects at level 1
    /// before compressing them at the container's level.
    static COMPRESSORS: RefCell<Vec<(ZlibLevel, Compressor)>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` with this thread's compressor for `level` (kept between calls, so that workers
/// compressing many objects allocate once).
pub fn with_compressor<T>(level: ZlibLevel, f: impl FnOnce(&mut Compressor) -> T) -> T {
    COMPRESSORS.with(|c| {
        let mut c = c.borrow_mut();
        let at = match c.iter().position(|(l, _)| *l == level) {
            Some(at) => at,
            None => {
                if c.len() >= 2 {
                    c.remove(0);
                }
                c.push((level, Compressor::new(level)));
                c.len() - 1
            }
        };
        f(&mut c[at].1)
    })
}

/// A streaming zlib encoder (zlib-rs), for objects too large to compress in memory: writes one
/// zlib stream at the streaming level of a configured level (see the module docs) into `W`.
pub struct ZlibEncoder<W: Write>(flate2::write::ZlibEncoder<W>);

impl<W: Write> ZlibEncoder<W> {
    /// An encoder writing into `sink`.
    pub fn new(sink: W, level: ZlibLevel) -> Self {
        Self(flate2::write::ZlibEncoder::new(sink, level.backend_level()))
    }

    /// Write the end of the stream; returns the sink.
    pub fn finish(self) -> io::Result<W> {
        self.0.finish()
    }
}

impl<W: Write> Write for ZlibEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Error of whole-buffer decompression.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InflateError {
    /// The bytes are not a valid zlib stream.
    #[error("invalid zlib stream: {0}")]
    Invalid(String),
    /// The stream ends before the end-of-stream marker.
    #[error("truncated zlib stream ({produced} bytes decoded)")]
    Truncated {
        /// Bytes decoded before the input ran out.
        produced: u64,
    },
    /// The stream decodes to more bytes than expected.
    #[error("zlib stream decodes to more than the expected {expected} bytes")]
    TooLong {
        /// The expected size.
        expected: u64,
    },
    /// The stream decodes to fewer bytes than expected.
    #[error("zlib stream decodes to {actual} bytes, expected {expected}")]
    TooShort {
        /// The expected size.
        expected: u64,
        /// The decoded size.
        actual: u64,
    },
}

/// A reusable zlib decompressor for whole buffers of known decoded size.
pub struct Decompressor {
    inner: Decompress,
}

impl Default for Decompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl Decompressor {
    /// A fresh decompressor.
    pub fn new() -> Self {
        Self {
            inner: Decompress::new(true),
        }
    }

    /// Decode `input`, which must be one zlib stream of exactly `expected` bytes, into `out`
    /// (cleared first). Allocates at most `expected + 1` bytes for the output, and writes each
    /// decoded byte once (no zero-filling first). Bytes after the end of the stream are ignored,
    /// as Python does.
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
        if out.capacity() > cap.saturating_mul(4).max(1 << 20) {
            // Do not keep (and clear) a huge buffer for small objects.
            *out = Vec::new();
        }
        // The fast path: libdeflate decodes and checks the whole stream at once, into room that
        // is never zero-filled (one probe byte beyond `expected` detects streams that decode to
        // more). Anything but an exact success is decoded again below, to name the fault
        // precisely.
        if let crate::libdeflate::Inflated::Done { produced, .. } =
            crate::libdeflate::inflate_zlib_vec(input, cap, out)
            && produced as u64 == expected
        {
            return Ok(());
        }
        self.inner.reset(true);
        out.clear();
        out.resize(cap, 0);
        let mut produced = 0usize;
        loop {
            let consumed = usize::try_from(self.inner.total_in()).unwrap_or(usize::MAX);
            let rest = input.get(consumed..).unwrap_or(&[]);
            let before_in = self.inner.total_in();
            let before_out = self.inner.total_out();
            let status = self
                .inner
                .decompress(rest, &mut out[produced..], FlushDecompress::Finish)
                .map_err(|e| InflateError::Invalid(e.to_string()))?;
            produced += usize::try_from(self.inner.total_out() - before_out).unwrap_or(0);
            if produced as u64 > expected {
                out.clear();
                return Err(InflateError::TooLong { expected });
            }
            match status {
                Status::StreamEnd => break,
                _ => {
                    let progressed =
                        self.inner.total_out() != before_out || self.inner.total_in() != before_in;
                    if !progressed {
                        out.truncate(produced);
                        return Err(InflateError::Truncated {
                            produced: produced as u64,
                        });
                    }
                }
            }
        }
        out.truncate(produced);
        let actual = produced as u64;
        if actual != expected {
            return Err(InflateError::TooShort { expected, actual });
        }
        Ok(())
    }
}

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
    fn round_trip_and_python_vector() {
        let mut c = Compressor::new(ZlibLevel::new(1).unwrap());
        let mut d = Decompressor::new();
        let mut out = Vec::new();
        for data in [&b""[..], b"12345678901234567890123890", &vec![7u8; 1 << 20]] {
            let z = c.compress(data);
            assert_eq!(z[0], 0x78);
            d.inflate_exact(&z, data.len() as u64, &mut out).unwrap();
            assert_eq!(out, data);
        }
        // Bytes produced by CPython's zlib level 1 (disk-objectstore's test vector) decode.
        let py = b"x\x013426153\xb7\xb040Df\x01\xf9\x00G\xb2\x05R";
        d.inflate_exact(py, 26, &mut out).unwrap();
        assert_eq!(out, b"12345678901234567890123890");
    }

    #[test]
    fn inflate_errors() {
        let mut c = Compressor::new(ZlibLevel::new(6).unwrap());
        let mut d = Decompressor::new();
        let mut out = Vec::new();
        let data = b"hello hello hello hello world".repeat(50);
        let z = c.compress(&data);
        let n = data.len() as u64;
        assert!(matches!(
            d.inflate_exact(&z[..z.len() - 6], n, &mut out),
            Err(InflateError::Truncated { .. })
        ));
        assert!(matches!(
            d.inflate_exact(&z, n - 1, &mut out),
            Err(InflateError::TooLong { .. })
        ));
        assert!(matches!(
            d.inflate_exact(&z, n + 1, &mut out),
            Err(InflateError::TooShort { .. })
        ));
        assert!(matches!(
            d.inflate_exact(b"not zlib at all", 10, &mut out),
            Err(InflateError::Invalid(_))
        ));
        // Trailing garbage after the stream end is tolerated, as in Python.
        let mut zz = z.clone();
        zz.extend_from_slice(b"garbage");
        d.inflate_exact(&zz, n, &mut out).unwrap();
        assert_eq!(out, data);
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
