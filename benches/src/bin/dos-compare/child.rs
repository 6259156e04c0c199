//! The `child` subcommand: one timed dos operation in a fresh process, its result (counts,
//! bytes, key digests, memory figures) printed as one JSON line.

use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use dos_bench::rss;
use dos_core::maintain::{PackLooseOptions, RepackOptions, ValidateOptions};
use dos_core::{
    CompressMode, Container, HashType, InitOptions, NoProgress, ObjectContent, ObjectKey,
    ObjectSource, ObjectType, PackWriteOptions,
};
use serde_json::{Map, Value, json};

use crate::args::ChildArgs;
use crate::dataset::read_lines;
use crate::probe::probe;

/// Hex SHA-256 of the keys, each followed by a newline (the same digest the Python side makes).
pub fn digest<S: AsRef<str>>(keys: &[S]) -> String {
    let mut h = HashType::Sha256.hasher();
    for k in keys {
        h.update(k.as_ref().as_bytes());
        h.update(b"\n");
    }
    h.finalize().to_string()
}

/// The keys of `items` (hex, one per list line) for `c`.
fn keys_of(c: &Container, items: &[String]) -> Result<Vec<ObjectKey>> {
    Ok(items
        .iter()
        .map(|k| c.parse_key(k))
        .collect::<Result<_, _>>()?)
}

/// Keys as hex text.
fn hex_keys(keys: &[ObjectKey]) -> Vec<String> {
    keys.iter().map(ToString::to_string).collect()
}

/// Memory state at the start of a timed section.
pub struct MemStart {
    /// The process's peak RSS before the section (KiB).
    peak_before: Option<u64>,
    /// The RSS at the start of the section (KiB).
    rss_start: Option<u64>,
    /// Whether the peak could be reset, so that the peak afterwards is the section's own.
    reset: bool,
}

/// Record the memory state and reset the peak, at the start of a timed section.
fn op_start() -> MemStart {
    let peak_before = rss::peak_kb();
    let rss_start = rss::current_kb();
    MemStart {
        peak_before,
        rss_start,
        reset: rss::reset_peak(),
    }
}

/// Add the memory figures of the section begun with `m` to `out`.
pub fn op_end(m: &MemStart, out: &mut Map<String, Value>) {
    let hwm = rss::peak_kb();
    let peak = match (m.peak_before, hwm) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    out.insert("peak_rss_kb".into(), json!(peak));
    out.insert("rss_start_kb".into(), json!(m.rss_start));
    out.insert(
        "op_peak_rss_kb".into(),
        json!(if m.reset { hwm } else { None }),
    );
}

/// The time and memory state of one timed section.
pub struct Timed {
    /// Wall time of the section.
    pub seconds: f64,
    /// Memory state at its start.
    pub mem: MemStart,
}

/// Run `f` as the timed section.
pub fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Timed)> {
    let mem = op_start();
    let t = Instant::now();
    let r = f()?;
    let seconds = t.elapsed().as_secs_f64();
    Ok((r, Timed { seconds, mem }))
}

/// The compression mode of `--compress`.
fn compress_mode(a: &ChildArgs) -> CompressMode {
    if a.compress {
        CompressMode::Yes
    } else {
        CompressMode::No
    }
}

