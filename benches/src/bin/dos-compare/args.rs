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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
