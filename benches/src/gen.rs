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

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use dos_core::ObjectKey;
use rayon::prelude::*;

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

fn render(d: &Desc, buf: &mut Vec<u8>) {
    buf.clear();
    let size = usize::try_from(d.size).unwrap_or(usize::MAX);
    if size == 0 {
        return;
    }
    buf.reserve(size + 4096);
    let mut rng = Rng::new(d.content_seed);
    match d.kind {
        Kind::Text => text(&mut rng, buf, size),
        Kind::Json => json(&mut rng, buf, size),
        Kind::Numpy => numpy(&mut rng, buf, size),
        Kind::Random => {
            buf.resize(size, 0);
            rng.fill(buf);
        }
    }
    buf.truncate(size);
}

/// Append `n` decimal digits of a random number below `10^n` (with leading zeros).
fn digits(rng: &mut Rng, buf: &mut Vec<u8>, n: usize) {
    let mut r = rng.next_u64();
    for k in 0..n {
        if k > 0 && k % 18 == 0 {
            r = rng.next_u64();
        }
        buf.push(b'0' + (r % 10) as u8);
        r /= 10;
    }
}

/// Append a fixed-point number with up to `int` integer digits and `frac` decimals, right-aligned
/// in `width` characters (like Fortran `F` formats).
fn fixed(rng: &mut Rng, buf: &mut Vec<u8>, width: usize, int: u32, frac: usize, signed: bool) {
    let r = rng.next_u64();
    let neg = signed && r & 1 == 1;
    let ip = (r >> 1) % 10u64.pow(int);
    let mut tmp = [0u8; 24];
    let mut p = tmp.len();
    let mut v = ip;
    loop {
        p -= 1;
        tmp[p] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if neg {
        p -= 1;
        tmp[p] = b'-';
    }
    let len = tmp.len() - p + 1 + frac;
    for _ in len..width {
        buf.push(b' ');
    }
    buf.extend_from_slice(&tmp[p..]);
    buf.push(b'.');
    digits(rng, buf, frac);
}

fn int(rng: &mut Rng, buf: &mut Vec<u8>, width: usize, max: u64) {
    let s = rng.below(max).to_string();
    for _ in s.len()..width {
        buf.push(b' ');
    }
    buf.extend_from_slice(s.as_bytes());
}

const ELEMENTS: [&str; 12] = [
    "Si", "O", "H", "C", "N", "Fe", "Ba", "Ti", "Al", "Cu", "Li", "Zn",
];

fn text(rng: &mut Rng, buf: &mut Vec<u8>, size: usize) {
    let mut iteration = 1;
    while buf.len() < size {
        let pick = rng.below(100);
        match pick {
            0..45 => {
                // Eigenvalues block.
                buf.extend_from_slice(b"  ");
                for _ in 0..8 {
                    fixed(rng, buf, 9, 2, 4, true);
                }
                buf.push(b'\n');
            }
            45..52 => {
                buf.extend_from_slice(b"\n          k =");
                for _ in 0..3 {
                    fixed(rng, buf, 7, 1, 4, true);
                }
                buf.extend_from_slice(b" (");
                int(rng, buf, 6, 99_999);
                buf.extend_from_slice(b" PWs)   bands (ev):\n\n");
            }
            52..62 => {
                buf.extend_from_slice(b"     iteration #");
                int(rng, buf, 3, iteration);
                iteration += 1;
                buf.extend_from_slice(b"     ecut=");
                fixed(rng, buf, 9, 3, 2, false);
                buf.extend_from_slice(b" Ry     beta= 0.70\n");
                buf.extend_from_slice(b"     Davidson diagonalization with overlap\n");
                buf.extend_from_slice(b"     ethr =  ");
                digits(rng, buf, 1);
                buf.push(b'.');
                digits(rng, buf, 2);
                buf.extend_from_slice(b"E-0");
                int(rng, buf, 1, 10);
                buf.extend_from_slice(b",  avg # of iterations =");
                fixed(rng, buf, 5, 1, 1, false);
                buf.push(b'\n');
            }
            62..72 => {
                buf.extend_from_slice(b"     total energy              =");
                fixed(rng, buf, 18, 4, 8, true);
                buf.extend_from_slice(b" Ry\n     estimated scf accuracy    <");
                fixed(rng, buf, 18, 1, 8, false);
                buf.extend_from_slice(b" Ry\n\n");
            }
            72..90 => {
                buf.extend_from_slice(b"     atom ");
                int(rng, buf, 4, 256);
                buf.extend_from_slice(b" type ");
                int(rng, buf, 2, 8);
                buf.extend_from_slice(b"   force = ");
                for _ in 0..3 {
                    fixed(rng, buf, 14, 1, 8, true);
                }
                buf.push(b'\n');
            }
            90..95 => {
                let el = ELEMENTS[rng.below(ELEMENTS.len() as u64) as usize];
                buf.extend_from_slice(el.as_bytes());
                for _ in el.len()..6 {
                    buf.push(b' ');
                }
                for _ in 0..3 {
                    fixed(rng, buf, 16, 2, 10, true);
                }
                buf.push(b'\n');
            }
            _ => {
                buf.extend_from_slice(
                    b"\n     Writing output data file ./out/aiida.save/\n     \
                      init_run     :      0.42s CPU      0.45s WALL (       1 calls)\n",
                );
            }
        }
    }
}

fn json_value(rng: &mut Rng, buf: &mut Vec<u8>, depth: u32) {
    match rng.below(if depth > 1 { 5 } else { 8 }) {
        0 | 1 => fixed(rng, buf, 0, 3, 8, true),
        2 => int(rng, buf, 0, 100_000),
        3 => {
            buf.push(b'"');
            buf.extend_from_slice(ELEMENTS[rng.below(ELEMENTS.len() as u64) as usize].as_bytes());
            buf.push(b'"');
        }
        4 => buf.extend_from_slice(if rng.below(2) == 0 { b"true" } else { b"null" }),
        5 | 6 => {
            buf.push(b'[');
            let n = rng.range(1, 24);
            for k in 0..n {
                if k > 0 {
                    buf.extend_from_slice(b", ");
                }
                json_value(rng, buf, depth + 1);
            }
            buf.push(b']');
        }
        _ => {
            buf.push(b'{');
            let n = rng.range(1, 6);
            for k in 0..n {
                if k > 0 {
                    buf.extend_from_slice(b", ");
                }
                json_key(rng, buf);
                json_value(rng, buf, depth + 1);
            }
            buf.push(b'}');
        }
    }
}

const KEYS: [&str; 16] = [
    "energy",
    "energy_units",
    "forces",
    "cell",
    "kinds",
    "sites",
    "symbols",
    "array|positions",
    "number_of_bands",
    "fermi_energy",
    "wall_time_seconds",
    "creation_parser_version",
    "lattice_symmetries",
    "occupations",
    "parser_warnings",
    "total_magnetization",
];

fn json_key(rng: &mut Rng, buf: &mut Vec<u8>) {
    buf.push(b'"');
    buf.extend_from_slice(KEYS[rng.below(KEYS.len() as u64) as usize].as_bytes());
    buf.push(b'_');
    int(rng, buf, 0, 1000);
    buf.extend_from_slice(b"\": ");
}

fn json(rng: &mut Rng, buf: &mut Vec<u8>, size: usize) {
    buf.extend_from_slice(b"{\"uuid\": \"");
    let mut uuid = [0u8; 16];
    rng.fill(&mut uuid);
    for b in uuid {
        buf.extend_from_slice(format!("{b:02x}").as_bytes());
    }
    buf.extend_from_slice(b"\", \"attributes\": {");
    // Closing is "}}": entries are added while they fit, then spaces pad to the exact size.
    if buf.len() + 2 > size {
        buf.clear();
        let n = size.saturating_sub(9);
        buf.extend_from_slice(b"{\"a\": \"");
        for _ in 0..n {
            buf.push(b'x');
        }
        buf.extend_from_slice(b"\"}");
        return;
    }
    let mut scratch = Vec::new();
    let mut first = true;
    let mut misses = 0;
    while misses < 4 {
        scratch.clear();
        if !first {
            scratch.extend_from_slice(b", ");
        }
        json_key(rng, &mut scratch);
        if misses == 0 {
            json_value(rng, &mut scratch, 0);
        } else {
            fixed(rng, &mut scratch, 0, 2, 4, false);
        }
        if buf.len() + scratch.len() + 2 <= size {
            buf.extend_from_slice(&scratch);
            first = false;
        } else {
            misses += 1;
        }
    }
    while buf.len() + 2 < size {
        buf.push(b' ');
    }
    buf.extend_from_slice(b"}}");
}

fn numpy(rng: &mut Rng, buf: &mut Vec<u8>, size: usize) {
    // A version 1.0 `.npy` header for a 1-d little-endian float64 array, padded to 64 bytes.
    let count = size.saturating_sub(128) / 8 + 1;
    let dict = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({count},), }}");
    let total = (10 + dict.len() + 1).div_ceil(64) * 64;
    let header_len = total - 10;
    buf.extend_from_slice(b"\x93NUMPY\x01\x00");
    buf.extend_from_slice(&(header_len as u16).to_le_bytes());
    buf.extend_from_slice(dict.as_bytes());
    while buf.len() < total - 1 {
        buf.push(b' ');
    }
    buf.push(b'\n');
    if rng.below(2) == 0 {
        // A smooth quantised series (bands, DOS): few significant bits, very compressible.
        let mut x: i64 = rng.below(1 << 20) as i64 - (1 << 19);
        while buf.len() < size {
            x += rng.below(129) as i64 - 64;
            buf.extend_from_slice(&(x as f64 / 4096.0).to_le_bytes());
        }
    } else {
        // float32-precision values stored as float64 (positions, forces): half the bits are zero.
        while buf.len() < size {
            let m = rng.next_u64();
            let mantissa = (m & 0x7f_ffff) << 29;
            let exp = 1023 - 4 + (m >> 23) % 8;
            let sign = (m >> 40) & 1;
            buf.extend_from_slice(&((sign << 63) | (exp << 52) | mantissa).to_le_bytes());
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Data set on disk

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the data set folder (`files/<shard>/<index>`).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content.
    pub sha256: ObjectKey,
}

/// A generated data set: files under `<dir>/files/` and their manifest.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The data set folder.
    pub dir: PathBuf,
    /// The options it was generated with.
    pub opts: GenOptions,
    /// One entry per object, in index order.
    pub entries: Vec<Entry>,
}

