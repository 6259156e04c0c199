//! Machine probes (the `probe` child operation): what the machine's CPU and disk can do, to
//! relate `validate` and import times to, and their text for the report.

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use dos_bench::r#gen::Rng;
use dos_core::codec::{Compressor, Decompressor};
use dos_core::{Compression, HashType, ZlibLevel, ZstdLevel};
use rayon::prelude::*;
use serde_json::{Map, Value, json};

use crate::args::ChildArgs;
use crate::runner::sync;

/// Best (shortest) of `reps` timings of `f`, in seconds.
fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

/// Hex SHA-256 of `data`.
fn sha256_hex(data: &[u8]) -> String {
    HashType::Sha256.key_of(data).to_string()
}

/// Machine probes on the sample of the data set listed in `items` (one object per file, each
/// processed independently, as the container does): SHA-256, compression with the container's own
/// codec at `zlib+1` (libdeflate level 1), inflation, and inflation + hash, each on one core and on two (a rayon pool of
/// 2 threads over the objects); then sequential write + fdatasync of `write_mib` MiB in
/// `container`. CPU figures are the best of several runs, in MB/s of uncompressed bytes.
pub fn probe(a: &ChildArgs, items: &[String], out: &mut Map<String, Value>) -> Result<()> {
    let mut data = Vec::with_capacity(items.len());
    for p in items {
        data.push(fs::read(p).with_context(|| format!("read {p}"))?);
    }
    let bytes: u64 = data.iter().map(|d| d.len() as u64).sum();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build()?;
    let sink = AtomicU64::new(0);
    let cpu = cpu_probes(&data, &pool, &sink)?;
    drop(data);
    if let Some(archive) = &a.archive {
        probe_archive(archive, a.archive_probe_mb, &pool, out)?;
    }
    let w = write_probe(&a.container, a.write_mib, a.write_runs)?;

    let rate = |s: f64| bytes as f64 / 1e6 / s;
    out.insert("sample_objects".into(), json!(items.len()));
    out.insert("sample_bytes".into(), json!(bytes));
    out.insert("compressed_bytes".into(), json!(cpu.compressed_bytes));
    out.insert(
        "zstd3_compressed_bytes".into(),
        json!(cpu.zstd_compressed_bytes),
    );
    for (key, seconds) in [
        ("sha256_1core_mbs", cpu.sha[0]),
        ("sha256_2core_mbs", cpu.sha[1]),
        ("compress_zlib1_1core_mbs", cpu.compress[0]),
        ("compress_zlib1_2core_mbs", cpu.compress[1]),
        ("inflate_1core_mbs", cpu.inflate[0]),
        ("inflate_2core_mbs", cpu.inflate[1]),
        ("inflate_sha256_1core_mbs", cpu.inflate_sha[0]),
        ("inflate_sha256_2core_mbs", cpu.inflate_sha[1]),
        ("blake2b256_1core_mbs", cpu.blake2b[0]),
        ("blake2b256_2core_mbs", cpu.blake2b[1]),
        ("compress_zstd3_1core_mbs", cpu.zstd_compress[0]),
        ("compress_zstd3_2core_mbs", cpu.zstd_compress[1]),
        ("zstd_inflate_1core_mbs", cpu.zstd_inflate[0]),
        ("zstd_inflate_2core_mbs", cpu.zstd_inflate[1]),
        ("zstd_inflate_sha256_1core_mbs", cpu.zstd_inflate_sha[0]),
        ("zstd_inflate_sha256_2core_mbs", cpu.zstd_inflate_sha[1]),
    ] {
        out.insert(key.into(), json!(rate(seconds)));
    }
    out.insert("write_bytes".into(), json!(w.bytes));
    out.insert("write_s".into(), json!(w.write_s));
    out.insert("write_fdatasync_s".into(), json!(w.total_s));
    out.insert(
        "write_fdatasync_mbs".into(),
        json!(w.bytes as f64 / 1e6 / w.total_s),
    );
    out.insert("write_fdatasync_mbs_runs".into(), json!(w.all_mbs));
    out.insert(
        "loadavg".into(),
        json!(
            fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
        ),
    );
    out.insert("sink".into(), json!(sink.load(Ordering::Relaxed)));
    Ok(())
}

