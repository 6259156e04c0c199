//! The command line: the comparison's own options and its subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use dos_bench::r#gen::GenOptions;

use crate::ops::Api;

/// `dos-compare [OPTIONS]` (the comparison) or `dos-compare <COMMAND>`.
#[derive(Parser, Debug)]
#[command(
    name = "dos-compare",
    about = "Compare dos-core with Python disk-objectstore on a generated AiiDA-like data set",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    // A subcommand, or none for the comparison itself.
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
    // The comparison's options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Generate (or reuse) the data set and print its statistics.
    Gen(GenArgs),
    /// Generate (or reuse) the data set and its AiiDA archive `<data set>/archive-l<level>.aiida`.
    GenArchive(GenArchiveArgs),
    /// Run one timed dos operation (used by the comparison itself).
    #[command(hide = true)]
    Child(ChildArgs),
    /// The scale benchmark: containers of 10^5..10^7 tiny objects, every operation timed on both
    /// sides in fresh processes, per-object cost and its growth with the container's size.
    Scale(ScaleArgs),
    /// Run one dos operation of the scale benchmark (used by `scale` itself).
    #[command(hide = true)]
    ScaleChild(ScaleChildArgs),
}

/// Which data set, and where it and the containers live (shared by the comparison, `gen` and
/// `gen-archive`).
#[derive(Args, Debug)]
pub struct DataSetArgs {
    /// Number of objects.
    #[arg(long, default_value_t = 100_000)]
    pub n: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Root folder of data sets and containers (default: `bench-data` in the repository).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl DataSetArgs {
    /// The generator options of the data set.
    pub fn gen_options(&self) -> GenOptions {
        GenOptions {
            n: self.n,
            seed: self.seed,
        }
    }
}

/// `gen`: the data set's statistics.
#[derive(Args, Debug)]
pub struct GenArgs {
    // The data set.
    #[command(flatten)]
    pub data: DataSetArgs,
}

/// `gen-archive`: the data set's AiiDA archive.
#[derive(Args, Debug)]
#[command(
    mut_arg("n", |a| a.help(
        "Number of objects of the data set (the archive holds its unique ones)"
    )),
    mut_arg("data_dir", |a| a.help(
        "Root folder of data sets and containers (default: `bench-data` in the repository). \
         Large cases (840k) belong outside the repository"
    ))
)]
pub struct GenArchiveArgs {
    // The data set.
    #[command(flatten)]
    pub data: DataSetArgs,
    /// Deflate level of the entries (0: all STORED, as `verdi archive import`'s migration writes).
    #[arg(long, default_value_t = 6)]
    pub level: u32,
}

/// The comparison (no subcommand).
#[derive(Args, Debug)]
pub struct RunArgs {
    // The data set.
    #[command(flatten)]
    pub data: DataSetArgs,
    /// Python interpreter with disk-objectstore installed (default: `.venv/bin/python` in the
    /// repository if it exists, else `$DOS_PYTHON`).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// The API measured: `rust` (dos-core against disk-objectstore), or `python`
    /// (`dos_objectstore.Container` against `disk_objectstore.Container` in the same venv; select
    /// its operations with `--ops python-api`).
    #[arg(long, value_enum, default_value_t = Api::Rust)]
    pub api: Api,
    /// Operations, comma-separated: all (= loose,pack,pack-z,read,read-z,has), maintenance (=
    /// pack-loose,pack-loose-z,validate,validate-z,repack), archive (= import,import-z), loose,
    /// pack, pack-z, pack-files, read, read-z, has, pack-loose, pack-loose-z, validate,
    /// validate-z, repack, import, import-z, import-l0; with `--api python` also python-api (=
    /// loose,pack,pack-files,read,get-one,get-content,has,list,count,size,pack-loose,
    /// pack-loose-z,validate,repack), get-one, get-content, list, count, size.
    #[arg(long, default_value = "all")]
    pub ops: String,
    /// Files added by the `loose` operation (the first ones of the data set).
    #[arg(long, default_value_t = 20_000)]
    pub loose_n: usize,
    /// Keys queried by the `has` operation.
    #[arg(long, default_value_t = 1_000_000)]
    pub has_n: usize,
    /// Runs per side and operation; the median time is reported.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// `compression_algorithm` of the containers the dos side creates (`zlib+N` or `zstd+N`;
    /// default `zlib+1`, as Python's). Python's side always writes `zlib+1`, the only coding it
    /// has.
    #[arg(long, value_name = "ALGO")]
    pub compression: Option<String>,
    /// Before loose runs, wait until this many seconds have passed since the last deletion of
    /// loose containers (ext4 creates files slowly right after many were deleted).
    #[arg(long, default_value_t = 90)]
    pub inode_quiet_secs: u64,
    /// Write all results (every run) to this JSON file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Skip the machine probes (hash, inflate, compress and disk throughput).
    #[arg(long)]
    pub no_probes: bool,
    /// Megabytes of the data set's unique content (an evenly strided sample) used by the CPU
    /// probes.
    #[arg(long, default_value_t = 256)]
    pub probe_mb: u64,
    /// MiB written by the sequential write + fdatasync probe.
    #[arg(long, default_value_t = 1024)]
    pub probe_write_mib: u64,
    /// Runs of the write + fdatasync probe (the median is reported; the disk varies).
    #[arg(long, default_value_t = 3)]
    pub probe_write_runs: usize,
}

