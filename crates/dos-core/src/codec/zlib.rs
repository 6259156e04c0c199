//! zlib (RFC 1950) streams, the coding of compressed packed objects: whole-buffer coders over
//! libdeflate (falling back to zlib-rs), and streaming ones over zlib-rs.

use std::io::{self, BufRead, Read, Write};

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};

use super::ZlibLevel;
use super::libdeflate;

/// A reusable whole-buffer zlib compressor (keeps its allocations between objects): libdeflate,
/// or zlib-rs should libdeflate fail to allocate or to compress.
pub struct ZlibCompressor {
    inner: Backend,
    level: ZlibLevel,
}

enum Backend {
    Libdeflate(libdeflate::ZlibCompressor),
    ZlibRs(Compress),
}

impl ZlibCompressor {
    /// A compressor for `level`.
    pub fn new(level: ZlibLevel) -> Self {
        let inner = match libdeflate::ZlibCompressor::new(i32::from(level.0)) {
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
    #[error("truncated compressed stream ({produced} bytes decoded)")]
    Truncated {
        /// Bytes decoded before the input ran out.
        produced: u64,
    },
    /// The stream decodes to more bytes than expected.
    #[error("compressed stream decodes to more than the expected {expected} bytes")]
    TooLong {
        /// The expected size.
        expected: u64,
    },
    /// The stream decodes to fewer bytes than expected.
    #[error("compressed stream decodes to {actual} bytes, expected {expected}")]
    TooShort {
        /// The expected size.
        expected: u64,
        /// The decoded size.
        actual: u64,
    },
    /// The recorded size is more than any stream of this length can decode to.
    #[error("a size of {expected} bytes is impossible for {compressed} compressed bytes")]
    Implausible {
        /// The recorded size.
        expected: u64,
        /// The compressed length.
        compressed: u64,
    },
}

/// A reusable zlib decompressor for whole buffers of known decoded size.
pub struct ZlibDecompressor {
    inner: Decompress,
}

impl Default for ZlibDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

/// An upper bound of the bytes a zlib stream of `input_len` bytes decodes to. Deflate's
/// densest code is a 258-byte match in 2 bits (1032:1); headers only lower the ratio.
fn max_inflated_len(input_len: usize) -> usize {
    input_len.saturating_mul(1032).saturating_add(1024)
}

impl ZlibDecompressor {
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
        // No room beyond what `input` can possibly decode to: a corrupt index row claiming a
        // huge size must give an error, not an allocation failure.
        let cap = cap.min(max_inflated_len(input.len()));
        if out.capacity() > cap.saturating_mul(4).max(1 << 20) {
            // Do not keep (and clear) a huge buffer for small objects.
            *out = Vec::new();
        }
        // The fast path: libdeflate decodes and checks the whole stream at once, into room that
        // is never zero-filled (one probe byte beyond `expected` detects streams that decode to
        // more). Anything but an exact success is decoded again below, to name the fault
        // precisely.
        if let libdeflate::Inflated::Done { produced, .. } =
            libdeflate::inflate_zlib_vec(input, cap, out)
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

/// A streaming zlib decoder (zlib-rs) over buffered compressed bytes.
pub struct ZlibDecoder<R: BufRead>(flate2::bufread::ZlibDecoder<R>);

impl<R: BufRead> ZlibDecoder<R> {
    /// A decoder reading compressed bytes from `source`.
    pub fn new(source: R) -> Self {
        Self(flate2::bufread::ZlibDecoder::new(source))
    }

    /// The source back (positioned wherever decoding left it).
    pub fn into_inner(self) -> R {
        self.0.into_inner()
    }
}

impl<R: BufRead> Read for ZlibDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_python_vector() {
        let mut c = ZlibCompressor::new(ZlibLevel::new(1).unwrap());
        let mut d = ZlibDecompressor::new();
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
        let mut c = ZlibCompressor::new(ZlibLevel::new(6).unwrap());
        let mut d = ZlibDecompressor::new();
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
}
