//! Reading objects: single reads, listing, counts and sizes here; [`stream`] readers, bulk reads
//! in pack/offset order (`bulk`) and existence checks (`exists`) in their own files.
//!
//! Lookup order is Python's: the index first, then the loose file. A loose file can vanish between
//! the two checks when a concurrent packer moves it into a pack and cleans it; the index is then
//! queried again (cheaply skipped when no other connection committed in between).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::ops::ControlFlow;
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use crate::codec::Decompressor;
use crate::container::Container;
use crate::error::{Corruption, Error, IoContext, Result, usize_of};
use crate::key::ObjectKey;
use crate::location::PackedLocation;
use crate::loose;
use crate::pack;
use crate::remote::PackData;

mod bulk;
mod exists;
mod fill;
pub mod stream;

pub use fill::FillTarget;
pub use stream::{CompressedReader, ObjectReader, PackRangeReader};

/// Where an object is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectType {
    /// A loose file.
    Loose,
    /// In a pack (possibly also loose; the packed copy is preferred, as in Python).
    Packed,
    /// Not in the container.
    Missing,
}

/// What is known about an object without reading it (Python's `ObjectMeta`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Storage kind.
    pub kind: ObjectType,
    /// Uncompressed size (`None` when missing).
    pub size: Option<u64>,
    /// Pack location when packed.
    pub location: Option<PackedLocation>,
}

impl ObjectMeta {
    pub(super) fn missing() -> Self {
        Self {
            kind: ObjectType::Missing,
            size: None,
            location: None,
        }
    }
    pub(super) fn packed(loc: PackedLocation) -> Self {
        Self {
            kind: ObjectType::Packed,
            size: Some(loc.size),
            location: Some(loc),
        }
    }
    pub(super) fn loose(size: u64) -> Self {
        Self {
            kind: ObjectType::Loose,
            size: Some(size),
            location: None,
        }
    }
}

/// Python's `ObjectCount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ObjectCount {
    /// Objects in the index.
    pub packed: u64,
    /// Loose files (including loose copies of packed objects, as Python counts them).
    pub loose: u64,
    /// Pack files.
    pub pack_files: u64,
}

/// Python's `TotalSize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TotalSize {
    /// Sum of uncompressed sizes of packed objects.
    pub total_size_packed: u64,
    /// Sum of on-disk lengths of packed objects.
    pub total_size_packed_on_disk: u64,
    /// Sum of pack file sizes (holes included).
    pub total_size_packfiles_on_disk: u64,
    /// Size of `packs.idx` (without the WAL).
    pub total_size_packindexes_on_disk: u64,
    /// Sum of loose file sizes.
    pub total_size_loose: u64,
}

