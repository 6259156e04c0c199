//! Backups: a complete copy of the container in another folder, incremental against the previous
//! backup, in disk-objectstore's backup layout.
//!
//! [`Container::backup_into`] writes one copy: loose files first, then the index (SQLite's online
//! backup API, so writers may commit meanwhile), then the packs. That order makes the copy
//! consistent while writers run: an object packed and cleaned during the loose step is in the
//! index copied after it, and every index row copied refers to bytes that were durable in a pack
//! before the row was committed, so they are in the pack copied after the index. Loose files and
//! packs unchanged since the previous backup are hard links to it; a pack that grew since gets
//! only its new tail written, appended to the previous backup's file (see below). Everything is
//! made durable before the function returns.
//!
//! [`Container::backup`] manages a folder of backups as disk-objectstore's `backup_utils` does:
//! the copy is written to `live-backup`, renamed to `backup_<UTC %Y%m%d%H%M%S>_<4 of [a-z0-9]>`
//! once durable, `last-backup` then points at it, and only the newest `keep + 1` backups stay.
//!
//! **Packs that grew.** A backup's pack file may be shared (hard-linked) with earlier backups.
//! It is reused only if every object the new index places below the shared file's length sits
//! at the same offset, with the same length, key and encoding, in the previous backup's index,
//! so its bytes there are already right; the bytes the live pack has beyond that length are then
//! appended to the shared file. Appending never changes a byte an earlier backup's index refers
//! to; those backups only see a longer pack file whose tail their index does not use (as after
//! an interrupted write; Python's and dos's validate accept it). Otherwise the pack is copied
//! whole into a new file.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::container::Container;
use crate::durable;
use crate::error::{Error, IoContext, Result};
use crate::layout::{CONFIG_FILE, INDEX_FILE, LOOSE_DIR, Layout};
use crate::maintain::LockMode;
use crate::progress::{Interrupt, Progress, Unit};

/// The folder a running backup is written to, inside the backups folder.
pub const LIVE_BACKUP: &str = "live-backup";
/// The symbolic link to the newest backup.
pub const LAST_BACKUP: &str = "last-backup";

/// Options of [`Container::backup`].
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Keep this many backups besides the new one (all when `None`), as `--keep` of
    /// disk-objectstore's backup.
    pub keep: Option<usize>,
    /// Validate the new copy (every object hashed) before publishing it.
    pub verify: bool,
    /// Stops the backup between files; nothing is published then.
    pub interrupt: Interrupt,
}

/// What a backup wrote and shared.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BackupSummary {
    /// The backup folder (for [`Container::backup`], its final name).
    pub folder: PathBuf,
    /// The previous backup it is incremental against.
    pub previous: Option<PathBuf>,
    /// Loose files hard-linked from the previous backup.
    pub loose_linked: u64,
    /// Loose files copied.
    pub loose_copied: u64,
    /// Packs hard-linked from the previous backup unchanged.
    pub packs_linked: u64,
    /// Packs whose previous copy got a new tail appended.
    pub packs_appended: u64,
    /// Packs copied whole.
    pub packs_copied: u64,
    /// Bytes written: copied loose files, pack tails and whole packs, and the index.
    pub bytes_written: u64,
    /// Bytes of the index copy.
    pub index_bytes: u64,
    /// Objects in the copied index.
    pub packed_objects: u64,
    /// Objects verified (with `verify`).
    pub verified_objects: Option<u64>,
    /// Older backups removed (`keep`).
    pub removed: Vec<PathBuf>,
}

/// One index row, as backups compare them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    offset: u64,
    length: u64,
    key: String,
    compressed: bool,
}

