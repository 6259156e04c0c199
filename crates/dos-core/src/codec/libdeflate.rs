//! Whole-buffer deflate and zlib coding with libdeflate.
//!
//! libdeflate works on whole buffers only, and is markedly faster than a streaming zlib for them
//! (measured on AiiDA-like data, one core of the benchmark machine, see `docs/performance.md`):
//! decoding 866 MB/s against zlib-rs's 574 MB/s; compressing at level 1 200 MB/s with ratio 0.485,
//! against zlib-rs level 2 at 111 MB/s with ratio 0.486 (and CPython's zlib level 1 at 0.511).
//! Its zlib streams are ordinary RFC 1950 streams that any zlib, Python's included, decodes.
//!
//! Objects held in memory are coded here; larger ones stream through zlib-rs (flate2). The rest
//! of the workspace reaches it through [`crate::codec`].

use std::cell::RefCell;
use std::ptr::NonNull;

use libdeflate_sys::{
    libdeflate_adler32, libdeflate_alloc_compressor, libdeflate_alloc_decompressor,
    libdeflate_compressor, libdeflate_decompressor, libdeflate_deflate_decompress_ex,
    libdeflate_free_compressor, libdeflate_free_decompressor, libdeflate_result,
    libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE, libdeflate_result_LIBDEFLATE_SUCCESS,
    libdeflate_zlib_compress, libdeflate_zlib_compress_bound, libdeflate_zlib_decompress_ex,
};

/// A libdeflate decompressor (owned; freed on drop).
struct RawDecompressor(NonNull<libdeflate_decompressor>);

impl RawDecompressor {
    fn new() -> Option<Self> {
        // SAFETY: allocating a decompressor has no preconditions; a null result (out of memory)
        // is turned into `None`.
        #[allow(unsafe_code)]
        let p = unsafe { libdeflate_alloc_decompressor() };
        NonNull::new(p).map(Self)
    }
}

impl Drop for RawDecompressor {
    fn drop(&mut self) {
        // SAFETY: the pointer came from libdeflate_alloc_decompressor, is non-null, and is freed
        // exactly once (here).
        #[allow(unsafe_code)]
        unsafe {
            libdeflate_free_decompressor(self.0.as_ptr())
        }
    }
}

thread_local! {
    static DECOMPRESSOR: RefCell<Option<RawDecompressor>> = const { RefCell::new(None) };
}

/// Outcome of [`inflate_raw_vec`] and [`inflate_zlib_vec`].
#[derive(Debug, PartialEq, Eq)]
pub enum Inflated {
    /// Decoded: bytes of input consumed (the stream may be followed by other bytes) and bytes
    /// produced.
    Done {
        /// Input bytes the stream occupies (to the next byte boundary).
        consumed: usize,
        /// Output bytes.
        produced: usize,
    },
    /// The stream produces more than `out` can hold.
    TooLong,
    /// Not a valid (complete) stream, or (zlib) a wrong Adler-32 checksum.
    Corrupt,
}

/// Which framing a decode call expects.
#[derive(Clone, Copy)]
enum Framing {
    Raw,
    Zlib,
}

/// Decode with libdeflate into the `out_len` bytes at `out`.
///
/// # Safety
/// `out` must be valid for writes of `out_len` bytes (it need not be initialised) and not be
/// accessed by anything else during the call.
#[allow(unsafe_code)]
unsafe fn inflate(input: &[u8], out: *mut u8, out_len: usize, framing: Framing) -> Inflated {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = RawDecompressor::new();
        }
        let Some(d) = slot.as_ref() else {
            return Inflated::Corrupt;
        };
        let mut consumed = 0usize;
        let mut produced = 0usize;
        let f = match framing {
            Framing::Raw => libdeflate_deflate_decompress_ex,
            Framing::Zlib => libdeflate_zlib_decompress_ex,
        };
        // SAFETY: `d` is a live decompressor used by this thread only (thread-local); `input` is
        // valid for reads of its length and `out` for writes of `out_len` bytes (the caller's
        // promise); the two out parameters point to valid `usize`s. libdeflate writes only
        // within `out` and the two counters, and keeps no pointer after returning.
        let r: libdeflate_result = unsafe {
            f(
                d.0.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                out.cast(),
                out_len,
                &mut consumed,
                &mut produced,
            )
        };
        #[allow(non_upper_case_globals)]
        match r {
            libdeflate_result_LIBDEFLATE_SUCCESS => Inflated::Done { consumed, produced },
            libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE => Inflated::TooLong,
            _ => Inflated::Corrupt,
        }
    })
}