/// `child`: run the operation `a.op`, then print its result as one JSON line.
pub fn child(a: &ChildArgs) -> Result<()> {
    let items = match &a.list {
        Some(p) => read_lines(p)?,
        None => Vec::new(),
    };
    let mut out = Map::new();
    out.insert("side".into(), json!("dos"));
    out.insert("op".into(), json!(a.op));
    out.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    let t = match a.op.as_str() {
        "loose" => loose(a, &items, &mut out)?,
        "pack" | "pack-files" => pack(a, &items, &mut out)?,
        "read" => read(a, &items, &mut out)?,
        "has" => has(a, &items, &mut out)?,
        "pack-loose" => pack_loose(a, &mut out)?,
        "validate" => validate(a, &mut out)?,
        "repack" => repack(a, &mut out)?,
        "import" => import(a, &mut out)?,
        "delete" => {
            // Untimed preparation of `repack`.
            let c = Container::open(&a.container)?;
            let deleted = c.delete_objects(&keys_of(&c, &items)?)?;
            out.insert("deleted".into(), json!(deleted.len()));
            println!("{}", Value::Object(out));
            return Ok(());
        }
        "probe" => {
            probe(a, &items, &mut out)?;
            println!("{}", Value::Object(out));
            return Ok(());
        }
        other => bail!("unknown child operation {other:?}"),
    };
    out.insert("seconds".into(), json!(t.seconds));
    op_end(&t.mem, &mut out);
    if matches!(
        a.op.as_str(),
        "pack-loose" | "validate" | "repack" | "import"
    ) {
        packed_state(a, &mut out)?;
    }
    if matches!(
        a.op.as_str(),
        "read" | "has" | "pack-loose" | "validate" | "repack" | "import"
    ) {
        let c = Container::open(&a.container)?;
        let keys = hex_keys(&c.list_all_objects()?);
        out.insert("keyset_count".into(), json!(keys.len()));
        out.insert("keyset_digest".into(), json!(digest(&keys)));
    }
    if a.op == "import"
        && let Some(p) = &a.keys
    {
        let c = Container::open(&a.container)?;
        let (ok, bad, bytes) = verify_sample(&c, &keys_of(&c, &read_lines(p)?)?)?;
        out.insert("verified".into(), json!(ok));
        out.insert("verify_bad".into(), json!(bad));
        out.insert("verified_bytes".into(), json!(bytes));
    }
    println!("{}", Value::Object(out));
    Ok(())
}

/// `loose`: add the files of `items` as loose objects.
fn loose(a: &ChildArgs, items: &[String], out: &mut Map<String, Value>) -> Result<Timed> {
    let c = open_or_init(a)?;
    let paths: Vec<PathBuf> = items.iter().map(PathBuf::from).collect();
    let (written, t) = timed(|| Ok(c.add_files_loose(&paths, &NoProgress)?))?;
    let keys: Vec<String> = written.iter().map(|w| w.key.to_string()).collect();
    out.insert("objects".into(), json!(written.len()));
    out.insert(
        "bytes".into(),
        json!(written.iter().map(|w| w.size).sum::<u64>()),
    );
    out.insert("keys_digest".into(), json!(digest(&keys)));
    Ok(t)
}

/// `pack` (contents read into memory first, untimed) and `pack-files` (files read by the
/// writer): write the files of `items` into packs.
fn pack(a: &ChildArgs, items: &[String], out: &mut Map<String, Value>) -> Result<Timed> {
    let c = open_or_init(a)?;
    let opts = PackWriteOptions {
        compress: compress_mode(a),
        skip_existing: a.dedup,
        ..Default::default()
    };
    let sources: Vec<ObjectSource> = if a.op == "pack" {
        let mut v = Vec::with_capacity(items.len());
        for p in items {
            v.push(ObjectSource::Bytes(
                fs::read(p).with_context(|| format!("read {p}"))?,
            ));
        }
        v
    } else {
        items
            .iter()
            .map(|p| ObjectSource::File(PathBuf::from(p)))
            .collect()
    };
    let mut keys = vec![String::new(); sources.len()];
    let (summary, t) = timed(|| {
        let mut w = c.pack_writer(&opts, &NoProgress, |i, o| {
            keys[i] = o.key().map(|k| k.to_string()).unwrap_or_default();
        })?;
        for source in sources {
            w.push(source)?;
        }
        Ok(w.finish()?)
    })?;
    out.insert("objects".into(), json!(summary.objects));
    out.insert("bytes".into(), json!(summary.bytes_in));
    out.insert("keys_digest".into(), json!(digest(&keys)));
    out.insert("summary".into(), serde_json::to_value(&summary)?);
    Ok(t)
}

