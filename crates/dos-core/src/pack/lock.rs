//! Pack append locks: `packs/<id>.lock`, created with O_EXCL before appending and removed
//! afterwards, as Python does, so that `dos` and Python never append to one pack at once. A lock
//! we failed to create is never removed (Python's bug of deleting the winner's lock is not
//! copied), and we only ever remove a lock file that is still the very file we created.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};
use crate::fault::FaultPlan;

#[cfg(unix)]
fn file_identity(m: &fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}
#[cfg(not(unix))]
fn file_identity(m: &fs::Metadata) -> (u64, u64) {
    (m.len(), 0)
}

/// An O_EXCL lock file `packs/<id>.lock`, removed on drop if it is still ours.
///
/// Besides creating the file (Python's protocol), a dos holder keeps an exclusive `flock` on it for
/// as long as it lives and writes `dos pid=… token=…` into it. A dos lock whose flock is free
/// therefore belongs to a dead process and is provably stale (see [`remove_if_stale`]).
#[derive(Debug)]
pub struct PackLock {
    path: PathBuf,
    identity: (u64, u64),
    /// What we wrote into the lock: a random token makes it unique even if the inode is reused.
    content: String,
    /// Held open for its flock.
    _file: File,
}

/// Prefix of the content of lock files written by dos.
const DOS_LOCK_PREFIX: &[u8] = b"dos pid=";

impl PackLock {
    /// Try once to create the lock; `Ok(None)` if someone holds it.
    ///
    /// The lock file appears atomically with its content and its flock already taken: it is
    /// written under a hidden temporary name, flocked, then hard-linked to `<id>.lock` (which,
    /// like O_EXCL, fails if the name exists). A crash can therefore never leave an ownerless
    /// dos lock (which would look like Python's and block appends for good). Where hard links
    /// are not supported, the lock is created with O_EXCL directly.
    pub fn try_acquire(path: &Path, faults: &FaultPlan) -> Result<Option<PackLock>> {
        let token = crate::config::new_container_id().unwrap_or_default();
        let content = format!("dos pid={} token={token}\n", std::process::id());
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{file_name}.{token}.tmp"));
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .ctx(&tmp, "create lock")?;
        let prepared = f
            .try_lock()
            .map_err(|e| Error::io(&tmp, "flock lock", e.into()))
            .and_then(|()| f.write_all(content.as_bytes()).ctx(&tmp, "write lock"));
        if let Err(e) = prepared {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        if let Err(e) = faults.point("pack.lock.prepared") {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(path, "link lock", e));
        }
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
            Err(_) => return Self::try_acquire_excl(path, content, faults),
        }
        let m = f.metadata().ctx(path, "stat lock")?;
        // From here the lock is ours: dropping it (on an error below) removes it.
        let lock = PackLock {
            path: path.to_path_buf(),
            identity: file_identity(&m),
            content,
            _file: f,
        };
        faults
            .point("pack.lock.acquired")
            .map_err(|e| Error::io(path, "stat lock", e))?;
        Ok(Some(lock))
    }

    /// Fallback without hard links: O_EXCL create, flock, then write the owner.
    fn try_acquire_excl(
        path: &Path,
        content: String,
        faults: &FaultPlan,
    ) -> Result<Option<PackLock>> {
        match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(mut f) => {
                let locked = f.try_lock();
                let written = f.write_all(content.as_bytes());
                let m = f.metadata();
                let lock = PackLock {
                    path: path.to_path_buf(),
                    identity: m.as_ref().map(file_identity).unwrap_or_default(),
                    content,
                    _file: f,
                };
                locked.map_err(|e| Error::io(path, "flock lock", e.into()))?;
                written.ctx(path, "write lock")?;
                m.ctx(path, "stat lock")?;
                faults
                    .point("pack.lock.acquired")
                    .map_err(|e| Error::io(path, "stat lock", e))?;
                Ok(Some(lock))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(Error::io(path, "create lock", e)),
        }
    }

    /// Create the lock, waiting up to `timeout` for another holder to release it. A lock left by a
    /// dead dos process is removed (see [`remove_if_stale`]); a lock of any other holder (a live
    /// process, or Python, whose locks carry no owner) is waited for.
    pub fn acquire(path: &Path, timeout: Duration, faults: &FaultPlan) -> Result<PackLock> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(5);
        loop {
            if let Some(l) = Self::try_acquire(path, faults)? {
                return Ok(l);
            }
            if remove_if_stale(path)? {
                continue;
            }
            if start.elapsed() >= timeout {
                return Err(Error::PackLocked {
                    path: path.to_path_buf(),
                    waited_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
                });
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(200));
        }
    }

    /// Whether the lock file on disk is still the one we created (a buggy Python contender may
    /// have deleted it, and another process may have created a new one).
    pub fn still_ours(&self) -> bool {
        let same_file = fs::metadata(&self.path).is_ok_and(|m| file_identity(&m) == self.identity);
        same_file && fs::read(&self.path).is_ok_and(|c| c == self.content.as_bytes())
    }

    /// Path of the lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PackLock {
    fn drop(&mut self) {
        if self.still_ours() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// What an existing lock file tells about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// No lock file.
    Missing,
    /// A live process holds it (its flock is taken).
    Live,
    /// Written by a dos process that is gone (flock free): safe to remove.
    Stale {
        /// The content of the lock file (who held it).
        holder: String,
    },
    /// No owner recorded (Python's locks are empty): cannot tell whether its holder lives.
    Unknown,
}

