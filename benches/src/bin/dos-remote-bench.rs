//! `dos-remote-bench`: packs in S3, measured against what the same S3 client does with the same
//! bytes, on a real server (a local Ceph radosgw: `scripts/ceph-s3.sh start DIR BUCKET`, then
//! source `DIR/s3.env` and set `AWS_ENDPOINT_URL=$S3_ENDPOINT`).
//!
//! On the AiiDA-like data set (`--n` objects, generated once into `--data-dir`), written into a
//! container with packs of `--pack-size-target` bytes, each in a child process of its own (for
//! its peak RSS):
//! - `plain-upload`: every sealed pack uploaded with `object_store`'s `WriteMultipart` (same
//!   part size, same parts in flight), nothing verified — the reference for
//! - `offload`: `Container::offload` (verified uploads, index commit, stubs);
//! - `seq-get`: one GET of each offloaded pack, streamed and dropped — the reference for
//! - `bulk-read`: `Container::read_objects` of every object in the offloaded packs;
//! - `ranged-get` and `single`: the same `--singles` random objects read by one ranged GET each,
//!   and by `Container::get_object_content`;
//! - `validate`: `Container::validate` with the packs remote.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use dos_bench::r#gen::{Dataset, GenOptions};
use dos_bench::rss;
use dos_core::remote::{RemoteSettings, RemoteStore, RemoteUrl};
use dos_core::{Container, InitOptions, IoOptions, NoProgress, ObjectSource, PackWriteOptions};
use dos_remote::{S3Opener, S3Store};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(about = "Packs in S3 against plain S3 transfers of the same bytes")]
struct Args {
    /// Objects in the data set.
    #[arg(long, default_value_t = 100_000)]
    n: usize,
    /// Where the data set is generated (reused when it matches).
    #[arg(long)]
    data_dir: PathBuf,
    /// Working folder (the container is made anew in it).
    #[arg(long)]
    work: PathBuf,
    /// The bucket and prefix (emptied of this run's objects afterwards).
    #[arg(long)]
    url: String,
    /// Pack size target of the container (packs at least this long are sealed and offloaded).
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    pack_size_target: u64,
    /// Random objects read one by one.
    #[arg(long, default_value_t = 300)]
    singles: usize,
    /// Write the results here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Internal: run one phase (`child PHASE`).
    #[arg(long, hide = true)]
    child: Option<String>,
}

fn env_var(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

fn opener() -> Result<S3Opener> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    S3Opener::from_vars(&env_var, home.as_deref()).map_err(anyhow::Error::msg)
}

fn store(url: &str) -> Result<S3Store> {
    let settings = RemoteSettings::new(RemoteUrl::parse(url).map_err(anyhow::Error::msg)?);
    Ok(S3Store::open(&opener()?, &settings)?)
}

fn open(c: &Path) -> Result<Container> {
    let io = IoOptions {
        remote: Some(Arc::new(opener()?)),
        ..IoOptions::default()
    };
    Ok(Container::open_with(c, io)?)
}

/// The offloaded packs: (id, remote name, bytes).
fn remote_packs(c: &Container) -> Result<Vec<(u64, String, u64)>> {
    Ok(c.pack_places()?
        .packs
        .into_iter()
        .filter_map(|p| p.remote.map(|n| (p.pack_id, n, p.bytes)))
        .collect())
}

/// A deterministic choice of `k` of `n`.
fn pick(n: usize, k: usize) -> Vec<usize> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..k.min(n))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        })
        .collect()
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

