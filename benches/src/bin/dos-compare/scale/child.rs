//! `scale-child`: one operation of the scale benchmark on the dos side, in a fresh process:
//! dos-core called directly, only the operation timed, its result and memory figures printed as
//! one JSON line (the same fields as `benches/python/scale_bench.py` prints).

use std::time::Instant;

use anyhow::{Context, Result, bail};
use dos_core::maintain::{CleanOptions, PackLooseOptions, RepackOptions, ValidateOptions};
use dos_core::{
    CompressMode, Container, InitOptions, NoProgress, ObjectKey, ObjectSource, ObjectType,
    PackWriteOptions,
};
use serde_json::{Map, Value, json};

use super::base::{self, write_loose};
use crate::args::ScaleChildArgs;
use crate::child::{Timed, op_end, timed};
use crate::dataset::read_lines;

/// `scale-child`: run `a.op`, then print its result as one JSON line.
pub fn child(a: &ScaleChildArgs) -> Result<()> {
    let mut out = Map::new();
    out.insert("side".into(), json!("dos"));
    out.insert("op".into(), json!(a.op));
    out.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    let items = match &a.list {
        Some(p) => read_lines(p)?,
        None => Vec::new(),
    };
    let t = match a.op.as_str() {
        "gen" => return base::generate(a),
        "add-loose" => {
            // Untimed preparation of `pack`: objects n..n+count, loose (in a container made
            // for them if there is none).
            let c = if a.container.join("config.json").exists() {
                Container::open(&a.container)?
            } else {
                Container::init(&a.container, &InitOptions::default())?
            };
            let idx: Vec<u64> = (a.n..a.n + a.count).collect();
            let tmp = a
                .container
                .parent()
                .context("the container needs a parent folder")?
                .join("add-loose-tmp");
            let t = Instant::now();
            let bytes = write_loose(&c, a.seed, &idx, &tmp)?;
            out.insert("objects".into(), json!(idx.len()));
            out.insert("bytes".into(), json!(bytes));
            out.insert("seconds".into(), json!(t.elapsed().as_secs_f64()));
            println!("{}", Value::Object(out));
            return Ok(());
        }
        "ls" => ls(a, &mut out)?,
        "status" => status(a, &mut out)?,
        "has" => has(a, &items, &mut out)?,
        "validate" => validate(a, &mut out)?,
        "meta" => meta(a, &items, &mut out)?,
        "delete-repack" => delete_repack(a, &items, &mut out)?,
        "pack" => pack(a, &mut out)?,
        "add-pack" => add_pack(a, &mut out)?,
        "clean" => clean(a, &mut out)?,
        other => bail!("unknown scale operation {other:?}"),
    };
    out.insert("seconds".into(), json!(t.seconds));
    op_end(&t.mem, &mut out);
    if matches!(
        a.op.as_str(),
        "delete-repack" | "pack" | "add-pack" | "clean"
    ) {
        // Untimed: the container's state afterwards.
        let c = Container::open(&a.container)?;
        let count = c.count_objects()?;
        out.insert("packed_after".into(), json!(count.packed));
        out.insert("loose_after".into(), json!(count.loose));
    }
    println!("{}", Value::Object(out));
    Ok(())
}

/// The keys of `items` (hex, one per list line) for `c`.
fn keys_of(c: &Container, items: &[String]) -> Result<Vec<ObjectKey>> {
    Ok(items
        .iter()
        .map(|k| c.parse_key(k))
        .collect::<Result<_, _>>()?)
}

/// `ls`: every key of the container (`list_all_objects`), counted.
fn ls(a: &ScaleChildArgs, out: &mut Map<String, Value>) -> Result<Timed> {
    let c = Container::open(&a.container)?;
    let (n, t) = timed(|| Ok(c.list_all_objects()?.len()))?;
    out.insert("objects".into(), json!(n));
    Ok(t)
}

/// `status`: `count_objects` and `get_total_size`.
fn status(a: &ScaleChildArgs, out: &mut Map<String, Value>) -> Result<Timed> {
    let c = Container::open(&a.container)?;
    let ((count, size), t) = timed(|| Ok((c.count_objects()?, c.get_total_size()?)))?;
    out.insert("objects".into(), json!(count.packed + count.loose));
    out.insert("packed".into(), json!(count.packed));
    out.insert("loose".into(), json!(count.loose));
    out.insert("pack_files".into(), json!(count.pack_files));
    out.insert("packed_bytes".into(), json!(size.total_size_packed));
    out.insert("loose_bytes".into(), json!(size.total_size_loose));
    out.insert(
        "index_bytes".into(),
        json!(size.total_size_packindexes_on_disk),
    );
    Ok(t)
}

