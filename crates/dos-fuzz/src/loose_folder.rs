//! The `loose_folder` target: hostile contents of `loose/`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use dos_core::maintain::{PackLooseOptions, ValidateOptions};
use dos_core::write::WriteTuning;
use dos_core::{CompressMode, Container, HashType, InitOptions, NoProgress, ObjectKey};

use crate::config::io;
use crate::scratch;
use crate::seeds::{LooseFolderInput, LooseRecord};

/// Loose prefix lengths of flag bits 0-1.
const PREFIXES: [usize; 4] = [2, 0, 1, 3];

/// The container folder of this thread.
struct Prepared {
    root: PathBuf,
    /// A connection to `packs.idx` kept open (as an AiiDA process keeps it), which empties it
    /// before each run: dos's connections then find it in WAL mode, and closing them
    /// checkpoints nothing.
    conn: rusqlite::Connection,
    /// The `config.json` flags last written for.
    config_for: Option<u8>,
}

impl Prepared {
    fn create() -> Option<Self> {
        let root = scratch::new_dir("loose_folder").ok()?.join("c");
        drop(Container::init_with(&root, &InitOptions::default(), io()).ok()?);
        let conn = rusqlite::Connection::open(root.join("packs.idx")).ok()?;
        conn.execute_batch("PRAGMA synchronous=OFF").ok()?;
        Some(Self {
            root,
            conn,
            config_for: None,
        })
    }

    fn write(&mut self, input: &LooseFolderInput) -> io::Result<()> {
        let cfg = input.flags & (3 | 4 | 0x80);
        if self.config_for != Some(cfg) {
            let json = format!(
                "{{\"container_version\": 1, \"loose_prefix_len\": {}, \"pack_size_target\": \
                 {}, \"hash_type\": \"{}\", \"container_id\": \
                 \"0123456789abcdef0123456789abcdef\", \"compression_algorithm\": \"zlib+1\"}}",
                PREFIXES[usize::from(cfg & 3)],
                if cfg & 0x80 != 0 { 64 } else { 4u64 << 30 },
                if cfg & 4 != 0 { "sha1" } else { "sha256" },
            );
            fs::write(self.root.join("config.json"), json)?;
            self.config_for = Some(cfg);
        }
        for d in ["packs", "sandbox", "loose"] {
            scratch::reset_dir(&self.root.join(d))?;
        }
        self.conn
            .prepare_cached("DELETE FROM db_object")
            .and_then(|mut s| s.execute([]))
            .map_err(io::Error::other)?;
        let (prefix, hash) = settings(input);
        let loose = self.root.join("loose");
        let mut prev: Option<PathBuf> = None;
        for r in &input.records {
            // Entries that collide with earlier ones are simply not created.
            if let Some(p) = place(&loose, r, prefix, hash, prev.as_deref()) {
                prev = Some(p);
            }
        }
        Ok(())
    }
}

fn settings(input: &LooseFolderInput) -> (usize, HashType) {
    let hash = if input.flags & 4 != 0 {
        HashType::Sha1
    } else {
        HashType::Sha256
    };
    (PREFIXES[usize::from(input.flags & 3)], hash)
}

/// `name` split into the components of its path under `loose/` with a prefix of `p`.
fn shard(name: &str, p: usize) -> Vec<String> {
    if p == 0 || name.len() <= p || !name.is_char_boundary(p) {
        vec![name.to_string()]
    } else {
        vec![name[..p].to_string(), name[p..].to_string()]
    }
}

