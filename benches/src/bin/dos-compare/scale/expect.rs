//! What each operation's result must be, from the base's manifest: a wrong count fails the row
//! (no figures are compared for it).

use serde_json::Value;

use super::base::Manifest;
use super::ops::Op;

/// The problems of the result `v` of `op` on a copy of (or on) the base `m`; `pack_n` new loose
/// objects were added before `pack`.
pub fn check(op: &Op, v: &Value, m: &Manifest, pack_n: u64) -> Vec<String> {
    let mut bad = Vec::new();
    let mut want = |field: &str, expected: u64| {
        let got = v.get(field).and_then(Value::as_u64);
        if got != Some(expected) {
            bad.push(format!("{field}: {got:?}, expected {expected}"));
        }
    };
    match op.name {
        "ls" => want("objects", m.n),
        "status" => {
            want("packed", m.packed);
            want("loose", m.loose);
            want("packed_bytes", m.packed_bytes);
            want("loose_bytes", m.loose_bytes);
        }
        "has" => {
            want("objects", m.has_keys);
            want("true_count", m.has_present);
        }
        "validate" => want("problems", 0),
        "meta" => {
            want("objects", m.meta_keys);
            want("missing", 0);
            want("loose", m.meta_loose);
        }
        "delete-repack" => {
            want("deleted", m.delete_keys);
            want("packed_after", m.packed - m.delete_keys);
            want("loose_after", m.loose);
        }
        "pack" => {
            want("packed_after", m.packed + m.loose + pack_n);
            // The loose files stay (no clean afterwards).
            want("loose_after", m.loose + pack_n);
        }
        "add-pack" => {
            want("objects", pack_n);
            want("packed_after", m.packed + pack_n);
            want("loose_after", m.loose);
        }
        "clean" => {
            want("packed_after", m.packed);
            want("loose_after", m.loose);
        }
        _ => bad.push(format!("no expectation for {}", op.name)),
    }
    bad
}

/// The units an operation's time is divided by, at the base `m`.
pub fn units(op: &Op, m: &Manifest, pack_n: u64) -> u64 {
    match op.name {
        "has" => m.has_keys,
        "meta" => m.meta_keys,
        "pack" => m.loose + pack_n,
        "add-pack" => pack_n,
        _ => m.n,
    }
}
