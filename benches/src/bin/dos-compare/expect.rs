//! What each result must be, and the check of a child's result against it.

use serde_json::Value;

use crate::inputs::Inputs;
use crate::ops::Row;

/// What the results of one row must be.
#[derive(Default)]
pub struct Expect {
    /// Objects stored, read or queried.
    pub objects: u64,
    /// Their bytes.
    pub bytes: Option<u64>,
    /// Digest of the keys the operation returned, in input order.
    pub keys_digest: Option<String>,
    /// Number and sorted-key digest of the container's keys afterwards.
    pub keyset: Option<(u64, String)>,
    /// Keys `has` finds.
    pub true_count: Option<u64>,
    /// Digest of the sorted keys that must be packed afterwards.
    pub packed_digest: Option<String>,
    /// Zero problems reported by validate.
    pub no_problems: bool,
    /// Pack files must sum to the packed objects' on-disk lengths.
    pub no_holes: bool,
    /// Objects read back and hashed correctly after an import (none wrong or missing).
    pub verified: Option<u64>,
    /// Objects dos stored as the archive's own deflate streams (checked on the dos side only).
    pub passthrough: Option<u64>,
}

/// What the results of `row` must be on the data set `inp`.
pub fn expect(row: &Row, inp: &Inputs) -> Expect {
    let keyset = Some((inp.unique, inp.digest_unique_sorted.clone()));
    match row.op {
        "loose" => Expect {
            objects: inp.loose_n as u64,
            keys_digest: Some(inp.digest_loose.clone()),
            ..Expect::default()
        },
        "pack" | "pack-files" => Expect {
            objects: inp.n as u64,
            bytes: (row.op == "pack").then_some(inp.total_bytes),
            keys_digest: Some(inp.digest_all.clone()),
            ..Expect::default()
        },
        "read" | "get-one" | "get-content" | "size" => Expect {
            objects: inp.unique,
            bytes: Some(inp.unique_bytes),
            keyset,
            ..Expect::default()
        },
        // The listing itself (sorted) is the container's key set.
        "list" => Expect {
            objects: inp.unique,
            keys_digest: Some(inp.digest_unique_sorted.clone()),
            keyset,
            ..Expect::default()
        },
        "count" => Expect {
            objects: inp.unique,
            keyset,
            ..Expect::default()
        },
        // Every loose object packed, each exactly once (a fresh container: no holes).
        "pack-loose" => Expect {
            objects: inp.unique,
            bytes: Some(inp.unique_bytes),
            keyset,
            packed_digest: Some(inp.digest_unique_sorted.clone()),
            no_holes: true,
            ..Expect::default()
        },
        "validate" => Expect {
            objects: inp.unique,
            bytes: Some(inp.unique_bytes),
            keyset,
            no_problems: true,
            ..Expect::default()
        },
        "repack" => Expect {
            objects: inp.surviving,
            bytes: Some(inp.surviving_bytes),
            keyset: Some((inp.surviving, inp.digest_surviving_sorted.clone())),
            no_holes: true,
            ..Expect::default()
        },
        // Every unique object imported once (the archive has one entry per unique object), no
        // entry rejected or mismatched, a fresh container without holes; passthrough of every
        // non-empty deflated entry when compressing (dos).
        "import" => Expect {
            objects: inp.unique,
            bytes: Some(inp.unique_bytes),
            keyset,
            no_problems: true,
            no_holes: true,
            verified: Some(inp.verify),
            passthrough: Some(if row.compress && row.archive != Some(0) {
                inp.unique_nonempty
            } else {
                0
            }),
            ..Expect::default()
        },
        _ => Expect {
            objects: inp.has_n as u64,
            keyset,
            true_count: Some(inp.unique),
            ..Expect::default()
        },
    }
}

/// What the base containers must hold after being filled (by the dos child, `--existing`).
pub fn expect_base(base: &str, inp: &Inputs) -> Expect {
    if base == "base-loose" {
        Expect {
            objects: inp.n as u64,
            keys_digest: Some(inp.digest_all.clone()),
            ..Expect::default()
        }
    } else {
        Expect {
            objects: inp.unique,
            bytes: Some(inp.unique_bytes),
            keys_digest: Some(inp.digest_unique_order.clone()),
            ..Expect::default()
        }
    }
}

