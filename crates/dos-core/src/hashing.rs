//! Hash types, incremental hashers and lowercase hex.
//!
//! A container's keys are digests of the *uncompressed* content with its hash type (`sha256` by
//! default, `sha1` also accepted by Python disk-objectstore); [`crate::key`] holds them.

use sha2::Digest;

/// A hash algorithm a container can use for its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashType {
    /// SHA-256 (the default, and what AiiDA uses).
    Sha256,
    /// SHA-1 (accepted by Python disk-objectstore, rarely used).
    Sha1,
}

impl HashType {
    /// The name used in `config.json`.
    pub fn name(self) -> &'static str {
        match self {
            HashType::Sha256 => "sha256",
            HashType::Sha1 => "sha1",
        }
    }

    /// Parse the name used in `config.json`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(HashType::Sha256),
            "sha1" => Some(HashType::Sha1),
            _ => None,
        }
    }

    /// Bytes of a digest.
    pub fn digest_len(self) -> usize {
        match self {
            HashType::Sha256 => 32,
            HashType::Sha1 => 20,
        }
    }

    /// Number of hex characters of a key.
    pub fn hex_len(self) -> usize {
        2 * self.digest_len()
    }

    /// A fresh incremental hasher.
    pub fn hasher(self) -> Hasher {
        match self {
            HashType::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashType::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
        }
    }
}

impl std::fmt::Display for HashType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An incremental hasher of one of the supported types.
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256 state.
    Sha256(sha2::Sha256),
    /// SHA-1 state.
    Sha1(sha1::Sha1),
}

impl Hasher {
    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
        }
    }
}

/// Lowercase hex encoding.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    s
}

/// Value of each byte as a lowercase hex digit, 0xFF when it is not one.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Decode lowercase hex digits (exactly two per byte of `out`) into `out`; false (and `out`
/// unspecified) if any character is not a lowercase hex digit or the lengths disagree.
pub fn decode_lower_hex(hex: &[u8], out: &mut [u8]) -> bool {
    if hex.len() != 2 * out.len() {
        return false;
    }
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let (hi, lo) = (
            HEX_VALUE[usize::from(pair[0])],
            HEX_VALUE[usize::from(pair[1])],
        );
        // 0xFF marks a non-digit: its high bit survives the OR.
        bad |= hi | lo;
        *o = (hi << 4) | (lo & 0x0F);
    }
    bad & 0x80 == 0
}

/// True if `s` is non-empty lowercase hex (the form keys take on disk and in the index).
pub fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_decodes_exactly_lowercase_hex() {
        let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37));
        let hex = to_hex(&key);
        let mut out = [0u8; 32];
        assert!(decode_lower_hex(hex.as_bytes(), &mut out));
        assert_eq!(out, key);
        assert!(decode_lower_hex(&[b'f'; 64], &mut out));
        assert_eq!(out, [0xFF; 32]);
        for bad in [b'A', b'g', b'/', b':', b'`', 0xFF, 0x00, b' '] {
            for at in [0, 1, 37, 63] {
                let mut h = hex.clone().into_bytes();
                h[at] = bad;
                assert!(!decode_lower_hex(&h, &mut out), "byte {bad:#x} at {at}");
            }
        }
        assert!(!decode_lower_hex(&hex.as_bytes()[..62], &mut out));
    }
}
