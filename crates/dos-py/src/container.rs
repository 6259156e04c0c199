//! `RawContainer`: one open dos-core container, the native half of
//! `dos_objectstore.Container`. Keys cross as hex strings (what Python code holds), are parsed
//! once here, and every call that does I/O releases the interpreter lock while dos-core works.
//! The Python class (`python/dos_objectstore/container.py`) gives these calls disk-objectstore's
//! names, arguments, return types and exceptions.

use std::path::PathBuf;

use dos_core::maintain::{
    CleanOptions, PackLooseOptions, RepackCompress, RepackOptions, ValidateOptions,
};
use dos_core::{
    CompressMode, Compression, Container, HashType, InitOptions, ObjectKey, ObjectMeta,
    ObjectSource, ObjectType, PackWriteOptions, StoreOutcome, read::FillTarget,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};
use rayon::prelude::*;

use crate::bridge::{HeldBytes, PyReader, StreamErrors};
use crate::errors::{to_py, write_to_py};

/// A metadata row as Python builds `ObjectMeta` from it:
/// `(type, size, pack_id, pack_compressed, pack_offset, pack_length)`.
type MetaRow = (
    &'static str,
    Option<u64>,
    Option<u64>,
    Option<bool>,
    Option<u64>,
    Option<u64>,
);

/// A key as the hex string Python code holds.
fn hex(k: &ObjectKey) -> String {
    k.hex().as_str().to_owned()
}

fn missing() -> ObjectMeta {
    ObjectMeta {
        kind: ObjectType::Missing,
        size: None,
        location: None,
    }
}

fn meta_row(m: &ObjectMeta) -> MetaRow {
    let kind = match m.kind {
        ObjectType::Loose => "loose",
        ObjectType::Packed => "packed",
        ObjectType::Missing => "missing",
    };
    match &m.location {
        Some(l) => (
            kind,
            m.size,
            Some(l.pack_id),
            Some(l.compressed),
            Some(l.offset),
            Some(l.length),
        ),
        None => (kind, m.size, None, None, None, None),
    }
}

/// The pack writer's settings for calls from Python: a smaller memory budget than the CLI's
/// (64 MB instead of 96 MB), so that a write's working memory stays below what
/// disk-objectstore's own needs for the same call (measured in docs/performance.md; the larger
/// budget bought nothing measurable there).
fn python_tuning() -> dos_core::write::WriteTuning {
    dos_core::write::WriteTuning {
        memory_budget: 64 * 1024 * 1024,
        ..Default::default()
    }
}

/// `CompressMode` by the value of disk-objectstore's enum (`'no'`, `'yes'`, `'auto'`).
fn compress_mode(mode: &str) -> PyResult<CompressMode> {
    match mode {
        "no" => Ok(CompressMode::No),
        "yes" => Ok(CompressMode::Yes),
        "auto" => Ok(CompressMode::Auto),
        other => Err(PyValueError::new_err(format!(
            "compression mode {other:?} is not one of 'no', 'yes', 'auto'"
        ))),
    }
}

/// Repack's compression by disk-objectstore's values (`'keep'` as well).
fn repack_mode(mode: &str) -> PyResult<RepackCompress> {
    match mode {
        "keep" => Ok(RepackCompress::Keep),
        "no" => Ok(RepackCompress::No),
        "yes" => Ok(RepackCompress::Yes),
        "auto" => Ok(RepackCompress::Auto),
        other => Err(PyValueError::new_err(format!(
            "compression mode {other:?} is not one of 'keep', 'no', 'yes', 'auto'"
        ))),
    }
}

/// A summary as JSON text (the Python side parses it).
fn json(v: &impl serde::Serialize) -> PyResult<String> {
    serde_json::to_string(v).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// How this process reaches S3: the environment it was started with (read here, in the
/// package's native shell; the libraries read none), and where snapshots are cached.
fn s3_from_env() -> PyResult<(dos_remote::S3Opener, Option<PathBuf>)> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let opener =
        dos_remote::S3Opener::from_vars(&var, home.as_deref()).map_err(PyValueError::new_err)?;
    Ok((
        opener,
        dos_remote::S3Opener::cache_root(&var, home.as_deref()),
    ))
}

