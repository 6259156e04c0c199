//! AiiDA archives (`.aiida`) made from a generated data set, written the way aiida-core writes
//! them, for import benchmarks.
//!
//! The archive of a data set holds one `repo/<sha256>` entry per unique object, in the data set's
//! order (the first occurrence of every content; not hash order, as aiida's exporter streams
//! objects in the source container's pack order), then `db.sqlite3`, then `metadata.json`
//! (always STORED). The central directory lists `metadata.json`, `db.sqlite3`, then the
//! repository entries; zip64 end records are written beyond 65,535 entries. Entries are deflated
//! at the given level (aiida's default is 6), or all STORED at level 0 (what `verdi archive
//! import`'s automatic migration produces).
//!
//! `db.sqlite3` has a single table, `db_dbnode(id, uuid, repository_metadata)`: every file of the
//! data set (duplicates included) belongs to one node of 5–15 files, with CalcJob-like names, so
//! every archived object is referenced (importing with `referenced_only` imports everything).
//!
//! Generation streams: objects are read from the data set's files in batches of at most 32 MB
//! (deflated in parallel by [`dos_archive::export::ArchiveWriter`]), objects of 2 MB and more are
//! streamed from their file, and the database is filled row by row; memory stays at a few hundred
//! MB even for 840,000 objects (the per-object metadata of the data set and of the zip writer).
//!
//! The archive is cached as `<data set>/archive-l<level>.aiida` with a stamp
//! (`archive-l<level>.json`) recording what it was made from; a present archive whose stamp
//! matches the data set and whose size matches the stamp is reused.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use dos_archive::export::ArchiveWriter;
use dos_archive::zip::{METHOD_DEFLATE, METHOD_STORED};
use dos_archive::{Limits, ZipArchive};
use dos_core::ObjectKey;
use rayon::prelude::*;
use serde_json::{Map, Value, json};

use crate::r#gen::{Dataset, MANIFEST, Rng};

/// Version of the archive layout made here; part of the stamp, so a cached archive made by
/// another version is regenerated.
pub const ARCHIVE_VERSION: u32 = 1;

/// Objects of at least this size are streamed into the archive (not read into a batch).
pub const STREAM_AT: u64 = 2_000_000;

/// A batch of objects deflated in parallel holds at most this many bytes, or [`BATCH_OBJECTS`]
/// objects.
const BATCH_BYTES: u64 = 32 << 20;
const BATCH_OBJECTS: usize = 5000;

/// What a generated archive holds (also its stamp).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArchiveInfo {
    /// [`ARCHIVE_VERSION`].
    pub version: u32,
    /// The data set's manifest header (its options and generator fingerprint).
    pub dataset: String,
    /// Deflate level (0: all entries STORED).
    pub level: u32,
    /// `repo/<sha256>` entries (the data set's unique objects).
    pub repo_entries: u64,
    /// Their uncompressed bytes.
    pub repo_bytes: u64,
    /// Their compressed bytes (as stored in the zip).
    pub repo_stored_bytes: u64,
    /// Nodes in `db.sqlite3`.
    pub nodes: u64,
    /// Size of `db.sqlite3` (uncompressed).
    pub db_bytes: u64,
    /// Size of the archive file.
    pub archive_bytes: u64,
    /// The archive uses zip64 end records.
    pub zip64: bool,
}

/// Path of the archive of data set `ds_dir` at `level`.
pub fn archive_path(ds_dir: &Path, level: u32) -> PathBuf {
    ds_dir.join(format!("archive-l{level}.aiida"))
}

fn stamp_path(ds_dir: &Path, level: u32) -> PathBuf {
    ds_dir.join(format!("archive-l{level}.json"))
}

/// The first line of the data set's manifest (identifies its options and content).
fn manifest_header(ds: &Dataset) -> Result<String> {
    let path = ds.dir.join(MANIFEST);
    let f = fs::File::open(&path).with_context(|| format!("open {}", path.display()))?;
    let mut first = String::new();
    BufReader::new(f).read_line(&mut first)?;
    Ok(first.trim_end().to_string())
}

