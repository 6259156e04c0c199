//! The operations the comparison measures: one [`Row`] of the table per operation, and their
//! selection by `--ops`.

use anyhow::{Result, bail};

/// The side of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Python disk-objectstore (`benches/python/dos_bench.py`).
    Python,
    /// dos-core (this binary's `child` subcommand).
    Dos,
}

impl Side {
    /// The side's name in tables, messages and results.
    pub fn name(self) -> &'static str {
        match self {
            Side::Python => "python",
            Side::Dos => "dos",
        }
    }
}

/// Which API the comparison measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Api {
    /// dos-core from Rust (this binary's `child`) against disk-objectstore from Python.
    Rust,
    /// `dos_objectstore.Container` against `disk_objectstore.Container`, both from Python in one
    /// venv (`benches/python/dos_bench.py --impl dos|upstream`).
    Python,
}

impl Api {
    /// The name of a side in tables (`python s`, `dos s` or the two Python packages).
    pub fn side_label(self, side: Side) -> &'static str {
        match (self, side) {
            (Api::Rust, s) => s.name(),
            (Api::Python, Side::Python) => "disk_objectstore",
            (Api::Python, Side::Dos) => "dos_objectstore",
        }
    }
}

/// One row of the table: an operation measured on both sides.
#[derive(Debug, Clone)]
pub struct Row {
    /// Label in the table.
    pub label: &'static str,
    /// Child operation.
    pub op: &'static str,
    /// Container folder name prefix (write ops create `<name>-<side>`; read ops read it).
    pub container: &'static str,
    /// Input list file.
    pub list: &'static str,
    /// Compress packed objects (`--compress`).
    pub compress: bool,
    /// Skip objects already stored (`--dedup`).
    pub dedup: bool,
    /// Whether the op creates (or changes) its container.
    pub writes: bool,
    /// Base container copied to the container before each run (and, for `repack`, every 10th
    /// sorted unique key deleted from the copy by the side's own `delete_objects`), untimed.
    pub base: Option<&'static str>,
    /// Whether the op writes packs (Python's child then also times fsyncing them).
    pub fsync: bool,
    /// Deflate level of the archive an `import` reads (`archive-l<level>.aiida`).
    pub archive: Option<u32>,
}

pub const ROWS: &[Row] = &[
    Row {
        label: "loose",
        op: "loose",
        container: "loose",
        list: "files-loose.txt",
        compress: false,
        dedup: false,
        writes: true,
        base: None,
        fsync: false,
        archive: None,
    },
    Row {
        label: "pack",
        op: "pack",
        container: "pack",
        list: "files-all.txt",
        compress: false,
        dedup: false,
        writes: true,
        base: None,
        fsync: true,
        archive: None,
    },
    Row {
        label: "pack, dedup",
        op: "pack",
        container: "pack-dedup",
        list: "files-all.txt",
        compress: false,
        dedup: true,
        writes: true,
        base: None,
        fsync: true,
        archive: None,
    },
    Row {
        label: "pack-z",
        op: "pack",
        container: "pack-z",
        list: "files-all.txt",
        compress: true,
        dedup: false,
        writes: true,
        base: None,
        fsync: true,
        archive: None,
    },
    Row {
        label: "pack-files",
        op: "pack-files",
        container: "pack-files",
        list: "files-all.txt",
        compress: false,
        dedup: false,
        writes: true,
        base: None,
        fsync: true,
        archive: None,
    },
    Row {
        label: "read",
        op: "read",
        container: "pack",
        list: "keys-unique.txt",
        compress: false,
        dedup: false,
        writes: false,
        base: None,
        fsync: false,
        archive: None,
    },
    Row {
        label: "read-z",
        op: "read",
        container: "pack-z",
        list: "keys-unique.txt",
        compress: false,
        dedup: false,
        writes: false,
        base: None,
        fsync: false,
        archive: None,
    },
    Row {
        label: "has",
        op: "has",
        container: "pack",
        list: "keys-has.txt",
        compress: false,
        dedup: false,
        writes: false,
        base: None,
        fsync: false,
        archive: None,
    },
    Row {
        label: "pack-loose",
        op: "pack-loose",
        container: "pack-loose",
        list: "",
        compress: false,
        dedup: false,
        writes: true,
        base: Some("base-loose"),
        fsync: true,
        archive: None,
    },
    Row {
        label: "pack-loose-z",
        op: "pack-loose",
        container: "pack-loose-z",
        list: "",
        compress: true,
        dedup: false,
        writes: true,
        base: Some("base-loose"),
        fsync: true,
        archive: None,
    },
    Row {
        label: "validate",
        op: "validate",
        container: "pack",
        list: "",
        compress: false,
        dedup: false,
        writes: false,
        base: None,
        fsync: false,
        archive: None,
    },
    Row {
        label: "validate-z",
        op: "validate",
        container: "pack-z",
        list: "",
        compress: false,
        dedup: false,
        writes: false,
        base: None,
        fsync: false,
        archive: None,
    },
    Row {
        label: "repack",
        op: "repack",
        container: "repack",
        list: "",
        compress: false,
        dedup: false,
        writes: true,
        base: Some("base-packed"),
        fsync: true,
        archive: None,
    },
    Row {
        label: "import",
        op: "import",
        container: "import",
        list: "",
        compress: false,
        dedup: false,
        writes: true,
        base: None,
        fsync: true,
        archive: Some(6),
    },
    Row {
        label: "import-z",
        op: "import",
        container: "import-z",
        list: "",
        compress: true,
        dedup: false,
        writes: true,
        base: None,
        fsync: true,
        archive: Some(6),
    },
    Row {
        label: "import-l0",
        op: "import",
        container: "import-l0",
        list: "",
        compress: false,
        dedup: false,
        writes: true,
        base: None,
        fsync: true,
        archive: Some(0),
    },
    Row {
        label: "get-one",
        op: "get-one",
        container: "pack",
        list: "keys-unique.txt",
        compress: false,
        dedup: false,
        writes: false,
        base: None,
        fsync: false,
        archive: None,
    },
    Row {
        label: "get-content",
        op: "get-content",
        container: "pack",
        list: "keys-unique.txt",
        compress: false,
        dedup: false,
        writes: false,
        base: None,
        fsync: false,
        archive: None,
    },
    Row {
        label: "list",
        op: "list",
        container: "pack",
        list: "",
        compress: false,
        dedup: false,
        writes: false,
        base: None,
        fsync: false,
        archive: None,
    },
    Row {
        label: "count",
        op: "count",
        container: "pack",
        list: "",
        compress: false,
        dedup: false,
        writes: false,
        base: None,
        fsync: false,
        archive: None,
    },
    Row {
        label: "size",
        op: "size",
        container: "pack",
        list: "",
        compress: false,
        dedup: false,
        writes: false,
        base: None,
        fsync: false,
        archive: None,
    },
];