/// Decode into `out`, which is cleared and given room for `cap` bytes; on success its length is
/// the number of bytes produced, otherwise it is left empty. Unlike resizing `out` first, the
/// room is never zero-filled (decoded content is written exactly once).
fn inflate_vec(input: &[u8], cap: usize, out: &mut Vec<u8>, framing: Framing) -> Inflated {
    out.clear();
    out.reserve(cap);
    let room = out.spare_capacity_mut();
    // SAFETY: the spare capacity is allocated, valid for writes of `room.len()` (≥ `cap`)
    // bytes and not aliased. libdeflate writes output strictly from the start of the buffer;
    // when it reports success, the first `produced` bytes (≤ `room.len()`) are the decoded
    // content it wrote, so `set_len(produced)` exposes only initialised bytes. (Its copy loops
    // may read words of the buffer past the write position, which it then overwrites; those
    // reads happen inside the separately compiled C code, on allocated memory, and never reach
    // Rust.) On any failure the length stays 0.
    #[allow(unsafe_code)]
    unsafe {
        let r = inflate(
            input,
            room.as_mut_ptr().cast(),
            cap.min(room.len()),
            framing,
        );
        if let Inflated::Done { produced, .. } = r {
            out.set_len(produced);
        }
        r
    }
}

/// Decode the raw deflate (RFC 1951) stream at the start of `input` into a vector with room for
/// at most `cap` bytes (cleared first; on success holding exactly the bytes produced, without
/// ever zero-filling the room).
pub(crate) fn inflate_raw_vec(input: &[u8], cap: usize, out: &mut Vec<u8>) -> Inflated {
    inflate_vec(input, cap, out, Framing::Raw)
}

/// Decode the zlib (RFC 1950) stream at the start of `input`, checking its Adler-32, into a
/// vector with room for at most `cap` bytes (as [`inflate_raw_vec`]).
pub(crate) fn inflate_zlib_vec(input: &[u8], cap: usize, out: &mut Vec<u8>) -> Inflated {
    inflate_vec(input, cap, out, Framing::Zlib)
}

/// The Adler-32 checksum of `data`, continuing from `adler` (start with 1), as zlib streams end
/// with. libdeflate's vectorised version is several times faster than a scalar one.
pub fn adler32(adler: u32, data: &[u8]) -> u32 {
    // SAFETY: `data` is valid for reads of `data.len()` bytes; libdeflate only reads them.
    #[allow(unsafe_code)]
    unsafe {
        libdeflate_adler32(adler, data.as_ptr().cast(), data.len())
    }
}

/// A libdeflate compressor at one level (owned; freed on drop).
pub(crate) struct ZlibCompressor(NonNull<libdeflate_compressor>);

// SAFETY: a libdeflate compressor is plain heap memory with no thread affinity; it is only used
// through `&mut self`, so never by two threads at once.
#[allow(unsafe_code)]
unsafe impl Send for ZlibCompressor {}

impl ZlibCompressor {
    /// A compressor for libdeflate `level` (0..=12); `None` if out of memory or invalid level.
    pub(crate) fn new(level: i32) -> Option<Self> {
        // SAFETY: no preconditions; an invalid level or out of memory gives null, turned into
        // `None`.
        #[allow(unsafe_code)]
        let p = unsafe { libdeflate_alloc_compressor(level) };
        NonNull::new(p).map(Self)
    }

