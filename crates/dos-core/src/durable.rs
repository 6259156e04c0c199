//! fsync helpers: the only places where durability is decided.

use std::fs::File;
use std::path::Path;

use crate::error::{IoContext, Result};

/// fsync a directory so that entries created, renamed or removed in it survive a crash.
/// On platforms without directory fsync (Windows) this is a no-op.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .ctx(dir, "open directory")?
            .sync_all()
            .ctx(dir, "fsync directory")
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Make everything written to the filesystem holding `any_path` durable with one call
/// (Linux `syncfs`). Returns `false` when the platform has no such call, and the caller must fall
/// back to per-file fsyncs.
pub fn sync_filesystem(any_path: &Path) -> Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let f = File::open(any_path).ctx(any_path, "open")?;
        let fd = f.as_raw_fd();
        // SAFETY: `fd` is a valid open descriptor owned by `f`, which outlives the call; syncfs
        // reads no memory of ours and has no other preconditions.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::syncfs(fd) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).ctx(any_path, "syncfs");
        }
        Ok(true)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = any_path;
        Ok(false)
    }
}

/// Start writing back `len` bytes of `file` from `offset` without waiting for them (Linux
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`), so that the disk works while we keep producing data
/// and a later `fdatasync` has little left to do. Durability still comes only from that
/// `fdatasync`. A no-op elsewhere, and errors are ignored (it is only a hint).
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(off), Ok(n)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: the descriptor is valid for the duration of the call (borrowed from `file`);
        // sync_file_range only reads its integer arguments and touches no memory of ours.
        #[allow(unsafe_code)]
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), off, n, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, offset, len);
    }
}
