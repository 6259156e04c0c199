//! [`CachedStore`]: ranges read from remote packs kept on local disk, in aligned blocks of
//! 1 MiB, the least recently used removed past a cap in bytes.
//!
//! Only pack objects are cached: their names are never reused for other bytes, so a cached
//! block can never be stale. Small objects that change (`snapshot.json`) go through whole
//! downloads, which are never cached.

use std::fs;
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use dos_core::remote::{PendingGet, RemoteError, RemoteObject, RemoteStore, UploadReceipt};

/// Bytes per cached block.
const BLOCK: u64 = 1024 * 1024;

/// Temporary names of block files written by this process.
static TEMP_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A remote store with a local cache of read ranges.
#[derive(Clone)]
pub struct CachedStore {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn RemoteStore>,
    dir: PathBuf,
    cap: u64,
    /// Bytes in the cache (`None` until counted).
    used: Mutex<Option<u64>>,
}

impl CachedStore {
    /// Cache `store`'s ranges under `dir` (created when needed), at most `cap` bytes.
    pub fn new(store: Arc<dyn RemoteStore>, dir: PathBuf, cap: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                dir,
                cap,
                used: Mutex::new(None),
            }),
        }
    }
}

fn block_path(dir: &Path, name: &str, block: u64) -> PathBuf {
    dir.join(name.replace('/', "%")).join(block.to_string())
}

impl Inner {
    fn read_block(&self, name: &str, block: u64) -> Option<Vec<u8>> {
        let p = block_path(&self.dir, name, block);
        let mut data = fs::read(&p).ok()?;
        // The block's CRC-32 follows it: a block cut or damaged (a crash before the page cache
        // reached the disk) is fetched again.
        let at = data.len().checked_sub(4)?;
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&data[at..]);
        data.truncate(at);
        if crc32fast::hash(&data) != u32::from_le_bytes(crc) {
            let _ = fs::remove_file(&p);
            return None;
        }
        // Recently used: eviction goes by modification time.
        if let Ok(f) = fs::File::options().write(true).open(&p) {
            let _ = f.set_modified(SystemTime::now());
        }
        Some(data)
    }

    fn write_block(&self, name: &str, block: u64, data: &[u8]) {
        let p = block_path(&self.dir, name, block);
        let written = (|| -> io::Result<()> {
            let parent = p.parent().ok_or_else(|| io::Error::other("no parent"))?;
            fs::create_dir_all(parent)?;
            // A name no other writer (thread or process) uses.
            let n = TEMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = p.with_extension(format!("tmp{}-{n}", std::process::id()));
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            let written = f
                .write_all(data)
                .and_then(|()| f.write_all(&crc32fast::hash(data).to_le_bytes()));
            if let Err(e) = written {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
            fs::rename(&tmp, &p)
        })();
        if written.is_ok() {
            self.account(data.len() as u64);
        }
    }

    /// Count `added` bytes in; past the cap, remove the least recently used blocks.
    fn account(&self, added: u64) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let now = match *used {
            Some(u) => u + added,
            None => self.scan().iter().map(|(_, len, _)| len).sum(),
        };
        *used = Some(now);
        if now <= self.cap {
            return;
        }
        let mut files = self.scan();
        files.sort_by_key(|(_, _, modified)| *modified);
        let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
        for (p, len, _) in files {
            if total <= self.cap / 10 * 9 {
                break;
            }
            if fs::remove_file(&p).is_ok() {
                total -= len;
            }
        }
        *used = Some(total);
    }

    /// Every cached block file: path, length, last use.
    fn scan(&self) -> Vec<(PathBuf, u64, SystemTime)> {
        let mut out = Vec::new();
        let Ok(objects) = fs::read_dir(&self.dir) else {
            return out;
        };
        for o in objects.flatten() {
            let Ok(blocks) = fs::read_dir(o.path()) else {
                continue;
            };
            for b in blocks.flatten() {
                if let Ok(m) = b.metadata()
                    && m.is_file()
                {
                    out.push((
                        b.path(),
                        m.len(),
                        m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    ));
                }
            }
        }
        out
    }

    /// The requested range cut from cached blocks, or the blocks missing.
    fn cached_range(&self, name: &str, range: &Range<u64>) -> Result<Vec<u8>, Range<u64>> {
        let (first, last) = (range.start / BLOCK, (range.end - 1) / BLOCK);
        let mut out = Vec::with_capacity((range.end - range.start) as usize);
        for b in first..=last {
            let Some(data) = self.read_block(name, b) else {
                return Err(b..last + 1);
            };
            let bstart = b * BLOCK;
            let from = range.start.max(bstart) - bstart;
            let to = (range.end.min(bstart + BLOCK) - bstart).min(data.len() as u64);
            if from > to {
                return Err(b..last + 1);
            }
            out.extend_from_slice(&data[from as usize..to as usize]);
        }
        if out.len() as u64 == range.end - range.start {
            Ok(out)
        } else {
            Err(first..last + 1)
        }
    }

    /// Store the blocks of `fetched` (bytes `blocks.start * BLOCK ..`) and cut `range` from it.
    fn keep(&self, name: &str, blocks: &Range<u64>, fetched: &[u8], range: &Range<u64>) -> Vec<u8> {
        let base = blocks.start * BLOCK;
        for (i, chunk) in fetched.chunks(BLOCK as usize).enumerate() {
            self.write_block(name, blocks.start + i as u64, chunk);
        }
        let from = ((range.start - base) as usize).min(fetched.len());
        let to = ((range.end - base) as usize).min(fetched.len());
        fetched[from..to].to_vec()
    }

    fn get_range(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>, RemoteError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        match self.cached_range(name, &range) {
            Ok(v) => Ok(v),
            Err(blocks) => {
                let fetch = blocks.start * BLOCK..blocks.end * BLOCK;
                let got = self.store.get_range(name, fetch)?;
                let mut out = Vec::new();
                if range.start < blocks.start * BLOCK {
                    // The cached head, then the fetched rest (or all of it fetched, if the head
                    // was evicted meanwhile).
                    let head = range.start..blocks.start * BLOCK;
                    match self.cached_range(name, &head) {
                        Ok(h) => {
                            out = h;
                            out.extend(self.keep(
                                name,
                                &blocks,
                                &got,
                                &(blocks.start * BLOCK..range.end),
                            ));
                        }
                        Err(_) => {
                            let all = range.start / BLOCK..blocks.end;
                            let got = self
                                .store
                                .get_range(name, all.start * BLOCK..all.end * BLOCK)?;
                            out = self.keep(name, &all, &got, &range);
                        }
                    }
                } else {
                    out.extend(self.keep(name, &blocks, &got, &range));
                }
                Ok(out)
            }
        }
    }
}

