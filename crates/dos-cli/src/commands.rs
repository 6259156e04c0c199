//! One function per subcommand; each is a thin shell over the libraries: it turns arguments into
//! options, calls one operation and hands the result to [`crate::output`].

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use dos_core::maintain::{BackupOptions, ValidateOptions};
use dos_core::maintain::{CleanOptions, PackLooseOptions, RepackCompress, RepackOptions};
use dos_core::write::{ObjectSource, PackWriteOptions};
use dos_core::{
    CompressMode, Compression, Container, HashType, InitOptions, ObjectContent, ObjectKey,
};

use crate::Verdict;
use crate::cli::{
    AddArgs, ArchiveInfoArgs, BackupArgs, CatArgs, CleanArgs, Cli, Command, CompressArg,
    DeleteArgs, ExportArchiveArgs, FetchPacksArgs, HashArg, ImportArchiveArgs, ImportObjectsArgs,
    InitArgs, MetaArgs, OffloadArgs, OptimizeArgs, PackArgs, RemoteCommand, RemoteSetArgs,
    RemoteShowArgs, RepackArg, RepackArgs, StatusArgs, ValidateArgs,
};
use crate::env::Env;
use crate::output;
use crate::progress::Bars;

/// What every command is given: the parsed arguments, the process's environment, the bars.
struct Ctx<'a> {
    cli: &'a Cli,
    env: &'a Env,
    bars: Bars,
}

impl Ctx<'_> {
    /// The container named by `-p`.
    fn open(&self) -> Result<Container> {
        self.env.open(&self.cli.path)
    }
}

/// Run the parsed command.
pub fn run(cli: &Cli, env: &Env) -> Result<Verdict> {
    let ctx = Ctx {
        cli,
        env,
        bars: Bars::new(cli.quiet),
    };
    match &cli.command {
        Command::Init(a) => init(&ctx, a),
        Command::Add(a) => add(&ctx, a),
        Command::Cat(a) => cat(&ctx, a),
        Command::Ls => ls(&ctx),
        Command::Meta(a) => meta(&ctx, a),
        Command::Status(a) => status(&ctx, a),
        Command::Pack(a) => pack(&ctx, a),
        Command::Repack(a) => repack(&ctx, a),
        Command::Validate(a) => validate(&ctx, a),
        Command::Clean(a) => clean(&ctx, a),
        Command::Delete(a) => delete(&ctx, a),
        Command::Backup(a) => backup(&ctx, a),
        Command::Optimize(a) => optimize(&ctx, a),
        Command::ImportArchive(a) => import_archive(&ctx, a),
        Command::ArchiveInfo(a) => archive_info(&ctx, a),
        Command::ExportArchive(a) => export_archive(&ctx, a),
        Command::ImportObjects(a) => import_objects(&ctx, a),
        Command::Remote(RemoteCommand::Set(a)) => remote_set(&ctx, a),
        Command::Remote(RemoteCommand::Show(a)) => remote_show(&ctx, a),
        Command::Offload(a) => offload(&ctx, a),
        Command::FetchPacks(a) => fetch_packs(&ctx, a),
    }
}

/// `Success` when `ok`, else `Negative`.
fn verdict(ok: bool) -> Verdict {
    if ok {
        Verdict::Success
    } else {
        Verdict::Negative
    }
}

fn compress_mode(c: Option<CompressArg>) -> CompressMode {
    match c {
        None | Some(CompressArg::No) => CompressMode::No,
        Some(CompressArg::Yes) => CompressMode::Yes,
        Some(CompressArg::Auto) => CompressMode::Auto,
    }
}

fn repack_mode(c: RepackArg) -> RepackCompress {
    match c {
        RepackArg::Keep => RepackCompress::Keep,
        RepackArg::No => RepackCompress::No,
        RepackArg::Yes => RepackCompress::Yes,
        RepackArg::Auto => RepackCompress::Auto,
    }
}

