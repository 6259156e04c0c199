//! The input formats of the structured targets ([`crate::index_rows`], [`crate::loose_folder`]),
//! with encoders, and the seed inputs of the corpora of the new targets.
//!
//! Every byte string decodes to some input (missing bytes read as zero), so the fuzzer may mutate
//! freely; the structure only makes it likely that mutations stay near valid containers.
//!
//! `cargo run -p dos-fuzz --example write_seeds` writes [`seeds`] into `fuzz/corpus/<target>/`.

use crate::bytes::Bytes;

/// Most records decoded from one input (more bytes are ignored).
pub const MAX_RECORDS: usize = 16;

/// A content given either literally or as a run of one byte (for objects larger than a length
/// byte allows, which compress very well).
fn encode_content(out: &mut Vec<u8>, content: &[u8]) {
    let run = content.len() >= 255 && content.iter().all(|b| *b == content[0]);
    if run && content.len() <= usize::from(u16::MAX) {
        out.push(0xff);
        out.push(content[0]);
        out.extend_from_slice(&(content.len() as u16).to_le_bytes());
    } else {
        let n = content.len().min(254);
        out.push(n as u8);
        out.extend_from_slice(&content[..n]);
    }
}

fn decode_content(b: &mut Bytes<'_>) -> Vec<u8> {
    match b.u8() {
        0xff => {
            let fill = b.u8();
            let n = u16::from_le_bytes([b.u8(), b.u8()]);
            vec![fill; usize::from(n)]
        }
        n => b.take(usize::from(n)).to_vec(),
    }
}

/// Input of [`crate::index_rows`]: pack files and `packs.idx` rows.
///
/// Encoding: `flags`, `options`, then records. Each record is one control byte
/// (`slot | compress << 2 | hole << 3 | mutate << 4 | key_mode << 5`), the mutation's two bytes
/// (`field | selector << 3`, argument) if `mutate`, the key argument if `key_mode == 7`, and the
/// content (a length byte and the bytes, or `0xff`, a byte and a `u16` count for a run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexRowsInput {
    /// Bit 0: repack afterwards; bits 1-2: its compression (keep, no, yes, auto); bit 3: force;
    /// bit 4: a relaxed schema (columns without types or `NOT NULL`, which dos accepts); bit 5:
    /// repack recodes; bit 6: a sha1 container; bit 7: `zstd+3` instead of `zlib+1`.
    pub flags: u8,
    /// Bit 0: validate reads packs with `pread` (no mapping); bit 1: validate sorts the rows as
    /// for an index too large for memory (`max_rows_in_memory` 0: sorted runs spilled to files,
    /// then merged); bit 2: repack only pack 0; bits 3-4: rows per run (1, 2, 3, or 1024: a
    /// single run, which stays in memory).
    pub options: u8,
    /// The objects, in order.
    pub records: Vec<IndexRecord>,
}

/// One object of [`IndexRowsInput`]: bytes appended to a pack, and (unless a hole) its row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexRecord {
    /// The pack: 0..=3, the files `0`, `1`, `3` and `-1` (Python's temporary repack pack).
    pub slot: u8,
    /// Stored as a zlib stream.
    pub compress: bool,
    /// Bytes only, no row: a hole.
    pub hole: bool,
    /// One field of the row changed: `(field, selector, argument)`, see `index_rows.rs`.
    pub mutation: Option<(u8, u8, u8)>,
    /// 0..=3 the right key; 4 upper case; 5 one digit changed; 6 the previous record's key;
    /// 7 malformed as `key_arg` says.
    pub key_mode: u8,
    /// The kind of malformation of key mode 7.
    pub key_arg: u8,
    /// The object's content.
    pub content: Vec<u8>,
}

impl IndexRowsInput {
    /// The bytes that decode to this input.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.flags, self.options];
        for r in &self.records {
            out.push(
                (r.slot & 3)
                    | u8::from(r.compress) << 2
                    | u8::from(r.hole) << 3
                    | u8::from(r.mutation.is_some()) << 4
                    | (r.key_mode & 7) << 5,
            );
            if let Some((field, sel, arg)) = r.mutation {
                out.push((field & 7) | (sel & 31) << 3);
                out.push(arg);
            }
            if r.key_mode & 7 == 7 {
                out.push(r.key_arg);
            }
            encode_content(&mut out, &r.content);
        }
        out
    }

    /// Decode any bytes.
    pub fn decode(data: &[u8]) -> Self {
        let mut b = Bytes::new(data);
        let flags = b.u8();
        let options = b.u8();
        let mut records = Vec::new();
        while !b.is_empty() && records.len() < MAX_RECORDS {
            let c = b.u8();
            let mutation = (c & 16 != 0).then(|| {
                let f = b.u8();
                (f & 7, f >> 3, b.u8())
            });
            let key_mode = c >> 5;
            let key_arg = if key_mode == 7 { b.u8() } else { 0 };
            records.push(IndexRecord {
                slot: c & 3,
                compress: c & 4 != 0,
                hole: c & 8 != 0,
                mutation,
                key_mode,
                key_arg,
                content: decode_content(&mut b),
            });
        }
        Self {
            flags,
            options,
            records,
        }
    }
}