impl RemoteStore for CachedStore {
    fn url(&self) -> &str {
        self.inner.store.url()
    }

    fn get_range(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>, RemoteError> {
        self.inner.get_range(name, range)
    }

    fn start_get_range(&self, name: &str, range: Range<u64>) -> PendingGet {
        if range.is_empty() {
            return PendingGet::deferred(|| Ok(Vec::new()));
        }
        match self.inner.cached_range(name, &range) {
            Ok(v) => PendingGet::deferred(move || Ok(v)),
            Err(_) => {
                // The whole aligned range in the background, kept when waited for.
                let blocks = range.start / BLOCK..(range.end - 1) / BLOCK + 1;
                let pending = self
                    .inner
                    .store
                    .start_get_range(name, blocks.start * BLOCK..blocks.end * BLOCK);
                let inner = self.inner.clone();
                let name = name.to_string();
                PendingGet::deferred(move || {
                    let got = pending.wait()?;
                    Ok(inner.keep(&name, &blocks, &got, &range))
                })
            }
        }
    }

    fn download(
        &self,
        name: &str,
        out: &mut dyn Write,
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<u64, RemoteError> {
        self.inner.store.download(name, out, on_bytes)
    }

    fn upload_file(
        &self,
        name: &str,
        file: &fs::File,
        length: u64,
        started: &mut dyn FnMut(&str),
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<UploadReceipt, RemoteError> {
        self.inner
            .store
            .upload_file(name, file, length, started, on_bytes)
    }

    fn put(&self, name: &str, data: Vec<u8>) -> Result<(), RemoteError> {
        self.inner.store.put(name, data)
    }

    fn head(&self, name: &str) -> Result<Option<u64>, RemoteError> {
        self.inner.store.head(name)
    }

    fn list(&self, prefix: &str) -> Result<Vec<RemoteObject>, RemoteError> {
        self.inner.store.list(prefix)
    }

    fn delete(&self, name: &str) -> Result<(), RemoteError> {
        // Cached blocks of a deleted object are never asked for again (names are not reused);
        // they age out.
        self.inner.store.delete(name)
    }

    fn abort_upload(&self, name: &str, upload_id: &str) -> Result<(), RemoteError> {
        self.inner.store.abort_upload(name, upload_id)
    }
}
