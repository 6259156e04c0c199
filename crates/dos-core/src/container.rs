//! The container: lifecycle (init, open) and the shared state of all operations.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::codec::Compression;
use crate::config::{self, Config, DEFAULT_LOOSE_PREFIX_LEN, DEFAULT_PACK_SIZE_TARGET};
use crate::durable;
use crate::error::{Error, IoContext, Missing, Result};
use crate::fault::FaultPlan;
use crate::hashing::HashType;
use crate::index::Index;
use crate::key::{InvalidKey, ObjectKey};
use crate::layout::{Layout, REQUIRED_DIRS};
use crate::remote::{RemoteOpener, RemoteSettings, RemoteStore};

/// Parameters of a new container (Python's `init_container` arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOptions {
    /// Packs are closed for appends once they reach this size (bytes, > 0).
    pub pack_size_target: u64,
    /// Hex characters of the loose shard folder (0 = no sharding).
    pub loose_prefix_len: usize,
    /// Hash type of keys.
    pub hash_type: HashType,
    /// Compression of packed objects written compressed.
    pub compression: Compression,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            pack_size_target: DEFAULT_PACK_SIZE_TARGET,
            loose_prefix_len: DEFAULT_LOOSE_PREFIX_LEN,
            hash_type: HashType::Sha256,
            compression: Compression::default(),
        }
    }
}

/// How a container does its I/O: choices of the program that opens it (the library reads no
/// environment). The defaults are what a user wants; crash tests and benchmarks change them.
#[derive(Debug, Clone)]
pub struct IoOptions {
    /// Write full pack buffers with O_DIRECT where the platform and filesystem allow it (see
    /// `docs/durability.md`); off, every pack byte goes through the page cache.
    pub direct_io: bool,
    /// Hand pack bytes written through the page cache to the disk in 16 MiB stretches as they
    /// are written, so that the fsync ending a batch has little left to do.
    pub early_writeback: bool,
    /// Where to stop the process, for crash tests (empty by default).
    pub faults: FaultPlan,
    /// How to reach the remote store a container names in `dos-remote.json` (`None`: this
    /// program cannot; reading an offloaded pack then fails with [`Error::NoRemoteAccess`]).
    pub remote: Option<Arc<dyn RemoteOpener>>,
}

impl Default for IoOptions {
    fn default() -> Self {
        Self {
            direct_io: true,
            early_writeback: true,
            faults: FaultPlan::default(),
            remote: None,
        }
    }
}

/// An open container.
///
/// All methods take `&self`; the container can be shared between threads. Many processes may
/// read and add loose objects at once; appends to a pack are serialised by pack lock files.
pub struct Container {
    pub(crate) layout: Layout,
    pub(crate) config: Config,
    pub(crate) io: IoOptions,
    /// The index connection, shared with the committer threads of pack writers.
    index: Arc<Mutex<Index>>,
    /// The remote store, opened on first use.
    remote: OnceLock<Arc<dyn RemoteStore>>,
    /// Set for a published snapshot opened from its bucket: nothing may change.
    pub(crate) read_only: Option<String>,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("path", &self.layout.root)
            .field("config", &self.config)
            .finish()
    }
}

impl Container {
    /// Create a new container in `path` (created if missing; must be empty if it exists).
    ///
    /// Writes exactly what Python writes: `config.json`, `packs.idx` and the four folders.
    /// `config.json` is written last and atomically, so a crash leaves either no container or a
    /// complete one.
    pub fn init(path: &Path, opts: &InitOptions) -> Result<Container> {
        Self::init_with(path, opts, IoOptions::default())
    }

