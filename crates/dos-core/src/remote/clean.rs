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
    /// Names of the packs a snapshot's index (downloaded and checked) refers to.
    fn snapshot_pack_names(
        &self,
        store: &dyn crate::remote::RemoteStore,
        index: &crate::remote::SnapshotFile,
    ) -> Result<Vec<String>> {
        let tmp = self.layout.sandbox.join(format!(
            "dos-clean-{}.idx",
            random_hex(8).ctx(&self.layout.sandbox, "random name")?
        ));
        let names = super::publish::download_checked(store, index, &tmp)
            .and_then(|()| remote_names_in(&tmp));
        let _ = std::fs::remove_file(&tmp);
        names
    }

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
        let now = SystemTime::now();
        let secs_now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let grace = i64::try_from(opts.grace.as_secs()).unwrap_or(i64::MAX);
        // Folders of snapshots readers may still use: the current one, and the one it replaced
        // while the grace period since its replacement lasts (with the packs they name).
        let mut folders: Vec<String> = Vec::new();
        if let Some(p) = current_snapshot(store.as_ref())? {
            keep.extend(self.snapshot_pack_names(store.as_ref(), &p.index)?);
            folders.push(format!("{}/", p.snapshot));
            if let Some(prev) = &p.previous
                && secs_now.saturating_sub(prev.replaced_at) < grace
            {
                keep.extend(self.snapshot_pack_names(store.as_ref(), &prev.index)?);
                folders.push(format!("{}/", prev.snapshot));
            }
        }
        // When objects stopped being used (fetched back, repacked, uploaded again): the grace
        // period counts from then, not from their upload.
        let retired: std::collections::HashMap<String, i64> =
            self.index().retired_remote_objects()?.into_iter().collect();
        let mut forgotten = Vec::new();
        for o in listed {
            let referenced =
                keep.contains(&o.name) || folders.iter().any(|f| o.name.starts_with(f.as_str()));
            if referenced {
                continue;
            }
            let uploaded_age = now.duration_since(o.modified).unwrap_or_default();
            let retired_age = retired.get(&o.name).map(|t| {
                std::time::Duration::from_secs(
                    u64::try_from(secs_now.saturating_sub(*t)).unwrap_or(0),
                )
            });
            let age = retired_age.map_or(uploaded_age, |r| r.min(uploaded_age));
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
            if retired.contains_key(&o.name) {
                forgotten.push(o.name);
            }
        }
        self.index().forget_retired(&forgotten)?;
        Ok(s)
    }
}
