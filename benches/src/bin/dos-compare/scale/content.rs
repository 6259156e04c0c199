//! The objects of the scale benchmark: the content of object `i` is a pure function of the seed
//! and `i` (20–300 bytes, all distinct), so any object's key can be computed without the
//! container; and the deterministic samples of indices the key lists are drawn from.

use dos_bench::Rng;
use dos_core::HashType;

/// Smallest object.
pub const MIN_SIZE: u64 = 20;
/// Largest object.
pub const MAX_SIZE: u64 = 300;

/// Version of the content and list rules: a base container made under another one is rebuilt.
pub const FORMAT: u32 = 1;

/// The filler alphabet (no space: the decimal index and one space open every object, so no two
/// objects are equal).
const ALPHABET: &[u8; 64] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";

/// A generator for one purpose (`salt`) of the seed `seed`.
pub fn rng(seed: u64, salt: u64) -> Rng {
    Rng::new(seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Write object `i`'s content into `buf` (replacing what it held).
pub fn content(seed: u64, i: u64, buf: &mut Vec<u8>) {
    let mut r = Rng::new(seed.rotate_left(17) ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03));
    let size = r.range(MIN_SIZE, MAX_SIZE) as usize;
    buf.clear();
    buf.extend_from_slice(i.to_string().as_bytes());
    buf.push(b' ');
    while buf.len() < size {
        let mut bits = r.next_u64();
        for _ in 0..10 {
            if buf.len() == size {
                break;
            }
            buf.push(ALPHABET[(bits & 63) as usize]);
            bits >>= 6;
        }
    }
}

/// Object `i`'s content, as a new vector.
pub fn object(seed: u64, i: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(MAX_SIZE as usize);
    content(seed, i, &mut v);
    v
}

/// Object `i`'s key (hex SHA-256 of its content).
pub fn key(seed: u64, i: u64) -> String {
    HashType::Sha256.key_of(&object(seed, i)).to_string()
}

/// Whether object `i` of a base container is loose (one in `every`).
pub fn is_loose(i: u64, every: u64) -> bool {
    every > 0 && i % every == every - 1
}

/// Objects of a base of `n` objects that are loose.
pub fn loose_count(n: u64, every: u64) -> u64 {
    n.checked_div(every).unwrap_or(0)
}

/// `k` distinct indices of `0..n` accepted by `keep`, in random order (fewer if fewer exist).
pub fn sample(r: &mut Rng, n: u64, k: u64, keep: impl Fn(u64) -> bool) -> Vec<u64> {
    let eligible = (0..n).filter(|&i| keep(i)).count() as u64;
    let k = k.min(eligible);
    if k * 2 > eligible {
        // Most of them: shuffle all and take the first k.
        let mut all: Vec<u64> = (0..n).filter(|&i| keep(i)).collect();
        shuffle(r, &mut all);
        all.truncate(k as usize);
        return all;
    }
    let mut taken = vec![false; n as usize];
    let mut out = Vec::with_capacity(k as usize);
    while (out.len() as u64) < k {
        let i = r.below(n);
        if keep(i) && !taken[i as usize] {
            taken[i as usize] = true;
            out.push(i);
        }
    }
    out
}

/// Shuffle `v` in place (Fisher–Yates).
pub fn shuffle<T>(r: &mut Rng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = r.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// A random 64-hex-digit key (absent from every base: SHA-256 has no known preimages).
pub fn random_key(r: &mut Rng) -> String {
    let mut s = String::with_capacity(64);
    for _ in 0..4 {
        s.push_str(&format!("{:016x}", r.next_u64()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn objects_are_deterministic_distinct_and_in_range() {
        let mut seen = HashSet::new();
        for i in 0..5000 {
            let o = object(7, i);
            assert!(
                (MIN_SIZE..=MAX_SIZE).contains(&(o.len() as u64)),
                "{}",
                o.len()
            );
            assert_eq!(o, object(7, i));
            assert!(seen.insert(o));
        }
        assert_ne!(object(7, 1), object(8, 1));
        assert_eq!(key(7, 3).len(), 64);
    }

    #[test]
    fn samples_are_distinct_and_kept() {
        let mut r = rng(1, 2);
        for (n, k) in [(1000, 10), (1000, 900), (1000, 5000)] {
            let s = sample(&mut r, n, k, |i| !is_loose(i, 100));
            let set: HashSet<u64> = s.iter().copied().collect();
            assert_eq!(set.len(), s.len());
            assert_eq!(s.len() as u64, k.min(990));
            assert!(s.iter().all(|&i| i < n && !is_loose(i, 100)));
        }
        assert_eq!(loose_count(1000, 100), 10);
        assert_eq!(loose_count(1000, 0), 0);
        assert!(is_loose(99, 100) && !is_loose(100, 100));
    }
}
