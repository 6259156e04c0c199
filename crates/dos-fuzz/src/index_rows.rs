//! The `index_rows` target: a hostile `packs.idx` over hostile packs.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use dos_core::index::{CREATE_INDEX_SQL, CREATE_TABLE_SQL};
use dos_core::maintain::{RepackCompress, RepackOptions, ValidateOptions, ValidationReport};
use dos_core::{Container, HashType, NoProgress, ObjectContent, ObjectKey};
use rusqlite::types::Value;

use crate::config::io;
use crate::scratch;
use crate::seeds::{IndexRecord, IndexRowsInput};

/// Pack ids of the four slots of [`IndexRecord::slot`] (`-1` is Python's temporary repack pack).
const SLOT_IDS: [i64; 4] = [0, 1, 3, -1];

/// The schema dos accepts but Python never writes: columns without types or `NOT NULL`.
const RELAXED_SCHEMA: &str = "CREATE TABLE db_object (id INTEGER PRIMARY KEY, hashkey, \
     compressed, size, \"offset\", length, pack_id); \
     CREATE UNIQUE INDEX ix_db_object_hashkey ON db_object (hashkey);";

/// Most bytes read from one streamed object (packs here are far smaller).
const READ_CAP: u64 = 16 << 20;

/// One row, as the values handed to SQLite.
struct Row {
    id: Value,
    hashkey: Value,
    compressed: Value,
    size: Value,
    offset: Value,
    length: Value,
    pack_id: Value,
}

/// One container folder of this thread, and the connection that rewrites its index.
///
/// The connection stays open for the life of the thread, as an AiiDA process keeps the index
/// open: dos's connections then find the index in WAL mode with its `-wal` and `-shm` files in
/// place, and closing them checkpoints nothing. (Replacing the file and creating its schema on
/// every run cost a fifth of the run.)
struct Root {
    root: PathBuf,
    conn: rusqlite::Connection,
    /// The `(flags & 0xc0)` the current `config.json` was written for.
    config_for: Option<u8>,
}

impl Root {
    fn create(dir: &Path, schema: &str) -> Option<Self> {
        fs::create_dir(dir).ok()?;
        for d in dos_core::layout::REQUIRED_DIRS {
            fs::create_dir(dir.join(d)).ok()?;
        }
        let conn = rusqlite::Connection::open(dir.join("packs.idx")).ok()?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; {schema}"
        ))
        .ok()?;
        Some(Self {
            root: dir.to_path_buf(),
            conn,
            config_for: None,
        })
    }

    /// Write the container the input describes (everything the previous run left is replaced).
    fn write(&mut self, input: &IndexRowsInput) -> io::Result<()> {
        let cfg = input.flags & 0xc0;
        if self.config_for != Some(cfg) {
            let hash = if cfg & 0x40 != 0 { "sha1" } else { "sha256" };
            let algo = if cfg & 0x80 != 0 { "zstd+3" } else { "zlib+1" };
            let json = format!(
                "{{\"container_version\": 1, \"loose_prefix_len\": 2, \"pack_size_target\": \
                 4294967296, \"hash_type\": \"{hash}\", \"container_id\": \
                 \"0123456789abcdef0123456789abcdef\", \"compression_algorithm\": \"{algo}\"}}"
            );
            fs::write(self.root.join("config.json"), json)?;
            self.config_for = Some(cfg);
        }
        let hash = hash_of(input);
        let packs = self.root.join("packs");
        scratch::reset_dir(&packs)?;
        scratch::reset_dir(&self.root.join("sandbox"))?;
        let (bytes, rows) = build(input, hash);
        for (slot, b) in bytes.iter().enumerate() {
            if let Some(b) = b {
                fs::write(packs.join(SLOT_IDS[slot].to_string()), b)?;
            }
        }
        insert_rows(&mut self.conn, &rows).map_err(io::Error::other)
    }
}

/// The two containers of this thread: the index with Python's schema, and a relaxed one.
struct Prepared {
    roots: [Root; 2],
}

impl Prepared {
    fn create() -> Option<Self> {
        let dir = scratch::new_dir("index_rows").ok()?;
        let strict = format!("{CREATE_TABLE_SQL}; {CREATE_INDEX_SQL};");
        Some(Self {
            roots: [
                Root::create(&dir.join("strict"), &strict)?,
                Root::create(&dir.join("relaxed"), RELAXED_SCHEMA)?,
            ],
        })
    }
}

fn insert_rows(conn: &mut rusqlite::Connection, rows: &[Row]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.prepare_cached("DELETE FROM db_object")?.execute([])?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO db_object (id, hashkey, compressed, size, \"offset\", length, \
             pack_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for r in rows {
            // A value SQLite refuses (a duplicate id) only drops its row.
            let _ = stmt.execute(rusqlite::params![
                r.id,
                r.hashkey,
                r.compressed,
                r.size,
                r.offset,
                r.length,
                r.pack_id
            ]);
        }
    }
    tx.commit()
}

