//! What makes a zip an AiiDA archive: `metadata.json`, `db.sqlite3`, and the keys that the nodes
//! of the database reference.

use std::io;
use std::path::Path;

use dos_core::{HashType, ObjectKey};
use serde_json::Value;

use crate::error::{ArchiveError, ContentProblem, Result};
use crate::zip::ZipArchive;

/// Name of the metadata entry.
pub const META_NAME: &str = "metadata.json";
/// Name of the database entry.
pub const DB_NAME: &str = "db.sqlite3";
/// The archive format version aiida-core 2.x writes (and the only one it imports without
/// migrating).
pub const LATEST_VERSION: &str = "main_0001";

/// Kinds of archive format versions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FormatKind {
    /// `main_0001`: current.
    Current,
    /// `main_0000`, `main_0000a`, `main_0000b`: same layout (SQLite + `repo/<sha256>`), an older
    /// database schema that aiida migrates on import.
    OlderMain,
    /// `0.x`: the legacy JSON layout (`data.json`, `nodes/…`); no repository entries by hash.
    Legacy,
    /// No `export_version`, or an unknown value.
    Unknown,
}

/// The archive's `metadata.json`.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// The whole document.
    pub value: Value,
    /// `export_version`, if present.
    pub export_version: Option<String>,
    /// Its classification.
    pub kind: FormatKind,
}

/// Classify an `export_version`.
pub fn classify(version: Option<&str>) -> FormatKind {
    match version {
        Some(LATEST_VERSION) => FormatKind::Current,
        Some(v) if v.starts_with("main_0000") => FormatKind::OlderMain,
        Some(v) if v.starts_with("0.") => FormatKind::Legacy,
        _ => FormatKind::Unknown,
    }
}

/// Read and parse `metadata.json`.
pub fn read_metadata(z: &ZipArchive) -> Result<Metadata> {
    let e = z.find(META_NAME).ok_or_else(|| ArchiveError::Content {
        path: z.path().to_path_buf(),
        problem: ContentProblem::NoMetadata,
    })?;
    if e.usize > 64 << 20 {
        return Err(ArchiveError::Content {
            path: z.path().to_path_buf(),
            problem: ContentProblem::MetadataTooLarge(e.usize),
        });
    }
    let bytes = z.read_entry(e)?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|err| ArchiveError::Content {
        path: z.path().to_path_buf(),
        problem: ContentProblem::MetadataNotJson(err),
    })?;
    let export_version = value
        .get("export_version")
        .and_then(Value::as_str)
        .map(str::to_string);
    let kind = classify(export_version.as_deref());
    Ok(Metadata {
        value,
        export_version,
        kind,
    })
}

/// Extract `db.sqlite3` into a temporary file in `dir` (verified: size and CRC-32).
pub fn extract_db(z: &ZipArchive, dir: &Path) -> Result<tempfile::NamedTempFile> {
    let e = z.find(DB_NAME).ok_or_else(|| ArchiveError::Content {
        path: z.path().to_path_buf(),
        problem: ContentProblem::NoDatabase,
    })?;
    let mut tmp = tempfile::Builder::new()
        .prefix("dos-archive-db-")
        .tempfile_in(dir)
        .map_err(|err| ArchiveError::io(dir, "create temporary file", err))?;
    let mut r = z.entry_reader(e)?;
    io::copy(&mut r, tmp.as_file_mut()).map_err(|err| ArchiveError::Content {
        path: z.path().to_path_buf(),
        problem: ContentProblem::DatabaseRead(err),
    })?;
    Ok(tmp)
}

/// Every object key referenced by `db_dbnode.repository_metadata` of an archive database, sorted
/// and unique. Keys that are not 64 lowercase hex characters are returned in `malformed`.
pub fn referenced_keys(db: &Path) -> Result<(Vec<ObjectKey>, Vec<String>)> {
    let err = |e: rusqlite::Error| ArchiveError::Content {
        path: db.to_path_buf(),
        problem: ContentProblem::Database(e),
    };
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    let mut stmt = conn
        .prepare("SELECT repository_metadata FROM db_dbnode")
        .map_err(err)?;
    let mut rows = stmt.query([]).map_err(err)?;
    let mut keys = Vec::new();
    let mut malformed = Vec::new();
    while let Some(r) = rows.next().map_err(err)? {
        let text: Option<String> = r.get(0).map_err(err)?;
        let Some(text) = text else { continue };
        let v: Value = serde_json::from_str(&text).map_err(|e| ArchiveError::Content {
            path: db.to_path_buf(),
            problem: ContentProblem::RepositoryMetadata(e),
        })?;
        collect_keys(&v, &mut keys, &mut malformed);
    }
    keys.sort_unstable();
    keys.dedup();
    malformed.sort_unstable();
    malformed.dedup();
    Ok((keys, malformed))
}

/// Walk a serialised repository tree: `{"o": {name: child}}` for folders, `{"k": key}` for files.
fn collect_keys(v: &Value, keys: &mut Vec<ObjectKey>, malformed: &mut Vec<String>) {
    let Value::Object(map) = v else { return };
    if let Some(Value::String(k)) = map.get("k") {
        match ObjectKey::from_canonical(HashType::Sha256, k.as_bytes()) {
            Some(key) => keys.push(key),
            None => malformed.push(k.clone()),
        }
    }
    if let Some(Value::Object(children)) = map.get("o") {
        for child in children.values() {
            collect_keys(child, keys, malformed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(classify(Some("main_0001")), FormatKind::Current);
        assert_eq!(classify(Some("main_0000a")), FormatKind::OlderMain);
        assert_eq!(classify(Some("0.13")), FormatKind::Legacy);
        assert_eq!(classify(None), FormatKind::Unknown);
    }

    #[test]
    fn keys_from_repository_metadata() {
        let k1 = "a".repeat(64);
        let k2 = "b".repeat(64);
        let v: Value = serde_json::from_str(&format!(
            r#"{{"o": {{"sub": {{"o": {{"x.txt": {{"k": "{k1}"}}}}}}, "y": {{"k": "{k2}"}},
               "bad": {{"k": "../../etc/passwd"}}, "empty": {{}}}}}}"#
        ))
        .unwrap();
        let (mut keys, mut bad) = (Vec::new(), Vec::new());
        collect_keys(&v, &mut keys, &mut bad);
        keys.sort();
        let keys: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(keys, vec![k1, k2]);
        assert_eq!(bad, vec!["../../etc/passwd".to_string()]);
    }
}
