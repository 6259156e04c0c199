//! The base containers of the scale benchmark: one per size, generated once by a dos child
//! (`scale-child gen`) and reused while its manifest matches; never modified by an operation
//! (every write runs on a copy).
//!
//! A base of `n` objects holds objects `0..n` (see [`content`](super::content)): one in
//! `loose_every` written loose with `Container::add_files_loose`, the rest packed with the pack
//! writer (default options but `skip_existing: false`: the objects are distinct by construction,
//! so the per-object index probe is skipped), uncompressed, in as many packs as the default
//! 4 GiB target makes. Next to it, `inputs/` holds the key lists of the operations:
//! `keys-has.txt` (present and absent keys, shuffled), `keys-meta.txt` (present keys) and
//! `keys-delete.txt` (packed keys).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use dos_bench::rss;
use dos_core::{Container, InitOptions, NoProgress, ObjectSource, PackWriteOptions};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::content::{self, FORMAT, is_loose, loose_count};
use crate::args::{ScaleArgs, ScaleChildArgs};
use crate::dataset::write_list;

/// What a base container holds, and how it was made (`manifest.json`, written last).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// [`FORMAT`] when it was made.
    pub format: u32,
    /// Objects.
    pub n: u64,
    /// Seed of their content.
    pub seed: u64,
    /// One object in this many is loose.
    pub loose_every: u64,
    /// Keys of the `has` list.
    pub has_n: u64,
    /// Keys of the `meta` list.
    pub meta_n: u64,
    /// One packed object in this many is in the `delete` list.
    pub delete_every: u64,
    /// Packed objects.
    pub packed: u64,
    /// Loose objects.
    pub loose: u64,
    /// Bytes of the packed objects.
    pub packed_bytes: u64,
    /// Bytes of the loose objects.
    pub loose_bytes: u64,
    /// Present keys of the `has` list (the rest are absent).
    pub has_present: u64,
    /// Keys of the `has` list.
    pub has_keys: u64,
    /// Keys of the `meta` list.
    pub meta_keys: u64,
    /// Loose objects among the `meta` keys.
    pub meta_loose: u64,
    /// Keys of the `delete` list.
    pub delete_keys: u64,
    /// Bytes of the pack files.
    pub packs_bytes: u64,
    /// Pack files.
    pub pack_files: u64,
    /// Bytes of `packs.idx` (and of its `-wal`, if any) after the generation.
    pub index_bytes: u64,
    /// Bytes of `packs.idx-wal` after the generation.
    pub index_wal_bytes: u64,
    /// Seconds of the pack writer session.
    pub gen_pack_seconds: f64,
    /// Seconds of writing the loose objects (temporary files included).
    pub gen_loose_seconds: f64,
    /// Seconds of making the key lists.
    pub gen_lists_seconds: f64,
    /// Peak RSS of the generating process (KiB).
    pub gen_peak_rss_kb: Option<u64>,
    /// Peak RSS during each phase (pack, loose, lists; KiB; `None` where the peak cannot be
    /// reset).
    #[serde(default)]
    pub gen_phase_peak_rss_kb: Vec<Option<u64>>,
}

impl Manifest {
    /// Whether this base was made by the rules and parameters `a` asks for at size `n`.
    fn matches(&self, a: &ScaleArgs, n: u64) -> bool {
        self.format == FORMAT
            && self.n == n
            && self.seed == a.seed
            && self.loose_every == a.loose_every
            && self.has_n == a.has_n
            && self.meta_n == a.meta_n
            && self.delete_every == a.delete_every
    }
}

/// The folders of one size.
#[derive(Debug, Clone)]
pub struct Base {
    /// `<data dir>/scale-n<N>-s<seed>`.
    pub dir: PathBuf,
    /// What it holds.
    pub manifest: Manifest,
}

impl Base {
    /// The base container.
    pub fn container(&self) -> PathBuf {
        self.dir.join("base")
    }

    /// The key list `name` of `inputs/`.
    pub fn list(&self, name: &str) -> PathBuf {
        self.dir.join("inputs").join(name)
    }

    /// The container of the new loose objects `pack` packs (made once, see
    /// [`Base::extra_marker`]); they are hard-linked into each copy.
    pub fn extra(&self) -> PathBuf {
        self.dir.join("pack-extra")
    }

