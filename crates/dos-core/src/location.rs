//! Where a packed object lives: the fields of its index row, checked.

/// Where a packed object lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackedLocation {
    /// Pack file id (`packs/<id>`).
    pub pack_id: u64,
    /// Offset of the object's bytes in the pack.
    pub offset: u64,
    /// Number of bytes in the pack (compressed length if compressed).
    pub length: u64,
    /// Whether the bytes are one zlib stream.
    pub compressed: bool,
    /// Uncompressed size.
    pub size: u64,
}
