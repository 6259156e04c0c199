//! Loose objects: one file per object under `loose/<key[:p]>/<key[p:]>`.
//!
//! A loose object is created only through a temporary file in `sandbox/`: the content is streamed
//! and hashed into it, the file is made durable, renamed into place (atomic on one filesystem), and
//! the shard folder is made durable. A reader therefore never sees a partial object, and many
//! processes writing the same content at once all succeed with identical files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::container::Container;
use crate::durable;
use crate::error::{Error, IoContext, Result};
use crate::fault::FaultPlan;
use crate::hashing::{HashType, is_lower_hex};
use crate::key::ObjectKey;
use crate::layout::Layout;
use crate::progress::{Progress, Unit};

/// Chunk size of streamed loose writes.
const CHUNK: usize = 512 * 1024;
/// Files per durability barrier in batched writes (bounds memory and sandbox usage).
const BATCH_FILES: usize = 8192;

/// Path of the loose file of `key`.
pub fn loose_path(layout: &Layout, prefix_len: usize, key: &ObjectKey) -> PathBuf {
    let hex = key.hex();
    let key: &str = &hex;
    if prefix_len == 0 || key.len() <= prefix_len {
        layout.loose.join(key)
    } else {
        layout
            .loose
            .join(&key[..prefix_len])
            .join(&key[prefix_len..])
    }
}

/// A sandbox file that is removed on drop unless it was published.
struct SandboxFile {
    path: PathBuf,
    armed: bool,
}

impl SandboxFile {
    fn create(layout: &Layout) -> Result<(Self, File)> {
        loop {
            let name = crate::config::new_container_id().ctx(&layout.sandbox, "random name")?;
            let path = layout.sandbox.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => return Ok((Self { path, armed: true }, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&path, "create sandbox file", e)),
            }
        }
    }
}

impl Drop for SandboxFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Stream `reader` into a new sandbox file, hashing it. Returns the file guard, the open handle
/// (not yet synced), the key and the size.
fn stream_to_sandbox(
    layout: &Layout,
    hash_type: HashType,
    reader: &mut dyn Read,
    source_name: &dyn Fn() -> String,
) -> Result<(SandboxFile, File, ObjectKey, u64)> {
    let (guard, mut file) = SandboxFile::create(layout)?;
    let mut hasher = hash_type.hasher();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Source {
                    source_name: source_name(),
                    source: e,
                });
            }
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).ctx(&guard.path, "write")?;
        size += n as u64;
    }
    Ok((guard, file, hasher.finalize(), size))
}

/// Rename a durable sandbox file into its loose place. Returns the shard folder to fsync.
fn publish(
    layout: &Layout,
    prefix_len: usize,
    mut guard: SandboxFile,
    key: &ObjectKey,
    faults: &FaultPlan,
) -> Result<PathBuf> {
    let dest = loose_path(layout, prefix_len, key);
    let parent = dest.parent().unwrap_or(&layout.loose).to_path_buf();
    if prefix_len > 0 {
        match fs::create_dir(&parent) {
            Ok(()) => durable::sync_dir(&layout.loose)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(&parent, "create loose shard", e)),
        }
    }
    // Replacing an existing file is harmless: both hold the bytes whose hash is the name.
    faults
        .point("loose.rename.before")
        .and_then(|()| fs::rename(&guard.path, &dest))
        .ctx(&dest, "rename into place")?;
    guard.armed = false;
    faults
        .point("loose.rename.after")
        .ctx(&parent, "fsync loose shard")?;
    Ok(parent)
}

/// Write one loose object from a stream, durably (file fsync, rename, folder fsync).
pub fn write_stream(
    layout: &Layout,
    prefix_len: usize,
    hash_type: HashType,
    reader: &mut dyn Read,
    faults: &FaultPlan,
) -> Result<(ObjectKey, u64)> {
    let (guard, file, key, size) =
        stream_to_sandbox(layout, hash_type, reader, &|| "input stream".to_string())?;
    file.sync_all().ctx(&guard.path, "fsync")?;
    drop(file);
    let shard = publish(layout, prefix_len, guard, &key, faults)?;
    durable::sync_dir(&shard)?;
    Ok((key, size))
}

/// One object written by [`write_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// The key of the content.
    pub key: ObjectKey,
    /// Size in bytes.
    pub size: u64,
}

