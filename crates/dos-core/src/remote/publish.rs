//! Publishing a read-only snapshot of the container next to its packs, and opening one from the
//! bucket alone.
//!
//! A snapshot is a consistent copy of the index (SQLite's online backup) in which every pack is
//! remote: offloaded packs as they are, local packs uploaded as snapshot copies (the bytes the
//! copied rows reach, under a fresh name only the snapshot refers to). The copy and
//! `config.json` go to `snapshots/<UTC time>-<hex>/`; then one PUT of `snapshot.json` makes it
//! current. Readers fetch `snapshot.json`, then the index it names (checked against its
//! SHA-256), and read packs with ranged GETs. A reader never sees a half-written snapshot: the
//! pointer is replaced only once everything it names is stored, and `clean` keeps what the
//! current snapshot names.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    PACKS_PREFIX, RemoteError, RemoteStore, SNAPSHOT_POINTER, SNAPSHOTS_PREFIX, random_hex,
};
use crate::container::{Container, IoOptions};
use crate::error::{Error, IoContext, Result};
use crate::hashing::to_hex;
use crate::index::CREATE_REMOTE_SQL;
use crate::layout::{CONFIG_FILE, INDEX_FILE, REQUIRED_DIRS};
use crate::maintain::LockMode;
use crate::progress::{Progress, Unit};

/// One file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    /// Its object name under the prefix.
    pub name: String,
    /// Its length.
    pub length: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// `snapshot.json`: the current published snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPointer {
    /// Format of this file (1).
    pub format: u32,
    /// The snapshot's folder under the prefix (`snapshots/<time>-<hex>`).
    pub snapshot: String,
    /// The index copy.
    pub index: SnapshotFile,
    /// The container's `config.json`.
    pub config: SnapshotFile,
    /// When it was published (UTC, ISO 8601).
    pub created: String,
    /// The container's id.
    pub container_id: String,
    /// Packed objects in the snapshot.
    pub objects: u64,
    /// Packs it refers to.
    pub packs: u64,
    /// The snapshot this one replaced, kept (with the packs it names) for `clean`'s grace
    /// period from `replaced_at`, for readers that opened it before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousSnapshot>,
}

/// The snapshot a newer one replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSnapshot {
    /// Its folder.
    pub snapshot: String,
    /// Its index.
    pub index: SnapshotFile,
    /// When it was replaced, seconds since the Unix epoch.
    pub replaced_at: i64,
}

/// What [`Container::publish`] did.
#[derive(Debug, Clone, Serialize)]
pub struct PublishSummary {
    /// The store.
    pub url: String,
    /// The new current snapshot.
    pub pointer: SnapshotPointer,
    /// Local packs uploaded as snapshot copies.
    pub packs_copied: u64,
    /// Bytes uploaded (pack copies, index, config).
    pub bytes_uploaded: u64,
    /// Loose objects, which a snapshot does not hold (pack them first to publish them).
    pub loose_objects_left_out: u64,
}

fn sha256_file(path: &Path) -> Result<(u64, String)> {
    let mut f = File::open(path).ctx(path, "open")?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).ctx(path, "read")?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, to_hex(h.finalize().as_slice())))
}

fn now_iso() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, mo, d, h, mi, s) = crate::maintain::utc(secs);
    (
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
        format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z"),
    )
}

/// Read a small object whole.
pub(crate) fn get_all(store: &dyn RemoteStore, name: &str) -> Result<Vec<u8>, RemoteError> {
    let mut out = Vec::new();
    store.download(name, &mut out, &mut |_| {})?;
    Ok(out)
}

/// The current snapshot of `store`, if one was published.
pub fn current_snapshot(store: &dyn RemoteStore) -> Result<Option<SnapshotPointer>> {
    match get_all(store, SNAPSHOT_POINTER) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::Remote(RemoteError::new(
                store,
                SNAPSHOT_POINTER,
                "parse",
                format!("not a snapshot pointer: {e}"),
            ))
        }),
        Err(e) if e.not_found => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Names of the remote packs an index file (a snapshot's) refers to.
pub(crate) fn remote_names_in(index: &Path) -> Result<Vec<String>> {
    let conn = Connection::open_with_flags(index, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| Error::index(index, e))?;
    let exists: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'dos_remote_pack')",
            [],
            |r| r.get(0),
        )
        .map_err(|e| Error::index(index, e))?;
    if !exists {
        return Ok(Vec::new());
    }
    let mut stmt = conn
        .prepare("SELECT name FROM dos_remote_pack")
        .map_err(|e| Error::index(index, e))?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(|e| Error::index(index, e))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| Error::index(index, e))?;
    Ok(names)
}

