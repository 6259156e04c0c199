//! Helpers shared by the CLI, interop and concurrency tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

/// The `dos` binary under test.
pub fn dos() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dos"))
}

/// Run `dos` with args, returning the output (whatever the exit code).
pub fn run_dos(args: &[&str]) -> Output {
    dos().args(args).output().expect("spawn dos")
}

/// The Python interpreter with disk-objectstore 1.5.0. The interop tests must never be skipped
/// silently: a missing interpreter is a failure that says how to get one.
pub fn python() -> PathBuf {
    let p = std::env::var_os("DOS_TEST_PYTHON").unwrap_or_else(|| {
        panic!(
            "DOS_TEST_PYTHON is not set: the interoperability tests need a Python with \
             disk-objectstore==1.5.0. Run the suite with ./scripts/test.sh, which creates .venv, \
             or set DOS_TEST_PYTHON=/path/to/python"
        )
    });
    let p = PathBuf::from(p);
    let out = Command::new(&p)
        .args([
            "-c",
            "import disk_objectstore; print(disk_objectstore.__version__)",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run DOS_TEST_PYTHON={}: {e}", p.display()));
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && version == "1.5.0",
        "DOS_TEST_PYTHON={} must have disk-objectstore 1.5.0 (got {version:?}; {})",
        p.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    p
}

/// Path of the interop driver script.
pub fn interop_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/interop.py")
}

/// Run the interop script; panic with its stderr if it fails. Returns its JSON output.
pub fn py(args: &[&str]) -> serde_json::Value {
    let out = Command::new(python())
        .arg(interop_script())
        .args(args)
        .output()
        .expect("spawn python");
    assert!(
        out.status.success(),
        "python interop.py {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("null")).expect("json output")
}

/// A manifest: key → (size, sha256 of the content).
pub type Manifest = BTreeMap<String, (u64, String)>;

/// The key of a manifest's hex key.
pub fn key(hex: &str) -> dos_core::ObjectKey {
    hex.parse().unwrap()
}

pub fn sha256_hex(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn read_manifest(container: &Path) -> Manifest {
    let p = PathBuf::from(format!("{}.manifest.json", container.display()));
    let v: BTreeMap<String, (u64, String)> =
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    v
}

pub fn write_manifest(container: &Path, m: &Manifest) -> PathBuf {
    let p = PathBuf::from(format!("{}.manifest.json", container.display()));
    std::fs::write(&p, serde_json::to_vec(m).unwrap()).unwrap();
    p
}

/// Deterministic content: empty, tiny, text, random, and a few multi-MB objects.
pub fn random_objects(seed: u64, n: usize, big: usize) -> Vec<Vec<u8>> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut out = vec![Vec::new(), b"y".to_vec()];
    for i in 0..n {
        let len = (next() % 25_000) as usize;
        if i % 2 == 0 {
            let line = format!("iteration {i} total energy = {} Ry\n", next() % 100_000);
            out.push(line.as_bytes().iter().copied().cycle().take(len).collect());
        } else {
            out.push((0..len).map(|_| next() as u8).collect());
        }
    }
    for _ in 0..big {
        let len = 2_000_000 + (next() % 2_000_000) as usize;
        out.push((0..len).map(|_| next() as u8).collect());
    }
    let dups: Vec<Vec<u8>> = out.iter().skip(2).take(n / 10).cloned().collect();
    out.extend(dups);
    out
}

/// Build the archive of `scenario` at `out` with dos-archive's `make_archive.py`; returns the
/// JSON it prints (`objects`: key -> [size, sha256], `bad`, `ignored`).
pub fn make_archive(scenario: &str, out: &Path) -> serde_json::Value {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../dos-archive/tests/python/make_archive.py");
    let made = Command::new(python())
        .arg(script)
        .arg(scenario)
        .arg(out)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "make_archive.py {scenario}: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    serde_json::from_slice(&made.stdout).unwrap()
}

/// The `objects` of a [`make_archive`] result as a manifest.
pub fn archive_objects(made: &serde_json::Value) -> Manifest {
    serde_json::from_value(made["objects"].clone()).unwrap()
}
