//! Free space of a filesystem (to refuse an import that cannot fit before writing anything).

use std::path::Path;

/// Bytes available to unprivileged users on the filesystem holding `path`, if known.
pub fn available(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let c = CString::new(path.as_os_str().as_bytes()).ok()?;
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call, and `st` points to
        // writable memory of the right type; statvfs writes only into it, and we read it only
        // when the call reports success.
        #[allow(unsafe_code)]
        let st = unsafe {
            if libc::statvfs(c.as_ptr(), st.as_mut_ptr()) != 0 {
                return None;
            }
            st.assume_init()
        };
        #[allow(clippy::unnecessary_cast)]
        Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}