/// Download `file` of a snapshot to `dest`, checking its length and SHA-256.
pub(crate) fn download_checked(
    store: &dyn RemoteStore,
    file: &SnapshotFile,
    dest: &Path,
) -> Result<()> {
    let mut out = File::create(dest).ctx(dest, "create")?;
    let mut w = io::BufWriter::new(&mut out);
    store.download(&file.name, &mut w, &mut |_| {})?;
    io::Write::flush(&mut w).ctx(dest, "write")?;
    drop(w);
    out.sync_all().ctx(dest, "fsync")?;
    let (n, sha) = sha256_file(dest)?;
    if n != file.length || sha != file.sha256 {
        return Err(Error::Remote(RemoteError::new(
            store,
            &file.name,
            "download",
            format!(
                "got {n} bytes with SHA-256 {sha}; the snapshot records {} bytes with SHA-256 {}",
                file.length, file.sha256
            ),
        )));
    }
    Ok(())
}

impl Container {
    /// Publish a snapshot of this container to its remote store: readers anywhere can then open
    /// it with [`Container::open_published`]. Local packs are uploaded as snapshot copies
    /// (offload sealed packs first to avoid uploading them on every publish); loose objects are
    /// not part of a snapshot.
    pub fn publish(&self, progress: &dyn Progress) -> Result<PublishSummary> {
        self.writable("publish")?;
        let _lock = self.lock_maintenance(LockMode::Shared, "publish")?;
        let store = self.remote_store()?;
        let (created, stamp) = now_iso();
        let folder = format!(
            "{SNAPSHOTS_PREFIX}{stamp}-{}",
            random_hex(8).ctx(&self.layout.sandbox, "random name")?
        );
        let copy = self.layout.sandbox.join(format!(
            "dos-publish-{}.idx",
            random_hex(8).ctx(&self.layout.sandbox, "random name")?
        ));
        let result = self.publish_via(store.as_ref(), &copy, &folder, created, progress);
        let _ = fs::remove_file(&copy);
        result
    }

    fn publish_via(
        &self,
        store: &dyn RemoteStore,
        copy: &Path,
        folder: &str,
        created: String,
        progress: &dyn Progress,
    ) -> Result<PublishSummary> {
        self.backup_index_to(copy)?;
        let ierr = |e| Error::index(copy, e);
        let conn = Connection::open(copy).map_err(ierr)?;
        conn.execute_batch(CREATE_REMOTE_SQL).map_err(ierr)?;
        // Every pack with rows in the copy, and how far its rows reach. A pack with a local
        // file is published from that file (a pack offloaded but kept local may have been
        // rewritten since, by Python): only stubs are published as the objects recorded.
        let all: Vec<(i64, i64, bool)> = {
            let mut stmt = conn
                .prepare(
                    "SELECT pack_id, MAX(\"offset\" + length), pack_id IN (SELECT pack_id FROM \
                     dos_remote_pack) FROM db_object GROUP BY pack_id",
                )
                .map_err(ierr)?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(ierr)?
                .collect::<rusqlite::Result<_>>()
                .map_err(ierr)?
        };
        let mut local = Vec::new();
        for (id, extent, recorded) in all {
            let is_file = u64::try_from(id).ok().is_some_and(|id| {
                fs::symlink_metadata(self.layout.pack(id)).is_ok_and(|m| m.is_file())
            });
            if is_file {
                local.push((id, extent));
            } else if !recorded {
                return Err(Error::MissingPack {
                    path: self.layout.pack(u64::try_from(id).unwrap_or(0)),
                });
            }
        }
        let objects: i64 = conn
            .query_row("SELECT COUNT(*) FROM db_object", [], |r| r.get(0))
            .map_err(ierr)?;
        let mut s_copied = 0;
        let mut bytes = 0u64;
        progress.start(
            local
                .iter()
                .map(|(_, e)| u64::try_from(*e).unwrap_or(0))
                .sum(),
            Unit::Bytes,
            "Publishing packs",
        );
        for (id, extent) in &local {
            let (Ok(id), Ok(extent)) = (u64::try_from(*id), u64::try_from(*extent)) else {
                return Err(Error::InvalidArgument(format!(
                    "the index has rows in pack {id} reaching {extent}: not publishable"
                )));
            };
            let path = self.layout.pack(id);
            let data = self.open_pack(id)?;
            let Some(file) = data.local_file() else {
                return Err(Error::MissingPack { path });
            };
            let name = format!(
                "{PACKS_PREFIX}{id}.{}",
                random_hex(16).ctx(&path, "random name")?
            );
            self.io.faults.point("publish.pack").ctx(&path, "upload")?;
            let receipt =
                store.upload_file(&name, file, extent, &mut |_| {}, &mut |n| progress.inc(n))?;
            conn.execute(
                "INSERT OR REPLACE INTO dos_remote_pack (pack_id, name, length, sha256, \
                 offloaded_at) VALUES (?1, ?2, ?3, ?4, strftime('%s','now'))",
                params![id as i64, name, receipt.length as i64, receipt.sha256],
            )
            .map_err(ierr)?;
            s_copied += 1;
            bytes += receipt.length;
        }
        progress.finish();
        let packs: i64 = conn
            .query_row("SELECT COUNT(DISTINCT pack_id) FROM db_object", [], |r| {
                r.get(0)
            })
            .map_err(ierr)?;
        conn.close().map_err(|(_, e)| ierr(e))?;
        File::open(copy)
            .and_then(|f| f.sync_all())
            .ctx(copy, "fsync")?;

        let upload_small = |name: String, path: &Path| -> Result<SnapshotFile> {
            let (length, sha256) = sha256_file(path)?;
            let f = File::open(path).ctx(path, "open")?;
            store.upload_file(&name, &f, length, &mut |_| {}, &mut |_| {})?;
            Ok(SnapshotFile {
                name,
                length,
                sha256,
            })
        };
        self.io.faults.point("publish.index").ctx(copy, "upload")?;
        let index = upload_small(format!("{folder}/{INDEX_FILE}"), copy)?;
        let config = upload_small(format!("{folder}/{CONFIG_FILE}"), &self.layout.config)?;
        bytes += index.length + config.length;
        let previous = current_snapshot(store)?.map(|p| PreviousSnapshot {
            snapshot: p.snapshot,
            index: p.index,
            replaced_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        });
        let pointer = SnapshotPointer {
            previous,
            format: 1,
            snapshot: folder.to_string(),
            index,
            config,
            created,
            container_id: self.config.container_id.clone(),
            objects: u64::try_from(objects).unwrap_or(0),
            packs: u64::try_from(packs).unwrap_or(0),
        };
        let text = serde_json::to_vec_pretty(&pointer)
            .map_err(|e| Error::io(copy, "encode", io::Error::other(e)))?;
        self.io
            .faults
            .point("publish.pointer")
            .ctx(copy, "publish")?;
        store.put(SNAPSHOT_POINTER, text)?;
        Ok(PublishSummary {
            url: store.url().to_string(),
            pointer,
            packs_copied: s_copied,
            bytes_uploaded: bytes,
            loose_objects_left_out: self.list_loose()?.len() as u64,
        })
    }

