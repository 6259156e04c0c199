//! zstd containers (`compression_algorithm = "zstd+N"`): every way of writing compressed objects
//! round-trips byte-exact (in memory and streamed, loose then packed, straight to packs, repack),
//! seeks inside compressed objects match a model, Python disk-objectstore refuses to read the
//! compressed objects (never returns wrong bytes), and `repack --compression` converts a
//! container both ways, after which Python validates the zlib one.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use common::{Manifest, dos, py, random_objects, sha256_hex, write_manifest};
use dos_core::{Container, ObjectContent};

fn ok(c: &Path, args: &[&str]) -> String {
    let out = dos().arg("-p").arg(c).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "dos {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Objects of every kind, plus a large text (streamed by writers and repack) and a large random
/// one; written to files under `dir`.
fn objects(dir: &Path, seed: u64) -> (Vec<String>, Manifest) {
    let mut objs = random_objects(seed, 40, 1);
    objs.push(
        b"step 17 forces 0.0031 -0.22 1.5e-3\n"
            .iter()
            .copied()
            .cycle()
            .take(12_500_000)
            .collect(),
    );
    let src = dir.join(format!("src{seed}"));
    fs::create_dir_all(&src).unwrap();
    let mut files = Vec::new();
    let mut m = Manifest::new();
    for (i, body) in objs.iter().enumerate() {
        let p = src.join(format!("f{i}"));
        fs::write(&p, body).unwrap();
        m.insert(sha256_hex(body), (body.len() as u64, sha256_hex(body)));
        files.push(p.display().to_string());
    }
    (files, m)
}

/// Every object reads back byte-exact, whole and through a stream with seeks.
fn check(c: &Path, m: &Manifest, what: &str) {
    let container = Container::open(c).unwrap();
    let keys: Vec<_> = m.keys().map(|k| common::key(k)).collect();
    let mut n = 0;
    let missing = container
        .read_objects(&keys, |k, content, _| {
            let data = match content {
                ObjectContent::Bytes(b) => b.to_vec(),
                ObjectContent::Reader(r) => {
                    let mut v = Vec::new();
                    r.read_to_end(&mut v).unwrap();
                    v
                }
            };
            assert_eq!(sha256_hex(&data), k.to_string(), "{what}: bulk read");
            n += 1;
            Ok(())
        })
        .unwrap();
    assert!(missing.is_empty(), "{what}: missing {missing:?}");
    assert_eq!(n, m.len());
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for k in &keys {
        let whole = container.get_object_content(k).unwrap();
        assert_eq!(sha256_hex(&whole), k.to_string(), "{what}: single read");
        if whole.len() < 1000 {
            continue;
        }
        // Seeks forwards and backwards against the content as a model.
        let (mut r, _) = container.open_object(k).unwrap();
        for _ in 0..12 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = (x % whole.len() as u64) as usize;
            let len = ((x >> 32) % 5000) as usize;
            r.seek(SeekFrom::Start(at as u64)).unwrap();
            let mut buf = vec![0u8; len];
            let got = r.read(&mut buf).unwrap();
            let want = &whole[at..(at + len).min(whole.len())];
            assert!(got > 0 || want.is_empty(), "{what}: empty read at {at}");
            assert_eq!(
                &buf[..got],
                &want[..got],
                "{what}: read at {at} after a seek"
            );
        }
    }
    let report: serde_json::Value = serde_json::from_str(&ok(c, &["validate", "--json"])).unwrap();
    for k in [
        "invalid_hashes_loose",
        "invalid_hashes_packed",
        "invalid_sizes_packed",
        "unreadable_packed",
        "overlapping_packed",
    ] {
        assert_eq!(report[k], serde_json::json!([]), "{what}: {report}");
    }
    assert_eq!(
        report["objects_checked"],
        serde_json::json!(m.len()),
        "{what}"
    );
}

fn status(c: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(c, &["status", "--json"])).unwrap()
}

