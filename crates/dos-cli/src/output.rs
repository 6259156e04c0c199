//! Rendering results for humans and for scripts (`--json`).

use std::io::Write;

use dos_core::{ObjectMeta, ObjectType};
use serde_json::{Value, json};

/// Python-shaped JSON of an object's metadata (`ObjectMeta` field names).
pub fn meta_json(key: &str, m: &ObjectMeta) -> Value {
    let loc = m.location;
    json!({
        "hashkey": key,
        "type": m.kind,
        "size": m.size,
        "pack_id": loc.map(|l| l.pack_id),
        "pack_compressed": loc.map(|l| l.compressed),
        "pack_offset": loc.map(|l| l.offset),
        "pack_length": loc.map(|l| l.length),
    })
}

/// One human line of an object's metadata.
pub fn meta_line(key: &str, m: &ObjectMeta) -> String {
    match (m.kind, m.location) {
        (ObjectType::Packed, Some(l)) => format!(
            "{key}  packed  size={} pack={} offset={} length={} compressed={}",
            l.size, l.pack_id, l.offset, l.length, l.compressed
        ),
        (ObjectType::Loose, _) => format!("{key}  loose  size={}", m.size.unwrap_or(0)),
        _ => format!("{key}  missing"),
    }
}

/// Print a JSON value on stdout.
pub fn print_json(out: &mut impl Write, v: &Value) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, v)?;
    writeln!(out)
}