    /// The marker of [`Base::extra`]: the objects it holds (`<first> <count> <seed>`).
    pub fn extra_marker(&self, count: u64) -> (PathBuf, String) {
        (
            self.dir.join("pack-extra.ok"),
            format!("{} {count} {}\n", self.manifest.n, self.manifest.seed),
        )
    }

    /// A working copy's folder.
    pub fn work(&self, name: &str) -> PathBuf {
        self.dir.join(format!("work-{name}"))
    }
}

/// The folder of size `n`.
pub fn size_dir(root: &Path, n: u64, seed: u64) -> PathBuf {
    root.join(format!("scale-n{n}-s{seed}"))
}

/// The manifest of the base in `dir`, if there is a readable one.
pub fn read_manifest(dir: &Path) -> Option<Manifest> {
    let s = fs::read_to_string(dir.join("manifest.json")).ok()?;
    serde_json::from_str(&s).ok()
}

/// The base of size `n` if it exists and matches `a` (else `None`: it must be generated).
pub fn existing(root: &Path, a: &ScaleArgs, n: u64) -> Option<Base> {
    let dir = size_dir(root, n, a.seed);
    let manifest = read_manifest(&dir)?;
    (manifest.matches(a, n) && dir.join("base/config.json").exists())
        .then_some(Base { dir, manifest })
}

/// Size of the file `p` (0 if absent).
pub fn file_len(p: &Path) -> u64 {
    fs::metadata(p).map_or(0, |m| m.len())
}

/// The contents of every loose object of the container `dir`, in path order.
pub fn read_loose_contents(dir: &Path) -> Result<Vec<Vec<u8>>> {
    let mut paths = Vec::new();
    let loose = dir.join("loose");
    for shard in fs::read_dir(&loose).with_context(|| format!("list {}", loose.display()))? {
        let shard = shard?.path();
        if shard.is_dir() {
            for f in fs::read_dir(&shard)? {
                paths.push(f?.path());
            }
        }
    }
    paths.sort();
    paths
        .iter()
        .map(|p| fs::read(p).with_context(|| format!("read {}", p.display())))
        .collect()
}

/// Write objects `indices` as loose objects of `c`: their contents go to temporary files in
/// `tmp` first (removed afterwards), then `Container::add_files_loose` (batched syncs). Returns
/// their bytes; fails if a key is not the object's.
pub fn write_loose(c: &Container, seed: u64, indices: &[u64], tmp: &Path) -> Result<u64> {
    if tmp.exists() {
        fs::remove_dir_all(tmp).with_context(|| format!("remove {}", tmp.display()))?;
    }
    fs::create_dir_all(tmp).with_context(|| format!("create {}", tmp.display()))?;
    let mut buf = Vec::new();
    let mut paths = Vec::with_capacity(indices.len());
    for &i in indices {
        content::content(seed, i, &mut buf);
        let p = tmp.join(i.to_string());
        fs::write(&p, &buf).with_context(|| format!("write {}", p.display()))?;
        paths.push(p);
    }
    let written = c.add_files_loose(&paths, &NoProgress)?;
    fs::remove_dir_all(tmp).with_context(|| format!("remove {}", tmp.display()))?;
    let mut bytes = 0;
    for (w, &i) in written.iter().zip(indices) {
        if w.key.to_string() != content::key(seed, i) {
            bail!("loose object {i} was stored under {}", w.key);
        }
        bytes += w.size;
    }
    if written.len() != indices.len() {
        bail!(
            "{} loose objects written of {}",
            written.len(),
            indices.len()
        );
    }
    Ok(bytes)
}

