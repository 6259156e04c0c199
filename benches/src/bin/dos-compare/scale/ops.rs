//! The operations of the scale benchmark, what each is measured per, and their selection.

use anyhow::{Result, bail};

/// What an operation's time is divided by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// The objects of the container.
    Objects,
    /// The keys asked.
    Keys,
    /// The objects packed (or written into packs).
    Packed,
}

impl Unit {
    /// The unit's name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Objects => "object",
            Unit::Keys => "key",
            Unit::Packed => "packed object",
        }
    }
}

/// One operation.
#[derive(Debug, Clone)]
pub struct Op {
    /// The child operation (both sides).
    pub name: &'static str,
    /// The row's label.
    pub label: &'static str,
    /// What its time is divided by.
    pub unit: Unit,
    /// Runs on a copy of the base (it writes), made untimed for each side.
    pub copy: bool,
    /// Its key list (in the base's `inputs/`).
    pub list: Option<&'static str>,
}

/// Every operation, in the order they run.
pub const OPS: &[Op] = &[
    Op {
        name: "ls",
        label: "ls (list_all_objects)",
        unit: Unit::Objects,
        copy: false,
        list: None,
    },
    Op {
        name: "status",
        label: "status (count_objects + get_total_size)",
        unit: Unit::Objects,
        copy: false,
        list: None,
    },
    Op {
        name: "has",
        label: "has_objects",
        unit: Unit::Keys,
        copy: false,
        list: Some("keys-has.txt"),
    },
    Op {
        name: "validate",
        label: "validate",
        unit: Unit::Objects,
        copy: false,
        list: None,
    },
    Op {
        name: "meta",
        label: "get_objects_meta",
        unit: Unit::Keys,
        copy: false,
        list: Some("keys-meta.txt"),
    },
    Op {
        name: "delete-repack",
        label: "delete 1 % + repack",
        unit: Unit::Objects,
        copy: true,
        list: Some("keys-delete.txt"),
    },
    Op {
        name: "pack",
        label: "pack_all_loose",
        unit: Unit::Packed,
        copy: true,
        list: None,
    },
    Op {
        name: "add-pack",
        label: "add_objects_to_pack (new objects)",
        unit: Unit::Packed,
        copy: true,
        list: None,
    },
    Op {
        name: "clean",
        label: "clean --vacuum",
        unit: Unit::Objects,
        copy: true,
        list: None,
    },
];

/// The operations named in `spec` (comma-separated; `all`, or `none` for none), in run order.
pub fn select(spec: &str) -> Result<Vec<&'static Op>> {
    let mut names = Vec::new();
    for s in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match s {
            "all" => names.extend(OPS.iter().map(|o| o.name)),
            "none" => {}
            o => match OPS.iter().find(|op| op.name == o) {
                Some(op) => names.push(op.name),
                None => bail!(
                    "unknown operation {o:?} (all, none, {})",
                    OPS.iter().map(|o| o.name).collect::<Vec<_>>().join(", ")
                ),
            },
        }
    }
    Ok(OPS.iter().filter(|o| names.contains(&o.name)).collect())
}

/// The operations the Python side runs at size `n`: `at` (`N=ops` entries) for `n` if one names
/// it, else `default`.
pub fn python_ops(default: &str, at: &[String], n: u64) -> Result<Vec<&'static Op>> {
    for e in at {
        let Some((size, ops)) = e.split_once('=') else {
            bail!("--python-ops-at wants N=ops, not {e:?}");
        };
        let size: u64 = size
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--python-ops-at: {size:?} is not a number"))?;
        if size == n {
            return select(ops);
        }
    }
    select(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection() {
        let names = |v: Vec<&Op>| v.iter().map(|o| o.name).collect::<Vec<_>>();
        assert_eq!(select("all").unwrap().len(), OPS.len());
        assert_eq!(names(select("meta,ls").unwrap()), ["ls", "meta"]);
        assert!(select("none").unwrap().is_empty());
        assert!(select("bogus").is_err());
        let at = vec!["10000000=ls,status".to_string()];
        assert_eq!(
            names(python_ops("all", &at, 10_000_000).unwrap()),
            ["ls", "status"]
        );
        assert_eq!(python_ops("all", &at, 1_000_000).unwrap().len(), OPS.len());
        assert!(python_ops("all", &["x".into()], 1).is_err());
    }
}
