//! Fault injection for crash tests.
//!
//! Set `DOS_FAULT=<point>:<n>` and the process aborts (no destructors, no cleanup — as `kill -9`)
//! the `n`-th time it reaches `<point>`. Points sit right before and after every write, fsync,
//! commit, rename and delete that matters for durability. Without the variable a point costs one
//! relaxed atomic load.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

struct Plan {
    point: String,
    hit: u64,
    seen: AtomicU64,
}

fn plan() -> Option<&'static Plan> {
    static PLAN: OnceLock<Option<Plan>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let v = std::env::var("DOS_FAULT").ok()?;
        let (point, n) = v.rsplit_once(':')?;
        Some(Plan {
            point: point.to_string(),
            hit: n.parse().ok()?,
            seen: AtomicU64::new(0),
        })
    })
    .as_ref()
}

/// A named fault point.
pub fn point(name: &str) {
    if let Some(p) = plan()
        && p.point == name
        && p.seen.fetch_add(1, Ordering::Relaxed) + 1 == p.hit
    {
        eprintln!("dos: fault injection: aborting at {name}");
        std::process::abort();
    }
}
