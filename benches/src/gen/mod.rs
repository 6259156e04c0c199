//! A deterministic generator of AiiDA-like repository content.
//!
//! From `(n, seed)` it derives a [`Plan`]: for every object its kind, size and content seed, and
//! whether it repeats an earlier object. Contents are produced on demand from the plan, so a data
//! set of any size can be written (or hashed, or fed to a benchmark) one object at a time.
//!
//! The distribution imitates an AiiDA repository:
//! - sizes are log-normal (median 3 KB, mean about 14 KB, clipped at 1.5 MB);
//! - about 1 % of the objects are empty or tiny (under 100 bytes);
//! - a handful (one per 20,000 objects, at least one) are 2–8 MB;
//! - about 14 % repeat an earlier object byte for byte;
//! - content is a mix of Quantum ESPRESSO-like text output, JSON attribute dictionaries, `.npy`
//!   float arrays (compressible) and random bytes (incompressible).
//!
//! Everything is computed with an inline PRNG (SplitMix64 seeding xoshiro256**) and with plain
//! IEEE arithmetic (no `libm` calls), so the output is the same on every platform and never changes
//! with crate versions. Changing the output is a format change: bump [`GENERATOR_VERSION`].

use rayon::prelude::*;

mod content;
mod dataset;

use content::render;
pub use dataset::{Dataset, Entry, rel_path};

/// Version of the generated content; part of the manifest header, so a cached data set made by
/// another version is regenerated.
pub const GENERATOR_VERSION: u32 = 1;

/// Name of the manifest file inside a data set folder.
pub const MANIFEST: &str = "manifest.tsv";

/// Default number of objects.
pub const DEFAULT_N: usize = 100_000;

/// Default seed.
pub const DEFAULT_SEED: u64 = 42;

// ------------------------------------------------------------------------------------------------
// PRNG

/// One SplitMix64 step: advances `state` and returns the next output.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** seeded with SplitMix64: small, fast and fully specified here.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose whole sequence is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut st = seed;
        Self {
            s: [
                splitmix64(&mut st),
                splitmix64(&mut st),
                splitmix64(&mut st),
                splitmix64(&mut st),
            ],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform integer in `0..n` (`n > 0`; multiply-shift, bias below 2^-64 * n).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform integer in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// An approximately standard normal deviate (Irwin–Hall: sum of 12 uniforms minus 6; only
    /// additions, so it is bit-for-bit reproducible everywhere).
    pub fn normal(&mut self) -> f64 {
        let mut s = 0.0;
        for _ in 0..12 {
            s += self.unit();
        }
        s - 6.0
    }

    /// Fill `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        let len = rest.len();
        rest.copy_from_slice(&last[..len]);
    }
}

/// `e^x` with basic IEEE operations only (range reduction and a Taylor series), so results do
/// not depend on the platform's `libm`. Accurate to a few ulps for `|x| < 700`.
pub fn det_exp(x: f64) -> f64 {
    let k = (x / std::f64::consts::LN_2).round();
    let r = x - k * std::f64::consts::LN_2;
    let mut term = 1.0;
    let mut sum = 1.0;
    for i in 1..=22 {
        term *= r / f64::from(i);
        sum += term;
    }
    let e = (k as i64 + 1023).clamp(1, 2046) as u64;
    sum * f64::from_bits(e << 52)
}

// ------------------------------------------------------------------------------------------------
// Plan

/// Parameters of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenOptions {
    /// Number of objects (files), duplicates included.
    pub n: usize,
    /// Seed of everything.
    pub seed: u64,
}

impl Default for GenOptions {
    fn default() -> Self {
        Self {
            n: DEFAULT_N,
            seed: DEFAULT_SEED,
        }
    }
}

/// What an object contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Quantum ESPRESSO-like text output: lines of labels and numbers.
    Text,
    /// A JSON dictionary of node attributes.
    Json,
    /// A `.npy` file of `float64` values with few significant bits (compressible).
    Numpy,
    /// Random bytes (incompressible).
    Random,
}

impl Kind {
    /// A short lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Json => "json",
            Kind::Numpy => "numpy",
            Kind::Random => "random",
        }
    }
}

/// The recipe of one object's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Desc {
    /// Content kind.
    pub kind: Kind,
    /// Exact size in bytes.
    pub size: u64,
    /// Seed of the content.
    pub content_seed: u64,
    /// Index of the first object with this recipe (itself when the object is not a repeat).
    pub original: usize,
}

/// Median of the log-normal size distribution (bytes).
const MEDIAN: f64 = 3000.0;
/// Sigma of the log-normal size distribution (of `ln(size)`).
const SIGMA: f64 = 1.75;
/// Largest size drawn from the log-normal distribution.
const CLIP: u64 = 1_500_000;
/// Probability that an object repeats an earlier one.
const P_DUPLICATE: f64 = 0.135;
/// Probability of an empty object, and of a tiny one.
const P_EMPTY: f64 = 0.005;
const P_TINY: f64 = 0.005;
/// One large (2–8 MB) object per this many objects (at least one).
const LARGE_EVERY: usize = 20_000;

/// The recipes of all objects of a data set.
#[derive(Debug, Clone)]
pub struct Plan {
    opts: GenOptions,
    descs: Vec<Desc>,
}