/// Reuse the archive of `ds` at `level` if its stamp matches, else generate it. Returns its
/// description and whether it was reused.
pub fn generate_or_reuse(ds: &Dataset, level: u32) -> Result<(ArchiveInfo, bool)> {
    if let Some(info) = cached(ds, level)? {
        return Ok((info, true));
    }
    Ok((generate(ds, level)?, false))
}

/// The archive of `ds` at `level`, if one is present whose stamp matches the data set and whose
/// size matches the stamp.
pub fn cached(ds: &Dataset, level: u32) -> Result<Option<ArchiveInfo>> {
    let header = manifest_header(ds)?;
    let stamp = stamp_path(&ds.dir, level);
    if let Ok(text) = fs::read_to_string(&stamp)
        && let Ok(info) = serde_json::from_str::<ArchiveInfo>(&text)
        && info.version == ARCHIVE_VERSION
        && info.dataset == header
        && info.level == level
        && fs::metadata(archive_path(&ds.dir, level)).is_ok_and(|m| m.len() == info.archive_bytes)
    {
        return Ok(Some(info));
    }
    Ok(None)
}

/// File names of a node (a CalcJob's inputs, outputs and retrieved files); node `k` uses the
/// first `count` of them.
const NODE_FILES: [&str; 15] = [
    "aiida.in",
    "_aiidasubmit.sh",
    ".aiida/calcinfo.json",
    ".aiida/job_tmpl.json",
    "aiida.out",
    "_scheduler-stdout.txt",
    "_scheduler-stderr.txt",
    "out/aiida.save/data-file-schema.xml",
    "out/aiida.save/charge-density.dat",
    "eigenval.xml",
    "array|positions.npy",
    "array|forces.npy",
    "array|bands.npy",
    "pseudo/Si.pbe-n-rrkjus_psl.1.0.0.UPF",
    "CRASH",
];

/// Insert `key` at `path` (`a/b/c`) into a serialised repository tree (`{"o": {name: child}}`
/// for folders, `{"k": key}` for files).
fn insert_file(tree: &mut Map<String, Value>, path: &str, key: &str) {
    match path.split_once('/') {
        None => {
            tree.insert(path.to_string(), json!({ "k": key }));
        }
        Some((dir, rest)) => {
            let child = tree
                .entry(dir.to_string())
                .or_insert_with(|| json!({ "o": {} }));
            if let Some(Value::Object(o)) = child.get_mut("o") {
                insert_file(o, rest, key);
            }
        }
    }
}

/// Write `db.sqlite3` at `path`: one `db_dbnode` row per node of 5–15 consecutive files of the
/// data set (duplicates included, as different nodes share files). Returns the node count.
fn write_db(ds: &Dataset, path: &Path) -> Result<u64> {
    let mut conn = rusqlite::Connection::open(path)
        .with_context(|| format!("create database {}", path.display()))?;
    conn.execute_batch(
        "PRAGMA page_size = 4096; PRAGMA journal_mode = DELETE; PRAGMA synchronous = OFF;
         CREATE TABLE db_dbnode (id INTEGER PRIMARY KEY, uuid VARCHAR(32) NOT NULL,
             repository_metadata JSON NOT NULL);",
    )?;
    let mut rng = Rng::new(ds.opts.seed ^ 0x6462_5f6e_6f64_6573); // "db_nodes"
    let tx = conn.transaction()?;
    let mut nodes = 0u64;
    {
        let mut stmt = tx
            .prepare("INSERT INTO db_dbnode (id, uuid, repository_metadata) VALUES (?1, ?2, ?3)")?;
        let mut i = 0;
        while i < ds.len() {
            let count = (rng.range(5, 15) as usize).min(ds.len() - i);
            let mut tree = Map::new();
            for (name, e) in NODE_FILES.iter().zip(&ds.entries[i..i + count]) {
                insert_file(&mut tree, name, &e.sha256.to_string());
            }
            let meta = json!({ "o": tree }).to_string();
            let uuid = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
            nodes += 1;
            stmt.execute(rusqlite::params![nodes as i64, uuid, meta])?;
            i += count;
        }
    }
    tx.commit()?;
    conn.close().map_err(|(_, e)| e)?;
    Ok(nodes)
}

