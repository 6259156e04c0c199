//! The bodies of the fuzz targets of `dos`, one function per target.
//!
//! The cargo-fuzz binaries in `fuzz/fuzz_targets/` are one line each
//! (`fuzz_target!(|data: &[u8]| dos_fuzz::NAME(data));`), and `tests/replay.rs` runs every
//! input of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` through the same
//! functions as an ordinary test, on the stable toolchain and without libFuzzer.
//!
//! Every body accepts any bytes. It panics only on a real bug (a broken invariant of dos-core:
//! a panic is a finding), never because the input is malformed; failures to set up the scratch
//! folders are not findings either (the body returns).
//!
//! Targets that need a container reuse one scratch folder per thread (under `/dev/shm` when it
//! exists), prepared once, and rewrite only the files the input controls on each run. Folders
//! of processes that no longer exist are removed when the next process prepares its own.
//!
//! | target | input |
//! |---|---|
//! | [`config_parse`] | the bytes of a `config.json` |
//! | [`config_open`] | the bytes of a `config.json` next to a valid container |
//! | [`zlib_inflate`] | 4 bytes of expected size, then a (would-be) zlib stream |
//! | [`archive_import`] | the bytes of an `.aiida` archive (a zip file) |
//! | [`index_rows`] | packs and `packs.idx` rows, see [`index_rows`] and [`seeds::IndexRowsInput`] |
//! | [`loose_folder`] | loose-folder entries, see [`loose_folder`] and [`seeds::LooseFolderInput`] |

mod archive;
mod bytes;
mod config;
mod index_rows;
mod loose_folder;
mod scratch;
pub mod seeds;
mod zlib;

pub use archive::archive_import;
pub use config::{config_open, config_parse};
pub use index_rows::index_rows;
pub use loose_folder::loose_folder;
pub use scratch::remove_scratch;
pub use zlib::zlib_inflate;

/// A fuzz target body.
pub type Target = fn(&[u8]);

/// Every target: its name (the name of its fuzz binary and of its corpus folder) and its body.
pub const TARGETS: &[(&str, Target)] = &[
    ("config_parse", config_parse),
    ("config_open", config_open),
    ("zlib_inflate", zlib_inflate),
    ("archive_import", archive_import),
    ("index_rows", index_rows),
    ("loose_folder", loose_folder),
];
