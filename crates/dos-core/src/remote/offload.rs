//! `offload`: upload sealed packs to the remote store, record them in the index, then (unless
//! asked to keep them) replace their local files by stubs.
//!
//! Per pack, in this order: its append lock taken (no dos writer can touch it); an upload
//! journal `packs/dos-upload-<id>.json` naming the object (and the multipart upload once it
//! exists); the upload, verified by the store (every part's digest and the object's size); the
//! file checked unchanged; one index transaction recording where the pack lives; the journal
//! removed; only then the local file swapped for its stub and deleted. A crash before the
//! commit leaves the local pack authoritative and at most an unreferenced remote object (the
//! journal lets the next offload or `clean` abort or delete it); a crash after it leaves both
//! copies, and readers use the local one until the next offload swaps it out.

use std::fs::{self, File};
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{PACKS_PREFIX, RemoteStore, random_hex, stub};
use crate::container::Container;
use crate::durable;
use crate::error::{Error, IoContext, PackChange, Result};
use crate::index::RemotePackRow;
use crate::maintain::LockMode;
use crate::pack::{self, PackLock};
use crate::progress::{Interrupt, Progress, Unit};

/// Options of [`Container::offload`].
#[derive(Debug, Clone, Default)]
pub struct OffloadOptions {
    /// Keep the local files after the upload (reads stay local until a later offload without
    /// this removes them).
    pub keep_local: bool,
    /// Only packs whose file was last written at least this long ago.
    pub min_age: Duration,
    /// Only these packs (`None`: every sealed pack).
    pub packs: Option<Vec<u64>>,
    /// Offload packs smaller than the pack size target too, as long as no writer holds them
    /// (dos's writers never append to a pack they cannot lock; Python's writers append to the
    /// lowest pack below the target and must not run meanwhile).
    pub include_small: bool,
    /// Cooperative cancellation, checked between packs.
    pub interrupt: Interrupt,
}

/// One pack moved to the remote store.
#[derive(Debug, Clone, Serialize)]
pub struct OffloadedPack {
    /// The pack id.
    pub pack_id: u64,
    /// The object's name under the prefix.
    pub name: String,
    /// Its bytes.
    pub bytes: u64,
    /// Uploaded now (false: it was already remote, only its local file was removed).
    pub uploaded: bool,
}

/// What [`Container::offload`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OffloadSummary {
    /// The store.
    pub url: String,
    /// Packs uploaded or whose local copy was removed.
    pub packs: Vec<OffloadedPack>,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
    /// Local bytes freed.
    pub bytes_freed: u64,
    /// Packs passed over, and why.
    pub skipped: Vec<(u64, String)>,
    /// Unfinished uploads of earlier runs aborted or removed.
    pub recovered_uploads: u64,
}

/// Where a pack is.
#[derive(Debug, Clone, Serialize)]
pub struct PackPlace {
    /// The pack id.
    pub pack_id: u64,
    /// Bytes (of the local file, or of the remote object).
    pub bytes: u64,
    /// The remote object, if the pack is offloaded.
    pub remote: Option<String>,
    /// Whether a local file holds it (also true for an offloaded pack kept locally).
    pub local: bool,
}

/// Every pack of a container and where it is.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PackPlaces {
    /// By pack id.
    pub packs: Vec<PackPlace>,
}

impl PackPlaces {
    /// Packs with a local file, and their bytes.
    pub fn local(&self) -> (u64, u64) {
        self.sum(|p| p.local)
    }

    /// Packs in the remote store, and their bytes.
    pub fn remote(&self) -> (u64, u64) {
        self.sum(|p| p.remote.is_some())
    }

    /// Packs only in the remote store (what Python cannot read), and their bytes.
    pub fn remote_only(&self) -> (u64, u64) {
        self.sum(|p| p.remote.is_some() && !p.local)
    }

    fn sum(&self, f: impl Fn(&PackPlace) -> bool) -> (u64, u64) {
        self.packs
            .iter()
            .filter(|p| f(p))
            .fold((0, 0), |(n, b), p| (n + 1, b + p.bytes))
    }
}

/// An upload in progress, recorded so that a crash's leftovers can be removed.
#[derive(Debug, Serialize, Deserialize)]
struct UploadJournal {
    pack_id: u64,
    name: String,
    #[serde(default)]
    upload_id: Option<String>,
}

