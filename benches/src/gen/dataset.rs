//! Data sets on disk: the files of a plan under `files/` and their manifest (`manifest.tsv`),
//! written once and reused while they match.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use dos_core::ObjectKey;
use rayon::prelude::*;

use super::{GENERATOR_VERSION, GenOptions, MANIFEST, Plan};

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the data set folder (`files/<shard>/<index>`).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content.
    pub sha256: ObjectKey,
}

/// A generated data set: files under `<dir>/files/` and their manifest.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The data set folder.
    pub dir: PathBuf,
    /// The options it was generated with.
    pub opts: GenOptions,
    /// One entry per object, in index order.
    pub entries: Vec<Entry>,
}

/// Relative path of file `i`: `files/<i / 1000, 3 digits>/<i, 6 digits>`.
pub fn rel_path(i: usize) -> String {
    format!("files/{:03}/{:06}", i / 1000, i)
}

fn header(opts: GenOptions, plan: &Plan) -> String {
    format!(
        "#dos-bench-manifest\tgenerator={GENERATOR_VERSION}\tn={}\tseed={}\tplan={}",
        opts.n,
        opts.seed,
        plan.fingerprint()
    )
}

impl Dataset {
    /// Reuse the data set in `dir` if its manifest matches `opts` and every file has its recorded
    /// size; otherwise (re)generate it. Returns the data set and whether it was reused.
    pub fn generate_or_reuse(dir: &Path, opts: GenOptions) -> Result<(Dataset, bool)> {
        if let Some(ds) = Self::load_matching(dir, opts)? {
            return Ok((ds, true));
        }
        Ok((Self::generate(dir, opts)?, false))
    }

    /// Load the manifest of `dir` (whatever its options).
    pub fn load(dir: &Path) -> Result<Dataset> {
        let path = dir.join(MANIFEST);
        let f = fs::File::open(&path).with_context(|| format!("open {}", path.display()))?;
        let mut lines = BufReader::new(f).lines();
        let first = lines.next().context("empty manifest")??;
        let mut n = None;
        let mut seed = None;
        let mut version = None;
        for field in first.split('\t').skip(1) {
            match field.split_once('=') {
                Some(("n", v)) => n = Some(v.parse::<usize>()?),
                Some(("seed", v)) => seed = Some(v.parse::<u64>()?),
                Some(("generator", v)) => version = Some(v.parse::<u32>()?),
                _ => {}
            }
        }
        let (Some(n), Some(seed), Some(version)) = (n, seed, version) else {
            bail!("{}: malformed header {first:?}", path.display());
        };
        if version != GENERATOR_VERSION {
            bail!(
                "{}: generator version {version}, expected {GENERATOR_VERSION}",
                path.display()
            );
        }
        let mut entries = Vec::with_capacity(n);
        for line in lines {
            let line = line?;
            let mut it = line.split('\t');
            let (Some(p), Some(s), Some(h), None) = (it.next(), it.next(), it.next(), it.next())
            else {
                bail!("{}: malformed line {line:?}", path.display());
            };
            entries.push(Entry {
                path: p.to_string(),
                size: s.parse()?,
                sha256: h
                    .parse()
                    .with_context(|| format!("{}: malformed line {line:?}", path.display()))?,
            });
        }
        if entries.len() != n {
            bail!(
                "{}: {} entries, header says {n}",
                path.display(),
                entries.len()
            );
        }
        Ok(Dataset {
            dir: dir.to_path_buf(),
            opts: GenOptions { n, seed },
            entries,
        })
    }

    fn load_matching(dir: &Path, opts: GenOptions) -> Result<Option<Dataset>> {
        let path = dir.join(MANIFEST);
        let Ok(f) = fs::File::open(&path) else {
            return Ok(None);
        };
        let mut first = String::new();
        BufReader::new(f).read_line(&mut first)?;
        if first.trim_end() != header(opts, &Plan::new(opts)) {
            return Ok(None);
        }
        let ds = Self::load(dir)?;
        let intact = ds
            .entries
            .par_iter()
            .all(|e| fs::metadata(dir.join(&e.path)).is_ok_and(|m| m.len() == e.size));
        Ok(intact.then_some(ds))
    }

    /// Generate the data set into `dir` (its `files/` and manifest are replaced), in parallel.
    pub fn generate(dir: &Path, opts: GenOptions) -> Result<Dataset> {
        let manifest = dir.join(MANIFEST);
        let files = dir.join("files");
        match fs::remove_file(&manifest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("remove {}", manifest.display())),
        }
        if files.exists() {
            fs::remove_dir_all(&files).with_context(|| format!("remove {}", files.display()))?;
        }
        let plan = Plan::new(opts);
        for shard in 0..opts.n.div_ceil(1000) {
            let d = files.join(format!("{shard:03}"));
            fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
        }
        let entries: Vec<Entry> = (0..opts.n)
            .into_par_iter()
            .map_init(Vec::new, |buf, i| -> Result<Entry> {
                plan.write_content(i, buf);
                let path = rel_path(i);
                let full = dir.join(&path);
                fs::write(&full, &buf[..]).with_context(|| format!("write {}", full.display()))?;
                Ok(Entry {
                    path,
                    size: buf.len() as u64,
                    sha256: dos_core::HashType::Sha256.key_of(buf),
                })
            })
            .collect::<Result<_>>()?;
        let tmp = dir.join(format!("{MANIFEST}.tmp"));
        {
            let mut w = std::io::BufWriter::new(
                fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?,
            );
            writeln!(w, "{}", header(opts, &plan))?;
            for e in &entries {
                writeln!(w, "{}\t{}\t{}", e.path, e.size, e.sha256)?;
            }
            w.into_inner()
                .map_err(|e| e.into_error())?
                .sync_all()
                .with_context(|| format!("write {}", tmp.display()))?;
        }
        fs::rename(&tmp, &manifest).with_context(|| format!("rename {}", manifest.display()))?;
        Ok(Dataset {
            dir: dir.to_path_buf(),
            opts,
            entries,
        })
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the data set has no files.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Absolute path of file `i`.
    pub fn path(&self, i: usize) -> PathBuf {
        self.dir.join(&self.entries[i].path)
    }

    /// Sum of the sizes of the first `k` files.
    pub fn bytes_of_first(&self, k: usize) -> u64 {
        self.entries[..k.min(self.len())]
            .iter()
            .map(|e| e.size)
            .sum()
    }

    /// Sum of all file sizes.
    pub fn total_bytes(&self) -> u64 {
        self.bytes_of_first(self.len())
    }

    /// Indices of the first occurrence of every distinct content, in index order.
    pub fn unique_indices(&self) -> Vec<usize> {
        let mut seen = std::collections::HashSet::with_capacity(self.len());
        (0..self.len())
            .filter(|&i| seen.insert(self.entries[i].sha256))
            .collect()
    }
}
