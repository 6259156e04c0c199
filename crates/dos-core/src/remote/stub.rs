//! The directory that stands in for an offloaded pack's file, and the atomic swaps between the
//! two.
//!
//! An offloaded pack's name must stay taken: Python disk-objectstore appends to the lowest
//! pack whose file is missing or small, and would otherwise start a new pack under a number
//! the index already uses for remote bytes. A directory keeps the name, and every attempt of
//! Python's to open it (to read or to append) fails with an error naming it. The swap between
//! file and directory is one `renameat2(RENAME_EXCHANGE)` on Linux, so the name is never free;
//! elsewhere it is two steps.

use std::fs;
use std::io;
use std::path::Path;

use crate::durable;
use crate::error::{Error, IoContext, Result};
use crate::fault::FaultPlan;
use crate::layout::Layout;

/// Name of the note inside a stub directory.
pub const STUB_NOTE: &str = "OFFLOADED";

/// Whether `packs/<id>` is a stub directory.
pub(crate) fn is_stub(layout: &Layout, id: u64) -> bool {
    fs::symlink_metadata(layout.pack(id)).is_ok_and(|m| m.is_dir())
}

/// Swap the entries at `a` and `b` (both must exist) atomically where the platform allows.
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let ca = CString::new(a.as_os_str().as_bytes()).map_err(io::Error::other)?;
        let cb = CString::new(b.as_os_str().as_bytes()).map_err(io::Error::other)?;
        // SAFETY: both pointers come from live CStrings (NUL-terminated, no interior NUL) that
        // outlive the call; AT_FDCWD makes the paths relative to the working directory as any
        // path call; renameat2 only reads the two strings.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                ca.as_ptr(),
                libc::AT_FDCWD,
                cb.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        // Filesystems (or kernels) without RENAME_EXCHANGE: the two-step swap below.
        if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
            return Err(e);
        }
    }
    // Two steps: `b` moves aside, `a` takes its name, the old `b` takes `a`'s.
    let aside = b.with_extension("swap");
    fs::rename(b, &aside)?;
    fs::rename(a, b)?;
    fs::rename(&aside, a)
}

/// Replace the file `packs/<id>` by a stub directory whose note says `note`; the pack's file
/// is then deleted. Durable when it returns.
pub(crate) fn replace_pack_with_stub(
    layout: &Layout,
    id: u64,
    note: &str,
    expected: (u64, u64),
    faults: &FaultPlan,
) -> Result<()> {
    let pack = layout.pack(id);
    let tmp = layout.sandbox.join(format!(
        "dos-stub-{id}-{}",
        super::random_hex(8).ctx(&layout.sandbox, "random name")?
    ));
    fs::create_dir(&tmp).ctx(&tmp, "create stub folder")?;
    let note_path = tmp.join(STUB_NOTE);
    fs::write(&note_path, note).ctx(&note_path, "write")?;
    faults
        .point("offload.stub")
        .ctx(&pack, "replace pack with stub")?;
    exchange(&tmp, &pack).ctx(&pack, "replace pack with stub")?;
    // `tmp` now names what was at the pack's path: it must be the file that was uploaded (a
    // Python repack replaces a pack by renaming a new file over it). If not, swap back.
    let swapped = fs::symlink_metadata(&tmp).ctx(&tmp, "stat")?;
    if crate::remote::offload::file_identity(&swapped) != expected || !swapped.is_file() {
        exchange(&tmp, &pack).ctx(&pack, "put pack back")?;
        let _ = fs::remove_dir_all(&tmp);
        return Err(Error::PackModified {
            path: pack,
            change: crate::error::PackChange::Replaced,
        });
    }
    durable::sync_dir(&layout.packs)?;
    durable::sync_dir(&layout.sandbox)?;
    // `tmp` now names the pack's file.
    faults.point("offload.unlink").ctx(&tmp, "remove")?;
    fs::remove_file(&tmp).ctx(&tmp, "remove offloaded pack")?;
    durable::sync_dir(&layout.sandbox)
}

/// Put the complete, durable file `downloaded` (in `sandbox/`) in place of pack `id`'s stub
/// directory (or at `packs/<id>` if there is none). Durable when it returns.
pub(crate) fn replace_stub_with_pack(
    layout: &Layout,
    id: u64,
    downloaded: &Path,
    faults: &FaultPlan,
) -> Result<()> {
    let pack = layout.pack(id);
    faults.point("fetch.swap").ctx(&pack, "put pack in place")?;
    match fs::symlink_metadata(&pack) {
        Ok(m) if m.is_dir() => {
            exchange(downloaded, &pack).ctx(&pack, "put pack in place")?;
            durable::sync_dir(&layout.packs)?;
            // `downloaded` now names the stub directory.
            fs::remove_dir_all(downloaded).ctx(downloaded, "remove stub folder")?;
            durable::sync_dir(&layout.sandbox)
        }
        Ok(_) => Err(Error::io(
            &pack,
            "put pack in place",
            io::Error::new(io::ErrorKind::AlreadyExists, "a pack file is already there"),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Never replaces: a pack created meanwhile makes this fail.
            fs::hard_link(downloaded, &pack).ctx(&pack, "put pack in place")?;
            durable::sync_dir(&layout.packs)?;
            fs::remove_file(downloaded).ctx(downloaded, "remove")?;
            durable::sync_dir(&layout.sandbox)
        }
        Err(e) => Err(Error::io(&pack, "stat", e)),
    }
}