/// Keys given by the user, parsed for this container.
fn parse_keys(c: &Container, keys: &[String]) -> Result<Vec<ObjectKey>> {
    Ok(keys
        .iter()
        .map(|k| c.parse_key(k))
        .collect::<Result<_, _>>()?)
}

/// Paths listed one per line in `list` (`-` = standard input); empty lines are skipped.
fn read_list(list: &Path) -> Result<Vec<PathBuf>> {
    let text = if list.as_os_str() == "-" {
        io::read_to_string(io::stdin())?
    } else {
        std::fs::read_to_string(list).map_err(|e| anyhow::anyhow!("{}: {e}", list.display()))?
    };
    Ok(text
        .lines()
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect())
}

/// A `compression_algorithm` named by the user.
fn compression_of(algo: &str) -> Result<Compression> {
    match Compression::from_algorithm(algo) {
        Some(c) => Ok(c),
        None => bail!(
            "unknown compression {algo:?}: expected zlib+1 .. zlib+9 (readable by Python \
             disk-objectstore) or zstd+1 .. zstd+19 (dos only)"
        ),
    }
}

fn init(ctx: &Ctx, a: &InitArgs) -> Result<Verdict> {
    let level = compression_of(&a.compression)?;
    let opts = InitOptions {
        pack_size_target: a.pack_size_target,
        loose_prefix_len: a.loose_prefix_len,
        hash_type: match a.hash_type {
            HashArg::Sha256 => HashType::Sha256,
            HashArg::Sha1 => HashType::Sha1,
        },
        compression: level,
    };
    let c = ctx.env.init(&ctx.cli.path, &opts)?;
    output::initialised(&c, a.json)?;
    Ok(Verdict::Success)
}

fn add(ctx: &Ctx, a: &AddArgs) -> Result<Verdict> {
    let c = ctx.open()?;
    let mut files = a.files.clone();
    if let Some(list) = &a.files_from {
        files.extend(read_list(list)?);
    }
    let is_stdin = |f: &PathBuf| f.as_os_str() == "-";
    if files.iter().filter(|f| is_stdin(f)).count() > 1 {
        bail!("standard input (-) can be added only once");
    }
    for f in &files {
        if !is_stdin(f) && f.is_dir() {
            bail!("{}: is a directory (give files)", f.display());
        }
    }
    let mut keys: Vec<Option<ObjectKey>> = vec![None; files.len()];
    if a.pack {
        let opts = PackWriteOptions {
            compress: compress_mode(a.compress),
            interrupt: ctx.env.interrupt(),
            ..PackWriteOptions::default()
        };
        let mut w = c.pack_writer(&opts, &ctx.bars, |i, o| keys[i] = o.key())?;
        for f in &files {
            w.push(if is_stdin(f) {
                ObjectSource::Reader {
                    name: "standard input".into(),
                    reader: Box::new(io::stdin()),
                }
            } else {
                ObjectSource::File(f.clone())
            })?;
        }
        w.finish()?;
    } else {
        let list: Vec<PathBuf> = files.iter().filter(|f| !is_stdin(f)).cloned().collect();
        let mut written = c.add_files_loose(&list, &ctx.bars)?.into_iter();
        for (f, k) in files.iter().zip(keys.iter_mut()) {
            *k = Some(if is_stdin(f) {
                c.add_streamed_object(&mut io::stdin().lock())?
            } else {
                match written.next() {
                    Some(w) => w.key,
                    None => bail!("{}: not written", f.display()),
                }
            });
        }
    }
    output::added(&files, &keys, a.json)?;
    Ok(Verdict::Success)
}

fn cat(ctx: &Ctx, a: &CatArgs) -> Result<Verdict> {
    let c = ctx.open()?;
    let key = c.parse_key(&a.hashkey)?;
    let mut out = io::stdout().lock();
    let missing = c.read_objects(&[key], |_, content, _| {
        let r = match content {
            ObjectContent::Bytes(b) => out.write_all(b),
            ObjectContent::Reader(r) => io::copy(r, &mut out).map(|_| ()),
        };
        r.map_err(|e| dos_core::Error::io("<stdout>", "write", e))
    })?;
    if !missing.is_empty() {
        return Err(dos_core::Error::NotFound {
            key,
            container: c.path().to_path_buf(),
        }
        .into());
    }
    out.flush()?;
    Ok(Verdict::Success)
}

