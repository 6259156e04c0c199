//! Fault injection for crash tests: a plan of where the process stops, handed to a container by
//! its opener ([`crate::IoOptions::faults`]); the library never reads it from the environment.
//!
//! Points sit right before and after every write, fsync, commit, rename and delete that matters
//! for durability. A plan can abort the process (no destructors, no cleanup — as `kill -9`) the
//! `n`-th time it reaches a named point, and can append the name of every point reached to a
//! trace file, one per line (tests use it to aim at the first, a middle and the last occurrence
//! of every point). The empty plan, the default, costs one branch per point.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Where to stop the process (and what to trace); cheap to clone, shared by all its clones.
#[derive(Clone, Default)]
pub struct FaultPlan(Option<Arc<Plan>>);

struct Plan {
    abort_at: Option<(String, u64)>,
    seen: AtomicU64,
    trace: Option<Mutex<File>>,
}

impl std::fmt::Debug for FaultPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("FaultPlan(none)"),
            Some(p) => f
                .debug_struct("FaultPlan")
                .field("abort_at", &p.abort_at)
                .field("trace", &p.trace.is_some())
                .finish(),
        }
    }
}

impl FaultPlan {
    /// A plan that aborts the process the `nth` time (counting from 1) it reaches `point`, and,
    /// with `trace`, appends every point reached to that file.
    pub fn new(abort_at: Option<(String, u64)>, trace: Option<File>) -> Self {
        if abort_at.is_none() && trace.is_none() {
            return Self(None);
        }
        Self(Some(Arc::new(Plan {
            abort_at,
            seen: AtomicU64::new(0),
            trace: trace.map(Mutex::new),
        })))
    }

    /// Parse `<point>:<n>` (the form the `dos` binary takes from `DOS_FAULT`).
    pub fn parse_abort_at(spec: &str) -> Option<(String, u64)> {
        let (point, n) = spec.rsplit_once(':')?;
        Some((point.to_string(), n.parse().ok()?))
    }

    /// Whether the plan does anything.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The process reaches the named point.
    pub fn point(&self, name: &str) {
        let Some(p) = &self.0 else { return };
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_traces() {
        assert_eq!(
            FaultPlan::parse_abort_at("pack.sync.before:3"),
            Some(("pack.sync.before".to_string(), 3))
        );
        assert_eq!(FaultPlan::parse_abort_at("nocount"), None);
        assert_eq!(FaultPlan::parse_abort_at("a:b"), None);
        assert!(FaultPlan::new(None, None).is_empty());
        let t = tempfile::NamedTempFile::new().unwrap();
        let plan = FaultPlan::new(Some(("never.reached".into(), 1)), Some(t.reopen().unwrap()));
        plan.point("one");
        plan.clone().point("two");
        assert_eq!(std::fs::read_to_string(t.path()).unwrap(), "one\ntwo\n");
    }
}