/// Inspect a lock file without changing it.
pub fn inspect_lock(path: &Path) -> Result<LockState> {
    with_stale_lock(path, |_| Ok(()))
}

/// Remove the lock file at `path` if it is provably stale: written by dos, and nobody holds its
/// flock. The check and the removal happen while we hold that flock, after verifying that the
/// path still names the file we opened, so a live lock is never removed. Returns whether a lock
/// was removed.
pub fn remove_if_stale(path: &Path) -> Result<bool> {
    let state = with_stale_lock(path, |p| {
        fs::remove_file(p).or_else(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(Error::io(p, "remove stale lock", e))
            }
        })
    })?;
    Ok(matches!(state, LockState::Stale { .. }))
}

fn with_stale_lock(path: &Path, on_stale: impl FnOnce(&Path) -> Result<()>) -> Result<LockState> {
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LockState::Missing),
        Err(e) => return Err(Error::io(path, "open lock", e)),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => return Ok(LockState::Live),
        Err(fs::TryLockError::Error(e)) => return Err(Error::io(path, "flock lock", e)),
    }
    let mut content = Vec::new();
    io::Read::read_to_end(&mut &file, &mut content).ctx(path, "read lock")?;
    if !content.starts_with(DOS_LOCK_PREFIX) {
        return Ok(LockState::Unknown);
    }
    let ours = file.metadata().ctx(path, "stat lock")?;
    let same = fs::metadata(path).is_ok_and(|m| file_identity(&m) == file_identity(&ours));
    if !same {
        // Replaced since we opened it: whatever is there now is someone else's business.
        return Ok(LockState::Live);
    }
    on_stale(path)?;
    Ok(LockState::Stale {
        holder: String::from_utf8_lossy(&content).trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::tests::layout;

    #[test]
    fn lock_protocol() {
        let (_d, l) = layout();
        let p = l.pack_lock(0);
        let a = PackLock::try_acquire(&p, &FaultPlan::default())
            .unwrap()
            .unwrap();
        assert!(
            PackLock::try_acquire(&p, &FaultPlan::default())
                .unwrap()
                .is_none()
        );
        let e =
            PackLock::acquire(&p, Duration::from_millis(30), &FaultPlan::default()).unwrap_err();
        assert!(matches!(e, Error::PackLocked { .. }));
        // The failed attempts did not remove the holder's lock.
        assert!(p.exists() && a.still_ours());
        drop(a);
        assert!(!p.exists());

        // A lock replaced behind our back is not ours and is left alone on drop.
        let a = PackLock::try_acquire(&p, &FaultPlan::default())
            .unwrap()
            .unwrap();
        fs::remove_file(&p).unwrap();
        let b = PackLock::try_acquire(&p, &FaultPlan::default())
            .unwrap()
            .unwrap();
        assert!(!a.still_ours());
        drop(a);
        assert!(p.exists() && b.still_ours());
    }

    #[test]
    fn stale_locks_are_recognised() {
        let (_d, l) = layout();
        let p = l.pack_lock(3);
        assert_eq!(inspect_lock(&p).unwrap(), LockState::Missing);
        let a = PackLock::try_acquire(&p, &FaultPlan::default())
            .unwrap()
            .unwrap();
        assert_eq!(inspect_lock(&p).unwrap(), LockState::Live);
        assert!(!remove_if_stale(&p).unwrap());
        // A holder that died without cleaning up: simulate by leaking the file content without
        // the flock (forget the lock, close its descriptor).
        let content = fs::read(&p).unwrap();
        drop(a);
        fs::write(&p, &content).unwrap();
        assert!(matches!(inspect_lock(&p).unwrap(), LockState::Stale { .. }));
        assert!(remove_if_stale(&p).unwrap());
        assert!(!p.exists());
        // Python's empty lock: unknown holder, never removed.
        fs::write(&p, b"").unwrap();
        assert_eq!(inspect_lock(&p).unwrap(), LockState::Unknown);
        assert!(!remove_if_stale(&p).unwrap());
        assert!(PackLock::acquire(&p, Duration::from_millis(20), &FaultPlan::default()).is_err());
        fs::remove_file(&p).unwrap();
        // acquire() takes over a stale dos lock.
        fs::write(&p, b"dos pid=999999 token=x\n").unwrap();
        let b = PackLock::acquire(&p, Duration::ZERO, &FaultPlan::default()).unwrap();
        assert!(b.still_ours());
    }
}