/// Seconds of the CPU probes on one core (`[0]`) and on two (`[1]`).
struct CpuProbes {
    /// SHA-256.
    sha: [f64; 2],
    /// Compression with the container's level.
    compress: [f64; 2],
    /// Inflation into an exact-size output.
    inflate: [f64; 2],
    /// Inflation + SHA-256.
    inflate_sha: [f64; 2],
    /// Bytes of the compressed sample.
    compressed_bytes: u64,
    /// BLAKE2b with a 256-bit digest (the key length), the hash once named for this product.
    blake2b: [f64; 2],
    /// zstd level 3 compression, inflation into an exact-size output, inflation + SHA-256.
    zstd_compress: [f64; 2],
    zstd_inflate: [f64; 2],
    zstd_inflate_sha: [f64; 2],
    /// Bytes of the zstd+3 sample.
    zstd_compressed_bytes: u64,
}

/// Hex BLAKE2b-256 of `data`.
fn blake2b_hex(data: &[u8]) -> String {
    use blake2::Digest;
    let d = blake2::Blake2b::<blake2::digest::consts::U32>::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Add a byte of `s` to `sink`, so that the work that made `s` is not optimised away.
fn eat(sink: &AtomicU64, s: &str) {
    sink.fetch_add(u64::from(s.as_bytes()[0]), Ordering::Relaxed);
}

/// The CPU probes on `data` (one object each), on one core and on the two threads of `pool`;
/// `sink` receives a byte of every result.
fn cpu_probes(data: &[Vec<u8>], pool: &rayon::ThreadPool, sink: &AtomicU64) -> Result<CpuProbes> {
    let reps = 3;
    let sha1 = best_of(reps, || {
        for d in data {
            eat(sink, &sha256_hex(d));
        }
    });
    let sha2 = best_of(reps, || {
        pool.install(|| data.par_iter().for_each(|d| eat(sink, &sha256_hex(d))));
    });
    let b1 = best_of(reps, || {
        for d in data {
            eat(sink, &blake2b_hex(d));
        }
    });
    let b2 = best_of(reps, || {
        pool.install(|| data.par_iter().for_each(|d| eat(sink, &blake2b_hex(d))));
    });
    let zstd = Compression::Zstd(ZstdLevel::new(3).ok_or_else(|| anyhow!("zstd level"))?);
    let mut zcompressed: Vec<Vec<u8>> = Vec::new();
    let zc1 = best_of(2, || {
        let mut c = Compressor::new(zstd);
        zcompressed = data.iter().map(|d| c.compress(d)).collect();
    });
    let zc2 = best_of(2, || {
        let v: Vec<Vec<u8>> = pool.install(|| {
            data.par_iter()
                .map_init(|| Compressor::new(zstd), |c, d| c.compress(d))
                .collect()
        });
        sink.fetch_add(v.len() as u64, Ordering::Relaxed);
    });
    let zstd_compressed_bytes: u64 = zcompressed.iter().map(|z| z.len() as u64).sum();
    let [zi1, zi2, zih1, zih2] = inflate_probes(&zcompressed, data, pool, sink)?;
    drop(zcompressed);

    let level = ZlibLevel::DEFAULT;
    let mut compressed: Vec<Vec<u8>> = Vec::new();
    let z1 = best_of(2, || {
        let mut c = Compressor::new(level);
        compressed = data.iter().map(|d| c.compress(d)).collect();
    });
    let z2 = best_of(2, || {
        let v: Vec<Vec<u8>> = pool.install(|| {
            data.par_iter()
                .map_init(|| Compressor::new(level), |c, d| c.compress(d))
                .collect()
        });
        sink.fetch_add(v.len() as u64, Ordering::Relaxed);
    });
    let compressed_bytes: u64 = compressed.iter().map(|z| z.len() as u64).sum();
    let [i1, i2, ih1, ih2] = inflate_probes(&compressed, data, pool, sink)?;
    Ok(CpuProbes {
        sha: [sha1, sha2],
        compress: [z1, z2],
        inflate: [i1, i2],
        inflate_sha: [ih1, ih2],
        compressed_bytes,
        blake2b: [b1, b2],
        zstd_compress: [zc1, zc2],
        zstd_inflate: [zi1, zi2],
        zstd_inflate_sha: [zih1, zih2],
        zstd_compressed_bytes,
    })
}

/// Seconds of inflating `compressed` (the deflated `data`, object by object) on one core and on
/// two, then of inflating + SHA-256 on one core and on two; best of 3 each.
fn inflate_probes(
    compressed: &[Vec<u8>],
    data: &[Vec<u8>],
    pool: &rayon::ThreadPool,
    sink: &AtomicU64,
) -> Result<[f64; 4]> {
    let reps = 3;
    let pairs: Vec<(&Vec<u8>, &Vec<u8>)> = compressed.iter().zip(data).collect();
    let inflate_one = |dec: &mut Decompressor, buf: &mut Vec<u8>, z: &[u8], d: &[u8]| {
        // An exact-size output, as the container's readers use.
        dec.inflate_exact(z, d.len() as u64, buf)
            .map_err(|e| anyhow!("inflate: {e}"))
    };
    let mut failed = None;
    let i1 = best_of(reps, || {
        let mut dec = Decompressor::new();
        let mut buf = Vec::new();
        for (z, d) in &pairs {
            if let Err(e) = inflate_one(&mut dec, &mut buf, z, d) {
                failed = Some(e);
            }
        }
    });
    let i2 = best_of(reps, || {
        let r: Result<()> = pool.install(|| {
            pairs.par_iter().try_for_each_init(
                || (Decompressor::new(), Vec::new()),
                |(dec, buf), (z, d)| inflate_one(dec, buf, z, d),
            )
        });
        if let Err(e) = r {
            failed = Some(e);
        }
    });
    let ih1 = best_of(reps, || {
        let mut dec = Decompressor::new();
        let mut buf = Vec::new();
        for (z, d) in &pairs {
            match inflate_one(&mut dec, &mut buf, z, d) {
                Ok(()) => eat(sink, &sha256_hex(&buf)),
                Err(e) => failed = Some(e),
            }
        }
    });
    let ih2 = best_of(reps, || {
        let r: Result<()> = pool.install(|| {
            pairs.par_iter().try_for_each_init(
                || (Decompressor::new(), Vec::new()),
                |(dec, buf), (z, d)| {
                    inflate_one(dec, buf, z, d)?;
                    eat(sink, &sha256_hex(buf));
                    Ok(())
                },
            )
        });
        if let Err(e) = r {
            failed = Some(e);
        }
    });
    match failed {
        Some(e) => Err(e),
        None => Ok([i1, i2, ih1, ih2]),
    }
}

/// Times of the sequential write + fdatasync probe.
struct WriteProbe {
    /// Bytes written per run.
    bytes: u64,
    /// Seconds of writing in the median run.
    write_s: f64,
    /// Seconds of writing + fdatasync in the median run.
    total_s: f64,
    /// MB/s (write + fdatasync) of every run, in run order.
    all_mbs: Vec<f64>,
}

/// Sequential write of `mib` MiB in 8 MiB blocks of random bytes into a new file in `dir`, then
/// fdatasync; `runs` times, each after a `sync`, the median (by total time) reported.
fn write_probe(dir: &Path, mib: u64, runs: usize) -> Result<WriteProbe> {
    let wpath = dir.join("probe-write.tmp");
    let mut block = vec![0u8; 8 << 20];
    Rng::new(0x7772_6974_6500).fill(&mut block);
    let blocks = mib.div_ceil(8).max(1);
    let wbytes = blocks * (8 << 20);
    let mut wruns: Vec<(f64, f64)> = Vec::new();
    for _ in 0..runs.max(1) {
        sync()?;
        let mut f =
            fs::File::create(&wpath).with_context(|| format!("create {}", wpath.display()))?;
        let t = Instant::now();
        for _ in 0..blocks {
            f.write_all(&block)?;
        }
        let w = t.elapsed().as_secs_f64();
        f.sync_data()?;
        wruns.push((w, t.elapsed().as_secs_f64()));
        drop(f);
        fs::remove_file(&wpath)?;
    }
    let all_mbs: Vec<f64> = wruns
        .iter()
        .map(|(_, total)| wbytes as f64 / 1e6 / total)
        .collect();
    wruns.sort_by(|x, y| x.1.total_cmp(&y.1));
    let (write_s, total_s) = wruns[(wruns.len() - 1) / 2];
    Ok(WriteProbe {
        bytes: wbytes,
        write_s,
        total_s,
        all_mbs,
    })
}
fn inflate_raw_exact(raw: &[u8], expected: u64, out: &mut Vec<u8>) -> Result<()> {
    let n = usize::try_from(expected)?;
    match dos_core::codec::deflate::inflate(raw, n + 1, out) {
        dos_core::codec::deflate::Inflated::Done { produced, .. }
            if produced as u64 == expected =>
        {
            Ok(())
        }
        other => bail!("inflate: {other:?}, expected {expected} bytes"),
    }
}

/// The two-core limit of an archive import: raw inflate (libdeflate, as the importer) and inflate + SHA-256 of an evenly strided sample of the archive's own deflated
/// `repo/` entries (about `mb` MB uncompressed), read into memory first; one core and two (a
/// rayon pool of 2 threads over the entries); best of 3, MB/s of uncompressed bytes.
fn probe_archive(
    path: &Path,
    mb: u64,
    pool: &rayon::ThreadPool,
    out: &mut serde_json::Map<String, Value>,
) -> Result<()> {
    let z = dos_archive::ZipArchive::open(path, &dos_archive::Limits::default())
        .map_err(|e| anyhow!("{e}"))?;
    let mut entries: Vec<&dos_archive::zip::Entry> = z
        .entries
        .iter()
        .filter(|e| e.name.repo_key().is_some() && e.method == dos_archive::zip::METHOD_DEFLATE)
        .collect();
    entries.sort_unstable_by_key(|e| e.header_offset);
    let total: u64 = entries.iter().map(|e| e.usize).sum();
    let stride = usize::try_from(total.div_ceil((mb * 1_000_000).max(1)))?.max(1);
    let mut sample: Vec<(Vec<u8>, u64)> = Vec::new();
    for e in entries.iter().step_by(stride) {
        sample.push((z.read_raw(e).map_err(|e| anyhow!("{e}"))?, e.usize));
    }
    let bytes: u64 = sample.iter().map(|(_, u)| u).sum();
    let csize: u64 = sample.iter().map(|(r, _)| r.len() as u64).sum();
    let reps = 3;
    let failed = std::sync::Mutex::new(None);
    let fail = |e: anyhow::Error| {
        if let Ok(mut f) = failed.lock() {
            *f = Some(e);
        }
    };
    let one = |hash: bool| {
        best_of(reps, || {
            let mut buf = Vec::new();
            for (raw, u) in &sample {
                match inflate_raw_exact(raw, *u, &mut buf) {
                    Ok(()) if hash => {
                        std::hint::black_box(sha256_hex(&buf[..*u as usize]));
                    }
                    Ok(()) => {}
                    Err(e) => fail(e),
                }
            }
        })
    };
    let two =
        |hash: bool| {
            best_of(reps, || {
                pool.install(|| {
                    sample.par_iter().for_each_init(Vec::new, |buf, (raw, u)| {
                        match inflate_raw_exact(raw, *u, buf) {
                            Ok(()) if hash => {
                                std::hint::black_box(sha256_hex(&buf[..*u as usize]));
                            }
                            Ok(()) => {}
                            Err(e) => fail(e),
                        }
                    });
                });
            })
        };
    let (i1, i2, ih1, ih2) = (one(false), two(false), one(true), two(true));
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e.context(format!("probe of {}", path.display())));
    }
    let rate = |s: f64| bytes as f64 / 1e6 / s;
    out.insert("archive".into(), json!(path.display().to_string()));
    out.insert("archive_sample_objects".into(), json!(sample.len()));
    out.insert("archive_sample_bytes".into(), json!(bytes));
    out.insert("archive_sample_compressed_bytes".into(), json!(csize));
    out.insert("archive_inflate_1core_mbs".into(), json!(rate(i1)));
    out.insert("archive_inflate_2core_mbs".into(), json!(rate(i2)));
    out.insert("archive_inflate_sha256_1core_mbs".into(), json!(rate(ih1)));
    out.insert("archive_inflate_sha256_2core_mbs".into(), json!(rate(ih2)));
    Ok(())
}

