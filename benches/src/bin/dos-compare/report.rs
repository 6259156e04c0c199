//! The report of a comparison: the markdown tables printed at the end, and the JSON results.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use dos_bench::archive::ArchiveInfo;
use serde_json::{Value, json};

use crate::inputs::Inputs;
use crate::ops::{Api, Row, Side};
use crate::probe::probe_text;

/// The runs of one row on both sides and what was wrong with them.
pub struct Measured {
    /// Results of the Python side, one per run.
    pub python: Vec<Value>,
    /// Results of the dos side, one per run.
    pub dos: Vec<Value>,
    /// Objects the row's operation handles (what the results must report).
    pub objects: u64,
    /// Problems of the results (empty when every run was right and the sides agree).
    pub problems: Vec<String>,
}

/// A limit of the machine an operation is related to: its name, dos's rate (MB/s) and the
/// limit's rate (MB/s, if probed).
type Limit = (&'static str, f64, Option<f64>);

/// The figures of one row: the median run of each side and what follows from them.
struct Figures<'a> {
    /// The Python side's median run.
    py: &'a Value,
    /// The dos side's median run.
    dos: &'a Value,
    /// Bytes the operation handles (0: not reported).
    bytes: u64,
    /// Seconds of the Python side's median run.
    pys: f64,
    /// Seconds of the dos side's median run.
    doss: f64,
    /// Median over the Python runs of (operation + fsync of its packs), for ops writing packs.
    py_fsync: Option<f64>,
    /// `validate` against the machine's two-core hash (+ inflate) throughput.
    limit: Option<Limit>,
    /// An import against the two-core limit of its checks, with the archive's level.
    import_limit: Option<(u32, Limit)>,
}

/// The tables and JSON rows of a comparison, row by row.
pub struct Report {
    /// The main table: times, ratios, rates and peak memory.
    table: String,
    /// `validate` against the machine's limits.
    limits: String,
    /// Imports against the machine's limits.
    imports: String,
    /// Memory and sizes of each side.
    memtab: String,
    /// The time of every run.
    spread: String,
    /// The JSON rows (every run).
    results: Vec<Value>,
    /// Whether every row was right.
    all_ok: bool,
    /// The API measured (the sides' names, which peak figure is compared).
    api: Api,
}