const UPLOAD_JOURNAL_PREFIX: &str = "dos-upload-";

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Container {
    /// Name the remote store of this container (`dos-remote.json`). Refused while packs are
    /// stored in another store (or reached through another server): they would be lost to
    /// this container. Takes the maintenance lock exclusively (no offload runs meanwhile).
    pub fn set_remote(&self, settings: &super::RemoteSettings) -> Result<()> {
        self.writable("remote set")?;
        let _lock = self.lock_maintenance(LockMode::Exclusive, "remote set")?;
        if let Some(old) = self.remote_settings()?
            && (old.url != settings.url || old.endpoint != settings.endpoint)
            && !self.index().remote_packs()?.is_empty()
        {
            return Err(Error::InvalidArgument(format!(
                "packs of this container are stored in {}{}; bring them back first (dos \
                 fetch-packs --all) before naming another store",
                old.url,
                old.endpoint
                    .as_ref()
                    .map(|e| format!(" at {e}"))
                    .unwrap_or_default()
            )));
        }
        settings.save(&self.layout)
    }

    /// Where every pack is: local files and offloaded packs, by id.
    pub fn pack_places(&self) -> Result<PackPlaces> {
        let remote = self.index().remote_packs()?;
        let mut places = Vec::new();
        for id in pack::list_pack_ids(&self.layout)? {
            let p = self.layout.pack(id);
            let meta = match fs::symlink_metadata(&p) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&p, "stat", e)),
            };
            if meta.is_file() {
                places.push(PackPlace {
                    pack_id: id,
                    bytes: meta.len(),
                    remote: None,
                    local: true,
                });
            }
        }
        for r in remote {
            match places.iter_mut().find(|p| p.pack_id == r.pack_id) {
                Some(p) => p.remote = Some(r.name),
                None => places.push(PackPlace {
                    pack_id: r.pack_id,
                    bytes: r.length,
                    remote: Some(r.name),
                    local: false,
                }),
            }
        }
        places.sort_by_key(|p| p.pack_id);
        Ok(PackPlaces { packs: places })
    }

    /// Upload sealed packs (at least the pack size target long, no writer holding them) to the
    /// remote store, record them in the index and, unless `keep_local`, remove their local
    /// files. Takes the maintenance lock in shared mode (no repack or delete meanwhile).
    pub fn offload(
        &self,
        opts: &OffloadOptions,
        progress: &dyn Progress,
    ) -> Result<OffloadSummary> {
        self.writable("offload")?;
        let _lock = self.lock_maintenance(LockMode::Shared, "offload")?;
        let store = self.remote_store()?;
        let mut s = OffloadSummary {
            url: store.url().to_string(),
            recovered_uploads: self.recover_uploads(store.as_ref())?,
            ..OffloadSummary::default()
        };
        let places = self.pack_places()?;
        let highest = places.packs.last().map(|p| p.pack_id);
        let mut work = Vec::new();
        for p in &places.packs {
            if opts
                .packs
                .as_ref()
                .is_some_and(|only| !only.contains(&p.pack_id))
            {
                continue;
            }
            match (&p.remote, p.local) {
                (Some(_), false) => continue,
                (Some(_), true) if opts.keep_local => continue,
                (Some(_), true) => work.push((p.pack_id, p.bytes, false)),
                (None, true) => {
                    let why = self.why_not_sealed(p.pack_id, p.bytes, highest, opts)?;
                    match why {
                        Some(reason) => s.skipped.push((p.pack_id, reason)),
                        None => work.push((p.pack_id, p.bytes, true)),
                    }
                }
                (None, false) => {}
            }
        }
        let total = work.iter().filter(|w| w.2).map(|w| w.1).sum();
        progress.start(total, Unit::Bytes, "Offloading packs");
        let result = (|| {
            for (id, _, _) in work {
                if opts.interrupt.is_set() {
                    return Err(Error::Interrupted);
                }
                match self.offload_one(store.as_ref(), id, opts.keep_local, progress)? {
                    Ok(done) => {
                        if done.uploaded {
                            s.bytes_uploaded += done.bytes;
                        }
                        if !opts.keep_local {
                            s.bytes_freed += done.bytes;
                        }
                        s.packs.push(done);
                    }
                    Err(reason) => s.skipped.push((id, reason)),
                }
            }
            Ok(())
        })();
        progress.finish();
        result?;
        Ok(s)
    }

    /// `None` if pack `id` (of `len` bytes) may be offloaded, else why not.
    fn why_not_sealed(
        &self,
        id: u64,
        len: u64,
        highest: Option<u64>,
        opts: &OffloadOptions,
    ) -> Result<Option<String>> {
        let target = self.config.pack_size_target;
        if len == 0 {
            return Ok(Some("empty".into()));
        }
        if len < target && !opts.include_small {
            return Ok(Some(format!(
                "not sealed ({len} bytes, below the pack size target of {target})"
            )));
        }
        if len < target && Some(id) == highest {
            return Ok(Some(
                "the pack being written (the highest, below the target)".into(),
            ));
        }
        if !opts.min_age.is_zero() {
            let p = self.layout.pack(id);
            let modified = fs::metadata(&p)
                .and_then(|m| m.modified())
                .ctx(&p, "stat")?;
            let age = SystemTime::now()
                .duration_since(modified)
                .unwrap_or_default();
            if age < opts.min_age {
                return Ok(Some(format!(
                    "written {} s ago, less than --min-age",
                    age.as_secs()
                )));
            }
        }
        Ok(None)
    }

    /// Offload one pack: upload it unless the index records a remote copy with the same bytes,
    /// then (unless `keep_local`) replace its file by a stub. `Err(reason)` inside `Ok` when
    /// the pack is passed over (a writer holds it, it changed or went meanwhile). Everything
    /// is decided again under the pack's lock, which fetch and other offloads also take.
    fn offload_one(
        &self,
        store: &dyn RemoteStore,
        id: u64,
        keep_local: bool,
        progress: &dyn Progress,
    ) -> Result<std::result::Result<OffloadedPack, String>> {
        let path = self.layout.pack(id);
        // A lock a crashed dos process left (an offload killed mid-upload) is no holder.
        pack::remove_if_stale(&self.layout.pack_lock(id))?;
        let Some(lock) = PackLock::try_acquire(&self.layout.pack_lock(id), &self.io.faults)? else {
            return Ok(Err("a writer holds it".into()));
        };
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => {}
            _ => return Ok(Err("no longer a local file".into())),
        }
        // A pack without rows (a repack's leftover the next maintenance command removes) or
        // named by an unfinished repack stays as it is.
        if self.index().pack_stats_of(id as i64)?.is_none() {
            return Ok(Err("no objects".into()));
        }
        if let Some(j) = self.read_journal()?
            && (j.old == id || j.new == id)
        {
            return Ok(Err("an unfinished repack names it".into()));
        }
        let file = File::open(&path).ctx(&path, "open pack")?;
        // A dos writer holds this kernel lock while it appends (see the appender).
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Ok(Err("a writer holds it".into()));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(&path, "lock pack file", e));
            }
        }
        let fmeta = file.metadata().ctx(&path, "stat")?;
        let len = fmeta.len();
        // Remote already, with exactly these bytes? (Python may have rewritten a pack kept
        // local since: then it is uploaded again, and the old object is left to `clean`.)
        // The row first, on its own: the index lock must not be held while the pack is hashed
        // and the server asked.
        let recorded = self.index().remote_pack(id)?;
        let existing = match recorded {
            Some(row) if row.length == len => {
                let (n, digest) = sha256_of(&file, &path)?;
                let stored = store.head(&row.name)?;
                (n == row.length && digest == row.sha256 && stored == Some(row.length))
                    .then_some(row)
            }
            _ => None,
        };
        let uploaded = existing.is_none();
        let row = match existing {
            Some(row) => row,
            None => {
                let name = format!(
                    "{PACKS_PREFIX}{id}.{}",
                    random_hex(16).ctx(&path, "random name")?
                );
                let journal_path = self
                    .layout
                    .packs
                    .join(format!("{UPLOAD_JOURNAL_PREFIX}{id}.json"));
                let mut journal = UploadJournal {
                    pack_id: id,
                    name: name.clone(),
                    upload_id: None,
                };
                write_journal(&journal_path, &journal)?;
                self.io
                    .faults
                    .point("offload.upload")
                    .ctx(&path, "upload")?;
                let mut started = |upload_id: &str| {
                    journal.upload_id = Some(upload_id.to_string());
                    // Best effort: without it, a crash leaves an upload only the bucket's own
                    // lifecycle rules remove.
                    let _ = write_journal(&journal_path, &journal);
                };
                let receipt =
                    store.upload_file(&name, &file, len, &mut started, &mut |n| progress.inc(n))?;
                self.io
                    .faults
                    .point("offload.uploaded")
                    .ctx(&path, "upload")?;
                let now_len = file.metadata().ctx(&path, "stat")?.len();
                if receipt.length != len || now_len != len {
                    let _ = store.delete(&name);
                    return Err(Error::PackModified {
                        path,
                        change: PackChange::Size {
                            on_disk: if now_len != len {
                                now_len
                            } else {
                                receipt.length
                            },
                            written: len,
                        },
                    });
                }
                let row = RemotePackRow {
                    pack_id: id,
                    name,
                    length: len,
                    sha256: receipt.sha256,
                    offloaded_at: now_secs(),
                };
                self.index().insert_remote_pack(&row)?;
                self.io
                    .faults
                    .point("offload.committed")
                    .ctx(&path, "upload")?;
                remove_journal(&journal_path)?;
                row
            }
        };
        if !keep_local {
            let note = format!(
                "Pack {id} is stored at {}/{} ({} bytes, SHA-256 {}).\n\
                 `dos fetch-packs {id}` brings it back.\n",
                store.url(),
                row.name,
                row.length,
                row.sha256
            );
            drop(file);
            stub::replace_pack_with_stub(
                &self.layout,
                id,
                &note,
                file_identity(&fmeta),
                &self.io.faults,
            )?;
        }
        drop(lock);
        Ok(Ok(OffloadedPack {
            pack_id: id,
            name: row.name,
            bytes: len,
            uploaded,
        }))
    }

    /// Offload a pack a repack of an offloaded pack just wrote (whatever its size). Left local
    /// if a writer took it meanwhile.
    pub(crate) fn offload_new_pack(&self, store: &dyn RemoteStore, id: u64) -> Result<()> {
        // Passed over (a writer took it meanwhile): it stays local, which is as valid.
        let _ = self.offload_one(store, id, false, &crate::progress::NoProgress)?;
        Ok(())
    }

    /// Finish what crashed uploads left: an unfinished multipart upload the index does not
    /// record is aborted; the journal is removed. Returns how many.
    pub(crate) fn recover_uploads(&self, store: &dyn RemoteStore) -> Result<u64> {
        let mut n = 0;
        let dir = &self.layout.packs;
        for e in fs::read_dir(dir).ctx(dir, "list")? {
            let e = e.ctx(dir, "list")?;
            let name = e.file_name().to_string_lossy().to_string();
            if !name.starts_with(UPLOAD_JOURNAL_PREFIX) || !name.ends_with(".json") {
                continue;
            }
            let path = e.path();
            let j: Option<UploadJournal> = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            if let Some(j) = &j {
                // An offload under way holds the pack's lock for as long as its journal exists:
                // only a dead one's journal is recovered.
                pack::remove_if_stale(&self.layout.pack_lock(j.pack_id))?;
                let Some(_lock) =
                    PackLock::try_acquire(&self.layout.pack_lock(j.pack_id), &self.io.faults)?
                else {
                    continue;
                };
                let recorded = self
                    .index()
                    .remote_pack(j.pack_id)?
                    .is_some_and(|r| r.name == j.name);
                // An unfinished multipart upload is aborted; an object that was completed is left
                // to `clean`, which deletes it once nothing refers to it and it is old enough
                // (a snapshot published since may name it).
                if !recorded && let Some(uid) = &j.upload_id {
                    store.abort_upload(&j.name, uid)?;
                }
                remove_journal(&path)?;
            } else {
                remove_journal(&path)?;
            }
            n += 1;
        }
        Ok(n)
    }
}

/// Length and SHA-256 (hex) of a file, read whole.
pub(crate) fn sha256_of(file: &File, path: &std::path::Path) -> Result<(u64, String)> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    loop {
        let n = crate::fileio::read_at(file, &mut buf, at).ctx(path, "read")?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        at += n as u64;
    }
    Ok((at, crate::hashing::to_hex(h.finalize().as_slice())))
}

/// What tells one file from another at the same path.
pub(crate) fn file_identity(m: &fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (m.dev(), m.ino())
    }
    #[cfg(not(unix))]
    {
        (m.len(), 0)
    }
}

fn write_journal(path: &std::path::Path, j: &UploadJournal) -> Result<()> {
    let bytes =
        serde_json::to_vec(j).map_err(|e| Error::io(path, "encode", io::Error::other(e)))?;
    let tmp = path.with_extension("tmp");
    (|| -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        io::Write::write_all(&mut f, &bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })()
    .ctx(path, "write upload journal")?;
    if let Some(dir) = path.parent() {
        durable::sync_dir(dir)?;
    }
    Ok(())
}

fn remove_journal(path: &std::path::Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, "remove upload journal", e)),
    }
}
