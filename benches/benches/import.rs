//! Criterion benchmarks of `dos_archive::import_archive`: an AiiDA archive (deflate level 6,
//! aiida's layout, see `dos_bench::archive`) made from a generated data set, imported into a
//! fresh container.
//!
//! - `import/20k/{plain,passthrough}`: the archive of the 20,000-object data set (seed 42), into
//!   uncompressed packs, and into compressed packs (the archive's deflate streams passed through).
//!   The data set and archive are cached in `$DOS_BENCH_DATA` (default: `bench-data` in the
//!   repository, shared with `dos-compare`) and made on the first run. `DOS_BENCH_IMPORT_N`
//!   changes the number of objects (e.g. 5000 for a quick check).
//! - `import/840k/{plain,passthrough}`: the recommended 840,000-object case (an archive of about
//!   12 GB), only when `DOS_BENCH_840K=/path/to/cache` names a folder outside the repository with
//!   room for the data set, its archive and one imported container (about 30 GB). Make the cache
//!   once with `dos-compare gen-archive --n 840000 --data-dir /path/to/cache` (otherwise this
//!   bench makes it, which takes a long while). Not part of CI.
//!
//! Containers are created next to the archive (same filesystem) and deleted after each
//! iteration, untimed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, ensure};
use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use dos_archive::ImportOptions;
use dos_bench::archive::{self, ArchiveInfo};
use dos_bench::{Dataset, GenOptions};
use dos_core::{CompressMode, Container, InitOptions, NoProgress};

const SEED: u64 = 42;

/// Unwrap a result inside a measured closure (which cannot return errors), with the full chain.
fn must<T, E: std::fmt::Display>(r: std::result::Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("benchmark operation failed: {e:#}"),
    }
}

fn default_root() -> PathBuf {
    if let Some(p) = std::env::var_os("DOS_BENCH_DATA") {
        return PathBuf::from(p);
    }
    let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
    bench.parent().unwrap_or(bench).join("bench-data")
}

/// The data set of `n` objects under `root` and its level-6 archive (made when missing).
fn archive_of(root: &Path, n: usize) -> Result<(PathBuf, ArchiveInfo, u64)> {
    let opts = GenOptions { n, seed: SEED };
    let dir = root.join(format!("dataset-n{n}-s{SEED}"));
    std::fs::create_dir_all(&dir)?;
    let (ds, reused) = Dataset::generate_or_reuse(&dir, opts)?;
    if !reused {
        eprintln!("generated data set {}", dir.display());
    }
    let (info, reused) = archive::generate_or_reuse(&ds, 6)?;
    let path = archive::archive_path(&ds.dir, 6);
    if !reused {
        eprintln!("generated archive {}", path.display());
    }
    let nonempty = ds
        .unique_indices()
        .into_iter()
        .filter(|&i| ds.entries[i].size > 0)
        .count() as u64;
    Ok((path, info, nonempty))
}

/// A fresh, empty container in a temporary folder under `root` (removed on drop); the filesystem
/// is synced first (untimed), so that data written or freed by earlier iterations is not flushed
/// during the next measured one.
fn fresh(root: &Path) -> Result<(tempfile::TempDir, Container)> {
    let dir = tempfile::Builder::new()
        .prefix("import-bench-")
        .tempdir_in(root)?;
    let c = Container::init(&dir.path().join("c"), &InitOptions::default())?;
    dos_core::durable::sync_filesystem(dir.path())?;
    Ok((dir, c))
}

fn bench_import(c: &mut Criterion, name: &str, root: &Path, n: usize, large: bool) -> Result<()> {
    let (path, info, nonempty) = archive_of(root, n)?;
    let mut g = c.benchmark_group(format!("import/{name}"));
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .throughput(Throughput::Bytes(info.repo_bytes));
    if large {
        g.warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(60));
    } else {
        g.measurement_time(Duration::from_secs(10));
    }
    for (fname, mode) in [
        ("plain", CompressMode::No),
        ("passthrough", CompressMode::Yes),
    ] {
        let opts = ImportOptions {
            compress: mode,
            ..Default::default()
        };
        g.bench_function(fname, |b| {
            b.iter_batched(
                || must(fresh(root)),
                |(dir, cont)| {
                    let s = must(dos_archive::import_archive(
                        &cont,
                        &path,
                        &opts,
                        &NoProgress,
                    ));
                    must(check(&s, &info, mode, nonempty));
                    // Dropped (deleted) after the measurement.
                    (dir, cont)
                },
                BatchSize::PerIteration,
            );
        });
    }
    g.finish();
    Ok(())
}

fn check(
    s: &dos_archive::ArchiveImportSummary,
    info: &ArchiveInfo,
    mode: CompressMode,
    nonempty: u64,
) -> Result<()> {
    ensure!(s.is_complete(), "bad entries: {:?}", s.bad_entries);
    ensure!(
        s.imported == info.repo_entries && s.bytes_in == info.repo_bytes,
        "imported {} objects ({} bytes), the archive holds {} ({} bytes)",
        s.imported,
        s.bytes_in,
        info.repo_entries,
        info.repo_bytes
    );
    let want = if mode == CompressMode::No {
        0
    } else {
        nonempty
    };
    ensure!(
        s.passthrough == want,
        "passthrough {} != {want}",
        s.passthrough
    );
    Ok(())
}

fn run(c: &mut Criterion) -> Result<()> {
    let root = default_root();
    std::fs::create_dir_all(&root)?;
    let n: usize = match std::env::var("DOS_BENCH_IMPORT_N") {
        Ok(v) => v.parse()?,
        Err(_) => 20_000,
    };
    bench_import(c, &format!("{}k", n / 1000), &root, n, false)?;
    match std::env::var_os("DOS_BENCH_840K") {
        Some(cache) if !cache.is_empty() => {
            let cache = PathBuf::from(cache);
            std::fs::create_dir_all(&cache)?;
            bench_import(c, "840k", &cache, 840_000, true)?;
        }
        _ => eprintln!(
            "import/840k: skipped (set DOS_BENCH_840K=/path/to/cache, outside the repository, to \
             run it; see the module docs)"
        ),
    }
    Ok(())
}

/// Entry point of the criterion group.
fn benches(c: &mut Criterion) {
    if let Err(e) = run(c) {
        panic!("benchmark setup failed: {e:#}");
    }
}

criterion_group!(import, benches);
criterion_main!(import);
