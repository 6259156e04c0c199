//! Random access inside one zlib stream, with the format unchanged.
//!
//! Deflate has no index: a byte in the middle of a stream depends on everything before it, but
//! only through the inflater's state at the start of a block, which is small: the position in the
//! compressed input (a byte and a bit count, since blocks are not byte-aligned) and the last
//! 32 KiB of output (the window back-references reach into). [`ZlibSeekReader`] records that
//! state at a block boundary every [`ZlibSeekReader::spacing`] bytes of output while it decodes,
//! and a seek resumes from the nearest recorded point at or before the target with a raw inflater
//! primed with those bits and that window. Some encoders (zlib-rs and zlib-ng at level 1) write
//! blocks of megabytes; where no block ends within one and a half spacings, the reader records
//! a copy of the whole inflater state instead (about 40 KiB), which resumes mid-block. A seek so
//! decodes at most about 1.5 spacings, whatever the object's size and the order of the seeks.
//! Nothing is written to disk; the spacing grows with the object so that no stream holds more
//! than [`MAX_POINTS`] points (at most about 40 MiB).
//!
//! A stream resumed from a point is decoded without zlib's header and trailer, so its Adler-32
//! is not checked; callers that need integrity hash the content (as validation does).

use std::io::{self, Read, Seek, SeekFrom};

use libz_rs_sys as z;

/// Output between recorded points for objects up to `MIN_SPACING * MAX_POINTS` bytes.
pub const MIN_SPACING: u64 = 256 * 1024;

/// Most points a stream records (at most about 40 KiB each).
pub const MAX_POINTS: u64 = 1024;

/// Deflate's largest window.
const WINDOW: usize = 32 * 1024;

/// Compressed bytes read from the source at a time.
const INBUF: usize = 128 * 1024;

/// `data_type` flag: inflate stopped right after a block's end (or after the zlib header).
const AT_BLOCK_END: i32 = 128;
/// `data_type` flag: the current block is the stream's last.
const IN_LAST_BLOCK: i32 = 64;

/// An inflater over zlib-rs's C interface (which, unlike the Rust one, can be primed with bits
/// and reports where blocks end). The stream state is heap-allocated and never moves: zlib's
/// state points back at its `z_stream`.
struct Inflater {
    strm: Box<z::z_stream>,
}

// SAFETY: the inflater owns its state exclusively (nothing else holds the `z_stream` or its
// internal state), the state has no thread affinity, and `next_in`/`next_out` are cleared after
// every call, so no pointer into another thread's memory survives a call. It is only used through
// `&mut self`, so never by two threads at once.
#[allow(unsafe_code)]
unsafe impl Send for Inflater {}

// SAFETY: through `&self` the inflater only reads its state (`data_type`, and
// inflateGetDictionary, which copies the window out through a const pointer); everything that
// changes the state takes `&mut self`. Shared references so never race with a write.
#[allow(unsafe_code)]
unsafe impl Sync for Inflater {}

fn zerr(what: &str, rc: i32) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("corrupt zlib stream ({what}: zlib code {rc})"),
    )
}

impl Inflater {
    /// An inflater expecting a zlib header (`raw == false`) or a raw deflate stream.
    fn new() -> io::Result<Self> {
        let mut strm = Box::new(z::z_stream::default());
        let size = i32::try_from(std::mem::size_of::<z::z_stream>()).unwrap_or(i32::MAX);
        // SAFETY: `strm` is a freshly defaulted z_stream (null buffers, the crate's allocator
        // functions) at a stable heap address; the version string is the library's own, and the
        // size is that of the struct the library defines.
        #[allow(unsafe_code)]
        let rc = unsafe { z::inflateInit2_(&mut *strm, 15, z::zlibVersion(), size) };
        if rc != z::Z_OK {
            return Err(io::Error::other(format!(
                "cannot allocate a zlib inflater (zlib code {rc})"
            )));
        }
        Ok(Self { strm })
    }

    /// Start over: a zlib stream (`raw == false`) or raw deflate.
    fn reset(&mut self, raw: bool) -> io::Result<()> {
        let bits = if raw { -15 } else { 15 };
        // SAFETY: the stream was initialised by inflateInit2_ and is alive (ended only on drop).
        #[allow(unsafe_code)]
        let rc = unsafe { z::inflateReset2(&mut *self.strm, bits) };
        if rc == z::Z_OK {
            Ok(())
        } else {
            Err(zerr("reset", rc))
        }
    }

    /// Feed the low `bits` bits of `value` as the first input bits (a block starting mid-byte).
    fn prime(&mut self, bits: u8, value: u8) -> io::Result<()> {
        // SAFETY: initialised, live stream; `bits` is at most 7, within inflatePrime's 0..=16.
        #[allow(unsafe_code)]
        let rc = unsafe { z::inflatePrime(&mut *self.strm, i32::from(bits), i32::from(value)) };
        if rc == z::Z_OK {
            Ok(())
        } else {
            Err(zerr("prime", rc))
        }
    }

