//! Where data sets live, the `gen` and `gen-archive` subcommands, and the list files (one path or
//! key per line) the children read.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use dos_bench::archive;
use dos_bench::r#gen::{Dataset, GenOptions, Kind, Plan};

use crate::args::{GenArchiveArgs, GenArgs};

/// The repository (the parent of the `benches` crate).
pub fn repo_root() -> PathBuf {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
    bench.parent().unwrap_or(bench).to_path_buf()
}

/// The root folder of data sets and containers: `arg`, or `bench-data` in the repository.
pub fn data_root(arg: &Option<PathBuf>) -> PathBuf {
    arg.clone()
        .unwrap_or_else(|| repo_root().join("bench-data"))
}

/// The folder of the data set of `opts` under `root`.
fn dataset_dir(root: &Path, opts: GenOptions) -> PathBuf {
    root.join(format!("dataset-n{}-s{}", opts.n, opts.seed))
}

/// Generate or reuse the data set, reporting what happened.
pub fn load_dataset(root: &Path, opts: GenOptions) -> Result<Dataset> {
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

/// The value at fraction `p` (0 to 1) of the ascending `sorted` (0 when empty).
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx]
}

/// `gen`: generate or reuse the data set and print its statistics.
pub fn gen_stats(a: &GenArgs) -> Result<()> {
    let opts = a.data.gen_options();
    let root = data_root(&a.data.data_dir);
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
    print_compressibility(&plan, &uniq);
    Ok(())
}

/// Compressibility of each kind, on a sample of the unique objects `uniq`, with the container's
/// own compressor.
fn print_compressibility(plan: &Plan, uniq: &[usize]) {
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
}

/// `gen-archive`: generate or reuse the data set and its AiiDA archive, and describe the archive.
pub fn gen_archive(a: &GenArchiveArgs) -> Result<()> {
    let opts = a.data.gen_options();
    let root = data_root(&a.data.data_dir);
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

/// The non-blank lines of the list file `path`.
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
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

/// Write the list file `path`: each of `items` followed by a newline.
pub fn write_list<I, S>(path: &Path, items: I) -> Result<()>
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_sorted_sizes() {
        assert_eq!(percentile(&[], 0.5), 0);
        assert_eq!(percentile(&[1, 2, 3, 4, 5], 0.5), 3);
        assert_eq!(percentile(&[1, 2, 3, 4, 5], 1.0), 5);
    }

    #[test]
    fn lists_round_trip_without_blank_lines() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("list.txt");
        write_list(&path, ["a", "", "b"])?;
        assert_eq!(read_lines(&path)?, ["a", "b"]);
        Ok(())
    }
}
