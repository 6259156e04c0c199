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
        /// Files to add.
        #[arg(required = true)]
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
}
