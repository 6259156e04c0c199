//! Paths of the files and folders of a container.

use std::path::{Path, PathBuf};

/// Name of the configuration file.
pub const CONFIG_FILE: &str = "config.json";
/// Name of the SQLite index of packed objects.
pub const INDEX_FILE: &str = "packs.idx";
/// Folder of loose objects.
pub const LOOSE_DIR: &str = "loose";
/// Folder of pack files.
pub const PACKS_DIR: &str = "packs";
/// Folder of temporary files of loose writes.
pub const SANDBOX_DIR: &str = "sandbox";
/// Folder of duplicate copies (a Windows race fallback of Python).
pub const DUPLICATES_DIR: &str = "duplicates";

/// The four folders Python requires for a container to count as initialised.
pub const REQUIRED_DIRS: [&str; 4] = [PACKS_DIR, LOOSE_DIR, DUPLICATES_DIR, SANDBOX_DIR];

/// Resolved paths of one container.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The container folder.
    pub root: PathBuf,
    /// `config.json`.
    pub config: PathBuf,
    /// `packs.idx`.
    pub index: PathBuf,
    /// `loose/`.
    pub loose: PathBuf,
    /// `packs/`.
    pub packs: PathBuf,
    /// `sandbox/`.
    pub sandbox: PathBuf,
    /// `duplicates/`.
    pub duplicates: PathBuf,
}

impl Layout {
    /// Paths under `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            config: root.join(CONFIG_FILE),
            index: root.join(INDEX_FILE),
            loose: root.join(LOOSE_DIR),
            packs: root.join(PACKS_DIR),
            sandbox: root.join(SANDBOX_DIR),
            duplicates: root.join(DUPLICATES_DIR),
        }
    }

    /// Path of pack `id`.
    pub fn pack(&self, id: u64) -> PathBuf {
        self.packs.join(id.to_string())
    }

    /// Path of the append lock of pack `id`.
    pub fn pack_lock(&self, id: u64) -> PathBuf {
        self.packs.join(format!("{id}.lock"))
    }
}