fn ls(ctx: &Ctx) -> Result<Verdict> {
    let c = ctx.open()?;
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    c.for_each_key(|k| {
        writeln!(out, "{k}").map_err(|e| dos_core::Error::io("<stdout>", "write", e))
    })?;
    out.flush()?;
    Ok(Verdict::Success)
}

fn meta(ctx: &Ctx, a: &MetaArgs) -> Result<Verdict> {
    let c = ctx.open()?;
    let keys = parse_keys(&c, &a.hashkeys)?;
    let metas = keys
        .iter()
        .map(|k| Ok((*k, c.get_object_meta(k)?)))
        .collect::<Result<Vec<_>>>()?;
    output::metas(&metas, a.json)?;
    let all_found = metas
        .iter()
        .all(|(_, m)| m.kind != dos_core::ObjectType::Missing);
    Ok(verdict(all_found))
}

fn status(ctx: &Ctx, a: &StatusArgs) -> Result<Verdict> {
    let c = ctx.open()?;
    output::status(&c, &c.count_objects()?, &c.get_total_size()?, a.json)?;
    Ok(Verdict::Success)
}

fn pack(ctx: &Ctx, a: &PackArgs) -> Result<Verdict> {
    let c = ctx.open()?;
    let opts = PackLooseOptions {
        compress: compress_mode(Some(a.compress)),
        clean_loose: a.clean_loose,
        interrupt: ctx.env.interrupt(),
        ..PackLooseOptions::default()
    };
    let s = c.pack_all_loose(&opts, &ctx.bars)?;
    output::summary(a.json, &s, &output::packed_line(&s))?;
    Ok(verdict(s.corrupt.is_empty()))
}

fn repack(ctx: &Ctx, a: &RepackArgs) -> Result<Verdict> {
    let c = ctx.open()?;
    let opts = RepackOptions {
        compress: repack_mode(a.compress),
        force: a.force,
        interrupt: ctx.env.interrupt(),
        empty_pack_min_age: a.exclusive.then_some(std::time::Duration::ZERO),
        ..RepackOptions::default()
    };
    let s = match &a.compression {
        Some(algo) => {
            let to = compression_of(algo)?;
            c.convert_compression(to, &opts, &ctx.bars)?.1
        }
        None => c.repack(&opts, &ctx.bars)?,
    };
    output::summary(a.json, &s, &output::repacked_line(&s))?;
    Ok(Verdict::Success)
}

fn validate(ctx: &Ctx, a: &ValidateArgs) -> Result<Verdict> {
    let c = ctx.open()?;
    let opts = ValidateOptions {
        map_packs: !a.no_mmap,
        ..ValidateOptions::default()
    };
    let r = c.validate(&opts, &ctx.bars)?;
    if a.json {
        output::summary(true, &r, "")?;
    } else {
        output::validation(&r)?;
    }
    Ok(verdict(r.is_valid()))
}

fn clean(ctx: &Ctx, a: &CleanArgs) -> Result<Verdict> {
    let c = ctx.open()?;
    let opts = CleanOptions {
        vacuum: a.vacuum,
        sandbox_min_age: std::time::Duration::from_secs(a.sandbox_age),
    };
    let s = c.clean(&opts, &ctx.bars)?;
    if c.remote_settings()?.is_some() {
        let r = c.clean_remote(&dos_core::remote::RemoteCleanOptions {
            grace: a.remote_grace,
        })?;
        let both = serde_json::json!({ "local": s, "remote": r });
        let line = format!(
            "{}\n{}",
            output::cleaned_line(&s),
            output::remote_cleaned_line(&r)
        );
        output::summary(a.json, &both, &line)?;
    } else {
        output::summary(a.json, &s, &output::cleaned_line(&s))?;
    }
    Ok(verdict(s.duplicates_unresolved.is_empty()))
}

