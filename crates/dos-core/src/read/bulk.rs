//! Bulk reads: many objects, every pack opened once and read in offset order, in large blocks,
//! with the compressed objects of a block inflated in parallel.

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;

use rayon::prelude::*;

use super::{
    BULK_INLINE_MAX, CompressedReader, Located, ObjectContent, ObjectMeta, ObjectReader,
    PackRangeReader,
};
use crate::codec::Decompressor;
use crate::container::Container;
use crate::error::{Corruption, IoContext, Result, usize_of};
use crate::key::ObjectKey;
use crate::location::PackedLocation;
use crate::remote::{PackData, PendingRead};

/// Size of the blocks bulk reads fetch from packs.
const BLOCK: u64 = 4 * 1024 * 1024;
/// Gap between two requested objects below which one block read covers both.
const MAX_GAP: u64 = 64 * 1024;
/// ... in a remote pack, where a request costs more than reading a few hundred KiB more.
const REMOTE_MAX_GAP: u64 = 512 * 1024;
/// Block reads of a remote pack kept in flight (memory: this many blocks).
pub(crate) const REMOTE_IN_FLIGHT: usize = 8;

impl Container {
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
    /// before being handed to `f` in offset order. A remote pack's blocks are fetched ahead,
    /// [`REMOTE_IN_FLIGHT`] at a time.
    fn read_pack_rows<F>(
        &self,
        pack_id: u64,
        rows: &[(ObjectKey, PackedLocation)],
        f: &mut F,
    ) -> Result<()>
    where
        F: FnMut(ObjectKey, ObjectContent<'_>, &ObjectMeta) -> Result<()>,
    {
        let data = self.open_pack(pack_id)?;
        let remote = matches!(data, PackData::Remote(_));
        let max_gap = if remote { REMOTE_MAX_GAP } else { MAX_GAP };
        let steps = plan_steps(rows, max_gap);
        let in_flight = if remote { REMOTE_IN_FLIGHT } else { 1 };
        let blocks: Vec<std::ops::Range<u64>> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Block { start, end, .. } => Some(*start..*end),
                Step::Large(_) => None,
            })
            .collect();
        let mut pending: VecDeque<PendingRead> = VecDeque::new();
        let mut next_fetch = 0;
        let mut block: Vec<u8> = Vec::new();
        for step in &steps {
            let Step::Block {
                rows: range,
                start,
                end,
            } = step
            else {
                let Step::Large(i) = step else { continue };
                let (key, loc) = &rows[*i];
                let meta = ObjectMeta::packed(*loc);
                let raw = PackRangeReader::over(data.clone(), loc.offset, loc.length);
                let mut r = if loc.compressed {
                    ObjectReader::Compressed(Box::new(CompressedReader::new(raw, loc.size)))
                } else {
                    ObjectReader::Packed(raw)
                };
                if loc.size <= BULK_INLINE_MAX {
                    let mut inflated = Vec::new();
                    r.read_to_end(&mut inflated)
                        .map_err(|e| self.corrupt(key, *loc, Corruption::Read(e)))?;
                    f(*key, ObjectContent::Bytes(&inflated), &meta)?;
                } else {
                    f(*key, ObjectContent::Reader(&mut r), &meta)?;
                }
                continue;
            };
            // Keep up to `in_flight` block reads started, in order.
            while pending.len() < in_flight && next_fetch < blocks.len() {
                pending.push_back(data.start_read(blocks[next_fetch].clone()));
                next_fetch += 1;
            }
            let group = &rows[range.clone()];
            let (key, loc) = &group[0];
            let read = pending
                .pop_front()
                .ok_or_else(|| self.corrupt(key, *loc, Corruption::PackTooShort))?;
            self.io
                .faults
                .point("pack.read")
                .and_then(|()| read.wait_into(&mut block))
                .map_err(|e| self.corrupt(key, *loc, Corruption::Read(e)))?;
            self.hand_over_block(group, *start, &block, f)?;
            debug_assert!(*end - *start == block.len() as u64);
        }
        Ok(())
    }

    /// Hand the rows of one fetched block to `f`, inflating compressed ones (in parallel when
    /// there are several).
    fn hand_over_block<F>(
        &self,
        group: &[(ObjectKey, PackedLocation)],
        block_start: u64,
        block: &[u8],
        f: &mut F,
    ) -> Result<()>
    where
        F: FnMut(ObjectKey, ObjectContent<'_>, &ObjectMeta) -> Result<()>,
    {
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
        Ok(())
    }
}

/// One step of reading a pack's rows in offset order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Rows `rows` (indices), all inside the bytes `start..end`, fetched with one read.
    Block {
        /// Indices of the rows.
        rows: std::ops::Range<usize>,
        /// First byte of the block.
        start: u64,
        /// End of the block.
        end: u64,
    },
    /// A row read on its own as a stream (too large for a block).
    Large(usize),
}

/// Cut rows sorted by offset into block reads: close rows (gaps up to `max_gap`) share one read
/// of at most [`BLOCK`] bytes holding at most [`BULK_INLINE_MAX`] bytes to inflate.
pub(crate) fn plan_steps(rows: &[(ObjectKey, PackedLocation)], max_gap: u64) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let loc = &rows[i].1;
        if loc.length > BLOCK || loc.size > BULK_INLINE_MAX {
            steps.push(Step::Large(i));
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let mut block_end = loc.offset + loc.length;
        let mut inflate_total = if loc.compressed { loc.size } else { 0 };
        while let Some((_, next)) = rows.get(j) {
            let next_end = next.offset + next.length;
            let add = if next.compressed { next.size } else { 0 };
            if next.length > BLOCK
                || next.size > BULK_INLINE_MAX
                || next.offset > block_end + max_gap
                || next_end.max(block_end) - loc.offset > BLOCK
                || inflate_total + add > BULK_INLINE_MAX
            {
                break;
            }
            block_end = block_end.max(next_end);
            inflate_total += add;
            j += 1;
        }
        steps.push(Step::Block {
            rows: i..j,
            start: loc.offset,
            end: block_end,
        });
        i = j;
    }
    steps
}
