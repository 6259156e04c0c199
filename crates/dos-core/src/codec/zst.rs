//! zstd (RFC 8878) frames, the opt-in coding of compressed packed objects (`zstd+N`): whole-buffer
//! coders with reused contexts, and streaming ones. Python disk-objectstore cannot read them.

use std::io::{self, BufRead, Read, Write};

use super::{InflateError, ZstdLevel};

/// The first four bytes of every zstd frame (little-endian 0xFD2FB528). A zlib stream never
/// starts with them: `0x28 0xB5` fails zlib's header check (`(CMF * 256 + FLG) % 31 == 0`).
pub const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Whether `head` (the first bytes of a compressed object) starts a zstd frame.
pub fn is_zstd(head: &[u8]) -> bool {
    head.starts_with(&MAGIC)
}

/// A reusable whole-buffer zstd compressor.
pub struct ZstdCompressor {
    inner: Option<zstd::bulk::Compressor<'static>>,
    level: ZstdLevel,
}

impl ZstdCompressor {
    /// A compressor for `level`.
    pub fn new(level: ZstdLevel) -> Self {
        Self {
            inner: zstd::bulk::Compressor::new(level.level()).ok(),
            level,
        }
    }

    /// Compress `input` as one zstd frame (with its content size), appending to `out`.
    pub fn compress_into(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let bound = zstd::zstd_safe::compress_bound(input.len());
        out.reserve(bound);
        if let Some(c) = &mut self.inner
            && c.compress_to_buffer(input, out).is_ok()
        {
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

/// A streaming zstd encoder writing one frame into `W`.
pub struct ZstdEncoder<W: Write>(zstd::stream::write::Encoder<'static, W>);

impl<W: Write> ZstdEncoder<W> {
    /// An encoder at `level` into `sink`.
    pub fn new(sink: W, level: ZstdLevel) -> io::Result<Self> {
        zstd::stream::write::Encoder::new(sink, level.level()).map(Self)
    }

    /// Write the frame's end and return the sink.
    pub fn finish(self) -> io::Result<W> {
        self.0.finish()
    }
}

impl<W: Write> Write for ZstdEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
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
