//! Decoding packed zlib objects never panics nor returns a wrong-sized object.
//! The body is `dos_fuzz::zlib_inflate` (crates/dos-fuzz), which the replay test also runs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dos_fuzz::zlib_inflate(data));
