//! The comparison itself: the Python side checked, the data set, its archives and the inputs
//! prepared, every selected operation run on both sides and checked, and the report.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};
use dos_bench::archive::{self, ArchiveInfo};
use dos_bench::r#gen::Dataset;
use serde_json::Value;

use crate::args::RunArgs;
use crate::dataset::{data_root, load_dataset, repo_root};
use crate::expect::{Expect, check, expect};
use crate::inputs::{self, Inputs};
use crate::ops::{Api, Row, Side, select_rows};
use crate::probe::probe_text;
use crate::report::{Measured, Report, secs, write_json};
use crate::runner::Runner;

/// The comparison: every row selected by `--ops` on both sides, checked, then the report
/// printed (and written as JSON with `--json`); fails if any result was wrong.
pub fn compare(a: &RunArgs) -> Result<()> {
    let rows = select_rows(&a.ops, a.api)?;
    if a.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let python = resolve_python(&a.python)?;
    let mut pyver = python_version(&python)?;
    if a.api == Api::Python {
        pyver = format!(
            "{pyver}, dos_objectstore {}",
            dos_objectstore_version(&python)?
        );
    }

    let root = data_root(&a.data.data_dir);
    // Archives (and the data set) are made by a child process, so that this parent stays small
    // (a child's ru_maxrss starts from the parent's peak at exec).
    let mut levels: Vec<u32> = rows.iter().filter_map(|r| r.archive).collect();
    levels.sort_unstable();
    levels.dedup();
    for &level in &levels {
        make_archive(a, &root, level)?;
    }
    let ds = load_dataset(&root, a.data.gen_options())?;
    let ds_dir = fs::canonicalize(&ds.dir)?;
    let archives = cached_archives(&ds, &levels)?;
    let runs = root.join(format!("runs-n{}-s{}", a.data.n, a.data.seed));
    fs::create_dir_all(&runs)?;
    let runs = fs::canonicalize(&runs)?;
    let inp = inputs::prepare(a, &ds, &ds_dir, &runs)?;

    let runner = Runner {
        python,
        script: Path::new(env!("CARGO_MANIFEST_DIR")).join("python/dos_bench.py"),
        exe: std::env::current_exe()?,
        runs,
        dataset: ds_dir.clone(),
        api: a.api,
        compression: a.compression.clone(),
    };
    let probes = if a.no_probes {
        None
    } else {
        eprintln!("== machine probes");
        let l6 = levels
            .iter()
            .find(|&&l| l > 0)
            .map(|&l| archive::archive_path(&ds_dir, l));
        let p = runner.probe(
            a.probe_write_mib,
            a.probe_write_runs,
            l6.as_deref().map(|p| (p, a.probe_mb)),
        )?;
        eprint!("{}", probe_text(&p));
        Some(p)
    };

    let mut report = Report::new(a.api);
    for row in &rows {
        let m = measure(&runner, row, &inp, a)?;
        report.add(row, &inp, &m, probes.as_ref(), &archives)?;
        runner.clean_up(row)?;
    }
    let (seed, repeat) = (a.data.seed, a.repeat);
    report.print(&inp, seed, repeat, probes.as_ref(), &archives);
    if let Some(path) = &a.json {
        let doc = report.json(&inp, seed, repeat, &pyver, probes.as_ref(), &archives);
        write_json(path, &doc)?;
    }
    if !report.all_ok() {
        bail!("some results were wrong; no ratio was printed for them");
    }
    Ok(())
}

/// The Python interpreter: `--python`, else `.venv/bin/python` in the repository if it exists,
/// else `$DOS_PYTHON`.
pub fn resolve_python(arg: &Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = arg {
        return Ok(p.clone());
    }
    let venv = repo_root().join(".venv/bin/python");
    if venv.exists() {
        return Ok(venv);
    }
    if let Some(p) = std::env::var_os("DOS_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    bail!(
        "no Python found: pass --python, create {} (python3 -m venv .venv && \
         .venv/bin/pip install disk-objectstore==1.5.0), or set DOS_PYTHON",
        venv.display()
    )
}

/// Check that `python` imports disk_objectstore; returns its version and Python's.
pub fn python_version(python: &Path) -> Result<String> {
    let pyver = Command::new(python)
        .args([
            "-c",
            "import sys, disk_objectstore as d; print(d.__version__, sys.version.split()[0])",
        ])
        .output()
        .with_context(|| format!("run {}", python.display()))?;
    if !pyver.status.success() {
        bail!(
            "{} cannot import disk_objectstore: {}",
            python.display(),
            String::from_utf8_lossy(&pyver.stderr)
        );
    }
    let pyver = String::from_utf8_lossy(&pyver.stdout).trim().to_string();
    eprintln!(
        "python {} (disk-objectstore, Python: {pyver})",
        python.display()
    );
    Ok(pyver)
}

