//! Shared helpers: deterministic data and container setup.

use std::path::Path;

use dos_core::{Container, InitOptions};

/// A small deterministic PRNG (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Content of `len` bytes: compressible text or random bytes.
    pub fn content(&mut self, len: usize) -> Vec<u8> {
        if self.below(2) == 0 {
            let mut v = Vec::with_capacity(len);
            while v.len() < len {
                let line = format!(
                    "step {} energy = {:.6}\n",
                    self.below(1000),
                    self.below(1 << 20) as f64 / 7.0
                );
                v.extend_from_slice(line.as_bytes());
            }
            v.truncate(len);
            v
        } else {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }
    /// A mix of sizes: empty, tiny, small, medium, and a few large.
    pub fn objects(&mut self, n: usize, max_large: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let len = match i % 10 {
                    0 => 0,
                    1 => self.below(16) as usize,
                    9 if i / 10 % 5 == 0 => self.below(max_large as u64) as usize,
                    _ => self.below(20_000) as usize,
                };
                self.content(len)
            })
            .collect()
    }
}

pub fn sha256(data: &[u8]) -> dos_core::ObjectKey {
    dos_core::HashType::Sha256.key_of(data)
}

pub fn new_container(dir: &Path, opts: InitOptions) -> Container {
    Container::init(&dir.join("c"), &opts).unwrap()
}

/// Files in the packs folder (names only), sorted.
pub fn pack_dir_entries(c: &Container) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(&c.layout().packs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}