    /// [`Container::init`], doing I/O as `io` asks.
    pub fn init_with(path: &Path, opts: &InitOptions, io: IoOptions) -> Result<Container> {
        if opts.pack_size_target == 0 {
            return Err(Error::InvalidArgument(
                "pack_size_target must be > 0".into(),
            ));
        }
        if opts.loose_prefix_len >= opts.hash_type.hex_len() {
            return Err(Error::InvalidArgument(format!(
                "loose_prefix_len must be smaller than the key length ({})",
                opts.hash_type.hex_len()
            )));
        }
        match fs::read_dir(path) {
            Ok(mut rd) => {
                if rd.next().is_some() {
                    if Layout::new(path).config.exists() {
                        return Err(Error::AlreadyInitialised {
                            path: path.to_path_buf(),
                        });
                    }
                    return Err(Error::FolderNotEmpty {
                        path: path.to_path_buf(),
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(path).ctx(path, "create container folder")?;
            }
            Err(e) => return Err(Error::io(path, "read folder", e)),
        }
        let layout = Layout::new(path);
        for d in REQUIRED_DIRS {
            let p = path.join(d);
            fs::create_dir(&p).ctx(&p, "create folder")?;
        }
        let index = Index::create(&layout.index, opts.hash_type, io.faults.clone())?;
        let config = Config {
            container_version: 1,
            loose_prefix_len: opts.loose_prefix_len,
            pack_size_target: opts.pack_size_target,
            hash_type: opts.hash_type,
            container_id: config::new_container_id().ctx(path, "random container id")?,
            compression: opts.compression,
        };
        write_file_atomically(&layout, &layout.config, config.to_python_json().as_bytes())?;
        durable::sync_dir(path)?;
        Ok(Container {
            layout,
            config,
            io,
            index: Arc::new(Mutex::new(index)),
            remote: OnceLock::new(),
            read_only: None,
        })
    }

    /// Open an existing container, checking its configuration, folders and index.
    pub fn open(path: &Path) -> Result<Container> {
        Self::open_with(path, IoOptions::default())
    }

    /// [`Container::open`], doing I/O as `io` asks.
    pub fn open_with(path: &Path, io: IoOptions) -> Result<Container> {
        let layout = Layout::new(path);
        let bytes = match fs::read(&layout.config) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotInitialised {
                    path: path.to_path_buf(),
                    missing: if path.is_dir() {
                        Missing::Config
                    } else {
                        Missing::Folder
                    },
                });
            }
            Err(e) => return Err(Error::io(&layout.config, "read", e)),
        };
        let config = Config::parse(&bytes).map_err(|source| Error::Config {
            path: layout.config.clone(),
            source,
        })?;
        for d in REQUIRED_DIRS {
            if !path.join(d).is_dir() {
                return Err(Error::NotInitialised {
                    path: path.to_path_buf(),
                    missing: Missing::SubFolder(d),
                });
            }
        }
        let index = Index::open(&layout.index, config.hash_type, io.faults.clone())?;
        Ok(Container {
            layout,
            config,
            io,
            index: Arc::new(Mutex::new(index)),
            remote: OnceLock::new(),
            read_only: None,
        })
    }

    /// The container folder.
    pub fn path(&self) -> &Path {
        &self.layout.root
    }

    /// The parsed `config.json`.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The resolved paths of the container.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Hash type of keys.
    pub fn hash_type(&self) -> HashType {
        self.config.hash_type
    }

    /// Parse a user-given key (hex of this container's hash type, either case).
    pub fn parse_key(&self, key: &str) -> Result<ObjectKey, InvalidKey> {
        ObjectKey::parse(self.config.hash_type, key)
    }

    /// Path of the loose file of `key` (which may or may not exist).
    pub fn loose_path(&self, key: &ObjectKey) -> PathBuf {
        crate::loose::loose_path(&self.layout, self.config.loose_prefix_len, key)
    }

    /// Exclusive access to the index connection.
    pub(crate) fn index(&self) -> MutexGuard<'_, Index> {
        // A panic while holding the lock cannot leave the connection inconsistent (SQLite rolls
        // back unfinished transactions), so a poisoned lock is still usable.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The index connection, for a thread of its own.
    pub(crate) fn index_handle(&self) -> Arc<Mutex<Index>> {
        self.index.clone()
    }

    /// The settings of this container's remote store, if it names one.
    pub fn remote_settings(&self) -> Result<Option<RemoteSettings>> {
        RemoteSettings::load(&self.layout)
    }

    /// The remote store this container names, opened on first use (with the opener of its
    /// [`IoOptions`]).
    pub fn remote_store(&self) -> Result<Arc<dyn RemoteStore>> {
        if let Some(s) = self.remote.get() {
            return Ok(s.clone());
        }
        let settings = self.remote_settings()?.ok_or_else(|| Error::NoRemote {
            path: self.layout.root.join(crate::remote::REMOTE_SETTINGS_FILE),
        })?;
        let opener = self
            .io
            .remote
            .as_ref()
            .ok_or_else(|| Error::NoRemoteAccess {
                url: settings.url.to_string(),
            })?;
        let store = opener.open(&settings)?;
        Ok(self.remote.get_or_init(|| store).clone())
    }

    /// Use `store` as this container's remote store from now on (a published snapshot's, or
    /// one a program opened itself).
    pub fn set_remote_store(&self, store: Arc<dyn RemoteStore>) {
        let _ = self.remote.set(store);
    }

    /// Fail with [`Error::ReadOnly`] if this container may not change.
    pub(crate) fn writable(&self, op: &'static str) -> Result<()> {
        match &self.read_only {
            Some(what) => Err(Error::ReadOnly {
                what: what.clone(),
                op,
            }),
            None => Ok(()),
        }
    }

    /// Whether this container is a read-only published snapshot.
    pub fn is_read_only(&self) -> bool {
        self.read_only.is_some()
    }

    pub(crate) fn not_found(&self, key: &ObjectKey) -> Error {
        Error::NotFound {
            key: *key,
            container: self.layout.root.clone(),
        }
    }
}

/// Write a small file atomically and durably: temp file in `sandbox/`, fsync, rename.
pub(crate) fn write_file_atomically(layout: &Layout, dest: &Path, data: &[u8]) -> Result<()> {
    let tmp = layout.sandbox.join(format!(
        "{}.tmp",
        config::new_container_id().ctx(dest, "random name")?
    ));
    let result = (|| {
        let mut f = fs::File::create(&tmp).ctx(&tmp, "create")?;
        f.write_all(data).ctx(&tmp, "write")?;
        f.sync_all().ctx(&tmp, "fsync")?;
        fs::rename(&tmp, dest).ctx(dest, "rename into place")
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
