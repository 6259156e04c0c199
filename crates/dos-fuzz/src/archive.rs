//! The `archive_import` target.

use dos_archive::{ImportOptions, Limits, import_archive};
use dos_core::maintain::ValidateOptions;
use dos_core::write::WriteTuning;
use dos_core::{CompressMode, Container, InitOptions, NoProgress, ObjectKey};

/// Any bytes given as an archive: opening, describing and importing never panic; whatever is
/// imported is valid and byte-exact, and nothing that failed a check is visible.
pub fn archive_import(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let archive = dir.path().join("a.aiida");
    if std::fs::write(&archive, data).is_err() {
        return;
    }
    let limits = Limits {
        max_entry_size: 1 << 20,
        max_total_size: 8 << 20,
        ..Limits::default()
    };
    let _ = dos_archive::info::archive_info(&archive, &limits, None);
    let Ok(c) = Container::init(&dir.path().join("c"), &InitOptions::default()) else {
        return;
    };
    let opts = ImportOptions {
        compress: if data.len().is_multiple_of(2) {
            CompressMode::Yes
        } else {
            CompressMode::No
        },
        limits,
        tuning: WriteTuning {
            large_object: 4096,
            memory_budget: 1 << 20,
            ..WriteTuning::default()
        },
        check_free_space: false,
        ..ImportOptions::default()
    };
    if let Ok(s) = import_archive(&c, &archive, &opts, &NoProgress) {
        // Everything stored is intact; nothing bad is visible.
        let report = match c.validate(&ValidateOptions::default(), &NoProgress) {
            Ok(r) => r,
            Err(e) => panic!("validate fails after an import: {e}"),
        };
        assert!(report.is_valid(), "{report:?}");
        for b in &s.bad_entries {
            if let Some(k) = b
                .name
                .strip_prefix("repo/")
                .and_then(|k| k.parse::<ObjectKey>().ok())
            {
                assert!(
                    !c.has_object(&k).unwrap_or(false),
                    "bad entry {} visible",
                    b.name
                );
            }
        }
    }
}