/// `scale-child gen`: make the base container `a.container` (which must not exist) of `a.n`
/// objects and its key lists in `a.inputs`, then write the manifest next to the container.
pub fn generate(a: &ScaleChildArgs) -> Result<()> {
    let (n, seed, every) = (a.n, a.seed, a.loose_every);
    let inputs = a
        .inputs
        .as_ref()
        .context("gen needs --inputs")?
        .to_path_buf();
    let dir = a
        .container
        .parent()
        .context("the container needs a parent folder")?
        .to_path_buf();
    let c = Container::init(&a.container, &InitOptions::default())?;

    // The peak of each phase (the process's peak is also kept).
    let mut phase_peaks = Vec::new();
    let mut peak = rss::peak_kb();
    let mut phase_start = || {
        let p = rss::peak_kb();
        peak = peak.max(p);
        rss::reset_peak()
    };
    let mut reset = phase_start();

    // The packed objects, straight into packs.
    let t = Instant::now();
    let loose_n = loose_count(n, every);
    let opts = PackWriteOptions {
        skip_existing: false,
        total_hint: (n - loose_n) * (content::MIN_SIZE + content::MAX_SIZE) / 2,
        ..Default::default()
    };
    let mut w = c.pack_writer(&opts, &NoProgress, |_, _| {})?;
    let mut packed_bytes = 0u64;
    for i in (0..n).filter(|&i| !is_loose(i, every)) {
        let o = content::object(seed, i);
        packed_bytes += o.len() as u64;
        w.push(ObjectSource::Bytes(o))?;
    }
    let summary = w.finish()?;
    if summary.written != n - loose_n {
        bail!("{} objects packed of {}", summary.written, n - loose_n);
    }
    let gen_pack_seconds = t.elapsed().as_secs_f64();
    eprintln!(
        "  packed {} objects in {gen_pack_seconds:.1} s",
        summary.written
    );

    phase_peaks.push(rss::peak_kb().filter(|_| reset));
    reset = phase_start();

    // The loose ones.
    let t = Instant::now();
    let loose_idx: Vec<u64> = (0..n).filter(|&i| is_loose(i, every)).collect();
    let loose_bytes = write_loose(&c, seed, &loose_idx, &dir.join("gen-tmp"))?;
    let gen_loose_seconds = t.elapsed().as_secs_f64();
    eprintln!(
        "  wrote {} loose objects in {gen_loose_seconds:.1} s",
        loose_idx.len()
    );

    phase_peaks.push(rss::peak_kb().filter(|_| reset));
    reset = phase_start();

    // The key lists.
    let t = Instant::now();
    fs::create_dir_all(&inputs)?;
    let mut r = content::rng(seed, 1);
    let present = (a.has_n / 2).min(n);
    let mut has: Vec<String> = content::sample(&mut r, n, present, |_| true)
        .into_iter()
        .map(|i| content::key(seed, i))
        .collect();
    while (has.len() as u64) < a.has_n {
        has.push(content::random_key(&mut r));
    }
    content::shuffle(&mut r, &mut has);
    write_list(&inputs.join("keys-has.txt"), &has)?;
    drop(has);
    let mut r = content::rng(seed, 2);
    let meta = content::sample(&mut r, n, a.meta_n, |_| true);
    let meta_loose = meta.iter().filter(|&&i| is_loose(i, every)).count() as u64;
    write_list(
        &inputs.join("keys-meta.txt"),
        meta.iter().map(|&i| content::key(seed, i)),
    )?;
    let mut r = content::rng(seed, 3);
    let delete_n = (n - loose_n).checked_div(a.delete_every).unwrap_or(0);
    let delete = content::sample(&mut r, n, delete_n, |i| !is_loose(i, every));
    write_list(
        &inputs.join("keys-delete.txt"),
        delete.iter().map(|&i| content::key(seed, i)),
    )?;
    let gen_lists_seconds = t.elapsed().as_secs_f64();
    phase_peaks.push(rss::peak_kb().filter(|_| reset));
    phase_start();
    drop(c);

    let idx = a.container.join("packs.idx");
    let wal = a.container.join("packs.idx-wal");
    let packs = a.container.join("packs");
    let manifest = Manifest {
        format: FORMAT,
        n,
        seed,
        loose_every: every,
        has_n: a.has_n,
        meta_n: a.meta_n,
        delete_every: a.delete_every,
        packed: summary.written,
        loose: loose_idx.len() as u64,
        packed_bytes,
        loose_bytes,
        has_present: present,
        has_keys: a.has_n,
        meta_keys: meta.len() as u64,
        meta_loose,
        delete_keys: delete.len() as u64,
        packs_bytes: crate::runner::du(&packs),
        pack_files: fs::read_dir(&packs).map_or(0, |d| d.count() as u64),
        index_bytes: file_len(&idx) + file_len(&wal),
        index_wal_bytes: file_len(&wal),
        gen_pack_seconds,
        gen_loose_seconds,
        gen_lists_seconds,
        gen_peak_rss_kb: peak,
        gen_phase_peak_rss_kb: phase_peaks,
    };
    fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    println!(
        "{}",
        json!({"side": "dos", "op": "gen", "manifest": manifest})
    );
    Ok(())
}