/// The I/O options of the container at `folder`: offloaded packs read with this process's
/// S3 credentials, ranges cached in `folder/dos-cache` when its settings ask.
fn io_options(folder: &std::path::Path) -> PyResult<dos_core::IoOptions> {
    let (opener, _) = s3_from_env()?;
    let opener = dos_remote::S3Opener {
        cache_dir: Some(folder.join("dos-cache")),
        ..opener
    };
    Ok(dos_core::IoOptions {
        remote: Some(std::sync::Arc::new(opener)),
        ..dos_core::IoOptions::default()
    })
}

/// One open container.
#[pyclass(frozen, module = "dos_objectstore._dos")]
pub struct RawContainer {
    c: Container,
}

impl RawContainer {
    /// A key as Python's containers name objects: exactly the hash's number of lowercase hex
    /// digits. Anything else (an uppercase key among it) names no object, as in
    /// disk-objectstore.
    fn key(&self, key: &str) -> Option<ObjectKey> {
        ObjectKey::from_canonical(self.c.hash_type(), key.as_bytes())
    }

    /// [`RawContainer::key`] of each key (anything but a `str` names no object); the strings
    /// are parsed one at a time, never all copied at once.
    fn parse_all(&self, keys: &[Bound<'_, PyAny>]) -> Vec<Option<ObjectKey>> {
        keys.iter()
            .map(|k| {
                k.downcast::<PyString>()
                    .ok()
                    .and_then(|s| s.to_cow().ok())
                    .and_then(|s| self.key(&s))
            })
            .collect()
    }
}

#[pymethods]
impl RawContainer {
    /// Open the container in `folder`.
    #[staticmethod]
    fn open(py: Python<'_>, folder: PathBuf) -> PyResult<Self> {
        let io = io_options(&folder)?;
        let c = py
            .allow_threads(|| Container::open_with(&folder, io))
            .map_err(to_py)?;
        Ok(Self { c })
    }

    /// Open the snapshot published at `url` (`s3://bucket/prefix`), read-only; its index is
    /// kept in the user's cache folder.
    #[staticmethod]
    fn open_url(py: Python<'_>, url: &str) -> PyResult<Self> {
        let parsed = dos_core::remote::RemoteUrl::parse(url).map_err(PyValueError::new_err)?;
        let (opener, root) = s3_from_env()?;
        let root = root.ok_or_else(|| {
            PyValueError::new_err(format!(
                "{url}: no cache folder for snapshots (set DOS_CACHE_DIR or HOME)"
            ))
        })?;
        let c = py
            .allow_threads(|| opener.open_published(&parsed, &root, dos_core::IoOptions::default()))
            .map_err(to_py)?;
        Ok(Self { c })
    }

    /// The folder holding the container's files (for a published snapshot: its cache folder).
    fn folder(&self) -> PathBuf {
        self.c.path().to_path_buf()
    }

    /// Create a container in `folder` (missing or empty) and open it.
    #[staticmethod]
    fn init(
        py: Python<'_>,
        folder: PathBuf,
        pack_size_target: u64,
        loose_prefix_len: usize,
        hash_type: &str,
        compression_algorithm: &str,
    ) -> PyResult<Self> {
        let hash_type = HashType::from_name(hash_type)
            .ok_or_else(|| PyValueError::new_err(format!("Unknown hash type \"{hash_type}\"")))?;
        let compression = Compression::from_algorithm(compression_algorithm).ok_or_else(|| {
            PyValueError::new_err(format!(
                "Unknown or unsupported compression algorithm \"{compression_algorithm}\""
            ))
        })?;
        let opts = InitOptions {
            pack_size_target,
            loose_prefix_len,
            hash_type,
            compression,
        };
        let io = io_options(&folder)?;
        let c = py
            .allow_threads(|| Container::init_with(&folder, &opts, io))
            .map_err(to_py)?;
        Ok(Self { c })
    }

    /// Write one loose object; returns its key.
    fn add_object(&self, py: Python<'_>, content: &[u8]) -> PyResult<String> {
        let k = py
            .allow_threads(|| self.c.add_object(content))
            .map_err(to_py)?;
        Ok(hex(&k))
    }

    /// Write one loose object read from a Python stream; returns its key.
    fn add_streamed_object(&self, py: Python<'_>, stream: Py<PyAny>) -> PyResult<String> {
        let errors = StreamErrors::default();
        let mut reader = PyReader::new(stream, errors.clone());
        let r = py.allow_threads(|| self.c.add_streamed_object(&mut reader));
        match r {
            Ok(k) => Ok(hex(&k)),
            Err(e) => Err(errors.take().unwrap_or_else(|| to_py(e))),
        }
    }