    /// Compress `input` as one complete zlib stream, appending it to `out`. Returns false (and
    /// leaves `out` as it was) if libdeflate produced nothing.
    pub(crate) fn compress_into(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        // SAFETY: the compressor is live and used by this `&mut self` only.
        #[allow(unsafe_code)]
        let bound = unsafe { libdeflate_zlib_compress_bound(self.0.as_ptr(), input.len()) };
        let start = out.len();
        out.resize(start + bound, 0);
        // SAFETY: `input` is valid for `input.len()` bytes of reads and `out[start..]` for
        // `bound` bytes of writes; libdeflate writes only there and keeps no pointer.
        #[allow(unsafe_code)]
        let n = unsafe {
            libdeflate_zlib_compress(
                self.0.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                out[start..].as_mut_ptr().cast(),
                bound,
            )
        };
        // `bound` is libdeflate's own worst case for this input, so `n` should never be 0; if it
        // is, report it rather than leave an empty stream.
        out.truncate(start + n);
        n != 0
    }
}

impl Drop for ZlibCompressor {
    fn drop(&mut self) {
        // SAFETY: the pointer came from libdeflate_alloc_compressor, is non-null, and is freed
        // exactly once (here).
        #[allow(unsafe_code)]
        unsafe {
            libdeflate_free_compressor(self.0.as_ptr())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn decodes_and_reports_consumption() {
        let data = b"hello hello hello deflate".repeat(100);
        let mut z = deflate(&data);
        let n = z.len();
        let cap = data.len() + 1;
        let mut out = Vec::new();
        assert_eq!(
            inflate_raw_vec(&z, cap, &mut out),
            Inflated::Done {
                consumed: n,
                produced: data.len()
            }
        );
        assert_eq!(out, data);
        // Trailing bytes are reported through `consumed`.
        z.extend_from_slice(b"junk");
        assert!(
            matches!(inflate_raw_vec(&z, cap, &mut out), Inflated::Done { consumed, .. } if consumed == n)
        );
        // Too small an output, and garbage.
        assert_eq!(inflate_raw_vec(&z, 10, &mut out), Inflated::TooLong);
        assert_eq!(
            inflate_raw_vec(b"\xff\xff\xff\xff not deflate", cap, &mut out),
            Inflated::Corrupt
        );
        assert!(matches!(
            inflate_raw_vec(&z[..n / 2], cap, &mut out),
            Inflated::Corrupt
        ));
    }

    #[test]
    fn adler32_matches_the_definition() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let (mut a, mut b) = (1u32, 0u32);
        for &x in &data {
            a = (a + u32::from(x)) % 65_521;
            b = (b + a) % 65_521;
        }
        assert_eq!(adler32(1, &data), (b << 16) | a);
        // Incremental use gives the same value.
        assert_eq!(
            adler32(adler32(1, &data[..777]), &data[777..]),
            (b << 16) | a
        );
        assert_eq!(adler32(1, b""), 1);
    }

    #[test]
    fn zlib_streams_decode_with_zlib_rs_and_back() {
        let mut x: u32 = 7;
        let mut data = Vec::new();
        for i in 0..200_000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            data.extend_from_slice(format!("{i} {} ", x % 1000).as_bytes());
        }
        for level in [1, 6, 12] {
            let mut c = ZlibCompressor::new(level).unwrap();
            let mut z = b"prefix".to_vec();
            assert!(c.compress_into(&data, &mut z));
            let z = &z[6..];
            assert!(z.len() < data.len() / 2);
            // zlib-rs (flate2) decodes libdeflate's stream ...
            let mut back = Vec::new();
            flate2::read::ZlibDecoder::new(z)
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data);
            // ... and libdeflate decodes it, checking the Adler-32.
            let mut out = Vec::new();
            assert_eq!(
                inflate_zlib_vec(z, data.len(), &mut out),
                Inflated::Done {
                    consumed: z.len(),
                    produced: data.len()
                }
            );
            assert_eq!(out, data);
            let mut bad = z.to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert_eq!(
                inflate_zlib_vec(&bad, data.len(), &mut out),
                Inflated::Corrupt
            );
        }
        // The empty input is a valid stream too.
        let mut z = Vec::new();
        assert!(ZlibCompressor::new(1).unwrap().compress_into(b"", &mut z));
        assert_eq!(
            inflate_zlib_vec(&z, 0, &mut Vec::new()),
            Inflated::Done {
                consumed: z.len(),
                produced: 0
            }
        );
    }
}