/// Input of [`crate::loose_folder`]: entries of `loose/`.
///
/// Encoding: `flags`, then records: a control byte (`name_mode | kind << 3 | same_content << 6`)
/// and the content (as in [`IndexRowsInput`]; absent when `same_content`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LooseFolderInput {
    /// Bits 0-1: loose prefix length (2, 0, 1, 3); bit 2: sha1; bits 3-4: compression of
    /// `pack_all_loose` (no, yes, auto, no); bit 5: `clean_loose`; bit 6: a tiny `large_object`
    /// (objects are streamed); bit 7: `pack_size_target` of 64 bytes.
    pub flags: u8,
    /// The entries, in order.
    pub records: Vec<LooseRecord>,
}

/// One entry of [`LooseFolderInput`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LooseRecord {
    /// 0, 1: the content's key, sharded as configured; 2: sharded otherwise; 3: upper case;
    /// 4: a digit short; 5: a non-hex digit; 6: another key (content does not match);
    /// 7: a dot-file.
    pub name_mode: u8,
    /// 0-2: a file; 3: a folder (holding a file); 4: one folder level too many; 5: a symlink to
    /// the previous entry; 6: a file where the shard folder goes; 7: an empty file.
    pub kind: u8,
    /// The previous entry's content (no content bytes follow).
    pub same_content: bool,
    /// The content (ignored when `same_content`).
    pub content: Vec<u8>,
}

impl LooseFolderInput {
    /// The bytes that decode to this input.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.flags];
        for r in &self.records {
            out.push((r.name_mode & 7) | (r.kind & 7) << 3 | u8::from(r.same_content) << 6);
            if !r.same_content {
                encode_content(&mut out, &r.content);
            }
        }
        out
    }

    /// Decode any bytes.
    pub fn decode(data: &[u8]) -> Self {
        let mut b = Bytes::new(data);
        let flags = b.u8();
        let mut records: Vec<LooseRecord> = Vec::new();
        while !b.is_empty() && records.len() < MAX_RECORDS {
            let c = b.u8();
            let same_content = c & 64 != 0;
            let content = if same_content {
                records
                    .last()
                    .map(|r| r.content.clone())
                    .unwrap_or_default()
            } else {
                decode_content(&mut b)
            };
            records.push(LooseRecord {
                name_mode: c & 7,
                kind: (c >> 3) & 7,
                same_content,
                content,
            });
        }
        Self { flags, records }
    }
}

fn rec(slot: u8, content: &[u8]) -> IndexRecord {
    IndexRecord {
        slot,
        content: content.to_vec(),
        ..IndexRecord::default()
    }
}

fn loose(name_mode: u8, kind: u8, content: &[u8]) -> LooseRecord {
    LooseRecord {
        name_mode,
        kind,
        same_content: false,
        content: content.to_vec(),
    }
}

fn config(prefix: u32, hash: &str, algo: &str, extra: &str) -> Vec<u8> {
    format!(
        "{{\"container_version\": 1, \"loose_prefix_len\": {prefix}, \"pack_size_target\": \
         4294967296, \"hash_type\": \"{hash}\", \"container_id\": \
         \"ff432b2bfdb844de952973d4f8b664ff\", \"compression_algorithm\": \"{algo}\"{extra}}}"
    )
    .into_bytes()
}

