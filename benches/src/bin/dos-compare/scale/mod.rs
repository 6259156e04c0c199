//! `dos-compare scale`: how the cost of each operation grows with the container's size, dos-core
//! against Python disk-objectstore, on containers of 10^5..10^7 tiny objects.
//!
//! For each size `N` a base container is generated once by a dos child ([`base`]: `N` distinct
//! objects of 20–300 bytes from a seed, one in 100 loose, the rest in packs) with its key lists,
//! and reused while its manifest matches. Every operation then runs in a fresh child process per
//! side — dos-core from this binary's hidden `scale-child` ([`child`]), disk-objectstore from
//! `benches/python/scale_bench.py` — which times only the operation and reports its result and
//! peak RSS as one JSON line ([`runner`]); each result is checked against the manifest
//! ([`expect`]). Read operations run on the base, after reading its index and packs once
//! (untimed) so that both sides start from the page cache; write operations (`delete-repack`,
//! `pack`, `add-pack`, `clean`) run on a copy of the base made for each side (untimed: packs and
//! index copied, loose files hard-linked; `pack`'s copy also gets `--pack-n` new loose objects,
//! made once and hard-linked into it; `add-pack` reads the same objects into memory, untimed,
//! and writes them into packs). A Python child is killed after `--python-timeout` seconds (its
//! operation recorded as `timeout`) and runs under an address-space limit
//! (`--python-memory-limit-mb`; an operation that needs more is recorded as `failed`, with the
//! last line of its error, e.g. `MemoryError`). With `--repeat`, each side runs that many times,
//! alternating, and its median run stands for it (every run is kept in the JSON).
//!
//! `scripts/scale.sh` builds this from a clean `git archive` of a commit (with `benches/` from the
//! work tree) and runs it, so that what is measured is that commit's dos-core.
//!
//! The report ([`report`]) gives per size each operation's seconds on both sides, the ratio, the
//! time per unit ([`ops::Unit`]: per container object, per key asked, or per object packed) and
//! the peak RSS; then the growth of the time per unit between consecutive sizes, against the
//! target of 1.3×; and the index's bytes per object. The JSON results (every child's full
//! result, the load at start and end, the machine) go to `--json`, by default
//! `benches/results/scale-<short commit>-<date>.json`.
//!
//! ```text
//! dos-compare scale --objects 1000000,10000000 --data-dir /work/scale-data \
//!     [--python .venv/bin/python] [--python-timeout 900] \
//!     [--python-ops-at 10000000=ls,status,validate,meta] [--json out.json]
//! ```

pub mod base;
pub mod child;
pub mod content;
pub mod expect;
pub mod ops;
pub mod report;
pub mod runner;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use self::base::Base;
use self::ops::Op;
use self::report::{Measure, SideRun, SizeResult};
use self::runner::{Outcome, Runner};
use crate::args::ScaleArgs;
use crate::compare::{python_version, resolve_python};
use crate::dataset::{data_root, repo_root};
use crate::ops::Side;
use crate::report::write_json;

/// Bytes a base of `n` objects takes on disk, estimated generously (measured at 10^5–10^6: about
/// 160 bytes of pack and 150 of index per object, a 4 KiB block per loose file).
fn base_bytes(n: u64, loose_every: u64, has_n: u64) -> u64 {
    n * 400 + content::loose_count(n, loose_every) * 4096 + has_n * 70 + (64 << 20)
}