impl Container {
    /// Write a complete copy of this container into `dest` (created; it must not exist),
    /// hard-linking what is unchanged from the container copy `previous`. See the module
    /// documentation for the order and what is shared. Holds the maintenance lock in shared
    /// mode (refused while a repack, delete, clean or pack runs). Nothing is published: a caller
    /// that renames `dest` afterwards must make the rename durable itself.
    pub fn backup_into(
        &self,
        dest: &Path,
        previous: Option<&Path>,
        interrupt: &Interrupt,
        progress: &dyn Progress,
    ) -> Result<BackupSummary> {
        let _lock = self.lock_maintenance(LockMode::Shared, "backup")?;
        if dest.exists() {
            return Err(Error::io(
                dest,
                "create backup folder",
                io::Error::new(io::ErrorKind::AlreadyExists, "it already exists"),
            ));
        }
        let previous = previous.filter(|p| p.join(CONFIG_FILE).is_file());
        let mut s = BackupSummary {
            folder: dest.to_path_buf(),
            previous: previous.map(Path::to_path_buf),
            ..BackupSummary::default()
        };
        let to = Layout::new(dest);
        fs::create_dir_all(dest).ctx(dest, "create backup folder")?;
        for dir in [&to.loose, &to.packs, &to.sandbox, &to.duplicates] {
            fs::create_dir(dir).ctx(dir, "create folder")?;
        }
        copy_file(&self.layout.config, &to.config)?;
        let settings = self.layout.root.join(crate::remote::REMOTE_SETTINGS_FILE);
        if settings.is_file() {
            copy_file(&settings, &dest.join(crate::remote::REMOTE_SETTINGS_FILE))?;
        }

        // 1. Loose files.
        let prev_loose = previous.map(|p| p.join(LOOSE_DIR));
        self.backup_loose(&to, prev_loose.as_deref(), interrupt, progress, &mut s)?;
        self.io
            .faults
            .point("backup.loose")
            .ctx(&to.loose, "fsync loose copies")?;

        // 2. The index, with SQLite's online backup (consistent while writers commit).
        let index_tmp = dest.join(format!("{INDEX_FILE}.part"));
        self.backup_index_to(&index_tmp)?;
        self.io
            .faults
            .point("backup.index")
            .and_then(|()| fs::rename(&index_tmp, &to.index))
            .ctx(&to.index, "rename index copy")?;
        s.index_bytes = fs::metadata(&to.index).ctx(&to.index, "stat")?.len();
        s.bytes_written += s.index_bytes;

        // 3. Packs, against the index just copied.
        let rows = pack_rows(&to.index)?;
        s.packed_objects = rows.values().map(|v| v.len() as u64).sum();
        let prev_rows = match previous {
            Some(p) if p.join(INDEX_FILE).is_file() => pack_rows(&p.join(INDEX_FILE))?,
            _ => HashMap::new(),
        };
        let mut ids: Vec<u64> = rows.keys().copied().collect();
        ids.sort_unstable();
        let total: u64 = ids
            .iter()
            .filter_map(|id| fs::metadata(self.layout.pack(*id)).ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum();
        progress.start(total, Unit::Bytes, "Backing up packs");
        for id in ids {
            if interrupt.is_set() {
                return Err(Error::Interrupted);
            }
            let prev_pack = previous.map(|p| Layout::new(p).pack(id));
            self.io
                .faults
                .point("backup.pack")
                .ctx(to.pack(id), "copy pack")?;
            let empty = Vec::new();
            self.backup_pack(
                id,
                &to,
                prev_pack.as_deref(),
                &rows[&id],
                prev_rows.get(&id).unwrap_or(&empty),
                &mut s,
                progress,
            )?;
        }
        progress.finish();

        // Everything durable: one filesystem sync where there is one, else file by file.
        if !durable::sync_filesystem(dest)? {
            sync_tree(dest)?;
        }
        if let Some(parent) = dest.parent() {
            durable::sync_dir(parent)?;
        }
        Ok(s)
    }

    /// Back up into the backups folder `root` (created if needed): `live-backup`, published as
    /// `backup_<timestamp>_<random>` once durable (and validated with `verify`), `last-backup`
    /// pointed at it, older backups beyond `keep` removed. A `live-backup` left by an interrupted
    /// run is removed first; published backups are never touched except by `keep`.
    pub fn backup(
        &self,
        root: &Path,
        opts: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<BackupSummary> {
        fs::create_dir_all(root).ctx(root, "create backups folder")?;
        let live = root.join(LIVE_BACKUP);
        if fs::symlink_metadata(&live).is_ok() {
            fs::remove_dir_all(&live).ctx(&live, "remove the folder of an interrupted backup")?;
        }
        let previous = existing_backups(root)?.pop();
        let mut s = self.backup_into(&live, previous.as_deref(), &opts.interrupt, progress)?;
        if opts.verify {
            let copy = Container::open(&live)?;
            let report = copy.validate(&crate::maintain::ValidateOptions::default(), progress)?;
            if !report.is_valid() {
                return Err(Error::BackupInvalid {
                    path: live.clone(),
                    errors: report.errors() as u64,
                });
            }
            s.verified_objects = Some(report.objects_checked);
        }
        self.io
            .faults
            .point("backup.publish")
            .ctx(&live, "publish backup")?;
        let name = loop {
            // Names sort by time only to the second: one that would sort before the newest
            // existing backup (made in the same second) waits for the next second.
            let name = backup_name()?;
            let newest = existing_backups(root)?.pop();
            match newest
                .as_ref()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
            {
                Some(n) if n.get(..21) >= name.get(..21) => {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                _ => break name,
            }
        };
        let folder = root.join(&name);
        fs::rename(&live, &folder).ctx(&folder, "publish backup")?;
        durable::sync_dir(root)?;
        // `last-backup` replaced atomically: a new link renamed over the old one.
        let link_tmp = root.join(format!(".{LAST_BACKUP}.tmp"));
        let _ = fs::remove_file(&link_tmp);
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&name, &link_tmp).ctx(&link_tmp, "create symlink")?;
            fs::rename(&link_tmp, root.join(LAST_BACKUP)).ctx(&link_tmp, "rename symlink")?;
        }
        durable::sync_dir(root)?;
        if let Some(keep) = opts.keep {
            let all = existing_backups(root)?;
            let excess = all.len().saturating_sub(keep + 1);
            for old in &all[..excess] {
                fs::remove_dir_all(old).ctx(old, "remove old backup")?;
                s.removed.push(old.clone());
            }
            if excess > 0 {
                durable::sync_dir(root)?;
            }
        }
        s.folder = folder;
        Ok(s)
    }

    fn backup_loose(
        &self,
        to: &Layout,
        prev: Option<&Path>,
        interrupt: &Interrupt,
        progress: &dyn Progress,
        s: &mut BackupSummary,
    ) -> Result<()> {
        progress.start(0, Unit::Objects, "Backing up loose objects");
        let mut copy_one = |src: &Path, dst: &Path, prev: Option<PathBuf>| -> Result<()> {
            if interrupt.is_set() {
                return Err(Error::Interrupted);
            }
            let meta = match fs::metadata(src) {
                Ok(m) => m,
                // Packed and cleaned meanwhile: the index copied next has it.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(Error::io(src, "stat", e)),
            };
            if let Some(p) = prev
                && fs::metadata(&p).is_ok_and(|m| m.len() == meta.len())
                && fs::hard_link(&p, dst).is_ok()
            {
                s.loose_linked += 1;
            } else {
                match fs::copy(src, dst) {
                    Ok(n) => {
                        s.loose_copied += 1;
                        s.bytes_written += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(src, "copy loose object", e)),
                }
            }
            progress.inc(1);
            Ok(())
        };
        for e in fs::read_dir(&self.layout.loose).ctx(&self.layout.loose, "list")? {
            let e = e.ctx(&self.layout.loose, "list")?;
            let name = e.file_name();
            let src = e.path();
            let ty = e.file_type().ctx(&src, "stat")?;
            if ty.is_dir() {
                let dst_dir = to.loose.join(&name);
                fs::create_dir(&dst_dir).ctx(&dst_dir, "create folder")?;
                for f in fs::read_dir(&src).ctx(&src, "list")? {
                    let f = f.ctx(&src, "list")?;
                    let fname = f.file_name();
                    copy_one(
                        &f.path(),
                        &dst_dir.join(&fname),
                        prev.map(|p| p.join(&name).join(&fname)),
                    )?;
                }
            } else if ty.is_file() {
                copy_one(&src, &to.loose.join(&name), prev.map(|p| p.join(&name)))?;
            }
        }
        progress.finish();
        Ok(())
    }

    /// Copy the index to the file `dest` (replaced if it exists) with SQLite's online backup
    /// API: a consistent snapshot while writers commit, as a standalone file (no WAL), fsynced.
    pub fn backup_index_to(&self, dest: &Path) -> Result<()> {
        let src = &self.layout.index;
        let ierr = |path: &Path| {
            let path = path.to_path_buf();
            move |e: rusqlite::Error| Error::index(&path, e)
        };
        let from = Connection::open_with_flags(
            src,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(ierr(src))?;
        from.busy_timeout(std::time::Duration::from_secs(60))
            .map_err(ierr(src))?;
        let _ = fs::remove_file(dest);
        let mut to = Connection::open(dest).map_err(ierr(dest))?;
        {
            let b = rusqlite::backup::Backup::new(&from, &mut to).map_err(ierr(dest))?;
            b.run_to_completion(1024, std::time::Duration::from_millis(0), None)
                .map_err(ierr(dest))?;
        }
        // A standalone file: no -wal or -shm next to it once the connection closes.
        to.pragma_update(None, "journal_mode", "DELETE")
            .map_err(ierr(dest))?;
        to.close().map_err(|(_, e)| ierr(dest)(e))?;
        File::open(dest)
            .and_then(|f| f.sync_all())
            .ctx(dest, "fsync")?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn backup_pack(
        &self,
        id: u64,
        to: &Layout,
        prev_pack: Option<&Path>,
        rows: &[Row],
        prev_rows: &[Row],
        s: &mut BackupSummary,
        progress: &dyn Progress,
    ) -> Result<()> {
        let src_path = self.layout.pack(id);
        let dst_path = to.pack(id);
        if crate::remote::is_stub(&self.layout, id) {
            // An offloaded pack: the backup refers to the same remote object (the bucket keeps
            // it; see docs/remote.md), through a stub of its own.
            fs::create_dir(&dst_path).ctx(&dst_path, "create stub folder")?;
            let note = crate::remote::STUB_NOTE;
            if let Ok(text) = fs::read(src_path.join(note)) {
                fs::write(dst_path.join(note), text).ctx(dst_path.join(note), "write")?;
            }
            // Offloaded after the index was copied: the copy must learn where the pack went.
            if let Some(row) = self.index().remote_pack(id)? {
                record_remote_row(&to.index, &row)?;
            }
            return Ok(());
        }
        let mut src = File::open(&src_path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::MissingPack {
                    path: src_path.clone(),
                }
            } else {
                Error::io(&src_path, "open pack", e)
            }
        })?;
        let live_len = src.metadata().ctx(&src_path, "stat")?.len();
        let needed = rows.iter().map(|r| r.offset + r.length).max().unwrap_or(0);
        if live_len < needed {
            return Err(Error::io(
                &src_path,
                "back up pack",
                io::Error::other(format!(
                    "the pack has {live_len} bytes but its index rows reach {needed}"
                )),
            ));
        }
        // Reuse the previous copy when every object below its length is already right there.
        let shared_len = prev_pack
            .and_then(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .filter(|&len| len <= live_len && len > 0)
            .filter(|&len| {
                // Keyed by offset and key: empty objects share their offset with the next one.
                let prev: HashMap<(u64, &str), &Row> = prev_rows
                    .iter()
                    .map(|r| ((r.offset, r.key.as_str()), r))
                    .collect();
                rows.iter().filter(|r| r.offset < len).all(|r| {
                    prev.get(&(r.offset, r.key.as_str()))
                        .is_some_and(|p| *p == r)
                        && r.offset + r.length <= len
                })
            });
        match (prev_pack, shared_len) {
            (Some(prev), Some(len)) if fs::hard_link(prev, &dst_path).is_ok() => {
                if len == live_len {
                    s.packs_linked += 1;
                } else {
                    let mut out = OpenOptions::new()
                        .append(true)
                        .open(&dst_path)
                        .ctx(&dst_path, "open for appending")?;
                    src.seek(SeekFrom::Start(len)).ctx(&src_path, "seek")?;
                    let n = io::copy(&mut (&mut src).take(live_len - len), &mut out)
                        .ctx(&dst_path, "append pack tail")?;
                    out.sync_all().ctx(&dst_path, "fsync")?;
                    s.packs_appended += 1;
                    s.bytes_written += n;
                }
            }
            _ => {
                let mut out = File::create(&dst_path).ctx(&dst_path, "create")?;
                let n = io::copy(&mut (&mut src).take(live_len), &mut out)
                    .ctx(&dst_path, "copy pack")?;
                out.sync_all().ctx(&dst_path, "fsync")?;
                s.packs_copied += 1;
                s.bytes_written += n;
            }
        }
        progress.inc(live_len);
        Ok(())
    }
}

/// Record `row` in the index copy at `path` unless it already records that pack.
fn record_remote_row(path: &Path, row: &crate::index::RemotePackRow) -> Result<()> {
    let ierr = |e| Error::index(path, e);
    let conn = Connection::open(path).map_err(ierr)?;
    conn.execute_batch(crate::index::CREATE_REMOTE_SQL)
        .map_err(ierr)?;
    conn.execute(
        "INSERT OR IGNORE INTO dos_remote_pack (pack_id, name, length, sha256, offloaded_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        rusqlite::params![
            i64::try_from(row.pack_id).unwrap_or(i64::MAX),
            row.name,
            i64::try_from(row.length).unwrap_or(i64::MAX),
            row.sha256,
            row.offloaded_at
        ],
    )
    .map_err(ierr)?;
    conn.close().map_err(|(_, e)| ierr(e))?;
    File::open(path)
        .and_then(|f| f.sync_all())
        .ctx(path, "fsync")
}

/// Every index row of the index file at `path`, by pack.
fn pack_rows(path: &Path) -> Result<HashMap<u64, Vec<Row>>> {
    let ierr = |e| Error::index(path, e);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(ierr)?;
    let mut stmt = conn
        .prepare("SELECT pack_id, \"offset\", length, hashkey, compressed FROM db_object")
        .map_err(ierr)?;
    let mut rows = stmt.query([]).map_err(ierr)?;
    let mut out: HashMap<u64, Vec<Row>> = HashMap::new();
    while let Some(r) = rows.next().map_err(ierr)? {
        let (pack, offset, length): (i64, i64, i64) = (
            r.get(0).map_err(ierr)?,
            r.get(1).map_err(ierr)?,
            r.get(2).map_err(ierr)?,
        );
        let key: String = r.get(3).map_err(ierr)?;
        let (Ok(pack), Ok(offset), Ok(length)) = (
            u64::try_from(pack),
            u64::try_from(offset),
            u64::try_from(length),
        ) else {
            return Err(Error::Corrupt {
                key,
                path: path.to_path_buf(),
                problem: if pack == -1 {
                    crate::error::Corruption::InterruptedRepack
                } else {
                    crate::error::Corruption::MalformedRow {
                        pack_id: pack,
                        offset,
                        length,
                        size: 0,
                    }
                },
                location: None,
            });
        };
        out.entry(pack).or_default().push(Row {
            offset,
            length,
            key,
            compressed: r.get::<_, i64>(4).map_err(ierr)? != 0,
        });
    }
    Ok(out)
}

/// Copy a small file (made durable with the rest of the backup).
fn copy_file(src: &Path, dst: &Path) -> Result<()> {
    fs::copy(src, dst).ctx(src, "copy")?;
    Ok(())
}

/// fsync every file and folder under `dir` (where there is no filesystem sync).
fn sync_tree(dir: &Path) -> Result<()> {
    for e in fs::read_dir(dir).ctx(dir, "list")? {
        let e = e.ctx(dir, "list")?;
        let p = e.path();
        if e.file_type().ctx(&p, "stat")?.is_dir() {
            sync_tree(&p)?;
        } else {
            File::open(&p).and_then(|f| f.sync_all()).ctx(&p, "fsync")?;
        }
    }
    durable::sync_dir(dir)
}

/// The published backups in `root`, oldest first (their names sort by time).
pub fn existing_backups(root: &Path) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in fs::read_dir(root).ctx(root, "list")? {
        let e = e.ctx(root, "list")?;
        let name = e.file_name().to_string_lossy().into_owned();
        if is_backup_name(&name) && e.file_type().ctx(e.path(), "stat")?.is_dir() {
            v.push(e.path());
        }
    }
    v.sort();
    Ok(v)
}