    /// Preset the window (the output that precedes the resume point).
    fn set_window(&mut self, window: &[u8]) -> io::Result<()> {
        let len = u32::try_from(window.len()).unwrap_or(u32::MAX);
        // SAFETY: initialised, live stream in raw mode; `window` is a live slice of `len` bytes
        // (at most 32 KiB), only read during the call.
        #[allow(unsafe_code)]
        let rc = unsafe { z::inflateSetDictionary(&mut *self.strm, window.as_ptr(), len) };
        if rc == z::Z_OK {
            Ok(())
        } else {
            Err(zerr("set window", rc))
        }
    }

    /// A copy of the current window (the last up to 32 KiB of output).
    fn window(&self) -> Box<[u8]> {
        let mut buf = vec![0u8; WINDOW];
        let mut len: u32 = 0;
        // SAFETY: initialised, live stream; `buf` has room for 32 KiB, the most the window holds
        // (inflateGetDictionary's documented bound), and `len` is a valid u32 to write.
        #[allow(unsafe_code)]
        let rc = unsafe { z::inflateGetDictionary(&*self.strm, buf.as_mut_ptr(), &mut len) };
        let len = if rc == z::Z_OK {
            (len as usize).min(WINDOW)
        } else {
            0
        };
        buf.truncate(len);
        buf.into_boxed_slice()
    }

    /// Inflate from `input` into `output`, stopping at block ends; returns (bytes consumed,
    /// bytes produced, zlib's code).
    fn inflate(&mut self, input: &[u8], output: &mut [u8]) -> (usize, usize, i32) {
        let in_len = input.len().min(u32::MAX as usize);
        let out_len = output.len().min(u32::MAX as usize);
        self.strm.next_in = input.as_ptr();
        self.strm.avail_in = in_len as u32;
        self.strm.next_out = output.as_mut_ptr();
        self.strm.avail_out = out_len as u32;
        // SAFETY: initialised, live stream; `next_in`/`next_out` point into slices that are
        // borrowed for this whole call with at least `avail_in`/`avail_out` bytes; inflate reads
        // and writes only within them. They are cleared before returning.
        #[allow(unsafe_code)]
        let rc = unsafe { z::inflate(&mut *self.strm, z::Z_BLOCK) };
        let consumed = in_len - self.strm.avail_in as usize;
        let produced = out_len - self.strm.avail_out as usize;
        self.strm.next_in = std::ptr::null();
        self.strm.avail_in = 0;
        self.strm.next_out = std::ptr::null_mut();
        self.strm.avail_out = 0;
        (consumed, produced, rc)
    }

    /// A copy of the whole state (window, bit buffer, the current block's tables), which
    /// resumes exactly where this one stands given the input from the same offset.
    fn try_clone(&mut self) -> io::Result<Inflater> {
        let mut dest = Box::new(z::z_stream::default());
        let mut dummy = [0u8; 1];
        // inflateCopy refuses a source without an output buffer; give it an empty one.
        self.strm.next_out = dummy.as_mut_ptr();
        self.strm.avail_out = 0;
        // SAFETY: `self.strm` is an initialised, live stream with no input pending (null
        // `next_in`, zero `avail_in`) and a valid (empty) output buffer; `dest` is a fully
        // initialised z_stream at a stable heap address that inflateCopy overwrites, giving it
        // its own state and window.
        #[allow(unsafe_code)]
        let rc = unsafe { z::inflateCopy(&mut *dest, &*self.strm) };
        self.strm.next_out = std::ptr::null_mut();
        dest.next_out = std::ptr::null_mut();
        dest.avail_out = 0;
        if rc == z::Z_OK {
            Ok(Inflater { strm: dest })
        } else {
            // `dest` was not initialised: forget it rather than end it.
            std::mem::forget(dest);
            Err(zerr("copy", rc))
        }
    }

    fn data_type(&self) -> i32 {
        self.strm.data_type
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: initialised stream, ended exactly once here; inflateEnd frees the state.
        #[allow(unsafe_code)]
        unsafe {
            z::inflateEnd(&mut *self.strm);
        }
    }
}

/// Where decoding can resume: the output offset, the compressed offset of the next byte to feed,
/// and the state to resume with.
struct Point {
    out: u64,
    input: u64,
    how: Resume,
}

enum Resume {
    /// At a block boundary: the bits of the byte before `input` that belong to the next block,
    /// and the window.
    Boundary { bits: u8, window: Box<[u8]> },
    /// Anywhere: the whole inflater state.
    State(Inflater),
}

