//! Maintenance: packing loose objects, repacking, cleaning, deleting, validating, backing up,
//! copying between containers, and recovering from interrupted operations (dos's or Python's).
//!
//! Every operation here takes the container's maintenance lock (see [`LockMode`]) and, when
//! it may change data, first runs [`Container::recover`] so that a crash of an earlier operation
//! is completed or rolled back before anything else happens.

mod backup;
mod clean;
mod convert;
mod copy;
mod lock;
mod pack_loose;
mod recover;
mod repack;
mod validate;

pub(crate) use backup::utc;
pub use backup::{BackupOptions, BackupSummary, LAST_BACKUP, LIVE_BACKUP, existing_backups};
pub use clean::{CleanOptions, CleanSummary};
pub use convert::CONVERT_MARKER;
pub use copy::ImportObjectsSummary;
pub use lock::{LockMode, MAINTENANCE_LOCK_FILE, MaintenanceLock};
pub use pack_loose::{PackLooseOptions, PackLooseSummary};
pub use recover::REPACK_JOURNAL;
pub use repack::{RepackCompress, RepackOptions, RepackSummary};
pub use validate::{ObjectProblem, ValidateOptions, ValidationReport};

use crate::codec::CompressMode;
use crate::container::Container;
use crate::error::Result;
use crate::progress::Progress;

/// What [`Container::optimize`] did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct OptimizeSummary {
    /// Interrupted operations found and finished or rolled back first.
    pub recovered: Vec<String>,
    /// The packing step.
    pub pack: PackLooseSummary,
    /// The cleaning step.
    pub clean: CleanSummary,
    /// The repacking step.
    pub repack: RepackSummary,
}

impl Container {
    /// Pack every loose object (deleting loose copies as their packs are committed), clean,
    /// repack packs that have holes (or need the requested compression), and vacuum the index:
    /// what `dostore optimize` and `verdi storage maintain --full` do, in one go.
    pub fn optimize(
        &self,
        compress: CompressMode,
        repack_compress: RepackCompress,
        progress: &dyn Progress,
    ) -> Result<OptimizeSummary> {
        let _lock = self.lock_maintenance(LockMode::Exclusive, "optimize")?;
        let recovered = self.recover()?;
        let pack = self.pack_all_loose_locked(
            &PackLooseOptions {
                compress,
                clean_loose: true,
                ..PackLooseOptions::default()
            },
            progress,
        )?;
        let clean = self.clean_locked(
            &CleanOptions {
                vacuum: false,
                ..CleanOptions::default()
            },
            progress,
        )?;
        let repack = self.repack_locked(
            &RepackOptions {
                compress: repack_compress,
                ..RepackOptions::default()
            },
            progress,
        )?;
        Ok(OptimizeSummary {
            recovered,
            pack,
            clean,
            repack,
        })
    }
}