/// How many packed objects are stored in each coding.
fn codings(c: &Path) -> (usize, usize) {
    let conn = rusqlite::Connection::open(c.join("packs.idx")).unwrap();
    let mut stmt = conn
        .prepare("SELECT pack_id, \"offset\" FROM db_object WHERE compressed = 1 AND length >= 4")
        .unwrap();
    let rows: Vec<(i64, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let (mut zlib, mut zstd) = (0, 0);
    for (pack, off) in rows {
        let bytes = fs::read(c.join("packs").join(pack.to_string())).unwrap();
        if bytes[off as usize..off as usize + 4] == [0x28, 0xB5, 0x2F, 0xFD] {
            zstd += 1;
        } else {
            zlib += 1;
        }
    }
    (zlib, zstd)
}

#[test]
fn zstd_containers_round_trip_in_every_mode_and_python_refuses_them() {
    let _ = common::python();
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("c");
    ok(
        &c,
        &[
            "init",
            "--compression",
            "zstd+3",
            "--pack-size-target",
            "5000000",
        ],
    );
    assert_eq!(status(&c)["python_readable"], serde_json::json!(false));
    let mut all = Manifest::new();
    // Loose, then packed compressed.
    let (files, m) = objects(tmp.path(), 1);
    let mut a = vec!["add"];
    a.extend(files.iter().map(String::as_str));
    ok(&c, &a);
    ok(&c, &["pack", "--clean-loose", "--compress", "yes"]);
    all.extend(m);
    // Straight to packs, AUTO.
    let (files, m) = objects(tmp.path(), 2);
    let mut a = vec!["add", "--pack", "--compress=auto"];
    a.extend(files.iter().map(String::as_str));
    ok(&c, &a);
    all.extend(m);
    // Straight to packs, every object compressed.
    let (files, m) = objects(tmp.path(), 3);
    let mut a = vec!["add", "--pack", "--compress=yes"];
    a.extend(files.iter().map(String::as_str));
    ok(&c, &a);
    all.extend(m);
    check(&c, &all, "zstd container");
    let (zlib, zstd) = codings(&c);
    assert_eq!(zlib, 0, "zlib objects in a zstd container");
    assert!(zstd > 50, "only {zstd} zstd objects");
    // A repack that decompresses and recompresses keeps everything.
    ok(&c, &["repack", "--compress", "no", "--force"]);
    check(&c, &all, "after repack --compress no");
    ok(&c, &["repack", "--compress", "auto", "--force"]);
    check(&c, &all, "after repack --compress auto");
    assert!(codings(&c).1 > 0);
    // Python never returns wrong bytes, and refuses the compressed ones.
    let manifest = write_manifest(&c, &all);
    let r = py(&["refuses", c.to_str().unwrap(), manifest.to_str().unwrap()]);
    assert!(r["refused"].as_u64().unwrap() > 0, "{r}");
}

/// An archive's deflated entries are passed through into a zlib container and coded anew as
/// zstd into a zstd one; both read back byte-exact, with seeks.
#[test]
fn import_archive_transcodes_into_zstd_and_passes_through_into_zlib() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("plain.aiida");
    let m = common::archive_objects(&common::make_archive("plain", &archive));
    for (algo, want_zstd) in [("zlib+1", false), ("zstd+3", true)] {
        let c = tmp.path().join(algo);
        ok(&c, &["init", "--compression", algo]);
        let out: serde_json::Value = serde_json::from_str(&ok(
            &c,
            &[
                "import-archive",
                "--compress",
                "yes",
                "--json",
                archive.to_str().unwrap(),
            ],
        ))
        .unwrap();
        check(&c, &m, algo);
        let (zlib, zstd) = codings(&c);
        if want_zstd {
            assert_eq!((zlib, out["passthrough"].as_u64()), (0, Some(0)), "{out}");
            assert!(zstd > 10, "{zstd}");
        } else {
            assert_eq!(zstd, 0);
            assert!(out["passthrough"].as_u64().unwrap() > 10, "{out}");
        }
    }
    // Export from the zstd container (its objects decoded, deflated into the zip), then import
    // into a fresh zlib container: the same objects, byte-exact.
    let db = tmp.path().join("db.sqlite3");
    let x = std::process::Command::new(common::python())
        .args([
            "-c",
            "import sys, zipfile; open(sys.argv[2], 'wb').write(zipfile.ZipFile(sys.argv[1]).read('db.sqlite3'))",
        ])
        .arg(&archive)
        .arg(&db)
        .output()
        .unwrap();
    assert!(x.status.success(), "{}", String::from_utf8_lossy(&x.stderr));
    let exported = tmp.path().join("exported.aiida");
    ok(
        &tmp.path().join("zstd+3"),
        &[
            "export-archive",
            exported.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--metadata-from",
            archive.to_str().unwrap(),
        ],
    );
    let back = tmp.path().join("back");
    ok(&back, &["init"]);
    ok(&back, &["import-archive", exported.to_str().unwrap()]);
    let referenced: Manifest = {
        let c = Container::open(&back).unwrap();
        c.list_all_objects()
            .unwrap()
            .into_iter()
            .map(|k| (k.to_string(), m[&k.to_string()].clone()))
            .collect()
    };
    assert!(referenced.len() > 10, "{}", referenced.len());
    check(&back, &referenced, "exported from zstd and imported");
}

