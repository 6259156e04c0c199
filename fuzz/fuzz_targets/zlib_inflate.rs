//! Decoding packed zlib objects never panics and never returns a wrong-sized object, whatever the
//! bytes in the pack and the size in the index.
#![no_main]

use dos_core::codec::Decompressor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    // First 4 bytes: the size the index claims (bounded, as a real index row would be checked).
    let expected = u64::from(u32::from_le_bytes([data[0], data[1], data[2], data[3]]) % (4 << 20));
    let mut out = Vec::new();
    if Decompressor::new().inflate_exact(&data[4..], expected, &mut out).is_ok() {
        assert_eq!(out.len() as u64, expected);
    }
});