/// Whether `name` is `backup_<14 digits>_<4 of [a-z0-9]>`.
fn is_backup_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("backup_") else {
        return false;
    };
    let Some((ts, rand)) = rest.split_once('_') else {
        return false;
    };
    ts.len() == 14
        && ts.bytes().all(|b| b.is_ascii_digit())
        && rand.len() == 4
        && rand
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `backup_<UTC %Y%m%d%H%M%S>_<4 random [a-z0-9]>`.
fn backup_name() -> Result<String> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, mo, d, h, mi, se) = utc(secs);
    let mut raw = [0u8; 4];
    getrandom::fill(&mut raw).map_err(|e| {
        Error::io(
            Path::new("getrandom"),
            "random name",
            io::Error::other(e.to_string()),
        )
    })?;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let rand: String = raw
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    Ok(format!(
        "backup_{y:04}{mo:02}{d:02}{h:02}{mi:02}{se:02}_{rand}"
    ))
}

/// Calendar date and time (UTC) of `secs` since the Unix epoch.
pub(crate) fn utc(secs: u64) -> (u64, u64, u64, u64, u64, u64) {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Days to civil date (proleptic Gregorian), counted from 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(utc(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(utc(1_796_083_199), (2026, 11, 30, 23, 59, 59));
        assert!(is_backup_name(&backup_name().unwrap()));
        assert!(!is_backup_name("backup_2026_abcd"));
        assert!(!is_backup_name("backup_20261130235959_ABCD"));
    }
}
