//! Reading objects: single reads, streaming readers, bulk reads in pack/offset order, existence
//! checks, listing, counts and sizes.
//!
//! Lookup order is Python's: the index first, then the loose file. A loose file can vanish between
//! the two checks when a concurrent packer moves it into a pack and cleans it; the index is then
//! queried again (cheaply skipped when no other connection committed in between).

use std::collections::BTreeMap;
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
use crate::reader::{ObjectReader, PackRangeReader, ZlibObjectReader, read_exact_at};

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
    fn missing() -> Self {
        Self {
            kind: ObjectType::Missing,
            size: None,
            location: None,
        }
    }
    fn packed(loc: PackedLocation) -> Self {
        Self {
            kind: ObjectType::Packed,
            size: Some(loc.size),
            location: Some(loc),
        }
    }
    fn loose(size: u64) -> Self {
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
/// Size of the blocks bulk reads fetch from packs.
const BLOCK: u64 = 4 * 1024 * 1024;
/// Gap between two requested objects below which one block read covers both.
const MAX_GAP: u64 = 64 * 1024;

impl Container {
    fn open_pack(&self, pack_id: u64) -> Result<Arc<File>> {
        let p = self.layout.pack(pack_id);
        File::open(&p).map(Arc::new).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::MissingPack { path: p }
            } else {
                Error::io(&p, "open pack", e)
            }
        })
    }

    fn packed_reader(&self, loc: PackedLocation) -> Result<ObjectReader> {
        let file = self.open_pack(loc.pack_id)?;
        let raw = PackRangeReader::new(file, loc.offset, loc.length);
        Ok(if loc.compressed {
            ObjectReader::Compressed(Box::new(ZlibObjectReader::new(raw, loc.size)))
        } else {
            ObjectReader::Packed(raw)
        })
    }

    /// Find an object: packed location, or an open loose file. `None` if missing.
    fn locate(&self, key: &ObjectKey) -> Result<Option<Located>> {
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
            Some(Located::Packed(loc)) => Ok((self.packed_reader(loc)?, ObjectMeta::packed(loc))),
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
                let file = self.open_pack(loc.pack_id)?;
                let mut raw = vec![0u8; usize_of(loc.length)?];
                read_exact_at(&file, &mut raw, loc.offset)
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
        Error::Corrupt {
            key: key.to_string(),
            path: self.layout.pack(loc.pack_id),
            problem,
            location: Some(Box::new(loc)),
        }
    }

    /// Whether one object exists.
    pub fn has_object(&self, key: &ObjectKey) -> Result<bool> {
        Ok(self.has_objects(std::slice::from_ref(key))?[0])
    }

    /// A version of the pack index that changes whenever another connection (of this or
    /// another process) commits to it; this container's own commits leave it unchanged. See
    /// [`PackWriteOptions::absent_as_of`](crate::write::PackWriteOptions::absent_as_of).
    pub fn index_version(&self) -> Result<i64> {
        self.index().data_version()
    }

    /// Whether the index holds no object at all (one probe, not a count).
    pub fn no_packed_objects(&self) -> Result<bool> {
        self.index().is_empty()
    }

    /// Existence of many objects, in input order. Keys are looked up by one sorted pass over the
    /// index (or indexed lookups when few), then loose files for the rest (one listing when many).
    pub fn has_objects(&self, keys: &[ObjectKey]) -> Result<Vec<bool>> {
        self.has_objects_given(keys, None)
    }

    /// [`Self::has_objects`] with a listing of the loose objects taken earlier
    /// ([`Self::list_loose`]), for callers that ask about many chunks of keys in a row: loose
    /// objects are then looked up in it instead of listing the folder again for every chunk.
    /// (An object written loose after the listing counts as absent, as if asked before.)
    pub fn has_objects_with_loose(
        &self,
        keys: &[ObjectKey],
        loose: &[ObjectKey],
    ) -> Result<Vec<bool>> {
        self.has_objects_given(keys, Some(loose))
    }

    fn has_objects_given(
        &self,
        keys: &[ObjectKey],
        loose: Option<&[ObjectKey]>,
    ) -> Result<Vec<bool>> {
        let hash = self.config.hash_type;
        let mut order: Vec<(ObjectKey, usize)> =
            keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        order.par_sort_unstable();
        let sorted: Vec<ObjectKey> = order.iter().map(|(k, _)| *k).collect();
        let (packed, version) = {
            let idx = self.index();
            (idx.contains_sorted(&sorted)?, idx.data_version()?)
        };
        let mut result = vec![false; keys.len()];
        let mut rest: Vec<usize> = Vec::new(); // positions in `sorted` not packed
        for (j, &found) in packed.iter().enumerate() {
            if found {
                result[order[j].1] = true;
            } else {
                rest.push(j);
            }
        }
        if rest.is_empty() {
            return Ok(result);
        }
        let listed;
        let listing = match loose {
            Some(l) => Some(l),
            None if rest.len() > 20_000 => {
                listed = loose::list(&self.layout, self.config.loose_prefix_len, hash)?;
                Some(listed.as_slice())
            }
            None => None,
        };
        let loose_found: Vec<bool> = if let Some(listing) = listing {
            rest.iter()
                .map(|&j| listing.binary_search(&sorted[j]).is_ok())
                .collect()
        } else {
            rest.par_iter()
                .map(|&j| self.loose_path(&sorted[j]).is_file())
                .collect()
        };
        let mut still: Vec<ObjectKey> = Vec::new();
        for (n, &j) in rest.iter().enumerate() {
            if loose_found[n] {
                result[order[j].1] = true;
            } else {
                still.push(sorted[j]);
            }
        }
        // Objects packed (and their loose copy cleaned) while we looked.
        if !still.is_empty() {
            let idx = self.index();
            if idx.data_version()? != version {
                let again = idx.contains_sorted(&still)?;
                let mut s = 0;
                for &j in &rest {
                    if s < still.len() && sorted[j] == still[s] {
                        if again[s] {
                            result[order[j].1] = true;
                        }
                        s += 1;
                    }
                }
            }
        }
        Ok(result)
    }

    /// Metadata of many objects, in input order (type `Missing` for absent ones).
    pub fn get_objects_meta(&self, keys: &[ObjectKey]) -> Result<Vec<ObjectMeta>> {
        keys.iter().map(|k| self.get_object_meta(k)).collect()
    }

    /// Read many objects: every pack is opened once and read in offset order (in large blocks),
    /// then loose objects. `f` gets each found object once; the keys not found are returned.
    /// Content handed as bytes is only valid during the call.
    pub fn read_objects<F>(&self, keys: &[ObjectKey], mut f: F) -> Result<Vec<ObjectKey>>
    where
        F: FnMut(ObjectKey, ObjectContent<'_>, &ObjectMeta) -> Result<()>,
    {
        let mut sorted: Vec<ObjectKey> = keys.to_vec();
        sorted.par_sort_unstable();
        sorted.dedup();
        let mut by_pack: BTreeMap<u64, Vec<(ObjectKey, PackedLocation)>> = BTreeMap::new();
        let mut packed_keys = Vec::new();
        self.index().lookup_many(&sorted, |k, loc| {
            by_pack.entry(loc.pack_id).or_default().push((k, loc));
            packed_keys.push(k);
            Ok(())
        })?;
        for (pack_id, rows) in &mut by_pack {
            rows.sort_unstable_by_key(|(_, l)| l.offset);
            self.read_pack_rows(*pack_id, rows, &mut f)?;
        }
        packed_keys.par_sort_unstable();
        let loose_keys: Vec<ObjectKey> = sorted
            .into_iter()
            .filter(|k| packed_keys.binary_search(k).is_err())
            .collect();
        drop(packed_keys);
        let mut missing = Vec::new();
        for key in loose_keys {
            match self.locate(&key)? {
                Some(Located::Loose(mut file)) => {
                    let path = self.loose_path(&key);
                    let size = file.metadata().ctx(&path, "stat")?.len();
                    let meta = ObjectMeta::loose(size);
                    if size <= BULK_INLINE_MAX {
                        let mut buf = Vec::with_capacity(usize_of(size)?);
                        file.read_to_end(&mut buf).ctx(&path, "read")?;
                        f(key, ObjectContent::Bytes(&buf), &meta)?;
                    } else {
                        let mut r = ObjectReader::Loose(file);
                        f(key, ObjectContent::Reader(&mut r), &meta)?;
                    }
                }
                Some(Located::Packed(loc)) => {
                    self.read_pack_rows(loc.pack_id, &[(key, loc)], &mut f)?;
                }
                None => missing.push(key),
            }
        }
        Ok(missing)
    }

    /// Read the given rows (sorted by offset) of one pack: close rows are fetched with one read of
    /// up to [`BLOCK`] bytes, and the compressed objects of a block are inflated in parallel
    /// before being handed to `f` in offset order.
    fn read_pack_rows<F>(
        &self,
        pack_id: u64,
        rows: &[(ObjectKey, PackedLocation)],
        f: &mut F,
    ) -> Result<()>
    where
        F: FnMut(ObjectKey, ObjectContent<'_>, &ObjectMeta) -> Result<()>,
    {
        let file = self.open_pack(pack_id)?;
        let mut block: Vec<u8> = Vec::new();
        let mut i = 0;
        while i < rows.len() {
            let (key, loc) = &rows[i];
            if loc.length > BLOCK || loc.size > BULK_INLINE_MAX {
                let meta = ObjectMeta::packed(*loc);
                let mut r = self.packed_reader(*loc)?;
                if loc.size <= BULK_INLINE_MAX {
                    let mut inflated = Vec::new();
                    r.read_to_end(&mut inflated)
                        .map_err(|e| self.corrupt(key, *loc, Corruption::Read(e)))?;
                    f(*key, ObjectContent::Bytes(&inflated), &meta)?;
                } else {
                    f(*key, ObjectContent::Reader(&mut r), &meta)?;
                }
                i += 1;
                continue;
            }
            // The group: this row and the following close ones, within one block read and with
            // at most BULK_INLINE_MAX bytes to inflate.
            let mut j = i + 1;
            let mut block_end = loc.offset + loc.length;
            let mut inflate_total = if loc.compressed { loc.size } else { 0 };
            while let Some((_, next)) = rows.get(j) {
                let next_end = next.offset + next.length;
                let add = if next.compressed { next.size } else { 0 };
                if next.length > BLOCK
                    || next.size > BULK_INLINE_MAX
                    || next.offset > block_end + MAX_GAP
                    || next_end.max(block_end) - loc.offset > BLOCK
                    || inflate_total + add > BULK_INLINE_MAX
                {
                    break;
                }
                block_end = block_end.max(next_end);
                inflate_total += add;
                j += 1;
            }
            let group = &rows[i..j];
            let block_start = loc.offset;
            block.resize(usize_of(block_end - block_start)?, 0);
            read_exact_at(&file, &mut block, block_start)
                .map_err(|e| self.corrupt(key, *loc, Corruption::Read(e)))?;
            let raw_of = |l: &PackedLocation| -> Result<&[u8]> {
                let a = usize_of(l.offset - block_start)?;
                Ok(&block[a..a + usize_of(l.length)?])
            };
            let compressed = group.iter().filter(|(_, l)| l.compressed).count();
            // Inflate in parallel when it pays; `None` for raw rows.
            let decoded: Vec<Option<Vec<u8>>> = if compressed > 1 {
                group
                    .par_iter()
                    .map_init(Decompressor::new, |dec, (k, l)| {
                        if !l.compressed {
                            return Ok(None);
                        }
                        let mut out = Vec::new();
                        dec.inflate_exact(raw_of(l)?, l.size, &mut out)
                            .map_err(|e| self.corrupt(k, *l, e.into()))?;
                        Ok(Some(out))
                    })
                    .collect::<Result<_>>()?
            } else {
                vec![None; group.len()]
            };
            let mut dec = Decompressor::new();
            let mut single = Vec::new();
            for ((k, l), d) in group.iter().zip(decoded) {
                let meta = ObjectMeta::packed(*l);
                let raw = raw_of(l)?;
                if let Some(content) = d {
                    f(*k, ObjectContent::Bytes(&content), &meta)?;
                } else if l.compressed {
                    dec.inflate_exact(raw, l.size, &mut single)
                        .map_err(|e| self.corrupt(k, *l, e.into()))?;
                    f(*k, ObjectContent::Bytes(&single), &meta)?;
                } else {
                    if l.length != l.size {
                        return Err(self.corrupt(k, *l, Corruption::LengthNotSize));
                    }
                    f(*k, ObjectContent::Bytes(raw), &meta)?;
                }
            }
            i = j;
        }
        Ok(())
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
            packfiles += fs::metadata(&p).ctx(&p, "stat")?.len();
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

/// Where [`Container::locate`] found an object.
enum Located {
    Packed(PackedLocation),
    Loose(File),
}
