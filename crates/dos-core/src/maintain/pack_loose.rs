//! `pack_all_loose`: move loose objects into packs.

use std::fs;
use std::io;

use rayon::prelude::*;
use serde::Serialize;

use super::lock::LockMode;
use crate::codec::CompressMode;
use crate::container::Container;
use crate::error::{Error, Result};
use crate::key::ObjectKey;
use crate::progress::{Interrupt, Progress};
use crate::write::{ObjectSource, PackItem, PackWriteOptions, StoreOutcome, WriteTuning};

/// Options of [`Container::pack_all_loose`].
#[derive(Debug, Clone)]
pub struct PackLooseOptions {
    /// Compression of the packed copies.
    pub compress: CompressMode,
    /// Delete each loose object as soon as the index commit of its batch is durable (and, with
    /// `clean_already_packed`, the loose copies of objects that were already packed), so peak
    /// disk use stays near the starting size. Without it, loose copies stay until `clean`.
    pub clean_loose: bool,
    /// With `clean_loose`, also delete loose copies of objects packed before this call (on by
    /// default; Python's `clean_loose_per_pack` deletes only what the call packed).
    pub clean_already_packed: bool,
    /// Pipeline tuning (batch sizes, memory budget, lock timeout).
    pub tuning: WriteTuning,
    /// Cooperative cancellation, checked between objects.
    pub interrupt: Interrupt,
}

impl Default for PackLooseOptions {
    fn default() -> Self {
        Self {
            compress: CompressMode::No,
            clean_loose: false,
            clean_already_packed: true,
            tuning: WriteTuning::default(),
            interrupt: Interrupt::default(),
        }
    }
}

/// What [`Container::pack_all_loose`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PackLooseSummary {
    /// Loose objects found.
    pub loose: u64,
    /// Of those, already packed before (nothing to write).
    pub already_packed: u64,
    /// Objects written to packs.
    pub packed: u64,
    /// Bytes of content packed.
    pub bytes_in: u64,
    /// Bytes appended to packs.
    pub bytes_written: u64,
    /// Loose files deleted (with `clean_loose`).
    pub loose_deleted: u64,
    /// Loose files removed by someone else while we were packing.
    pub vanished: u64,
    /// Loose files whose content does not match their name: not packed, not deleted.
    pub corrupt: Vec<CorruptLoose>,
}

/// A loose file whose content does not hash to its name.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CorruptLoose {
    /// The file's name (the key it claims).
    pub key: ObjectKey,
    /// The key of its actual content.
    pub actual: ObjectKey,
}

impl Container {
    /// Pack every loose object that is not packed yet. Loose files are read, hashed (and
    /// compressed) in parallel and appended by one ordered writer; a loose file whose content does
    /// not match its name is reported and not packed.
    pub fn pack_all_loose(
        &self,
        opts: &PackLooseOptions,
        progress: &dyn Progress,
    ) -> Result<PackLooseSummary> {
        let _lock = self.lock_maintenance(LockMode::Exclusive, "pack")?;
        self.recover()?;
        self.pack_all_loose_locked(opts, progress)
    }

    pub(crate) fn pack_all_loose_locked(
        &self,
        opts: &PackLooseOptions,
        progress: &dyn Progress,
    ) -> Result<PackLooseSummary> {
        let loose = self.list_loose()?;
        let packed = self.index().contains_sorted(&loose)?;
        let mut summary = PackLooseSummary {
            loose: loose.len() as u64,
            ..PackLooseSummary::default()
        };
        let mut done: Vec<&ObjectKey> = Vec::new();
        let mut todo: Vec<&ObjectKey> = Vec::new();
        for (k, p) in loose.iter().zip(packed) {
            if p { done.push(k) } else { todo.push(k) }
        }
        summary.already_packed = done.len() as u64;
        if opts.clean_loose && opts.clean_already_packed {
            // Their index rows were committed long ago.
            summary.loose_deleted += done
                .par_iter()
                .map(|k| self.remove_loose(k))
                .collect::<Result<Vec<bool>>>()?
                .into_iter()
                .filter(|d| *d)
                .count() as u64;
        }
        let total: u64 = todo
            .par_iter()
            .map(|k| fs::metadata(self.loose_path(k)).map_or(0, |m| m.len()))
            .sum();
        let write = PackWriteOptions {
            compress: opts.compress,
            skip_existing: true,
            total_hint: total,
            absent_as_of: None,
            interrupt: opts.interrupt.clone(),
            tuning: opts.tuning.clone(),
        };
        let mut failure: Option<Error> = None;
        let mut corrupt = Vec::new();
        let mut loose_deleted = 0;
        let mut w = self.pack_writer(&write, progress, |_, outcome| match outcome {
            StoreOutcome::Written { key, .. } | StoreOutcome::AlreadyPacked { key } => {
                if opts.clean_loose && failure.is_none() {
                    match self.remove_loose(&key) {
                        Ok(true) => loose_deleted += 1,
                        Ok(false) => {}
                        Err(e) => failure = Some(e),
                    }
                }
            }
            StoreOutcome::Mismatch { expected, actual } => corrupt.push(CorruptLoose {
                key: expected,
                actual,
            }),
            StoreOutcome::Vanished { .. } | StoreOutcome::Rejected { .. } => {}
        })?;
        for k in todo {
            w.push(PackItem {
                source: ObjectSource::File(self.loose_path(k)),
                expect: Some(*k),
            })?;
        }
        let s = w.finish()?;
        if let Some(e) = failure {
            return Err(e);
        }
        summary.loose_deleted += loose_deleted;
        summary.corrupt = corrupt;
        summary.packed = s.written;
        summary.already_packed += s.skipped;
        summary.vanished = s.vanished;
        summary.bytes_in = s.bytes_in;
        summary.bytes_written = s.bytes_written;
        Ok(summary)
    }

    /// Delete a loose file; `Ok(false)` if it was already gone.
    pub(crate) fn remove_loose(&self, key: &ObjectKey) -> Result<bool> {
        let p = self.loose_path(key);
        match self
            .io
            .faults
            .point("loose.delete")
            .and_then(|()| fs::remove_file(&p))
        {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(&p, "remove loose object", e)),
        }
    }
}
