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
