//! The scale benchmark's report: per size, every operation on both sides (seconds, µs per unit,
//! ratio, peak RSS); the growth of the per-unit time between consecutive sizes; the index's
//! bytes per object; and the JSON document of every result.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::base::Manifest;
use super::ops::Op;

/// The growth of the per-unit time above which an operation misses the target.
pub const GROWTH_TARGET: f64 = 1.3;

/// One side's run of one operation.
#[derive(Debug, Clone)]
pub enum SideRun {
    /// Its result.
    Done(Value),
    /// Killed after this many seconds.
    Timeout(f64),
    /// Failed (Python only, e.g. MemoryError at the address-space limit): its exit status.
    Failed(String),
    /// Not run (not selected for this side at this size).
    Skipped,
}

impl SideRun {
    /// The seconds of `phase` (`None`: the whole operation), if it finished.
    fn phase_or_total(&self, phase: Option<&str>) -> Option<f64> {
        let SideRun::Done(v) = self else {
            return None;
        };
        match phase {
            None => v.get("seconds"),
            Some(p) => v.get("phases").and_then(|ph| ph.get(p)),
        }
        .and_then(Value::as_f64)
    }

    /// The process's peak RSS (MiB), if it finished.
    fn peak_mib(&self) -> Option<f64> {
        match self {
            SideRun::Done(v) => v
                .get("peak_rss_kb")
                .and_then(Value::as_u64)
                .map(|kb| kb as f64 / 1024.0),
            _ => None,
        }
    }

    /// The run as JSON.
    fn json(&self) -> Value {
        match self {
            SideRun::Done(v) => v.clone(),
            SideRun::Timeout(s) => json!({"status": "timeout", "limit_s": s}),
            SideRun::Failed(why) => json!({"status": "failed", "exit": why}),
            SideRun::Skipped => json!({"status": "skipped"}),
        }
    }

    /// A table cell of seconds (`phase`: one phase's).
    fn cell(&self, phase: Option<&str>) -> String {
        match self {
            SideRun::Timeout(s) => format!("timeout ({s:.0} s)"),
            SideRun::Failed(why) if why.contains("MemoryError") => "failed (MemoryError)".into(),
            SideRun::Failed(_) => "failed".into(),
            SideRun::Skipped => "skipped".into(),
            SideRun::Done(_) => self
                .phase_or_total(phase)
                .map_or("-".into(), |s| format!("{s:.3}")),
        }
    }
}

/// One operation measured at one size.
#[derive(Debug, Clone)]
pub struct Measure {
    /// The operation.
    pub op: &'static Op,
    /// What its time is divided by.
    pub units: u64,
    /// The dos side.
    pub dos: SideRun,
    /// The Python side.
    pub python: SideRun,
    /// Wrong results (of either side).
    pub problems: Vec<String>,
}

/// The phases of an operation reported as rows of their own.
fn phases(op: &Op) -> &'static [&'static str] {
    if op.name == "delete-repack" {
        &["delete", "repack"]
    } else {
        &[]
    }
}

/// µs per unit of `s` seconds.
fn per_unit(s: Option<f64>, units: u64) -> Option<f64> {
    s.filter(|_| units > 0).map(|s| s * 1e6 / units as f64)
}

/// An optional figure as text.
fn fmt(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".into(), |x| format!("{x:.digits$}"))
}

/// Everything measured at one size.
#[derive(Debug, Clone)]
pub struct SizeResult {
    /// The base.
    pub manifest: Manifest,
    /// Its operations.
    pub measures: Vec<Measure>,
}

/// One line of every table: an operation or one of its phases.
struct Line<'a> {
    label: String,
    key: String,
    m: &'a Measure,
    phase: Option<&'static str>,
}

/// The lines of a size's table.
fn lines(r: &SizeResult) -> Vec<Line<'_>> {
    let mut v = Vec::new();
    for m in &r.measures {
        v.push(Line {
            label: m.op.label.to_string(),
            key: m.op.name.to_string(),
            m,
            phase: None,
        });
        for &p in phases(m.op) {
            v.push(Line {
                label: format!("↳ {p}"),
                key: format!("{}/{p}", m.op.name),
                m,
                phase: Some(p),
            });
        }
    }
    v
}