/// A seekable reader of one zlib stream read from `R` (positioned at the stream's start), which
/// records resume points as it decodes (see the module docs).
pub struct ZlibSeekReader<R: Read + Seek> {
    src: R,
    inf: Inflater,
    inbuf: Box<[u8]>,
    in_lo: usize,
    in_hi: usize,
    /// Compressed offset just after `inbuf[..in_hi]`.
    in_end: u64,
    src_eof: bool,
    out: u64,
    ended: bool,
    points: Vec<Point>,
    spacing: u64,
    decoded: u64,
}

impl<R: Read + Seek> ZlibSeekReader<R> {
    /// A reader of the stream in `src` (from its position 0), whose uncompressed size is about
    /// `size` (it sets the spacing of the points; decoding does not depend on it).
    pub fn new(src: R, size: u64) -> io::Result<Self> {
        Ok(Self {
            src,
            inf: Inflater::new()?,
            inbuf: vec![0u8; INBUF].into_boxed_slice(),
            in_lo: 0,
            in_hi: 0,
            in_end: 0,
            src_eof: false,
            out: 0,
            ended: false,
            points: Vec::new(),
            spacing: MIN_SPACING.max(size.div_ceil(MAX_POINTS)),
            decoded: 0,
        })
    }

    /// Output between two recorded points.
    pub fn spacing(&self) -> u64 {
        self.spacing
    }

    /// Points recorded so far.
    pub fn points(&self) -> usize {
        self.points.len()
    }

    /// Bytes of output so far (the reader's position).
    pub fn position(&self) -> u64 {
        self.out
    }

    /// Bytes decoded since the reader was made, seeks included (what seeking cost).
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// Whether the stream's end was decoded.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Compressed offset of the next byte inflate will consume.
    fn consumed(&self) -> u64 {
        self.in_end - (self.in_hi - self.in_lo) as u64
    }

    fn record_point(&mut self) -> io::Result<()> {
        if self.out == 0 || self.ended {
            return Ok(());
        }
        let last = self.points.last().map_or(0, |p| p.out);
        if self.out < last + self.spacing {
            return Ok(());
        }
        let dt = self.inf.data_type();
        let input = self.consumed();
        let bits = (dt & 7) as u8;
        let how = if dt & AT_BLOCK_END != 0 && dt & IN_LAST_BLOCK == 0 && !(bits > 0 && input == 0)
        {
            Resume::Boundary {
                bits,
                window: self.inf.window(),
            }
        } else if self.out >= last + self.spacing + self.spacing / 2 {
            Resume::State(self.inf.try_clone()?)
        } else {
            return Ok(());
        };
        self.points.push(Point {
            out: self.out,
            input,
            how,
        });
        Ok(())
    }