impl Report {
    /// An empty report (the tables' headers) of a comparison of `api`.
    pub fn new(api: Api) -> Self {
        let (py, dos) = (api.side_label(Side::Python), api.side_label(Side::Dos));
        Report {
            table: format!(
                "| operation | objects | MB | {py} s | {dos} s | ratio | {py}+fsync s | \
                 ratio at equal durability | {dos} objects/s | {dos} MB/s | {py} peak RSS MB | \
                 {dos} peak RSS MB |\n\
                 |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            ),
            limits: String::from(
                "| operation | dos MB/s (bytes validated / dos s) | two-core limit | limit MB/s | \
                 % of limit |\n|---|---:|---|---:|---:|\n",
            ),
            imports: String::from(
                "| operation | archive | archive MB | dos MB/s (uncompressed bytes imported / dos s) | \
                 dos passthrough | two-core limit | limit MB/s | % of limit |\n\
                 |---|---|---:|---:|---:|---|---:|---:|\n",
            ),
            memtab: String::from(
                "| operation | side | RSS at start MB | peak during op MB | process peak MB | packs MB | packs.idx MB |\n\
                 |---|---|---:|---:|---:|---:|---:|\n",
            ),
            spread: String::from("| operation | side | seconds of each run |\n|---|---|---|\n"),
            results: Vec::new(),
            all_ok: true,
            api,
        }
    }

    /// Whether every row added was right.
    pub fn all_ok(&self) -> bool {
        self.all_ok
    }

    /// Add the row `row` measured as `m` on the data set `inp` to every table and to the JSON
    /// rows (a wrong row gets no figures).
    pub fn add(
        &mut self,
        row: &Row,
        inp: &Inputs,
        m: &Measured,
        probes: Option<&Value>,
        archives: &BTreeMap<u32, ArchiveInfo>,
    ) -> Result<()> {
        let f = figures(row, inp, m, probes)?;
        self.add_main(row, m, &f);
        self.add_memory(row, &f);
        note_inherited_rss(f.py);
        // The machine's limits relate dos-core's own rates; the Python API reports none.
        if m.problems.is_empty() && self.api == Api::Rust {
            self.add_limits(row, &f, archives);
        }
        self.results.push(json_row(row, m, &f));
        self.add_spread(row, m);
        Ok(())
    }

    /// The main table's line of `row` (WRONG instead of figures if anything was wrong).
    fn add_main(&mut self, row: &Row, m: &Measured, f: &Figures) {
        let label = if row.label == "pack" {
            "pack (dos skip_existing=false; Python no_holes=False)"
        } else if row.label == "pack, dedup" {
            "pack, dedup (dos skip_existing=true; Python no_holes=True)"
        } else {
            row.label
        };
        let objects = m.objects;
        if !m.problems.is_empty() {
            self.all_ok = false;
            let _ = writeln!(
                self.table,
                "| {label} | {objects} | - | WRONG | WRONG | - | - | - | - | - | - | - |"
            );
            eprintln!(
                "  WRONG RESULT for {}: {}",
                row.label,
                m.problems.join("; ")
            );
            return;
        }
        let (pys, doss) = (f.pys, f.doss);
        let mb = f.bytes as f64 / 1e6;
        let _ = writeln!(
            self.table,
            "| {label} | {objects} | {} | {pys:.2} | {doss:.2} | {:.1}× | {} | {} | {:.0} | {} | {} | {} |",
            if f.bytes > 0 {
                format!("{mb:.1}")
            } else {
                "-".into()
            },
            pys / doss,
            f.py_fsync.map_or("-".into(), |t| format!("{t:.2}")),
            f.py_fsync
                .map_or("-".into(), |t| format!("{:.1}×", t / doss)),
            objects as f64 / doss,
            if f.bytes > 0 {
                format!("{:.0}", mb / doss)
            } else {
                "-".into()
            },
            // Both sides' Python processes report VmHWM; ru_maxrss is the Python side's figure
            // against a dos-core child (checked against VmHWM by `note_inherited_rss`).
            mb_of_kb(
                f.py,
                match self.api {
                    Api::Rust => "ru_maxrss_kb",
                    Api::Python => "peak_rss_kb",
                }
            ),
            mb_of_kb(f.dos, "peak_rss_kb"),
        );
    }

    /// The memory table's lines of `row`, one per side.
    fn add_memory(&mut self, row: &Row, f: &Figures) {
        for (side, v) in [(Side::Python, f.py), (Side::Dos, f.dos)] {
            let name = self.api.side_label(side);
            let mbb = |k: &str| {
                v.get(k)
                    .and_then(Value::as_u64)
                    .map_or("-".into(), |b| format!("{:.1}", b as f64 / 1e6))
            };
            let _ = writeln!(
                self.memtab,
                "| {} | {} | {} | {} | {} | {} | {} |",
                row.label,
                name,
                mb_of_kb(v, "rss_start_kb"),
                mb_of_kb(v, "op_peak_rss_kb"),
                mb_of_kb(v, "peak_rss_kb"),
                mbb("packs_bytes"),
                mbb("index_bytes"),
            );
        }
    }

    /// The lines of `row` in the tables of limits (imports, `validate`), for a right row.
    fn add_limits(&mut self, row: &Row, f: &Figures, archives: &BTreeMap<u32, ArchiveInfo>) {
        let percent = |lim: Option<f64>, rate: f64| {
            (
                lim.map_or("-".into(), |l| format!("{l:.0}")),
                lim.map_or("-".into(), |l| format!("{:.0} %", 100.0 * rate / l)),
            )
        };
        if let Some((level, (name, rate, lim))) = f.import_limit {
            let (lim, pct) = percent(lim, rate);
            let _ = writeln!(
                self.imports,
                "| {} | level {level} | {} | {rate:.0} | {} | {name} | {lim} | {pct} |",
                row.label,
                archives.get(&level).map_or("-".into(), |i| format!(
                    "{:.1}",
                    i.archive_bytes as f64 / 1e6
                )),
                f.dos
                    .get("passthrough")
                    .and_then(Value::as_u64)
                    .map_or("-".into(), |n| n.to_string()),
            );
        }
        if let Some((name, rate, lim)) = f.limit {
            let (lim, pct) = percent(lim, rate);
            let _ = writeln!(
                self.limits,
                "| {} | {rate:.0} | {name} | {lim} | {pct} |",
                row.label,
            );
        }
    }

    /// The spread table's lines of `row`: the seconds of every run, one line per side.
    fn add_spread(&mut self, row: &Row, m: &Measured) {
        for (side, v) in [(Side::Python, &m.python), (Side::Dos, &m.dos)] {
            let times: Vec<String> = v.iter().map(|r| format!("{:.2}", secs(r))).collect();
            let _ = writeln!(
                self.spread,
                "| {} | {} | {} |",
                row.label,
                self.api.side_label(side),
                times.join(", ")
            );
        }
    }

    /// Print the report: the data set, the probes and every table with rows.
    pub fn print(
        &self,
        inp: &Inputs,
        seed: u64,
        repeat: usize,
        probes: Option<&Value>,
        archives: &BTreeMap<u32, ArchiveInfo>,
    ) {
        println!(
            "\n{} objects ({:.1} MB, {} unique, {:.1} MB unique), seed {}; loose: first {} files \
             ({:.1} MB); has: {} keys; median of {} run(s) per side\n",
            inp.n,
            inp.total_bytes as f64 / 1e6,
            inp.unique,
            inp.unique_bytes as f64 / 1e6,
            seed,
            inp.loose_n,
            inp.loose_bytes as f64 / 1e6,
            inp.has_n,
            repeat
        );
        if let Some(p) = probes {
            println!("{}", probe_text(p));
        }
        println!("{}", self.table);
        if self.limits.lines().count() > 2 {
            println!("{}", self.limits);
        }
        if self.imports.lines().count() > 2 {
            for (level, i) in archives {
                println!(
                    "archive level {level}: {} repo entries, {:.1} MB uncompressed, {:.1} MB \
                     stored in the zip, {} nodes in db.sqlite3 ({:.1} MB), {:.1} MB file, zip64 {}",
                    i.repo_entries,
                    i.repo_bytes as f64 / 1e6,
                    i.repo_stored_bytes as f64 / 1e6,
                    i.nodes,
                    i.db_bytes as f64 / 1e6,
                    i.archive_bytes as f64 / 1e6,
                    if i.zip64 { "yes" } else { "no" }
                );
            }
            println!("\n{}", self.imports);
        }
        println!("{}", self.memtab);
        println!("{}", self.spread);
    }

    /// The JSON document of all results (every run), with the data set, the Python version
    /// `python`, the probes and the archives.
    pub fn json(
        &self,
        inp: &Inputs,
        seed: u64,
        repeat: usize,
        python: &str,
        probes: Option<&Value>,
        archives: &BTreeMap<u32, ArchiveInfo>,
    ) -> Value {
        json!({
            "n": inp.n,
            "seed": seed,
            "total_bytes": inp.total_bytes,
            "unique": inp.unique,
            "unique_bytes": inp.unique_bytes,
            "loose_n": inp.loose_n,
            "has_n": inp.has_n,
            "repeat": repeat,
            "python": python,
            "probes": probes,
            "archives": archives,
            "rows": self.results,
        })
    }
}

/// Write the JSON document `doc` to `path`.
pub fn write_json(path: &Path, doc: &Value) -> Result<()> {
    fs::write(path, serde_json::to_string_pretty(doc)?)
        .with_context(|| format!("write {}", path.display()))?;
    eprintln!("results written to {}", path.display());
    Ok(())
}

/// The figures of `row` from the runs `m` on the data set `inp`, related to the machine `probes`.
fn figures<'a>(
    row: &Row,
    inp: &Inputs,
    m: &'a Measured,
    probes: Option<&Value>,
) -> Result<Figures<'a>> {
    let (Some(py), Some(dos)) = (median_run(&m.python), median_run(&m.dos)) else {
        bail!("no runs");
    };
    let bytes = match row.op {
        "loose" => inp.loose_bytes,
        "pack" | "pack-files" => inp.total_bytes,
        "read" | "get-one" | "get-content" | "size" | "pack-loose" | "validate" | "import" => {
            inp.unique_bytes
        }
        "repack" => inp.surviving_bytes,
        _ => 0,
    };
    let doss = secs(dos);
    let probed = |key: &str| probes.and_then(|p| p.get(key)).and_then(Value::as_f64);
    let rate_of = |k: &str| dos.get(k).and_then(Value::as_u64).unwrap_or(0) as f64 / 1e6 / doss;
    // Validation against the machine's two-core hash (+ inflate) throughput.
    let limit = (row.op == "validate").then(|| {
        let (name, key) = if row.compress || row.container.ends_with("-z") {
            ("inflate + SHA-256", "inflate_sha256_2core_mbs")
        } else {
            ("SHA-256", "sha256_2core_mbs")
        };
        (name, rate_of("bytes_checked"), probed(key))
    });
    // Import against the two-core limit of its checks: inflate + SHA-256 of the archive's own
    // deflate streams (SHA-256 alone for the STORED archive).
    let import_limit = row.archive.map(|level| {
        let (name, key) = if level == 0 {
            ("SHA-256", "sha256_2core_mbs")
        } else {
            (
                "inflate + SHA-256 (archive's deflate streams)",
                "archive_inflate_sha256_2core_mbs",
            )
        };
        (level, (name, rate_of("op_bytes"), probed(key)))
    });
    Ok(Figures {
        py,
        dos,
        bytes,
        pys: secs(py),
        doss,
        py_fsync: row.fsync.then(|| python_plus_fsync(&m.python)).flatten(),
        limit,
        import_limit,
    })
}