/// `scale`: generate or reuse the bases, run every selected operation on both sides, report.
pub fn scale(a: &ScaleArgs) -> Result<()> {
    if a.objects.is_empty() || !a.objects.is_sorted() || a.objects.contains(&0) {
        bail!("--objects wants ascending sizes above 0");
    }
    let ops = ops::select(&a.ops)?;
    // Fail early on a bad --python-ops(-at).
    for &n in &a.objects {
        ops::python_ops(&a.python_ops, &a.python_ops_at, n)?;
    }
    let python = resolve_python(&a.python)?;
    let pyver = python_version(&python)?;
    let root = data_root(&a.data_dir);
    fs::create_dir_all(&root).with_context(|| format!("create {}", root.display()))?;
    let root = fs::canonicalize(&root)?;
    check_space(a, &root)?;

    let repo = repo_root();
    let (commit, changed) = runner::commit(&repo);
    let date = runner::today();
    let json_path = a.json.clone().unwrap_or_else(|| {
        repo.join("benches/results")
            .join(format!("scale-{commit}-{date}.json"))
    });
    let load_start = runner::load();
    eprintln!("load at start: {}", load_start["uptime"]);
    let runner = Runner {
        python,
        script: Path::new(env!("CARGO_MANIFEST_DIR")).join("python/scale_bench.py"),
        exe: std::env::current_exe()?,
        python_timeout: Duration::from_secs(a.python_timeout),
        python_memory_limit_mb: a.python_memory_limit_mb,
    };
    let doc = |sizes: &[SizeResult], load_end: Option<Value>| {
        let (sizes_json, growth) = report::json_sizes(sizes);
        json!({
            "kind": "scale",
            "commit": commit,
            "work_tree_changes": changed,
            "date": date,
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "python": pyver,
            "python_timeout_s": a.python_timeout,
            "python_memory_limit_mb": a.python_memory_limit_mb,
            "machine": runner::machine(),
            "load_start": load_start,
            "load_end": load_end,
            "complete": load_end.is_some(),
            "parameters": {
                "objects": a.objects,
                "seed": a.seed,
                "loose_every": a.loose_every,
                "delete_every": a.delete_every,
                "has_n": a.has_n,
                "meta_n": a.meta_n,
                "pack_n": a.pack_n,
                "repeat": a.repeat,
                "ops": a.ops,
                "python_ops": a.python_ops,
                "python_ops_at": a.python_ops_at,
                "growth_target": report::GROWTH_TARGET,
            },
            "sizes": sizes_json,
            "growth": growth,
        })
    };

    let mut sizes = Vec::new();
    for &n in &a.objects {
        eprintln!("== {n} objects");
        let base = ensure_base(&runner, a, &root, n)?;
        let py_ops = ops::python_ops(&a.python_ops, &a.python_ops_at, n)?;
        let mut measures = Vec::new();
        for &op in &ops {
            let py = py_ops.iter().any(|o| o.name == op.name);
            measures.push(measure(&runner, a, &base, op, py)?);
        }
        sizes.push(SizeResult {
            manifest: base.manifest.clone(),
            measures,
        });
        // The results so far, in case a later size fails.
        write_json(&json_path, &doc(&sizes, None))?;
    }
    let load_end = runner::load();
    eprintln!("load at end: {}", load_end["uptime"]);
    println!("{}", report::text(&sizes));
    write_json(&json_path, &doc(&sizes, Some(load_end)))?;
    if sizes
        .iter()
        .any(|s| s.measures.iter().any(|m| !m.problems.is_empty()))
    {
        bail!("some results were wrong; no figures were given for them");
    }
    Ok(())
}

/// Refuse to start without room for the bases still to make and the largest working copy.
fn check_space(a: &ScaleArgs, root: &Path) -> Result<()> {
    let mut need = 2u64 << 30;
    for &n in &a.objects {
        if base::existing(root, a, n).is_none() {
            need += base_bytes(n, a.loose_every, a.has_n);
        }
    }
    if let Some(&max) = a.objects.last() {
        // A copy, a repacked pack beside it, and pack's new loose files.
        need += base_bytes(max, a.loose_every, a.has_n) + max * 170 + a.pack_n * 4200;
    }
    let avail = runner::available_bytes(root)?;
    eprintln!(
        "space: {:.1} GB available in {}, about {:.1} GB needed",
        avail as f64 / 1e9,
        root.display(),
        need as f64 / 1e9
    );
    if avail < need {
        bail!(
            "not enough space in {}: {:.1} GB available, about {:.1} GB needed",
            root.display(),
            avail as f64 / 1e9,
            need as f64 / 1e9
        );
    }
    Ok(())
}

