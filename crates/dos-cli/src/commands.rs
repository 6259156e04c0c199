//! One function per subcommand; each is a thin shell over `dos-core`.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use dos_core::maintain::{
    CleanOptions, PackLooseOptions, RepackCompress, RepackOptions, ValidateOptions,
    ValidationReport,
};
use dos_core::{
    CompressMode, Container, HashType, InitOptions, ObjectContent, ObjectSource, ObjectType,
    PackWriteOptions, ZlibLevel,
};
use serde_json::json;

use crate::Outcome;
use crate::cli::{Cli, Command, CompressArg, HashArg, RepackArg};
use crate::env::Env;
use crate::output::{meta_json, meta_line, print_json};
use crate::progress::Bars;

/// Run the parsed command.
pub fn run(cli: &Cli, env: &Env) -> Result<Outcome> {
    let bars = Bars::new(cli.quiet);
    match &cli.command {
        Command::Init {
            pack_size_target,
            loose_prefix_len,
            hash_type,
            compression,
            json,
        } => init(
            env,
            &cli.path,
            *pack_size_target,
            *loose_prefix_len,
            *hash_type,
            compression,
            *json,
        ),
        Command::Add {
            pack,
            compress,
            json,
            files_from,
            files,
        } => {
            let mut files = files.clone();
            if let Some(list) = files_from {
                files.extend(read_list(list)?);
            }
            add(
                env,
                &env.open(&cli.path)?,
                *pack,
                *compress,
                *json,
                &files,
                &bars,
            )
        }
        Command::Cat { hashkey } => cat(&env.open(&cli.path)?, hashkey),
        Command::Ls => ls(&env.open(&cli.path)?),
        Command::Meta { hashkeys, json } => meta(&env.open(&cli.path)?, hashkeys, *json),
        Command::Status { json } => status(&env.open(&cli.path)?, *json),
        Command::Pack {
            compress,
            clean_loose,
            json,
        } => {
            let c = env.open(&cli.path)?;
            let opts = PackLooseOptions {
                compress: compress_mode(Some(*compress)),
                clean_loose: *clean_loose,
                write: write_options(env, CompressMode::No),
            };
            let s = c.pack_all_loose(&opts, &bars)?;
            let human = format!(
                "packed {} objects ({}); {} were already packed; {} loose files deleted{}",
                s.packed,
                human(s.bytes_in),
                s.already_packed,
                s.loose_deleted,
                if s.corrupt.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} corrupt loose files NOT packed: {}",
                        s.corrupt.len(),
                        s.corrupt
                            .iter()
                            .map(|c| c.key.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            );
            report(*json, &s, &human)?;
            Ok(if s.corrupt.is_empty() {
                Outcome::Success
            } else {
                Outcome::Negative
            })
        }
        Command::Repack {
            compress,
            force,
            json,
        } => {
            let c = env.open(&cli.path)?;
            let s = c.repack(
                &RepackOptions {
                    compress: repack_mode(*compress),
                    force: *force,
                    interrupt: env.interrupt(),
                },
                &bars,
            )?;
            let human = format!(
                "rewrote {} of {} packs ({} -> {}), removed {} empty packs{}",
                s.packs_rewritten.len(),
                s.packs_examined,
                human(s.bytes_before),
                human(s.bytes_after),
                s.packs_removed.len(),
                notes(&s.recovered)
            );
            report(*json, &s, &human)?;
            Ok(Outcome::Success)
        }
        Command::Validate { json, no_mmap } => {
            let c = env.open(&cli.path)?;
            let opts = ValidateOptions {
                map_packs: !*no_mmap,
                ..ValidateOptions::default()
            };
            let r = c.validate(&opts, &bars)?;
            if *json {
                report(true, &r, "")?;
            } else {
                print_validation(&r)?;
            }
            Ok(if r.is_valid() {
                Outcome::Success
            } else {
                Outcome::Negative
            })
        }
        Command::Clean {
            vacuum,
            sandbox_age,
            json,
        } => {
            let c = env.open(&cli.path)?;
            let s = c.clean(
                &CleanOptions {
                    vacuum: *vacuum,
                    sandbox_min_age: std::time::Duration::from_secs(*sandbox_age),
                },
                &bars,
            )?;
            let human = format!(
                "deleted {} loose copies of packed objects, {} duplicates, {} sandbox files{}{}",
                s.loose_deleted,
                s.duplicates_deleted,
                s.sandbox_deleted,
                if s.vacuumed { "; index vacuumed" } else { "" },
                notes(&s.recovered)
            );
            report(*json, &s, &human)?;
            Ok(if s.duplicates_unresolved.is_empty() {
                Outcome::Success
            } else {
                Outcome::Negative
            })
        }
        Command::Delete { hashkeys, json } => {
            let c = env.open(&cli.path)?;
            let deleted = c.delete_objects(hashkeys)?;
            let human = deleted.join("\n");
            report(*json, &json!({"deleted": deleted}), &human)?;
            Ok(if deleted.len() == hashkeys.len() {
                Outcome::Success
            } else {
                Outcome::Negative
            })
        }
        Command::Optimize {
            compress,
            repack_compress,
            json,
        } => {
            let c = env.open(&cli.path)?;
            let s = c.optimize(
                compress_mode(Some(*compress)),
                repack_mode(*repack_compress),
                &bars,
            )?;
            let human = format!(
                "packed {} objects, deleted {} loose files, rewrote {} packs ({} -> {}){}",
                s.pack.packed,
                s.pack.loose_deleted + s.clean.loose_deleted,
                s.repack.packs_rewritten.len(),
                human(s.repack.bytes_before),
                human(s.repack.bytes_after),
                notes(&s.recovered)
            );
            report(*json, &s, &human)?;
            Ok(Outcome::Success)
        }
        Command::ImportArchive {
            archive,
            compress,
            referenced_only,
            max_entry_size,
            max_total_size,
            json,
        } => {
            let c = env.open(&cli.path)?;
            let mut limits = dos_archive::Limits::default();
            if let Some(m) = max_entry_size {
                limits.max_entry_size = *m;
            }
            if let Some(m) = max_total_size {
                limits.max_total_size = *m;
            }
            let opts = dos_archive::ImportOptions {
                compress: compress_mode(Some(*compress)),
                referenced_only: *referenced_only,
                limits,
                write: write_options(env, compress_mode(Some(*compress))),
                check_free_space: true,
            };
            let s = dos_archive::import_archive(&c, archive, &opts, &bars)?;
            if *json {
                report(true, &s, "")?;
            } else {
                let mut out = io::stdout().lock();
                writeln!(
                    out,
                    "imported {} objects ({}; {} without recompressing) from {} repository entries; \
                     {} already present, {} other entries ignored",
                    s.imported,
                    human(s.bytes_in),
                    s.passthrough,
                    s.repo_entries,
                    s.already_present,
                    s.ignored_entries
                )?;
                if s.unreferenced_skipped > 0 {
                    writeln!(
                        out,
                        "{} entries no node references were skipped",
                        s.unreferenced_skipped
                    )?;
                }
                for b in &s.bad_entries {
                    writeln!(out, "BAD ENTRY {}: {}", b.name, b.reason)?;
                }
                for k in &s.missing_referenced {
                    writeln!(
                        out,
                        "MISSING referenced object {k} (not in the archive, not in the container)"
                    )?;
                }
            }
            Ok(if s.is_complete() {
                Outcome::Success
            } else {
                Outcome::Negative
            })
        }
        Command::ArchiveInfo { archive, json } => {
            let c = if cli.path.join("config.json").exists() {
                Some(env.open(&cli.path)?)
            } else {
                None
            };
            let i = dos_archive::info::archive_info(
                archive,
                &dos_archive::Limits::default(),
                c.as_ref(),
            )?;
            if *json {
                report(true, &i, "")?;
            } else {
                let mut out = io::stdout().lock();
                writeln!(out, "archive     {} ({})", i.path.display(), human(i.size))?;
                writeln!(
                    out,
                    "format      {} ({:?}), aiida {}",
                    i.format_version.as_deref().unwrap_or("unknown"),
                    i.format_kind,
                    i.aiida_version.as_deref().unwrap_or("unknown")
                )?;
                writeln!(
                    out,
                    "entries     {} ({} repository objects, {} directories, {} other){}",
                    i.entries,
                    i.repo_entries,
                    i.directories,
                    i.other_count,
                    if i.zip64 { ", zip64" } else { "" }
                )?;
                writeln!(
                    out,
                    "sizes       {} compressed, {} uncompressed ({} of repository objects)",
                    human(i.compressed_bytes),
                    human(i.uncompressed_bytes),
                    human(i.repo_bytes)
                )?;
                writeln!(
                    out,
                    "methods     {} deflated, {} stored; {} with data descriptors, {} with local zip64 extras",
                    i.deflated_entries, i.stored_entries, i.data_descriptors, i.zip64_local_extras
                )?;
                if let (Some(n), Some(b)) = (i.new_objects, i.new_bytes) {
                    writeln!(
                        out,
                        "new         {n} objects ({}) are not in {}",
                        human(b),
                        cli.path.display()
                    )?;
                }
                for s in &i.suspicious {
                    writeln!(out, "warning: {s}")?;
                }
            }
            Ok(Outcome::Success)
        }
        Command::ExportArchive {
            out,
            db,
            metadata,
            level,
            overwrite,
            json,
        } => {
            let c = env.open(&cli.path)?;
            let metadata = match metadata {
                Some(p) => {
                    Some(std::fs::read(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?)
                }
                None => None,
            };
            let s = dos_archive::export::export_archive(
                &c,
                db,
                out,
                &dos_archive::export::ExportOptions {
                    level: *level,
                    metadata,
                    overwrite: *overwrite,
                },
                &bars,
            )?;
            let human_line = format!(
                "wrote {} ({}): {} objects, {} of content{}",
                s.path.display(),
                human(s.archive_size),
                s.objects,
                human(s.bytes),
                if s.zip64 { ", zip64" } else { "" }
            );
            report(*json, &s, &human_line)?;
            Ok(Outcome::Success)
        }
        Command::ImportObjects {
            source,
            compress,
            json,
        } => {
            let c = env.open(&cli.path)?;
            let src = env.open(source)?;
            let s = c.import_objects(
                &src,
                None,
                &write_options(env, compress_mode(Some(*compress))),
                &bars,
                |_, _| {},
            )?;
            let human = format!(
                "copied {} of {} objects ({} already present){}",
                s.written,
                s.requested,
                s.already_present,
                if s.corrupt_in_source.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} corrupt in the source, not copied",
                        s.corrupt_in_source.len()
                    )
                }
            );
            report(*json, &s, &human)?;
            Ok(
                if s.corrupt_in_source.is_empty() && s.missing_in_source.is_empty() {
                    Outcome::Success
                } else {
                    Outcome::Negative
                },
            )
        }
    }
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