/// Check that `python` imports dos_objectstore (`pip install ./crates/dos-py`); returns its
/// version.
fn dos_objectstore_version(python: &Path) -> Result<String> {
    let out = Command::new(python)
        .args(["-c", "import dos_objectstore as d; print(d.__version__)"])
        .output()
        .with_context(|| format!("run {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "{} cannot import dos_objectstore (install it with `{} -m pip install ./crates/dos-py`): {}",
            python.display(),
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Generate (or reuse) the data set's archive of deflate level `level` under `root`, in a child
/// process (`gen-archive`, its output on stderr).
fn make_archive(a: &RunArgs, root: &Path, level: u32) -> Result<()> {
    eprintln!("== archive (level {level})");
    let st = Command::new(std::env::current_exe()?)
        .arg("gen-archive")
        .arg("--n")
        .arg(a.data.n.to_string())
        .arg("--seed")
        .arg(a.data.seed.to_string())
        .arg("--data-dir")
        .arg(root)
        .arg("--level")
        .arg(level.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .context("run gen-archive")?;
    if !st.success() {
        bail!("gen-archive --level {level} failed: {st}");
    }
    Ok(())
}

/// The descriptions of the archives of `levels` of `ds` (made before by [`make_archive`]).
fn cached_archives(ds: &Dataset, levels: &[u32]) -> Result<BTreeMap<u32, ArchiveInfo>> {
    let mut archives = BTreeMap::new();
    for &level in levels {
        let info = archive::cached(ds, level)?
            .ok_or_else(|| anyhow!("the archive of level {level} is missing after gen-archive"))?;
        archives.insert(level, info);
    }
    Ok(archives)
}

/// Run `row` `--repeat` times on each side (alternating which side goes first), each run
/// checked; then check all runs again and the sides against each other.
fn measure(runner: &Runner, row: &Row, inp: &Inputs, a: &RunArgs) -> Result<Measured> {
    eprintln!("== {}", row.label);
    if row.op == "loose" {
        runner.remove_loose()?;
        runner.quiet_inodes(a.inode_quiet_secs)?;
    }
    let e = expect(row, inp);
    let mut per_side: [(Side, Vec<Value>); 2] =
        [(Side::Python, Vec::new()), (Side::Dos, Vec::new())];
    for rep in 0..a.repeat {
        let order = if rep % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let side = per_side[k].0;
            let v = run_checked(runner, row, side, rep, inp, &e)?;
            per_side[k].1.push(v);
        }
    }
    let [(_, python), (_, dos)] = per_side;
    let problems = problems(row, &e, &python, &dos);
    Ok(Measured {
        python,
        dos,
        objects: e.objects,
        problems,
    })
}

/// One run of `row` on `side` (repetition `rep`), reported with what is wrong with it against
/// `e`; a checked import container is removed, a right written container marked as checked.
fn run_checked(
    runner: &Runner,
    row: &Row,
    side: Side,
    rep: usize,
    inp: &Inputs,
    e: &Expect,
) -> Result<Value> {
    runner.ensure_source(row, side, inp)?;
    let v = runner.run(row, side, rep, inp)?;
    let bad = check(&v, e);
    eprintln!(
        "  {:<6} run {}: {:.3} s{}",
        side.name(),
        rep + 1,
        secs(&v),
        if bad.is_empty() {
            String::new()
        } else {
            format!("  WRONG: {}", bad.join("; "))
        }
    );
    if row.op == "import" {
        // Checked: not needed any more (and as large as the data set).
        runner.remove_container(&runner.container(row, side), false)?;
    } else if row.writes && bad.is_empty() {
        fs::write(runner.container(row, side).with_extension("ok"), b"ok\n")?;
    }
    Ok(v)
}

/// Everything wrong with the runs of `row` on both sides: each run against `e`, and the sides
/// against each other (they must agree, not only with the manifest).
fn problems(row: &Row, e: &Expect, python: &[Value], dos: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    for (side, runs) in [(Side::Python, python), (Side::Dos, dos)] {
        for v in runs {
            for b in check(v, e) {
                problems.push(format!("{}: {b}", side.name()));
            }
        }
    }
    for key in [
        "objects",
        "bytes",
        "keys_digest",
        "keyset_digest",
        "true_count",
        "packed_digest",
        "problems",
        "op_count",
        "op_bytes",
        "verified",
    ] {
        let vals: Vec<&Value> = python
            .iter()
            .chain(dos)
            .filter_map(|v| v.get(key))
            .collect();
        if vals.windows(2).any(|w| w[0] != w[1]) && key != "bytes" {
            problems.push(format!("sides disagree on {key}"));
        }
        if key == "bytes"
            && matches!(row.op, "read" | "get-one" | "get-content" | "size")
            && vals.windows(2).any(|w| w[0] != w[1])
        {
            problems.push("sides read different byte totals".into());
        }
    }
    problems
}
