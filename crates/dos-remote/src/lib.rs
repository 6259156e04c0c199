//! `dos-remote`: packs of dos containers in S3-compatible object storage (AWS S3, Ceph RADOS
//! Gateway, MinIO), as a [`dos_core::remote::RemoteStore`].
//!
//! - [`S3Store`]: the store, over the `object_store` crate's S3 client; ranged GETs in the
//!   background, downloads that resume after a broken connection, multipart uploads in
//!   parallel, every part signed with its SHA-256 (which the server checks; the MD5 of each
//!   part against its ETag on request), and the stored size checked afterwards. Transient failures are retried with exponential backoff.
//! - [`S3Opener`]: what a program hands to [`dos_core::IoOptions::remote`].
//! - [`Credentials`]: where the keys come from — the program passes the environment in; the
//!   library reads none.
//! - [`CachedStore`]: a local cache of read ranges, capped in bytes.

mod cache;
mod credentials;
mod s3;

pub use cache::CachedStore;
pub use credentials::Credentials;
pub use s3::{S3Opener, S3Store, Tuning};
