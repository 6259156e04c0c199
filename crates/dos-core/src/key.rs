//! Object keys: the digest of an object's uncompressed content, held in binary.
//!
//! A key is parsed and checked once, where it enters (a user's argument, a loose file's name,
//! an index row, an archive entry's name), and is a plain 33-byte value from then on: compared,
//! sorted and hashed as bytes, written as lowercase hex only where the format stores text (file
//! names, `packs.idx`) or a person reads it. Byte order is hex order, so sorted keys are sorted
//! as Python sorts them.

use std::fmt;
use std::str::FromStr;

use sha2::Digest;

use crate::hashing::{HashType, Hasher, decode_lower_hex};

/// The key of an object: the SHA-256 (or SHA-1) digest of its uncompressed content.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    /// The digest, zero-padded to 32 bytes (a SHA-1 digest has 20).
    bytes: [u8; 32],
    /// Bytes of the digest.
    len: u8,
}

/// A string that is not a key of the expected hash type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid object key {key:?}: expected {} hex characters ({hash})", hash.hex_len())]
pub struct InvalidKey {
    /// The rejected input.
    pub key: String,
    /// The hash type keys must have.
    pub hash: HashType,
}

/// The lowercase hex form of a key, on the stack (for SQLite parameters and file names).
#[derive(Clone, Copy)]
pub struct HexKey {
    buf: [u8; 64],
    len: u8,
}

impl HexKey {
    /// The hex digits.
    pub fn as_str(&self) -> &str {
        // The buffer holds ASCII hex digits only (written by `ObjectKey::hex`).
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::ops::Deref for HexKey {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl ObjectKey {
    /// The key of a SHA-256 digest.
    pub const fn sha256(digest: [u8; 32]) -> Self {
        Self {
            bytes: digest,
            len: 32,
        }
    }

    /// The key of a SHA-1 digest.
    pub const fn sha1(digest: [u8; 20]) -> Self {
        let mut bytes = [0u8; 32];
        let mut i = 0;
        while i < 20 {
            bytes[i] = digest[i];
            i += 1;
        }
        Self { bytes, len: 20 }
    }

    /// The key of a digest of `hash`'s length; `None` for any other length.
    pub fn from_digest(hash: HashType, digest: &[u8]) -> Option<Self> {
        if digest.len() != hash.digest_len() {
            return None;
        }
        let mut bytes = [0u8; 32];
        bytes[..digest.len()].copy_from_slice(digest);
        Some(Self {
            bytes,
            len: digest.len() as u8,
        })
    }

    /// The key written as exactly `hash`'s number of lowercase hex digits (the form of names on
    /// disk and of index rows); `None` for anything else.
    pub fn from_canonical(hash: HashType, hex: &[u8]) -> Option<Self> {
        let n = hash.digest_len();
        if hex.len() != 2 * n {
            return None;
        }
        let mut bytes = [0u8; 32];
        decode_lower_hex(hex, &mut bytes[..n]).then_some(Self {
            bytes,
            len: n as u8,
        })
    }

    /// Parse a key given by a user: `hash`'s number of hex digits, either case.
    pub fn parse(hash: HashType, s: &str) -> Result<Self, InvalidKey> {
        let invalid = || InvalidKey {
            key: s.to_string(),
            hash,
        };
        if s.len() != hash.hex_len() {
            return Err(invalid());
        }
        Self::from_canonical(hash, s.as_bytes())
            .or_else(|| Self::from_canonical(hash, s.to_ascii_lowercase().as_bytes()))
            .ok_or_else(invalid)
    }

    /// The hash type the key belongs to.
    pub fn hash_type(&self) -> HashType {
        if usize::from(self.len) == HashType::Sha1.digest_len() {
            HashType::Sha1
        } else {
            HashType::Sha256
        }
    }

    /// The digest.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The lowercase hex form, without allocating.
    pub fn hex(&self) -> HexKey {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 64];
        for (pair, &b) in buf.chunks_exact_mut(2).zip(self.as_bytes()) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0x0f)];
        }
        HexKey {
            buf,
            len: self.len * 2,
        }
    }
}

/// Byte order (which is hex order), compared as two integers: a slice compare calls `memcmp`,
/// and sorting a million keys that way took a fifth of a second more on one core.
impl Ord for ObjectKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let half = |k: &[u8; 32], i: usize| {
            let mut h = [0u8; 16];
            h.copy_from_slice(&k[i..i + 16]);
            u128::from_be_bytes(h)
        };
        half(&self.bytes, 0)
            .cmp(&half(&other.bytes, 0))
            .then_with(|| half(&self.bytes, 16).cmp(&half(&other.bytes, 16)))
            .then_with(|| self.len.cmp(&other.len))
    }
}