fn write_options(env: &Env, compress: CompressMode) -> PackWriteOptions {
    PackWriteOptions {
        compress,
        interrupt: env.interrupt(),
        ..PackWriteOptions::default()
    }
}

fn notes(recovered: &[String]) -> String {
    recovered
        .iter()
        .map(|n| format!("\nrecovered: {n}"))
        .collect()
}

/// Print a summary: JSON when asked, else the human line.
fn report(json: bool, value: &impl serde::Serialize, human_line: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    if json {
        print_json(&mut out, &serde_json::to_value(value)?)?;
    } else if !human_line.is_empty() {
        writeln!(out, "{human_line}")?;
    }
    Ok(())
}

fn print_validation(r: &ValidationReport) -> Result<()> {
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "checked {} objects ({})",
        r.objects_checked,
        human(r.bytes_checked)
    )?;
    let lists: [(&str, &Vec<String>); 4] = [
        ("invalid hash (loose)", &r.invalid_hashes_loose),
        ("invalid hash (packed)", &r.invalid_hashes_packed),
        ("invalid size (packed)", &r.invalid_sizes_packed),
        ("overlapping (packed)", &r.overlapping_packed),
    ];
    for (what, keys) in lists {
        for k in keys {
            writeln!(out, "ERROR {what}: {k}")?;
        }
    }
    for p in &r.unreadable_packed {
        writeln!(out, "ERROR unreadable: {}: {}", p.key, p.detail)?;
    }
    for m in &r.missing_packs {
        writeln!(
            out,
            "ERROR pack {} is missing ({} objects point at it)",
            m.pack_id, m.objects
        )?;
    }
    if r.rows_in_pack_minus_one > 0 {
        writeln!(
            out,
            "ERROR {} objects point at pack -1 (interrupted Python repack; run `dos repack`)",
            r.rows_in_pack_minus_one
        )?;
    }
    if let Some(j) = &r.interrupted_repack {
        writeln!(
            out,
            "ERROR {j} (run any maintenance command, e.g. `dos clean`, to finish it)"
        )?;
    }
    for id in &r.orphan_packs {
        writeln!(out, "warning: pack {id} holds no indexed object")?;
    }
    let holes: u64 = r.unreferenced_bytes.values().sum();
    if holes > 0 {
        writeln!(
            out,
            "warning: {} in {} packs is unreferenced (holes; `dos repack` reclaims it)",
            human(holes),
            r.unreferenced_bytes.len()
        )?;
    }
    for l in &r.stale_locks {
        writeln!(
            out,
            "warning: stale lock packs/{l} of a dead dos process (`dos clean` removes it)"
        )?;
    }
    for l in &r.other_locks {
        writeln!(
            out,
            "warning: lock packs/{l} is held (or written by Python)"
        )?;
    }
    if r.sandbox_files > 0 {
        writeln!(out, "warning: {} files in sandbox/", r.sandbox_files)?;
    }
    if r.is_valid() {
        writeln!(out, "no errors found")?;
    } else {
        writeln!(out, "{} errors found", r.errors())?;
    }
    Ok(())
}

