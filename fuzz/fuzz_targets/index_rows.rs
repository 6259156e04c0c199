//! A hostile `packs.idx` over hostile packs: reads, validate and repack keep their promises.
//! The body is `dos_fuzz::index_rows` (crates/dos-fuzz), which the replay test also runs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dos_fuzz::index_rows(data));
