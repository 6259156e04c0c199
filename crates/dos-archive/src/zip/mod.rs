//! Zip files for AiiDA archives: the record layout both sides share (this file), a reader
//! driven by the central directory for untrusted archives ([`read`]), and a streaming writer
//! ([`write`]).

use std::borrow::Cow;

use dos_core::{HashType, ObjectKey};

pub mod read;
pub mod write;

pub use read::{EntryReader, ZipArchive};

/// Signature of a local file header.
pub const SIG_LOCAL: u32 = 0x0403_4b50;
/// Signature of a central directory record.
pub const SIG_CENTRAL: u32 = 0x0201_4b50;
/// Signature of the end of central directory record.
pub const SIG_EOCD: u32 = 0x0605_4b50;
/// Signature of the zip64 end of central directory record.
pub const SIG_Z64_EOCD: u32 = 0x0606_4b50;
/// Signature of the zip64 end of central directory locator.
pub const SIG_Z64_LOCATOR: u32 = 0x0706_4b50;
/// Fixed length of the end of central directory record.
pub const EOCD_LEN: u64 = 22;
/// Fixed length of a central directory record.
pub const CENTRAL_LEN: usize = 46;
/// Fixed length of a local file header.
pub const LOCAL_LEN: usize = 30;
/// Fixed length of the zip64 end of central directory record (as written: no extensible data).
pub const Z64_EOCD_LEN: usize = 56;
/// Length of the zip64 end of central directory locator.
pub const Z64_LOCATOR_LEN: usize = 20;
/// Header id of the zip64 extended information extra field.
pub const EXTRA_ZIP64: u16 = 0x0001;
/// Largest value of a 32-bit size or offset field (larger ones go into zip64 records).
pub const ZIP64_LIMIT: u64 = 0xFFFF_FFFF;
/// Largest entry count of the (non-zip64) end record.
pub const ZIP64_COUNT_LIMIT: u64 = 0xFFFF;

/// Compression method: stored.
pub const METHOD_STORED: u16 = 0;
/// Compression method: deflate.
pub const METHOD_DEFLATE: u16 = 8;

/// Caps on what an archive may declare, against zip bombs and lying headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest uncompressed size of one entry.
    pub max_entry_size: u64,
    /// Largest sum of uncompressed sizes.
    pub max_total_size: u64,
    /// Largest uncompressed/compressed ratio of one entry (deflate cannot exceed about 1032:1,
    /// so a larger declared ratio is a lie).
    pub max_ratio: u64,
    /// Largest number of entries.
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entry_size: 64 << 30,
            max_total_size: 16 << 40,
            max_ratio: 1100,
            max_entries: 100_000_000,
        }
    }
}

/// An entry name: repository entries (`repo/<64 lowercase hex>`) are kept as their key, so
/// that a million entries cost little memory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryName {
    /// `repo/<key>`.
    Repo(ObjectKey),
    /// Anything else, as read (lossy UTF-8).
    Other(Box<str>),
}

impl EntryName {
    pub(crate) fn from_bytes(b: &[u8]) -> Self {
        if let Some(hex) = b.strip_prefix(b"repo/")
            && let Some(key) = ObjectKey::from_canonical(HashType::Sha256, hex)
        {
            return EntryName::Repo(key);
        }
        EntryName::Other(String::from_utf8_lossy(b).into())
    }

    /// The name as text.
    pub fn as_str(&self) -> Cow<'_, str> {
        match self {
            EntryName::Repo(k) => Cow::Owned(format!("repo/{k}")),
            EntryName::Other(s) => Cow::Borrowed(s),
        }
    }

    /// Length of the name in bytes, as stored (for names read as lossy UTF-8: of the text).
    pub(crate) fn byte_len(&self) -> usize {
        match self {
            EntryName::Repo(_) => 5 + 64,
            EntryName::Other(s) => s.len(),
        }
    }

    /// The object key of a repository entry.
    pub fn repo_key(&self) -> Option<ObjectKey> {
        match self {
            EntryName::Repo(k) => Some(*k),
            EntryName::Other(_) => None,
        }
    }
}

/// One entry, as the central directory (and its local header) describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its name.
    pub name: EntryName,
    /// Compression method (0 stored, 8 deflate; others unsupported).
    pub method: u16,
    /// General purpose flags.
    pub flags: u16,
    /// CRC-32 of the uncompressed data.
    pub crc32: u32,
    /// Compressed size.
    pub csize: u64,
    /// Uncompressed size.
    pub usize: u64,
    /// Offset of the local header.
    pub header_offset: u64,
    /// Offset of the data (after the local header); 0 until the local header was read (an
    /// archive opened with [`ZipArchive::open_deferred`] reads it when the entry is read).
    pub data_offset: u64,
    /// Where the entry's data must end at the latest: the next local header in the file, or the
    /// central directory.
    pub data_limit: u64,
    /// The central record carries a zip64 extra.
    pub zip64_central: bool,
    /// The local header carries a zip64 extra.
    pub zip64_local: bool,
}

impl Entry {
    /// Encrypted (flag bit 0).
    pub fn encrypted(&self) -> bool {
        self.flags & 1 != 0
    }
    /// Sizes and CRC follow the data in a descriptor (flag bit 3).
    pub fn has_descriptor(&self) -> bool {
        self.flags & 8 != 0
    }
    /// A directory entry.
    pub fn is_dir(&self) -> bool {
        matches!(&self.name, EntryName::Other(n) if n.ends_with('/'))
    }
    /// Why this entry cannot be read, if it cannot.
    pub fn unsupported(&self) -> Option<Unsupported> {
        if self.encrypted() {
            return Some(Unsupported::Encrypted);
        }
        match self.method {
            METHOD_STORED | METHOD_DEFLATE => None,
            m => Some(Unsupported::Method(m)),
        }
    }
}

/// Why an entry cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    /// It is encrypted.
    #[error("is encrypted")]
    Encrypted,
    /// Its compression method is neither stored nor deflate.
    #[error("uses {}, which is not supported", method_name(*.0))]
    Method(u16),
}

fn method_name(m: u16) -> String {
    match m {
        9 => "deflate64 (method 9)".into(),
        12 => "bzip2 (method 12)".into(),
        14 => "lzma (method 14)".into(),
        m => format!("compression method {m}"),
    }
}

/// Little-endian fields of a record.
pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names_are_kept_as_keys() {
        let key = ObjectKey::sha256(std::array::from_fn(|i| (i as u8).wrapping_mul(37)));
        let hex = key.to_string();
        assert_eq!(
            EntryName::from_bytes(format!("repo/{hex}").as_bytes()),
            EntryName::Repo(key)
        );
        assert_eq!(EntryName::Repo(key).byte_len(), 69);
    }
}
