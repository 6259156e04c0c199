//! Hostile `loose/` contents: listing, validate and pack_all_loose keep their promises.
//! The body is `dos_fuzz::loose_folder` (crates/dos-fuzz), which the replay test also runs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dos_fuzz::loose_folder(data));