/// The base of size `n`: reused if its manifest matches, else generated by a dos child.
fn ensure_base(runner: &Runner, a: &ScaleArgs, root: &Path, n: u64) -> Result<Base> {
    if let Some(b) = base::existing(root, a, n) {
        eprintln!("  base {} reused", b.container().display());
        return Ok(b);
    }
    let dir = base::size_dir(root, n, a.seed);
    runner::remove(&dir)?;
    fs::create_dir_all(&dir)?;
    let container = dir.join("base");
    eprintln!("  generating {} (once, untimed)", container.display());
    let t = Instant::now();
    let mut cmd = runner.command(Side::Dos, "gen", &container);
    cmd.args(["--n", &n.to_string(), "--seed", &a.seed.to_string()])
        .args(["--loose-every", &a.loose_every.to_string()])
        .args([
            "--has-n",
            &a.has_n.to_string(),
            "--meta-n",
            &a.meta_n.to_string(),
        ])
        .args(["--delete-every", &a.delete_every.to_string()])
        .arg("--inputs")
        .arg(dir.join("inputs"));
    runner.run(Side::Dos, "gen", cmd, false)?;
    runner::sync()?;
    eprintln!("  generated in {:.1} s", t.elapsed().as_secs_f64());
    base::existing(root, a, n).context("the generated base has no matching manifest")
}

/// Make the new loose objects of `pack` once (untimed): objects `n..n + pack_n` written loose
/// by a dos child into a container of their own, from which they are linked into each copy.
fn ensure_extra(runner: &Runner, a: &ScaleArgs, b: &Base) -> Result<()> {
    let (marker, stamp) = b.extra_marker(a.pack_n);
    if fs::read_to_string(&marker).is_ok_and(|s| s == stamp) {
        return Ok(());
    }
    let _ = fs::remove_file(&marker);
    runner::remove(&b.extra())?;
    let mut cmd = runner.command(Side::Dos, "add-loose", &b.extra());
    cmd.args(["--seed", &a.seed.to_string()])
        .args(["--n", &b.manifest.n.to_string()])
        .args(["--count", &a.pack_n.to_string()]);
    runner.run(Side::Dos, "add-loose", cmd, false)?;
    runner::sync()?;
    fs::write(&marker, stamp)?;
    Ok(())
}

/// Run `op` `--repeat` times on each side (Python's only if `python`; the order alternates,
/// dos first in odd runs), every result checked; a side's median run stands for it. A side that
/// times out or fails is not run again.
fn measure(
    runner: &Runner,
    a: &ScaleArgs,
    b: &Base,
    op: &'static Op,
    python: bool,
) -> Result<Measure> {
    let m = &b.manifest;
    let mut problems = Vec::new();
    // Per side (dos, python): the finished runs, and what stopped it.
    let mut done: [Vec<Value>; 2] = [Vec::new(), Vec::new()];
    let mut stopped: [Option<SideRun>; 2] = [None, (!python).then_some(SideRun::Skipped)];
    for rep in 0..a.repeat.max(1) {
        let order = if rep % 2 == 0 {
            [Side::Dos, Side::Python]
        } else {
            [Side::Python, Side::Dos]
        };
        for side in order {
            let k = usize::from(side == Side::Python);
            if stopped[k].is_some() {
                continue;
            }
            let run = run_side(runner, a, b, op, side)?;
            eprintln!(
                "  {:<14} {:<6} {}",
                op.name,
                side.name(),
                match &run {
                    SideRun::Done(v) => format!(
                        "{:.3} s, peak RSS {} MB",
                        v.get("seconds").and_then(Value::as_f64).unwrap_or(f64::NAN),
                        v.get("peak_rss_kb").and_then(Value::as_u64).unwrap_or(0) / 1024
                    ),
                    SideRun::Timeout(s) => format!("timeout after {s:.0} s"),
                    SideRun::Failed(why) => format!("failed ({why})"),
                    SideRun::Skipped => "skipped".into(),
                }
            );
            match run {
                SideRun::Done(v) => {
                    problems.extend(
                        expect::check(op, &v, m, a.pack_n)
                            .into_iter()
                            .map(|p| format!("{} run {}: {p}", side.name(), rep + 1)),
                    );
                    done[k].push(v);
                }
                other => stopped[k] = Some(other),
            }
        }
    }
    let [dos_runs, py_runs] = done;
    let [dos_stop, py_stop] = stopped;
    Ok(Measure {
        op,
        units: expect::units(op, m, a.pack_n),
        dos: median(dos_runs, dos_stop),
        python: median(py_runs, py_stop),
        problems,
    })
}

