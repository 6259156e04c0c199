//! Archive import, info and export on archives built by CPython's zipfile (as aiida-core writes
//! them) and on crafted hostile ones. The container must stay exactly as valid as before, and
//! nothing bad may become visible.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use dos_archive::{ArchiveError, ImportOptions, import_archive};
use dos_core::maintain::ValidateOptions;
use dos_core::write::{PackWriteOptions, WriteTuning};
use dos_core::{CompressMode, Container, InitOptions, NoProgress, ObjectKey};
use sha2::Digest;

fn python() -> PathBuf {
    let p = std::env::var_os("DOS_TEST_PYTHON").unwrap_or_else(|| {
        panic!(
            "DOS_TEST_PYTHON is not set: these tests build archives with Python's zipfile and \
             check containers with disk-objectstore. Run ./scripts/test.sh (it creates .venv)."
        )
    });
    PathBuf::from(p)
}

struct Made {
    objects: BTreeMap<String, (u64, String)>,
    bad: Vec<String>,
    ignored: u64,
}

fn make(dir: &Path, scenario: &str) -> (PathBuf, Made) {
    let out = dir.join(format!("{scenario}.aiida"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/make_archive.py");
    let o = Command::new(python())
        .arg(script)
        .arg(scenario)
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let objects = serde_json::from_value(v["objects"].clone()).unwrap();
    let bad = serde_json::from_value(v["bad"].clone()).unwrap();
    let ignored = v["ignored"].as_u64().unwrap();
    (
        out,
        Made {
            objects,
            bad,
            ignored,
        },
    )
}

fn sha(d: &[u8]) -> String {
    dos_core::hashing::to_hex(&sha2::Sha256::digest(d))
}

fn key(k: &str) -> ObjectKey {
    k.parse().unwrap()
}

fn container(dir: &Path) -> Container {
    Container::init(&dir.join("c"), &InitOptions::default()).unwrap()
}

/// Small pipeline limits so that the 1.5 MB object takes the streaming paths.
fn opts(compress: CompressMode) -> ImportOptions {
    ImportOptions {
        compress,
        tuning: WriteTuning {
            large_object: 256 * 1024,
            memory_budget: 4 << 20,
            batch_objects: 20,
            ..WriteTuning::default()
        },
        ..ImportOptions::default()
    }
}

fn check_exact(c: &Container, objects: &BTreeMap<String, (u64, String)>) {
    let listed: Vec<String> = c
        .list_all_objects()
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(listed, objects.keys().cloned().collect::<Vec<_>>());
    for (k, (size, digest)) in objects {
        let d = c.get_object_content(&key(k)).unwrap();
        assert_eq!((d.len() as u64, sha(&d)), (*size, digest.clone()), "{k}");
    }
    let r = c
        .validate(&ValidateOptions::default(), &NoProgress)
        .unwrap();
    assert!(r.is_valid(), "{r:?}");
}

fn python_validates(c: &Container) {
    let code = "import sys\nfrom disk_objectstore import Container\nwith Container(sys.argv[1]) as c:\n    \
                issues = c.validate()\n    assert issues.is_valid(), issues\n    \
                with c.get_objects_stream_and_meta(list(c.list_all_objects())) as it:\n        \
                for k, s, m in it:\n            assert s.read() is not None\n";
    let o = Command::new(python())
        .args(["-c", code])
        .arg(c.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "python: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn aiida_like_archives_import_byte_exact_in_every_mode() {
    for scenario in [
        "plain",
        "stored",
        "descriptors",
        "force-zip64",
        "long-extra",
        "foreign",
    ] {
        for compress in [CompressMode::No, CompressMode::Yes, CompressMode::Auto] {
            let d = tempfile::tempdir().unwrap();
            let (a, made) = make(d.path(), scenario);
            let c = container(d.path());
            let s = import_archive(&c, &a, &opts(compress), &NoProgress).unwrap();
            let what = format!("{scenario} {compress:?}");
            assert!(s.bad_entries.is_empty(), "{what}: {:?}", s.bad_entries);
            assert_eq!(s.imported as usize, made.objects.len(), "{what}");
            assert_eq!(s.ignored_entries, made.ignored, "{what}");
            if compress == CompressMode::Yes && scenario != "stored" {
                // Deflated entries go in as they are (the empty one is stored raw).
                assert!(
                    s.passthrough as usize >= made.objects.len() - 1,
                    "{what}: {s:?}"
                );
            }
            check_exact(&c, &made.objects);
            python_validates(&c);
            // A second import finds everything present and reads nothing.
            let again = import_archive(&c, &a, &opts(compress), &NoProgress).unwrap();
            assert_eq!(again.imported, 0);
            assert_eq!(again.already_present as usize, made.objects.len());
        }
    }
}

#[test]
fn zip64_archive_with_more_than_65535_entries() {
    let d = tempfile::tempdir().unwrap();
    let (a, made) = make(d.path(), "many");
    let z = dos_archive::ZipArchive::open(&a, &dos_archive::Limits::default()).unwrap();
    assert!(z.zip64);
    let c = container(d.path());
    let s = import_archive(&c, &a, &opts(CompressMode::Auto), &NoProgress).unwrap();
    assert_eq!(s.imported as usize, made.objects.len());
    assert_eq!(
        c.count_objects().unwrap().packed as usize,
        made.objects.len()
    );
}

#[test]
fn referenced_only_imports_what_nodes_use() {
    let d = tempfile::tempdir().unwrap();
    let (a, made) = make(d.path(), "referenced");
    let c = container(d.path());
    let s = import_archive(
        &c,
        &a,
        &ImportOptions {
            referenced_only: true,
            ..opts(CompressMode::No)
        },
        &NoProgress,
    )
    .unwrap();
    let keys: Vec<&String> = made.objects.keys().collect();
    let half = keys.len() / 2;
    assert_eq!(s.imported as usize, half);
    assert_eq!(s.unreferenced_skipped as usize, keys.len() - half);
    assert_eq!(s.missing_referenced, vec![key(&"f".repeat(64))]);
    assert!(!s.is_complete());
    for k in &keys[..half] {
        assert!(c.has_object(&key(k)).unwrap());
    }
    for k in &keys[half..] {
        assert!(!c.has_object(&key(k)).unwrap());
    }
}

#[test]
fn bad_entries_are_named_and_never_visible() {
    for scenario in [
        "bad-crc",
        "wrong-content",
        "bad-local-header",
        "bomb",
        "bzip2",
        "encrypted",
    ] {
        for compress in [CompressMode::No, CompressMode::Yes] {
            let d = tempfile::tempdir().unwrap();
            let (a, made) = make(d.path(), scenario);
            let c = container(d.path());
            // Something valid already in the container stays valid.
            let before = c
                .add_objects_to_pack(vec![b"precious".to_vec()], &PackWriteOptions::default())
                .unwrap();
            let s = import_archive(&c, &a, &opts(compress), &NoProgress).unwrap();
            let what = format!("{scenario} {compress:?}");
            let names: Vec<&str> = s.bad_entries.iter().map(|b| b.name.as_str()).collect();
            assert_eq!(
                names,
                made.bad.iter().map(String::as_str).collect::<Vec<_>>(),
                "{what}"
            );
            let reason = &s.bad_entries[0].reason;
            let expected = match scenario {
                "bad-crc" => "CRC-32",
                "wrong-content" => "does not match its name",
                "bad-local-header" => "local header names another file",
                "bomb" => "declared size",
                "bzip2" => "bzip2",
                _ => "encrypted",
            };
            assert!(reason.contains(expected), "{what}: {reason}");
            for b in &made.bad {
                assert!(
                    !c.has_object(&key(&b["repo/".len()..])).unwrap(),
                    "{what}: bad entry visible"
                );
            }
            let mut expect = made.objects.clone();
            let p = b"precious";
            expect.insert(before[0].to_string(), (p.len() as u64, sha(p)));
            check_exact(&c, &expect);
        }
    }
}

#[test]
fn broken_archives_are_refused_before_anything_is_written() {
    for (scenario, message) in [
        ("duplicate", "duplicate entry name repo/"),
        ("duplicate-other", "duplicate entry name metadata.json"),
        ("overlap", "overlap"),
        ("truncated", "truncated"),
        ("lying-zip64", "zip64 end record"),
        ("ratio-lie", "zip bomb"),
        ("legacy", "legacy archive format"),
    ] {
        let d = tempfile::tempdir().unwrap();
        let (a, _) = make(d.path(), scenario);
        let c = container(d.path());
        let e = import_archive(&c, &a, &opts(CompressMode::Yes), &NoProgress).unwrap_err();
        assert!(e.to_string().contains(message), "{scenario}: {e}");
        assert!(
            e.to_string().contains(&a.display().to_string()),
            "{scenario}: the error names the archive: {e}"
        );
        assert!(matches!(
            e,
            ArchiveError::Malformed { .. }
                | ArchiveError::Limit { .. }
                | ArchiveError::Unsupported { .. }
        ));
        assert_eq!(c.count_objects().unwrap().packed, 0);
        assert_eq!(c.count_objects().unwrap().pack_files, 0);
    }
    // Caps from the options.
    let d = tempfile::tempdir().unwrap();
    let (a, _) = make(d.path(), "plain");
    let c = container(d.path());
    let mut o = opts(CompressMode::No);
    o.limits.max_entry_size = 1000;
    let e = import_archive(&c, &a, &o, &NoProgress).unwrap_err();
    assert!(e.to_string().contains("per-entry limit"), "{e}");
    let mut o = opts(CompressMode::No);
    o.limits.max_total_size = 10_000;
    let e = import_archive(&c, &a, &o, &NoProgress).unwrap_err();
    assert!(e.to_string().contains("in total"), "{e}");
    // Garbage is not a zip.
    std::fs::write(
        d.path().join("junk.aiida"),
        b"definitely not a zip file at all",
    )
    .unwrap();
    let e = import_archive(&c, &d.path().join("junk.aiida"), &o, &NoProgress).unwrap_err();
    assert!(matches!(e, ArchiveError::Malformed { .. }), "{e}");
}

#[test]
fn info_describes_and_compares() {
    let d = tempfile::tempdir().unwrap();
    let (a, made) = make(d.path(), "foreign");
    let c = container(d.path());
    let i = dos_archive::info::archive_info(&a, &dos_archive::Limits::default(), Some(&c)).unwrap();
    assert_eq!(i.format_version.as_deref(), Some("main_0001"));
    assert_eq!(i.repo_entries as usize, made.objects.len());
    assert_eq!(i.new_objects, Some(made.objects.len() as u64));
    assert!(i.has_metadata && i.has_database);
    let sus = i.suspicious.join("\n");
    for needle in ["../evil.txt", "/etc/passwd", "NOTAHASH"] {
        assert!(sus.contains(needle), "{needle} not reported: {sus}");
    }
    import_archive(&c, &a, &opts(CompressMode::No), &NoProgress).unwrap();
    let i = dos_archive::info::archive_info(&a, &dos_archive::Limits::default(), Some(&c)).unwrap();
    assert_eq!(i.new_objects, Some(0));
}

#[test]
fn export_round_trip_read_by_python_zipfile() {
    for level in [0, 6] {
        let d = tempfile::tempdir().unwrap();
        let (a, made) = make(d.path(), "plain");
        let c = container(d.path());
        import_archive(&c, &a, &opts(CompressMode::Yes), &NoProgress).unwrap();
        // The archive's database references every object.
        let z = dos_archive::ZipArchive::open(&a, &dos_archive::Limits::default()).unwrap();
        let db = dos_archive::aiida::extract_db(&z, d.path()).unwrap();
        let out = d.path().join(format!("out{level}.aiida"));
        let s = dos_archive::export::export_archive(
            &c,
            db.path(),
            &out,
            &dos_archive::export::ExportOptions {
                level,
                ..Default::default()
            },
            &NoProgress,
        )
        .unwrap();
        assert_eq!(s.objects as usize, made.objects.len());
        // CPython reads it: CRCs good, metadata.json and db.sqlite3 first, every object exact.
        let code = "import sys, zipfile, hashlib, json\nz = zipfile.ZipFile(sys.argv[1])\n\
                    assert z.testzip() is None\nnames = z.namelist()\n\
                    assert names[:2] == ['metadata.json', 'db.sqlite3'], names[:3]\n\
                    assert z.getinfo('metadata.json').compress_type == zipfile.ZIP_STORED\n\
                    assert json.loads(z.read('metadata.json'))['export_version'] == 'main_0001'\n\
                    for n in names[2:]:\n    assert hashlib.sha256(z.read(n)).hexdigest() == n[5:], n\n\
                    print(len(names) - 2)\n";
        let o = Command::new(python())
            .args(["-c", code])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            made.objects.len().to_string()
        );
        // And dos imports it back into a fresh container, byte-exact.
        let c2 = Container::init(&d.path().join("c2"), &InitOptions::default()).unwrap();
        import_archive(&c2, &out, &opts(CompressMode::No), &NoProgress).unwrap();
        check_exact(&c2, &made.objects);
        // Refuses to overwrite.
        let e = dos_archive::export::export_archive(
            &c,
            db.path(),
            &out,
            &dos_archive::export::ExportOptions::default(),
            &NoProgress,
        )
        .unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
    }
}

/// Objects the container holds loose are found present (one listing of the loose folder serves
/// every chunk of keys) and not imported again.
#[test]
fn loose_objects_count_as_present() {
    let d = tempfile::tempdir().unwrap();
    let (a, made) = make(d.path(), "plain");
    let c = container(d.path());
    let z = dos_archive::ZipArchive::open(&a, &dos_archive::Limits::default()).unwrap();
    let mut loose = Vec::new();
    for e in z
        .entries
        .iter()
        .filter(|e| e.name.repo_key().is_some())
        .take(3)
    {
        let key = c.add_object(&z.read_entry(e).unwrap()).unwrap();
        assert_eq!(Some(key), e.name.repo_key());
        loose.push(key);
    }
    let s = import_archive(&c, &a, &opts(CompressMode::No), &NoProgress).unwrap();
    assert_eq!(s.already_present, 3, "{s:?}");
    assert_eq!(s.imported as usize, made.objects.len() - 3);
    for k in &loose {
        assert!(
            c.get_object_meta(k).unwrap().location.is_none(),
            "{k} was packed again"
        );
    }
    check_exact(&c, &made.objects);
}
