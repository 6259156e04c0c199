//! The real aiida-core: after `dos import-archive` into a profile's container, `verdi archive
//! import` skips every repository file; an archive written by `dos export-archive` imports into
//! aiida-core with every file intact.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn aiida_core_accepts_dos_imports_and_exports() {
    let py = common::python();
    let has_aiida = Command::new(&py)
        .args([
            "-c",
            "import aiida; assert aiida.__version__.startswith('2.')",
        ])
        .status()
        .unwrap()
        .success();
    assert!(
        has_aiida,
        "DOS_TEST_PYTHON={} lacks aiida-core 2.x: run ./scripts/test.sh, which installs it",
        py.display()
    );
    let d = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/aiida_roundtrip.py");
    let out = Command::new(&py)
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_dos"))
        .arg(d.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert!(v["skipped_by_verdi"].as_u64().unwrap() >= 50, "{v}");
    assert_eq!(v["skipped_by_verdi"], v["exported_and_imported"]);
}
