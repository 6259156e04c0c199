//! Scratch folders of the targets: one per target and thread, created once and reused.
//!
//! They live in `/dev/shm/dos-fuzz/` when `/dev/shm` exists (a tmpfs: no disk I/O, fsync is
//! free), else in the temporary folder. A folder is named `<target>-<pid>-<n>`; libFuzzer ends
//! its processes with `exit()`, which runs no destructor, so instead each process removes the
//! folders of processes that no longer exist when it creates its first one.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT: AtomicU64 = AtomicU64::new(0);
static SWEEP: Once = Once::new();

fn base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.join("dos-fuzz")
    } else {
        std::env::temp_dir().join("dos-fuzz")
    }
}

/// The pid a scratch folder name carries.
fn pid_of(name: &str) -> Option<u32> {
    let mut parts = name.rsplitn(3, '-');
    let _n = parts.next()?;
    parts.next()?.parse().ok()
}

/// Remove the scratch folders of processes that are gone (when liveness can be told at all).
fn sweep(base: &Path) {
    let proc = Path::new("/proc/self");
    if !proc.exists() {
        return;
    }
    let Ok(rd) = fs::read_dir(base) else { return };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(pid_of) else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// Run `f` with every rayon operation of this thread inline, and the global pool, which threads
/// dos-core spawns use, of one thread.
///
/// The targets' containers hold a few objects: waking rayon workers for each parallel loop cost
/// more than the loops (measured: half of `validate`'s time on two cores), and a fuzzing
/// campaign runs one process per core anyway. This thread becomes the only worker of a pool of
/// its own (`use_current_thread`), so that `f` runs right here: handing it to a pool thread and
/// back (as `install` from outside a pool does) cost two thread switches per execution, and
/// on a busy machine each waits for a time slice.
pub(crate) fn serial<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    static GLOBAL: Once = Once::new();
    GLOBAL.call_once(|| {
        // Fails if the pool was set up already (e.g. by a test): then it stays as it is. It
        // needs a thread of its own: threads that dos-core spawns (validate's verifier, a pack
        // writer's preparer) run their parallel loops there while this thread waits for them.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build_global();
    });
    thread_local! {
        // Fails if this thread is a worker of another pool already: then `f` runs in that one.
        static POOL: Option<rayon::ThreadPool> = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .use_current_thread()
            .build()
            .ok();
    }
    POOL.with(|pool| match pool {
        Some(p) => p.install(f),
        None => f(),
    })
}

/// A new, empty scratch folder for `target`, owned by this process.
pub(crate) fn new_dir(target: &str) -> io::Result<PathBuf> {
    let base = base();
    fs::create_dir_all(&base)?;
    SWEEP.call_once(|| sweep(&base));
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = base.join(format!("{target}-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir)?;
    Ok(dir)
}

/// Remove this process's scratch folders (the replay test calls it at the end; fuzzing
/// processes leave theirs to the next process's sweep).
pub fn remove_scratch() {
    let base = base();
    let Ok(rd) = fs::read_dir(&base) else { return };
    let me = std::process::id();
    for e in rd.flatten() {
        if e.file_name().to_str().and_then(pid_of) == Some(me) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// Remove everything inside `dir` (not `dir` itself).
pub(crate) fn clear_dir(dir: &Path) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            fs::remove_dir_all(e.path())?;
        } else {
            fs::remove_file(e.path())?;
        }
    }
    Ok(())
}

/// Empty `dir`, or create it if missing (a previous run may have replaced it by a file).
pub(crate) fn reset_dir(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => clear_dir(dir),
        Ok(_) => {
            fs::remove_file(dir)?;
            fs::create_dir(dir)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(dir),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_in_name() {
        assert_eq!(pid_of("index_rows-1234-0"), Some(1234));
        assert_eq!(pid_of("loose_folder-99-12"), Some(99));
        assert_eq!(pid_of("junk"), None);
    }
}
