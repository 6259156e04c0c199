//! Fault injection for crash tests.
//!
//! Set `DOS_FAULT=<point>:<n>` and the process aborts (no destructors, no cleanup — as `kill -9`)
//! the `n`-th time it reaches `<point>`. Set `DOS_FAULT_TRACE=<file>` and every point reached is
//! appended to that file, one name per line (tests use it to aim at the first, a middle and the
//! last occurrence of every point). Points sit right before and after every write, fsync,
//! commit, rename and delete that matters for durability. Without these variables a point costs
//! one atomic load.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

struct Plan {
    abort_at: Option<(String, u64)>,
    seen: AtomicU64,
    trace: Option<Mutex<File>>,
}

fn plan() -> Option<&'static Plan> {
    static PLAN: OnceLock<Option<Plan>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let abort_at = std::env::var("DOS_FAULT").ok().and_then(|v| {
            let (point, n) = v.rsplit_once(':')?;
            Some((point.to_string(), n.parse().ok()?))
        });
        let trace = std::env::var_os("DOS_FAULT_TRACE").and_then(|p| {
            File::options()
                .create(true)
                .append(true)
                .open(p)
                .ok()
                .map(Mutex::new)
        });
        (abort_at.is_some() || trace.is_some()).then(|| Plan {
            abort_at,
            seen: AtomicU64::new(0),
            trace,
        })
    })
    .as_ref()
}

/// A named fault point.
pub fn point(name: &str) {
    let Some(p) = plan() else { return };
    if let Some(t) = &p.trace {
        let mut f = t.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(f, "{name}");
    }
    if let Some((point, hit)) = &p.abort_at
        && point == name
        && p.seen.fetch_add(1, Ordering::Relaxed) + 1 == *hit
    {
        eprintln!("dos: fault injection: aborting at {name}");
        std::process::abort();
    }
}
