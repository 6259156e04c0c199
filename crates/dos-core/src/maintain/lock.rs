//! Container-wide exclusion of maintenance operations.
//!
//! A std file lock (`flock`) on `<container>/.dos-maintenance.lock`, held for the whole operation:
//! exclusive for operations that rewrite or remove data (repack, delete, clean, optimize, pack),
//! shared for those that only need the data to stay put (validate, writes straight to packs).
//! The lock dies with its process, so a crash never leaves it behind. Python does not know this
//! lock; pack appends stay exclusive with Python through pack lock files.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};

use crate::container::Container;
use crate::error::{Error, IoContext, Result};

/// Name of the lock file at the container root.
pub const MAINTENANCE_LOCK_FILE: &str = ".dos-maintenance.lock";

/// How a maintenance operation shares the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Others holding `Shared` may run at once.
    Shared,
    /// Nobody else.
    Exclusive,
}

/// A held maintenance lock; released on drop (or when the process dies).
#[derive(Debug)]
pub struct MaintenanceLock {
    _file: File,
}

impl Container {
    /// Take the container's maintenance lock, failing at once (naming the holder) if another dos
    /// operation holds it in a conflicting mode.
    pub fn lock_maintenance(&self, mode: LockMode, operation: &str) -> Result<MaintenanceLock> {
        if mode == LockMode::Exclusive {
            self.writable("maintenance")?;
        }
        let path = self.layout.root.join(MAINTENANCE_LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .ctx(&path, "open maintenance lock")?;
        let r = match mode {
            LockMode::Shared => file.try_lock_shared(),
            LockMode::Exclusive => file.try_lock(),
        };
        match r {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::Busy {
                    path,
                    holder: if holder.is_empty() {
                        "unknown".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, "flock", e)),
        }
        if mode == LockMode::Exclusive {
            let note = format!("pid {} running `{operation}`", std::process::id());
            let _ = file.set_len(0);
            let _ = file.seek(SeekFrom::Start(0));
            let _ = file.write_all(note.as_bytes());
        }
        Ok(MaintenanceLock { _file: file })
    }
}
