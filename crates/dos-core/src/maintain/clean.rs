//! `clean` (loose copies of packed objects, `duplicates/`, stale sandbox files and locks,
//! VACUUM) and `delete_objects`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use serde::Serialize;

use super::lock::LockMode;
use crate::container::Container;
use crate::durable;
use crate::error::{Error, IoContext, Result};
use crate::key::ObjectKey;
use crate::pack;
use crate::progress::{Progress, Unit};

use super::recover::remove_if_exists;

/// Options of [`Container::clean`].
#[derive(Debug, Clone)]
pub struct CleanOptions {
    /// VACUUM the index afterwards (and truncate its WAL).
    pub vacuum: bool,
    /// Sandbox files younger than this may belong to a live writer and are kept.
    pub sandbox_min_age: Duration,
}

impl Default for CleanOptions {
    fn default() -> Self {
        Self {
            vacuum: false,
            sandbox_min_age: Duration::from_secs(3600),
        }
    }
}

/// What [`Container::clean`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CleanSummary {
    /// Interrupted operations finished or rolled back first.
    pub recovered: Vec<String>,
    /// Loose copies of packed objects deleted.
    pub loose_deleted: u64,
    /// Files in `duplicates/` deleted.
    pub duplicates_deleted: u64,
    /// Objects restored from a valid copy in `duplicates/`.
    pub duplicates_restored: Vec<String>,
    /// Keys whose duplicates are all corrupt and whose object is missing or corrupt.
    pub duplicates_unresolved: Vec<String>,
    /// Stale files removed from `sandbox/`.
    pub sandbox_deleted: u64,
    /// Whether the index was vacuumed.
    pub vacuumed: bool,
}

impl Container {
    /// Remove what is no longer needed: loose copies of packed objects, resolved duplicates,
    /// sandbox files old enough that no live writer can own them, stale dos locks; optionally
    /// VACUUM the index.
    pub fn clean(&self, opts: &CleanOptions, progress: &dyn Progress) -> Result<CleanSummary> {
        self.writable("clean")?;
        let _lock = self.lock_maintenance(LockMode::Exclusive, "clean")?;
        let recovered = self.recover()?;
        let mut s = self.clean_locked(opts, progress)?;
        s.recovered = recovered;
        Ok(s)
    }

    pub(crate) fn clean_locked(
        &self,
        opts: &CleanOptions,
        progress: &dyn Progress,
    ) -> Result<CleanSummary> {
        let mut s = CleanSummary::default();
        // Loose copies of packed objects.
        let loose = self.list_loose()?;
        let packed = self.index().contains_sorted(&loose)?;
        let doomed: Vec<&ObjectKey> = loose
            .iter()
            .zip(packed)
            .filter_map(|(k, p)| p.then_some(k))
            .collect();
        progress.start(
            doomed.len() as u64,
            Unit::Objects,
            "Deleting packed loose copies",
        );
        s.loose_deleted = doomed
            .par_iter()
            .map(|k| {
                let r = self.remove_loose(k);
                progress.inc(1);
                r
            })
            .collect::<Result<Vec<bool>>>()?
            .into_iter()
            .filter(|d| *d)
            .count() as u64;
        progress.finish();

        self.clean_duplicates(&mut s)?;
        s.sandbox_deleted = self.clean_sandbox(opts.sandbox_min_age)?;
        if opts.vacuum {
            let idx = self.index();
            idx.vacuum()?;
            idx.checkpoint()?;
            s.vacuumed = true;
        }
        Ok(s)
    }

