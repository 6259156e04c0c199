//! The `zlib_inflate` target.

use dos_core::codec::Decompressor;

/// Decoding packed zlib objects never panics and never returns a wrong-sized object, whatever
/// the bytes in the pack and the size in the index.
///
/// Input: 4 bytes (little-endian) of the size the index claims, bounded to 4 MiB as a real
/// index row is checked against its pack, then the object's bytes.
pub fn zlib_inflate(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let expected = u64::from(u32::from_le_bytes([data[0], data[1], data[2], data[3]]) % (4 << 20));
    let mut out = Vec::new();
    if Decompressor::new()
        .inflate_exact(&data[4..], expected, &mut out)
        .is_ok()
    {
        assert_eq!(out.len() as u64, expected);
    }
}
