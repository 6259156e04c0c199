//! `dos-archive`: AiiDA `.aiida` archives (zip files holding `metadata.json`, `db.sqlite3` and
//! `repo/<sha256>` entries) for `dos` containers.
//!
//! - [`import::import_archive`] streams an archive's repository files straight into a container's
//!   packs, verifying every entry (size, CRC-32, SHA-256) before anything pointing at it is
//!   committed, and storing deflated entries without recompressing when compression is asked for.
//! - [`info::archive_info`] describes an archive (version, counts, sizes, methods, anything
//!   suspicious).
//! - [`export::export_archive`] writes an archive aiida-core imports from a container and an
//!   archive database.
//!
//! The zip reader ([`zip`]) is driven by the central directory and treats every archive as
//! hostile: names are never used as paths, sizes are capped, structure is checked first.

pub mod aiida;
pub mod error;
pub mod export;
pub mod import;
pub mod info;
mod space;
pub mod zip;

pub use error::{ArchiveError, Result};
pub use import::{ArchiveImportSummary, EntryProblem, ImportOptions, import_archive};
pub use zip::{Limits, ZipArchive};