fn hash_of(input: &IndexRowsInput) -> HashType {
    if input.flags & 0x40 != 0 {
        HashType::Sha1
    } else {
        HashType::Sha256
    }
}

/// `data` as a zlib stream (level 1).
///
/// One encoder per thread, reset after each object (`reset` finishes the stream and sets the
/// compressor back to its start): setting one up allocates a few hundred KiB, which under
/// AddressSanitizer was half the cost of writing the container.
fn zlib(data: &[u8]) -> Vec<u8> {
    thread_local! {
        static Z: RefCell<flate2::write::ZlibEncoder<Vec<u8>>> = RefCell::new(
            flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(1)),
        );
    }
    Z.with(|z| {
        let mut z = z.borrow_mut();
        // Writing into a vector cannot fail.
        let _ = z.write_all(data);
        z.reset(Vec::new()).unwrap_or_default()
    })
}

fn int(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The value a mutation selector gives a field whose right value is `v`.
fn hostile(sel: u8, v: i64, arg: u8, prev: Option<&Value>) -> Value {
    let a = i64::from(arg);
    Value::Integer(match sel {
        0 => v.wrapping_add(1),
        1 => v.wrapping_sub(1),
        2 => 0,
        3 => -1,
        4 => i64::MAX,
        5 => i64::MIN,
        6 => 1 << 32,
        7 => 1 << 40,
        8 => 1 << 62,
        9 => v.wrapping_add(a + 1),
        10 => v.wrapping_sub(a + 1),
        11 => (64 << 20) + 1,
        12 => (4 << 20) + 1 + a,
        13 => (8 << 20) + 1,
        14 => return Value::Null,
        15 => return Value::Text(v.to_string()),
        16 => return Value::Text("abc".into()),
        17 => return Value::Real(v as f64),
        18 => return Value::Real(v as f64 + 0.5),
        19 => return Value::Blob(v.to_le_bytes().to_vec()),
        20 => 2,
        21 => v.saturating_mul(2),
        22 => return prev.cloned().unwrap_or(Value::Integer(v)),
        23 => i64::MAX - a,
        24 => a,
        25 => a << 8,
        26 => return Value::Text(String::new()),
        27 => return Value::Text(format!(" {v}")),
        28 => return Value::Real(1e300),
        29 => -(a + 2),
        30 => i64::from(u32::MAX) + a,
        _ => v,
    })
}

/// A key text `how` malforms (key mode 7).
fn malformed(key: &str, how: u8, content: &[u8], hash: HashType) -> Value {
    Value::Text(match how % 10 {
        0 => key[..key.len() - 1].to_string(),
        1 => format!("{key}0"),
        2 => format!("g{}", &key[1..]),
        3 => format!("{key} "),
        4 => String::new(),
        5 => {
            let other = match hash {
                HashType::Sha1 => HashType::Sha256,
                _ => HashType::Sha1,
            };
            other.key_of(content).hex().as_str().to_string()
        }
        6 => return Value::Integer(-1),
        7 => return Value::Blob(key.as_bytes().to_vec()),
        8 => format!(" {key}"),
        _ => {
            let mut k = key.to_string();
            k.replace_range(..1, &key[..1].to_ascii_uppercase());
            k
        }
    })
}

/// The pack files' bytes (`None`: no file) and the rows the input describes.
fn build(input: &IndexRowsInput, hash: HashType) -> ([Option<Vec<u8>>; 4], Vec<Row>) {
    let mut packs: [Option<Vec<u8>>; 4] = [None, None, None, None];
    let mut rows: Vec<Row> = Vec::new();
    let mut prev_key: Option<String> = None;
    for r in &input.records {
        let IndexRecord {
            slot,
            compress,
            hole,
            mutation,
            key_mode,
            key_arg,
            content,
        } = r;
        let slot = usize::from(*slot & 3);
        let stored = if *compress {
            zlib(content)
        } else {
            content.clone()
        };
        let pack = packs[slot].get_or_insert_with(Vec::new);
        let offset = pack.len();
        pack.extend_from_slice(&stored);
        let key = hash.key_of(content).hex().as_str().to_string();
        if *hole {
            prev_key = Some(key);
            continue;
        }
        let hashkey = match key_mode {
            4 => Value::Text(key.to_ascii_uppercase()),
            5 => {
                let i = content.len() % key.len();
                let mut k = key.clone().into_bytes();
                k[i] = if k[i] == b'0' { b'1' } else { b'0' };
                Value::Text(String::from_utf8_lossy(&k).into_owned())
            }
            6 => Value::Text(prev_key.clone().unwrap_or_else(|| key.clone())),
            7 => malformed(&key, *key_arg, content, hash),
            _ => Value::Text(key.clone()),
        };
        prev_key = Some(key);
        let mut row = Row {
            id: Value::Null,
            hashkey,
            compressed: Value::Integer(i64::from(*compress)),
            size: Value::Integer(int(content.len())),
            offset: Value::Integer(int(offset)),
            length: Value::Integer(int(stored.len())),
            pack_id: Value::Integer(SLOT_IDS[slot]),
        };
        if let Some((field, sel, arg)) = *mutation {
            let prev = rows.last();
            let num = |v: &Value| match v {
                Value::Integer(i) => *i,
                _ => 0,
            };
            match field {
                0 => row.offset = hostile(sel, num(&row.offset), arg, prev.map(|p| &p.offset)),
                1 => row.length = hostile(sel, num(&row.length), arg, prev.map(|p| &p.length)),
                2 => row.size = hostile(sel, num(&row.size), arg, prev.map(|p| &p.size)),
                3 => row.pack_id = hostile(sel, num(&row.pack_id), arg, prev.map(|p| &p.pack_id)),
                4 => {
                    row.compressed =
                        hostile(sel, num(&row.compressed), arg, prev.map(|p| &p.compressed))
                }
                5 => row.id = hostile(sel, int(rows.len() + 1), arg, prev.map(|p| &p.id)),
                6 => {
                    row.hashkey = match hostile(sel, 0, arg, None) {
                        Value::Integer(_) => Value::Integer(i64::from(arg)),
                        other => other,
                    }
                }
                _ => {
                    // A sub-range (or an over-range) of the object.
                    let a = i64::from(arg);
                    row.offset = Value::Integer(num(&row.offset).wrapping_add(a));
                    row.length = Value::Integer(num(&row.length).wrapping_sub(a));
                    if sel & 1 == 0 {
                        row.size = row.length.clone();
                    }
                }
            }
        }
        rows.push(row);
    }
    (packs, rows)
}

/// Read a streamed object whole (bounded): `None` if reading fails.
fn read_stream(r: &mut dyn Read, size: u64) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    r.take(size.saturating_add(1).min(READ_CAP))
        .read_to_end(&mut v)
        .ok()?;
    Some(v)
}

