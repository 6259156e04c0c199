//! Pack files: plain concatenations of object byte streams, `packs/<decimal id>` — their names,
//! which pack the next object goes to ([`choose_pack`]), their append locks ([`lock`]) and the
//! appender that writes them ([`appender`]).

use std::fs;
use std::io;

use crate::error::{Error, IoContext, Result};
use crate::layout::Layout;

pub mod appender;
pub mod lock;

pub use appender::{AppendSink, PackAppender};
pub use lock::{LockState, PackLock, inspect_lock, remove_if_stale};

/// Parse a pack file name: a decimal integer without leading zeros.
pub fn parse_pack_name(name: &str) -> Option<u64> {
    let valid = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_digit())
        && (name == "0" || !name.starts_with('0'));
    if valid { name.parse().ok() } else { None }
}

/// Ids of all pack files, sorted.
pub fn list_pack_ids(layout: &Layout) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for e in fs::read_dir(&layout.packs).ctx(&layout.packs, "list")? {
        let e = e.ctx(&layout.packs, "list")?;
        if let Some(id) = e.file_name().to_str().and_then(parse_pack_name) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The pack Python would append the next object to: the lowest id ≥ `start` whose file is missing
/// or smaller than `target` — except that an offloaded pack (a stub directory in its place, or
/// an id in `remote`, sorted) is never chosen.
pub fn choose_pack(layout: &Layout, start: u64, target: u64, remote: &[u64]) -> Result<u64> {
    let mut id = start;
    loop {
        let p = layout.pack(id);
        if remote.binary_search(&id).is_ok() {
            id += 1;
            continue;
        }
        match fs::metadata(&p) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(id),
            Err(e) => return Err(Error::io(&p, "stat", e)),
            Ok(m) if m.is_file() && m.len() < target => return Ok(id),
            Ok(_) => id += 1,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A folder with an empty `packs/`.
    pub(crate) fn layout() -> (tempfile::TempDir, Layout) {
        let d = tempfile::tempdir().unwrap();
        let l = Layout::new(d.path());
        fs::create_dir(&l.packs).unwrap();
        (d, l)
    }

    #[test]
    fn pack_names() {
        assert_eq!(parse_pack_name("0"), Some(0));
        assert_eq!(parse_pack_name("12"), Some(12));
        for bad in ["", "01", "-1", "1.lock", "a", "1 "] {
            assert_eq!(parse_pack_name(bad), None, "{bad}");
        }
    }
}