/// Operations only the Python API has a row for (`--api python`).
const PYTHON_ONLY: &[&str] = &["get-one", "get-content", "list", "count", "size"];

/// The rows selected by `--ops` for `api`.
pub fn select_rows(ops: &str, api: Api) -> Result<Vec<&'static Row>> {
    let mut names: Vec<&str> = Vec::new();
    for op in ops.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match op {
            "python-api" => names.extend([
                "loose",
                "pack",
                "pack-files",
                "read",
                "get-one",
                "get-content",
                "has",
                "list",
                "count",
                "size",
                "pack-loose",
                "pack-loose-z",
                "validate",
                "repack",
            ]),
            o if PYTHON_ONLY.contains(&o) => {
                if api != Api::Python {
                    bail!("operation {o:?} is measured with --api python only");
                }
                names.push(o);
            }
            "all" => names.extend(["loose", "pack", "pack-z", "read", "read-z", "has"]),
            "maintenance" => names.extend([
                "pack-loose",
                "pack-loose-z",
                "validate",
                "validate-z",
                "repack",
            ]),
            "archive" => names.extend(["import", "import-z"]),
            "loose" | "pack-z" | "pack-files" | "read" | "read-z" | "has" | "pack-loose"
            | "pack-loose-z" | "validate" | "validate-z" | "repack" | "import" | "import-z"
            | "import-l0" => names.push(op),
            "pack" => names.push("pack"),
            other => bail!("unknown operation {other:?}"),
        }
    }
    if api == Api::Python && names.iter().any(|n| n.starts_with("import")) {
        bail!(
            "the Python API run has no archive import (aiida-core's import is benches/python/aiida_bench.py)"
        );
    }
    let mut rows = Vec::new();
    for r in ROWS {
        let wanted =
            names.contains(&r.label) || (r.label == "pack, dedup" && names.contains(&"pack"));
        if wanted {
            rows.push(r);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_selection() {
        let all: Vec<&str> = select_rows("all", Api::Rust)
            .unwrap()
            .iter()
            .map(|r| r.label)
            .collect();
        assert_eq!(
            all,
            [
                "loose",
                "pack",
                "pack, dedup",
                "pack-z",
                "read",
                "read-z",
                "has"
            ]
        );
        let maint: Vec<&str> = select_rows("maintenance", Api::Rust)
            .unwrap()
            .iter()
            .map(|r| r.label)
            .collect();
        assert_eq!(
            maint,
            [
                "pack-loose",
                "pack-loose-z",
                "validate",
                "validate-z",
                "repack"
            ]
        );
        let imports: Vec<(&str, Option<u32>, bool)> = select_rows("archive,import-l0", Api::Rust)
            .unwrap()
            .iter()
            .map(|r| (r.label, r.archive, r.compress))
            .collect();
        assert_eq!(
            imports,
            [
                ("import", Some(6), false),
                ("import-z", Some(6), true),
                ("import-l0", Some(0), false)
            ]
        );
        assert!(select_rows("bogus", Api::Rust).is_err());
        assert!(select_rows("get-one", Api::Rust).is_err());
        assert!(select_rows("import", Api::Python).is_err());
        let py: Vec<&str> = select_rows("python-api", Api::Python)
            .unwrap()
            .iter()
            .map(|r| r.label)
            .collect();
        assert_eq!(py.len(), 15);
        assert!(py.contains(&"get-one") && py.contains(&"pack, dedup"));
    }
}
