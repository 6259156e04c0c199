//! Criterion benchmarks of `dos-core` on small generated AiiDA-like data sets (seed 42):
//!
//! - `pack_writer/10k/{plain,zlib}`: 10,000 in-memory objects written straight to a fresh
//!   container's packs (`skip_existing: false`, as Python's default);
//! - `read_objects/10k`: bulk read of every object of a packed container;
//! - `has_objects/100k`: existence of 100,000 keys (the container's plus absent ones, shuffled);
//! - `add_files_loose/1k`: 1,000 files added as loose objects to a fresh container.
//!
//! Sizes are kept small so that `cargo bench -p dos-bench` finishes in a few minutes; the
//! comparison with Python at full size is the `dos-compare` binary.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use dos_bench::{GenOptions, Plan, Rng};
use dos_core::{
    CompressMode, Container, InitOptions, NoProgress, ObjectContent, ObjectKey, ObjectSource,
    PackWriteOptions,
};

const SEED: u64 = 42;

/// Unwrap a result inside a measured closure (which cannot return errors), with the full chain.
fn must<T, E: std::fmt::Display>(r: std::result::Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("benchmark operation failed: {e:#}"),
    }
}

/// A fresh, empty container in a temporary folder (the folder is removed on drop). The
/// filesystem is synced first (untimed), so that data written by earlier iterations is not
/// flushed during the next measured one.
fn fresh() -> Result<(tempfile::TempDir, Container)> {
    let dir = tempfile::tempdir()?;
    let c = Container::init(&dir.path().join("c"), &InitOptions::default())?;
    dos_core::durable::sync_filesystem(dir.path())?;
    Ok((dir, c))
}

/// Containers written by measured iterations, removed only when the group is over: deleting
/// thousands of files or a large pack right before the next iteration slows it down (ext4 skips
/// recently freed inodes when allocating, and this filesystem may discard freed blocks).
type Keep = std::cell::RefCell<Vec<tempfile::TempDir>>;

fn pack_opts(compress: CompressMode) -> PackWriteOptions {
    PackWriteOptions {
        compress,
        skip_existing: false,
        ..Default::default()
    }
}

fn bench_pack_writer(c: &mut Criterion, contents: &[Vec<u8>]) {
    let bytes: u64 = contents.iter().map(|v| v.len() as u64).sum();
    let keep = Keep::default();
    let mut g = c.benchmark_group("pack_writer/10k");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(9))
        .throughput(Throughput::Bytes(bytes));
    for (name, mode) in [("plain", CompressMode::No), ("zlib", CompressMode::Yes)] {
        let opts = pack_opts(mode);
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let (dir, cont) = must(fresh());
                    (dir, cont, contents.to_vec())
                },
                |(dir, cont, data)| {
                    let mut w = must(cont.pack_writer(&opts, &NoProgress, |_, _| {}));
                    for d in data {
                        must(w.push(ObjectSource::Bytes(d)));
                    }
                    let summary = must(w.finish());
                    assert_eq!(summary.objects, contents.len() as u64);
                    keep.borrow_mut().push(dir);
                    cont
                },
                BatchSize::PerIteration,
            );
        });
    }
    g.finish();
}

fn bench_reads(c: &mut Criterion, contents: Vec<Vec<u8>>) -> Result<()> {
    let bytes: u64 = contents.iter().map(|v| v.len() as u64).sum();
    let (_dir, cont) = fresh()?;
    let keys = cont.add_objects_to_pack(contents, &pack_opts(CompressMode::No))?;
    let mut unique = keys.clone();
    unique.sort_unstable();
    unique.dedup();

    let mut g = c.benchmark_group("read_objects/10k");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(bytes));
    g.bench_function("plain", |b| {
        b.iter(|| {
            let mut total = 0u64;
            let missing = must(cont.read_objects(&keys, |_, content, _| {
                match content {
                    ObjectContent::Bytes(d) => total += d.len() as u64,
                    ObjectContent::Reader(r) => {
                        total += std::io::copy(r, &mut std::io::sink()).map_err(|e| {
                            dos_core::Error::Source {
                                source_name: "reader".into(),
                                source: e,
                            }
                        })?;
                    }
                }
                Ok(())
            }));
            assert!(missing.is_empty());
            total
        });
    });
    g.finish();

    // 100k keys: the container's unique keys plus absent random ones, shuffled.
    let mut rng = Rng::new(SEED);
    let mut probe: Vec<ObjectKey> = unique.clone();
    while probe.len() < 100_000 {
        let mut k = [0u8; 32];
        for part in k.chunks_exact_mut(8) {
            part.copy_from_slice(&rng.next_u64().to_be_bytes());
        }
        probe.push(ObjectKey::sha256(k));
    }
    for i in (1..probe.len()).rev() {
        probe.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut g = c.benchmark_group("has_objects/100k");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(probe.len() as u64));
    g.bench_function("mixed", |b| {
        b.iter(|| {
            let found = must(cont.has_objects(&probe));
            let t = found.iter().filter(|&&f| f).count();
            assert_eq!(t, unique.len());
            t
        });
    });
    g.finish();
    Ok(())
}

fn bench_loose(c: &mut Criterion) -> Result<()> {
    let plan = Plan::new(GenOptions {
        n: 1000,
        seed: SEED,
    });
    let src = tempfile::tempdir()?;
    let mut paths: Vec<PathBuf> = Vec::with_capacity(plan.len());
    let mut bytes = 0u64;
    for i in 0..plan.len() {
        let p = src.path().join(format!("{i:06}"));
        let data = plan.content(i);
        bytes += data.len() as u64;
        std::fs::write(&p, &data)?;
        paths.push(p);
    }
    let keep = Keep::default();
    let mut g = c.benchmark_group("add_files_loose/1k");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(bytes));
    g.bench_function("files", |b| {
        b.iter_batched(
            || must(fresh()),
            |(dir, cont)| {
                let w = must(cont.add_files_loose(&paths, &NoProgress));
                assert_eq!(w.len(), paths.len());
                keep.borrow_mut().push(dir);
                cont
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
    Ok(())
}

fn run(c: &mut Criterion) -> Result<()> {
    let contents = Plan::new(GenOptions {
        n: 10_000,
        seed: SEED,
    })
    .contents();
    bench_pack_writer(c, &contents);
    bench_reads(c, contents)?;
    bench_loose(c)?;
    Ok(())
}

/// Entry point of the criterion group.
fn benches(c: &mut Criterion) {
    if let Err(e) = run(c) {
        panic!("benchmark setup failed: {e:#}");
    }
}

criterion_group!(container, benches);
criterion_main!(container);