/// The median of `runs` by seconds, with every run's seconds (`runs_seconds`) and every run
/// (`runs`) added; `stop` (or `Skipped`) if none finished.
fn median(mut runs: Vec<Value>, stop: Option<SideRun>) -> SideRun {
    if runs.is_empty() {
        return stop.unwrap_or(SideRun::Skipped);
    }
    let secs = |v: &Value| v.get("seconds").and_then(Value::as_f64).unwrap_or(f64::NAN);
    let in_order: Vec<f64> = runs.iter().map(secs).collect();
    let all = Value::Array(runs.clone());
    runs.sort_by(|x, y| secs(x).total_cmp(&secs(y)));
    let mut v = runs.swap_remove((runs.len() - 1) / 2);
    v["runs_seconds"] = json!(in_order);
    v["runs"] = all;
    if let Some(s) = stop {
        v["stopped_after_runs"] = json!(format!("{s:?}"));
    }
    SideRun::Done(v)
}

/// One side's run of `op`: on the base (warmed first) or on a fresh copy of it.
fn run_side(runner: &Runner, a: &ScaleArgs, b: &Base, op: &Op, side: Side) -> Result<SideRun> {
    let work: Option<PathBuf> = op
        .copy
        .then(|| b.work(&format!("{}-{}", op.name, side.name())));
    // Untimed preparation, its phases recorded.
    let mut prep = serde_json::Map::new();
    let mut phase = |name: &str, t: Instant| {
        prep.insert(name.into(), json!(t.elapsed().as_secs_f64()));
    };
    let container = match &work {
        Some(w) => {
            let t = Instant::now();
            runner::remove(w)?;
            runner::copy_container(&b.container(), w)?;
            phase("copy_s", t);
            if op.name == "pack" {
                let t = Instant::now();
                ensure_extra(runner, a, b)?;
                runner::link_loose(&b.extra(), w)?;
                phase("add_loose_s", t);
                let t = Instant::now();
                runner::warm_loose(w)?;
                phase("warm_s", t);
            }
            if op.name == "add-pack" {
                ensure_extra(runner, a, b)?;
            }
            w.clone()
        }
        None => {
            let t = Instant::now();
            runner::warm(&b.container())?;
            phase("warm_s", t);
            b.container()
        }
    };
    let mut cmd = runner.command(side, op.name, &container);
    if let Some(list) = op.list {
        cmd.arg("--list").arg(b.list(list));
    }
    if op.name == "add-pack" {
        cmd.arg("--source").arg(b.extra());
    }
    let t = Instant::now();
    runner::sync()?;
    phase("sync_s", t);
    let run = match runner.run(side, op.name, cmd, true)? {
        Outcome::Done(mut v) => {
            if work.is_some() {
                let idx = base::file_len(&container.join("packs.idx"))
                    + base::file_len(&container.join("packs.idx-wal"));
                v["index_bytes_after"] = json!(idx);
                v["packs_bytes_after"] = json!(crate::runner::du(&container.join("packs")));
            }
            SideRun::Done(v)
        }
        Outcome::Timeout(s) => SideRun::Timeout(s),
        Outcome::Failed(why) => SideRun::Failed(why),
    };
    if let Some(w) = &work {
        let t = Instant::now();
        runner::remove(w)?;
        phase("remove_s", t);
    }
    eprintln!(
        "  {:<14} {:<6} (untimed: {})",
        op.name,
        side.name(),
        prep.iter()
            .map(|(k, v)| format!("{k} {:.1}", v.as_f64().unwrap_or(f64::NAN)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(match run {
        SideRun::Done(mut v) => {
            v["preparation"] = Value::Object(prep);
            SideRun::Done(v)
        }
        other => other,
    })
}
