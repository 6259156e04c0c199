//! Hash types and hash keys.
//!
//! A key is the lowercase hex digest of the *uncompressed* content, with the container's hash type
//! (`sha256` by default, `sha1` also accepted by Python disk-objectstore).

use sha2::Digest;

use crate::error::{Error, Result};

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

    /// Number of hex characters of a key.
    pub fn hex_len(self) -> usize {
        match self {
            HashType::Sha256 => 64,
            HashType::Sha1 => 40,
        }
    }

    /// A fresh incremental hasher.
    pub fn hasher(self) -> Hasher {
        match self {
            HashType::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashType::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
        }
    }

    /// Hash a whole buffer and return its key.
    pub fn key_of(self, data: &[u8]) -> String {
        let mut h = self.hasher();
        h.update(data);
        h.finalize_hex()
    }

    /// Whether `key` is already a key in canonical form (hex of the right length, lowercase):
    /// what [`Self::parse_key`] would accept and return unchanged, without allocating.
    pub fn is_canonical_key(self, key: &str) -> bool {
        key.len() == self.hex_len() && is_lower_hex(key)
    }

    /// Check that `key` is a well-formed key of this hash type and return it in canonical
    /// (lowercase) form. Uppercase hex is accepted from users and lowered.
    pub fn parse_key(self, key: &str) -> Result<String> {
        let ok = key.len() == self.hex_len() && key.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            return Err(Error::InvalidKey {
                key: key.to_string(),
                expected: format!("{} hex characters ({})", self.hex_len(), self.name()),
            });
        }
        Ok(key.to_ascii_lowercase())
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

    /// Finish and return the lowercase hex digest.
    pub fn finalize_hex(self) -> String {
        match self {
            Hasher::Sha256(h) => to_hex(&h.finalize()),
            Hasher::Sha1(h) => to_hex(&h.finalize()),
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

/// The 32 bytes a SHA-256 key of exactly 64 lowercase hex digits stands for; `None` for
/// anything else.
pub fn from_hex32(hex: &[u8]) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
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
    (bad & 0x80 == 0).then_some(out)
}

/// True if `s` is non-empty lowercase hex (the form keys take on disk and in the index).
pub fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // Vector used by disk-objectstore's own tests.
        assert_eq!(
            HashType::Sha256.key_of(b"some-content-to-hash"),
            "9975d00a6e715d830aeaa035347b3e601a0c0bb457a7f87816300e7c01c0c39b"
        );
        assert_eq!(
            HashType::Sha256.key_of(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            HashType::Sha1.key_of(b""),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
    }

    #[test]
    fn parse_key_validates_and_lowercases() {
        let k = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        assert_eq!(
            HashType::Sha256.parse_key(k).unwrap(),
            k.to_ascii_lowercase()
        );
        assert!(HashType::Sha256.parse_key("abc").is_err());
        assert!(HashType::Sha1.parse_key(&"g".repeat(40)).is_err());
        assert!(HashType::Sha256.parse_key(&"0".repeat(40)).is_err());
    }

    #[test]
    fn hex_keys_parse_exactly_lowercase_hex() {
        let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37));
        let hex = to_hex(&key);
        assert_eq!(from_hex32(hex.as_bytes()), Some(key));
        assert_eq!(from_hex32(&[b'f'; 64]), Some([0xFF; 32]));
        for bad in [b'A', b'g', b'/', b':', b'`', 0xFF, 0x00, b' '] {
            for at in [0, 1, 37, 63] {
                let mut h = hex.clone().into_bytes();
                h[at] = bad;
                assert_eq!(from_hex32(&h), None, "byte {bad:#x} at {at}");
            }
        }
        assert_eq!(from_hex32(&hex.as_bytes()[..62]), None);
    }

    #[test]
    fn canonical_keys_are_what_parse_key_returns_unchanged() {
        let k = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        for key in [
            k.to_string(),
            k.to_ascii_uppercase(),
            k[..63].to_string(),
            format!("{}g", &k[..63]),
            "0".repeat(40),
            String::new(),
        ] {
            for h in [HashType::Sha256, HashType::Sha1] {
                let same = h.parse_key(&key).is_ok_and(|c| c == key);
                assert_eq!(h.is_canonical_key(&key), same, "{h} {key}");
            }
        }
        assert!(HashType::Sha256.is_canonical_key(k));
        assert!(HashType::Sha1.is_canonical_key(&"a".repeat(40)));
    }
}