fn backup(ctx: &Ctx, a: &BackupArgs) -> Result<Verdict> {
    let c = ctx.open()?;
    let opts = BackupOptions {
        keep: a.keep,
        verify: a.verify,
        interrupt: ctx.env.interrupt(),
    };
    let s = c.backup(&a.dest, &opts, &ctx.bars)?;
    output::summary(a.json, &s, &output::backup_line(&s))?;
    Ok(Verdict::Success)
}

fn delete(ctx: &Ctx, a: &DeleteArgs) -> Result<Verdict> {
    let c = ctx.open()?;
    let keys = parse_keys(&c, &a.hashkeys)?;
    let deleted = c.delete_objects(&keys)?;
    output::deleted(&deleted, a.json)?;
    Ok(verdict(deleted.len() == a.hashkeys.len()))
}

fn optimize(ctx: &Ctx, a: &OptimizeArgs) -> Result<Verdict> {
    let c = ctx.open()?;
    let s = c.optimize(
        compress_mode(Some(a.compress)),
        repack_mode(a.repack_compress),
        &ctx.bars,
    )?;
    output::summary(a.json, &s, &output::optimized_line(&s))?;
    Ok(Verdict::Success)
}

fn import_archive(ctx: &Ctx, a: &ImportArchiveArgs) -> Result<Verdict> {
    let c = ctx.open()?;
    let mut limits = dos_archive::Limits::default();
    if let Some(m) = a.max_entry_size {
        limits.max_entry_size = m;
    }
    if let Some(m) = a.max_total_size {
        limits.max_total_size = m;
    }
    let opts = dos_archive::ImportOptions {
        compress: compress_mode(Some(a.compress)),
        referenced_only: a.referenced_only,
        limits,
        interrupt: ctx.env.interrupt(),
        ..dos_archive::ImportOptions::default()
    };
    let s = dos_archive::import_archive(&c, &a.archive, &opts, &ctx.bars)?;
    if a.json {
        output::summary(true, &s, "")?;
    } else {
        output::archive_import(&s)?;
    }
    // Whatever standard output goes to, standard error says in one line that it is incomplete.
    if let Some(line) = output::archive_import_problems(&s) {
        eprintln!("dos: {line}");
    }
    Ok(verdict(s.is_complete()))
}

fn archive_info(ctx: &Ctx, a: &ArchiveInfoArgs) -> Result<Verdict> {
    let c = if ctx.cli.path.join("config.json").exists() {
        Some(ctx.open()?)
    } else {
        None
    };
    let i =
        dos_archive::info::archive_info(&a.archive, &dos_archive::Limits::default(), c.as_ref())?;
    if a.json {
        output::summary(true, &i, "")?;
    } else {
        output::archive_info(&i, &ctx.cli.path)?;
    }
    Ok(Verdict::Success)
}