/// The µs per unit of `side` on `l`.
fn us(l: &Line, side: &SideRun) -> Option<f64> {
    if !l.m.problems.is_empty() {
        return None;
    }
    per_unit(side.phase_or_total(l.phase), l.m.units)
}

/// The text report of all sizes.
pub fn text(sizes: &[SizeResult]) -> String {
    let mut s = String::new();
    for r in sizes {
        let m = &r.manifest;
        let _ = writeln!(
            s,
            "\n{} objects ({} packed in {} pack(s), {} loose; {:.1} MB), seed {}\n",
            m.n,
            m.packed,
            m.pack_files,
            m.loose,
            (m.packed_bytes + m.loose_bytes) as f64 / 1e6,
            m.seed
        );
        s.push_str(
            "| operation | per | units | dos s | python s | ratio | dos µs/unit | python µs/unit | \
             dos peak RSS MB | python peak RSS MB |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for l in lines(r) {
            let wrong = !l.m.problems.is_empty();
            let (d, p) = (&l.m.dos, &l.m.python);
            let ratio = match (p.phase_or_total(l.phase), d.phase_or_total(l.phase)) {
                (Some(p), Some(d)) if !wrong && d > 0.0 => format!("{:.1}×", p / d),
                _ => "-".into(),
            };
            let (dc, pc) = if wrong {
                ("WRONG".to_string(), "WRONG".to_string())
            } else {
                (d.cell(l.phase), p.cell(l.phase))
            };
            let rss = |x: &SideRun| {
                if l.phase.is_some() {
                    String::new()
                } else {
                    fmt(x.peak_mib(), 0)
                }
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {dc} | {pc} | {ratio} | {} | {} | {} | {} |",
                l.label,
                l.m.op.unit.name(),
                l.m.units,
                fmt(us(&l, d), 3),
                fmt(us(&l, p), 3),
                rss(d),
                rss(p),
            );
        }
        let per_obj = m.index_bytes as f64 / m.packed.max(1) as f64;
        let _ = writeln!(
            s,
            "\npacks.idx {:.1} MB = {per_obj:.1} bytes per packed object (WAL {:.1} MB); packs \
             {:.1} MB = {:.1} bytes per packed object; generated in {:.1} s (packs) + {:.1} s \
             (loose) + {:.1} s (lists), peak RSS {} MB{}",
            m.index_bytes as f64 / 1e6,
            m.index_wal_bytes as f64 / 1e6,
            m.packs_bytes as f64 / 1e6,
            m.packs_bytes as f64 / m.packed.max(1) as f64,
            m.gen_pack_seconds,
            m.gen_loose_seconds,
            m.gen_lists_seconds,
            fmt(m.gen_peak_rss_kb.map(|k| k as f64 / 1024.0), 0),
            if m.gen_phase_peak_rss_kb.is_empty() {
                String::new()
            } else {
                let p: Vec<String> = m
                    .gen_phase_peak_rss_kb
                    .iter()
                    .map(|k| fmt(k.map(|k| k as f64 / 1024.0), 0))
                    .collect();
                format!(" (pack, loose, lists phases: {} MB)", p.join(", "))
            },
        );
        for mm in r.measures.iter().filter(|mm| mm.op.name == "clean") {
            let after = |x: &SideRun| match x {
                SideRun::Done(v) => v.get("index_bytes_after").and_then(Value::as_u64).map(|b| {
                    format!(
                        "{:.1} MB ({:.1} B/object)",
                        b as f64 / 1e6,
                        b as f64 / m.packed.max(1) as f64
                    )
                }),
                _ => None,
            };
            let _ = writeln!(
                s,
                "packs.idx after clean --vacuum: dos {}, python {}",
                after(&mm.dos).unwrap_or("-".into()),
                after(&mm.python).unwrap_or("-".into()),
            );
        }
        for mm in r.measures.iter().filter(|mm| !mm.problems.is_empty()) {
            let _ = writeln!(s, "WRONG {}: {}", mm.op.name, mm.problems.join("; "));
        }
    }
    for (a, b) in sizes.iter().zip(sizes.iter().skip(1)) {
        let (n1, n2) = (a.manifest.n, b.manifest.n);
        let _ = writeln!(
            s,
            "\nGrowth of the time per unit from {n1} to {n2} objects (target: within \
             {GROWTH_TARGET}×)\n"
        );
        let _ = writeln!(
            s,
            "| operation | per | dos µs/unit at {n1} | dos µs/unit at {n2} | dos growth | \
             python µs/unit at {n1} | python µs/unit at {n2} | python growth |\n\
             |---|---|---:|---:|---:|---:|---:|---:|",
        );
        for g in growth(a, b) {
            let mark = |x: Option<f64>| match x {
                Some(x) if x > GROWTH_TARGET => format!("**{x:.2}×**"),
                Some(x) => format!("{x:.2}×"),
                None => "-".into(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                g.label,
                g.unit,
                fmt(g.dos.0, 3),
                fmt(g.dos.1, 3),
                mark(g.dos_growth()),
                fmt(g.python.0, 3),
                fmt(g.python.1, 3),
                mark(g.python_growth()),
            );
        }
    }
    s
}

/// The per-unit times of one line at two sizes.
struct Growth {
    label: String,
    key: String,
    unit: &'static str,
    dos: (Option<f64>, Option<f64>),
    python: (Option<f64>, Option<f64>),
}

impl Growth {
    fn dos_growth(&self) -> Option<f64> {
        Some(self.dos.1? / self.dos.0?)
    }
    fn python_growth(&self) -> Option<f64> {
        Some(self.python.1? / self.python.0?)
    }
}

/// The growth of every line present at both sizes.
fn growth(a: &SizeResult, b: &SizeResult) -> Vec<Growth> {
    let lb = lines(b);
    lines(a)
        .into_iter()
        .filter_map(|la| {
            let l2 = lb.iter().find(|l| l.key == la.key)?;
            Some(Growth {
                label: la.label.clone(),
                key: la.key.clone(),
                unit: la.m.op.unit.name(),
                dos: (us(&la, &la.m.dos), us(l2, &l2.m.dos)),
                python: (us(&la, &la.m.python), us(l2, &l2.m.python)),
            })
        })
        .collect()
}

/// The JSON of the sizes and of the growth between consecutive ones.
pub fn json_sizes(sizes: &[SizeResult]) -> (Value, Value) {
    let sizes_json: Vec<Value> = sizes
        .iter()
        .map(|r| {
            let m = &r.manifest;
            let ops: Vec<Value> = lines(r)
                .iter()
                .map(|l| {
                    let (d, p) = (us(l, &l.m.dos), us(l, &l.m.python));
                    let mut o = json!({
                        "operation": l.key,
                        "label": l.label,
                        "unit": l.m.op.unit.name(),
                        "units": l.m.units,
                        "ok": l.m.problems.is_empty(),
                        "problems": l.m.problems,
                        "dos_s": l.m.dos.phase_or_total(l.phase),
                        "python_s": l.m.python.phase_or_total(l.phase),
                        "dos_us_per_unit": d,
                        "python_us_per_unit": p,
                        "ratio": match (l.m.python.phase_or_total(l.phase), l.m.dos.phase_or_total(l.phase)) {
                            (Some(p), Some(d)) if d > 0.0 => Some(p / d),
                            _ => None,
                        },
                    });
                    if l.phase.is_none() {
                        o["dos_peak_rss_mib"] = json!(l.m.dos.peak_mib());
                        o["python_peak_rss_mib"] = json!(l.m.python.peak_mib());
                        o["dos"] = l.m.dos.json();
                        o["python"] = l.m.python.json();
                    }
                    o
                })
                .collect();
            json!({
                "n": m.n,
                "manifest": m,
                "index_bytes_per_packed_object": m.index_bytes as f64 / m.packed.max(1) as f64,
                "packs_bytes_per_packed_object": m.packs_bytes as f64 / m.packed.max(1) as f64,
                "operations": ops,
            })
        })
        .collect();
    let mut growth_json = Vec::new();
    for (a, b) in sizes.iter().zip(sizes.iter().skip(1)) {
        for g in growth(a, b) {
            growth_json.push(json!({
                "from_n": a.manifest.n,
                "to_n": b.manifest.n,
                "operation": g.key,
                "unit": g.unit,
                "dos_us_per_unit": [g.dos.0, g.dos.1],
                "python_us_per_unit": [g.python.0, g.python.1],
                "dos_growth": g.dos_growth(),
                "python_growth": g.python_growth(),
                "dos_within_target": g.dos_growth().map(|x| x <= GROWTH_TARGET),
            }));
        }
    }
    (Value::Array(sizes_json), Value::Array(growth_json))
}