/// Relative path of file `i`: `files/<i / 1000, 3 digits>/<i, 6 digits>`.
pub fn rel_path(i: usize) -> String {
    format!("files/{:03}/{:06}", i / 1000, i)
}

fn header(opts: GenOptions, plan: &Plan) -> String {
    format!(
        "#dos-bench-manifest\tgenerator={GENERATOR_VERSION}\tn={}\tseed={}\tplan={}",
        opts.n,
        opts.seed,
        plan.fingerprint()
    )
}

impl Dataset {
    /// Reuse the data set in `dir` if its manifest matches `opts` and every file has its recorded
    /// size; otherwise (re)generate it. Returns the data set and whether it was reused.
    pub fn generate_or_reuse(dir: &Path, opts: GenOptions) -> Result<(Dataset, bool)> {
        if let Some(ds) = Self::load_matching(dir, opts)? {
            return Ok((ds, true));
        }
        Ok((Self::generate(dir, opts)?, false))
    }

    /// Load the manifest of `dir` (whatever its options).
    pub fn load(dir: &Path) -> Result<Dataset> {
        let path = dir.join(MANIFEST);
        let f = fs::File::open(&path).with_context(|| format!("open {}", path.display()))?;
        let mut lines = BufReader::new(f).lines();
        let first = lines.next().context("empty manifest")??;
        let mut n = None;
        let mut seed = None;
        let mut version = None;
        for field in first.split('\t').skip(1) {
            match field.split_once('=') {
                Some(("n", v)) => n = Some(v.parse::<usize>()?),
                Some(("seed", v)) => seed = Some(v.parse::<u64>()?),
                Some(("generator", v)) => version = Some(v.parse::<u32>()?),
                _ => {}
            }
        }
        let (Some(n), Some(seed), Some(version)) = (n, seed, version) else {
            bail!("{}: malformed header {first:?}", path.display());
        };
        if version != GENERATOR_VERSION {
            bail!(
                "{}: generator version {version}, expected {GENERATOR_VERSION}",
                path.display()
            );
        }
        let mut entries = Vec::with_capacity(n);
        for line in lines {
            let line = line?;
            let mut it = line.split('\t');
            let (Some(p), Some(s), Some(h), None) = (it.next(), it.next(), it.next(), it.next())
            else {
                bail!("{}: malformed line {line:?}", path.display());
            };
            entries.push(Entry {
                path: p.to_string(),
                size: s.parse()?,
                sha256: h
                    .parse()
                    .with_context(|| format!("{}: malformed line {line:?}", path.display()))?,
            });
        }
        if entries.len() != n {
            bail!(
                "{}: {} entries, header says {n}",
                path.display(),
                entries.len()
            );
        }
        Ok(Dataset {
            dir: dir.to_path_buf(),
            opts: GenOptions { n, seed },
            entries,
        })
    }