/// The keys a validation report names as bad (what it says about the content of objects).
fn bad_keys(r: &ValidationReport) -> BTreeSet<String> {
    r.invalid_hashes_packed
        .iter()
        .chain(&r.invalid_sizes_packed)
        .chain(&r.invalid_hashes_loose)
        .cloned()
        .chain(r.unreadable_packed.iter().map(|p| p.key.clone()))
        .collect()
}

/// A hostile `packs.idx`: rows with hostile values (negative and huge offsets, lengths, sizes
/// and pack ids, missing packs, compressed flags of 2, malformed, upper-case and duplicated
/// keys, text, reals, blobs and NULLs where the schema lets SQLite store them) over a few packs
/// of real objects (see [`IndexRowsInput`]).
///
/// Opening, listing, counting, single, streamed and bulk reads and `validate` never panic, and:
/// reads agree with each other and with the sizes reported; an object that reads and that
/// `validate` does not name as bad hashes to its key; when `validate` finds no error, every
/// listed object reads and hashes to its key. With flag bit 0, `repack` runs too: every object
/// that read before reads the same bytes after (whether repack succeeded or failed), and a
/// valid container stays valid.
pub fn index_rows(data: &[u8]) {
    let input = IndexRowsInput::decode(data);
    scratch::serial(|| {
        PREPARED.with(|p| {
            let mut p = p.borrow_mut();
            if p.is_none() {
                *p = Prepared::create();
            }
            let Some(prep) = p.as_mut() else { return };
            let root = &mut prep.roots[usize::from(input.flags & 0x10 != 0)];
            if root.write(&input).is_err() {
                return;
            }
            check(&root.root, &input);
        })
    });
}

thread_local! {
    static PREPARED: RefCell<Option<Prepared>> = const { RefCell::new(None) };
}

