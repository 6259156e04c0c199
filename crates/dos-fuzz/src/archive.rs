//! The `archive_import` target.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::PathBuf;

use dos_archive::{ImportOptions, Limits, import_archive};
use dos_core::maintain::ValidateOptions;
use dos_core::write::WriteTuning;
use dos_core::{CompressMode, Container, InitOptions, NoProgress, ObjectKey};

use crate::scratch;

/// The scratch folder of this thread: the archive file, and a container made once and emptied
/// before each run.
struct Prepared {
    archive: PathBuf,
    root: PathBuf,
    /// A connection to `packs.idx` kept open (as an AiiDA process keeps it), which empties it
    /// before each run: dos's connections then find it in WAL mode, and closing them
    /// checkpoints nothing.
    conn: rusqlite::Connection,
    /// The names in the folder of a new container.
    fresh: BTreeSet<OsString>,
}

impl Prepared {
    fn create() -> Option<Self> {
        let dir = scratch::new_dir("archive_import").ok()?;
        let root = dir.join("c");
        drop(Container::init(&root, &InitOptions::default()).ok()?);
        let conn = rusqlite::Connection::open(root.join("packs.idx")).ok()?;
        conn.execute_batch("PRAGMA synchronous=OFF").ok()?;
        let mut fresh: BTreeSet<OsString> = fs::read_dir(&root)
            .ok()?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .ok()?;
        // The connection above may have made them, and keeps them.
        fresh.insert("packs.idx-wal".into());
        fresh.insert("packs.idx-shm".into());
        Some(Self {
            archive: dir.join("a.aiida"),
            root,
            conn,
            fresh,
        })
    }

    /// Make the container what [`Container::init`] leaves: empty folders, an empty index, no
    /// other file (a lock file, a journal, whatever the previous run left).
    fn reset(&self) -> io::Result<()> {
        for e in fs::read_dir(&self.root)? {
            let e = e?;
            if !self.fresh.contains(&e.file_name()) {
                let p = e.path();
                if e.file_type()?.is_dir() {
                    fs::remove_dir_all(p)?;
                } else {
                    fs::remove_file(p)?;
                }
            }
        }
        for d in dos_core::layout::REQUIRED_DIRS {
            scratch::reset_dir(&self.root.join(d))?;
        }
        self.conn
            .prepare_cached("DELETE FROM db_object")
            .and_then(|mut s| s.execute([]))
            .map_err(io::Error::other)?;
        Ok(())
    }
}

thread_local! {
    static PREPARED: RefCell<Option<Prepared>> = const { RefCell::new(None) };
}

/// Any bytes given as an archive: opening, describing and importing never panic; whatever is
/// imported is valid and byte-exact, and nothing that failed a check is visible.
///
/// The archive is imported into an empty container (made once per thread, then emptied before
/// each run, which costs a fraction of making one).
pub fn archive_import(data: &[u8]) {
    scratch::serial(|| {
        PREPARED.with(|p| {
            let mut p = p.borrow_mut();
            if p.is_none() {
                *p = Prepared::create();
            }
            let Some(prep) = p.as_ref() else { return };
            if fs::write(&prep.archive, data).is_err() || prep.reset().is_err() {
                return;
            }
            check(prep, data);
        })
    });
}

fn check(prep: &Prepared, data: &[u8]) {
    let archive = &prep.archive;
    let limits = Limits {
        max_entry_size: 1 << 20,
        max_total_size: 8 << 20,
        ..Limits::default()
    };
    let _ = dos_archive::info::archive_info(archive, &limits, None);
    // Default I/O, as `dos import-archive` does it: O_DIRECT for full write buffers (tmpfs
    // supports it since Linux 6.6; elsewhere the appender falls back to buffered writes).
    let Ok(c) = Container::open(&prep.root) else {
        return;
    };
    let opts = ImportOptions {
        compress: if data.len().is_multiple_of(2) {
            CompressMode::Yes
        } else {
            CompressMode::No
        },
        limits,
        tuning: WriteTuning {
            large_object: 4096,
            memory_budget: 1 << 20,
            ..WriteTuning::default()
        },
        check_free_space: false,
        ..ImportOptions::default()
    };
    if let Ok(s) = import_archive(&c, archive, &opts, &NoProgress) {
        // Everything stored is intact; nothing bad is visible.
        let report = match c.validate(&ValidateOptions::default(), &NoProgress) {
            Ok(r) => r,
            Err(e) => panic!("validate fails after an import: {e}"),
        };
        assert!(report.is_valid(), "{report:?}");
        for b in &s.bad_entries {
            if let Some(k) = b
                .name
                .strip_prefix("repo/")
                .and_then(|k| k.parse::<ObjectKey>().ok())
            {
                assert!(
                    !c.has_object(&k).unwrap_or(false),
                    "bad entry {} visible",
                    b.name
                );
            }
        }
    }
}