/// `read`: read the objects of the keys in `items`, counting them and their bytes.
fn read(a: &ChildArgs, items: &[String], out: &mut Map<String, Value>) -> Result<Timed> {
    let c = Container::open(&a.container)?;
    let ((count, total, missing), t) = timed(|| {
        let mut total = 0u64;
        let mut count = 0u64;
        let mut big = Vec::new();
        let keys = keys_of(&c, items)?;
        let missing = c.read_objects(&keys, |_k, content, _meta| {
            match content {
                ObjectContent::Bytes(b) => total += b.len() as u64,
                ObjectContent::Reader(r) => {
                    big.clear();
                    r.read_to_end(&mut big)
                        .map_err(|e| dos_core::Error::Source {
                            source_name: "object reader".into(),
                            source: e,
                        })?;
                    total += big.len() as u64;
                }
            }
            count += 1;
            Ok(())
        })?;
        Ok((count, total, missing))
    })?;
    out.insert("objects".into(), json!(count));
    out.insert("bytes".into(), json!(total));
    out.insert("missing".into(), json!(missing.len()));
    Ok(t)
}

/// `has`: ask which of the keys in `items` are stored.
fn has(a: &ChildArgs, items: &[String], out: &mut Map<String, Value>) -> Result<Timed> {
    has_keys(&a.container, items, out)
}

/// `has_objects` of `items` (parsing them included) in the container at `container`; also the
/// scale benchmark's `has`.
pub fn has_keys(
    container: &std::path::Path,
    items: &[String],
    out: &mut Map<String, Value>,
) -> Result<Timed> {
    let c = Container::open(container)?;
    let (found, t) = timed(|| Ok(c.has_objects(&keys_of(&c, items)?)?))?;
    out.insert("objects".into(), json!(found.len()));
    out.insert(
        "true_count".into(),
        json!(found.iter().filter(|&&f| f).count()),
    );
    Ok(t)
}

/// `pack-loose`: pack every loose object (keeping the loose files).
fn pack_loose(a: &ChildArgs, out: &mut Map<String, Value>) -> Result<Timed> {
    let c = Container::open(&a.container)?;
    let opts = PackLooseOptions {
        compress: compress_mode(a),
        clean_loose: false,
        ..Default::default()
    };
    let (summary, t) = timed(|| Ok(c.pack_all_loose(&opts, &NoProgress)?))?;
    // What this call says it packed must agree with the index afterwards.
    out.insert("op_count".into(), json!(summary.packed));
    out.insert("summary".into(), serde_json::to_value(&summary)?);
    Ok(t)
}

/// `validate`: check every object of the container.
fn validate(a: &ChildArgs, out: &mut Map<String, Value>) -> Result<Timed> {
    let c = Container::open(&a.container)?;
    let (report, t) = timed(|| Ok(c.validate(&ValidateOptions::default(), &NoProgress)?))?;
    out.insert("problems".into(), json!(report.errors()));
    out.insert("op_count".into(), json!(report.objects_checked));
    out.insert("bytes_checked".into(), json!(report.bytes_checked));
    out.insert("report".into(), serde_json::to_value(&report)?);
    Ok(t)
}

/// `repack`: rewrite the packs without the deleted objects' bytes.
fn repack(a: &ChildArgs, out: &mut Map<String, Value>) -> Result<Timed> {
    let c = Container::open(&a.container)?;
    let (summary, t) = timed(|| Ok(c.repack(&RepackOptions::default(), &NoProgress)?))?;
    out.insert("summary".into(), serde_json::to_value(&summary)?);
    Ok(t)
}