    /// Write to packs, in order, each item one of: `bytes` (the content), a `str` (the path of a
    /// file dos reads itself) or a Python stream (an object with `read(n)`); returns, in order,
    /// each one's key and whether it was written (not found packed already). `skip_existing`
    /// writes each content at most once (disk-objectstore's `no_holes=True`).
    fn add_to_pack(
        &self,
        py: Python<'_>,
        items: Vec<Bound<'_, PyAny>>,
        compress: &str,
        skip_existing: bool,
    ) -> PyResult<Vec<(String, bool)>> {
        let errors = StreamErrors::default();
        let mut sources = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Ok(b) = item.downcast::<PyBytes>() {
                sources.push(ObjectSource::Held(Box::new(HeldBytes::new(b))));
            } else if let Ok(path) = item.downcast::<PyString>() {
                sources.push(ObjectSource::File(PathBuf::from(path.to_cow()?.as_ref())));
            } else {
                sources.push(ObjectSource::Reader {
                    name: format!("stream #{i}"),
                    reader: Box::new(PyReader::new(item.clone().unbind(), errors.clone())),
                });
            }
        }
        let opts = PackWriteOptions {
            compress: compress_mode(compress)?,
            skip_existing,
            tuning: python_tuning(),
            total_hint: sources
                .iter()
                .map(|s| match s {
                    ObjectSource::Held(b) => b.as_ref().as_ref().len() as u64,
                    _ => 0,
                })
                .sum(),
            ..Default::default()
        };
        let n = sources.len();
        let r = py.allow_threads(|| {
            let mut keys: Vec<Option<(ObjectKey, bool)>> = vec![None; n];
            let mut w = self.c.pack_writer(&opts, &dos_core::NoProgress, |i, o| {
                let written = matches!(o, StoreOutcome::Written { .. });
                keys[i] = o.key().map(|k| (k, written));
            })?;
            for s in sources {
                w.push(s)?;
            }
            w.finish()?;
            Ok::<_, dos_core::write::Error>(keys)
        });
        let keys = match r {
            Ok(k) => k,
            Err(e) => return Err(errors.take().unwrap_or_else(|| write_to_py(e))),
        };
        keys.into_iter()
            .map(|k| {
                k.map(|(k, written)| (hex(&k), written))
                    .ok_or_else(|| crate::errors::DosError::new_err("a stream was not stored"))
            })
            .collect()
    }

    /// The content of one object (`NotExistent` if it is neither packed nor loose).
    fn get_object_content<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyBytes>> {
        let k = match self.key(key) {
            Some(k) => k,
            None => {
                return Err(crate::errors::upstream_err(
                    "NotExistent",
                    format!("No object with hash key {key}"),
                ));
            }
        };
        if let Some(b) = self._read_one(py, key)? {
            return Ok(b);
        }
        // Missing: dos-core's own error (mapped to `NotExistent`).
        let data = py
            .allow_threads(|| self.c.get_object_content(&k))
            .map_err(to_py)?;
        Ok(PyBytes::new(py, &data))
    }