/// Problems with one child's result (empty when correct).
pub fn check(v: &Value, e: &Expect) -> Vec<String> {
    let mut bad = Vec::new();
    let u = |k: &str| v.get(k).and_then(Value::as_u64);
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    if u("objects") != Some(e.objects) {
        bad.push(format!("objects {:?} != {}", u("objects"), e.objects));
    }
    if let Some(b) = e.bytes
        && u("bytes") != Some(b)
    {
        bad.push(format!("bytes {:?} != {b}", u("bytes")));
    }
    if let Some(d) = &e.keys_digest
        && s("keys_digest").as_ref() != Some(d)
    {
        bad.push("keys differ from the manifest".into());
    }
    if let Some((n, d)) = &e.keyset
        && (u("keyset_count") != Some(*n) || s("keyset_digest").as_ref() != Some(d))
    {
        bad.push(format!(
            "container key set differs from the data set ({:?} keys, expected {n})",
            u("keyset_count")
        ));
    }
    if let Some(t) = e.true_count
        && u("true_count") != Some(t)
    {
        bad.push(format!("true count {:?} != {t}", u("true_count")));
    }
    if let Some(m) = u("missing")
        && m != 0
    {
        bad.push(format!("{m} keys missing"));
    }
    if let Some(c) = u("op_count")
        && c != e.objects
    {
        bad.push(format!(
            "the operation reports {c} objects, expected {}",
            e.objects
        ));
    }
    if let (Some(b), Some(c)) = (e.bytes, u("bytes_checked"))
        && b != c
    {
        bad.push(format!("validate checked {c} bytes, expected {b}"));
    }
    if let (Some(b), Some(c)) = (e.bytes, u("op_bytes"))
        && b != c
    {
        bad.push(format!("the operation reports {c} bytes, expected {b}"));
    }
    if let Some(d) = &e.packed_digest
        && s("packed_digest").as_ref() != Some(d)
    {
        bad.push("the packed keys differ from the data set's".into());
    }
    if e.no_problems && u("problems") != Some(0) {
        bad.push(format!(
            "{} reports {:?} problems",
            s("op").unwrap_or_default(),
            u("problems")
        ));
    }
    if let Some(n) = e.verified
        && (u("verified") != Some(n) || u("verify_bad") != Some(0))
    {
        bad.push(format!(
            "read back: {:?} objects hash to their key, {:?} wrong or missing (expected {n}, 0)",
            u("verified"),
            u("verify_bad")
        ));
    }
    if let Some(n) = e.passthrough
        && s("side").as_deref() == Some("dos")
        && u("passthrough") != Some(n)
    {
        bad.push(format!("passthrough {:?} != {n}", u("passthrough")));
    }
    if e.no_holes && (u("packfiles_bytes").is_none() || u("packfiles_bytes") != u("packed_on_disk"))
    {
        bad.push(format!(
            "pack files hold {:?} bytes, packed objects {:?} (holes)",
            u("packfiles_bytes"),
            u("packed_on_disk")
        ));
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wrong_results_are_reported() {
        let e = Expect {
            objects: 3,
            bytes: Some(30),
            keyset: Some((3, "abc".into())),
            ..Expect::default()
        };
        let good = json!({"objects": 3, "bytes": 30, "keyset_count": 3, "keyset_digest": "abc"});
        assert!(check(&good, &e).is_empty());
        let short = json!({"objects": 3, "bytes": 29, "keyset_count": 3, "keyset_digest": "abc"});
        assert_eq!(check(&short, &e).len(), 1);
        let other = json!({"objects": 2, "bytes": 30, "keyset_count": 3, "keyset_digest": "abd"});
        assert_eq!(check(&other, &e).len(), 2);
        let m = Expect {
            objects: 3,
            no_problems: true,
            no_holes: true,
            ..Expect::default()
        };
        let clean = json!({"objects": 3, "problems": 0, "packfiles_bytes": 9, "packed_on_disk": 9});
        assert!(check(&clean, &m).is_empty());
        let holes = json!({"objects": 3, "problems": 1, "packfiles_bytes": 10, "packed_on_disk": 9,
            "op_count": 2});
        assert_eq!(check(&holes, &m).len(), 3);
    }
}
