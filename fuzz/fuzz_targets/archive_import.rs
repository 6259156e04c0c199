//! Any bytes given as an archive: opening, describing and importing never panic; whatever is
//! imported is valid and byte-exact, and nothing that failed a check is visible.
#![no_main]

use dos_archive::{ImportOptions, Limits, import_archive};
use dos_core::maintain::ValidateOptions;
use dos_core::write::WriteTuning;
use dos_core::{CompressMode, Container, InitOptions, NoProgress, ObjectKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
        compress: if data.len() % 2 == 0 { CompressMode::Yes } else { CompressMode::No },
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
        let report = c.validate(&ValidateOptions::default(), &NoProgress).expect("validate runs");
        assert!(report.is_valid(), "{report:?}");
        for b in &s.bad_entries {
            if let Some(k) = b.name.strip_prefix("repo/").and_then(|k| k.parse::<ObjectKey>().ok()) {
                assert!(!c.has_object(&k).unwrap_or(false), "bad entry {} visible", b.name);
            }
        }
    }
});