    fn clean_duplicates(&self, s: &mut CleanSummary) -> Result<()> {
        let dir = &self.layout.duplicates;
        let mut groups: BTreeMap<String, Vec<std::path::PathBuf>> = BTreeMap::new();
        for e in fs::read_dir(dir).ctx(dir, "list")? {
            let e = e.ctx(dir, "list")?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue;
            }
            if let Some((key, _)) = name.split_once('.') {
                groups.entry(key.to_string()).or_default().push(e.path());
            }
        }
        let hash = self.config.hash_type;
        for (name, mut files) in groups {
            // Sorted, so "the first valid copy" is deterministic.
            files.sort();
            let key = ObjectKey::from_canonical(hash, name.as_bytes());
            let object_ok = match &key {
                Some(key) => match self.get_object_content(key) {
                    Ok(c) => hash.key_of(&c) == *key,
                    Err(e) if e.is_not_found() || matches!(e, Error::Corrupt { .. }) => false,
                    Err(e) => return Err(e),
                },
                None => false,
            };
            let mut restored = object_ok;
            // First pass: restore the first valid copy if the object itself is not sound.
            let mut used: Option<std::path::PathBuf> = None;
            if let (false, Some(key)) = (restored, &key) {
                for f in &files {
                    let content = fs::read(f).ctx(f, "read duplicate")?;
                    if hash.key_of(&content) == *key {
                        let dest = self.loose_path(key);
                        if let Some(parent) = dest.parent() {
                            fs::create_dir_all(parent).ctx(parent, "create loose shard")?;
                        }
                        fs::File::open(f)
                            .and_then(|h| h.sync_all())
                            .ctx(f, "fsync")?;
                        fs::rename(f, &dest).ctx(&dest, "restore duplicate")?;
                        durable::sync_dir(dest.parent().unwrap_or(&self.layout.loose))?;
                        s.duplicates_restored.push(name.clone());
                        restored = true;
                        used = Some(f.clone());
                        break;
                    }
                }
            }
            // Second pass: once the object is sound, every other copy goes.
            if restored {
                for f in files.iter().filter(|f| Some(*f) != used.as_ref()) {
                    remove_if_exists(f)?;
                    s.duplicates_deleted += 1;
                }
            }
            if !restored {
                s.duplicates_unresolved.push(name);
            }
        }
        Ok(())
    }

    fn clean_sandbox(&self, min_age: Duration) -> Result<u64> {
        let dir = &self.layout.sandbox;
        let now = SystemTime::now();
        let mut n = 0;
        for e in fs::read_dir(dir).ctx(dir, "list")? {
            let e = e.ctx(dir, "list")?;
            let meta = match e.metadata() {
                Ok(m) => m,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(Error::io(e.path(), "stat", err)),
            };
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            if age < min_age {
                continue;
            }
            if meta.is_file() {
                remove_if_exists(&e.path())?;
                n += 1;
            } else if meta.is_dir() && e.file_name().to_string_lossy().starts_with("dos-stub-") {
                // A stub folder an offload or a fetch died before swapping in or removing.
                let p = e.path();
                match fs::remove_dir_all(&p) {
                    Ok(()) => n += 1,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(Error::io(&p, "remove", err)),
                }
            }
        }
        Ok(n)
    }

    /// Delete objects: their duplicates, their loose file, then their index rows (one
    /// transaction). Packed bytes become holes until a repack. Returns the keys that existed.
    pub fn delete_objects(&self, keys: &[ObjectKey]) -> Result<Vec<ObjectKey>> {
        let _lock = self.lock_maintenance(LockMode::Exclusive, "delete")?;
        self.recover()?;
        let mut keys: Vec<ObjectKey> = keys.to_vec();
        keys.sort();
        keys.dedup();
        // Duplicates first, then loose, then rows (Python's order).
        let dir = &self.layout.duplicates;
        for e in fs::read_dir(dir).ctx(dir, "list")? {
            let e = e.ctx(dir, "list")?;
            if let Some(name) = e.file_name().to_str()
                && let Some((k, _)) = name.split_once('.')
                && let Some(k) = ObjectKey::from_canonical(self.config.hash_type, k.as_bytes())
                && keys.binary_search(&k).is_ok()
            {
                remove_if_exists(&e.path())?;
            }
        }
        let loose_deleted: Vec<bool> = keys
            .par_iter()
            .map(|k| self.remove_loose(k))
            .collect::<Result<_>>()?;
        let rows_deleted = self.index().delete_keys(&keys)?;
        let mut out: Vec<ObjectKey> = keys
            .iter()
            .zip(loose_deleted)
            .filter(|(k, loose)| *loose || rows_deleted.binary_search(k).is_ok())
            .map(|(k, _)| *k)
            .collect();
        out.sort();
        Ok(out)
    }

    /// Remove provably stale dos pack locks; returns their names.
    pub fn remove_stale_locks(&self) -> Result<Vec<String>> {
        let mut v = Vec::new();
        for e in fs::read_dir(&self.layout.packs).ctx(&self.layout.packs, "list")? {
            let e = e.ctx(&self.layout.packs, "list")?;
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".lock") && pack::remove_if_stale(&e.path())? {
                v.push(name);
            }
        }
        Ok(v)
    }
}