    fn load_matching(dir: &Path, opts: GenOptions) -> Result<Option<Dataset>> {
        let path = dir.join(MANIFEST);
        let Ok(f) = fs::File::open(&path) else {
            return Ok(None);
        };
        let mut first = String::new();
        BufReader::new(f).read_line(&mut first)?;
        if first.trim_end() != header(opts, &Plan::new(opts)) {
            return Ok(None);
        }
        let ds = Self::load(dir)?;
        let intact = ds
            .entries
            .par_iter()
            .all(|e| fs::metadata(dir.join(&e.path)).is_ok_and(|m| m.len() == e.size));
        Ok(intact.then_some(ds))
    }

    /// Generate the data set into `dir` (its `files/` and manifest are replaced), in parallel.
    pub fn generate(dir: &Path, opts: GenOptions) -> Result<Dataset> {
        let manifest = dir.join(MANIFEST);
        let files = dir.join("files");
        match fs::remove_file(&manifest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("remove {}", manifest.display())),
        }
        if files.exists() {
            fs::remove_dir_all(&files).with_context(|| format!("remove {}", files.display()))?;
        }
        let plan = Plan::new(opts);
        for shard in 0..opts.n.div_ceil(1000) {
            let d = files.join(format!("{shard:03}"));
            fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
        }
        let entries: Vec<Entry> = (0..opts.n)
            .into_par_iter()
            .map_init(Vec::new, |buf, i| -> Result<Entry> {
                plan.write_content(i, buf);
                let path = rel_path(i);
                let full = dir.join(&path);
                fs::write(&full, &buf[..]).with_context(|| format!("write {}", full.display()))?;
                Ok(Entry {
                    path,
                    size: buf.len() as u64,
                    sha256: dos_core::HashType::Sha256.key_of(buf),
                })
            })
            .collect::<Result<_>>()?;
        let tmp = dir.join(format!("{MANIFEST}.tmp"));
        {
            let mut w = std::io::BufWriter::new(
                fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?,
            );
            writeln!(w, "{}", header(opts, &plan))?;
            for e in &entries {
                writeln!(w, "{}\t{}\t{}", e.path, e.size, e.sha256)?;
            }
            w.into_inner()
                .map_err(|e| e.into_error())?
                .sync_all()
                .with_context(|| format!("write {}", tmp.display()))?;
        }
        fs::rename(&tmp, &manifest).with_context(|| format!("rename {}", manifest.display()))?;
        Ok(Dataset {
            dir: dir.to_path_buf(),
            opts,
            entries,
        })
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the data set has no files.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Absolute path of file `i`.
    pub fn path(&self, i: usize) -> PathBuf {
        self.dir.join(&self.entries[i].path)
    }

    /// Sum of the sizes of the first `k` files.
    pub fn bytes_of_first(&self, k: usize) -> u64 {
        self.entries[..k.min(self.len())]
            .iter()
            .map(|e| e.size)
            .sum()
    }

    /// Sum of all file sizes.
    pub fn total_bytes(&self) -> u64 {
        self.bytes_of_first(self.len())
    }

    /// Indices of the first occurrence of every distinct content, in index order.
    pub fn unique_indices(&self) -> Vec<usize> {
        let mut seen = std::collections::HashSet::with_capacity(self.len());
        (0..self.len())
            .filter(|&i| seen.insert(self.entries[i].sha256))
            .collect()
    }
}

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
