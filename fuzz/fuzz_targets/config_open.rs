//! A hostile `config.json` next to a valid container: open fails or the container works.
//! The body is `dos_fuzz::config_open` (crates/dos-fuzz), which the replay test also runs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dos_fuzz::config_open(data));
