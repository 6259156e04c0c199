//! `dos-compare`: dos-core against Python disk-objectstore on the same generated data set.
//!
//! Every measurement runs in its own fresh process (the Python side through
//! `benches/python/dos_bench.py`, the dos side by re-invoking this binary with the hidden `child`
//! subcommand), on identical inputs and a fresh container. A child times only the operation and
//! reports that time, its result (counts, bytes, key digests) and its memory figures as one JSON
//! line. The parent checks both results against the manifest and against each other, and refuses
//! to print a ratio for a wrong result.
//!
//! Maintenance operations start from copies of one base container per data set (initialised by
//! Python, filled by dos, built once and untimed), so both sides start from identical bytes:
//! `pack-loose`/`pack-loose-z` pack a container holding every file as a loose object, `repack`
//! rewrites a packed container after each side deleted every 10th key (untimed, with its own
//! `delete_objects`), `validate`/`validate-z` check each side's container of `pack`/`pack-z`.
//!
//! Python disk-objectstore 1.5 never fsyncs its pack files on Linux; for every operation that
//! writes packs its child also times `os.fsync` of every pack file afterwards, and the table shows
//! that figure and the ratio at equal durability next to the plain one.
//!
//! Archive imports (`import`, `import-z`, `import-l0`) read an AiiDA archive made from the data
//! set (`gen-archive`, see `dos_bench::archive`: unique objects in data-set order, deflate level 6
//! or all STORED, aiida's entry and central-directory order, zip64 beyond 65,535 entries), built
//! once in a child process and cached next to the data set. The dos side is
//! `dos_archive::import_archive` into a fresh container (`import`: uncompressed packs; `import-z`:
//! compressed packs, the archive's deflate streams passed through; `import-l0`: the STORED
//! archive); the Python side is the best Python way: `zipfile.ZipFile`, the `repo/<hex>` entries
//! read in archive order and streamed into a fresh container with `add_streamed_objects_to_pack`
//! in batches of 50 MB / 5,000 objects, each returned key checked against the entry name, one
//! commit at the end. Before each run the archive is read once (untimed), so both sides read it
//! from the page cache. Both containers are checked (count, bytes, key set, a strided sample read
//! back and hashed) and deleted after each run.
//!
//! Before the operations a probe child measures the machine: SHA-256, zlib inflate and zlib
//! compression throughput (the container's own codec: libdeflate) on a sample of the data set (one
//! core and two), raw inflate with libdeflate (+ SHA-256) of a sample of the archive's own deflate streams when an import is selected, and
//! sequential write + fdatasync throughput in the data folder. `validate` and import rows are
//! related to those limits.
//!
//! ```text
//! cargo run --release -p dos-bench --bin dos-compare -- [--n 100000] [--data-dir bench-data]
//!     [--python .venv/bin/python] [--ops all|maintenance|archive|loose,pack,pack-z,read,read-z,
//!     has,pack-files,pack-loose,pack-loose-z,validate,validate-z,repack,import,import-z,
//!     import-l0] [--repeat 1] [--json out.json] [--no-probes]
//! cargo run --release -p dos-bench --bin dos-compare -- gen --n 100000   # data set statistics
//! cargo run --release -p dos-bench --bin dos-compare -- gen-archive --n 100000 [--level 6]
//! ```
//!
//! Large cases (the 840,000-object archive of about 12 GB, see `aiida-archive.md` §4) need about
//! 13 GB for the data set, a few GB per archive and room for one imported container at a time:
//! keep them outside the repository with `--data-dir /path/outside`, e.g.
//!
//! ```text
//! dos-compare gen-archive --n 840000 --data-dir /data/dos-bench     # once (data set + archive)
//! dos-compare --n 840000 --data-dir /data/dos-bench --ops archive --json n840k-import.json
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use dos_bench::archive;
use dos_bench::r#gen::{Dataset, GenOptions, Kind, Plan, Rng};
use dos_bench::rss;
use dos_core::codec::{Compressor, Decompressor};
use dos_core::maintain::{PackLooseOptions, RepackOptions, ValidateOptions};
use dos_core::{
    CompressMode, Container, HashType, InitOptions, NoProgress, ObjectContent, ObjectKey,
    ObjectSource, ObjectType, PackWriteOptions, ZlibLevel,
};
use rayon::prelude::*;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(
    name = "dos-compare",
    about = "Compare dos-core with Python disk-objectstore on a generated AiiDA-like data set",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Generate (or reuse) the data set and print its statistics.
    Gen(GenArgs),
    /// Generate (or reuse) the data set and its AiiDA archive `<data set>/archive-l<level>.aiida`.
    GenArchive(GenArchiveArgs),
    /// Run one timed dos operation (used by the comparison itself).
    #[command(hide = true)]
    Child(ChildArgs),
}

#[derive(Args, Debug)]
struct GenArgs {
    /// Number of objects.
    #[arg(long, default_value_t = 100_000)]
    n: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Root folder of data sets and containers (default: `bench-data` in the repository).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct GenArchiveArgs {
    /// Number of objects of the data set (the archive holds its unique ones).
    #[arg(long, default_value_t = 100_000)]
    n: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Root folder of data sets and containers (default: `bench-data` in the repository). Large
    /// cases (840k) belong outside the repository.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Deflate level of the entries (0: all STORED, as `verdi archive import`'s migration writes).
    #[arg(long, default_value_t = 6)]
    level: u32,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Number of objects.
    #[arg(long, default_value_t = 100_000)]
    n: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Root folder of data sets and containers (default: `bench-data` in the repository).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Python interpreter with disk-objectstore installed (default: `.venv/bin/python` in the
    /// repository if it exists, else `$DOS_PYTHON`).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Operations, comma-separated: all (= loose,pack,pack-z,read,read-z,has), maintenance (=
    /// pack-loose,pack-loose-z,validate,validate-z,repack), archive (= import,import-z), loose,
    /// pack, pack-z, pack-files, read, read-z, has, pack-loose, pack-loose-z, validate,
    /// validate-z, repack, import, import-z, import-l0.
    #[arg(long, default_value = "all")]
    ops: String,
    /// Files added by the `loose` operation (the first ones of the data set).
    #[arg(long, default_value_t = 20_000)]
    loose_n: usize,
    /// Keys queried by the `has` operation.
    #[arg(long, default_value_t = 1_000_000)]
    has_n: usize,
    /// Runs per side and operation; the median time is reported.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Before loose runs, wait until this many seconds have passed since the last deletion of
    /// loose containers (ext4 creates files slowly right after many were deleted).
    #[arg(long, default_value_t = 90)]
    inode_quiet_secs: u64,
    /// Write all results (every run) to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Skip the machine probes (hash, inflate, compress and disk throughput).
    #[arg(long)]
    no_probes: bool,
    /// Megabytes of the data set's unique content (an evenly strided sample) used by the CPU
    /// probes.
    #[arg(long, default_value_t = 256)]
    probe_mb: u64,
    /// MiB written by the sequential write + fdatasync probe.
    #[arg(long, default_value_t = 1024)]
    probe_write_mib: u64,
    /// Runs of the write + fdatasync probe (the median is reported; the disk varies).
    #[arg(long, default_value_t = 3)]
    probe_write_runs: usize,
}

#[derive(Args, Debug)]
struct ChildArgs {
    /// loose, pack, pack-files, read, has, pack-loose, validate, repack, import, delete (untimed
    /// preparation) or probe (machine probes; `--container` is then the folder to write in).
    op: String,
    /// The container folder (created by write operations unless `--existing`).
    #[arg(long)]
    container: PathBuf,
    /// One path (write operations, probe) or key (read, has, delete) per line.
    #[arg(long)]
    list: Option<PathBuf>,
    /// Keys whose packed state `pack-loose` reports afterwards, or that `import` reads back and
    /// hashes afterwards (untimed).
    #[arg(long)]
    keys: Option<PathBuf>,
    /// `import`: the archive; `probe`: an archive whose deflate streams are sampled.
    #[arg(long)]
    archive: Option<PathBuf>,
    /// Probe: megabytes (uncompressed) of the archive's entries sampled.
    #[arg(long, default_value_t = 256)]
    archive_probe_mb: u64,
    /// Write operations: open the existing container instead of creating one.
    #[arg(long)]
    existing: bool,
    /// Probe: MiB written by the write + fdatasync probe.
    #[arg(long, default_value_t = 1024)]
    write_mib: u64,
    /// Probe: runs of the write + fdatasync probe.
    #[arg(long, default_value_t = 3)]
    write_runs: usize,
    /// Compress packed objects.
    #[arg(long)]
    compress: bool,
    /// Skip objects already stored (`skip_existing`; Python's `no_holes=True`).
    #[arg(long)]
    dedup: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Some(Cmd::Child(a)) => child(&a),
        Some(Cmd::Gen(a)) => gen_stats(&a),
        Some(Cmd::GenArchive(a)) => gen_archive(&a),
        None => compare(&cli.run),
    }
}

fn repo_root() -> PathBuf {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
    bench.parent().unwrap_or(bench).to_path_buf()
}

fn data_root(arg: &Option<PathBuf>) -> PathBuf {
    arg.clone()
        .unwrap_or_else(|| repo_root().join("bench-data"))
}

fn dataset_dir(root: &Path, opts: GenOptions) -> PathBuf {
    root.join(format!("dataset-n{}-s{}", opts.n, opts.seed))
}

/// Generate or reuse the data set, reporting what happened.
fn load_dataset(root: &Path, opts: GenOptions) -> Result<Dataset> {
    let dir = dataset_dir(root, opts);
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let t = Instant::now();
    let (ds, reused) = Dataset::generate_or_reuse(&dir, opts)?;
    eprintln!(
        "data set {}: {} files, {:.1} MB ({} in {:.1} s)",
        dir.display(),
        ds.len(),
        ds.total_bytes() as f64 / 1e6,
        if reused { "reused" } else { "generated" },
        t.elapsed().as_secs_f64()
    );
    Ok(ds)
}

// ------------------------------------------------------------------------------------------------
// `gen`: statistics of a data set

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx]
}

