//! Any bytes as an archive: describing and importing never panic; what is imported is valid.
//! The body is `dos_fuzz::archive_import` (crates/dos-fuzz), which the replay test also runs.
#![no_main]

/// AddressSanitizer's defaults for this target (`ASAN_OPTIONS` overrides them): no stack
/// recorded at each allocation and free (`malloc_context_size=0`). Recording them was a sixth
/// of an execution (SQLite allocates a lot); they only enrich a report (where a block was
/// allocated or freed), no error goes undetected without them. To see them, replay a finding
/// with `ASAN_OPTIONS=malloc_context_size=30`.
#[unsafe(no_mangle)]
pub extern "C" fn __asan_default_options() -> *const std::ffi::c_char {
    c"malloc_context_size=0".as_ptr()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| dos_fuzz::archive_import(data));