/// The probe results as text (printed at the top of the output).
pub fn probe_text(p: &Value) -> String {
    let f = |k: &str| p.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let u = |k: &str| p.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut t = format!(
        "machine probes (dos-core codecs on {} objects, {:.1} MB of the data set's unique content, \
         each object on its own; best of 3 (compression: of 2); MB/s of uncompressed bytes):\n",
        u("sample_objects"),
        u("sample_bytes") as f64 / 1e6
    );
    for (name, k) in [
        ("SHA-256", "sha256"),
        ("BLAKE2b-256", "blake2b256"),
        ("zlib inflate", "inflate"),
        ("zlib inflate + SHA-256", "inflate_sha256"),
        ("libdeflate level 1 compress (zlib+1)", "compress_zlib1"),
        ("zstd inflate", "zstd_inflate"),
        ("zstd inflate + SHA-256", "zstd_inflate_sha256"),
        ("zstd level 3 compress (zstd+3)", "compress_zstd3"),
    ] {
        let _ = writeln!(
            t,
            "  {name:<36} 1 core {:>7.0}   2 cores {:>7.0}",
            f(&format!("{k}_1core_mbs")),
            f(&format!("{k}_2core_mbs"))
        );
    }
    let _ = writeln!(
        t,
        "  compressed / original: zlib+1 {:.3}, zstd+3 {:.3}",
        u("compressed_bytes") as f64 / u("sample_bytes").max(1) as f64,
        u("zstd3_compressed_bytes") as f64 / u("sample_bytes").max(1) as f64
    );
    if p.get("archive_sample_objects").is_some() {
        let _ = writeln!(
            t,
            "  archive's own deflate streams ({} entries, {:.1} MB uncompressed, {:.3} compressed / \
             original; raw inflate as the importer):",
            u("archive_sample_objects"),
            u("archive_sample_bytes") as f64 / 1e6,
            u("archive_sample_compressed_bytes") as f64 / u("archive_sample_bytes").max(1) as f64
        );
        for (name, k) in [
            ("raw inflate", "archive_inflate"),
            ("raw inflate + SHA-256", "archive_inflate_sha256"),
        ] {
            let _ = writeln!(
                t,
                "    {name:<34} 1 core {:>7.0}   2 cores {:>7.0}",
                f(&format!("{k}_1core_mbs")),
                f(&format!("{k}_2core_mbs"))
            );
        }
    }
    let runs: Vec<String> = p
        .get("write_fdatasync_mbs_runs")
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .filter_map(Value::as_f64)
                .map(|x| format!("{x:.0}"))
                .collect()
        })
        .unwrap_or_default();
    let _ = writeln!(
        t,
        "  sequential write + fdatasync of {:.0} MiB in the data folder: {:.0} MB/s median \
         (write {:.2} s, then fdatasync {:.2} s; runs: {} MB/s)",
        u("write_bytes") as f64 / (1u64 << 20) as f64,
        f("write_fdatasync_mbs"),
        f("write_s"),
        f("write_fdatasync_s") - f("write_s"),
        runs.join(", ")
    );
    let _ = writeln!(
        t,
        "  load average after the probes: {}",
        p.get("loadavg").and_then(Value::as_str).unwrap_or("-")
    );
    t
}
