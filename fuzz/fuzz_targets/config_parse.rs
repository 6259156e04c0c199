//! `config.json` parsing never panics, and what it accepts round-trips through the writer.
#![no_main]

use dos_core::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cfg) = Config::parse(data) {
        let again = Config::parse(cfg.to_python_json().as_bytes()).expect("own output parses");
        assert_eq!(cfg, again);
    }
});
