//! Detect and finish (or roll back) interrupted repacks: dos's own (journal) and Python's
//! (`pack_id = -1` rows and the `packs/-1` file), and remove provably stale dos pack locks.

use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::container::Container;
use crate::durable;
use crate::error::{Error, IoContext, Result};
use crate::pack::{self, PackLock};

/// Name of dos's repack journal in `packs/` (not a valid pack name, so Python ignores it).
pub const REPACK_JOURNAL: &str = "dos-repack.json";

/// Python's temporary repack pack id.
const PYTHON_REPACK_ID: i64 = -1;

/// An in-flight repack of pack `old` into the new pack `new`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Journal {
    pub old: u64,
    pub new: u64,
}

impl Container {
    pub(crate) fn journal_path(&self) -> std::path::PathBuf {
        self.layout.packs.join(REPACK_JOURNAL)
    }

    pub(crate) fn read_journal(&self) -> Result<Option<Journal>> {
        let p = self.journal_path();
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|source| Error::Journal { path: p, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&p, "read", e)),
        }
    }

    pub(crate) fn write_journal(&self, j: Journal) -> Result<()> {
        let p = self.journal_path();
        let tmp = self.layout.sandbox.join(format!("{REPACK_JOURNAL}.tmp"));
        let body = format!("{{\"old\":{},\"new\":{}}}", j.old, j.new);
        fs::write(&tmp, body).ctx(&tmp, "write")?;
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .ctx(&tmp, "fsync")?;
        fs::rename(&tmp, &p).ctx(&p, "rename into place")?;
        durable::sync_dir(&self.layout.packs)
    }

    pub(crate) fn remove_journal(&self) -> Result<()> {
        remove_if_exists(&self.journal_path())?;
        durable::sync_dir(&self.layout.packs)
    }

    /// Finish or roll back interrupted operations. Must run under the exclusive maintenance lock.
    /// Returns a description of every action taken.
    pub fn recover(&self) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        // 1. dos's own repack journal.
        if let Some(j) = self.read_journal()? {
            let old_rows = self
                .index()
                .pack_stats_of(j.old as i64)?
                .map_or(0, |s| s.objects);
            let new_rows = self
                .index()
                .pack_stats_of(j.new as i64)?
                .map_or(0, |s| s.objects);
            if old_rows > 0 && new_rows > 0 {
                // Rows in both: a writer that ignored the locks appended to one of them (the
                // old pack after the switch, or the new one after the repack died and its lock
                // went stale). Both packs hold objects; neither may go.
                notes.push(format!(
                    "an interrupted repack of pack {} into pack {}: both hold objects, both kept",
                    j.old, j.new
                ));
            } else if old_rows > 0 {
                // The switch never committed: the new pack is garbage.
                remove_if_exists(&self.layout.pack(j.new))?;
                notes.push(format!(
                    "rolled back an interrupted repack of pack {} (removed unfinished pack {})",
                    j.old, j.new
                ));
            } else {
                // The switch committed: only the old pack's removal was left.
                remove_if_exists(&self.layout.pack(j.old))?;
                notes.push(format!(
                    "completed an interrupted repack of pack {} into pack {}",
                    j.old, j.new
                ));
            }
            durable::sync_dir(&self.layout.packs)?;
            for id in [j.old, j.new] {
                pack::remove_if_stale(&self.layout.pack_lock(id))?;
            }
            self.remove_journal()?;
        }

        // 2. Python's repack protocol (`packs/-1`, rows with pack_id -1).
        let minus_one = self.layout.packs.join("-1");
        let minus_one_rows = self
            .index()
            .pack_stats_of(PYTHON_REPACK_ID)?
            .map_or(0, |s| s.objects);
        let python_lock = self.layout.packs.join("-1.lock");
        if minus_one_rows > 0 {
            if minus_one.exists() {
                // Give the repacked data a regular pack id: link (or copy) packs/-1 to a fresh
                // id, point the rows at it, then drop packs/-1. Every step leaves every row
                // pointing at a complete file.
                let new_id = self.next_free_pack_id()?;
                let dest = self.layout.pack(new_id);
                let lock = PackLock::acquire(
                    &self.layout.pack_lock(new_id),
                    std::time::Duration::ZERO,
                    &self.io.faults,
                )?;
                link_or_copy(&minus_one, &dest)?;
                durable::sync_dir(&self.layout.packs)?;
                let n = self.index().rename_pack(PYTHON_REPACK_ID, new_id as i64)?;
                remove_if_exists(&minus_one)?;
                durable::sync_dir(&self.layout.packs)?;
                drop(lock);
                notes.push(format!(
                    "completed an interrupted Python repack: {n} objects moved from pack -1 to pack {new_id}"
                ));
            } else {
                notes.push(format!(
                    "{minus_one_rows} index rows point at pack -1 but packs/-1 is missing: those \
                     objects cannot be recovered here"
                ));
            }
        } else if minus_one.exists() {
            if python_lock.exists() {
                notes.push(
                    "packs/-1 and packs/-1.lock exist: a Python repack is running or crashed \
                     while writing; left alone"
                        .into(),
                );
            } else {
                remove_if_exists(&minus_one)?;
                durable::sync_dir(&self.layout.packs)?;
                notes.push("removed packs/-1 left by an interrupted Python repack".into());
            }
        }

        // 3. Pack locks left by dead dos processes.
        for e in fs::read_dir(&self.layout.packs).ctx(&self.layout.packs, "list")? {
            let e = e.ctx(&self.layout.packs, "list")?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".lock") && pack::remove_if_stale(&e.path())? {
                notes.push(format!(
                    "removed stale lock packs/{name} of a dead dos process"
                ));
            }
        }
        Ok(notes)
    }

    /// An id above every pack on disk and in the index.
    pub(crate) fn next_free_pack_id(&self) -> Result<u64> {
        let on_disk = pack::list_pack_ids(&self.layout)?.last().copied();
        let in_index = self
            .index()
            .pack_stats()?
            .iter()
            .filter_map(|s| u64::try_from(s.pack_id).ok())
            .max();
        let remote = self.index().remote_packs()?.last().map(|r| r.pack_id);
        let in_index = in_index.max(remote);
        // Pack ids are SQLite integers: rows moved to an id above i64::MAX would record another
        // id (and lose their objects). Only a corrupt index row or pack file name gets there.
        match on_disk.max(in_index) {
            None => Ok(0),
            Some(m) if m < i64::MAX as u64 => Ok(m + 1),
            Some(m) => Err(Error::InvalidArgument(format!(
                "no pack id is left above {m}, the largest an index row can hold being {}: an \
                 index row or a pack file name is corrupt",
                i64::MAX
            ))),
        }
    }
}

pub(crate) fn remove_if_exists(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        // An offloaded pack's stub (a directory in the pack's place).
        Err(_) if fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) => {
            fs::remove_dir_all(p).map_err(|e| Error::io(p, "remove stub", e))
        }
        Err(e) => Err(Error::io(p, "remove", e)),
    }
}

fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    let tmp = to.with_extension("copy-tmp");
    fs::copy(from, &tmp).ctx(&tmp, "copy")?;
    fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .ctx(&tmp, "fsync")?;
    fs::rename(&tmp, to).ctx(to, "rename into place")
}
