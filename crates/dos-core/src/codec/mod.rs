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
//! - [`zlib`]-framed coders for packed objects: [`Compressor`], [`Decompressor`] (whole
//!   buffers), [`ZlibEncoder`], [`ZlibDecoder`] (streams);
//! - [`deflate`]: raw deflate (RFC 1951), the coding of zip entries;
//! - AUTO's decision ([`auto_should_compress`]), Python's sampling plan.

pub mod deflate;
mod libdeflate;
pub mod zlib;

pub use zlib::{Compressor, Decompressor, InflateError, ZlibDecoder, ZlibEncoder, with_compressor};

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