/// One phase, in this (child) process. Returns its figures.
fn phase(name: &str, a: &Args) -> Result<Value> {
    let c_path = a.work.join("c");
    let t = Instant::now();
    let mut out = match name {
        "plain-upload" => {
            let s = store(&a.url)?;
            let mut bytes = 0;
            let mut names = Vec::new();
            for id in dos_core::pack::list_pack_ids(&dos_core::layout::Layout::new(&c_path))? {
                let p = c_path.join("packs").join(id.to_string());
                let len = std::fs::metadata(&p)?.len();
                if len < a.pack_size_target {
                    continue;
                }
                let f = std::fs::File::open(&p)?;
                let name = format!("bench-plain/{id}");
                bytes += s.upload_plain(&name, &f, len)?;
                names.push(name);
            }
            let secs = t.elapsed().as_secs_f64();
            for n in names {
                s.delete(&n)?;
            }
            json!({"seconds": secs, "bytes": bytes})
        }
        "offload" => {
            let c = open(&c_path)?;
            let s = c.offload(&dos_core::remote::OffloadOptions::default(), &NoProgress)?;
            json!({"seconds": t.elapsed().as_secs_f64(), "bytes": s.bytes_uploaded,
                   "packs": s.packs.len()})
        }
        "seq-get" => {
            let c = open(&c_path)?;
            let s = store(&a.url)?;
            let mut bytes = 0;
            for (_, name, _) in remote_packs(&c)? {
                bytes += s.download(&name, &mut std::io::sink(), &mut |_| {})?;
            }
            json!({"seconds": t.elapsed().as_secs_f64(), "bytes": bytes})
        }
        "bulk-read" => {
            let c = open(&c_path)?;
            let ids: Vec<u64> = remote_packs(&c)?.into_iter().map(|p| p.0).collect();
            let keys: Vec<dos_core::ObjectKey> = c
                .list_all_objects()?
                .into_iter()
                .filter(|k| {
                    c.get_object_meta(k)
                        .ok()
                        .and_then(|m| m.location)
                        .is_some_and(|l| ids.contains(&l.pack_id))
                })
                .collect();
            let t = Instant::now();
            let (mut objects, mut bytes) = (0u64, 0u64);
            c.read_objects(&keys, |_, content, meta| {
                objects += 1;
                bytes += meta.size.unwrap_or(0);
                if let dos_core::ObjectContent::Reader(r) = content {
                    std::io::copy(r, &mut std::io::sink())
                        .map_err(|e| dos_core::Error::io(Path::new("-"), "read", e))?;
                }
                Ok(())
            })?;
            json!({"seconds": t.elapsed().as_secs_f64(), "objects": objects, "bytes": bytes})
        }
        name_of_phase @ ("single" | "ranged-get") => {
            let c = open(&c_path)?;
            let s = store(&a.url)?;
            let packs = remote_packs(&c)?;
            let mut rows = Vec::new();
            for (id, name, _) in &packs {
                for r in c.rows_in_pack(*id as i64)? {
                    if let Some(loc) = r.location() {
                        rows.push((r.key.clone(), name.clone(), loc));
                    }
                }
            }
            let mut lat = Vec::new();
            for i in pick(rows.len(), a.singles) {
                let (key, name, loc) = &rows[i];
                let t = Instant::now();
                if name_of_phase == "single" {
                    let k = c.parse_key(key)?;
                    let _ = c.get_object_content(&k)?;
                } else {
                    let _ = s.get_range(name, loc.offset..loc.offset + loc.length)?;
                }
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            json!({"seconds": t.elapsed().as_secs_f64(), "reads": lat.len(),
                   "median_ms": percentile(&mut lat, 0.5), "p90_ms": percentile(&mut lat, 0.9)})
        }
        "validate" => {
            let c = open(&c_path)?;
            let r = c.validate(&dos_core::maintain::ValidateOptions::default(), &NoProgress)?;
            if !r.is_valid() {
                bail!("validate found errors: {r:?}");
            }
            json!({"seconds": t.elapsed().as_secs_f64(), "bytes": r.bytes_checked,
                   "objects": r.objects_checked})
        }
        other => bail!("unknown phase {other}"),
    };
    out["peak_rss_mb"] = json!(rss::peak_kb().unwrap_or(0) / 1024);
    Ok(out)
}

fn run_child(phase: &str) -> Result<Value> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(std::env::args().skip(1)).args(["--child", phase]);
    let out = cmd.output()?;
    if !out.status.success() {
        bail!("{phase}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn main() -> Result<()> {
    let a = Args::parse();
    if let Some(p) = &a.child {
        let v = phase(p, &a)?;
        println!("{v}");
        return Ok(());
    }
    let (ds, reused) = Dataset::generate_or_reuse(
        &a.data_dir,
        GenOptions {
            n: a.n,
            ..GenOptions::default()
        },
    )?;
    eprintln!(
        "data set: {} objects, {} MB ({})",
        ds.len(),
        ds.total_bytes() / 1_000_000,
        if reused { "reused" } else { "generated" }
    );
    let c_path = a.work.join("c");
    if c_path.exists() {
        std::fs::remove_dir_all(&c_path)?;
    }
    std::fs::create_dir_all(&a.work)?;
    let c = Container::init(
        &c_path,
        &InitOptions {
            pack_size_target: a.pack_size_target,
            ..InitOptions::default()
        },
    )?;
    {
        let mut w = c.pack_writer(&PackWriteOptions::default(), &NoProgress, |_, _| {})?;
        for i in 0..ds.len() {
            w.push(ObjectSource::File(ds.path(i)))?;
        }
        w.finish()?;
    }
    let url = RemoteUrl::parse(&a.url).map_err(anyhow::Error::msg)?;
    RemoteSettings::new(url).save(c.layout())?;
    drop(c);
    // The pack files in the page cache, as an offload of packs just written finds them.
    for id in dos_core::pack::list_pack_ids(&dos_core::layout::Layout::new(&c_path))? {
        let p = c_path.join("packs").join(id.to_string());
        std::io::copy(&mut std::fs::File::open(&p)?, &mut std::io::sink())?;
    }
    let mut results = serde_json::Map::new();
    for p in [
        "plain-upload",
        "offload",
        "seq-get",
        "bulk-read",
        "ranged-get",
        "single",
        "validate",
    ] {
        let v = run_child(p).with_context(|| format!("phase {p}"))?;
        eprintln!("{p:>12}: {v}");
        results.insert(p.to_string(), v);
    }
    let r = Value::Object(results);
    let mbs = |p: &str| {
        r[p]["bytes"].as_f64().unwrap_or(0.0) / 1e6 / r[p]["seconds"].as_f64().unwrap_or(1.0)
    };
    let summary = json!({
        "offload_vs_plain_upload": mbs("offload") / mbs("plain-upload"),
        "bulk_read_vs_seq_get": r["seq-get"]["seconds"].as_f64().unwrap_or(0.0)
            / r["bulk-read"]["seconds"].as_f64().unwrap_or(1.0),
        "single_vs_ranged_get_median": r["single"]["median_ms"].as_f64().unwrap_or(0.0)
            / r["ranged-get"]["median_ms"].as_f64().unwrap_or(1.0),
    });
    eprintln!("summary: {summary}");
    // Leave the bucket as found: fetch back nothing, delete this run's objects.
    let s = store(&a.url)?;
    for o in s.list("")? {
        s.delete(&o.name)?;
    }
    if let Some(path) = &a.json {
        let out = json!({"n": a.n, "pack_size_target": a.pack_size_target, "url": a.url,
                         "phases": r, "summary": summary});
        std::fs::write(path, serde_json::to_vec_pretty(&out)?)?;
    }
    Ok(())
}
