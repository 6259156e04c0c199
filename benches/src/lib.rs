//! Benchmark support for `dos-core`.
//!
//! - `gen` ([`Plan`], [`Dataset`]): a deterministic generator of AiiDA-like data sets (the module is
//!   named `gen`, a reserved word in Rust 2024, so it is spelled `dos_bench::r#gen`; its main
//!   types are re-exported at the crate root).
//! - [`archive`]: AiiDA archives (`.aiida`) of a data set, written the way aiida-core writes them
//!   (for import benchmarks).
//! - [`rss`]: peak resident memory of the current process.
//! - The `dos-compare` binary compares `dos-core` with Python disk-objectstore, each operation in
//!   fresh processes; `benches/container.rs` and `benches/import.rs` hold the criterion
//!   benchmarks.

pub mod archive;
pub mod r#gen;
pub mod rss;

pub use r#gen::{Dataset, Entry, GenOptions, Kind, Plan, Rng};
