//! Any bytes as an archive: describing and importing never panic; what is imported is valid.
//! The body is `dos_fuzz::archive_import` (crates/dos-fuzz), which the replay test also runs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dos_fuzz::archive_import(data));