fn init(
    env: &Env,
    path: &Path,
    pack_size_target: u64,
    loose_prefix_len: usize,
    hash: HashArg,
    compression: &str,
    json: bool,
) -> Result<Outcome> {
    let Some(level) = ZlibLevel::from_algorithm(compression) else {
        bail!("unknown compression {compression:?}: expected zlib+1 .. zlib+9");
    };
    let opts = InitOptions {
        pack_size_target,
        loose_prefix_len,
        hash_type: match hash {
            HashArg::Sha256 => HashType::Sha256,
            HashArg::Sha1 => HashType::Sha1,
        },
        compression: level,
    };
    let c = env.init(path, &opts)?;
    let mut out = io::stdout().lock();
    if json {
        print_json(
            &mut out,
            &json!({"path": c.path(), "id": c.config().container_id}),
        )?;
    } else {
        writeln!(
            out,
            "Initialised container {} (id {})",
            c.path().display(),
            c.config().container_id
        )?;
    }
    Ok(Outcome::Success)
}

fn add(
    env: &Env,
    c: &Container,
    pack: bool,
    compress: Option<CompressArg>,
    json: bool,
    files: &[PathBuf],
    bars: &Bars,
) -> Result<Outcome> {
    let stdin_count = files.iter().filter(|f| f.as_os_str() == "-").count();
    if stdin_count > 1 {
        bail!("standard input (-) can be added only once");
    }
    for f in files {
        if f.as_os_str() != "-" && f.is_dir() {
            bail!("{}: is a directory (give files)", f.display());
        }
    }
    let mut keys: Vec<String> = vec![String::new(); files.len()];
    if pack {
        let opts = write_options(env, compress_mode(compress));
        let sources = files.iter().map(|f| {
            if f.as_os_str() == "-" {
                ObjectSource::Reader {
                    name: "standard input".into(),
                    reader: Box::new(io::stdin()),
                }
            } else {
                ObjectSource::File(f.clone())
            }
        });
        c.add_to_pack(sources, &opts, bars, |i, o| {
            keys[i] = o.key().unwrap_or_default().to_string();
        })?;
    } else {
        let is_stdin = |f: &PathBuf| f.as_os_str() == "-";
        let list: Vec<PathBuf> = files.iter().filter(|f| !is_stdin(f)).cloned().collect();
        let mut written = c.add_files_loose(&list, bars)?.into_iter();
        for (f, k) in files.iter().zip(keys.iter_mut()) {
            *k = if is_stdin(f) {
                c.add_streamed_object(&mut io::stdin().lock())?
            } else {
                written.next().map(|w| w.key).unwrap_or_default()
            };
        }
    }
    let mut out = BufWriter::new(io::stdout().lock());
    if json {
        let items: Vec<_> = files
            .iter()
            .zip(&keys)
            .map(|(f, k)| json!({"hashkey": k, "path": f}))
            .collect();
        print_json(&mut out, &json!(items))?;
    } else {
        for (f, k) in files.iter().zip(&keys) {
            writeln!(out, "{k}  {}", f.display())?;
        }
    }
    out.flush()?;
    Ok(Outcome::Success)
}