/// aiida-like `metadata.json` (what `create_archive` writes, with the generator's parameters).
fn metadata(ds: &Dataset, level: u32) -> Vec<u8> {
    json!({
        "export_version": "main_0001",
        "aiida_version": "2.9.4",
        "key_format": "sha256",
        "compression": level,
        "ctime": "2026-01-01T00:00:00.000000",
        "creation_parameters": {
            "entities_starting_set": null,
            "include_authinfos": false,
            "include_comments": true,
            "include_logs": true,
            "graph_traversal_rules": {
                "input_calc_forward": false,
                "input_calc_backward": true,
                "create_forward": true,
                "create_backward": true,
                "return_forward": true,
                "return_backward": false,
                "input_work_forward": false,
                "input_work_backward": true,
                "call_calc_forward": true,
                "call_calc_backward": true,
                "call_work_forward": true,
                "call_work_backward": true
            },
            "generated_by": format!(
                "dos-bench archive v{ARCHIVE_VERSION}: n={} seed={}",
                ds.opts.n, ds.opts.seed
            ),
        },
    })
    .to_string()
    .into_bytes()
}

/// Read the files of `batch` (indices into `ds`) in parallel, checking each against the manifest.
fn read_batch(ds: &Dataset, batch: &[usize]) -> Result<Vec<(ObjectKey, Vec<u8>)>> {
    batch
        .par_iter()
        .map(|&i| {
            let e = &ds.entries[i];
            let path = ds.path(i);
            let data = fs::read(&path).with_context(|| format!("read {}", path.display()))?;
            let key = dos_core::HashType::Sha256.key_of(&data);
            ensure!(
                key == e.sha256 && data.len() as u64 == e.size,
                "{}: content differs from the manifest (regenerate the data set)",
                path.display()
            );
            Ok((key, data))
        })
        .collect()
}

