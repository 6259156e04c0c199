//! `dos-core`: a content-addressed object store with pack files, on-disk compatible with Python
//! [disk-objectstore](https://github.com/aiidateam/disk-objectstore) 1.x.
//!
//! A container is a folder holding loose objects (one file each), pack files (objects
//! concatenated, raw or zlib-compressed), and `packs.idx`, a SQLite index of packed objects.
//! Objects are named by [`ObjectKey`]s, the SHA-256 (or SHA-1) digests of their uncompressed
//! content, written as lowercase hex on disk.
//!
//! ```no_run
//! use dos_core::{Container, InitOptions, NoProgress, ObjectContent, ObjectSource, PackWriteOptions};
//! # fn main() -> dos_core::Result<()> {
//! let c = Container::init("/tmp/example".as_ref(), &InitOptions::default())?;
//! let loose_key = c.add_object(b"hello")?;
//! // One pack writer session: push objects, finish; outcomes arrive once durable.
//! let mut keys = Vec::new();
//! let mut w = c.pack_writer(&PackWriteOptions::default(), &NoProgress, |_, o| {
//!     keys.extend(o.key())
//! })?;
//! w.push(ObjectSource::Bytes(b"packed".to_vec()))?;
//! w.finish()?;
//! assert_eq!(c.get_object_content(&keys[0])?, b"packed");
//! c.read_objects(&keys, |key, content, _meta| {
//!     if let ObjectContent::Bytes(b) = content {
//!         println!("{key}: {} bytes", b.len());
//!     }
//!     Ok(())
//! })?;
//! assert!(c.has_object(&loose_key)?);
//! // Keys from users are parsed once, at the boundary.
//! let k = c.parse_key("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855")?;
//! assert!(!c.has_object(&k)?);
//! # Ok(()) }
//! ```
//!
//! See `docs/format.md` for the format and `docs/durability.md` for the crash and concurrency
//! model.

pub mod codec;
pub mod config;
mod container;
pub mod durable;
pub mod error;
pub mod fault;
pub mod fileio;
pub mod hashing;
pub mod index;
pub mod key;
pub mod layout;
pub mod location;
pub mod loose;
pub mod maintain;
pub mod pack;
pub mod progress;
pub mod read;
pub mod remote;
pub mod write;

pub use codec::{CompressMode, Compression, ZlibLevel, ZstdLevel};
pub use config::Config;
pub use container::{Container, InitOptions, IoOptions};
pub use error::{Error, Result};
pub use hashing::HashType;
pub use key::{InvalidKey, ObjectKey};
pub use location::PackedLocation;
pub use progress::{Interrupt, NoProgress, Progress, Unit};
pub use read::ObjectReader;
pub use read::{BULK_INLINE_MAX, ObjectContent, ObjectCount, ObjectMeta, ObjectType, TotalSize};
pub use write::{
    ObjectSource, PackItem, PackWriteOptions, PackWriteSummary, PackWriter, StoreOutcome, Stored,
    WriteTuning,
};