#[test]
fn repack_converts_between_zlib_and_zstd_and_python_reads_the_zlib_one() {
    let _ = common::python();
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("c");
    ok(&c, &["init", "--pack-size-target", "5000000"]);
    let (files, all) = objects(tmp.path(), 4);
    let mut a = vec!["add", "--pack", "--compress=yes"];
    a.extend(files.iter().map(String::as_str));
    ok(&c, &a);
    let manifest = write_manifest(&c, &all);
    py(&["verify", c.to_str().unwrap(), manifest.to_str().unwrap()]);
    let before = codings(&c);
    assert_eq!(before.1, 0);

    ok(&c, &["repack", "--compression", "zstd+3"]);
    let st = status(&c);
    assert_eq!(st["compression"], "zstd+3");
    assert_eq!(st["python_readable"], serde_json::json!(false));
    assert_eq!(st["unfinished_conversion"], serde_json::Value::Null);
    assert_eq!(codings(&c), (0, before.0), "every zlib object became zstd");
    check(&c, &all, "converted to zstd");
    // New objects are written in zstd.
    let (files, m) = objects(tmp.path(), 5);
    let mut a = vec!["add", "--pack", "--compress=yes"];
    a.extend(files.iter().map(String::as_str));
    ok(&c, &a);
    let mut all = all;
    all.extend(m);
    assert_eq!(codings(&c).0, 0);

    ok(&c, &["repack", "--compression", "zlib+1"]);
    let st = status(&c);
    assert_eq!(st["compression"], "zlib+1");
    assert_eq!(st["python_readable"], serde_json::json!(true));
    assert_eq!(codings(&c).1, 0, "every zstd object became zlib");
    check(&c, &all, "converted back to zlib");
    let manifest = write_manifest(&c, &all);
    py(&["verify", c.to_str().unwrap(), manifest.to_str().unwrap()]);
    // Converting to what it already is rewrites nothing.
    let out: serde_json::Value =
        serde_json::from_str(&ok(&c, &["repack", "--compression", "zlib+1", "--json"])).unwrap();
    assert_eq!(out["packs_rewritten"], serde_json::json!([]), "{out}");
}

#[test]
fn unknown_algorithms_are_refused_with_the_choices_named() {
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("c");
    for bad in ["zstd+0", "zstd+20", "lz4", "zlib+10"] {
        let out = dos()
            .arg("-p")
            .arg(&c)
            .args(["init", "--compression", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("zstd+1 .. zstd+19"), "{bad}: {err}");
        assert!(!c.exists());
    }
    ok(&c, &["init"]);
    let out = dos()
        .arg("-p")
        .arg(&c)
        .args(["repack", "--compression", "zstd+99"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(status(&c)["compression"], "zlib+1");
}
