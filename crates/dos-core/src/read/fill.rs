//! Reading many objects straight into buffers the caller allocated, each of exactly the object's
//! size (e.g. the `bytes` objects a Python caller returns), in parallel.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};

use rayon::prelude::*;

use super::{ObjectMeta, ObjectType};
use crate::codec::Decompressor;
use crate::container::Container;
use crate::error::{Corruption, Error, IoContext, Result, usize_of};
use crate::key::ObjectKey;
use crate::location::PackedLocation;
use crate::read::bulk::{REMOTE_IN_FLIGHT, Step, plan_steps};
use crate::read::{CompressedReader, ObjectReader, PackRangeReader};
use crate::remote::PackData;

/// One object to read and the buffer it goes into.
pub struct FillTarget<'a> {
    /// The object's key.
    pub key: ObjectKey,
    /// Where it is, as [`Container::get_objects_meta`] reported it (packed or loose).
    pub meta: ObjectMeta,
    /// Room for exactly `meta.size` bytes.
    pub buf: &'a mut [u8],
}

impl Container {
    /// Read every target's object into its buffer, on the rayon pool; every pack is opened once.
    /// Targets sorted by pack and offset are read nearly sequentially. Packed content is checked
    /// against its recorded size; a loose file must still have the size reported for it (a loose
    /// file packed and removed since is read from its pack).
    pub fn fill_objects(&self, targets: &mut [FillTarget<'_>]) -> Result<()> {
        let mut packs: HashMap<u64, PackData> = HashMap::new();
        for t in targets.iter() {
            if let Some(loc) = t.meta.location
                && !packs.contains_key(&loc.pack_id)
            {
                packs.insert(loc.pack_id, self.open_pack(loc.pack_id)?);
            }
            if usize_of(t.meta.size.unwrap_or(0))? != t.buf.len() {
                return Err(Error::InvalidArgument(format!(
                    "a buffer of {} bytes for object {} of {:?} bytes",
                    t.buf.len(),
                    t.key,
                    t.meta.size
                )));
            }
        }
        // Objects of remote packs: block reads in offset order, fetched ahead.
        let mut remote: Vec<&mut FillTarget<'_>> = Vec::new();
        let mut local: Vec<&mut FillTarget<'_>> = Vec::new();
        for t in targets.iter_mut() {
            let is_remote = t
                .meta
                .location
                .and_then(|l| packs.get(&l.pack_id))
                .is_some_and(|d| matches!(d, PackData::Remote(_)));
            if is_remote {
                remote.push(t);
            } else {
                local.push(t);
            }
        }
        if !remote.is_empty() {
            self.fill_remote(&packs, &mut remote)?;
        }
        local.par_iter_mut().try_for_each_init(
            || (Decompressor::new(), Vec::new(), Vec::new()),
            |(dec, raw, out), t| self.fill_one(&packs, t, dec, raw, out),
        )
    }

    /// Fill targets in remote packs: per pack, rows in offset order, close ones fetched with one
    /// ranged GET, several GETs in flight.
    fn fill_remote(
        &self,
        packs: &HashMap<u64, PackData>,
        targets: &mut [&mut FillTarget<'_>],
    ) -> Result<()> {
        targets.sort_unstable_by_key(|t| t.meta.location.map(|l| (l.pack_id, l.offset)));
        let mut dec = Decompressor::new();
        let mut out = Vec::new();
        let mut block = Vec::new();
        for group in targets.chunk_by_mut(|a, b| {
            a.meta.location.map(|l| l.pack_id) == b.meta.location.map(|l| l.pack_id)
        }) {
            let rows: Vec<(ObjectKey, PackedLocation)> = group
                .iter()
                .filter_map(|t| t.meta.location.map(|l| (t.key, l)))
                .collect();
            let Some((_, first)) = rows.first() else {
                continue;
            };
            let Some(data) = packs.get(&first.pack_id) else {
                continue;
            };
            let steps = plan_steps(&rows, 512 * 1024);
            let blocks: Vec<std::ops::Range<u64>> = steps
                .iter()
                .filter_map(|s| match s {
                    Step::Block { start, end, .. } => Some(*start..*end),
                    Step::Large(_) => None,
                })
                .collect();
            let mut pending = std::collections::VecDeque::new();
            let mut next = 0;
            for step in &steps {
                match step {
                    Step::Large(i) => {
                        let (key, loc) = rows[*i];
                        let raw = PackRangeReader::over(data.clone(), loc.offset, loc.length);
                        let mut r = if loc.compressed {
                            ObjectReader::Compressed(Box::new(CompressedReader::new(raw, loc.size)))
                        } else {
                            ObjectReader::Packed(raw)
                        };
                        r.read_exact(group[*i].buf)
                            .map_err(|e| self.corrupt(&key, loc, Corruption::Read(e)))?;
                    }
                    Step::Block {
                        rows: range, start, ..
                    } => {
                        while pending.len() < REMOTE_IN_FLIGHT && next < blocks.len() {
                            pending.push_back(data.start_read(blocks[next].clone()));
                            next += 1;
                        }
                        let (key, loc) = rows[range.start];
                        let read = pending
                            .pop_front()
                            .ok_or_else(|| self.corrupt(&key, loc, Corruption::PackTooShort))?;
                        read.wait_into(&mut block)
                            .map_err(|e| self.corrupt(&key, loc, Corruption::Read(e)))?;
                        for i in range.clone() {
                            let (key, loc) = rows[i];
                            let a = usize_of(loc.offset - start)?;
                            let raw = &block[a..a + usize_of(loc.length)?];
                            if loc.compressed {
                                dec.inflate_exact(raw, loc.size, &mut out)
                                    .map_err(|e| self.corrupt(&key, loc, e.into()))?;
                                group[i].buf.copy_from_slice(&out);
                            } else if loc.length != loc.size {
                                return Err(self.corrupt(&key, loc, Corruption::LengthNotSize));
                            } else {
                                group[i].buf.copy_from_slice(raw);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn fill_one(
        &self,
        packs: &HashMap<u64, PackData>,
        t: &mut FillTarget<'_>,
        dec: &mut Decompressor,
        raw: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        match (t.meta.kind, t.meta.location) {
            (ObjectType::Packed, Some(loc)) => {
                let Some(file) = packs.get(&loc.pack_id) else {
                    return Err(Error::MissingPack {
                        path: self.layout.pack(loc.pack_id),
                    });
                };
                if !loc.compressed {
                    if loc.length != loc.size {
                        return Err(self.corrupt(&t.key, loc, Corruption::LengthNotSize));
                    }
                    return file
                        .read_exact_at(t.buf, loc.offset)
                        .map_err(|e| self.corrupt(&t.key, loc, Corruption::Read(e)));
                }
                raw.resize(usize_of(loc.length)?, 0);
                file.read_exact_at(raw, loc.offset)
                    .map_err(|e| self.corrupt(&t.key, loc, Corruption::Read(e)))?;
                dec.inflate_exact(raw, loc.size, out)
                    .map_err(|e| self.corrupt(&t.key, loc, e.into()))?;
                t.buf.copy_from_slice(out);
                Ok(())
            }
            _ => {
                let path = self.loose_path(&t.key);
                let mut f = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        // Packed by a concurrent packer and cleaned since it was located.
                        let data = self.get_object_content(&t.key)?;
                        if data.len() != t.buf.len() {
                            return Err(Error::io(
                                &path,
                                "read loose object",
                                io::Error::other(format!(
                                    "its size changed from {} to {} bytes while it was read",
                                    t.buf.len(),
                                    data.len()
                                )),
                            ));
                        }
                        t.buf.copy_from_slice(&data);
                        return Ok(());
                    }
                    Err(e) => return Err(Error::io(&path, "open loose object", e)),
                };
                f.read_exact(t.buf).ctx(&path, "read")?;
                let mut probe = [0u8; 1];
                if f.read(&mut probe).ctx(&path, "read")? != 0 {
                    return Err(Error::io(
                        &path,
                        "read loose object",
                        io::Error::other(format!(
                            "it grew beyond the {} bytes it had when it was located",
                            t.buf.len()
                        )),
                    ));
                }
                Ok(())
            }
        }
    }
}