/// The content of one object handed to a bulk-read callback.
pub enum ObjectContent<'a> {
    /// The whole content, in memory (objects up to [`BULK_INLINE_MAX`] bytes).
    Bytes(&'a [u8]),
    /// A streaming reader (larger objects, which are never held in memory whole).
    Reader(&'a mut ObjectReader),
}

/// Largest object a bulk read hands over as a byte slice; larger ones come as readers.
pub const BULK_INLINE_MAX: u64 = 64 * 1024 * 1024;
impl Container {
    /// Open pack `pack_id`: its local file, or, when it was offloaded (a directory stands in
    /// its place) or is missing, the remote object the index records for it.
    pub(crate) fn open_pack(&self, pack_id: u64) -> Result<PackData> {
        self.open_pack_with(pack_id, || self.index().remote_pack(pack_id))
    }

    /// [`Container::open_pack`], asking `remote_row` (only when the pack is not local) where
    /// an offloaded pack lives: for callers that hold the index lock, or know the rows.
    pub(crate) fn open_pack_with(
        &self,
        pack_id: u64,
        remote_row: impl FnOnce() -> Result<Option<crate::index::RemotePackRow>>,
    ) -> Result<PackData> {
        let p = self.layout.pack(pack_id);
        match File::open(&p) {
            Ok(f) => {
                if !f.metadata().ctx(&p, "stat")?.is_dir() {
                    return Ok(PackData::Local(Arc::new(f)));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&p, "open pack", e)),
        }
        match remote_row()? {
            Some(row) => Ok(PackData::remote(self.remote_store()?, row)),
            None => {
                // A fetch puts the file in place before it forgets the remote copy: a reader
                // that saw the stub and then found no row finds the file now.
                match File::open(&p) {
                    Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => {
                        Ok(PackData::Local(Arc::new(f)))
                    }
                    _ => Err(Error::MissingPack { path: p }),
                }
            }
        }
    }

    /// The bytes of pack `pack_id`, local or remote, for reading ranges of it (what streams of
    /// packed objects read). [`Error::MissingPack`] if it exists neither locally nor remotely.
    pub fn pack_data(&self, pack_id: u64) -> Result<PackData> {
        self.open_pack(pack_id)
    }

    /// Open the pack of `key`, found at `loc`. A repack may have moved the object and removed
    /// its pack since the lookup: then the object is looked up again, once.
    fn open_pack_of(
        &self,
        key: &ObjectKey,
        loc: PackedLocation,
    ) -> Result<(PackData, PackedLocation)> {
        match self.open_pack(loc.pack_id) {
            Err(Error::MissingPack { path }) => {
                // Its own statement: the index guard must be gone before `open_pack` takes it.
                let moved = self.index().get(key)?;
                match moved {
                    Some(moved) if moved != loc => Ok((self.open_pack(moved.pack_id)?, moved)),
                    _ => Err(Error::MissingPack { path }),
                }
            }
            other => other.map(|f| (f, loc)),
        }
    }

    /// Find an object: packed location, or an open loose file. `None` if missing.
    pub(super) fn locate(&self, key: &ObjectKey) -> Result<Option<Located>> {
        let version = {
            let idx = self.index();
            if let Some(loc) = idx.get(key)? {
                return Ok(Some(Located::Packed(loc)));
            }
            idx.data_version()?
        };
        let path = self.loose_path(key);
        match File::open(&path) {
            Ok(f) => return Ok(Some(Located::Loose(f))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, "open loose object", e)),
        }
        // The loose file may have been packed and removed by a concurrent packer.
        let idx = self.index();
        if idx.data_version()? != version
            && let Some(loc) = idx.get(key)?
        {
            return Ok(Some(Located::Packed(loc)));
        }
        Ok(None)
    }

    /// Metadata of one object (type `Missing` if absent).
    pub fn get_object_meta(&self, key: &ObjectKey) -> Result<ObjectMeta> {
        Ok(match self.locate(key)? {
            Some(Located::Packed(loc)) => ObjectMeta::packed(loc),
            Some(Located::Loose(f)) => {
                ObjectMeta::loose(f.metadata().ctx(self.loose_path(key), "stat")?.len())
            }
            None => ObjectMeta::missing(),
        })
    }

    /// A streaming reader of one object and its metadata.
    pub fn open_object(&self, key: &ObjectKey) -> Result<(ObjectReader, ObjectMeta)> {
        match self.locate(key)? {
            Some(Located::Packed(loc)) => {
                let (data, loc) = self.open_pack_of(key, loc)?;
                let raw = PackRangeReader::over(data, loc.offset, loc.length);
                let reader = if loc.compressed {
                    ObjectReader::Compressed(Box::new(CompressedReader::new(raw, loc.size)))
                } else {
                    ObjectReader::Packed(raw)
                };
                Ok((reader, ObjectMeta::packed(loc)))
            }
            Some(Located::Loose(f)) => {
                let size = f.metadata().ctx(self.loose_path(key), "stat")?.len();
                Ok((ObjectReader::Loose(f), ObjectMeta::loose(size)))
            }
            None => Err(self.not_found(key)),
        }
    }

    /// The whole content of one object. Packed content is checked against the recorded size.
    pub fn get_object_content(&self, key: &ObjectKey) -> Result<Vec<u8>> {
        match self.locate(key)? {
            Some(Located::Packed(loc)) => {
                let (data, loc) = self.open_pack_of(key, loc)?;
                // Never allocate for a range the pack does not hold (a damaged row).
                let pack_len = data.len().ctx(self.layout.pack(loc.pack_id), "stat")?;
                if loc
                    .offset
                    .checked_add(loc.length)
                    .is_none_or(|e| e > pack_len)
                {
                    return Err(self.corrupt(key, loc, Corruption::PackTooShort));
                }
                let mut raw = vec![0u8; usize_of(loc.length)?];
                self.io
                    .faults
                    .point("pack.read")
                    .and_then(|()| data.read_exact_at(&mut raw, loc.offset))
                    .map_err(|e| self.corrupt(key, loc, Corruption::Read(e)))?;
                if !loc.compressed {
                    if loc.length != loc.size {
                        return Err(self.corrupt(key, loc, Corruption::LengthNotSize));
                    }
                    return Ok(raw);
                }
                let mut out = Vec::new();
                Decompressor::new()
                    .inflate_exact(&raw, loc.size, &mut out)
                    .map_err(|e| self.corrupt(key, loc, e.into()))?;
                Ok(out)
            }
            Some(Located::Loose(mut f)) => {
                let mut v = Vec::new();
                f.read_to_end(&mut v).ctx(self.loose_path(key), "read")?;
                Ok(v)
            }
            None => Err(self.not_found(key)),
        }
    }

    pub(crate) fn corrupt(
        &self,
        key: &ObjectKey,
        loc: PackedLocation,
        problem: Corruption,
    ) -> Error {
        // A remote store that could not be read is no sign of damage: say what failed.
        if let Corruption::Read(e) = &problem
            && let Some(remote) = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<crate::remote::RemoteError>())
        {
            return Error::Remote(remote.clone());
        }
        Error::Corrupt {
            key: key.to_string(),
            path: self.layout.pack(loc.pack_id),
            problem,
            location: Some(Box::new(loc)),
        }
    }

    /// Metadata of many objects, in input order (type `Missing` for absent ones).
    ///
    /// One index lookup for all keys (a sorted scan when they are many), then a `stat` of the
    /// loose file of each key not packed; keys still missing are looked up again if the index
    /// changed meanwhile (a concurrent packer may have packed and removed the loose file).
    pub fn get_objects_meta(&self, keys: &[ObjectKey]) -> Result<Vec<ObjectMeta>> {
        let mut sorted: Vec<ObjectKey> = keys.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut packed: HashMap<ObjectKey, PackedLocation> = HashMap::with_capacity(sorted.len());
        let version = {
            let idx = self.index();
            idx.lookup_many(&sorted, |k, loc| {
                packed.insert(k, loc);
                Ok(())
            })?;
            idx.data_version()?
        };
        let mut loose: HashMap<ObjectKey, u64> = HashMap::new();
        let mut missing: Vec<ObjectKey> = Vec::new();
        for k in sorted.iter().filter(|k| !packed.contains_key(*k)) {
            let path = self.loose_path(k);
            match fs::metadata(&path) {
                Ok(m) => {
                    loose.insert(*k, m.len());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(*k),
                Err(e) => return Err(Error::io(&path, "stat loose object", e)),
            }
        }
        if !missing.is_empty() {
            let idx = self.index();
            if idx.data_version()? != version {
                idx.lookup_many(&missing, |k, loc| {
                    packed.insert(k, loc);
                    Ok(())
                })?;
            }
        }
        Ok(keys
            .iter()
            .map(|k| match (packed.get(k), loose.get(k)) {
                (Some(loc), _) => ObjectMeta::packed(*loc),
                (None, Some(size)) => ObjectMeta::loose(*size),
                (None, None) => ObjectMeta::missing(),
            })
            .collect())
    }

    /// Visit every object key once, in sorted order (packed and loose merged).
    pub fn for_each_key(&self, mut f: impl FnMut(ObjectKey) -> Result<()>) -> Result<()> {
        let loose = loose::list(&self.layout, self.config.loose_prefix_len, self.hash_type())?;
        let mut li = 0;
        self.index().scan_sorted_keys(|k| {
            while li < loose.len() && loose[li] < k {
                f(loose[li])?;
                li += 1;
            }
            if li < loose.len() && loose[li] == k {
                li += 1;
            }
            f(k)?;
            Ok(ControlFlow::Continue(()))
        })?;
        for k in &loose[li..] {
            f(*k)?;
        }
        Ok(())
    }

    /// All object keys, sorted.
    pub fn list_all_objects(&self) -> Result<Vec<ObjectKey>> {
        let mut v = Vec::new();
        self.for_each_key(|k| {
            v.push(k);
            Ok(())
        })?;
        Ok(v)
    }

    /// Keys of loose objects, sorted (including loose copies of packed objects).
    pub fn list_loose(&self) -> Result<Vec<ObjectKey>> {
        loose::list(&self.layout, self.config.loose_prefix_len, self.hash_type())
    }

    /// Counts, as Python's `count_objects`.
    pub fn count_objects(&self) -> Result<ObjectCount> {
        Ok(ObjectCount {
            packed: self.index().count()?,
            loose: self.list_loose()?.len() as u64,
            pack_files: pack::list_pack_ids(&self.layout)?.len() as u64,
        })
    }

    /// Sizes, as Python's `get_total_size`.
    pub fn get_total_size(&self) -> Result<TotalSize> {
        let (packed, on_disk) = self.index().sums()?;
        let mut packfiles = 0;
        for id in pack::list_pack_ids(&self.layout)? {
            let p = self.layout.pack(id);
            let m = fs::metadata(&p).ctx(&p, "stat")?;
            // Offloaded packs' stubs hold nothing (`pack_places` counts remote bytes).
            if m.is_file() {
                packfiles += m.len();
            }
        }
        let idx = fs::metadata(&self.layout.index)
            .ctx(&self.layout.index, "stat")?
            .len();
        let loose_sizes: u64 = self
            .list_loose()?
            .par_iter()
            .map(|k| {
                fs::metadata(self.loose_path(k))
                    .map(|m| m.len())
                    .unwrap_or(0)
            })
            .sum();
        Ok(TotalSize {
            total_size_packed: packed,
            total_size_packed_on_disk: on_disk,
            total_size_packfiles_on_disk: packfiles,
            total_size_packindexes_on_disk: idx,
            total_size_loose: loose_sizes,
        })
    }
}

impl Container {
    /// Objects and bytes per pack id that has rows in the index, by pack id.
    pub fn pack_stats(&self) -> Result<Vec<crate::index::PackStats>> {
        self.index().pack_stats()
    }

    /// Compact the index file (SQLite `VACUUM`).
    pub fn vacuum_index(&self) -> Result<()> {
        self.index().vacuum()
    }

    /// The index rows of one pack, by offset.
    pub fn rows_in_pack(&self, pack_id: i64) -> Result<Vec<crate::index::RawRow>> {
        self.index().rows_in_pack(pack_id)
    }
}

/// Where [`Container::locate`] found an object.
pub(super) enum Located {
    Packed(PackedLocation),
    Loose(File),
}