fn cat(c: &Container, key: &str) -> Result<Outcome> {
    let key = c.parse_key(key)?;
    let mut out = io::stdout().lock();
    let missing = c.read_objects(std::slice::from_ref(&key), |_, content, _| {
        let r = match content {
            ObjectContent::Bytes(b) => out.write_all(b),
            ObjectContent::Reader(r) => io::copy(r, &mut out).map(|_| ()),
        };
        r.map_err(|e| dos_core::Error::io("<stdout>", "write", e))
    });
    if !missing?.is_empty() {
        return Err(dos_core::Error::NotFound {
            key,
            container: c.path().to_path_buf(),
        }
        .into());
    }
    out.flush()?;
    Ok(Outcome::Success)
}

fn ls(c: &Container) -> Result<Outcome> {
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    c.for_each_key(|k| {
        writeln!(out, "{k}").map_err(|e| dos_core::Error::io("<stdout>", "write", e))
    })?;
    out.flush()?;
    Ok(Outcome::Success)
}

fn meta(c: &Container, keys: &[String], json: bool) -> Result<Outcome> {
    let mut metas = Vec::with_capacity(keys.len());
    for k in keys {
        let key = c.parse_key(k)?;
        let m = c.get_object_meta(&key)?;
        metas.push((key, m));
    }
    let mut out = io::stdout().lock();
    if json {
        let v: Vec<_> = metas.iter().map(|(k, m)| meta_json(k, m)).collect();
        print_json(&mut out, &json!(v))?;
    } else {
        for (k, m) in &metas {
            writeln!(out, "{}", meta_line(k, m))?;
        }
    }
    let all_found = metas.iter().all(|(_, m)| m.kind != ObjectType::Missing);
    Ok(if all_found {
        Outcome::Success
    } else {
        Outcome::Negative
    })
}