    /// Open the current published snapshot of `store`, read-only. Its index and config are
    /// kept under `cache` (one folder per snapshot, reused by later opens); packs are read
    /// from the store.
    pub fn open_published(
        store: Arc<dyn RemoteStore>,
        cache: &Path,
        io: IoOptions,
    ) -> Result<Container> {
        let pointer = current_snapshot(store.as_ref())?.ok_or_else(|| {
            Error::Remote(RemoteError {
                url: store.url().to_string(),
                name: SNAPSHOT_POINTER.to_string(),
                op: "open".into(),
                detail: "no snapshot was published here (dos offload --publish)".into(),
                not_found: true,
            })
        })?;
        let leaf = pointer
            .snapshot
            .rsplit('/')
            .next()
            .unwrap_or("snapshot")
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_");
        let dir: PathBuf = cache.join(&leaf);
        let marker = dir.join(".complete");
        if !marker.is_file() {
            fs::create_dir_all(cache).ctx(cache, "create cache folder")?;
            let tmp = cache.join(format!(
                ".{leaf}.{}",
                random_hex(8).ctx(cache, "random name")?
            ));
            let made = (|| -> Result<()> {
                fs::create_dir(&tmp).ctx(&tmp, "create")?;
                for d in REQUIRED_DIRS {
                    fs::create_dir(tmp.join(d)).ctx(tmp.join(d), "create")?;
                }
                download_checked(store.as_ref(), &pointer.index, &tmp.join(INDEX_FILE))?;
                download_checked(store.as_ref(), &pointer.config, &tmp.join(CONFIG_FILE))?;
                File::create(tmp.join(".complete")).ctx(&tmp, "create marker")?;
                match fs::rename(&tmp, &dir) {
                    Ok(()) => Ok(()),
                    // Another process opened the same snapshot meanwhile: use its copy.
                    Err(_) if marker.is_file() => {
                        let _ = fs::remove_dir_all(&tmp);
                        Ok(())
                    }
                    Err(e) => Err(Error::io(&dir, "rename into place", e)),
                }
            })();
            if made.is_err() {
                let _ = fs::remove_dir_all(&tmp);
            }
            made?;
        }
        let mut c = Container::open_with(&dir, io)?;
        c.read_only = Some(store.url().to_string());
        c.set_remote_store(store);
        Ok(c)
    }
}