/// `has`: `has_objects` of the listed keys (parsing them included).
fn has(a: &ScaleChildArgs, items: &[String], out: &mut Map<String, Value>) -> Result<Timed> {
    crate::child::has_keys(&a.container, items, out)
}

/// `validate`: the full validation with default options.
fn validate(a: &ScaleChildArgs, out: &mut Map<String, Value>) -> Result<Timed> {
    let c = Container::open(&a.container)?;
    let mut opts = ValidateOptions::default();
    if let Some(m) = a.max_rows_in_memory {
        opts.max_rows_in_memory = m;
    }
    out.insert("max_rows_in_memory".into(), json!(opts.max_rows_in_memory));
    let (report, t) = timed(|| Ok(c.validate(&opts, &NoProgress)?))?;
    out.insert("problems".into(), json!(report.errors()));
    out.insert("objects".into(), json!(report.objects_checked));
    out.insert("bytes_checked".into(), json!(report.bytes_checked));
    Ok(t)
}

/// `meta`: `get_objects_meta` of the listed keys (parsing them included).
fn meta(a: &ScaleChildArgs, items: &[String], out: &mut Map<String, Value>) -> Result<Timed> {
    let c = Container::open(&a.container)?;
    let (metas, t) = timed(|| Ok(c.get_objects_meta(&keys_of(&c, items)?)?))?;
    let of = |k: ObjectType| metas.iter().filter(|m| m.kind == k).count();
    out.insert("objects".into(), json!(metas.len()));
    out.insert("packed".into(), json!(of(ObjectType::Packed)));
    out.insert("loose".into(), json!(of(ObjectType::Loose)));
    out.insert("missing".into(), json!(of(ObjectType::Missing)));
    Ok(t)
}

/// `delete-repack`: `delete_objects` of the listed keys, then `repack` (each phase timed too).
fn delete_repack(
    a: &ScaleChildArgs,
    items: &[String],
    out: &mut Map<String, Value>,
) -> Result<Timed> {
    let c = Container::open(&a.container)?;
    let ((deleted, del_s, rep_s, summary), t) = timed(|| {
        let t0 = Instant::now();
        let deleted = c.delete_objects(&keys_of(&c, items)?)?;
        let del_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let summary = c.repack(&RepackOptions::default(), &NoProgress)?;
        Ok((deleted.len(), del_s, t1.elapsed().as_secs_f64(), summary))
    })?;
    out.insert("deleted".into(), json!(deleted));
    out.insert("phases".into(), json!({"delete": del_s, "repack": rep_s}));
    out.insert("summary".into(), serde_json::to_value(&summary)?);
    Ok(t)
}

/// `pack`: `pack_all_loose`, uncompressed, keeping the loose files (as Python's).
fn pack(a: &ScaleChildArgs, out: &mut Map<String, Value>) -> Result<Timed> {
    let c = Container::open(&a.container)?;
    let opts = PackLooseOptions {
        compress: CompressMode::No,
        clean_loose: false,
        ..Default::default()
    };
    let (summary, t) = timed(|| Ok(c.pack_all_loose(&opts, &NoProgress)?))?;
    out.insert("objects".into(), json!(summary.packed));
    out.insert("summary".into(), serde_json::to_value(&summary)?);
    Ok(t)
}

/// `add-pack`: the loose objects of `--source` (read into memory first, untimed) written into
/// packs by a pack-writer session, uncompressed and without the existence check (Python's
/// `add_objects_to_pack` default, `no_holes=False`).
fn add_pack(a: &ScaleChildArgs, out: &mut Map<String, Value>) -> Result<Timed> {
    let source = a.source.as_ref().context("add-pack needs --source")?;
    let contents = base::read_loose_contents(source)?;
    let c = Container::open(&a.container)?;
    let opts = PackWriteOptions {
        skip_existing: false,
        ..Default::default()
    };
    let (summary, t) = timed(|| {
        let mut w = c.pack_writer(&opts, &NoProgress, |_, _| {})?;
        for v in contents {
            w.push(ObjectSource::Bytes(v))?;
        }
        Ok(w.finish()?)
    })?;
    out.insert("objects".into(), json!(summary.written));
    out.insert("summary".into(), serde_json::to_value(&summary)?);
    Ok(t)
}

/// `clean`: `clean` with VACUUM (Python's `clean_storage(vacuum=True)`).
fn clean(a: &ScaleChildArgs, out: &mut Map<String, Value>) -> Result<Timed> {
    let c = Container::open(&a.container)?;
    let opts = CleanOptions {
        vacuum: true,
        ..Default::default()
    };
    let (summary, t) = timed(|| Ok(c.clean(&opts, &NoProgress)?))?;
    out.insert("vacuumed".into(), json!(summary.vacuumed));
    out.insert("summary".into(), serde_json::to_value(&summary)?);
    Ok(t)
}