/// Generate the archive of `ds` at `level` (replacing any previous one) and its stamp.
pub fn generate(ds: &Dataset, level: u32) -> Result<ArchiveInfo> {
    ensure!(level <= 9, "deflate level {level} is not in 0..=9");
    let header = manifest_header(ds)?;
    let out = archive_path(&ds.dir, level);
    let stamp = stamp_path(&ds.dir, level);
    let _ = fs::remove_file(&stamp);

    let db = tempfile::Builder::new()
        .prefix(".archive-db-")
        .suffix(".sqlite3")
        .tempfile_in(&ds.dir)
        .with_context(|| format!("create a temporary file in {}", ds.dir.display()))?;
    let nodes = write_db(ds, db.path())?;
    let db_bytes = fs::metadata(db.path())?.len();

    let uniq = ds.unique_indices();
    let mut w = ArchiveWriter::create(&out, level, true)?;
    let mut batch: Vec<usize> = Vec::new();
    let mut batch_bytes = 0u64;
    let flush = |w: &mut ArchiveWriter, batch: &mut Vec<usize>| -> Result<()> {
        if !batch.is_empty() {
            let mut objects = read_batch(ds, batch)?;
            w.add_objects(&mut objects)?;
            batch.clear();
        }
        Ok(())
    };
    for &i in &uniq {
        let e = &ds.entries[i];
        if e.size >= STREAM_AT {
            flush(&mut w, &mut batch)?;
            batch_bytes = 0;
            let path = ds.path(i);
            let f = fs::File::open(&path).with_context(|| format!("open {}", path.display()))?;
            let mut r = HashingReader {
                inner: BufReader::with_capacity(1 << 20, f),
                hasher: dos_core::HashType::Sha256.hasher(),
            };
            w.add_object_stream(&e.sha256, &mut r, e.size)?;
            ensure!(
                r.hasher.finalize() == e.sha256,
                "{}: content differs from the manifest (regenerate the data set)",
                path.display()
            );
            continue;
        }
        if !batch.is_empty() && (batch_bytes + e.size > BATCH_BYTES || batch.len() >= BATCH_OBJECTS)
        {
            flush(&mut w, &mut batch)?;
            batch_bytes = 0;
        }
        batch.push(i);
        batch_bytes += e.size;
    }
    flush(&mut w, &mut batch)?;
    let (archive_bytes, zip64) = w.finish(db.path(), Some(metadata(ds, level)))?;
    drop(db);

    // Check the result with dos-archive's reader: layout, order, methods, names.
    let z = ZipArchive::open(&out, &Limits::default())
        .with_context(|| format!("reopen {}", out.display()))?;
    ensure!(
        z.entries.len() == uniq.len() + 2,
        "{}: {} entries, expected {}",
        out.display(),
        z.entries.len(),
        uniq.len() + 2
    );
    let first: Vec<String> = z
        .entries
        .iter()
        .take(2)
        .map(|e| e.name.as_str().into_owned())
        .collect();
    ensure!(
        first == ["metadata.json", "db.sqlite3"],
        "{}: central directory starts with {first:?}",
        out.display()
    );
    ensure!(
        z.zip64 == (z.entries.len() > 0xFFFF) && z.zip64 == zip64,
        "{}: zip64 end records {} with {} entries",
        out.display(),
        z.zip64,
        z.entries.len()
    );
    let mut repo: Vec<&dos_archive::zip::Entry> = z.entries[2..].iter().collect();
    repo.sort_unstable_by_key(|e| e.header_offset);
    let method = if level == 0 {
        METHOD_STORED
    } else {
        METHOD_DEFLATE
    };
    for (e, &i) in repo.iter().zip(&uniq) {
        if e.name.repo_key() != Some(ds.entries[i].sha256)
            || e.usize != ds.entries[i].size
            || e.method != method
        {
            bail!(
                "{}: entry {} is not the data set's object {i} in order",
                out.display(),
                e.name.as_str()
            );
        }
    }
    let meta = &z.entries[0];
    let dbe = &z.entries[1];
    ensure!(
        meta.method == METHOD_STORED
            && dbe.method == method
            && dbe.header_offset > repo.last().map_or(0, |e| e.header_offset)
            && meta.header_offset > dbe.header_offset,
        "{}: metadata.json/db.sqlite3 are not the STORED last / {method} second-last entries",
        out.display()
    );
    let info = ArchiveInfo {
        version: ARCHIVE_VERSION,
        dataset: header,
        level,
        repo_entries: uniq.len() as u64,
        repo_bytes: repo.iter().map(|e| e.usize).sum(),
        repo_stored_bytes: repo.iter().map(|e| e.csize).sum(),
        nodes,
        db_bytes,
        archive_bytes,
        zip64,
    };
    let tmp = stamp.with_extension("json.tmp");
    {
        let mut f = fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        f.write_all(serde_json::to_string_pretty(&info)?.as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &stamp).with_context(|| format!("rename {}", stamp.display()))?;
    Ok(info)
}

/// A reader that hashes what passes through (to check streamed objects against the manifest).
struct HashingReader<R> {
    inner: R,
    hasher: dos_core::hashing::Hasher,
}

impl<R: std::io::Read> std::io::Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::r#gen::GenOptions;

    #[test]
    fn small_archive_is_aiida_like_and_cached() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let (ds, _) = Dataset::generate_or_reuse(dir.path(), GenOptions { n: 300, seed: 3 })?;
        let (info, reused) = generate_or_reuse(&ds, 6)?;
        assert!(!reused);
        assert_eq!(info.repo_entries, ds.unique_indices().len() as u64);
        assert!(!info.zip64);
        assert!(info.repo_stored_bytes < info.repo_bytes);
        let (again, reused) = generate_or_reuse(&ds, 6)?;
        assert!(reused);
        assert_eq!(again, info);
        let db = tempfile::NamedTempFile::new()?;
        write_db(&ds, db.path())?;
        let (keys, bad) = dos_archive::aiida::referenced_keys(db.path())?;
        assert!(bad.is_empty());
        let mut want: Vec<ObjectKey> = ds.entries.iter().map(|e| e.sha256).collect();
        want.sort_unstable();
        want.dedup();
        assert_eq!(keys, want);
        let (stored, _) = generate_or_reuse(&ds, 0)?;
        assert_eq!(stored.repo_stored_bytes, stored.repo_bytes);
        Ok(())
    }
}