/// Write many files as loose objects. Durability is batched: per batch of files, all sandbox
/// files are made durable with one filesystem sync (per-file fsyncs where that is unavailable),
/// then renamed, then the renames are made durable the same way. Nothing is visible before its
/// bytes are durable, and everything is durable when this returns.
pub fn write_files(
    layout: &Layout,
    prefix_len: usize,
    hash_type: HashType,
    paths: &[PathBuf],
    progress: &dyn Progress,
    faults: &FaultPlan,
) -> Result<Vec<WrittenFile>> {
    progress.start(paths.len() as u64, Unit::Objects, "Adding loose objects");
    let mut out = Vec::with_capacity(paths.len());
    for chunk in paths.chunks(BATCH_FILES) {
        // Handles are closed as soon as each file is staged: thousands of open files would hit
        // the descriptor limit.
        let staged: Vec<(SandboxFile, ObjectKey, u64)> = chunk
            .par_iter()
            .map(|p| {
                let mut f = File::open(p).map_err(|e| Error::Source {
                    source_name: p.display().to_string(),
                    source: e,
                })?;
                let (guard, _file, key, size) =
                    stream_to_sandbox(layout, hash_type, &mut f, &|| p.display().to_string())?;
                Ok((guard, key, size))
            })
            .collect::<Result<_>>()?;

        // Barrier 1: file contents durable before any name becomes visible.
        let synced_fs = staged.len() > 1 && durable::sync_filesystem(&layout.sandbox)?;
        if !synced_fs {
            staged.par_iter().try_for_each(|(g, _, _)| {
                File::open(&g.path)
                    .and_then(|f| f.sync_all())
                    .ctx(&g.path, "fsync")
            })?;
        }
        let mut shards = Vec::new();
        for (guard, key, size) in staged {
            shards.push(publish(layout, prefix_len, guard, &key, faults)?);
            out.push(WrittenFile { key, size });
        }
        // Barrier 2: the renames durable.
        if !(synced_fs && durable::sync_filesystem(&layout.loose)?) {
            shards.sort();
            shards.dedup();
            for s in &shards {
                durable::sync_dir(s)?;
            }
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish();
    Ok(out)
}

/// Keys of all loose objects, sorted. Names that are not keys of this container (wrong length,
/// not lowercase hex, dot-files) are ignored, as Python ignores them.
pub fn list(layout: &Layout, prefix_len: usize, hash_type: HashType) -> Result<Vec<ObjectKey>> {
    let mut keys = if prefix_len == 0 {
        let mut v = Vec::new();
        for e in fs::read_dir(&layout.loose).ctx(&layout.loose, "list")? {
            let e = e.ctx(&layout.loose, "list")?;
            if let Some(key) = e
                .file_name()
                .to_str()
                .and_then(|name| ObjectKey::from_canonical(hash_type, name.as_bytes()))
            {
                v.push(key);
            }
        }
        v
    } else {
        let mut shards = Vec::new();
        for e in fs::read_dir(&layout.loose).ctx(&layout.loose, "list")? {
            let e = e.ctx(&layout.loose, "list")?;
            if let Some(name) = e.file_name().to_str()
                && name.len() == prefix_len
                && is_lower_hex(name)
            {
                shards.push(name.to_string());
            }
        }
        let per_shard: Vec<Vec<ObjectKey>> = shards
            .par_iter()
            .map(|shard| list_shard(&layout.loose.join(shard), shard, hash_type))
            .collect::<Result<_>>()?;
        per_shard.into_iter().flatten().collect()
    };
    keys.sort_unstable();
    Ok(keys)
}

fn list_shard(dir: &Path, shard: &str, hash_type: HashType) -> Result<Vec<ObjectKey>> {
    let mut v = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        // A shard removed under us (by a concurrent clean) is simply empty.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(Error::io(dir, "list", e)),
    };
    let mut name = Vec::with_capacity(hash_type.hex_len());
    for e in rd {
        let e = e.ctx(dir, "list")?;
        if let Some(rest) = e.file_name().to_str() {
            name.clear();
            name.extend_from_slice(shard.as_bytes());
            name.extend_from_slice(rest.as_bytes());
            if let Some(key) = ObjectKey::from_canonical(hash_type, &name) {
                v.push(key);
            }
        }
    }
    Ok(v)
}

impl Container {
    /// Write one loose object from memory (durable when this returns).
    pub fn add_object(&self, content: &[u8]) -> Result<ObjectKey> {
        self.add_streamed_object(&mut &content[..])
    }

    /// Write one loose object from a stream (durable when this returns). Safe to call from many
    /// processes at once, with the same or different content.
    pub fn add_streamed_object(&self, reader: &mut dyn Read) -> Result<ObjectKey> {
        self.writable("add")?;
        write_stream(
            &self.layout,
            self.config.loose_prefix_len,
            self.config.hash_type,
            reader,
            &self.io.faults,
        )
        .map(|(k, _)| k)
    }

    /// Write many files as loose objects with batched syncs; everything is durable when this
    /// returns. Returns `(key, size)` per file, in input order.
    pub fn add_files_loose(
        &self,
        paths: &[PathBuf],
        progress: &dyn Progress,
    ) -> Result<Vec<WrittenFile>> {
        self.writable("add")?;
        write_files(
            &self.layout,
            self.config.loose_prefix_len,
            self.config.hash_type,
            paths,
            progress,
            &self.io.faults,
        )
    }
}