fn gen_stats(a: &GenArgs) -> Result<()> {
    let opts = GenOptions {
        n: a.n,
        seed: a.seed,
    };
    let root = data_root(&a.data_dir);
    let ds = load_dataset(&root, opts)?;
    let plan = Plan::new(opts);
    let mut sizes: Vec<u64> = ds.entries.iter().map(|e| e.size).collect();
    sizes.sort_unstable();
    let uniq = ds.unique_indices();
    let unique_bytes: u64 = uniq.iter().map(|&i| ds.entries[i].size).sum();
    let tiny = sizes.iter().filter(|&&s| s < 100).count();
    let empty = sizes.iter().filter(|&&s| s == 0).count();
    let large = sizes.iter().filter(|&&s| s >= 2_000_000).count();
    println!("objects             {}", ds.len());
    println!(
        "total               {:.1} MB (mean {:.1} KB)",
        ds.total_bytes() as f64 / 1e6,
        ds.total_bytes() as f64 / ds.len().max(1) as f64 / 1e3
    );
    println!(
        "unique              {} ({:.1} % duplicates), {:.1} MB",
        uniq.len(),
        100.0 * (1.0 - uniq.len() as f64 / ds.len().max(1) as f64),
        unique_bytes as f64 / 1e6
    );
    println!(
        "size median/p90/p99 {} / {} / {} B, max {} B",
        percentile(&sizes, 0.5),
        percentile(&sizes, 0.9),
        percentile(&sizes, 0.99),
        sizes.last().copied().unwrap_or(0)
    );
    println!("empty / <100 B      {empty} / {tiny}");
    println!("2-8 MB objects      {large}");
    let mut by_kind: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for &i in &uniq {
        let d = plan.desc(i);
        let e = by_kind.entry(d.kind.name()).or_default();
        e.0 += 1;
        e.1 += d.size;
    }
    for (k, (n, b)) in &by_kind {
        println!("kind {k:<14} {n} unique objects, {:.1} MB", *b as f64 / 1e6);
    }
    // Compressibility of each kind, on a sample, with the container's own compressor.
    let mut comp = dos_core::codec::Compressor::new(dos_core::ZlibLevel::DEFAULT);
    for kind in [Kind::Text, Kind::Json, Kind::Numpy, Kind::Random] {
        let (mut raw, mut z) = (0u64, 0u64);
        for &i in uniq
            .iter()
            .filter(|&&i| plan.desc(i).kind == kind)
            .take(500)
        {
            let c = plan.content(i);
            raw += c.len() as u64;
            z += comp.compress(&c).len() as u64;
        }
        if raw > 0 {
            println!(
                "zlib+1 ratio {:<7} {:.3} (sample of {:.1} MB)",
                kind.name(),
                z as f64 / raw as f64,
                raw as f64 / 1e6
            );
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// `gen-archive`: the data set's AiiDA archive

fn gen_archive(a: &GenArchiveArgs) -> Result<()> {
    let opts = GenOptions {
        n: a.n,
        seed: a.seed,
    };
    let root = data_root(&a.data_dir);
    let ds = load_dataset(&root, opts)?;
    let t = Instant::now();
    let (info, reused) = archive::generate_or_reuse(&ds, a.level)?;
    let path = archive::archive_path(&ds.dir, a.level);
    eprintln!(
        "archive {} ({} in {:.1} s)",
        path.display(),
        if reused { "reused" } else { "generated" },
        t.elapsed().as_secs_f64()
    );
    println!("archive             {}", path.display());
    println!(
        "repo entries        {} ({:.1} MB uncompressed, {:.1} MB in the zip: {:.3})",
        info.repo_entries,
        info.repo_bytes as f64 / 1e6,
        info.repo_stored_bytes as f64 / 1e6,
        info.repo_stored_bytes as f64 / info.repo_bytes.max(1) as f64
    );
    println!(
        "level               {} ({})",
        info.level,
        if info.level == 0 {
            "all entries STORED"
        } else {
            "repo entries and db.sqlite3 deflated, metadata.json STORED"
        }
    );
    println!(
        "db.sqlite3          {} nodes, {:.1} MB",
        info.nodes,
        info.db_bytes as f64 / 1e6
    );
    println!(
        "archive size        {:.1} MB, zip64 end records: {}",
        info.archive_bytes as f64 / 1e6,
        if info.zip64 { "yes" } else { "no" }
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// The child: one timed dos operation

fn read_lines(path: &Path) -> Result<Vec<String>> {
    let f = fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut v = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line?;
        if !line.trim().is_empty() {
            v.push(line);
        }
    }
    Ok(v)
}

/// Hex SHA-256 of the keys, each followed by a newline (the same digest the Python side makes).
fn digest<S: AsRef<str>>(keys: &[S]) -> String {
    let mut h = HashType::Sha256.hasher();
    for k in keys {
        h.update(k.as_ref().as_bytes());
        h.update(b"\n");
    }
    h.finalize().to_string()
}

/// The keys of `items` (hex, one per list line) for `c`.
fn keys_of(c: &Container, items: &[String]) -> Result<Vec<ObjectKey>> {
    Ok(items
        .iter()
        .map(|k| c.parse_key(k))
        .collect::<Result<_, _>>()?)
}

/// Keys as hex text.
fn hex_keys(keys: &[ObjectKey]) -> Vec<String> {
    keys.iter().map(ToString::to_string).collect()
}

/// Memory state at the start of a timed section.
struct MemStart {
    peak_before: Option<u64>,
    rss_start: Option<u64>,
    reset: bool,
}

fn op_start() -> MemStart {
    let peak_before = rss::peak_kb();
    let rss_start = rss::current_kb();
    MemStart {
        peak_before,
        rss_start,
        reset: rss::reset_peak(),
    }
}

fn op_end(m: &MemStart, out: &mut serde_json::Map<String, Value>) {
    let hwm = rss::peak_kb();
    let peak = match (m.peak_before, hwm) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    out.insert("peak_rss_kb".into(), json!(peak));
    out.insert("rss_start_kb".into(), json!(m.rss_start));
    out.insert(
        "op_peak_rss_kb".into(),
        json!(if m.reset { hwm } else { None }),
    );
}

fn child(a: &ChildArgs) -> Result<()> {
    let items = match &a.list {
        Some(p) => read_lines(p)?,
        None => Vec::new(),
    };
    let mut out = serde_json::Map::new();
    out.insert("side".into(), json!("dos"));
    out.insert("op".into(), json!(a.op));
    out.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    let seconds;
    let mem;
    match a.op.as_str() {
        "loose" => {
            let c = open_or_init(a)?;
            let paths: Vec<PathBuf> = items.iter().map(PathBuf::from).collect();
            mem = op_start();
            let t = Instant::now();
            let written = c.add_files_loose(&paths, &NoProgress)?;
            seconds = t.elapsed().as_secs_f64();
            let keys: Vec<String> = written.iter().map(|w| w.key.to_string()).collect();
            out.insert("objects".into(), json!(written.len()));
            out.insert(
                "bytes".into(),
                json!(written.iter().map(|w| w.size).sum::<u64>()),
            );
            out.insert("keys_digest".into(), json!(digest(&keys)));
        }
        "pack" | "pack-files" => {
            let c = open_or_init(a)?;
            let opts = PackWriteOptions {
                compress: if a.compress {
                    CompressMode::Yes
                } else {
                    CompressMode::No
                },
                skip_existing: a.dedup,
                ..Default::default()
            };
            let sources: Vec<ObjectSource> = if a.op == "pack" {
                let mut v = Vec::with_capacity(items.len());
                for p in &items {
                    v.push(ObjectSource::Bytes(
                        fs::read(p).with_context(|| format!("read {p}"))?,
                    ));
                }
                v
            } else {
                items
                    .iter()
                    .map(|p| ObjectSource::File(PathBuf::from(p)))
                    .collect()
            };
            let n = sources.len();
            let mut keys = vec![String::new(); n];
            mem = op_start();
            let t = Instant::now();
            let mut w = c.pack_writer(&opts, &NoProgress, |i, o| {
                keys[i] = o.key().map(|k| k.to_string()).unwrap_or_default();
            })?;
            for source in sources {
                w.push(source)?;
            }
            let summary = w.finish()?;
            seconds = t.elapsed().as_secs_f64();
            out.insert("objects".into(), json!(summary.objects));
            out.insert("bytes".into(), json!(summary.bytes_in));
            out.insert("keys_digest".into(), json!(digest(&keys)));
            out.insert("summary".into(), serde_json::to_value(&summary)?);
        }
        "read" => {
            let c = Container::open(&a.container)?;
            mem = op_start();
            let t = Instant::now();
            let mut total = 0u64;
            let mut count = 0u64;
            let mut big = Vec::new();
            let keys = keys_of(&c, &items)?;
            let missing = c.read_objects(&keys, |_k, content, _meta| {
                match content {
                    ObjectContent::Bytes(b) => total += b.len() as u64,
                    ObjectContent::Reader(r) => {
                        big.clear();
                        r.read_to_end(&mut big)
                            .map_err(|e| dos_core::Error::Source {
                                source_name: "object reader".into(),
                                source: e,
                            })?;
                        total += big.len() as u64;
                    }
                }
                count += 1;
                Ok(())
            })?;
            seconds = t.elapsed().as_secs_f64();
            out.insert("objects".into(), json!(count));
            out.insert("bytes".into(), json!(total));
            out.insert("missing".into(), json!(missing.len()));
        }
        "has" => {
            let c = Container::open(&a.container)?;
            mem = op_start();
            let t = Instant::now();
            let found = c.has_objects(&keys_of(&c, &items)?)?;
            seconds = t.elapsed().as_secs_f64();
            out.insert("objects".into(), json!(found.len()));
            out.insert(
                "true_count".into(),
                json!(found.iter().filter(|&&f| f).count()),
            );
        }
        "pack-loose" => {
            let c = Container::open(&a.container)?;
            let opts = PackLooseOptions {
                compress: if a.compress {
                    CompressMode::Yes
                } else {
                    CompressMode::No
                },
                clean_loose: false,
                ..Default::default()
            };
            mem = op_start();
            let t = Instant::now();
            let summary = c.pack_all_loose(&opts, &NoProgress)?;
            seconds = t.elapsed().as_secs_f64();
            // What this call says it packed must agree with the index afterwards.
            out.insert("op_count".into(), json!(summary.packed));
            out.insert("summary".into(), serde_json::to_value(&summary)?);
        }
        "validate" => {
            let c = Container::open(&a.container)?;
            mem = op_start();
            let t = Instant::now();
            let report = c.validate(&ValidateOptions::default(), &NoProgress)?;
            seconds = t.elapsed().as_secs_f64();
            out.insert("problems".into(), json!(report.errors()));
            out.insert("op_count".into(), json!(report.objects_checked));
            out.insert("bytes_checked".into(), json!(report.bytes_checked));
            out.insert("report".into(), serde_json::to_value(&report)?);
        }
        "repack" => {
            let c = Container::open(&a.container)?;
            mem = op_start();
            let t = Instant::now();
            let summary = c.repack(&RepackOptions::default(), &NoProgress)?;
            seconds = t.elapsed().as_secs_f64();
            out.insert("summary".into(), serde_json::to_value(&summary)?);
        }
        "import" => {
            let archive = a.archive.as_ref().context("import needs --archive")?;
            let c = open_or_init(a)?;
            let opts = dos_archive::ImportOptions {
                compress: if a.compress {
                    CompressMode::Yes
                } else {
                    CompressMode::No
                },
                ..Default::default()
            };
            mem = op_start();
            let t = Instant::now();
            let mut s = dos_archive::import_archive(&c, archive, &opts, &NoProgress)?;
            seconds = t.elapsed().as_secs_f64();
            // `objects` and `bytes` are the container's afterwards (below); these are the op's.
            out.insert("op_count".into(), json!(s.imported));
            out.insert("op_bytes".into(), json!(s.bytes_in));
            out.insert("passthrough".into(), json!(s.passthrough));
            out.insert(
                "problems".into(),
                json!(s.bad_entries.len() + s.missing_referenced.len()),
            );
            s.bad_entries.truncate(20);
            s.missing_referenced.truncate(20);
            out.insert("summary".into(), serde_json::to_value(&s)?);
        }
        "delete" => {
            // Untimed preparation of `repack`.
            let c = Container::open(&a.container)?;
            let deleted = c.delete_objects(&keys_of(&c, &items)?)?;
            out.insert("deleted".into(), json!(deleted.len()));
            println!("{}", Value::Object(out));
            return Ok(());
        }
        "probe" => {
            probe(a, &items, &mut out)?;
            println!("{}", Value::Object(out));
            return Ok(());
        }
        other => bail!("unknown child operation {other:?}"),
    }
    out.insert("seconds".into(), json!(seconds));
    op_end(&mem, &mut out);
    if matches!(
        a.op.as_str(),
        "pack-loose" | "validate" | "repack" | "import"
    ) {
        let c = Container::open(&a.container)?;
        let count = c.count_objects()?;
        let size = c.get_total_size()?;
        out.insert("packed_count".into(), json!(count.packed));
        out.insert("packed_bytes".into(), json!(size.total_size_packed));
        out.insert(
            "packed_on_disk".into(),
            json!(size.total_size_packed_on_disk),
        );
        out.insert(
            "packfiles_bytes".into(),
            json!(size.total_size_packfiles_on_disk),
        );
        out.insert("objects".into(), json!(count.packed));
        out.insert("bytes".into(), json!(size.total_size_packed));
        if a.op == "pack-loose"
            && let Some(p) = &a.keys
        {
            let wanted = keys_of(&c, &read_lines(p)?)?;
            let mut packed: Vec<String> = c
                .get_objects_meta(&wanted)?
                .iter()
                .zip(&wanted)
                .filter(|(m, _)| m.kind == ObjectType::Packed)
                .map(|(_, k)| k.to_string())
                .collect();
            packed.sort_unstable();
            out.insert("packed_digest".into(), json!(digest(&packed)));
        }
    }
    if matches!(
        a.op.as_str(),
        "read" | "has" | "pack-loose" | "validate" | "repack" | "import"
    ) {
        let c = Container::open(&a.container)?;
        let keys = hex_keys(&c.list_all_objects()?);
        out.insert("keyset_count".into(), json!(keys.len()));
        out.insert("keyset_digest".into(), json!(digest(&keys)));
    }
    if a.op == "import"
        && let Some(p) = &a.keys
    {
        let c = Container::open(&a.container)?;
        let (ok, bad, bytes) = verify_sample(&c, &keys_of(&c, &read_lines(p)?)?)?;
        out.insert("verified".into(), json!(ok));
        out.insert("verify_bad".into(), json!(bad));
        out.insert("verified_bytes".into(), json!(bytes));
    }
    println!("{}", Value::Object(out));
    Ok(())
}

/// Read `keys` back from `c` and hash them (untimed check of the stored bytes): objects whose
/// content hashes to their key, objects missing or not, and bytes read.
fn verify_sample(c: &Container, keys: &[ObjectKey]) -> Result<(u64, u64, u64)> {
    let (mut ok, mut bad, mut bytes) = (0u64, 0u64, 0u64);
    let mut big = Vec::new();
    let missing = c.read_objects(keys, |k, content, _meta| {
        let data: &[u8] = match content {
            ObjectContent::Bytes(b) => b,
            ObjectContent::Reader(r) => {
                big.clear();
                r.read_to_end(&mut big)
                    .map_err(|e| dos_core::Error::Source {
                        source_name: "object reader".into(),
                        source: e,
                    })?;
                &big
            }
        };
        bytes += data.len() as u64;
        if HashType::Sha256.key_of(data) == k {
            ok += 1;
        } else {
            bad += 1;
        }
        Ok(())
    })?;
    Ok((ok, bad + missing.len() as u64, bytes))
}

fn open_or_init(a: &ChildArgs) -> Result<Container> {
    Ok(if a.existing {
        Container::open(&a.container)?
    } else {
        Container::init(&a.container, &InitOptions::default())?
    })
}

/// Best (shortest) of `reps` timings of `f`, in seconds.
fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn sha256_hex(data: &[u8]) -> String {
    HashType::Sha256.key_of(data).to_string()
}

/// Machine probes on the sample of the data set listed in `items` (one object per file, each
/// processed independently, as the container does): SHA-256, zlib-rs level-2 compression (what
/// `zlib+1` maps to), inflation, and inflation + hash, each on one core and on two (a rayon pool of
/// 2 threads over the objects); then sequential write + fdatasync of `write_mib` MiB in
/// `container`. CPU figures are the best of several runs, in MB/s of uncompressed bytes.
fn probe(a: &ChildArgs, items: &[String], out: &mut serde_json::Map<String, Value>) -> Result<()> {
    let mut data = Vec::with_capacity(items.len());
    for p in items {
        data.push(fs::read(p).with_context(|| format!("read {p}"))?);
    }
    let bytes: u64 = data.iter().map(|d| d.len() as u64).sum();
    let mb = bytes as f64 / 1e6;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build()?;
    let reps = 3;
    let sink = std::sync::atomic::AtomicU64::new(0);
    let eat = |s: &str| {
        sink.fetch_add(
            u64::from(s.as_bytes()[0]),
            std::sync::atomic::Ordering::Relaxed,
        );
    };

    let sha1 = best_of(reps, || {
        for d in &data {
            eat(&sha256_hex(d));
        }
    });
    let sha2 = best_of(reps, || {
        pool.install(|| data.par_iter().for_each(|d| eat(&sha256_hex(d))));
    });

    let level = ZlibLevel::DEFAULT;
    let mut compressed: Vec<Vec<u8>> = Vec::new();
    let z1 = best_of(2, || {
        let mut c = Compressor::new(level);
        compressed = data.iter().map(|d| c.compress(d)).collect();
    });
    let z2 = best_of(2, || {
        let v: Vec<Vec<u8>> = pool.install(|| {
            data.par_iter()
                .map_init(|| Compressor::new(level), |c, d| c.compress(d))
                .collect()
        });
        sink.fetch_add(v.len() as u64, std::sync::atomic::Ordering::Relaxed);
    });
    let zbytes: u64 = compressed.iter().map(|z| z.len() as u64).sum();
    let pairs: Vec<(&Vec<u8>, &Vec<u8>)> = compressed.iter().zip(&data).collect();
    let inflate_one = |dec: &mut Decompressor, buf: &mut Vec<u8>, z: &[u8], d: &[u8]| {
        // An exact-size output, as the container's readers use.
        dec.inflate_exact(z, d.len() as u64, buf)
            .map_err(|e| anyhow!("inflate: {e}"))
    };
    let mut failed = None;
    let i1 = best_of(reps, || {
        let mut dec = Decompressor::new();
        let mut buf = Vec::new();
        for (z, d) in &pairs {
            if let Err(e) = inflate_one(&mut dec, &mut buf, z, d) {
                failed = Some(e);
            }
        }
    });
    let i2 = best_of(reps, || {
        let r: Result<()> = pool.install(|| {
            pairs.par_iter().try_for_each_init(
                || (Decompressor::new(), Vec::new()),
                |(dec, buf), (z, d)| inflate_one(dec, buf, z, d),
            )
        });
        if let Err(e) = r {
            failed = Some(e);
        }
    });
    let ih1 = best_of(reps, || {
        let mut dec = Decompressor::new();
        let mut buf = Vec::new();
        for (z, d) in &pairs {
            match inflate_one(&mut dec, &mut buf, z, d) {
                Ok(()) => eat(&sha256_hex(&buf)),
                Err(e) => failed = Some(e),
            }
        }
    });
    let ih2 = best_of(reps, || {
        let r: Result<()> = pool.install(|| {
            pairs.par_iter().try_for_each_init(
                || (Decompressor::new(), Vec::new()),
                |(dec, buf), (z, d)| {
                    inflate_one(dec, buf, z, d)?;
                    eat(&sha256_hex(buf));
                    Ok(())
                },
            )
        });
        if let Err(e) = r {
            failed = Some(e);
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    drop(pairs);
    drop(compressed);
    drop(data);
    if let Some(archive) = &a.archive {
        probe_archive(archive, a.archive_probe_mb, &pool, out)?;
    }

    // Sequential write of `write_mib` MiB in 8 MiB blocks of random bytes into a new file, then
    // fdatasync; `write_runs` times, each after a `sync`, the median (by total time) reported.
    let wpath = a.container.join("probe-write.tmp");
    let mut block = vec![0u8; 8 << 20];
    Rng::new(0x7772_6974_6500).fill(&mut block);
    let blocks = a.write_mib.div_ceil(8).max(1);
    let wbytes = blocks * (8 << 20);
    let mut wruns: Vec<(f64, f64)> = Vec::new();
    for _ in 0..a.write_runs.max(1) {
        sync()?;
        let mut f =
            fs::File::create(&wpath).with_context(|| format!("create {}", wpath.display()))?;
        let t = Instant::now();
        for _ in 0..blocks {
            f.write_all(&block)?;
        }
        let w = t.elapsed().as_secs_f64();
        f.sync_data()?;
        wruns.push((w, t.elapsed().as_secs_f64()));
        drop(f);
        fs::remove_file(&wpath)?;
    }
    let all_mbs: Vec<f64> = wruns
        .iter()
        .map(|(_, total)| wbytes as f64 / 1e6 / total)
        .collect();
    wruns.sort_by(|x, y| x.1.total_cmp(&y.1));
    let (write_s, total_s) = wruns[(wruns.len() - 1) / 2];

    let rate = |s: f64| mb / s;
    out.insert("sample_objects".into(), json!(items.len()));
    out.insert("sample_bytes".into(), json!(bytes));
    out.insert("compressed_bytes".into(), json!(zbytes));
    out.insert("sha256_1core_mbs".into(), json!(rate(sha1)));
    out.insert("sha256_2core_mbs".into(), json!(rate(sha2)));
    out.insert("compress_zlib1_1core_mbs".into(), json!(rate(z1)));
    out.insert("compress_zlib1_2core_mbs".into(), json!(rate(z2)));
    out.insert("inflate_1core_mbs".into(), json!(rate(i1)));
    out.insert("inflate_2core_mbs".into(), json!(rate(i2)));
    out.insert("inflate_sha256_1core_mbs".into(), json!(rate(ih1)));
    out.insert("inflate_sha256_2core_mbs".into(), json!(rate(ih2)));
    out.insert("write_bytes".into(), json!(wbytes));
    out.insert("write_s".into(), json!(write_s));
    out.insert("write_fdatasync_s".into(), json!(total_s));
    out.insert(
        "write_fdatasync_mbs".into(),
        json!(wbytes as f64 / 1e6 / total_s),
    );
    out.insert("write_fdatasync_mbs_runs".into(), json!(all_mbs));
    out.insert(
        "loadavg".into(),
        json!(
            fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
        ),
    );
    out.insert(
        "sink".into(),
        json!(sink.load(std::sync::atomic::Ordering::Relaxed)),
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// The parent: run, check, report

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Python,
    Dos,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Python => "python",
            Side::Dos => "dos",
        }
    }
}

/// One row of the table: an operation measured on both sides.
#[derive(Debug, Clone)]
struct Row {
    /// Label in the table.
    label: &'static str,
    /// Child operation.
    op: &'static str,
    /// Container folder name prefix (write ops create `<name>-<side>`; read ops read it).
    container: &'static str,
    /// Input list file.
    list: &'static str,
    compress: bool,
    dedup: bool,
    /// Whether the op creates (or changes) its container.
    writes: bool,
    /// Base container copied to the container before each run (and, for `repack`, every 10th
    /// sorted unique key deleted from the copy by the side's own `delete_objects`), untimed.
    base: Option<&'static str>,
    /// Whether the op writes packs (Python's child then also times fsyncing them).
    fsync: bool,
    /// Deflate level of the archive an `import` reads (`archive-l<level>.aiida`).
    archive: Option<u32>,
}

const ROWS: &[Row] = &[
    Row {
        label: "loose",
        op: "loose",
        container: "loose",
        list: "files-loose.txt",
        compress: false,
        dedup: false,
        writes: true,
        base: None,
        fsync: false,
        archive: None,
    },
    Row {
        label: "pack",
        op: "pack",
        container: "pack",
        list: "files-all.txt",
        compress: false,
        dedup: false,
        writes: true,
        base: None,
        fsync: true,
        archive: None,
    },
    Row {
        label: "pack, dedup",
        op: "pack",
        container: "pack-dedup",
        list: "files-all.txt",
        compress: false,
        dedup: true,
        writes: true,
        base: None,
        fsync: true,
        archive: None,
    },
    Row {
        label: "pack-z",
        op: "pack",
        container: "pack-z",
        list: "files-all.txt",
        compress: true,
        dedup: false,
        writes: true,
        base: None,
        fsync: true,
        archive: None,
    },
    Row {
        label: "pack-files",
        op: "pack-files",
        container: "pack-files",
        list: "files-all.txt",
        compress: false,
        dedup: false,
        writes: true,
        base: None,
        fsync: true,
        archive: None,
    },
    Row {
        label: "read",
        op: "read",
        container: "pack",
        list: "keys-unique.txt",
        compress: false,
        dedup: false,
        writes: false,
        base: None,
        fsync: false,
        archive: None,
    },
    Row {
        label: "read-z",
        op: "read",
        container: "pack-z",
        list: "keys-unique.txt",
        compress: false,
        dedup: false,
        writes: false,
        base: None,
        fsync: false,
        archive: None,
    },
    Row {
        label: "has",
        op: "has",
        container: "pack",
        list: "keys-has.txt",
        compress: false,
        dedup: false,
        writes: false,
        base: None,
        fsync: false,
        archive: None,
    },
    Row {
        label: "pack-loose",
        op: "pack-loose",
        container: "pack-loose",
        list: "",
        compress: false,
        dedup: false,
        writes: true,
        base: Some("base-loose"),
        fsync: true,
        archive: None,
    },
    Row {
        label: "pack-loose-z",
        op: "pack-loose",
        container: "pack-loose-z",
        list: "",
        compress: true,
        dedup: false,
        writes: true,
        base: Some("base-loose"),
        fsync: true,
        archive: None,
    },
    Row {
        label: "validate",
        op: "validate",
        container: "pack",
        list: "",
        compress: false,
        dedup: false,
        writes: false,
        base: None,
        fsync: false,
        archive: None,
    },
    Row {
        label: "validate-z",
        op: "validate",
        container: "pack-z",
        list: "",
        compress: false,
        dedup: false,
        writes: false,
        base: None,
        fsync: false,
        archive: None,
    },
    Row {
        label: "repack",
        op: "repack",
        container: "repack",
        list: "",
        compress: false,
        dedup: false,
        writes: true,
        base: Some("base-packed"),
        fsync: true,
        archive: None,
    },
    Row {
        label: "import",
        op: "import",
        container: "import",
        list: "",
        compress: false,
        dedup: false,
        writes: true,
        base: None,
        fsync: true,
        archive: Some(6),
    },
    Row {
        label: "import-z",
        op: "import",
        container: "import-z",
        list: "",
        compress: true,
        dedup: false,
        writes: true,
        base: None,
        fsync: true,
        archive: Some(6),
    },
    Row {
        label: "import-l0",
        op: "import",
        container: "import-l0",
        list: "",
        compress: false,
        dedup: false,
        writes: true,
        base: None,
        fsync: true,
        archive: Some(0),
    },
];

/// The rows selected by `--ops`.
fn select_rows(ops: &str) -> Result<Vec<&'static Row>> {
    let mut names: Vec<&str> = Vec::new();
    for op in ops.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match op {
            "all" => names.extend(["loose", "pack", "pack-z", "read", "read-z", "has"]),
            "maintenance" => names.extend([
                "pack-loose",
                "pack-loose-z",
                "validate",
                "validate-z",
                "repack",
            ]),
            "archive" => names.extend(["import", "import-z"]),
            "loose" | "pack-z" | "pack-files" | "read" | "read-z" | "has" | "pack-loose"
            | "pack-loose-z" | "validate" | "validate-z" | "repack" | "import" | "import-z"
            | "import-l0" => names.push(op),
            "pack" => names.push("pack"),
            other => bail!("unknown operation {other:?}"),
        }
    }
    let mut rows = Vec::new();
    for r in ROWS {
        let wanted =
            names.contains(&r.label) || (r.label == "pack, dedup" && names.contains(&"pack"));
        if wanted {
            rows.push(r);
        }
    }
    Ok(rows)
}

/// What the results of one row must be.
#[derive(Default)]
struct Expect {
    objects: u64,
    bytes: Option<u64>,
    keys_digest: Option<String>,
    keyset: Option<(u64, String)>,
    true_count: Option<u64>,
    /// Digest of the sorted keys that must be packed afterwards.
    packed_digest: Option<String>,
    /// Zero problems reported by validate.
    no_problems: bool,
    /// Pack files must sum to the packed objects' on-disk lengths.
    no_holes: bool,
    /// Objects read back and hashed correctly after an import (none wrong or missing).
    verified: Option<u64>,
    /// Objects dos stored as the archive's own deflate streams (checked on the dos side only).
    passthrough: Option<u64>,
}

/// Everything the parent knows about the data set.
struct Inputs {
    n: usize,
    loose_n: usize,
    has_n: usize,
    total_bytes: u64,
    loose_bytes: u64,
    unique: u64,
    unique_bytes: u64,
    digest_all: String,
    digest_loose: String,
    digest_unique_sorted: String,
    /// Digest of the unique keys in data-set order (`keys-unique.txt`).
    digest_unique_order: String,
    /// Keys deleted before `repack` (every 10th sorted unique key, `keys-delete.txt`).
    deleted: u64,
    /// Objects, bytes and sorted-key digest of what survives the deletion.
    surviving: u64,
    surviving_bytes: u64,
    digest_surviving_sorted: String,
    /// Unique objects that are not empty (deflated entries dos passes through).
    unique_nonempty: u64,
    /// Keys an import reads back and hashes afterwards (`keys-verify.txt`).
    verify: u64,
}

fn expect(row: &Row, inp: &Inputs) -> Expect {
    let keyset = Some((inp.unique, inp.digest_unique_sorted.clone()));
    match row.op {
        "loose" => Expect {
            objects: inp.loose_n as u64,
            keys_digest: Some(inp.digest_loose.clone()),
            ..Expect::default()
        },
        "pack" | "pack-files" => Expect {
            objects: inp.n as u64,
            bytes: (row.op == "pack").then_some(inp.total_bytes),
            keys_digest: Some(inp.digest_all.clone()),
            ..Expect::default()
        },
        "read" => Expect {
            objects: inp.unique,
            bytes: Some(inp.unique_bytes),
            keyset,
            ..Expect::default()
        },
        // Every loose object packed, each exactly once (a fresh container: no holes).
        "pack-loose" => Expect {
            objects: inp.unique,
            bytes: Some(inp.unique_bytes),
            keyset,
            packed_digest: Some(inp.digest_unique_sorted.clone()),
            no_holes: true,
            ..Expect::default()
        },
        "validate" => Expect {
            objects: inp.unique,
            bytes: Some(inp.unique_bytes),
            keyset,
            no_problems: true,
            ..Expect::default()
        },
        "repack" => Expect {
            objects: inp.surviving,
            bytes: Some(inp.surviving_bytes),
            keyset: Some((inp.surviving, inp.digest_surviving_sorted.clone())),
            no_holes: true,
            ..Expect::default()
        },
        // Every unique object imported once (the archive has one entry per unique object), no
        // entry rejected or mismatched, a fresh container without holes; passthrough of every
        // non-empty deflated entry when compressing (dos).
        "import" => Expect {
            objects: inp.unique,
            bytes: Some(inp.unique_bytes),
            keyset,
            no_problems: true,
            no_holes: true,
            verified: Some(inp.verify),
            passthrough: Some(if row.compress && row.archive != Some(0) {
                inp.unique_nonempty
            } else {
                0
            }),
            ..Expect::default()
        },
        _ => Expect {
            objects: inp.has_n as u64,
            keyset,
            true_count: Some(inp.unique),
            ..Expect::default()
        },
    }
}

/// What the base containers must hold after being filled (by the dos child, `--existing`).
fn expect_base(base: &str, inp: &Inputs) -> Expect {
    if base == "base-loose" {
        Expect {
            objects: inp.n as u64,
            keys_digest: Some(inp.digest_all.clone()),
            ..Expect::default()
        }
    } else {
        Expect {
            objects: inp.unique,
            bytes: Some(inp.unique_bytes),
            keys_digest: Some(inp.digest_unique_order.clone()),
            ..Expect::default()
        }
    }
}

/// Problems with one child's result (empty when correct).
fn check(v: &Value, e: &Expect) -> Vec<String> {
    let mut bad = Vec::new();
    let u = |k: &str| v.get(k).and_then(Value::as_u64);
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    if u("objects") != Some(e.objects) {
        bad.push(format!("objects {:?} != {}", u("objects"), e.objects));
    }
    if let Some(b) = e.bytes
        && u("bytes") != Some(b)
    {
        bad.push(format!("bytes {:?} != {b}", u("bytes")));
    }
    if let Some(d) = &e.keys_digest
        && s("keys_digest").as_ref() != Some(d)
    {
        bad.push("keys differ from the manifest".into());
    }
    if let Some((n, d)) = &e.keyset
        && (u("keyset_count") != Some(*n) || s("keyset_digest").as_ref() != Some(d))
    {
        bad.push(format!(
            "container key set differs from the data set ({:?} keys, expected {n})",
            u("keyset_count")
        ));
    }
    if let Some(t) = e.true_count
        && u("true_count") != Some(t)
    {
        bad.push(format!("true count {:?} != {t}", u("true_count")));
    }
    if let Some(m) = u("missing")
        && m != 0
    {
        bad.push(format!("{m} keys missing"));
    }
    if let Some(c) = u("op_count")
        && c != e.objects
    {
        bad.push(format!(
            "the operation reports {c} objects, expected {}",
            e.objects
        ));
    }
    if let (Some(b), Some(c)) = (e.bytes, u("bytes_checked"))
        && b != c
    {
        bad.push(format!("validate checked {c} bytes, expected {b}"));
    }
    if let (Some(b), Some(c)) = (e.bytes, u("op_bytes"))
        && b != c
    {
        bad.push(format!("the operation reports {c} bytes, expected {b}"));
    }
    if let Some(d) = &e.packed_digest
        && s("packed_digest").as_ref() != Some(d)
    {
        bad.push("the packed keys differ from the data set's".into());
    }
    if e.no_problems && u("problems") != Some(0) {
        bad.push(format!(
            "{} reports {:?} problems",
            s("op").unwrap_or_default(),
            u("problems")
        ));
    }
    if let Some(n) = e.verified
        && (u("verified") != Some(n) || u("verify_bad") != Some(0))
    {
        bad.push(format!(
            "read back: {:?} objects hash to their key, {:?} wrong or missing (expected {n}, 0)",
            u("verified"),
            u("verify_bad")
        ));
    }
    if let Some(n) = e.passthrough
        && s("side").as_deref() == Some("dos")
        && u("passthrough") != Some(n)
    {
        bad.push(format!("passthrough {:?} != {n}", u("passthrough")));
    }
    if e.no_holes && (u("packfiles_bytes").is_none() || u("packfiles_bytes") != u("packed_on_disk"))
    {
        bad.push(format!(
            "pack files hold {:?} bytes, packed objects {:?} (holes)",
            u("packfiles_bytes"),
            u("packed_on_disk")
        ));
    }
    bad
}

struct Runner {
    python: PathBuf,
    script: PathBuf,
    exe: PathBuf,
    runs: PathBuf,
    /// The data set folder (where its archives are).
    dataset: PathBuf,
}

fn sync() -> Result<()> {
    let st = Command::new("sync").status().context("run sync")?;
    if !st.success() {
        bail!("sync failed: {st}");
    }
    Ok(())
}

/// Read a file once (into a small reused buffer), so that it is in the page cache.
fn read_through(path: &Path) -> Result<()> {
    let mut f = fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut buf = vec![0u8; 8 << 20];
    while f.read(&mut buf)? > 0 {}
    Ok(())
}

/// Sum of the sizes of the files directly in `dir`, and of everything below it.
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += du(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

impl Runner {
    fn container(&self, row: &Row, side: Side) -> PathBuf {
        self.runs.join(format!("{}-{}", row.container, side.name()))
    }

    /// Container of repetition `rep`: loose containers get one folder per run, so that no run
    /// follows the deletion of tens of thousands of files (see [`Runner::quiet_inodes`]).
    fn container_rep(&self, row: &Row, side: Side, rep: usize) -> PathBuf {
        if row.op == "loose" {
            self.runs
                .join(format!("{}-{}-r{}", row.container, side.name(), rep + 1))
        } else {
            self.container(row, side)
        }
    }

    /// Remove the per-run loose containers, recording when many inodes were freed.
    fn remove_loose(&self) -> Result<()> {
        let mut removed = false;
        for e in fs::read_dir(&self.runs)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("loose-") && e.path().is_dir() {
                fs::remove_dir_all(e.path())
                    .with_context(|| format!("remove {}", e.path().display()))?;
                removed = true;
            }
        }
        if removed {
            self.mark_bulk_delete()?;
        }
        Ok(())
    }

    fn mark_bulk_delete(&self) -> Result<()> {
        fs::write(self.runs.join("last-bulk-delete"), now_secs().to_string())?;
        Ok(())
    }

    /// Remove a container if it exists; `many_files` records the deletion of many inodes (see
    /// [`Runner::quiet_inodes`]).
    fn remove_container(&self, dir: &Path, many_files: bool) -> Result<()> {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
            if many_files {
                self.mark_bulk_delete()?;
            }
        }
        Ok(())
    }

    /// A child command of `side` running `op` on container `cont`.
    fn command(&self, side: Side, op: &str, cont: &Path) -> Command {
        let mut c = match side {
            Side::Python => {
                let mut c = Command::new(&self.python);
                c.arg(&self.script);
                c
            }
            Side::Dos => {
                let mut c = Command::new(&self.exe);
                c.arg("child");
                c
            }
        };
        c.arg(op).arg("--container").arg(cont);
        c.stdin(Stdio::null()).stderr(Stdio::inherit());
        c
    }

    /// Run a child to completion; returns its JSON result and the process wall time.
    fn spawn(&self, side: Side, what: &str, mut cmd: Command) -> Result<(Value, f64)> {
        let t = Instant::now();
        let output = cmd
            .output()
            .with_context(|| format!("spawn {} child", side.name()))?;
        let process_s = t.elapsed().as_secs_f64();
        if !output.status.success() {
            bail!(
                "{} child for {what} failed ({}): {}",
                side.name(),
                output.status,
                String::from_utf8_lossy(&output.stdout)
            );
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .ok_or_else(|| anyhow!("{} child printed no result: {stdout}", side.name()))?;
        let v: Value = serde_json::from_str(last).context("parse child result")?;
        Ok((v, process_s))
    }

    /// Build a base container once (untimed): initialised by Python (as a user's container is),
    /// filled by dos from the data set: `base-loose` holds every file as a loose object,
    /// `base-packed` every unique object in one pack, uncompressed and without holes. Its `.ok`
    /// marker records the data set digest, so a regenerated data set rebuilds it.
    fn ensure_base(&self, base: &str, inp: &Inputs) -> Result<()> {
        let dir = self.runs.join(base);
        let ok = dir.with_extension("ok");
        let stamp = format!("{}\n", inp.digest_all);
        if fs::read_to_string(&ok).is_ok_and(|s| s == stamp) {
            return Ok(());
        }
        let _ = fs::remove_file(&ok);
        let loose = base == "base-loose";
        self.remove_container(&dir, loose)?;
        eprintln!("  (building {base} once, untimed: Python init_container, dos fills it)");
        self.spawn(
            Side::Python,
            "init",
            self.command(Side::Python, "init", &dir),
        )?;
        let (op, list) = if loose {
            ("loose", "files-all.txt")
        } else {
            ("pack", "files-unique.txt")
        };
        let mut cmd = self.command(Side::Dos, op, &dir);
        cmd.arg("--list")
            .arg(self.runs.join(list))
            .arg("--existing");
        let (v, secs) = self.spawn(Side::Dos, base, cmd)?;
        let bad = check(&v, &expect_base(base, inp));
        if !bad.is_empty() {
            bail!("building {base}: {}", bad.join("; "));
        }
        if loose && du(&dir.join("packs")) != 0 {
            bail!("building {base}: it has packed data");
        }
        eprintln!("  ({base} built in {secs:.1} s)");
        sync()?;
        fs::write(&ok, stamp)?;
        Ok(())
    }

    /// ext4 makes file creation much slower for a while after many inodes were freed (its inode
    /// allocator skips recently deleted inodes: `recently_deleted` in `ext4_create`); measured
    /// here, 20k loose adds took 10.2 s right after deleting 80k files and 2.1 s 90 s later. So
    /// before loose runs, wait until `quiet` seconds have passed since the last bulk delete.
    fn quiet_inodes(&self, quiet: u64) -> Result<()> {
        let last: u64 = fs::read_to_string(self.runs.join("last-bulk-delete"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let wait = (last + quiet).saturating_sub(now_secs());
        if wait > 0 {
            eprintln!("  (waiting {wait} s after the last bulk delete, see --inode-quiet-secs)");
            std::thread::sleep(std::time::Duration::from_secs(wait));
        }
        Ok(())
    }

    /// Run one child; returns its JSON result with the process wall time added.
    fn run(&self, row: &Row, side: Side, rep: usize, inp: &Inputs) -> Result<Value> {
        let cont = self.container_rep(row, side, rep);
        let marker = cont.with_extension("ok");
        if row.writes {
            let _ = fs::remove_file(&marker);
            self.remove_container(&cont, row.base == Some("base-loose"))?;
        }
        if let Some(base) = row.base {
            // Untimed: the same starting container for both sides.
            self.ensure_base(base, inp)?;
            let st = Command::new("cp")
                .args(["-a", "--reflink=auto"])
                .arg(self.runs.join(base))
                .arg(&cont)
                .status()
                .context("run cp")?;
            if !st.success() {
                bail!("copying {base} to {} failed: {st}", cont.display());
            }
            if row.op == "repack" {
                let mut cmd = self.command(side, "delete", &cont);
                cmd.arg("--list").arg(self.runs.join("keys-delete.txt"));
                let (v, _) = self.spawn(side, "delete", cmd)?;
                let deleted = v.get("deleted").and_then(Value::as_u64);
                if deleted != Some(inp.deleted) {
                    bail!(
                        "{} delete_objects before repack deleted {deleted:?} keys, expected {}",
                        side.name(),
                        inp.deleted
                    );
                }
            }
        }
        let mut cmd = self.command(side, row.op, &cont);
        if !row.list.is_empty() {
            cmd.arg("--list").arg(self.runs.join(row.list));
        }
        if row.op == "pack-loose" {
            cmd.arg("--keys").arg(self.runs.join("keys-unique.txt"));
        }
        if let Some(level) = row.archive {
            let path = archive::archive_path(&self.dataset, level);
            // Untimed: both sides read the archive from the page cache.
            read_through(&path)?;
            cmd.arg("--archive")
                .arg(path)
                .arg("--keys")
                .arg(self.runs.join("keys-verify.txt"));
        }
        if row.compress {
            cmd.arg("--compress");
        }
        if row.dedup {
            cmd.arg("--dedup");
        }
        sync()?;
        let (mut v, process_s) = self.spawn(side, row.label, cmd)?;
        if let Value::Object(m) = &mut v {
            m.insert("process_s".into(), json!(process_s));
            m.insert("container".into(), json!(cont.display().to_string()));
            if row.writes {
                m.insert("packs_bytes".into(), json!(du(&cont.join("packs"))));
                m.insert("loose_bytes".into(), json!(du(&cont.join("loose"))));
                let idx = fs::metadata(cont.join("packs.idx")).map_or(0, |m| m.len());
                m.insert("index_bytes".into(), json!(idx));
            }
        }
        Ok(v)
    }

    /// Run the machine probes in a fresh dos child (on the probe sample, writing in the runs
    /// folder, which is in the data folder; sampling `archive`'s deflate streams if given).
    fn probe(
        &self,
        write_mib: u64,
        write_runs: usize,
        archive: Option<(&Path, u64)>,
    ) -> Result<Value> {
        let mut cmd = self.command(Side::Dos, "probe", &self.runs);
        cmd.arg("--list")
            .arg(self.runs.join("files-probe.txt"))
            .arg("--write-mib")
            .arg(write_mib.to_string())
            .arg("--write-runs")
            .arg(write_runs.to_string());
        if let Some((path, mb)) = archive {
            cmd.arg("--archive")
                .arg(path)
                .arg("--archive-probe-mb")
                .arg(mb.to_string());
        }
        let (v, _) = self.spawn(Side::Dos, "probe", cmd)?;
        Ok(v)
    }

    /// Make sure the container a read operation needs exists (made by an untimed write run).
    fn ensure_source(&self, row: &Row, side: Side, inp: &Inputs) -> Result<()> {
        if row.writes {
            return Ok(());
        }
        let cont = self.container(row, side);
        // The marker says the container was checked; it may since have been deleted by hand.
        if cont.with_extension("ok").exists() && cont.join("config.json").exists() {
            return Ok(());
        }
        let Some(src) = ROWS
            .iter()
            .find(|r| r.writes && r.container == row.container)
        else {
            bail!("no operation produces container {}", row.container);
        };
        eprintln!(
            "  ({} needs {}: producing it first, untimed)",
            row.label,
            cont.display()
        );
        let v = self.run(src, side, 0, inp)?;
        let bad = check(&v, &expect(src, inp));
        if !bad.is_empty() {
            bail!("{} {}: {}", side.name(), src.label, bad.join("; "));
        }
        fs::write(cont.with_extension("ok"), b"ok\n")?;
        Ok(())
    }
}

/// Raw inflate of `out` (exactly `expected` bytes) from the raw deflate stream `raw`, into a
/// reused buffer, with libdeflate (the importer's inflater).
fn inflate_raw_exact(raw: &[u8], expected: u64, out: &mut Vec<u8>) -> Result<()> {
    let n = usize::try_from(expected)?;
    match dos_core::codec::deflate::inflate(raw, n + 1, out) {
        dos_core::codec::deflate::Inflated::Done { produced, .. }
            if produced as u64 == expected =>
        {
            Ok(())
        }
        other => bail!("inflate: {other:?}, expected {expected} bytes"),
    }
}

/// The two-core limit of an archive import: raw inflate (libdeflate, as the importer) and inflate + SHA-256 of an evenly strided sample of the archive's own deflated
/// `repo/` entries (about `mb` MB uncompressed), read into memory first; one core and two (a
/// rayon pool of 2 threads over the entries); best of 3, MB/s of uncompressed bytes.
fn probe_archive(
    path: &Path,
    mb: u64,
    pool: &rayon::ThreadPool,
    out: &mut serde_json::Map<String, Value>,
) -> Result<()> {
    let z = dos_archive::ZipArchive::open(path, &dos_archive::Limits::default())
        .map_err(|e| anyhow!("{e}"))?;
    let mut entries: Vec<&dos_archive::zip::Entry> = z
        .entries
        .iter()
        .filter(|e| e.name.repo_key().is_some() && e.method == dos_archive::zip::METHOD_DEFLATE)
        .collect();
    entries.sort_unstable_by_key(|e| e.header_offset);
    let total: u64 = entries.iter().map(|e| e.usize).sum();
    let stride = usize::try_from(total.div_ceil((mb * 1_000_000).max(1)))?.max(1);
    let mut sample: Vec<(Vec<u8>, u64)> = Vec::new();
    for e in entries.iter().step_by(stride) {
        sample.push((z.read_raw(e).map_err(|e| anyhow!("{e}"))?, e.usize));
    }
    let bytes: u64 = sample.iter().map(|(_, u)| u).sum();
    let csize: u64 = sample.iter().map(|(r, _)| r.len() as u64).sum();
    let reps = 3;
    let failed = std::sync::Mutex::new(None);
    let fail = |e: anyhow::Error| {
        if let Ok(mut f) = failed.lock() {
            *f = Some(e);
        }
    };
    let one = |hash: bool| {
        best_of(reps, || {
            let mut buf = Vec::new();
            for (raw, u) in &sample {
                match inflate_raw_exact(raw, *u, &mut buf) {
                    Ok(()) if hash => {
                        std::hint::black_box(sha256_hex(&buf[..*u as usize]));
                    }
                    Ok(()) => {}
                    Err(e) => fail(e),
                }
            }
        })
    };
    let two =
        |hash: bool| {
            best_of(reps, || {
                pool.install(|| {
                    sample.par_iter().for_each_init(Vec::new, |buf, (raw, u)| {
                        match inflate_raw_exact(raw, *u, buf) {
                            Ok(()) if hash => {
                                std::hint::black_box(sha256_hex(&buf[..*u as usize]));
                            }
                            Ok(()) => {}
                            Err(e) => fail(e),
                        }
                    });
                });
            })
        };
    let (i1, i2, ih1, ih2) = (one(false), two(false), one(true), two(true));
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e.context(format!("probe of {}", path.display())));
    }
    let rate = |s: f64| bytes as f64 / 1e6 / s;
    out.insert("archive".into(), json!(path.display().to_string()));
    out.insert("archive_sample_objects".into(), json!(sample.len()));
    out.insert("archive_sample_bytes".into(), json!(bytes));
    out.insert("archive_sample_compressed_bytes".into(), json!(csize));
    out.insert("archive_inflate_1core_mbs".into(), json!(rate(i1)));
    out.insert("archive_inflate_2core_mbs".into(), json!(rate(i2)));
    out.insert("archive_inflate_sha256_1core_mbs".into(), json!(rate(ih1)));
    out.insert("archive_inflate_sha256_2core_mbs".into(), json!(rate(ih2)));
    Ok(())
}

/// The probe results as text (printed at the top of the output).
fn probe_text(p: &Value) -> String {
    let f = |k: &str| p.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let u = |k: &str| p.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut t = format!(
        "machine probes (dos-core codecs on {} objects, {:.1} MB of the data set's unique content, \
         each object on its own; best of 3 (compression: of 2); MB/s of uncompressed bytes):\n",
        u("sample_objects"),
        u("sample_bytes") as f64 / 1e6
    );
    for (name, k) in [
        ("SHA-256", "sha256"),
        ("zlib inflate", "inflate"),
        ("zlib inflate + SHA-256", "inflate_sha256"),
        ("libdeflate level 1 compress (zlib+1)", "compress_zlib1"),
    ] {
        let _ = writeln!(
            t,
            "  {name:<36} 1 core {:>7.0}   2 cores {:>7.0}",
            f(&format!("{k}_1core_mbs")),
            f(&format!("{k}_2core_mbs"))
        );
    }
    let _ = writeln!(
        t,
        "  compressed / original {:.3}",
        u("compressed_bytes") as f64 / u("sample_bytes").max(1) as f64
    );
    if p.get("archive_sample_objects").is_some() {
        let _ = writeln!(
            t,
            "  archive's own deflate streams ({} entries, {:.1} MB uncompressed, {:.3} compressed / \
             original; raw inflate as the importer):",
            u("archive_sample_objects"),
            u("archive_sample_bytes") as f64 / 1e6,
            u("archive_sample_compressed_bytes") as f64 / u("archive_sample_bytes").max(1) as f64
        );
        for (name, k) in [
            ("raw inflate", "archive_inflate"),
            ("raw inflate + SHA-256", "archive_inflate_sha256"),
        ] {
            let _ = writeln!(
                t,
                "    {name:<34} 1 core {:>7.0}   2 cores {:>7.0}",
                f(&format!("{k}_1core_mbs")),
                f(&format!("{k}_2core_mbs"))
            );
        }
    }
    let runs: Vec<String> = p
        .get("write_fdatasync_mbs_runs")
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .filter_map(Value::as_f64)
                .map(|x| format!("{x:.0}"))
                .collect()
        })
        .unwrap_or_default();
    let _ = writeln!(
        t,
        "  sequential write + fdatasync of {:.0} MiB in the data folder: {:.0} MB/s median \
         (write {:.2} s, then fdatasync {:.2} s; runs: {} MB/s)",
        u("write_bytes") as f64 / (1u64 << 20) as f64,
        f("write_fdatasync_mbs"),
        f("write_s"),
        f("write_fdatasync_s") - f("write_s"),
        runs.join(", ")
    );
    let _ = writeln!(
        t,
        "  load average after the probes: {}",
        p.get("loadavg").and_then(Value::as_str).unwrap_or("-")
    );
    t
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn median_run(runs: &[Value]) -> Option<&Value> {
    let mut v: Vec<&Value> = runs.iter().collect();
    v.sort_by(|a, b| secs(a).total_cmp(&secs(b)));
    v.get((v.len().saturating_sub(1)) / 2).copied()
}

fn secs(v: &Value) -> f64 {
    v.get("seconds").and_then(Value::as_f64).unwrap_or(f64::NAN)
}

fn mb_of_kb(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_u64)
        .map_or("-".into(), |kb| format!("{:.0}", kb as f64 / 1024.0))
}

fn resolve_python(arg: &Option<PathBuf>) -> Result<PathBuf> {
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

fn write_list<I, S>(path: &Path, items: I) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut w = BufWriter::new(
        fs::File::create(path).with_context(|| format!("create {}", path.display()))?,
    );
    for s in items {
        w.write_all(s.as_ref().as_bytes())?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(())
}

fn compare(a: &RunArgs) -> Result<()> {
    let rows = select_rows(&a.ops)?;
    if a.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let python = resolve_python(&a.python)?;
    let pyver = Command::new(&python)
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

    let opts = GenOptions {
        n: a.n,
        seed: a.seed,
    };
    let root = data_root(&a.data_dir);
    // Archives (and the data set) are made by a child process, so that this parent stays small
    // (a child's ru_maxrss starts from the parent's peak at exec).
    let mut levels: Vec<u32> = rows.iter().filter_map(|r| r.archive).collect();
    levels.sort_unstable();
    levels.dedup();
    for &level in &levels {
        eprintln!("== archive (level {level})");
        let st = Command::new(std::env::current_exe()?)
            .arg("gen-archive")
            .arg("--n")
            .arg(a.n.to_string())
            .arg("--seed")
            .arg(a.seed.to_string())
            .arg("--data-dir")
            .arg(&root)
            .arg("--level")
            .arg(level.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::io::stderr()))
            .status()
            .context("run gen-archive")?;
        if !st.success() {
            bail!("gen-archive --level {level} failed: {st}");
        }
    }
    let ds = load_dataset(&root, opts)?;
    let ds_dir = fs::canonicalize(&ds.dir)?;
    let mut archives: BTreeMap<u32, archive::ArchiveInfo> = BTreeMap::new();
    for &level in &levels {
        let info = archive::cached(&ds, level)?
            .ok_or_else(|| anyhow!("the archive of level {level} is missing after gen-archive"))?;
        archives.insert(level, info);
    }
    let runs = root.join(format!("runs-n{}-s{}", a.n, a.seed));
    fs::create_dir_all(&runs)?;
    let runs = fs::canonicalize(&runs)?;

    // Inputs shared by both sides.
    let loose_n = a.loose_n.min(ds.len());
    let path_of = |i: usize| ds_dir.join(&ds.entries[i].path).display().to_string();
    write_list(&runs.join("files-all.txt"), (0..ds.len()).map(path_of))?;
    write_list(&runs.join("files-loose.txt"), (0..loose_n).map(path_of))?;
    let uniq = ds.unique_indices();
    // Keys as the text both sides read from the lists.
    let hex: Vec<String> = ds.entries.iter().map(|e| e.sha256.to_string()).collect();
    let unique_keys: Vec<&str> = uniq.iter().map(|&i| hex[i].as_str()).collect();
    write_list(&runs.join("keys-unique.txt"), &unique_keys)?;
    let has_n = a.has_n.max(unique_keys.len());
    {
        // A permutation of indices (4 bytes each) instead of a million strings: the parent stays
        // small, which matters because a child's ru_maxrss starts from the parent's at exec.
        let mut rng = Rng::new(a.seed ^ 0x6861_735f_6b65_7973); // "has_keys"
        let mut order: Vec<u32> = (0..u32::try_from(has_n)?).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let absent = |j: u32| {
            let mut r = Rng::new(a.seed ^ 0x6162_7365_6e74_0000 ^ u64::from(j));
            let mut k = String::with_capacity(64);
            for _ in 0..4 {
                let _ = write!(k, "{:016x}", r.next_u64());
            }
            k
        };
        let u = unique_keys.len();
        write_list(
            &runs.join("keys-has.txt"),
            order.iter().map(|&j| {
                if (j as usize) < u {
                    unique_keys[j as usize].to_string()
                } else {
                    absent(j)
                }
            }),
        )?;
    }
    write_list(
        &runs.join("files-unique.txt"),
        uniq.iter().map(|&i| path_of(i)),
    )?;
    // Repack input: every 10th key of the sorted unique keys is deleted first.
    let mut sorted_unique: Vec<(&str, u64)> = uniq
        .iter()
        .map(|&i| (hex[i].as_str(), ds.entries[i].size))
        .collect();
    sorted_unique.sort_unstable();
    let (deleted, surviving): (Vec<_>, Vec<_>) = sorted_unique
        .iter()
        .enumerate()
        .partition(|(j, _)| j % 10 == 0);
    write_list(
        &runs.join("keys-delete.txt"),
        deleted.iter().map(|(_, (k, _))| *k),
    )?;
    let surviving_keys: Vec<&str> = surviving.iter().map(|(_, (k, _))| *k).collect();
    let surviving_bytes: u64 = surviving.iter().map(|(_, (_, b))| *b).sum();
    // Probe sample: evenly strided unique objects, about `probe_mb` MB.
    let unique_bytes: u64 = uniq.iter().map(|&i| ds.entries[i].size).sum();
    let stride = usize::try_from(unique_bytes.div_ceil((a.probe_mb * 1_000_000).max(1)))?.max(1);
    write_list(
        &runs.join("files-probe.txt"),
        uniq.iter().step_by(stride).map(|&i| path_of(i)),
    )?;
    // Import check: an evenly strided sample of the unique keys (about 128 MB) read back and
    // hashed after each import.
    let vstride = usize::try_from(unique_bytes.div_ceil(128_000_000))?.max(1);
    let verify: Vec<&str> = unique_keys.iter().step_by(vstride).copied().collect();
    write_list(&runs.join("keys-verify.txt"), &verify)?;
    let unique_nonempty = uniq.iter().filter(|&&i| ds.entries[i].size > 0).count() as u64;
    let sorted_unique: Vec<&str> = sorted_unique.iter().map(|(k, _)| *k).collect();
    let all_keys: Vec<&str> = hex.iter().map(String::as_str).collect();
    let inp = Inputs {
        n: ds.len(),
        loose_n,
        has_n,
        total_bytes: ds.total_bytes(),
        loose_bytes: ds.bytes_of_first(loose_n),
        unique: unique_keys.len() as u64,
        unique_bytes,
        digest_all: digest(&all_keys),
        digest_loose: digest(&all_keys[..loose_n]),
        digest_unique_sorted: digest(&sorted_unique),
        digest_unique_order: digest(&unique_keys),
        deleted: deleted.len() as u64,
        surviving: surviving_keys.len() as u64,
        surviving_bytes,
        digest_surviving_sorted: digest(&surviving_keys),
        unique_nonempty,
        verify: verify.len() as u64,
    };
    drop(verify);
    drop(sorted_unique);
    drop(unique_keys);
    drop(surviving_keys);
    drop(deleted);
    drop(surviving);

    let runner = Runner {
        python,
        script: Path::new(env!("CARGO_MANIFEST_DIR")).join("python/dos_bench.py"),
        exe: std::env::current_exe()?,
        runs: runs.clone(),
        dataset: ds_dir.clone(),
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

    let mut results = Vec::new();
    let mut table = String::new();
    table.push_str(
        "| operation | objects | MB | python s | dos s | ratio | python+fsync s | \
         ratio at equal durability | dos objects/s | dos MB/s | python peak RSS MB | \
         dos peak RSS MB |\n",
    );
    table.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut limits = String::from(
        "| operation | dos MB/s (bytes validated / dos s) | two-core limit | limit MB/s | \
         % of limit |\n|---|---:|---|---:|---:|\n",
    );
    let mut imports = String::from(
        "| operation | archive | archive MB | dos MB/s (uncompressed bytes imported / dos s) | \
         dos passthrough | two-core limit | limit MB/s | % of limit |\n\
         |---|---|---:|---:|---:|---|---:|---:|\n",
    );
    let mut memtab = String::from(
        "| operation | side | RSS at start MB | peak during op MB | process peak MB | packs MB | packs.idx MB |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    let mut spread = String::from("| operation | side | seconds of each run |\n|---|---|---|\n");
    let mut all_ok = true;
    for row in &rows {
        eprintln!("== {}", row.label);
        if row.op == "loose" {
            runner.remove_loose()?;
            runner.quiet_inodes(a.inode_quiet_secs)?;
        }
        let e = expect(row, &inp);
        let mut per_side: Vec<(Side, Vec<Value>)> =
            vec![(Side::Python, Vec::new()), (Side::Dos, Vec::new())];
        for rep in 0..a.repeat {
            let order = if rep % 2 == 0 { [0, 1] } else { [1, 0] };
            for k in order {
                let side = per_side[k].0;
                runner.ensure_source(row, side, &inp)?;
                let v = runner.run(row, side, rep, &inp)?;
                let bad = check(&v, &e);
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
                per_side[k].1.push(v);
            }
        }
        let mut problems = Vec::new();
        for (side, runs) in &per_side {
            for v in runs {
                for b in check(v, &e) {
                    problems.push(format!("{}: {b}", side.name()));
                }
            }
        }
        // Both sides must agree with each other, not only with the manifest.
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
            let vals: Vec<&Value> = per_side
                .iter()
                .flat_map(|(_, r)| r.iter())
                .filter_map(|v| v.get(key))
                .collect();
            if vals.windows(2).any(|w| w[0] != w[1]) && key != "bytes" {
                problems.push(format!("sides disagree on {key}"));
            }
            if key == "bytes" && row.op == "read" && vals.windows(2).any(|w| w[0] != w[1]) {
                problems.push("sides read different byte totals".into());
            }
        }
        let (Some(py), Some(ds_)) = (median_run(&per_side[0].1), median_run(&per_side[1].1)) else {
            bail!("no runs");
        };
        let objects = e.objects;
        let bytes = match row.op {
            "loose" => inp.loose_bytes,
            "pack" | "pack-files" => inp.total_bytes,
            "read" | "pack-loose" | "validate" | "import" => inp.unique_bytes,
            "repack" => inp.surviving_bytes,
            _ => 0,
        };
        let (pys, doss) = (secs(py), secs(ds_));
        let mb = bytes as f64 / 1e6;
        // Python with the pack fsyncs it skips: median over runs of (operation + fsync).
        let py_fsync = if row.fsync {
            let mut t: Vec<f64> = per_side[0]
                .1
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
        } else {
            None
        };
        // Validation against the machine's two-core hash (+ inflate) throughput.
        let limit = if row.op == "validate" {
            let (name, key) = if row.compress || row.container.ends_with("-z") {
                ("inflate + SHA-256", "inflate_sha256_2core_mbs")
            } else {
                ("SHA-256", "sha256_2core_mbs")
            };
            let lim = probes
                .as_ref()
                .and_then(|p| p.get(key))
                .and_then(Value::as_f64);
            let checked = ds_
                .get("bytes_checked")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let rate = checked as f64 / 1e6 / doss;
            Some((name, rate, lim))
        } else {
            None
        };
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
            let lim = probes
                .as_ref()
                .and_then(|p| p.get(key))
                .and_then(Value::as_f64);
            let imported = ds_.get("op_bytes").and_then(Value::as_u64).unwrap_or(0);
            (level, name, imported as f64 / 1e6 / doss, lim)
        });
        let label = if row.label == "pack" {
            "pack (dos skip_existing=false; Python no_holes=False)"
        } else if row.label == "pack, dedup" {
            "pack, dedup (dos skip_existing=true; Python no_holes=True)"
        } else {
            row.label
        };
        if problems.is_empty() {
            let _ = writeln!(
                table,
                "| {label} | {objects} | {} | {pys:.2} | {doss:.2} | {:.1}× | {} | {} | {:.0} | {} | {} | {} |",
                if bytes > 0 {
                    format!("{mb:.1}")
                } else {
                    "-".into()
                },
                pys / doss,
                py_fsync.map_or("-".into(), |t| format!("{t:.2}")),
                py_fsync.map_or("-".into(), |t| format!("{:.1}×", t / doss)),
                objects as f64 / doss,
                if bytes > 0 {
                    format!("{:.0}", mb / doss)
                } else {
                    "-".into()
                },
                mb_of_kb(py, "ru_maxrss_kb"),
                mb_of_kb(ds_, "peak_rss_kb"),
            );
        } else {
            all_ok = false;
            let _ = writeln!(
                table,
                "| {label} | {objects} | - | WRONG | WRONG | - | - | - | - | - | - | - |"
            );
            eprintln!("  WRONG RESULT for {}: {}", row.label, problems.join("; "));
        }
        for (side, v) in [(Side::Python, py), (Side::Dos, ds_)] {
            let mbb = |k: &str| {
                v.get(k)
                    .and_then(Value::as_u64)
                    .map_or("-".into(), |b| format!("{:.1}", b as f64 / 1e6))
            };
            let _ = writeln!(
                memtab,
                "| {} | {} | {} | {} | {} | {} | {} |",
                row.label,
                side.name(),
                mb_of_kb(v, "rss_start_kb"),
                mb_of_kb(v, "op_peak_rss_kb"),
                mb_of_kb(v, "peak_rss_kb"),
                mbb("packs_bytes"),
                mbb("index_bytes"),
            );
        }
        // ru_maxrss also counts the image a process was exec'ed from; the parent is kept small
        // so that it does not matter, and this checks it against the process's own VmHWM.
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
        if let Some((level, name, rate, lim)) = import_limit
            && problems.is_empty()
        {
            let _ = writeln!(
                imports,
                "| {} | level {level} | {} | {rate:.0} | {} | {name} | {} | {} |",
                row.label,
                archives.get(&level).map_or("-".into(), |i| format!(
                    "{:.1}",
                    i.archive_bytes as f64 / 1e6
                )),
                ds_.get("passthrough")
                    .and_then(Value::as_u64)
                    .map_or("-".into(), |n| n.to_string()),
                lim.map_or("-".into(), |l| format!("{l:.0}")),
                lim.map_or("-".into(), |l| format!("{:.0} %", 100.0 * rate / l)),
            );
        }
        if let Some((name, rate, lim)) = limit
            && problems.is_empty()
        {
            let _ = writeln!(
                limits,
                "| {} | {rate:.0} | {name} | {} | {} |",
                row.label,
                lim.map_or("-".into(), |l| format!("{l:.0}")),
                lim.map_or("-".into(), |l| format!("{:.0} %", 100.0 * rate / l)),
            );
        }
        results.push(json!({
            "operation": row.label,
            "objects": objects,
            "bytes": bytes,
            "ok": problems.is_empty(),
            "problems": problems,
            "python_plus_fsync_s": py_fsync,
            "ratio_at_equal_durability": py_fsync.map(|t| t / doss),
            "validate_limit": limit.map(|(name, rate, lim)| json!({
                "limit": name,
                "dos_mbs": rate,
                "limit_mbs": lim,
                "fraction_of_limit": lim.map(|l| rate / l),
            })),
            "import_limit": import_limit.map(|(level, name, rate, lim)| json!({
                "archive_level": level,
                "limit": name,
                "dos_mbs": rate,
                "limit_mbs": lim,
                "fraction_of_limit": lim.map(|l| rate / l),
            })),
            "python": per_side[0].1,
            "dos": per_side[1].1,
        }));
        // Loose containers are many files and not needed afterwards.
        if row.op == "loose" {
            runner.remove_loose()?;
        }
        if row.base == Some("base-loose") {
            for side in [Side::Python, Side::Dos] {
                let _ = fs::remove_file(runner.container(row, side).with_extension("ok"));
                runner.remove_container(&runner.container(row, side), true)?;
            }
        }
        for (side, v) in [(Side::Python, &per_side[0].1), (Side::Dos, &per_side[1].1)] {
            let times: Vec<String> = v.iter().map(|r| format!("{:.2}", secs(r))).collect();
            let _ = writeln!(
                spread,
                "| {} | {} | {} |",
                row.label,
                side.name(),
                times.join(", ")
            );
        }
    }

    println!(
        "\n{} objects ({:.1} MB, {} unique, {:.1} MB unique), seed {}; loose: first {} files \
         ({:.1} MB); has: {} keys; median of {} run(s) per side\n",
        inp.n,
        inp.total_bytes as f64 / 1e6,
        inp.unique,
        inp.unique_bytes as f64 / 1e6,
        a.seed,
        inp.loose_n,
        inp.loose_bytes as f64 / 1e6,
        inp.has_n,
        a.repeat
    );
    if let Some(p) = &probes {
        println!("{}", probe_text(p));
    }
    println!("{table}");
    if limits.lines().count() > 2 {
        println!("{limits}");
    }
    if imports.lines().count() > 2 {
        for (level, i) in &archives {
            println!(
                "archive level {level}: {} repo entries, {:.1} MB uncompressed, {:.1} MB stored \
                 in the zip, {} nodes in db.sqlite3 ({:.1} MB), {:.1} MB file, zip64 {}",
                i.repo_entries,
                i.repo_bytes as f64 / 1e6,
                i.repo_stored_bytes as f64 / 1e6,
                i.nodes,
                i.db_bytes as f64 / 1e6,
                i.archive_bytes as f64 / 1e6,
                if i.zip64 { "yes" } else { "no" }
            );
        }
        println!("\n{imports}");
    }
    println!("{memtab}");
    println!("{spread}");
    if let Some(path) = &a.json {
        let doc = json!({
            "n": inp.n,
            "seed": a.seed,
            "total_bytes": inp.total_bytes,
            "unique": inp.unique,
            "unique_bytes": inp.unique_bytes,
            "loose_n": inp.loose_n,
            "has_n": inp.has_n,
            "repeat": a.repeat,
            "python": pyver,
            "probes": probes,
            "archives": archives,
            "rows": results,
        });
        fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("write {}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    if !all_ok {
        bail!("some results were wrong; no ratio was printed for them");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_results_are_reported() {
        let e = Expect {
            objects: 3,
            bytes: Some(30),
            keyset: Some((3, "abc".into())),
            ..Expect::default()
        };
        let good = json!({"objects": 3, "bytes": 30, "keyset_count": 3, "keyset_digest": "abc"});
        assert!(check(&good, &e).is_empty());
        let short = json!({"objects": 3, "bytes": 29, "keyset_count": 3, "keyset_digest": "abc"});
        assert_eq!(check(&short, &e).len(), 1);
        let other = json!({"objects": 2, "bytes": 30, "keyset_count": 3, "keyset_digest": "abd"});
        assert_eq!(check(&other, &e).len(), 2);
        let m = Expect {
            objects: 3,
            no_problems: true,
            no_holes: true,
            ..Expect::default()
        };
        let clean = json!({"objects": 3, "problems": 0, "packfiles_bytes": 9, "packed_on_disk": 9});
        assert!(check(&clean, &m).is_empty());
        let holes = json!({"objects": 3, "problems": 1, "packfiles_bytes": 10, "packed_on_disk": 9,
            "op_count": 2});
        assert_eq!(check(&holes, &m).len(), 3);
    }

    #[test]
    fn ops_selection() {
        let all: Vec<&str> = select_rows("all")
            .unwrap()
            .iter()
            .map(|r| r.label)
            .collect();
        assert_eq!(
            all,
            [
                "loose",
                "pack",
                "pack, dedup",
                "pack-z",
                "read",
                "read-z",
                "has"
            ]
        );
        let maint: Vec<&str> = select_rows("maintenance")
            .unwrap()
            .iter()
            .map(|r| r.label)
            .collect();
        assert_eq!(
            maint,
            [
                "pack-loose",
                "pack-loose-z",
                "validate",
                "validate-z",
                "repack"
            ]
        );
        let imports: Vec<(&str, Option<u32>, bool)> = select_rows("archive,import-l0")
            .unwrap()
            .iter()
            .map(|r| (r.label, r.archive, r.compress))
            .collect();
        assert_eq!(
            imports,
            [
                ("import", Some(6), false),
                ("import-z", Some(6), true),
                ("import-l0", Some(0), false)
            ]
        );
        assert!(select_rows("bogus").is_err());
    }
}