fn status(c: &Container, json: bool) -> Result<Outcome> {
    let count = c.count_objects()?;
    let size = c.get_total_size()?;
    let cfg = c.config();
    let mut out = io::stdout().lock();
    if json {
        print_json(
            &mut out,
            &json!({
                "path": c.path(),
                "id": cfg.container_id,
                "hash_type": cfg.hash_type.name(),
                "compression": cfg.compression.algorithm(),
                "pack_size_target": cfg.pack_size_target,
                "loose_prefix_len": cfg.loose_prefix_len,
                "count": count,
                "size": size,
            }),
        )?;
    } else {
        writeln!(out, "container   {}", c.path().display())?;
        writeln!(out, "id          {}", cfg.container_id)?;
        writeln!(
            out,
            "format      {} keys, {}, packs of {}, loose prefix {}",
            cfg.hash_type,
            cfg.compression.algorithm(),
            human(cfg.pack_size_target),
            cfg.loose_prefix_len
        )?;
        writeln!(
            out,
            "objects     {} packed in {} pack files, {} loose files",
            count.packed, count.pack_files, count.loose
        )?;
        writeln!(
            out,
            "packed      {} of content, {} on disk in objects, {} of pack files",
            human(size.total_size_packed),
            human(size.total_size_packed_on_disk),
            human(size.total_size_packfiles_on_disk)
        )?;
        writeln!(out, "loose       {}", human(size.total_size_loose))?;
        writeln!(
            out,
            "index       {}",
            human(size.total_size_packindexes_on_disk)
        )?;
    }
    Ok(Outcome::Success)
}

/// Bytes in binary units, e.g. "1.50 GiB".
fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}