impl PartialOrd for ObjectKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl HashType {
    /// Hash a whole buffer and return its key.
    pub fn key_of(self, data: &[u8]) -> ObjectKey {
        let mut h = self.hasher();
        h.update(data);
        h.finalize()
    }

    /// Parse a key given by a user (hex of this type's length, either case).
    pub fn parse_key(self, key: &str) -> Result<ObjectKey, InvalidKey> {
        ObjectKey::parse(self, key)
    }
}

impl Hasher {
    /// Finish and return the key.
    pub fn finalize(self) -> ObjectKey {
        match self {
            Hasher::Sha256(h) => ObjectKey::sha256(h.finalize().into()),
            Hasher::Sha1(h) => ObjectKey::sha1(h.finalize().into()),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Display for HexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses 64 hex digits as a SHA-256 key and 40 as a SHA-1 key (either case).
impl FromStr for ObjectKey {
    type Err = InvalidKey;
    fn from_str(s: &str) -> Result<Self, InvalidKey> {
        let hash = if s.len() == HashType::Sha1.hex_len() {
            HashType::Sha1
        } else {
            HashType::Sha256
        };
        Self::parse(hash, s)
    }
}

impl serde::Serialize for ObjectKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl rusqlite::ToSql for HexKey {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(
            rusqlite::types::ValueRef::Text(&self.buf[..usize::from(self.len)]),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // Vector used by disk-objectstore's own tests.
        assert_eq!(
            HashType::Sha256.key_of(b"some-content-to-hash").to_string(),
            "9975d00a6e715d830aeaa035347b3e601a0c0bb457a7f87816300e7c01c0c39b"
        );
        assert_eq!(
            HashType::Sha256.key_of(b"").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            HashType::Sha1.key_of(b"").to_string(),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
    }

    #[test]
    fn parse_key_validates_and_lowercases() {
        let k = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        assert_eq!(
            HashType::Sha256.parse_key(k).unwrap().to_string(),
            k.to_ascii_lowercase()
        );
        assert!(HashType::Sha256.parse_key("abc").is_err());
        assert!(HashType::Sha1.parse_key(&"g".repeat(40)).is_err());
        assert!(HashType::Sha256.parse_key(&"0".repeat(40)).is_err());
    }

    const EMPTY256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const EMPTY1: &str = "da39a3ee5e6b4b0d3255bfef95601890afd80709";

    #[test]
    fn parse_display_and_order() {
        let k = ObjectKey::parse(HashType::Sha256, EMPTY256).unwrap();
        assert_eq!(k.to_string(), EMPTY256);
        assert_eq!(k.hex().as_str(), EMPTY256);
        assert_eq!(k.hash_type(), HashType::Sha256);
        assert_eq!(
            ObjectKey::parse(HashType::Sha256, &EMPTY256.to_ascii_uppercase()).unwrap(),
            k
        );
        let s1 = ObjectKey::parse(HashType::Sha1, EMPTY1).unwrap();
        assert_eq!(s1.to_string(), EMPTY1);
        assert_eq!(s1.as_bytes().len(), 20);
        assert_eq!(s1.hash_type(), HashType::Sha1);
        assert_eq!(EMPTY1.parse::<ObjectKey>().unwrap(), s1);
        for bad in ["", "abc", &EMPTY256[..63], &format!("{}g", &EMPTY256[..63])] {
            assert!(ObjectKey::parse(HashType::Sha256, bad).is_err(), "{bad}");
        }
        assert!(ObjectKey::parse(HashType::Sha1, EMPTY256).is_err());
        assert!(
            ObjectKey::from_canonical(HashType::Sha256, EMPTY256.to_uppercase().as_bytes())
                .is_none()
        );
        // Byte order is hex order.
        let mut keys: Vec<String> = (0..200u32)
            .map(|i| {
                crate::hashing::to_hex(&(i.wrapping_mul(2_654_435_761)).to_be_bytes()).repeat(8)
            })
            .collect();
        let mut parsed: Vec<ObjectKey> = keys
            .iter()
            .map(|k| ObjectKey::parse(HashType::Sha256, k).unwrap())
            .collect();
        keys.sort();
        parsed.sort();
        let back: Vec<String> = parsed.iter().map(ToString::to_string).collect();
        assert_eq!(back, keys);
    }
}