fn check(root: &Path, input: &IndexRowsInput) {
    let Ok(c) = Container::open_with(root, io()) else {
        return;
    };
    let hash = c.hash_type();
    let listed = c.list_all_objects().unwrap_or_default();
    let _ = c.count_objects();
    let _ = c.get_total_size();
    let _ = c.pack_stats();

    // Single reads, metadata and streams agree.
    let mut reads: BTreeMap<ObjectKey, Vec<u8>> = BTreeMap::new();
    for k in &listed {
        let Ok(content) = c.get_object_content(k) else {
            let _ = c.get_object_meta(k);
            continue;
        };
        let len = content.len() as u64;
        match c.get_object_meta(k) {
            Ok(m) => assert_eq!(m.size, Some(len), "{k}: meta {m:?}, content of {len} bytes"),
            Err(e) => panic!("{k} reads ({len} bytes) but its meta fails: {e}"),
        }
        match c.open_object(k) {
            Ok((mut r, m)) => {
                assert_eq!(m.size, Some(len), "{k}: streamed meta {m:?}");
                match read_stream(&mut r, len) {
                    Some(s) => assert!(s == content, "{k}: the stream differs from the content"),
                    None => panic!("{k} reads whole but its stream fails"),
                }
            }
            Err(e) => panic!("{k} reads whole but cannot be opened: {e}"),
        }
        reads.insert(*k, content);
    }
    if let Ok(metas) = c.get_objects_meta(&listed) {
        for (k, m) in listed.iter().zip(metas) {
            if let Some(content) = reads.get(k) {
                assert_eq!(m.size, Some(content.len() as u64), "{k}: bulk meta {m:?}");
            }
        }
    }

    // Bulk reads deliver each object once, as single reads do.
    let mut delivered: BTreeSet<ObjectKey> = BTreeSet::new();
    let bulk = c.read_objects(&listed, |k, content, meta| {
        assert!(delivered.insert(k), "{k} delivered twice");
        let bytes = match content {
            ObjectContent::Bytes(b) => Some(b.to_vec()),
            ObjectContent::Reader(r) => read_stream(r, meta.size.unwrap_or(0)),
        };
        if let (Some(b), Some(single)) = (bytes, reads.get(&k)) {
            assert!(b == *single, "{k}: bulk read differs from the single read");
        }
        Ok(())
    });
    if let Ok(missing) = bulk {
        for k in &listed {
            assert!(
                delivered.contains(k) || missing.contains(k),
                "{k} neither delivered nor missing"
            );
        }
        for k in &missing {
            assert!(
                !reads.contains_key(k),
                "{k} reads but bulk calls it missing"
            );
        }
    }

    // What validate does not name as bad is what it claims.
    let vopts = ValidateOptions {
        map_packs: input.options & 1 == 0,
        max_rows_in_memory: if input.options & 2 != 0 {
            0
        } else {
            ValidateOptions::default().max_rows_in_memory
        },
        // Runs of 1 to 3 rows, several runs to merge out of a few rows, or one run held in
        // memory. (The default, a million rows, only costs its allocations here.)
        sort_run_rows: [1, 2, 3, 1 << 10][usize::from((input.options >> 3) & 3)],
        ..ValidateOptions::default()
    };
    let report = c.validate(&vopts, &NoProgress);
    let mut valid = false;
    if let Ok(r) = &report {
        let bad = bad_keys(r);
        for (k, content) in &reads {
            if !bad.contains(k.hex().as_str()) {
                assert_eq!(
                    hash.key_of(content),
                    *k,
                    "validate passes {k}, which reads other content ({r:?})"
                );
            }
        }
        if r.is_valid() {
            valid = true;
            for k in &listed {
                assert!(
                    reads.contains_key(k),
                    "{k} unreadable in a container validate finds valid ({r:?})"
                );
            }
        }
    }

    if input.flags & 1 == 0 {
        return;
    }
    let opts = RepackOptions {
        compress: match (input.flags >> 1) & 3 {
            0 => RepackCompress::Keep,
            1 => RepackCompress::No,
            2 => RepackCompress::Yes,
            _ => RepackCompress::Auto,
        },
        force: input.flags & 8 != 0,
        recode: input.flags & 0x20 != 0,
        only_pack: (input.options & 4 != 0).then_some(0),
        empty_pack_min_age: Some(Duration::ZERO),
        ..RepackOptions::default()
    };
    let res = c.repack(&opts, &NoProgress);
    for (k, before) in &reads {
        match c.get_object_content(k) {
            Ok(after) => assert!(
                after == *before,
                "{k} reads other bytes after repack ({opts:?}: {res:?})"
            ),
            Err(e) => panic!("{k} read before repack ({opts:?}: {res:?}) but not after: {e}"),
        }
    }
    if valid {
        match c.validate(&ValidateOptions::default(), &NoProgress) {
            Ok(r) => assert!(r.is_valid(), "repack ({opts:?}: {res:?}) broke: {r:?}"),
            Err(e) => panic!("validate fails after repack ({opts:?}: {res:?}): {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reused compressor writes what a new encoder writes.
    #[test]
    fn zlib_as_encoder() {
        let mut big = Vec::new();
        let mut x: u32 = 1;
        for i in 0..300_000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            big.push(if i % 7 == 0 { (x >> 16) as u8 } else { b'a' });
        }
        for data in [&b""[..], b"x", b"hello hello hello", &big] {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(1));
            e.write_all(data).unwrap();
            let want = e.finish().unwrap();
            // Twice: the second time on a reset compressor.
            assert_eq!(super::zlib(data), want);
            assert_eq!(super::zlib(data), want);
        }
    }
}