/// The seed inputs of `target` (file name, bytes): for the targets added with this crate;
/// empty for the others, whose corpora were made by hand.
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(&str, Vec<u8>)> = Vec::new();
    match target {
        "config_open" => {
            v.push(("default", config(2, "sha256", "zlib+1", "")));
            v.push(("flat", config(0, "sha256", "zlib+9", "")));
            v.push(("sha1", config(2, "sha1", "zlib+1", "")));
            v.push(("zstd", config(3, "sha256", "zstd+3", ", \"extra\": [1, 2]")));
            v.push(("long_prefix", config(63, "sha256", "zlib+1", "")));
            v.push((
                "legacy",
                b"{\"container_version\": 1, \"loose_prefix_len\": 2, \"pack_size_target\": \
                  4294967296, \"hash_type\": \"sha256\"}"
                    .to_vec(),
            ));
        }
        "index_rows" => {
            let text = b"the quick brown fox jumps over the lazy dog".repeat(3);
            let one = IndexRowsInput {
                records: vec![rec(0, b"hello")],
                ..IndexRowsInput::default()
            };
            v.push(("one_raw", one.encode()));
            let mut two = IndexRowsInput {
                flags: 1,
                records: vec![
                    rec(0, b"first"),
                    rec(0, &text),
                    rec(0, b"junk"),
                    rec(0, b""),
                ],
                ..IndexRowsInput::default()
            };
            two.records[1].compress = true;
            two.records[2].hole = true;
            v.push(("holes_repack_keep", two.encode()));
            let mut packs = IndexRowsInput {
                flags: 1 | 2 << 1 | 8,
                records: vec![rec(0, b"a"), rec(1, &text), rec(2, b"c"), rec(1, &[7; 300])],
                ..IndexRowsInput::default()
            };
            packs.records[3].compress = true;
            v.push(("three_packs_repack_yes", packs.encode()));
            let mut minus_one = IndexRowsInput {
                flags: 1 | 1 << 1,
                records: vec![rec(0, b"kept"), rec(3, &text), rec(3, b"moved")],
                ..IndexRowsInput::default()
            };
            minus_one.records[1].compress = true;
            v.push(("python_repack_minus_one", minus_one.encode()));
            let mut keys = IndexRowsInput {
                records: vec![
                    rec(0, b"upper"),
                    rec(0, b"flipped"),
                    rec(0, b"dup"),
                    rec(0, b"x"),
                ],
                ..IndexRowsInput::default()
            };
            keys.records[0].key_mode = 4;
            keys.records[1].key_mode = 5;
            keys.records[2].key_mode = 6;
            keys.records[3].key_mode = 7;
            keys.records[3].key_arg = 2;
            v.push(("bad_keys", keys.encode()));
            let mut fields = IndexRowsInput {
                flags: 1 << 4,
                options: 3,
                records: vec![
                    rec(0, b"text size"),
                    rec(0, b"real offset"),
                    rec(1, b"null"),
                ],
            };
            fields.records[0].mutation = Some((2, 15, 0));
            fields.records[1].mutation = Some((0, 17, 0));
            fields.records[2].mutation = Some((4, 14, 0));
            v.push(("relaxed_schema_types", fields.encode()));
            let mut big = IndexRowsInput {
                flags: 1 | 1 << 1,
                records: vec![rec(0, &[b'z'; 60_000]), rec(0, b"after")],
                ..IndexRowsInput::default()
            };
            big.records[0].compress = true;
            v.push(("large_compressed", big.encode()));
            let sha1 = IndexRowsInput {
                flags: 1 | 2 << 1 | 1 << 5 | 1 << 6 | 1 << 7,
                records: vec![rec(0, b"sha1 object"), rec(1, &text)],
                ..IndexRowsInput::default()
            };
            v.push(("sha1_zstd_repack", sha1.encode()));
            let mut shifted = IndexRowsInput {
                records: vec![rec(0, &text), rec(0, b"next")],
                ..IndexRowsInput::default()
            };
            shifted.records[0].mutation = Some((7, 0, 3));
            shifted.records[1].mutation = Some((0, 1, 0));
            v.push(("overlap", shifted.encode()));
        }
        "loose_folder" => {
            let text = b"loose object content, loose object content".to_vec();
            let good = LooseFolderInput {
                flags: 0,
                records: vec![loose(0, 0, b"one"), loose(1, 0, &text)],
            };
            v.push(("sharded_good", good.encode()));
            let flat = LooseFolderInput {
                flags: 1,
                records: vec![
                    loose(0, 0, b"flat"),
                    loose(6, 0, b"mismatch"),
                    loose(2, 0, b"s"),
                ],
            };
            v.push(("flat_mismatch", flat.encode()));
            let names = LooseFolderInput {
                flags: 2 | 1 << 3 | 1 << 5,
                records: vec![
                    loose(3, 0, b"upper"),
                    loose(4, 0, b"short"),
                    loose(5, 0, b"nonhex"),
                    loose(7, 0, b"dot"),
                    loose(0, 0, b"good"),
                ],
            };
            v.push(("bad_names_clean", names.encode()));
            let kinds = LooseFolderInput {
                flags: 3,
                records: vec![
                    loose(0, 0, b"target"),
                    loose(0, 5, b"link"),
                    loose(0, 3, b"dir"),
                    loose(0, 4, b"nested"),
                    loose(0, 6, b"shard file"),
                    loose(0, 7, b"empty"),
                ],
            };
            v.push(("odd_kinds", kinds.encode()));
            let mut dup = LooseFolderInput {
                flags: 4 | 2 << 3 | 1 << 6 | 1 << 7,
                records: vec![loose(0, 0, &text), loose(2, 0, b""), loose(0, 0, &[3; 400])],
            };
            dup.records[1].same_content = true;
            v.push(("sha1_streamed_auto", dup.encode()));
        }
        _ => {}
    }
    v.into_iter()
        .map(|(n, b)| (format!("seed-{n}"), b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for t in ["index_rows", "loose_folder"] {
            for (name, bytes) in seeds(t) {
                if t == "index_rows" {
                    let d = IndexRowsInput::decode(&bytes);
                    assert_eq!(d.encode(), bytes, "{name}");
                } else {
                    let d = LooseFolderInput::decode(&bytes);
                    assert_eq!(d.encode(), bytes, "{name}");
                }
            }
        }
    }
}
