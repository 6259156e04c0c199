//! Reading many objects straight into buffers the caller allocated, each of exactly the object's
//! size (e.g. the `bytes` objects a Python caller returns), in parallel.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;

use rayon::prelude::*;

use super::{ObjectMeta, ObjectType};
use crate::codec::Decompressor;
use crate::container::Container;
use crate::error::{Corruption, Error, IoContext, Result, usize_of};
use crate::fileio::read_exact_at;
use crate::key::ObjectKey;

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
        let mut packs: HashMap<u64, Arc<File>> = HashMap::new();
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
        targets.par_iter_mut().try_for_each_init(
            || (Decompressor::new(), Vec::new(), Vec::new()),
            |(dec, raw, out), t| self.fill_one(&packs, t, dec, raw, out),
        )
    }

    fn fill_one(
        &self,
        packs: &HashMap<u64, Arc<File>>,
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
                    return read_exact_at(file, t.buf, loc.offset)
                        .map_err(|e| self.corrupt(&t.key, loc, Corruption::Read(e)));
                }
                raw.resize(usize_of(loc.length)?, 0);
                read_exact_at(file, raw, loc.offset)
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
