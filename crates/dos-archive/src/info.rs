//! Describe an archive: format version, entry counts, sizes, methods, anything suspicious, and
//! (given a container) how many of its objects are new.

use std::path::{Path, PathBuf};

use dos_core::{Container, ObjectKey};
use serde::Serialize;

use crate::aiida::{self, DB_NAME, FormatKind, META_NAME};
use crate::error::Result;
use crate::zip::{EntryName, Limits, METHOD_DEFLATE, METHOD_STORED, ZipArchive};

/// What [`archive_info`] reports.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveInfo {
    /// The archive.
    pub path: PathBuf,
    /// Size of the archive file.
    pub size: u64,
    /// `export_version` from `metadata.json`.
    pub format_version: Option<String>,
    /// Its classification.
    pub format_kind: FormatKind,
    /// `aiida_version` from `metadata.json`.
    pub aiida_version: Option<String>,
    /// Zip entries.
    pub entries: u64,
    /// `repo/<sha256>` entries.
    pub repo_entries: u64,
    /// Uncompressed bytes of the repository entries.
    pub repo_bytes: u64,
    /// Directory entries.
    pub directories: u64,
    /// Other entries (not metadata, database, repository or directory), the first 20 names.
    pub other_entries: Vec<String>,
    /// How many other entries there are.
    pub other_count: u64,
    /// Entries stored without compression.
    pub stored_entries: u64,
    /// Deflated entries.
    pub deflated_entries: u64,
    /// Sum of compressed sizes.
    pub compressed_bytes: u64,
    /// Sum of uncompressed sizes.
    pub uncompressed_bytes: u64,
    /// The archive uses zip64 end records.
    pub zip64: bool,
    /// Entries whose local header carries a zip64 extra (aiida-core 2.0–2.4 exports do).
    pub zip64_local_extras: u64,
    /// Entries with a data descriptor.
    pub data_descriptors: u64,
    /// `metadata.json` is present.
    pub has_metadata: bool,
    /// `db.sqlite3` is present.
    pub has_database: bool,
    /// Anything a careful user should know (hostile names, unsupported entries, an order
    /// aiida-core rejects, a legacy format).
    pub suspicious: Vec<String>,
    /// With a container: repository objects not in it yet.
    pub new_objects: Option<u64>,
    /// With a container: their uncompressed bytes.
    pub new_bytes: Option<u64>,
}

/// Describe the archive at `path` (and compare it with `container`, if given).
pub fn archive_info(
    path: &Path,
    limits: &Limits,
    container: Option<&Container>,
) -> Result<ArchiveInfo> {
    let z = ZipArchive::open(path, limits)?;
    let mut i = ArchiveInfo {
        path: path.to_path_buf(),
        size: z.len,
        format_version: None,
        format_kind: FormatKind::Unknown,
        aiida_version: None,
        entries: z.entries.len() as u64,
        repo_entries: 0,
        repo_bytes: 0,
        directories: 0,
        other_entries: Vec::new(),
        other_count: 0,
        stored_entries: 0,
        deflated_entries: 0,
        compressed_bytes: 0,
        uncompressed_bytes: 0,
        zip64: z.zip64,
        zip64_local_extras: 0,
        data_descriptors: 0,
        has_metadata: false,
        has_database: false,
        suspicious: Vec::new(),
        new_objects: None,
        new_bytes: None,
    };
    let mut repo_keys: Vec<(ObjectKey, u64)> = Vec::new();
    for (pos, e) in z.entries.iter().enumerate() {
        i.compressed_bytes += e.csize;
        i.uncompressed_bytes += e.usize;
        i.zip64_local_extras += u64::from(e.zip64_local);
        i.data_descriptors += u64::from(e.has_descriptor());
        match e.method {
            METHOD_STORED => i.stored_entries += 1,
            METHOD_DEFLATE => i.deflated_entries += 1,
            _ => {}
        }
        if let Some(why) = e.unsupported() {
            i.suspicious
                .push(format!("entry {} {why}", e.name.as_str()));
        }
        match &e.name {
            EntryName::Repo(_) => {
                i.repo_entries += 1;
                i.repo_bytes += e.usize;
                if let Some(k) = e.name.repo_key() {
                    repo_keys.push((k, e.usize));
                }
            }
            EntryName::Other(n) => {
                let n: &str = n;
                if n == META_NAME {
                    i.has_metadata = true;
                    if pos >= 10 {
                        i.suspicious.push(format!(
                            "{META_NAME} is central-directory record {}: aiida-core only looks \
                             at the first 10",
                            pos + 1
                        ));
                    }
                } else if n == DB_NAME {
                    i.has_database = true;
                    if pos >= 4 {
                        i.suspicious.push(format!(
                            "{DB_NAME} is central-directory record {}: aiida-core only looks at \
                             the first 4 and will refuse the archive",
                            pos + 1
                        ));
                    }
                } else if n.ends_with('/') {
                    i.directories += 1;
                } else {
                    i.other_count += 1;
                    if i.other_entries.len() < 20 {
                        i.other_entries.push(n.to_string());
                    }
                }
                if n.starts_with('/') || n.contains("..") || n.contains('\\') || n.contains(':') {
                    i.suspicious.push(format!(
                        "entry name {n:?} would escape a folder if extracted"
                    ));
                } else if n.starts_with("repo/") && !n.ends_with('/') {
                    i.suspicious.push(format!(
                        "entry {n:?} is under repo/ but is not named by a lowercase sha256"
                    ));
                }
            }
        }
    }
    if i.has_metadata {
        match aiida::read_metadata(&z) {
            Ok(m) => {
                i.aiida_version = m
                    .value
                    .get("aiida_version")
                    .and_then(|v| v.as_str())
                    .map(str::to_string);
                i.format_version = m.export_version;
                i.format_kind = m.kind;
                match i.format_kind {
                    FormatKind::Legacy => i.suspicious.push(
                        "legacy archive format (0.x): repository files are not stored by hash; \
                         migrate it with `verdi archive migrate`"
                            .into(),
                    ),
                    FormatKind::OlderMain => i.suspicious.push(
                        "older archive format: aiida-core migrates its database on import".into(),
                    ),
                    FormatKind::Unknown => i
                        .suspicious
                        .push("metadata.json has no known export_version".into()),
                    FormatKind::Current => {}
                }
            }
            Err(e) => i.suspicious.push(e.to_string()),
        }
    } else {
        i.suspicious
            .push(format!("no {META_NAME}: not an AiiDA archive"));
    }
    if let Some(c) = container {
        repo_keys.sort_unstable();
        let keys: Vec<ObjectKey> = repo_keys.iter().map(|(k, _)| *k).collect();
        let have = c.has_objects(&keys)?;
        let (mut n, mut b) = (0, 0);
        for ((_, size), h) in repo_keys.iter().zip(have) {
            if !h {
                n += 1;
                b += size;
            }
        }
        i.new_objects = Some(n);
        i.new_bytes = Some(b);
    }
    Ok(i)
}
