//! Cleaning the remote store: objects nothing refers to any more.
//!
//! A prefix belongs to one container: the grace period and the maintenance lock protect this
//! container's own uploads in flight, not another container's (a copy of this one) writing
//! under the same prefix.
//!
//! Kept: every pack the index records, everything the current snapshot names (its index,
//! config and the packs its index records) and `snapshot.json`. Anything else under the
//! prefix's `packs/` and `snapshots/` (interrupted uploads, packs fetched back or repacked,
//! snapshots replaced since) is deleted once older than a grace period, which leaves time to
//! readers that opened an older snapshot and to offloads of other processes between their
//! upload and their commit. Unfinished multipart uploads recorded by crashed offloads are
//! aborted first.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::publish::{current_snapshot, remote_names_in};
use super::{PACKS_PREFIX, SNAPSHOTS_PREFIX, random_hex};
use crate::container::Container;
use crate::error::{IoContext, Result};
use crate::maintain::LockMode;

/// Options of [`Container::clean_remote`].
#[derive(Debug, Clone)]
pub struct RemoteCleanOptions {
    /// Objects nothing refers to are deleted only once at least this old.
    pub grace: Duration,
}

impl Default for RemoteCleanOptions {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(3600),
        }
    }
}

/// What [`Container::clean_remote`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RemoteCleanSummary {
    /// The store.
    pub url: String,
    /// Objects deleted.
    pub objects_deleted: u64,
    /// Their bytes.
    pub bytes_deleted: u64,
    /// Unreferenced objects kept because they are younger than the grace period.
    pub objects_too_young: u64,
    /// Crashed uploads aborted or removed.
    pub uploads_recovered: u64,
}

impl Container {
    /// Delete remote objects that neither the index nor the current snapshot refers to (and
    /// that are older than `opts.grace`), and abort uploads crashed offloads left.
    pub fn clean_remote(&self, opts: &RemoteCleanOptions) -> Result<RemoteCleanSummary> {
        self.writable("clean")?;
        // Exclusive: an offload of this container between its upload and its commit holds the
        // lock (shared), so its object is never taken for unreferenced here.
        let _lock = self.lock_maintenance(LockMode::Exclusive, "clean")?;
        let store = self.remote_store()?;
        let mut s = RemoteCleanSummary {
            url: store.url().to_string(),
            uploads_recovered: self.recover_uploads(store.as_ref())?,
            ..RemoteCleanSummary::default()
        };
        // Listed before the references are read: an object uploaded and committed after the
        // listing is not in it, and one committed before is referenced.
        let mut listed = store.list(PACKS_PREFIX)?;
        listed.extend(store.list(SNAPSHOTS_PREFIX)?);
        let mut keep: HashSet<String> = self
            .index()
            .remote_packs()?
            .into_iter()
            .map(|r| r.name)
            .collect();
        let mut current_folder = None;
        if let Some(p) = current_snapshot(store.as_ref())? {
            let tmp = self.layout.sandbox.join(format!(
                "dos-clean-{}.idx",
                random_hex(8).ctx(&self.layout.sandbox, "random name")?
            ));
            let names = (|| {
                let mut f = std::fs::File::create(&tmp).ctx(&tmp, "create")?;
                store.download(&p.index.name, &mut f, &mut |_| {})?;
                drop(f);
                remote_names_in(&tmp)
            })();
            let _ = std::fs::remove_file(&tmp);
            keep.extend(names?);
            current_folder = Some(format!("{}/", p.snapshot));
        }
        let now = SystemTime::now();
        for o in listed {
            let referenced = keep.contains(&o.name)
                || current_folder
                    .as_ref()
                    .is_some_and(|f| o.name.starts_with(f.as_str()));
            if referenced {
                continue;
            }
            let age = now.duration_since(o.modified).unwrap_or_default();
            if age < opts.grace {
                s.objects_too_young += 1;
                continue;
            }
            self.io
                .faults
                .point("clean.remote")
                .ctx(&self.layout.root, "delete remote object")?;
            store.delete(&o.name)?;
            s.objects_deleted += 1;
            s.bytes_deleted += o.size;
        }
        Ok(s)
    }
}