    /// The contents of the keys that exist, as `(key, bytes)` pairs in pack/offset order
    /// (loose objects last); each key once.
    fn get_objects_content<'py>(
        &self,
        py: Python<'py>,
        keys: Vec<Bound<'py, PyAny>>,
    ) -> PyResult<Vec<(Bound<'py, PyAny>, Bound<'py, PyBytes>)>> {
        // Each distinct valid key once, with where it is.
        let mut seen = std::collections::HashSet::new();
        let mut wanted: Vec<(usize, ObjectKey)> = Vec::new();
        for (i, k) in self.parse_all(&keys).into_iter().enumerate() {
            if let Some(k) = k
                && seen.insert(k)
            {
                wanted.push((i, k));
            }
        }
        let just_keys: Vec<ObjectKey> = wanted.iter().map(|(_, k)| *k).collect();
        // A second round when a pack looked up is gone: a repack moved its objects meanwhile.
        let mut round = 0;
        loop {
            round += 1;
            let metas = py
                .allow_threads(|| self.c.get_objects_meta(&just_keys))
                .map_err(to_py)?;
            let mut found: Vec<(usize, ObjectKey, ObjectMeta)> = wanted
                .iter()
                .copied()
                .zip(metas)
                .filter(|(_, m)| m.kind != ObjectType::Missing)
                .map(|((i, k), m)| (i, k, m))
                .collect();
            found.sort_by_key(|(i, _, m)| match m.location {
                Some(l) => (0, l.pack_id, l.offset, *i),
                None => (1, 0, 0, *i),
            });
            // The result objects, allocated first and filled without the interpreter lock: the
            // content is read once, straight into them.
            let mut out = Vec::with_capacity(found.len());
            let mut bufs = Vec::with_capacity(found.len());
            for (_, _, m) in &found {
                let (obj, buf) = crate::bridge::UnsharedBytes::new(py, m.size.unwrap_or(0))?;
                out.push(obj);
                bufs.push(buf);
            }
            let filled = py.allow_threads(|| {
                let mut targets: Vec<FillTarget<'_>> = found
                    .iter()
                    .zip(
                        bufs.par_iter_mut()
                            .map(|b| b.as_mut_slice())
                            .collect::<Vec<_>>(),
                    )
                    .map(|((_, k, m), b)| FillTarget {
                        key: *k,
                        meta: m.clone(),
                        buf: b,
                    })
                    .collect();
                self.c.fill_objects(&mut targets)
            });
            match filled {
                Err(dos_core::Error::MissingPack { .. }) if round == 1 => continue,
                Err(e) => return Err(to_py(e)),
                Ok(()) => {}
            }
            return Ok(found
                .iter()
                .zip(out)
                .map(|((i, _, _), b)| (keys[*i].clone(), b))
                .collect());
        }
    }

    /// The content of one object read straight into the returned `bytes` (`None` if the key
    /// names no object).
    fn _read_one<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let Some(k) = self.key(key) else {
            return Ok(None);
        };
        // A second round when the pack looked up is gone: a repack moved the object meanwhile.
        let mut round = 0;
        loop {
            round += 1;
            let meta = py
                .allow_threads(|| self.c.get_object_meta(&k))
                .map_err(to_py)?;
            if meta.kind == ObjectType::Missing {
                return Ok(None);
            }
            let (obj, mut buf) = crate::bridge::UnsharedBytes::new(py, meta.size.unwrap_or(0))?;
            let filled = py.allow_threads(|| {
                self.c.fill_objects(&mut [FillTarget {
                    key: k,
                    meta,
                    buf: buf.as_mut_slice(),
                }])
            });
            match filled {
                Err(dos_core::Error::MissingPack { .. }) if round == 1 => continue,
                Err(e) => return Err(to_py(e)),
                Ok(()) => return Ok(Some(obj)),
            }
        }
    }

    /// Where each distinct key is, in the order a bulk read visits them: packed objects by pack
    /// and offset, then loose ones, then missing ones (each in the order given); an iterator of
    /// `(key, (type, size, pack_id, compressed, offset, length))`, the keys being the caller's
    /// own objects.
    fn locate(&self, py: Python<'_>, keys: Vec<Bound<'_, PyAny>>) -> PyResult<Located> {
        let parsed = self.parse_all(&keys);
        let valid: Vec<ObjectKey> = parsed.iter().flatten().copied().collect();
        let metas = py
            .allow_threads(|| self.c.get_objects_meta(&valid))
            .map_err(to_py)?;
        let mut metas = metas.into_iter();
        let mut rows: Vec<(usize, ObjectMeta)> = parsed
            .iter()
            .map(|p| match p {
                Some(_) => metas.next().unwrap_or_else(missing),
                None => missing(),
            })
            .enumerate()
            .collect();
        rows.sort_by_key(|(i, m)| match (&m.kind, &m.location) {
            (ObjectType::Packed, Some(l)) => (0, l.pack_id, l.offset, *i),
            (ObjectType::Loose, _) => (1, 0, 0, *i),
            _ => (2, 0, 0, *i),
        });
        Ok(Located {
            keys: keys.into_iter().map(Bound::unbind).collect(),
            rows: rows.into_iter(),
        })
    }

    /// Pack `pack_id`, open for reading its objects' streams; `None` if it is gone (a repack
    /// removed it after moving its objects).
    fn open_pack(
        &self,
        py: Python<'_>,
        pack_id: u64,
    ) -> PyResult<Option<crate::streams::PackFile>> {
        let path = self.c.layout().pack(pack_id);
        match py.allow_threads(|| self.c.pack_data(pack_id)) {
            Ok(data) => Ok(Some(crate::streams::PackFile::new(data, path))),
            // Removed by a repack since the lookup: the caller looks the objects up again.
            Err(dos_core::Error::MissingPack { .. }) => Ok(None),
            Err(e) => Err(to_py(e)),
        }
    }

    /// Metadata of one object.
    fn get_object_meta(&self, py: Python<'_>, key: &str) -> PyResult<MetaRow> {
        let Some(k) = self.key(key) else {
            return Ok(("missing", None, None, None, None, None));
        };
        let m = py
            .allow_threads(|| self.c.get_object_meta(&k))
            .map_err(to_py)?;
        Ok(meta_row(&m))
    }

    /// For each key, whether the container has it.
    fn has_objects(&self, py: Python<'_>, keys: Vec<Bound<'_, PyAny>>) -> PyResult<Vec<bool>> {
        let parsed = self.parse_all(&keys);
        let valid: Vec<ObjectKey> = parsed.iter().flatten().copied().collect();
        let found = py
            .allow_threads(|| self.c.has_objects(&valid))
            .map_err(to_py)?;
        let mut found = found.into_iter();
        Ok(parsed
            .iter()
            .map(|p| p.is_some() && found.next().unwrap_or(false))
            .collect())
    }

    /// Every key, packed and loose, each once, sorted.
    fn list_all_objects<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let keys = py
            .allow_threads(|| self.c.list_all_objects())
            .map_err(to_py)?;
        PyList::new(py, keys.iter().map(|k| PyString::new(py, k.hex().as_str())))
    }

    /// `(packed, loose, pack_files)`.
    fn count_objects(&self, py: Python<'_>) -> PyResult<(u64, u64, u64)> {
        let c = py.allow_threads(|| self.c.count_objects()).map_err(to_py)?;
        Ok((c.packed, c.loose, c.pack_files))
    }

    /// `(packed, packed_on_disk, packfiles_on_disk, packindexes_on_disk, loose)` in bytes.
    fn get_total_size(&self, py: Python<'_>) -> PyResult<(u64, u64, u64, u64, u64)> {
        let t = py
            .allow_threads(|| self.c.get_total_size())
            .map_err(to_py)?;
        Ok((
            t.total_size_packed,
            t.total_size_packed_on_disk,
            t.total_size_packfiles_on_disk,
            t.total_size_packindexes_on_disk,
            t.total_size_loose,
        ))
    }

    /// Loose objects that are not packed, as `(key, size)`, by key.
    fn loose_not_packed(&self, py: Python<'_>) -> PyResult<Vec<(String, u64)>> {
        py.allow_threads(|| {
            let loose = self.c.list_loose()?;
            let metas = self.c.get_objects_meta(&loose)?;
            let mut out = Vec::new();
            for (k, m) in loose.iter().zip(metas) {
                if m.kind == ObjectType::Loose {
                    out.push((hex(k), m.size.unwrap_or(0)));
                }
            }
            Ok::<_, dos_core::Error>(out)
        })
        .map_err(to_py)
    }

    /// Pack every loose object; with `clean_loose` the loose copies are deleted once their
    /// pack's index commit is durable. Returns the loose files whose content does not match
    /// their name, as `(key, actual key)` (they are not packed).
    fn pack_all_loose(
        &self,
        py: Python<'_>,
        compress: &str,
        clean_loose: bool,
    ) -> PyResult<Vec<(String, String)>> {
        let opts = PackLooseOptions {
            compress: compress_mode(compress)?,
            clean_loose,
            // Python's `clean_loose_per_pack` deletes only what this call packed.
            clean_already_packed: false,
            tuning: python_tuning(),
            ..Default::default()
        };
        let s = py
            .allow_threads(|| self.c.pack_all_loose(&opts, &dos_core::NoProgress))
            .map_err(to_py)?;
        Ok(s.corrupt
            .iter()
            .map(|c| (hex(&c.key), hex(&c.actual)))
            .collect())
    }

    /// Check every object; returns the four lists of disk-objectstore's `ValidationIssues`.
    #[allow(clippy::type_complexity)]
    fn validate(
        &self,
        py: Python<'_>,
    ) -> PyResult<(Vec<String>, Vec<String>, Vec<String>, Vec<String>)> {
        let r = py
            .allow_threads(|| {
                self.c
                    .validate(&ValidateOptions::default(), &dos_core::NoProgress)
            })
            .map_err(to_py)?;
        Ok((
            r.invalid_hashes_loose,
            r.invalid_hashes_packed,
            r.invalid_sizes_packed,
            r.overlapping_packed,
        ))
    }

    /// `(pack_id, objects)` for each pack id with rows, by pack id.
    fn pack_counts(&self, py: Python<'_>) -> PyResult<Vec<(i64, u64)>> {
        let stats = py.allow_threads(|| self.c.pack_stats()).map_err(to_py)?;
        Ok(stats.iter().map(|s| (s.pack_id, s.objects)).collect())
    }

    /// `(pack_id, [size of each object by offset])` for each pack id with rows (or only for
    /// `pack_id`, if it has rows).
    #[pyo3(signature = (pack_id=None))]
    fn pack_object_sizes(
        &self,
        py: Python<'_>,
        pack_id: Option<i64>,
    ) -> PyResult<Vec<(i64, Vec<u64>)>> {
        py.allow_threads(|| {
            let mut out = Vec::new();
            let stats = self.c.pack_stats()?;
            for s in stats
                .iter()
                .filter(|s| pack_id.is_none_or(|p| p == s.pack_id))
            {
                let rows = self.c.rows_in_pack(s.pack_id)?;
                let sizes = rows
                    .iter()
                    .map(|r| u64::try_from(r.size).unwrap_or(0))
                    .collect();
                out.push((s.pack_id, sizes));
            }
            Ok::<_, dos_core::Error>(out)
        })
        .map_err(to_py)
    }

    /// Rewrite every pack (or only `pack_id`) without the bytes of deleted objects
    /// (`compress`: `'keep'`, `'no'`, `'yes'` or `'auto'`).
    #[pyo3(signature = (compress, pack_id=None))]
    fn repack(&self, py: Python<'_>, compress: &str, pack_id: Option<u64>) -> PyResult<()> {
        let opts = RepackOptions {
            compress: repack_mode(compress)?,
            force: true,
            only_pack: pack_id,
            // Python's repack is a maintenance operation: no other process writes meanwhile, so
            // pack files without rows go at once, as they do there.
            empty_pack_min_age: Some(std::time::Duration::ZERO),
            ..Default::default()
        };
        py.allow_threads(|| self.c.repack(&opts, &dos_core::NoProgress))
            .map(|_| ())
            .map_err(to_py)
    }

    /// Write a complete copy of the container into `dest` (which must not exist), incremental
    /// against the container copy `previous`; returns what was written and shared.
    #[pyo3(signature = (dest, previous = None))]
    fn backup_into<'py>(
        &self,
        py: Python<'py>,
        dest: PathBuf,
        previous: Option<PathBuf>,
    ) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let s = py
            .allow_threads(|| {
                self.c.backup_into(
                    &dest,
                    previous.as_deref(),
                    &dos_core::Interrupt::new(),
                    &dos_core::NoProgress,
                )
            })
            .map_err(to_py)?;
        let d = pyo3::types::PyDict::new(py);
        d.set_item("folder", s.folder.display().to_string())?;
        d.set_item("previous", s.previous.map(|p| p.display().to_string()))?;
        d.set_item("loose_linked", s.loose_linked)?;
        d.set_item("loose_copied", s.loose_copied)?;
        d.set_item("packs_linked", s.packs_linked)?;
        d.set_item("packs_appended", s.packs_appended)?;
        d.set_item("packs_copied", s.packs_copied)?;
        d.set_item("bytes_written", s.bytes_written)?;
        d.set_item("index_bytes", s.index_bytes)?;
        d.set_item("packed_objects", s.packed_objects)?;
        Ok(d)
    }

    /// Copy the index to the file `dest` with SQLite's online backup API.
    fn backup_index(&self, py: Python<'_>, dest: PathBuf) -> PyResult<()> {
        py.allow_threads(|| self.c.backup_index_to(&dest))
            .map_err(to_py)
    }

    /// Compact the index file.
    fn vacuum(&self, py: Python<'_>) -> PyResult<()> {
        py.allow_threads(|| self.c.vacuum_index()).map_err(to_py)
    }

    /// Delete loose copies of packed objects and leftovers; `vacuum` compacts the index.
    fn clean_storage(&self, py: Python<'_>, vacuum: bool) -> PyResult<()> {
        let opts = CleanOptions {
            vacuum,
            ..Default::default()
        };
        py.allow_threads(|| self.c.clean(&opts, &dos_core::NoProgress))
            .map(|_| ())
            .map_err(to_py)
    }

    /// Name the remote store (`s3://bucket/prefix`) this container offloads packs to.
    #[pyo3(signature = (url, endpoint = None, region = None, cache_bytes = 0))]
    fn remote_set(
        &self,
        py: Python<'_>,
        url: &str,
        endpoint: Option<String>,
        region: Option<String>,
        cache_bytes: u64,
    ) -> PyResult<()> {
        let url = dos_core::remote::RemoteUrl::parse(url).map_err(PyValueError::new_err)?;
        let settings = dos_core::remote::RemoteSettings {
            url,
            endpoint,
            region,
            cache_bytes,
        };
        py.allow_threads(|| self.c.set_remote(&settings))
            .map_err(to_py)
    }

    /// Offload sealed packs (see `dos offload`); returns the summary as JSON.
    #[pyo3(signature = (keep_local = false, include_small = false, min_age_seconds = 0, packs = None))]
    fn offload(
        &self,
        py: Python<'_>,
        keep_local: bool,
        include_small: bool,
        min_age_seconds: u64,
        packs: Option<Vec<u64>>,
    ) -> PyResult<String> {
        let opts = dos_core::remote::OffloadOptions {
            keep_local,
            include_small,
            min_age: std::time::Duration::from_secs(min_age_seconds),
            packs,
            ..Default::default()
        };
        let s = py
            .allow_threads(|| self.c.offload(&opts, &dos_core::NoProgress))
            .map_err(to_py)?;
        json(&s)
    }

    /// Bring offloaded packs back (`None`: all); returns the summary as JSON.
    #[pyo3(signature = (packs = None))]
    fn fetch_packs(&self, py: Python<'_>, packs: Option<Vec<u64>>) -> PyResult<String> {
        let opts = dos_core::remote::FetchOptions {
            packs,
            ..Default::default()
        };
        let s = py
            .allow_threads(|| self.c.fetch_packs(&opts, &dos_core::NoProgress))
            .map_err(to_py)?;
        json(&s)
    }

    /// Publish a snapshot to the remote store; returns the summary as JSON.
    fn publish(&self, py: Python<'_>) -> PyResult<String> {
        let s = py
            .allow_threads(|| self.c.publish(&dos_core::NoProgress))
            .map_err(to_py)?;
        json(&s)
    }

    /// Delete remote objects nothing refers to, older than `grace_seconds`; summary as JSON.
    fn clean_remote(&self, py: Python<'_>, grace_seconds: u64) -> PyResult<String> {
        let opts = dos_core::remote::RemoteCleanOptions {
            grace: std::time::Duration::from_secs(grace_seconds),
        };
        let s = py
            .allow_threads(|| self.c.clean_remote(&opts))
            .map_err(to_py)?;
        json(&s)
    }

    /// Where every pack is, as JSON.
    fn pack_places(&self, py: Python<'_>) -> PyResult<String> {
        let s = py.allow_threads(|| self.c.pack_places()).map_err(to_py)?;
        json(&s)
    }

    /// Delete `keys`; returns the keys that were present and are now deleted.
    fn delete_objects(&self, py: Python<'_>, keys: Vec<Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
        let parsed: Vec<ObjectKey> = self.parse_all(&keys).into_iter().flatten().collect();
        let deleted = py
            .allow_threads(|| self.c.delete_objects(&parsed))
            .map_err(to_py)?;
        Ok(deleted.iter().map(hex).collect())
    }
}

/// The rows of [`RawContainer::locate`], turned into Python objects one at a time.
#[pyclass(module = "dos_objectstore._dos")]
pub struct Located {
    keys: Vec<Py<PyAny>>,
    rows: std::vec::IntoIter<(usize, ObjectMeta)>,
}

#[pymethods]
impl Located {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> Option<(Py<PyAny>, MetaRow)> {
        let (i, m) = self.rows.next()?;
        Some((self.keys[i].clone_ref(py), meta_row(&m)))
    }

    fn __len__(&self) -> usize {
        self.rows.len()
    }
}
