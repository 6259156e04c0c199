//! The inputs both sides share: the list files in the runs folder, and what the parent knows
//! about the data set to check the results.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use dos_bench::r#gen::{Dataset, Rng};

use crate::args::RunArgs;
use crate::child::digest;
use crate::dataset::write_list;

/// Everything the parent knows about the data set.
pub struct Inputs {
    /// Files of the data set.
    pub n: usize,
    /// Files the `loose` operation adds (the first ones).
    pub loose_n: usize,
    /// Keys the `has` operation queries.
    pub has_n: usize,
    /// Bytes of all files.
    pub total_bytes: u64,
    /// Bytes of the first `loose_n` files.
    pub loose_bytes: u64,
    /// Unique objects.
    pub unique: u64,
    /// Their bytes.
    pub unique_bytes: u64,
    /// Digest of the keys of all files, in data-set order.
    pub digest_all: String,
    /// Digest of the keys of the first `loose_n` files.
    pub digest_loose: String,
    /// Digest of the sorted unique keys.
    pub digest_unique_sorted: String,
    /// Digest of the unique keys in data-set order (`keys-unique.txt`).
    pub digest_unique_order: String,
    /// Keys deleted before `repack` (every 10th sorted unique key, `keys-delete.txt`).
    pub deleted: u64,
    /// Objects that survive the deletion.
    pub surviving: u64,
    /// Bytes of the surviving objects.
    pub surviving_bytes: u64,
    /// Digest of the sorted surviving keys.
    pub digest_surviving_sorted: String,
    /// Unique objects that are not empty (deflated entries dos passes through).
    pub unique_nonempty: u64,
    /// Keys an import reads back and hashes afterwards (`keys-verify.txt`).
    pub verify: u64,
}

/// Write the list files of the data set `ds` (in `ds_dir`) into the runs folder `runs`, and
/// return what the results must be checked against.
pub fn prepare(a: &RunArgs, ds: &Dataset, ds_dir: &Path, runs: &Path) -> Result<Inputs> {
    let loose_n = a.loose_n.min(ds.len());
    let path_of = |i: usize| ds_dir.join(&ds.entries[i].path).display().to_string();
    write_list(&runs.join("files-all.txt"), (0..ds.len()).map(path_of))?;
    write_list(&runs.join("files-loose.txt"), (0..loose_n).map(path_of))?;
    let uniq = ds.unique_indices();
    // Keys as the text both sides read from the lists.
    let hex: Vec<String> = ds.entries.iter().map(|e| e.sha256.to_string()).collect();
    let unique_keys: Vec<&str> = uniq.iter().map(|&i| hex[i].as_str()).collect();
    write_list(&runs.join("keys-unique.txt"), &unique_keys)?;
    let has_n = a.has_n.max(unique_keys.len());
    write_has_keys(&runs.join("keys-has.txt"), &unique_keys, has_n, a.data.seed)?;
    write_list(
        &runs.join("files-unique.txt"),
        uniq.iter().map(|&i| path_of(i)),
    )?;
    let sorted: Vec<(&str, u64)> = uniq
        .iter()
        .map(|&i| (hex[i].as_str(), ds.entries[i].size))
        .collect();
    let repack = write_repack_keys(runs, sorted)?;
    // Probe sample: evenly strided unique objects, about `probe_mb` MB.
    let unique_bytes: u64 = uniq.iter().map(|&i| ds.entries[i].size).sum();
    let stride = usize::try_from(unique_bytes.div_ceil((a.probe_mb * 1_000_000).max(1)))?.max(1);
    write_list(
        &runs.join("files-probe.txt"),
        uniq.iter().step_by(stride).map(|&i| path_of(i)),
    )?;
    // Import check: an evenly strided sample of the unique keys (about 128 MB) read back and
    // hashed after each import.
    let vstride = usize::try_from(unique_bytes.div_ceil(128_000_000))?.max(1);
    let verify: Vec<&str> = unique_keys.iter().step_by(vstride).copied().collect();
    write_list(&runs.join("keys-verify.txt"), &verify)?;
    let unique_nonempty = uniq.iter().filter(|&&i| ds.entries[i].size > 0).count() as u64;
    let all_keys: Vec<&str> = hex.iter().map(String::as_str).collect();
    Ok(Inputs {
        n: ds.len(),
        loose_n,
        has_n,
        total_bytes: ds.total_bytes(),
        loose_bytes: ds.bytes_of_first(loose_n),
        unique: unique_keys.len() as u64,
        unique_bytes,
        digest_all: digest(&all_keys),
        digest_loose: digest(&all_keys[..loose_n]),
        digest_unique_sorted: repack.digest_unique_sorted,
        digest_unique_order: digest(&unique_keys),
        deleted: repack.deleted,
        surviving: repack.surviving,
        surviving_bytes: repack.surviving_bytes,
        digest_surviving_sorted: repack.digest_surviving_sorted,
        unique_nonempty,
        verify: verify.len() as u64,
    })
}

