//! Interoperability with the real Python disk-objectstore 1.5, in both directions.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;

use common::{Manifest, py, random_objects, read_manifest, sha256_hex, write_manifest};
use dos_core::{
    CompressMode, Container, HashType, InitOptions, ObjectContent, ObjectType, PackWriteOptions,
    ZlibLevel,
};

/// How dos fills a container for Python to read.
#[derive(Debug, Clone, Copy)]
enum Fill {
    Loose,
    Packed,
    Compressed,
    Auto,
    /// Half packed (compressed) and also loose, half loose only.
    Both,
}

/// One container dos writes for Python to check.
struct Case {
    name: &'static str,
    hash_type: HashType,
    prefix: usize,
    pack_size_target: u64,
    level: u32,
    fill: Fill,
}

fn dos_container(dir: &Path, case: &Case, seed: u64) -> (std::path::PathBuf, Manifest) {
    let Case {
        name,
        hash_type,
        prefix,
        pack_size_target,
        level,
        fill,
    } = *case;
    let path = dir.join(name);
    let c = Container::init(
        &path,
        &InitOptions {
            pack_size_target,
            loose_prefix_len: prefix,
            hash_type,
            compression: ZlibLevel::new(level).unwrap().into(),
        },
    )
    .unwrap();
    let objects = random_objects(seed, 150, 2);
    let mut m = Manifest::new();
    for o in &objects {
        m.insert(
            hash_type.key_of(o).to_string(),
            (o.len() as u64, sha256_hex(o)),
        );
    }
    let pack = |objs: Vec<Vec<u8>>, compress| {
        c.add_objects_to_pack(
            objs,
            &PackWriteOptions {
                compress,
                ..PackWriteOptions::default()
            },
        )
        .unwrap()
    };
    match fill {
        Fill::Loose => {
            for o in &objects {
                c.add_object(o).unwrap();
            }
        }
        Fill::Packed => {
            pack(objects.clone(), CompressMode::No);
        }
        Fill::Compressed => {
            pack(objects.clone(), CompressMode::Yes);
        }
        Fill::Auto => {
            pack(objects.clone(), CompressMode::Auto);
        }
        Fill::Both => {
            let half = objects.len() / 2;
            pack(objects[..half].to_vec(), CompressMode::Yes);
            for o in &objects {
                c.add_object(o).unwrap();
            }
        }
    }
    write_manifest(&path, &m);
    (path, m)
}

/// Check a container with dos: exact listing, byte-exact single and bulk reads.
fn dos_verify(path: &Path, m: &Manifest) {
    let c = Container::open(path).unwrap();
    let listed: Vec<String> = c
        .list_all_objects()
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        listed,
        m.keys().cloned().collect::<Vec<_>>(),
        "{}",
        path.display()
    );
    let keys: Vec<dos_core::ObjectKey> = m.keys().map(|k| k.parse().unwrap()).collect();
    let mut seen = 0;
    let missing = c
        .read_objects(&keys, |k, content, meta| {
            let data = match content {
                ObjectContent::Bytes(b) => b.to_vec(),
                ObjectContent::Reader(r) => {
                    let mut v = Vec::new();
                    std::io::Read::read_to_end(r, &mut v).unwrap();
                    v
                }
            };
            let (size, digest) = &m[&k.to_string()];
            assert_eq!(
                (data.len() as u64, &sha256_hex(&data)),
                (*size, digest),
                "{k}"
            );
            assert_eq!(meta.size, Some(*size));
            seen += 1;
            Ok(())
        })
        .unwrap();
    assert!(missing.is_empty(), "{missing:?}");
    assert_eq!(seen, m.len());
    for k in keys.iter().step_by(7) {
        let data = c.get_object_content(k).unwrap();
        assert_eq!(sha256_hex(&data), m[&k.to_string()].1);
    }
    assert!(c.has_objects(&keys).unwrap().iter().all(|b| *b));
}

#[test]
fn python_reads_and_validates_dos_containers() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        ("loose-p0", HashType::Sha256, 0, 1 << 32, 1, Fill::Loose),
        ("loose-p3-sha1", HashType::Sha1, 3, 1 << 32, 1, Fill::Loose),
        ("packed", HashType::Sha256, 2, 1 << 32, 1, Fill::Packed),
        ("packed-many", HashType::Sha256, 2, 300_000, 1, Fill::Packed),
        (
            "compressed-z9-many",
            HashType::Sha256,
            2,
            300_000,
            9,
            Fill::Compressed,
        ),
        (
            "compressed-sha1",
            HashType::Sha1,
            0,
            1 << 32,
            1,
            Fill::Compressed,
        ),
        ("auto", HashType::Sha256, 3, 1 << 32, 6, Fill::Auto),
        ("both", HashType::Sha256, 2, 1 << 32, 1, Fill::Both),
        ("both-sha1-p3", HashType::Sha1, 3, 500_000, 1, Fill::Both),
    ];
    for (i, (name, hash_type, prefix, pack_size_target, level, fill)) in
        cases.into_iter().enumerate()
    {
        let case = Case {
            name,
            hash_type,
            prefix,
            pack_size_target,
            level,
            fill,
        };
        let (path, m) = dos_container(d.path(), &case, i as u64);
        let manifest = format!("{}.manifest.json", path.display());
        let out = py(&["verify", path.to_str().unwrap(), &manifest]);
        assert_eq!(out["objects"], m.len(), "{name}: {out}");
        // Python's counts agree with ours.
        let c = Container::open(&path).unwrap();
        let count = c.count_objects().unwrap();
        assert_eq!(out["packed"], count.packed, "{name}");
        assert_eq!(out["loose"], count.loose, "{name}");
        assert_eq!(out["pack_files"], count.pack_files, "{name}");
        if name.ends_with("many") {
            assert!(count.pack_files > 2, "{name}: {count:?}");
        }
    }
}