/// `child`: one timed dos operation, its result printed as one JSON line.
#[derive(Args, Debug)]
pub struct ChildArgs {
    /// loose, pack, pack-files, read, has, pack-loose, validate, repack, import, delete (untimed
    /// preparation) or probe (machine probes; `--container` is then the folder to write in).
    pub op: String,
    /// The container folder (created by write operations unless `--existing`).
    #[arg(long)]
    pub container: PathBuf,
    /// One path (write operations, probe) or key (read, has, delete) per line.
    #[arg(long)]
    pub list: Option<PathBuf>,
    /// Keys whose packed state `pack-loose` reports afterwards, or that `import` reads back and
    /// hashes afterwards (untimed).
    #[arg(long)]
    pub keys: Option<PathBuf>,
    /// `import`: the archive; `probe`: an archive whose deflate streams are sampled.
    #[arg(long)]
    pub archive: Option<PathBuf>,
    /// Probe: megabytes (uncompressed) of the archive's entries sampled.
    #[arg(long, default_value_t = 256)]
    pub archive_probe_mb: u64,
    /// Write operations: open the existing container instead of creating one.
    #[arg(long)]
    pub existing: bool,
    /// Probe: MiB written by the write + fdatasync probe.
    #[arg(long, default_value_t = 1024)]
    pub write_mib: u64,
    /// Probe: runs of the write + fdatasync probe.
    #[arg(long, default_value_t = 3)]
    pub write_runs: usize,
    /// Compress packed objects.
    #[arg(long)]
    pub compress: bool,
    /// Skip objects already stored (`skip_existing`; Python's `no_holes=True`).
    #[arg(long)]
    pub dedup: bool,
    /// `compression_algorithm` of a container the operation creates.
    #[arg(long, value_name = "ALGO")]
    pub compression: Option<String>,
}

/// `scale`: the scale benchmark.
#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// Container sizes (objects), comma-separated, ascending; the per-object growth is reported
    /// between consecutive sizes.
    #[arg(long, default_value = "1000000,10000000", value_delimiter = ',')]
    pub objects: Vec<u64>,
    /// Seed of the objects' content.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Root folder of the base containers and their working copies (reused between runs: a base
    /// whose manifest matches its size and seed is not generated again).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Python interpreter with disk-objectstore installed (default: `.venv/bin/python` in the
    /// repository if it exists, else `$DOS_PYTHON`).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Seconds after which a Python child is killed and its operation recorded as `timeout`.
    #[arg(long, default_value_t = 900)]
    pub python_timeout: u64,
    /// Address-space limit of a Python child (RLIMIT_AS, MiB; 0: none): one that needs more fails
    /// with MemoryError and is recorded as `failed` instead of pushing the machine into swap or
    /// the OOM killer (Python's repack holds every row of the index in memory: 2.3 GB at 10^6).
    #[arg(long, default_value_t = 12_288)]
    pub python_memory_limit_mb: u64,
    /// Operations, comma-separated: all, or ls, status, has, validate, meta, delete-repack, pack,
    /// add-pack, clean.
    #[arg(long, default_value = "all")]
    pub ops: String,
    /// Operations the Python side runs (same names; `none` for none).
    #[arg(long, default_value = "all")]
    pub python_ops: String,
    /// Operations the Python side runs at one size, overriding `--python-ops` there:
    /// `N=op,op,...` (repeatable), e.g. `--python-ops-at 10000000=ls,status,validate,meta`.
    #[arg(long, value_name = "N=OPS")]
    pub python_ops_at: Vec<String>,
    /// Keys asked by `has` (half present, half absent, shuffled; at most all objects present).
    #[arg(long, default_value_t = 1_000_000)]
    pub has_n: u64,
    /// Present keys asked by `meta`.
    #[arg(long, default_value_t = 100_000)]
    pub meta_n: u64,
    /// New objects of `pack` (loose objects linked untimed into the copy first) and of
    /// `add-pack` (the same objects, read into memory untimed, written straight into packs).
    #[arg(long, default_value_t = 100_000)]
    pub pack_n: u64,
    /// One object in this many is loose in the base containers (the rest is packed).
    #[arg(long, default_value_t = 100)]
    pub loose_every: u64,
    /// One packed object in this many is deleted by `delete-repack`.
    #[arg(long, default_value_t = 100)]
    pub delete_every: u64,
    /// Runs per side and operation (alternating, the median reported; every run in the JSON).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Write the results here (default: `benches/results/scale-<short commit>-<date>.json`).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// `scale-child`: one operation of the scale benchmark on the dos side, its result printed as one
/// JSON line.
#[derive(Args, Debug)]
pub struct ScaleChildArgs {
    /// ls, status, has, validate, meta, delete-repack, pack, add-pack, clean (timed); gen (the
    /// base container and its key lists) and add-loose (new loose objects; untimed preparation).
    pub op: String,
    /// add-pack: the container whose loose objects are written into packs.
    #[arg(long)]
    pub source: Option<PathBuf>,
    /// The container folder.
    #[arg(long)]
    pub container: PathBuf,
    /// One key per line (has, meta, delete-repack).
    #[arg(long)]
    pub list: Option<PathBuf>,
    /// Seed of the objects' content (gen, add-loose).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// gen: objects of the base container; add-loose: index of the first new object.
    #[arg(long, default_value_t = 0)]
    pub n: u64,
    /// add-loose: objects added.
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// gen: one object in this many is loose.
    #[arg(long, default_value_t = 100)]
    pub loose_every: u64,
    /// gen: where the key lists go.
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// gen: keys of the `has` list.
    #[arg(long, default_value_t = 1_000_000)]
    pub has_n: u64,
    /// gen: keys of the `meta` list.
    #[arg(long, default_value_t = 100_000)]
    pub meta_n: u64,
    /// gen: one packed object in this many goes to the `delete-repack` list.
    #[arg(long, default_value_t = 100)]
    pub delete_every: u64,
    /// validate: `ValidateOptions::max_rows_in_memory` instead of its default (for profiling the
    /// in-memory sort against the spilled one).
    #[arg(long)]
    pub max_rows_in_memory: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
