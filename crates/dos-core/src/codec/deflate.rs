//! Raw deflate (RFC 1951), the coding of zip entries: whole-buffer decoding with libdeflate,
//! streaming decoding and encoding with zlib-rs, and the pieces that turn a deflate stream into
//! the zlib stream of a packed object without recompressing it.

use std::io::{self, BufRead, Read, Write};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

pub use super::libdeflate::{Inflated, adler32};

/// The zlib header of a deflate stream with a 32 KiB window (CMF 0x78, FLG 0x9C: FCHECK valid):
/// with it in front and the content's Adler-32 behind, a deflate stream is a zlib stream.
pub const ZLIB_HEADER: [u8; 2] = [0x78, 0x9C];

/// Decode the raw deflate stream at the start of `input` into `out`, cleared and given room for
/// at most `cap` bytes (never zero-filled first); on success `out` holds the bytes produced.
pub fn inflate(input: &[u8], cap: usize, out: &mut Vec<u8>) -> Inflated {
    super::libdeflate::inflate_raw_vec(input, cap, out)
}

/// Deflate `data` completely at `level` (1–9), as one raw stream.
pub fn compress(data: &[u8], level: u32) -> Vec<u8> {
    let mut c = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let consumed = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
        let rest = data.get(consumed..).unwrap_or(&[]);
        // Only possible errors are API misuse; a finished stream reports StreamEnd.
        match c.compress_vec(rest, &mut out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => break,
            Ok(_) | Err(_) => out.reserve(out.capacity().max(4096)),
        }
    }
    out
}

/// A streaming raw-deflate encoder (zlib-rs) writing into `W`.
pub struct DeflateEncoder<W: Write>(flate2::write::DeflateEncoder<W>);

impl<W: Write> DeflateEncoder<W> {
    /// An encoder at `level` (1–9) writing into `sink`.
    pub fn new(sink: W, level: u32) -> Self {
        Self(flate2::write::DeflateEncoder::new(
            sink,
            Compression::new(level),
        ))
    }

    /// Write the end of the stream; returns the sink.
    pub fn finish(self) -> io::Result<W> {
        self.0.finish()
    }
}

impl<W: Write> Write for DeflateEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// A streaming raw-deflate decoder (zlib-rs) over buffered compressed bytes.
pub struct DeflateDecoder<R: BufRead>(flate2::bufread::DeflateDecoder<R>);

impl<R: BufRead> DeflateDecoder<R> {
    /// A decoder reading compressed bytes from `source`.
    pub fn new(source: R) -> Self {
        Self(flate2::bufread::DeflateDecoder::new(source))
    }
}

impl<R: BufRead> Read for DeflateDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

/// A raw deflate stream is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("corrupt deflate stream")]
pub struct CorruptStream;

/// What one [`RawInflater::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Input bytes used.
    pub consumed: usize,
    /// Output bytes written.
    pub produced: usize,
    /// The end of the stream was reached.
    pub ended: bool,
}

/// A raw deflate decoder fed piece by piece, for callers that see the compressed bytes pass by
/// (and keep them) while they need the content only to check it.
pub struct RawInflater(Decompress);

impl Default for RawInflater {
    fn default() -> Self {
        Self::new()
    }
}

impl RawInflater {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self(Decompress::new(false))
    }

    /// Decode from `input` into `out`; with `finish`, no more input follows.
    pub fn step(
        &mut self,
        input: &[u8],
        out: &mut [u8],
        finish: bool,
    ) -> Result<Step, CorruptStream> {
        let (before_in, before_out) = (self.0.total_in(), self.0.total_out());
        let flush = if finish {
            FlushDecompress::Finish
        } else {
            FlushDecompress::None
        };
        let status = self
            .0
            .decompress(input, out, flush)
            .map_err(|_| CorruptStream)?;
        Ok(Step {
            consumed: usize::try_from(self.0.total_in() - before_in).unwrap_or(usize::MAX),
            produced: usize::try_from(self.0.total_out() - before_out).unwrap_or(usize::MAX),
            ended: status == Status::StreamEnd,
        })
    }

    /// Compressed bytes used so far.
    pub fn total_in(&self) -> u64 {
        self.0.total_in()
    }

    /// Content bytes produced so far.
    pub fn total_out(&self) -> u64 {
        self.0.total_out()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_and_streamed_coding_agree() {
        let data = b"hello hello hello deflate ".repeat(5000);
        let z = compress(&data, 6);
        let mut out = Vec::new();
        assert_eq!(
            inflate(&z, data.len() + 1, &mut out),
            Inflated::Done {
                consumed: z.len(),
                produced: data.len()
            }
        );
        assert_eq!(out, data);
        // The streaming encoder and decoder round-trip too.
        let mut e = DeflateEncoder::new(Vec::new(), 1);
        e.write_all(&data).unwrap();
        let z1 = e.finish().unwrap();
        let mut back = Vec::new();
        DeflateDecoder::new(&z1[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        // Fed in small pieces, the raw inflater ends exactly at the end of the stream.
        let mut inf = RawInflater::new();
        let mut buf = vec![0u8; 4096];
        let mut produced = 0;
        let mut ended = false;
        for piece in z.chunks(777) {
            let mut input = piece;
            while !input.is_empty() {
                let s = inf.step(input, &mut buf, false).unwrap();
                produced += s.produced;
                input = &input[s.consumed..];
                ended |= s.ended;
                if s.ended || (s.consumed == 0 && s.produced == 0) {
                    break;
                }
            }
        }
        assert!(ended);
        assert_eq!(produced, data.len());
        assert_eq!(inf.total_in(), z.len() as u64);
        assert_eq!(
            RawInflater::new().step(b"\xff\xff\xff garbage", &mut buf, true),
            Err(CorruptStream)
        );
    }

    #[test]
    fn a_deflate_stream_framed_as_zlib_decodes_as_zlib() {
        let data = b"passed through, not recompressed ".repeat(300);
        let mut zlib = ZLIB_HEADER.to_vec();
        zlib.extend(compress(&data, 6));
        zlib.extend(adler32(1, &data).to_be_bytes());
        let mut out = Vec::new();
        super::super::Decompressor::new()
            .inflate_exact(&zlib, data.len() as u64, &mut out)
            .unwrap();
        assert_eq!(out, data);
    }
}
