//! Fault injection for crash tests: a plan of where the process stops, handed to a container by
//! its opener ([`crate::IoOptions::faults`]); the library never reads it from the environment.
//!
//! Points sit right before and after every write, fsync, commit, rename and delete that matters
//! for durability. A plan can act the `n`-th time the process reaches a named point: abort it
//! (no destructors, no cleanup — as `kill -9`), or make the operation at that point fail with an
//! I/O error (`EIO`), as a failing disk would; and it can append the name of every point reached
//! to a trace file, one per line (tests use it to aim at the first, a middle and the last
//! occurrence of every point). The empty plan, the default, costs one branch per point.
//!
//! Each call site decides what the injected error stands for: at a point named `….before` the
//! operation that follows fails without having happened; at `….after` (and at `pack.append`)
//! it reports failure although it did happen, as a write whose bytes reached the file, a commit
//! whose fsync failed, or a rename whose directory fsync failed would.

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Where to stop the process (and what to trace); cheap to clone, shared by all its clones.
#[derive(Clone, Default)]
pub struct FaultPlan(Option<Arc<Plan>>);

/// What a plan does when it reaches its point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Abort the process.
    Abort,
    /// Make the operation at the point fail with `EIO`.
    Eio,
}

/// Where a plan acts: the `hit`-th time (counting from 1) the process reaches `point`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultAt {
    /// The point's name.
    pub point: String,
    /// Which occurrence.
    pub hit: u64,
    /// What happens there.
    pub action: FaultAction,
}

struct Plan {
    at: Option<FaultAt>,
    seen: AtomicU64,
    trace: Option<Mutex<File>>,
}

impl std::fmt::Debug for FaultPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("FaultPlan(none)"),
            Some(p) => f
                .debug_struct("FaultPlan")
                .field("at", &p.at)
                .field("trace", &p.trace.is_some())
                .finish(),
        }
    }
}

impl FaultPlan {
    /// A plan that acts at `at` and, with `trace`, appends every point reached to that file.
    pub fn new(at: Option<FaultAt>, trace: Option<File>) -> Self {
        if at.is_none() && trace.is_none() {
            return Self(None);
        }
        Self(Some(Arc::new(Plan {
            at,
            seen: AtomicU64::new(0),
            trace: trace.map(Mutex::new),
        })))
    }

    /// Parse `[abort:|eio:]<point>:<n>` (the form the `dos` binary takes from `DOS_FAULT`;
    /// without a prefix the plan aborts).
    pub fn parse(spec: &str) -> Option<FaultAt> {
        let (action, rest) = match spec.split_once(':') {
            Some(("eio", rest)) => (FaultAction::Eio, rest),
            Some(("abort", rest)) => (FaultAction::Abort, rest),
            _ => (FaultAction::Abort, spec),
        };
        let (point, n) = rest.rsplit_once(':')?;
        if point.is_empty() || point.contains(':') {
            return None;
        }
        Some(FaultAt {
            point: point.to_string(),
            hit: n.parse().ok()?,
            action,
        })
    }

    /// Whether the plan does anything.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The process reaches the named point: the plan may abort here, or return the error the
    /// operation at this point is to fail with (the caller treats it as that operation's own).
    pub fn point(&self, name: &str) -> io::Result<()> {
        let Some(p) = &self.0 else { return Ok(()) };
        if let Some(t) = &p.trace {
            let mut f = t.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(f, "{name}");
        }
        if let Some(at) = &p.at
            && at.point == name
            && p.seen.fetch_add(1, Ordering::Relaxed) + 1 == at.hit
        {
            match at.action {
                FaultAction::Abort => {
                    eprintln!("dos: fault injection: aborting at {name}");
                    std::process::abort();
                }
                FaultAction::Eio => {
                    eprintln!("dos: fault injection: I/O error at {name}");
                    return Err(io::Error::from_raw_os_error(libc::EIO));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_traces() {
        let at = |p: &str, hit, action| {
            Some(FaultAt {
                point: p.to_string(),
                hit,
                action,
            })
        };
        assert_eq!(
            FaultPlan::parse("pack.sync.before:3"),
            at("pack.sync.before", 3, FaultAction::Abort)
        );
        assert_eq!(
            FaultPlan::parse("eio:pack.append:2"),
            at("pack.append", 2, FaultAction::Eio)
        );
        assert_eq!(
            FaultPlan::parse("abort:loose.delete:1"),
            at("loose.delete", 1, FaultAction::Abort)
        );
        assert_eq!(FaultPlan::parse("nocount"), None);
        assert_eq!(FaultPlan::parse("a:b"), None);
        assert_eq!(FaultPlan::parse("eio:x:y:1"), None);
        assert!(FaultPlan::new(None, None).is_empty());
        let t = tempfile::NamedTempFile::new().unwrap();
        let plan = FaultPlan::new(at("two", 2, FaultAction::Eio), Some(t.reopen().unwrap()));
        plan.point("one").unwrap();
        plan.clone().point("two").unwrap();
        let e = plan.point("two").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
        plan.point("two").unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path()).unwrap(),
            "one\ntwo\ntwo\ntwo\n"
        );
    }
}
