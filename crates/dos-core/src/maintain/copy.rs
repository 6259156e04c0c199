//! Copy objects from another container straight into this one's packs (Python's
//! `import_objects`), reading the source in its pack/offset order.

use serde::Serialize;

use crate::container::Container;
use crate::error::{Error, Result};
use crate::lock::LockMode;
use crate::progress::Progress;
use crate::read::ObjectContent;
use crate::write::{ObjectSource, PackItem, PackWriteOptions, StoreOutcome};

/// What [`Container::import_objects`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportSummary {
    /// Objects asked for.
    pub requested: u64,
    /// Of those, already in this container (same hash type only: skipped without reading).
    pub already_present: u64,
    /// Objects written to packs.
    pub written: u64,
    /// Objects read from the source whose content did not match their key there.
    pub corrupt_in_source: Vec<String>,
    /// Keys asked for that the source does not have.
    pub missing_in_source: Vec<String>,
    /// Bytes appended to packs.
    pub bytes_written: u64,
}

impl Container {
    /// Copy objects of `source` (all of them when `keys` is `None`) into this container's packs.
    /// With the same hash type, keys already present are skipped without reading them and every
    /// copied object is verified against its key. `on_key(source_key, new_key)` is called for
    /// every object stored (the keys differ when the hash types differ).
    pub fn import_objects(
        &self,
        source: &Container,
        keys: Option<Vec<String>>,
        opts: &PackWriteOptions,
        progress: &dyn Progress,
        mut on_key: impl FnMut(&str, &str),
    ) -> Result<ImportSummary> {
        let _lock = self.lock_maintenance(LockMode::Shared, "import-objects")?;
        let same_hash = source.hash_type() == self.hash_type();
        let mut keys = match keys {
            Some(k) => k
                .iter()
                .map(|k| source.parse_key(k))
                .collect::<Result<Vec<_>>>()?,
            None => source.list_all_objects()?,
        };
        keys.sort();
        keys.dedup();
        let mut s = ImportSummary {
            requested: keys.len() as u64,
            ..ImportSummary::default()
        };
        if same_hash {
            let have = self.has_objects(&keys)?;
            let before = keys.len();
            keys = keys
                .into_iter()
                .zip(have)
                .filter_map(|(k, h)| (!h).then_some(k))
                .collect();
            s.already_present = (before - keys.len()) as u64;
        }
        let large = opts.large_object;
        let (tx, rx) = crossbeam_channel::bounded::<(String, PackItem)>(64);
        // Source keys in item order: outcomes arrive in the same order, one per item.
        let (key_tx, key_rx) = crossbeam_channel::unbounded::<String>();
        let result = std::thread::scope(|scope| {
            let reader = scope.spawn(move || -> Result<Vec<String>> {
                source.read_objects(&keys, |key, content, meta| {
                    let source_item = match content {
                        ObjectContent::Bytes(b) if (b.len() as u64) <= large => {
                            ObjectSource::Bytes(b.to_vec())
                        }
                        _ => ObjectSource::Reader {
                            name: format!("object {key} of {}", source.path().display()),
                            reader: Box::new(source.open_object(key)?.0),
                        },
                    };
                    let _ = meta;
                    let item = PackItem {
                        source: source_item,
                        expect: same_hash.then(|| key.to_string()),
                    };
                    tx.send((key.to_string(), item))
                        .map_err(|_| Error::Interrupted)?;
                    Ok(())
                })
            });
            let items = rx.iter().map(move |(k, item)| {
                let _ = key_tx.send(k);
                item
            });
            let written = self.add_to_pack(items, opts, progress, |_, o| {
                let old = key_rx.recv().unwrap_or_default();
                match o {
                    StoreOutcome::Written { key, location } => {
                        s.written += 1;
                        s.bytes_written += location.length;
                        on_key(&old, key);
                    }
                    StoreOutcome::AlreadyPacked { key } => on_key(&old, key),
                    StoreOutcome::Mismatch { .. } | StoreOutcome::Rejected { .. } => {
                        s.corrupt_in_source.push(old)
                    }
                    StoreOutcome::Vanished { .. } => {}
                }
            });
            let missing = reader
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            let _ = written?;
            missing
        });
        s.missing_in_source = result?;
        Ok(s)
    }
}