fn export_archive(ctx: &Ctx, a: &ExportArchiveArgs) -> Result<Verdict> {
    let c = ctx.open()?;
    let metadata = match (&a.metadata, &a.metadata_from) {
        (Some(p), _) => {
            Some(std::fs::read(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?)
        }
        (None, Some(archive)) => Some(dos_archive::export::metadata_of(archive)?),
        (None, None) => None,
    };
    let opts = dos_archive::export::ExportOptions {
        level: a.level,
        metadata,
        overwrite: a.overwrite,
    };
    let s = dos_archive::export::export_archive(&c, &a.db, &a.out, &opts, &ctx.bars)?;
    output::summary(a.json, &s, &output::exported_line(&s))?;
    Ok(Verdict::Success)
}

fn import_objects(ctx: &Ctx, a: &ImportObjectsArgs) -> Result<Verdict> {
    let c = ctx.open()?;
    let src = ctx.env.open(&a.source)?;
    let opts = PackWriteOptions {
        compress: compress_mode(Some(a.compress)),
        interrupt: ctx.env.interrupt(),
        ..PackWriteOptions::default()
    };
    let s = c.import_objects(&src, None, &opts, &ctx.bars, |_, _| {})?;
    output::summary(a.json, &s, &output::imported_objects_line(&s))?;
    Ok(verdict(
        s.corrupt_in_source.is_empty() && s.missing_in_source.is_empty(),
    ))
}

fn remote_set(ctx: &Ctx, a: &RemoteSetArgs) -> Result<Verdict> {
    let c = ctx.open()?;
    let url = dos_core::remote::RemoteUrl::parse(&a.url).map_err(anyhow::Error::msg)?;
    let settings = dos_core::remote::RemoteSettings {
        url,
        endpoint: a.endpoint.clone(),
        region: a.region.clone(),
        cache_bytes: a.cache_bytes,
    };
    // Reach the store once, so that a typo or missing credentials show now.
    let store = ctx.env.remote_store(&settings)?;
    store.list(dos_core::remote::PACKS_PREFIX)?;
    c.set_remote(&settings)?;
    output::summary(
        a.json,
        &settings,
        &format!("remote store: {}", settings.url),
    )?;
    Ok(Verdict::Success)
}

fn remote_show(ctx: &Ctx, a: &RemoteShowArgs) -> Result<Verdict> {
    let c = ctx.open()?;
    let settings = c.remote_settings()?;
    let places = c.pack_places()?;
    if a.json {
        let v = serde_json::json!({ "settings": settings, "packs": places.packs });
        output::summary(true, &v, "")?;
        return Ok(Verdict::Success);
    }
    let mut out = io::stdout().lock();
    match &settings {
        Some(s) => {
            writeln!(out, "remote      {}", s.url)?;
            if let Some(e) = &s.endpoint {
                writeln!(out, "endpoint    {e}")?;
            }
            if let Some(r) = &s.region {
                writeln!(out, "region      {r}")?;
            }
            if s.cache_bytes > 0 {
                writeln!(out, "cache       {}", output::human(s.cache_bytes))?;
            }
        }
        None => writeln!(out, "remote      none (dos remote set s3://BUCKET/PREFIX)")?,
    }
    for p in &places.packs {
        let place = match (&p.remote, p.local) {
            (Some(name), true) => format!("local and remote ({name})"),
            (Some(name), false) => format!("remote ({name})"),
            (None, _) => "local".to_string(),
        };
        writeln!(
            out,
            "pack {:<6} {:>10}  {place}",
            p.pack_id,
            output::human(p.bytes)
        )?;
    }
    Ok(Verdict::Success)
}

fn offload(ctx: &Ctx, a: &OffloadArgs) -> Result<Verdict> {
    let c = ctx.open()?;
    let opts = dos_core::remote::OffloadOptions {
        keep_local: a.keep_local,
        min_age: a.min_age,
        packs: (!a.packs.is_empty()).then(|| a.packs.clone()),
        include_small: a.include_small,
        interrupt: ctx.env.interrupt(),
    };
    let s = c.offload(&opts, &ctx.bars)?;
    if a.publish {
        let p = c.publish(&ctx.bars)?;
        let both = serde_json::json!({ "offload": s, "publish": p });
        let line = format!(
            "{}\n{}",
            output::offloaded_line(&s),
            output::published_line(&p)
        );
        output::summary(a.json, &both, &line)?;
    } else {
        output::summary(a.json, &s, &output::offloaded_line(&s))?;
    }
    Ok(Verdict::Success)
}

fn fetch_packs(ctx: &Ctx, a: &FetchPacksArgs) -> Result<Verdict> {
    let c = ctx.open()?;
    let opts = dos_core::remote::FetchOptions {
        packs: (!a.all).then(|| a.packs.clone()),
        interrupt: ctx.env.interrupt(),
    };
    let s = c.fetch_packs(&opts, &ctx.bars)?;
    output::summary(a.json, &s, &output::fetched_line(&s))?;
    Ok(Verdict::Success)
}
