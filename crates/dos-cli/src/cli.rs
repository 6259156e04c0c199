//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    Init(InitArgs),
    /// Add files (or `-` for standard input); prints "<hashkey>  <path>" per file.
    Add(AddArgs),
    /// Write the raw content of an object to standard output.
    Cat(CatArgs),
    /// List every object's hash key, one per line, sorted.
    Ls,
    /// Show where objects are stored and their sizes.
    Meta(MetaArgs),
    /// Show counts and sizes of the container.
    Status(StatusArgs),
    /// Move every loose object into packs (Python's pack_all_loose).
    Pack(PackArgs),
    /// Rewrite packs that have holes (or need another compression), then VACUUM the index.
    Repack(RepackArgs),
    /// Verify every object's hash and size, and the container's structure (exit 1 if invalid).
    Validate(ValidateArgs),
    /// Remove loose copies of packed objects, resolved duplicates, stale sandbox files and locks.
    Clean(CleanArgs),
    /// Delete objects (their packed bytes become holes until a repack).
    Delete(DeleteArgs),
    /// Back up the container into a folder of incremental backups (disk-objectstore's layout).
    Backup(BackupArgs),
    /// Pack (deleting loose copies), clean, repack and vacuum in one go.
    Optimize(OptimizeArgs),
    /// Import an AiiDA archive's repository files straight into packs (verified, in parallel).
    ImportArchive(ImportArchiveArgs),
    /// Describe an AiiDA archive (with -p: also how many of its objects are new).
    ArchiveInfo(ArchiveInfoArgs),
    /// Write an AiiDA archive of the objects an archive database references.
    ExportArchive(ExportArchiveArgs),
    /// Copy objects of another container straight into this one's packs.
    ImportObjects(ImportObjectsArgs),
    /// Name (or show) the S3 bucket this container offloads packs to.
    #[command(subcommand)]
    Remote(RemoteCommand),
    /// Upload sealed packs to the remote store and remove their local files.
    Offload(OffloadArgs),
    /// Bring offloaded packs back to local files (after which Python reads them again).
    FetchPacks(FetchPacksArgs),
}

/// `dos remote` subcommands.
#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Set the remote store: s3://BUCKET/PREFIX (kept in dos-remote.json; no credentials are
    /// written: they come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or ~/.aws/credentials).
    Set(RemoteSetArgs),
    /// Show the remote store and where the packs are.
    Show(RemoteShowArgs),
}