/// Python with the pack fsyncs it skips: median over `runs` of (operation + fsync), if known.
fn python_plus_fsync(runs: &[Value]) -> Option<f64> {
    let mut t: Vec<f64> = runs
        .iter()
        .map(|v| {
            secs(v)
                + v.get("fsync_seconds")
                    .and_then(Value::as_f64)
                    .unwrap_or(f64::NAN)
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t.get(t.len().saturating_sub(1) / 2)
        .copied()
        .filter(|x| x.is_finite())
}

/// ru_maxrss also counts the image a process was exec'ed from; the parent is kept small so that
/// it does not matter, and this checks it against the Python process's own VmHWM (`py`).
fn note_inherited_rss(py: &Value) {
    if let (Some(ru), Some(hwm)) = (
        py.get("ru_maxrss_kb").and_then(Value::as_u64),
        py.get("peak_rss_kb").and_then(Value::as_u64),
    ) && ru > hwm + hwm / 20
    {
        eprintln!(
            "  note: python ru_maxrss {} MB > VmHWM {} MB (inherited from the parent at exec)",
            ru / 1024,
            hwm / 1024
        );
    }
}

/// The JSON row of `row`: its figures, problems and every run of both sides.
fn json_row(row: &Row, m: &Measured, f: &Figures) -> Value {
    json!({
        "operation": row.label,
        "objects": m.objects,
        "bytes": f.bytes,
        "ok": m.problems.is_empty(),
        "problems": m.problems,
        "python_plus_fsync_s": f.py_fsync,
        "ratio_at_equal_durability": f.py_fsync.map(|t| t / f.doss),
        "validate_limit": f.limit.map(|(name, rate, lim)| json!({
            "limit": name,
            "dos_mbs": rate,
            "limit_mbs": lim,
            "fraction_of_limit": lim.map(|l| rate / l),
        })),
        "import_limit": f.import_limit.map(|(level, (name, rate, lim))| json!({
            "archive_level": level,
            "limit": name,
            "dos_mbs": rate,
            "limit_mbs": lim,
            "fraction_of_limit": lim.map(|l| rate / l),
        })),
        "python": m.python,
        "dos": m.dos,
    })
}

/// The median run of `runs` by seconds.
fn median_run(runs: &[Value]) -> Option<&Value> {
    let mut v: Vec<&Value> = runs.iter().collect();
    v.sort_by(|a, b| secs(a).total_cmp(&secs(b)));
    v.get((v.len().saturating_sub(1)) / 2).copied()
}

/// The timed seconds of a run (NaN if missing).
pub fn secs(v: &Value) -> f64 {
    v.get("seconds").and_then(Value::as_f64).unwrap_or(f64::NAN)
}

/// The KiB figure `k` of `v` in MiB, as text (`-` if missing).
fn mb_of_kb(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_u64)
        .map_or("-".into(), |kb| format!("{:.0}", kb as f64 / 1024.0))
}