/// `import`: import the archive `--archive` into the container.
fn import(a: &ChildArgs, out: &mut Map<String, Value>) -> Result<Timed> {
    let archive = a.archive.as_ref().context("import needs --archive")?;
    let c = open_or_init(a)?;
    let opts = dos_archive::ImportOptions {
        compress: compress_mode(a),
        ..Default::default()
    };
    let (mut s, t) = timed(|| {
        Ok(dos_archive::import_archive(
            &c,
            archive,
            &opts,
            &NoProgress,
        )?)
    })?;
    // `objects` and `bytes` are the container's afterwards (below); these are the op's.
    out.insert("op_count".into(), json!(s.imported));
    out.insert("op_bytes".into(), json!(s.bytes_in));
    out.insert("passthrough".into(), json!(s.passthrough));
    out.insert(
        "problems".into(),
        json!(s.bad_entries.len() + s.missing_referenced.len()),
    );
    s.bad_entries.truncate(20);
    s.missing_referenced.truncate(20);
    out.insert("summary".into(), serde_json::to_value(&s)?);
    Ok(t)
}

/// The packed state of the container after a maintenance operation or an import (untimed): its
/// packed objects and bytes, and for `pack-loose` the digest of the `--keys` that are packed.
fn packed_state(a: &ChildArgs, out: &mut Map<String, Value>) -> Result<()> {
    let c = Container::open(&a.container)?;
    let count = c.count_objects()?;
    let size = c.get_total_size()?;
    out.insert("packed_count".into(), json!(count.packed));
    out.insert("packed_bytes".into(), json!(size.total_size_packed));
    out.insert(
        "packed_on_disk".into(),
        json!(size.total_size_packed_on_disk),
    );
    out.insert(
        "packfiles_bytes".into(),
        json!(size.total_size_packfiles_on_disk),
    );
    out.insert("objects".into(), json!(count.packed));
    out.insert("bytes".into(), json!(size.total_size_packed));
    if a.op == "pack-loose"
        && let Some(p) = &a.keys
    {
        let wanted = keys_of(&c, &read_lines(p)?)?;
        let mut packed: Vec<String> = c
            .get_objects_meta(&wanted)?
            .iter()
            .zip(&wanted)
            .filter(|(m, _)| m.kind == ObjectType::Packed)
            .map(|(_, k)| k.to_string())
            .collect();
        packed.sort_unstable();
        out.insert("packed_digest".into(), json!(digest(&packed)));
    }
    Ok(())
}

/// Read `keys` back from `c` and hash them (untimed check of the stored bytes): objects whose
/// content hashes to their key, objects missing or not, and bytes read.
fn verify_sample(c: &Container, keys: &[ObjectKey]) -> Result<(u64, u64, u64)> {
    let (mut ok, mut bad, mut bytes) = (0u64, 0u64, 0u64);
    let mut big = Vec::new();
    let missing = c.read_objects(keys, |k, content, _meta| {
        let data: &[u8] = match content {
            ObjectContent::Bytes(b) => b,
            ObjectContent::Reader(r) => {
                big.clear();
                r.read_to_end(&mut big)
                    .map_err(|e| dos_core::Error::Source {
                        source_name: "object reader".into(),
                        source: e,
                    })?;
                &big
            }
        };
        bytes += data.len() as u64;
        if HashType::Sha256.key_of(data) == k {
            ok += 1;
        } else {
            bad += 1;
        }
        Ok(())
    })?;
    Ok((ok, bad + missing.len() as u64, bytes))
}

/// The container of a write operation: the existing one with `--existing`, else a new one.
fn open_or_init(a: &ChildArgs) -> Result<Container> {
    if a.existing {
        return Ok(Container::open(&a.container)?);
    }
    let mut opts = InitOptions::default();
    if let Some(algo) = &a.compression {
        opts.compression = dos_core::Compression::from_algorithm(algo)
            .ok_or_else(|| anyhow::anyhow!("unknown compression algorithm {algo:?}"))?;
    }
    Ok(Container::init(&a.container, &opts)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_of_newline_terminated_keys() {
        let one = digest(&["ab"]);
        assert_eq!(one, HashType::Sha256.key_of(b"ab\n").to_string());
        assert_eq!(
            digest::<&str>(&[]),
            HashType::Sha256.key_of(b"").to_string()
        );
    }
}
