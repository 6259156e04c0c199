//! Benchmark support for `dos-core`.
//!
//! - `gen` ([`Plan`], [`Dataset`]): a deterministic generator of AiiDA-like data sets (the module is
//!   named `gen`, a reserved word in Rust 2024, so it is spelled `dos_bench::r#gen`; its main
//!   types are re-exported at the crate root).
//! - [`rss`]: peak resident memory of the current process.
//! - The `dos-compare` binary compares `dos-core` with Python disk-objectstore, each operation in
//!   fresh processes; `benches/container.rs` holds the criterion benchmarks.

pub mod r#gen;
pub mod rss;

pub use r#gen::{Dataset, Entry, GenOptions, Kind, Plan, Rng};
