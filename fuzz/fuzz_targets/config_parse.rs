//! `config.json` parsing never panics; what it accepts round-trips.
//! The body is `dos_fuzz::config_parse` (crates/dos-fuzz), which the replay test also runs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dos_fuzz::config_parse(data));