/// Arguments of `dos remote set`.
#[derive(Debug, Args)]
pub struct RemoteSetArgs {
    /// The location: s3://BUCKET/PREFIX.
    pub url: String,
    /// The S3 server (e.g. http://127.0.0.1:7480 for a local Ceph RGW); default:
    /// AWS_ENDPOINT_URL, else AWS.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// The region (default: AWS_REGION, else us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// Keep up to this many bytes of remote ranges read in a local cache (dos-cache/; 0: none).
    #[arg(long, default_value_t = 0)]
    pub cache_bytes: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `dos remote show`.
#[derive(Debug, Args)]
pub struct RemoteShowArgs {
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `dos offload`.
#[derive(Debug, Args)]
pub struct OffloadArgs {
    /// Only these packs (default: every sealed pack).
    pub packs: Vec<u64>,
    /// Keep the local files (reads stay local; a later offload without this removes them).
    #[arg(long)]
    pub keep_local: bool,
    /// Only packs last written at least this long ago (e.g. 30m, 12h, 7d).
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub min_age: std::time::Duration,
    /// Also offload packs below the pack size target that no writer holds (stop Python
    /// writers first: they append to such packs without dos's locks).
    #[arg(long)]
    pub include_small: bool,
    /// Afterwards, publish a snapshot of the index next to the packs, so that any machine can
    /// open the container read-only as `dos -p s3://BUCKET/PREFIX`.
    #[arg(long)]
    pub publish: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `dos fetch-packs`.
#[derive(Debug, Args)]
pub struct FetchPacksArgs {
    /// Every offloaded pack.
    #[arg(long, conflicts_with = "packs")]
    pub all: bool,
    /// The packs to bring back.
    #[arg(required_unless_present = "all")]
    pub packs: Vec<u64>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A duration: a number with s, m, h or d (seconds if no unit).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86_400),
        _ => (s, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration such as 90s, 30m, 12h or 7d"))?;
    Ok(std::time::Duration::from_secs(n.saturating_mul(mult)))
}

/// Arguments of `dos init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Packs are closed for appends once they reach this many bytes.
    #[arg(long, default_value_t = dos_core::config::DEFAULT_PACK_SIZE_TARGET)]
    pub pack_size_target: u64,
    /// Hex characters of the loose shard folder (0 = flat).
    #[arg(long, default_value_t = dos_core::config::DEFAULT_LOOSE_PREFIX_LEN)]
    pub loose_prefix_len: usize,
    /// Hash type of object keys.
    #[arg(long, value_enum, default_value = "sha256")]
    pub hash_type: HashArg,
    /// Compression of packed objects: zlib+1 .. zlib+9 (what Python disk-objectstore reads), or
    /// zstd+1 .. zstd+19 (faster to read and smaller, but only dos and dos_objectstore read it).
    #[arg(long, default_value = "zlib+1")]
    pub compression: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `dos add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Write straight into pack files instead of loose objects.
    #[arg(long)]
    pub pack: bool,
    /// Compress objects written to packs: `--compress` (= yes), `--compress=auto`, `--compress=no`.
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "yes", requires = "pack")]
    pub compress: Option<CompressArg>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also add the files listed in this file, one path per line (`-` = standard input).
    #[arg(long, value_name = "LIST")]
    pub files_from: Option<PathBuf>,
    /// Files to add.
    #[arg(required_unless_present = "files_from")]
    pub files: Vec<PathBuf>,
}

/// Arguments of `dos cat`.
#[derive(Debug, Args)]
pub struct CatArgs {
    /// The object's hash key.
    pub hashkey: String,
}

/// Arguments of `dos meta`.
#[derive(Debug, Args)]
pub struct MetaArgs {
    /// Hash keys.
    #[arg(required = true)]
    pub hashkeys: Vec<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `dos status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `dos pack`.
#[derive(Debug, Args)]
pub struct PackArgs {
    /// Compression of the packed copies.
    #[arg(long, value_enum, default_value = "no")]
    pub compress: CompressArg,
    /// Delete loose copies as soon as their pack's index commit is durable.
    #[arg(long)]
    pub clean_loose: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `dos repack`.
#[derive(Debug, Args)]
pub struct RepackArgs {
    /// Compression of the rewritten objects.
    #[arg(long, value_enum, default_value = "keep")]
    pub compress: RepackArg,
    /// Rewrite every pack, even those without holes.
    #[arg(long)]
    pub force: bool,
    /// Nothing else writes to the container: remove packs without objects at once (otherwise
    /// only once they are 10 minutes old, as a concurrent Python writer may not have committed
    /// its objects yet).
    #[arg(long)]
    pub exclusive: bool,
    /// Convert the container to this compression algorithm (zlib+1 .. zlib+9, which Python
    /// disk-objectstore reads, or zstd+1 .. zstd+19): every compressed object is re-encoded
    /// and new objects are written with it. Crash-safe; run it again to finish an interrupted
    /// conversion. Stop other writers first.
    #[arg(long, value_name = "ALGORITHM")]
    pub compression: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `dos validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Read packs with pread instead of mapping them (mapping is faster; a pack file cut
    /// by hand during the run would then kill the process with SIGBUS).
    #[arg(long)]
    pub no_mmap: bool,
}

/// Arguments of `dos clean`.
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// VACUUM the index afterwards.
    #[arg(long)]
    pub vacuum: bool,
    /// Keep sandbox files younger than this many seconds (they may belong to live writers).
    #[arg(long, default_value_t = 3600)]
    pub sandbox_age: u64,
    /// With a remote store: delete remote objects nothing refers to once this old (they may
    /// be uploads of a running offload, or packs of a snapshot a reader opened before).
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    pub remote_grace: std::time::Duration,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `dos backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backups folder: the new backup becomes `DEST/backup_<UTC time>_<random>`, with
    /// `DEST/last-backup` pointing at it; unchanged files are hard links to the previous backup.
    pub dest: PathBuf,
    /// Keep this many older backups besides the new one (default: all).
    #[arg(long)]
    pub keep: Option<usize>,
    /// Validate the new backup (every object hashed) before publishing it.
    #[arg(long)]
    pub verify: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `dos delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Hash keys.
    #[arg(required = true)]
    pub hashkeys: Vec<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `dos optimize`.
#[derive(Debug, Args)]
pub struct OptimizeArgs {
    /// Compression of newly packed objects.
    #[arg(long, value_enum, default_value = "no")]
    pub compress: CompressArg,
    /// Compression of repacked objects.
    #[arg(long, value_enum, default_value = "keep")]
    pub repack_compress: RepackArg,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `dos import-archive`.
#[derive(Debug, Args)]
pub struct ImportArchiveArgs {
    /// The `.aiida` archive.
    pub archive: PathBuf,
    /// Compression of the stored objects (`yes`/`auto` keep the archive's deflate streams in a
    /// zlib container and code them anew as zstd in a zstd one).
    #[arg(long, value_enum, default_value = "no")]
    pub compress: CompressArg,
    /// Import only the objects the archive's database references.
    #[arg(long)]
    pub referenced_only: bool,
    /// Refuse entries that declare more than this many bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_entry_size: Option<u64>,
    /// Refuse archives whose entries declare more than this many bytes in total.
    #[arg(long, value_name = "BYTES")]
    pub max_total_size: Option<u64>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `dos archive-info`.
#[derive(Debug, Args)]
pub struct ArchiveInfoArgs {
    /// The `.aiida` archive.
    pub archive: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `dos export-archive`.
#[derive(Debug, Args)]
pub struct ExportArchiveArgs {
    /// The archive to write.
    pub out: PathBuf,
    /// The archive database (`db.sqlite3`) whose nodes' files to export.
    #[arg(long)]
    pub db: PathBuf,
    /// The `metadata.json` to include (default: one saying what is true of this archive: its
    /// export_version, compression, creation time; no aiida-core version, since none wrote it).
    #[arg(long, conflicts_with = "metadata_from")]
    pub metadata: Option<PathBuf>,
    /// Keep the `metadata.json` of this archive (the one the database came from).
    #[arg(long, value_name = "ARCHIVE")]
    pub metadata_from: Option<PathBuf>,
    /// Deflate level (0 = store).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=9))]
    pub level: u32,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `dos import-objects`.
#[derive(Debug, Args)]
pub struct ImportObjectsArgs {
    /// The container to copy from.
    pub source: PathBuf,
    /// Compress the copies.
    #[arg(long, value_enum, default_value = "no")]
    pub compress: CompressArg,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
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
