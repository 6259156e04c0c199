//! One function per subcommand; each is a thin shell over `dos-core`.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use dos_core::{
    CompressMode, Container, HashType, InitOptions, ObjectContent, ObjectSource, ObjectType,
    PackWriteOptions, ZlibLevel,
};
use serde_json::json;

use crate::Outcome;
use crate::cli::{Cli, Command, CompressArg, HashArg};
use crate::output::{meta_json, meta_line, print_json};
use crate::progress::Bars;

/// Run the parsed command.
pub fn run(cli: &Cli) -> Result<Outcome> {
    let bars = Bars::new(cli.quiet);
    match &cli.command {
        Command::Init {
            pack_size_target,
            loose_prefix_len,
            hash_type,
            compression,
            json,
        } => init(
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
            files,
        } => add(&open(&cli.path)?, *pack, *compress, *json, files, &bars),
        Command::Cat { hashkey } => cat(&open(&cli.path)?, hashkey),
        Command::Ls => ls(&open(&cli.path)?),
        Command::Meta { hashkeys, json } => meta(&open(&cli.path)?, hashkeys, *json),
        Command::Status { json } => status(&open(&cli.path)?, *json),
    }
}

fn open(path: &Path) -> Result<Container> {
    Ok(Container::open(path)?)
}

fn init(
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
    let c = Container::init(path, &opts)?;
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
        let opts = PackWriteOptions {
            compress: match compress {
                None | Some(CompressArg::No) => CompressMode::No,
                Some(CompressArg::Yes) => CompressMode::Yes,
                Some(CompressArg::Auto) => CompressMode::Auto,
            },
            interrupt: Some(&dos_core::progress::GLOBAL_INTERRUPT),
            ..PackWriteOptions::default()
        };
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