#[test]
fn dos_reads_python_containers() {
    let d = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str]); 12] = [
        ("loose", &["--prefix", "2"]),
        ("loose", &["--prefix", "0"]),
        ("loose", &["--prefix", "3", "--hash", "sha1"]),
        ("packed", &[]),
        ("packed-many", &[]),
        ("compressed", &["--algo", "zlib+9"]),
        ("compressed-many", &[]),
        ("auto", &[]),
        ("both", &[]),
        ("holes", &[]),
        ("legacy-schema", &[]),
        ("compressed", &["--hash", "sha1", "--prefix", "0"]),
    ];
    for (i, (scenario, extra)) in cases.into_iter().enumerate() {
        let path = d.path().join(format!("{i}-{scenario}"));
        let seed = (100 + i).to_string();
        let mut args = vec!["make", path.to_str().unwrap(), scenario, &seed];
        args.extend_from_slice(extra);
        py(&args);
        let m = read_manifest(&path);
        dos_verify(&path, &m);
        let c = Container::open(&path).unwrap();
        if scenario == "both" {
            let both = c
                .list_loose()
                .unwrap()
                .iter()
                .filter(|k| c.get_object_meta(k).unwrap().kind == ObjectType::Packed)
                .count();
            assert!(
                both > 10,
                "{scenario}: {both} objects both loose and packed"
            );
        }
        if scenario == "holes" {
            let t = c.get_total_size().unwrap();
            assert!(t.total_size_packfiles_on_disk > t.total_size_packed_on_disk);
        }
    }
}

#[test]
fn mixed_writers_on_one_container() {
    let d = tempfile::tempdir().unwrap();
    // Python creates (with the legacy schema), dos appends, Python appends, both verify.
    let path = d.path().join("mixed");
    py(&["make", path.to_str().unwrap(), "legacy-schema", "7"]);
    let mut m = read_manifest(&path);
    {
        let c = Container::open(&path).unwrap();
        let objs = random_objects(77, 60, 1);
        let (a, b) = objs.split_at(30);
        for o in a {
            c.add_object(o).unwrap();
        }
        c.add_objects_to_pack(
            b.to_vec(),
            &PackWriteOptions {
                compress: CompressMode::Yes,
                ..PackWriteOptions::default()
            },
        )
        .unwrap();
        for o in &objs {
            m.insert(sha256_hex(o), (o.len() as u64, sha256_hex(o)));
        }
    }
    let manifest = write_manifest(&path, &m);
    py(&["verify", path.to_str().unwrap(), manifest.to_str().unwrap()]);
    py(&["append", path.to_str().unwrap(), "8"]);
    let m = read_manifest(&path);
    dos_verify(&path, &m);
    py(&["verify", path.to_str().unwrap(), manifest.to_str().unwrap()]);
}

fn dos_ok(container: &Path, args: &[&str]) {
    let out = common::dos()
        .arg("-q")
        .arg("-p")
        .arg(container)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dos {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Maintenance by dos on Python containers, and by Python on dos-maintained containers, keeps
/// both sides valid and every object byte-exact.
#[test]
fn maintenance_on_both_sides() {
    let d = tempfile::tempdir().unwrap();
    for (i, scenario) in ["holes", "both", "legacy-schema", "compressed-many"]
        .iter()
        .enumerate()
    {
        let path = d.path().join(format!("{i}-{scenario}"));
        let ps = path.to_str().unwrap();
        let manifest = format!("{ps}.manifest.json");
        py(&["make", ps, scenario, &(300 + i).to_string()]);
        // dos maintains a Python container.
        dos_ok(&path, &["pack", "--clean-loose", "--compress", "auto"]);
        dos_ok(&path, &["repack"]);
        dos_ok(&path, &["clean", "--vacuum"]);
        py(&["verify", ps, &manifest]);
        dos_verify(&path, &read_manifest(&path));
        // Python deletes and maintains what dos maintained; dos reads the result.
        py(&["delete", ps, "7"]);
        py(&["maintain", ps, if i % 2 == 0 { "repack" } else { "full" }]);
        dos_verify(&path, &read_manifest(&path));
        dos_ok(&path, &["validate"]);
        // And back: dos optimizes with recompression, Python checks.
        dos_ok(&path, &["optimize", "--repack-compress", "yes"]);
        py(&["verify", ps, &manifest]);
        py(&["maintain", ps, "repack-yes"]);
        dos_verify(&path, &read_manifest(&path));
    }
    // dos-written containers maintained by Python first.
    let (path, m) = dos_container(
        d.path(),
        &Case {
            name: "dos-then-python",
            hash_type: HashType::Sha256,
            prefix: 2,
            pack_size_target: 300_000,
            level: 1,
            fill: Fill::Both,
        },
        99,
    );
    let ps = path.to_str().unwrap();
    py(&["maintain", ps, "pack-auto-clean"]);
    py(&["maintain", ps, "clean"]);
    dos_verify(&path, &m);
    dos_ok(&path, &["validate"]);
}
