//! Copy objects from another container straight into this one's packs (Python's
//! `import_objects`), reading the source in its pack/offset order.

use std::cell::RefCell;
use std::collections::VecDeque;

use serde::Serialize;

use super::lock::LockMode;
use crate::container::Container;
use crate::error::{Error, Result};
use crate::key::ObjectKey;
use crate::progress::Progress;
use crate::read::ObjectContent;
use crate::write::{ObjectSource, PackItem, PackWriteOptions, StoreOutcome};

/// What [`Container::import_objects`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportObjectsSummary {
    /// Objects asked for.
    pub requested: u64,
    /// Of those, already in this container (same hash type only: skipped without reading).
    pub already_present: u64,
    /// Objects written to packs.
    pub written: u64,
    /// Objects read from the source whose content did not match their key there.
    pub corrupt_in_source: Vec<ObjectKey>,
    /// Keys asked for that the source does not have.
    pub missing_in_source: Vec<ObjectKey>,
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
        keys: Option<Vec<ObjectKey>>,
        opts: &PackWriteOptions,
        progress: &dyn Progress,
        mut on_key: impl FnMut(ObjectKey, ObjectKey),
    ) -> Result<ImportObjectsSummary> {
        let _lock = self.lock_maintenance(LockMode::Shared, "import-objects")?;
        let same_hash = source.hash_type() == self.hash_type();
        let mut keys = match keys {
            Some(k) => k,
            None => source.list_all_objects()?,
        };
        keys.sort();
        keys.dedup();
        let mut s = ImportObjectsSummary {
            requested: keys.len() as u64,
            ..ImportObjectsSummary::default()
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
        let large = opts.tuning.large_object;
        let (tx, rx) = crossbeam_channel::bounded::<(ObjectKey, PackItem)>(64);
        // Source keys of the items pushed and not yet reported: outcomes arrive in item order.
        let pending: RefCell<VecDeque<ObjectKey>> = RefCell::new(VecDeque::new());
        let result = std::thread::scope(|scope| {
            let reader = scope.spawn(move || -> Result<Vec<ObjectKey>> {
                source.read_objects(&keys, |key, content, _| {
                    let source_item = match content {
                        ObjectContent::Bytes(b) if (b.len() as u64) <= large => {
                            ObjectSource::Bytes(b.to_vec())
                        }
                        _ => ObjectSource::Reader {
                            name: format!("object {key} of {}", source.path().display()),
                            reader: Box::new(source.open_object(&key)?.0),
                        },
                    };
                    let item = PackItem {
                        source: source_item,
                        expect: same_hash.then_some(key),
                    };
                    tx.send((key, item)).map_err(|_| Error::Interrupted)?;
                    Ok(())
                })
            });
            let on_outcome = |_, o: StoreOutcome| {
                let Some(old) = pending.borrow_mut().pop_front() else {
                    return;
                };
                match o {
                    StoreOutcome::Written { key, location, .. } => {
                        s.written += 1;
                        s.bytes_written += location.length;
                        on_key(old, key);
                    }
                    StoreOutcome::AlreadyPacked { key } => on_key(old, key),
                    StoreOutcome::Mismatch { .. } | StoreOutcome::Rejected { .. } => {
                        s.corrupt_in_source.push(old)
                    }
                    StoreOutcome::Vanished { .. } => {}
                }
            };
            let written = (|| {
                let mut w = self.pack_writer(opts, progress, on_outcome)?;
                for (key, item) in &rx {
                    pending.borrow_mut().push_back(key);
                    w.push(item)?;
                }
                w.finish()
            })();
            // Unblock the reader if the writer stopped early.
            drop(rx);
            let missing = reader
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            written?;
            missing
        });
        s.missing_in_source = result?;
        Ok(s)
    }
}