    /// Decode into `buf`: returns bytes produced, 0 only at the stream's end. A stream whose
    /// compressed bytes run out first is an `UnexpectedEof` error.
    pub fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.ended {
            return Ok(0);
        }
        loop {
            if self.in_lo == self.in_hi && !self.src_eof {
                let n = self.src.read(&mut self.inbuf)?;
                self.in_lo = 0;
                self.in_hi = n;
                self.in_end += n as u64;
                self.src_eof = n == 0;
            }
            let (c, p, rc) = self.inf.inflate(&self.inbuf[self.in_lo..self.in_hi], buf);
            self.in_lo += c;
            self.out += p as u64;
            self.decoded += p as u64;
            match rc {
                z::Z_STREAM_END => self.ended = true,
                z::Z_OK | z::Z_BUF_ERROR => {}
                z::Z_NEED_DICT => return Err(zerr("needs a preset dictionary", rc)),
                _ => return Err(zerr("inflate", rc)),
            }
            self.record_point()?;
            if p > 0 || self.ended {
                return Ok(p);
            }
            if c == 0 && self.src_eof {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "compressed stream ends after {} bytes of output, inside its data",
                        self.out
                    ),
                ));
            }
        }
    }

    /// Restart from the stream's beginning.
    fn restart(&mut self) -> io::Result<()> {
        self.inf.reset(false)?;
        self.src.seek(SeekFrom::Start(0))?;
        self.reset_input(0);
        self.out = 0;
        self.ended = false;
        Ok(())
    }

    fn reset_input(&mut self, at: u64) {
        self.in_lo = 0;
        self.in_hi = 0;
        self.in_end = at;
        self.src_eof = false;
    }

    /// Resume from point `i`.
    fn resume(&mut self, i: usize) -> io::Result<()> {
        let p = &mut self.points[i];
        let (out, input) = (p.out, p.input);
        match &mut p.how {
            Resume::Boundary { bits, window } => {
                self.inf.reset(true)?;
                if *bits > 0 {
                    let mut byte = [0u8; 1];
                    self.src.seek(SeekFrom::Start(input - 1))?;
                    self.src.read_exact(&mut byte)?;
                    self.inf.prime(*bits, byte[0] >> (8 - *bits))?;
                }
                self.inf.set_window(window)?;
            }
            Resume::State(state) => self.inf = state.try_clone()?,
        }
        self.src.seek(SeekFrom::Start(input))?;
        self.reset_input(input);
        self.out = out;
        self.ended = false;
        Ok(())
    }

    /// Move to output offset `target` (at most the stream's length; past its end reads 0):
    /// resume from the nearest point at or before it when that is ahead of the current position
    /// or the target is behind, then decode and discard up to it.
    pub fn seek_to(&mut self, target: u64) -> io::Result<()> {
        if target == self.out {
            return Ok(());
        }
        let i = self.points.partition_point(|p| p.out <= target);
        let best = i.checked_sub(1);
        let best_out = best.map_or(0, |b| self.points[b].out);
        if target < self.out || best_out > self.out {
            match best {
                Some(b) => self.resume(b)?,
                None => self.restart()?,
            }
        }
        super::discard_until(self, target, Self::position, Self::read_some)
    }

    /// The source back.
    pub fn into_inner(self) -> R {
        self.src
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    pub(super) fn sample(n: usize) -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Text-like: mostly repeats, some noise, so blocks end at odd bit offsets.
                if x.is_multiple_of(7) {
                    (x >> 24) as u8
                } else {
                    b"abcdefgh"[i % 8]
                }
            })
            .collect()
    }

    fn zlib(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn read_at(r: &mut ZlibSeekReader<Cursor<Vec<u8>>>, at: u64, n: usize) -> Vec<u8> {
        r.seek_to(at).unwrap();
        let mut out = vec![0u8; n];
        let mut got = 0;
        while got < n {
            let k = r.read_some(&mut out[got..]).unwrap();
            if k == 0 {
                break;
            }
            got += k;
        }
        out.truncate(got);
        out
    }

    #[test]
    fn sequential_read_matches_and_records_points() {
        let data = sample(3_000_000);
        for level in [1, 6, 9] {
            let z = zlib(&data, level);
            let mut r = ZlibSeekReader::new(Cursor::new(z), data.len() as u64).unwrap();
            let mut out = Vec::new();
            let mut buf = vec![0u8; 10_000];
            loop {
                let n = r.read_some(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(out, data, "level {level}");
            assert!(r.ended());
            assert!(r.points() >= 6, "{} points", r.points());
        }
    }

    #[test]
    fn random_seeks_match_the_data() {
        let data = sample(2_500_000);
        let z = zlib(&data, 6);
        let mut r = ZlibSeekReader::new(Cursor::new(z), data.len() as u64).unwrap();
        let mut x: u64 = 12345;
        for _ in 0..300 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (x >> 20) % data.len() as u64;
            let n = ((x >> 8) % 9000) as usize;
            let got = read_at(&mut r, at, n);
            let end = (at as usize + n).min(data.len());
            assert_eq!(got, &data[at as usize..end], "at {at} n {n}");
        }
        // The end, then back to the start.
        assert_eq!(
            read_at(&mut r, data.len() as u64 - 3, 10),
            &data[data.len() - 3..]
        );
        assert_eq!(read_at(&mut r, 0, 5), &data[..5]);
    }

    #[test]
    fn a_seek_decodes_at_most_about_one_spacing() {
        let data = sample(8_000_000);
        let z = zlib(&data, 1);
        let mut r = ZlibSeekReader::new(Cursor::new(z), data.len() as u64).unwrap();
        read_at(&mut r, data.len() as u64 - 1, 1);
        let points = r.points();
        assert!(points as u64 >= data.len() as u64 * 2 / (3 * r.spacing()) - 1);
        let mut x: u64 = 99;
        for _ in 0..200 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (x >> 20) % data.len() as u64;
            let before = r.decoded();
            assert_eq!(
                read_at(&mut r, at, 4096),
                &data[at as usize..(at as usize + 4096).min(data.len())]
            );
            // Points lie at most 1.5 spacings apart, plus one decoding step (64 KiB) past the
            // threshold; then the read itself.
            let cost = r.decoded() - before;
            assert!(cost <= r.spacing() * 3 / 2 + 64 * 1024 + 4096, "{cost}");
        }
        assert_eq!(r.points(), points, "re-reads add no points");
    }

    #[test]
    fn truncated_and_damaged_streams_are_errors() {
        let data = sample(500_000);
        let z = zlib(&data, 6);
        let mut r = ZlibSeekReader::new(Cursor::new(z[..z.len() / 2].to_vec()), 0).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let err = loop {
            match r.read_some(&mut buf) {
                Ok(0) => panic!("a truncated stream ended cleanly"),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let mut bad = z.clone();
        bad[0] ^= 0xFF;
        let mut r = ZlibSeekReader::new(Cursor::new(bad), 0).unwrap();
        assert_eq!(
            r.read_some(&mut buf).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
