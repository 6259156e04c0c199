//! Existence checks: one sorted pass over the index (or indexed lookups when few keys are
//! asked), then the loose files of the rest.

use rayon::prelude::*;

use crate::container::Container;
use crate::error::{Error, Result};
use crate::key::ObjectKey;
use crate::loose;

impl Container {
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
        // The keys in sorted order and, unless they came sorted (as from the importer), where
        // each one was asked.
        let owned: Vec<ObjectKey>;
        let mut asked_at: Vec<u32> = Vec::new();
        let sorted: &[ObjectKey] = if keys.is_sorted() {
            keys
        } else {
            let n = u32::try_from(keys.len()).map_err(|_| Error::TooLarge {
                bytes: keys.len() as u64,
            })?;
            let mut pairs: Vec<(ObjectKey, u32)> = keys.iter().copied().zip(0..n).collect();
            pairs.par_sort_unstable();
            asked_at = pairs.iter().map(|p| p.1).collect();
            owned = pairs.into_iter().map(|p| p.0).collect();
            &owned
        };
        let position = |j: usize| match asked_at.get(j) {
            Some(&i) => i as usize,
            None => j,
        };
        let (packed, version) = {
            let idx = self.index();
            (idx.contains_sorted(sorted)?, idx.data_version()?)
        };
        let mut result = vec![false; keys.len()];
        let mut rest: Vec<usize> = Vec::new(); // positions in `sorted` not packed
        for (j, &found) in packed.iter().enumerate() {
            if found {
                result[position(j)] = true;
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
                result[position(j)] = true;
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
                            result[position(j)] = true;
                        }
                        s += 1;
                    }
                }
            }
        }
        Ok(result)
    }
}