/// Create the entry of `r`; its path, if created.
fn place(
    loose: &Path,
    r: &LooseRecord,
    p: usize,
    hash: HashType,
    prev: Option<&Path>,
) -> Option<PathBuf> {
    let key = hash.key_of(&r.content).hex().as_str().to_string();
    let mut parts = match r.name_mode {
        2 => shard(&key, if p == 0 { 2 } else { p + 1 }),
        3 => shard(&key.to_ascii_uppercase(), p),
        4 => shard(&key[..key.len() - 1], p),
        5 => {
            let i = r.content.len() % key.len();
            let mut k = key.clone();
            k.replace_range(i..=i, "g");
            shard(&k, p)
        }
        6 => {
            let mut k = key.clone();
            let last = if k.ends_with('0') { "1" } else { "0" };
            k.replace_range(k.len() - 1.., last);
            shard(&k, p)
        }
        7 => {
            let mut parts = shard(&key, p);
            if let Some(last) = parts.last_mut() {
                last.insert(0, '.');
            }
            parts
        }
        _ => shard(&key, p),
    };
    if r.kind == 4
        && let Some(last) = parts.pop()
    {
        parts.extend(shard(&last, 2));
    }
    let mut path = loose.to_path_buf();
    for part in &parts {
        path.push(part);
    }
    let parent = path.parent()?.to_path_buf();
    match r.kind {
        6 if parts.len() >= 2 => {
            // A file where the shard folder should be.
            fs::write(&parent, &r.content).ok()?;
            return Some(parent);
        }
        _ => fs::create_dir_all(&parent).ok()?,
    }
    if fs::symlink_metadata(&path).is_ok() {
        return None;
    }
    match r.kind {
        3 => {
            fs::create_dir(&path).ok()?;
            fs::write(path.join("x"), &r.content).ok()?;
        }
        5 if prev.is_some() => std::os::unix::fs::symlink(prev?, &path).ok()?,
        7 => fs::write(&path, b"").ok()?,
        _ => fs::write(&path, &r.content).ok()?,
    }
    Some(path)
}

/// The keys a correct listing of `loose/` finds (any kind of entry with a key's name, at the
/// place of that key); `None` where dos must fail (a shard name that is not a folder).
fn reference_listing(loose: &Path, p: usize, hash: HashType) -> Option<BTreeSet<ObjectKey>> {
    let mut keys = BTreeSet::new();
    for e in fs::read_dir(loose).ok()? {
        let name = e.ok()?.file_name().into_string().ok();
        let Some(name) = name else { continue };
        if p == 0 {
            keys.extend(ObjectKey::from_canonical(hash, name.as_bytes()));
            continue;
        }
        if name.len() != p
            || !name
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            continue;
        }
        let dir = loose.join(&name);
        if !fs::symlink_metadata(&dir).ok()?.is_dir() {
            return None;
        }
        for f in fs::read_dir(&dir).ok()? {
            let Ok(rest) = f.ok()?.file_name().into_string() else {
                continue;
            };
            keys.extend(ObjectKey::from_canonical(
                hash,
                format!("{name}{rest}").as_bytes(),
            ));
        }
    }
    Some(keys)
}

/// Hostile contents of `loose/`: names that are keys, upper case, a digit short, not hex or
/// dot-files; sharded as configured or otherwise; files, folders, one folder level too many,
/// symlinks, files where shard folders go; contents that match their names or not (see
/// [`LooseFolderInput`]).
///
/// Listing finds exactly the well-formed names (or fails); `validate` names exactly the
/// readable objects whose content does not match; `pack_all_loose` never packs an object under
/// a name its content does not match, packs every matching one (when it succeeds), reports the
/// others as corrupt and leaves them loose, and removes the loose copies it packed when asked
/// to; afterwards every packed object reads and hashes to its key.
pub fn loose_folder(data: &[u8]) {
    let input = LooseFolderInput::decode(data);
    scratch::serial(|| {
        PREPARED.with(|p| {
            let mut p = p.borrow_mut();
            if p.is_none() {
                *p = Prepared::create();
            }
            let Some(prep) = p.as_mut() else { return };
            if prep.write(&input).is_err() {
                return;
            }
            check(&prep.root, &input);
        })
    });
}

thread_local! {
    static PREPARED: RefCell<Option<Prepared>> = const { RefCell::new(None) };
}

