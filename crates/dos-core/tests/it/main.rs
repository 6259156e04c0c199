//! Integration tests of the container library (one binary, modules per scenario).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod appender;
mod lifecycle;
mod maintain;
mod model;
mod packs;
mod reads;
mod util;
