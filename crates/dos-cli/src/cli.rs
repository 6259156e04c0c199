//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// A fast, disk-objectstore compatible content-addressed object store.
#[derive(Debug, Parser)]
#[command(name = "dos", version, about, max_term_width = 100)]
pub struct Cli {
    /// The container folder.
    #[arg(
        short,
        long,
        global = true,
        env = "DOSTORE_PATH",
        default_value = "dostore"
    )]
    pub path: PathBuf,
    /// No progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Hash types of `init`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum HashArg {
    /// SHA-256 (the default, what AiiDA uses).
    Sha256,
    /// SHA-1.
    Sha1,
}

/// Compression modes of writes to packs.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum CompressArg {
    /// Store raw bytes.
    No,
    /// Compress every object.
    Yes,
    /// Compress objects that shrink below 90% of their size.
    Auto,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new container (the folder must be empty or missing).
    Init {
        /// Packs are closed for appends once they reach this many bytes.
        #[arg(long, default_value_t = dos_core::config::DEFAULT_PACK_SIZE_TARGET)]
        pack_size_target: u64,
        /// Hex characters of the loose shard folder (0 = flat).
        #[arg(long, default_value_t = dos_core::config::DEFAULT_LOOSE_PREFIX_LEN)]
        loose_prefix_len: usize,
        /// Hash type of object keys.
        #[arg(long, value_enum, default_value = "sha256")]
        hash_type: HashArg,
        /// Compression of packed objects: zlib+1 .. zlib+9.
        #[arg(long, default_value = "zlib+1")]
        compression: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add files (or `-` for standard input); prints "<hashkey>  <path>" per file.
    Add {
        /// Write straight into pack files instead of loose objects.
        #[arg(long)]
        pack: bool,
        /// Compress objects written to packs: `--compress` (= yes), `--compress=auto`, `--compress=no`.
        #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "yes", requires = "pack")]
        compress: Option<CompressArg>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Also add the files listed in this file, one path per line (`-` = standard input).
        #[arg(long, value_name = "LIST")]
        files_from: Option<PathBuf>,
        /// Files to add.
        #[arg(required_unless_present = "files_from")]
        files: Vec<PathBuf>,
    },
    /// Write the raw content of an object to standard output.
    Cat {
        /// The object's hash key.
        hashkey: String,
    },
    /// List every object's hash key, one per line, sorted.
    Ls,
    /// Show where objects are stored and their sizes.
    Meta {
        /// Hash keys.
        #[arg(required = true)]
        hashkeys: Vec<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show counts and sizes of the container.
    Status {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move every loose object into packs (Python's pack_all_loose).
    Pack {
        /// Compression of the packed copies.
        #[arg(long, value_enum, default_value = "no")]
        compress: CompressArg,
        /// Delete loose copies as soon as their pack's index commit is durable.
        #[arg(long)]
        clean_loose: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rewrite packs that have holes (or need another compression), then VACUUM the index.
    Repack {
        /// Compression of the rewritten objects.
        #[arg(long, value_enum, default_value = "keep")]
        compress: RepackArg,
        /// Rewrite every pack, even those without holes.
        #[arg(long)]
        force: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify every object's hash and size, and the container's structure (exit 1 if invalid).
    Validate {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Read packs with pread instead of mapping them (mapping is faster; a pack file cut
        /// by hand during the run would then kill the process with SIGBUS).
        #[arg(long)]
        no_mmap: bool,
    },
    /// Remove loose copies of packed objects, resolved duplicates, stale sandbox files and locks.
    Clean {
        /// VACUUM the index afterwards.
        #[arg(long)]
        vacuum: bool,
        /// Keep sandbox files younger than this many seconds (they may belong to live writers).
        #[arg(long, default_value_t = 3600)]
        sandbox_age: u64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete objects (their packed bytes become holes until a repack).
    Delete {
        /// Hash keys.
        #[arg(required = true)]
        hashkeys: Vec<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pack (deleting loose copies), clean, repack and vacuum in one go.
    Optimize {
        /// Compression of newly packed objects.
        #[arg(long, value_enum, default_value = "no")]
        compress: CompressArg,
        /// Compression of repacked objects.
        #[arg(long, value_enum, default_value = "keep")]
        repack_compress: RepackArg,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Import an AiiDA archive's repository files straight into packs (verified, in parallel).
    ImportArchive {
        /// The `.aiida` archive.
        archive: PathBuf,
        /// Compression of the stored objects (`yes`/`auto` keep the archive's deflate streams).
        #[arg(long, value_enum, default_value = "no")]
        compress: CompressArg,
        /// Import only the objects the archive's database references.
        #[arg(long)]
        referenced_only: bool,
        /// Refuse entries that declare more than this many bytes.
        #[arg(long, value_name = "BYTES")]
        max_entry_size: Option<u64>,
        /// Refuse archives whose entries declare more than this many bytes in total.
        #[arg(long, value_name = "BYTES")]
        max_total_size: Option<u64>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Describe an AiiDA archive (with -p: also how many of its objects are new).
    ArchiveInfo {
        /// The `.aiida` archive.
        archive: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write an AiiDA archive of the objects an archive database references.
    ExportArchive {
        /// The archive to write.
        out: PathBuf,
        /// The archive database (`db.sqlite3`) whose nodes' files to export.
        #[arg(long)]
        db: PathBuf,
        /// The `metadata.json` to include (default: a minimal one, export_version main_0001).
        #[arg(long)]
        metadata: Option<PathBuf>,
        /// Deflate level (0 = store).
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=9))]
        level: u32,
        /// Replace OUT if it exists.
        #[arg(long)]
        overwrite: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy objects of another container straight into this one's packs.
    ImportObjects {
        /// The container to copy from.
        source: PathBuf,
        /// Compress the copies.
        #[arg(long, value_enum, default_value = "no")]
        compress: CompressArg,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Compression modes of repack.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum RepackArg {
    /// Keep each object as it is.
    Keep,
    /// Store everything uncompressed.
    No,
    /// Compress everything.
    Yes,
    /// Compress what shrinks below 90%.
    Auto,
}