impl Plan {
    /// Derive the plan of `opts.n` objects from `opts.seed` (cheap: no content is produced).
    pub fn new(opts: GenOptions) -> Plan {
        let n = opts.n;
        let mut rng = Rng::new(opts.seed ^ 0x6469_736b_6f62_6a73); // "diskobjs"
        let mut large = vec![false; n];
        if n > 0 {
            let count = (n / LARGE_EVERY).max(1);
            for _ in 0..count {
                large[rng.below(n as u64) as usize] = true;
            }
        }
        let mut descs: Vec<Desc> = Vec::with_capacity(n);
        for (i, &is_large) in large.iter().enumerate() {
            let content_seed = rng.next_u64();
            let u = rng.unit();
            let pick = rng.next_u64();
            if is_large {
                let size = rng.range(2_000_000, 8_000_000);
                let kind = match pick % 3 {
                    0 => Kind::Numpy,
                    1 => Kind::Text,
                    _ => Kind::Random,
                };
                descs.push(Desc {
                    kind,
                    size,
                    content_seed,
                    original: i,
                });
                continue;
            }
            if i > 0 && u < P_DUPLICATE {
                let j = rng.below(i as u64) as usize;
                let mut d = descs[j];
                if d.size >= 2_000_000 {
                    // Keep the large objects unique; repeat the previous object instead.
                    d = descs[i - 1];
                }
                descs.push(d);
                continue;
            }
            let (kind, size) = if u < P_DUPLICATE + P_EMPTY {
                (Kind::Text, 0)
            } else if u < P_DUPLICATE + P_EMPTY + P_TINY {
                let kind = if pick.is_multiple_of(2) {
                    Kind::Text
                } else {
                    Kind::Json
                };
                (kind, rng.range(1, 99))
            } else {
                // Redraw below 100 B: tiny objects come only from the 0.5 % above.
                let size = loop {
                    let size = (MEDIAN * det_exp(SIGMA * rng.normal())) as u64;
                    if size >= 100 {
                        break size.min(CLIP);
                    }
                };
                let kind = match pick % 100 {
                    0..40 => Kind::Text,
                    40..70 => Kind::Json,
                    70..85 => Kind::Numpy,
                    _ => Kind::Random,
                };
                (kind, size)
            };
            descs.push(Desc {
                kind,
                size,
                content_seed,
                original: i,
            });
        }
        Plan { opts, descs }
    }

    /// The options the plan was made from.
    pub fn options(&self) -> GenOptions {
        self.opts
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.descs.len()
    }

    /// Whether the plan has no objects.
    pub fn is_empty(&self) -> bool {
        self.descs.is_empty()
    }

    /// The recipe of object `i`.
    pub fn desc(&self, i: usize) -> Desc {
        self.descs[i]
    }

    /// Exact size of object `i`.
    pub fn size(&self, i: usize) -> u64 {
        self.descs[i].size
    }

    /// Sum of all sizes.
    pub fn total_bytes(&self) -> u64 {
        self.descs.iter().map(|d| d.size).sum()
    }

    /// The content of object `i`.
    pub fn content(&self, i: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        self.write_content(i, &mut buf);
        buf
    }

    /// Replace the contents of `buf` with the content of object `i`.
    pub fn write_content(&self, i: usize, buf: &mut Vec<u8>) {
        render(&self.descs[i], buf);
    }

    /// A short hex fingerprint of the plan and of a sample of contents; part of the manifest
    /// header, so that a cached data set made by a different generator is not reused.
    pub fn fingerprint(&self) -> String {
        let mut h = dos_core::HashType::Sha256.hasher();
        for d in &self.descs {
            h.update(&d.size.to_le_bytes());
            h.update(&d.content_seed.to_le_bytes());
            h.update(&(d.original as u64).to_le_bytes());
            h.update(d.kind.name().as_bytes());
        }
        let n = self.len();
        let mut buf = Vec::new();
        for k in 0..16 {
            let i = k * n / 16;
            if i < n && self.descs[i].size <= 1_000_000 {
                self.write_content(i, &mut buf);
                h.update(&buf);
            }
        }
        let mut hex = h.finalize().to_string();
        hex.truncate(16);
        hex
    }

    /// All contents in memory (for small benchmarks).
    pub fn contents(&self) -> Vec<Vec<u8>> {
        (0..self.len())
            .into_par_iter()
            .map(|i| self.content(i))
            .collect()
    }
}

// ------------------------------------------------------------------------------------------------
// Content

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_exact_sizes() {
        let a = Plan::new(GenOptions { n: 2000, seed: 7 });
        let b = Plan::new(GenOptions { n: 2000, seed: 7 });
        for i in (0..2000).step_by(37) {
            let c = a.content(i);
            assert_eq!(c.len() as u64, a.size(i));
            assert_eq!(c, b.content(i));
        }
    }

    #[test]
    fn prng_reference_values() {
        // Pinned so the generated data never changes silently.
        let mut r = Rng::new(42);
        let v: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(v, PINNED);
        assert!((det_exp(1.0) - std::f64::consts::E).abs() < 1e-15);
        assert!((det_exp(-3.5) - 0.030_197_383_422_318_5).abs() < 1e-17);
    }

    const PINNED: [u64; 3] = [
        1_546_998_764_402_558_742,
        6_990_951_692_964_543_102,
        12_544_586_762_248_559_009,
    ];
}
