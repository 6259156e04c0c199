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
//! The modules: [`args`] (the command line), [`dataset`] (data sets, `gen`, `gen-archive`, list
//! files), [`child`] (the dos side's timed operations), [`probe`] (machine probes), [`ops`] (the
//! table of operations), [`inputs`] (the shared inputs), [`expect`] (what each result must be),
//! [`runner`] (running the children), [`compare`] (the comparison) and [`report`] (its tables and
//! JSON results); [`scale`] is the scale benchmark (`dos-compare scale`: per-object cost of each
//! operation on containers of 10^5..10^7 tiny objects, and its growth with their size), with
//! modules of its own.
//!
//! ```text
//! cargo run --release -p dos-bench --bin dos-compare -- [--n 100000] [--data-dir bench-data]
//!     [--python .venv/bin/python] [--ops all|maintenance|archive|loose,pack,pack-z,read,read-z,
//!     has,pack-files,pack-loose,pack-loose-z,validate,validate-z,repack,import,import-z,
//!     import-l0] [--repeat 1] [--json out.json] [--no-probes]
//! cargo run --release -p dos-bench --bin dos-compare -- gen --n 100000   # data set statistics
//! cargo run --release -p dos-bench --bin dos-compare -- gen-archive --n 100000 [--level 6]
//! cargo run --release -p dos-bench --bin dos-compare -- scale --objects 1000000,10000000 \
//!     --data-dir /path/outside [--python-timeout 900] [--json out.json]
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

mod args;
mod child;
mod compare;
mod dataset;
mod expect;
mod inputs;
mod ops;
mod probe;
mod report;
mod runner;
mod scale;

use anyhow::Result;
use clap::Parser;

use crate::args::{Cli, Cmd};

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Some(Cmd::Child(a)) => child::child(&a),
        Some(Cmd::Gen(a)) => dataset::gen_stats(&a),
        Some(Cmd::GenArchive(a)) => dataset::gen_archive(&a),
        Some(Cmd::Scale(a)) => scale::scale(&a),
        Some(Cmd::ScaleChild(a)) => scale::child::child(&a),
        None => compare::compare(&cli.run),
    }
}