fn check(root: &Path, input: &LooseFolderInput) {
    let Ok(c) = Container::open_with(root, io()) else {
        return;
    };
    let (prefix, hash) = settings(input);
    let loose_dir = root.join("loose");
    let reference = reference_listing(&loose_dir, prefix, hash);
    let listed = c.list_loose();
    if let (Ok(l), Some(want)) = (&listed, &reference) {
        let got: BTreeSet<ObjectKey> = l.iter().copied().collect();
        assert_eq!(got.len(), l.len(), "a key listed twice: {l:?}");
        assert_eq!(&got, want, "listing of {input:?}");
    }
    if let (Ok(all), Ok(l)) = (c.list_all_objects(), &listed) {
        assert_eq!(
            &all, l,
            "an empty index, yet list_all_objects differs from list_loose"
        );
    }
    let keys = listed.unwrap_or_default();
    let _ = c.count_objects();
    let _ = c.get_total_size();

    let mut reads: BTreeMap<ObjectKey, Vec<u8>> = BTreeMap::new();
    for k in &keys {
        if let Ok(content) = c.get_object_content(k) {
            reads.insert(*k, content);
        }
    }
    let good: BTreeSet<ObjectKey> = reads
        .iter()
        .filter(|(k, v)| hash.key_of(v) == **k)
        .map(|(k, _)| *k)
        .collect();

    if let Ok(r) = c.validate(&ValidateOptions::default(), &NoProgress) {
        let invalid: BTreeSet<&str> = r.invalid_hashes_loose.iter().map(String::as_str).collect();
        for k in reads.keys() {
            assert_eq!(
                invalid.contains(k.hex().as_str()),
                !good.contains(k),
                "{k}: validate's verdict is wrong ({r:?})"
            );
        }
        if r.is_valid() {
            assert_eq!(reads.len(), keys.len(), "valid, yet not every object reads");
        }
    }

    let opts = PackLooseOptions {
        compress: match (input.flags >> 3) & 3 {
            1 => CompressMode::Yes,
            2 => CompressMode::Auto,
            _ => CompressMode::No,
        },
        clean_loose: input.flags & 0x20 != 0,
        tuning: WriteTuning {
            large_object: if input.flags & 0x40 != 0 { 16 } else { 1 << 20 },
            memory_budget: 1 << 20,
            ..WriteTuning::default()
        },
        ..PackLooseOptions::default()
    };
    let res = c.pack_all_loose(&opts, &NoProgress);

    // Whatever happened, every packed object is what its key says.
    let mut packed: BTreeSet<ObjectKey> = BTreeSet::new();
    if let Ok(stats) = c.pack_stats() {
        for s in stats {
            let Ok(rows) = c.rows_in_pack(s.pack_id) else {
                continue;
            };
            for row in rows {
                let Some(k) = ObjectKey::from_canonical(hash, row.key.as_bytes()) else {
                    panic!("pack_all_loose wrote the malformed key {:?}", row.key);
                };
                match c.get_object_content(&k) {
                    Ok(content) => assert_eq!(
                        hash.key_of(&content),
                        k,
                        "packed under a name its content does not match ({res:?})"
                    ),
                    Err(e) => panic!("{k} packed but unreadable ({res:?}): {e}"),
                }
                packed.insert(k);
            }
        }
    }
    for k in reads.keys() {
        if !good.contains(k) {
            assert!(
                !packed.contains(k),
                "{k} does not match its name, yet packed"
            );
        }
    }
    let Ok(summary) = res else { return };
    for k in &good {
        assert!(
            packed.contains(k),
            "{k} matches its name, yet not packed: {summary:?}"
        );
        if opts.clean_loose {
            assert!(
                fs::symlink_metadata(c.loose_path(k)).is_err(),
                "{k} packed with clean_loose, yet still loose"
            );
        }
    }
    for bad in &summary.corrupt {
        assert!(
            !packed.contains(&bad.key),
            "{} reported corrupt, yet packed",
            bad.key
        );
        assert!(
            fs::symlink_metadata(c.loose_path(&bad.key)).is_ok(),
            "{} reported corrupt, yet its loose file is gone",
            bad.key
        );
    }
    for k in reads.keys().filter(|k| !good.contains(k)) {
        assert!(
            summary.corrupt.iter().any(|b| b.key == *k),
            "{k} does not match its name, yet not reported corrupt: {summary:?}"
        );
    }
    if let Ok(r) = c.validate(&ValidateOptions::default(), &NoProgress) {
        assert!(
            r.invalid_hashes_packed.is_empty()
                && r.invalid_sizes_packed.is_empty()
                && r.overlapping_packed.is_empty()
                && r.unreadable_packed.is_empty()
                && r.missing_packs.is_empty(),
            "packs written by pack_all_loose are not valid: {r:?}"
        );
    }
}