/// Write `keys-has.txt` (at `path`): `has_n` keys in a seeded random order, the unique keys and
/// as many keys of absent objects as it takes.
fn write_has_keys(path: &Path, unique_keys: &[&str], has_n: usize, seed: u64) -> Result<()> {
    // A permutation of indices (4 bytes each) instead of a million strings: the parent stays
    // small, which matters because a child's ru_maxrss starts from the parent's at exec.
    let mut rng = Rng::new(seed ^ 0x6861_735f_6b65_7973); // "has_keys"
    let mut order: Vec<u32> = (0..u32::try_from(has_n)?).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let absent = |j: u32| {
        let mut r = Rng::new(seed ^ 0x6162_7365_6e74_0000 ^ u64::from(j));
        let mut k = String::with_capacity(64);
        for _ in 0..4 {
            let _ = write!(k, "{:016x}", r.next_u64());
        }
        k
    };
    let u = unique_keys.len();
    write_list(
        path,
        order.iter().map(|&j| {
            if (j as usize) < u {
                unique_keys[j as usize].to_string()
            } else {
                absent(j)
            }
        }),
    )
}

/// The unique keys before and after the deletion that precedes `repack`.
struct RepackKeys {
    /// Digest of all unique keys, sorted.
    digest_unique_sorted: String,
    /// Keys deleted.
    deleted: u64,
    /// Keys surviving.
    surviving: u64,
    /// Bytes of the surviving objects.
    surviving_bytes: u64,
    /// Digest of the surviving keys, sorted.
    digest_surviving_sorted: String,
}

/// Repack input: write `keys-delete.txt` in `runs`, every 10th key of the sorted unique keys
/// (`unique`: key and size of each unique object, in any order), which is deleted first.
fn write_repack_keys(runs: &Path, mut unique: Vec<(&str, u64)>) -> Result<RepackKeys> {
    unique.sort_unstable();
    let (deleted, surviving): (Vec<_>, Vec<_>) =
        unique.iter().enumerate().partition(|(j, _)| j % 10 == 0);
    write_list(
        &runs.join("keys-delete.txt"),
        deleted.iter().map(|(_, (k, _))| *k),
    )?;
    let surviving_keys: Vec<&str> = surviving.iter().map(|(_, (k, _))| *k).collect();
    let sorted: Vec<&str> = unique.iter().map(|(k, _)| *k).collect();
    Ok(RepackKeys {
        digest_unique_sorted: digest(&sorted),
        deleted: deleted.len() as u64,
        surviving: surviving_keys.len() as u64,
        surviving_bytes: surviving.iter().map(|(_, (_, b))| *b).sum(),
        digest_surviving_sorted: digest(&surviving_keys),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tenth_sorted_key_is_deleted_before_repack() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let keys: Vec<String> = (0..25).rev().map(|i| format!("{i:02}")).collect();
        let unique: Vec<(&str, u64)> = keys.iter().map(|k| (k.as_str(), 1)).collect();
        let r = write_repack_keys(dir.path(), unique)?;
        assert_eq!((r.deleted, r.surviving, r.surviving_bytes), (3, 22, 22));
        let deleted = crate::dataset::read_lines(&dir.path().join("keys-delete.txt"))?;
        assert_eq!(deleted, ["00", "10", "20"]);
        Ok(())
    }
}
