//! Packs in S3, against a real Ceph radosgw (started by `./scripts/test.sh`; see
//! `common::S3`): offload, reads from remote packs (single, bulk, streams, validate), fetching
//! back, a published snapshot read from the bucket alone, remote repack and clean, Python's
//! behaviour on an offloaded container, and `kill -9` at every fault point of offload, fetch,
//! publish and the repack of a remote pack.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use common::{Manifest, S3, py, random_objects, sha256_hex, write_manifest};
use serde_json::Value;

/// A container of `n` objects (two of a few MB) in packs of 300 kB, some compressed, and the
/// remote store it names.
struct Fixture {
    dir: tempfile::TempDir,
    c: PathBuf,
    url: String,
    expected: Manifest,
}

fn dos_ok(s3: &S3, c: &Path, args: &[&str]) -> Value {
    let out = s3
        .dos()
        .arg("-q")
        .arg("-p")
        .arg(c)
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dos {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn fixture(s3: &S3, name: &str, seed: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("c");
    let url = s3.fresh_url(name);
    let out = s3
        .dos()
        .args([
            "-p",
            c.to_str().unwrap(),
            "init",
            "--pack-size-target",
            "300000",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    let mut expected = Manifest::new();
    let mut files = Vec::new();
    for (i, body) in random_objects(seed, 120, 2).into_iter().enumerate() {
        let p = src.join(format!("f{i}"));
        fs::write(&p, &body).unwrap();
        expected.insert(sha256_hex(&body), (body.len() as u64, sha256_hex(&body)));
        files.push(p.to_str().unwrap().to_string());
    }
    let (first, second) = files.split_at(files.len() / 2);
    let mut a = vec!["add", "--pack", "--compress=auto"];
    a.extend(first.iter().map(String::as_str));
    let out = s3.dos().arg("-p").arg(&c).args(&a).output().unwrap();
    assert!(out.status.success());
    let mut a = vec!["add", "--pack"];
    a.extend(second.iter().map(String::as_str));
    let out = s3.dos().arg("-p").arg(&c).args(&a).output().unwrap();
    assert!(out.status.success());
    // A last small object: the pack being written stays below the target (not sealed).
    let tail = src.join("tail");
    let body = format!("the tail object of {name} {seed}");
    fs::write(&tail, &body).unwrap();
    expected.insert(
        sha256_hex(body.as_bytes()),
        (body.len() as u64, sha256_hex(body.as_bytes())),
    );
    let out = s3
        .dos()
        .arg("-p")
        .arg(&c)
        .args(["add", "--pack", tail.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    dos_ok(s3, &c, &["remote", "set", &url]);
    Fixture {
        dir,
        c,
        url,
        expected,
    }
}

/// Every object the container lists reads back byte-exact through dos-core (bulk reads, single
/// reads and streams), with `expected` all there. Returns the number of objects checked.
fn check_reads(s3: &S3, c: &Path, expected: &Manifest, what: &str) -> usize {
    let container = s3.open(c);
    let listed = container.list_all_objects().unwrap();
    let have: BTreeSet<String> = listed.iter().map(ToString::to_string).collect();
    let lost: Vec<&String> = expected.keys().filter(|k| !have.contains(*k)).collect();
    assert!(
        lost.is_empty(),
        "{what}: LOST {} objects: {lost:?}",
        lost.len()
    );
    let mut checked = 0;
    let missing = container
        .read_objects(&listed, |k, content, _| {
            let data = match content {
                dos_core::ObjectContent::Bytes(b) => b.to_vec(),
                dos_core::ObjectContent::Reader(r) => {
                    let mut v = Vec::new();
                    r.read_to_end(&mut v).unwrap();
                    v
                }
            };
            assert_eq!(sha256_hex(&data), k.to_string(), "{what}: wrong content");
            checked += 1;
            Ok(())
        })
        .unwrap();
    assert!(missing.is_empty(), "{what}: unreadable {missing:?}");
    for k in listed.iter().step_by(7) {
        let data = container.get_object_content(k).unwrap();
        assert_eq!(sha256_hex(&data), k.to_string(), "{what}: single read");
        let (mut r, _) = container.open_object(k).unwrap();
        let mut v = Vec::new();
        r.read_to_end(&mut v).unwrap();
        assert_eq!(v, data, "{what}: stream");
    }
    checked
}

fn validate_ok(s3: &S3, c: &Path, what: &str) -> Value {
    let out = s3
        .dos()
        .args(["-q", "-p", c.to_str().unwrap(), "validate", "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{what}: validate: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{what}: dos validate: {report}");
    report
}

fn status(s3: &S3, c: &Path) -> Value {
    dos_ok(s3, c, &["status"])
}

/// Names of the objects under the fixture's prefix.
fn bucket_names(s3: &S3, url: &str) -> BTreeSet<String> {
    let store = s3.store(url);
    let mut v: BTreeSet<String> = store
        .list("packs/")
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    v.extend(
        store
            .list("snapshots/")
            .unwrap()
            .into_iter()
            .map(|o| o.name),
    );
    v
}

#[test]
fn offload_read_python_refusal_and_fetch_back() {
    let s3 = S3::from_env();
    let f = fixture(&s3, "roundtrip", 1);
    let before = status(&s3, &f.c);
    let local_bytes = before["packs"]["local"]["bytes"].as_u64().unwrap();
    let s = dos_ok(&s3, &f.c, &["offload"]);
    let offloaded = s["packs"].as_array().unwrap().len();
    assert!(offloaded >= 2, "{s}");
    // Only sealed packs went: the highest, below the target, stayed.
    assert!(!s["skipped"].as_array().unwrap().is_empty(), "{s}");
    let st = status(&s3, &f.c);
    assert_eq!(st["python_readable"], Value::Bool(false), "{st}");
    assert_eq!(
        st["packs"]["remote_only"]["count"].as_u64().unwrap() as usize,
        offloaded
    );
    assert_eq!(
        st["packs"]["local"]["bytes"].as_u64().unwrap()
            + st["packs"]["remote"]["bytes"].as_u64().unwrap(),
        local_bytes
    );
    // Every offloaded pack is a stub directory now, and its object is in the bucket.
    let names = bucket_names(&s3, &f.url);
    for p in s["packs"].as_array().unwrap() {
        let id = p["pack_id"].as_u64().unwrap();
        assert!(f.c.join("packs").join(id.to_string()).is_dir());
        assert!(names.contains(p["name"].as_str().unwrap()), "{names:?}");
    }
    assert_eq!(
        check_reads(&s3, &f.c, &f.expected, "offloaded"),
        f.expected.len()
    );
    let report = validate_ok(&s3, &f.c, "offloaded");
    assert_eq!(
        report["objects_checked"].as_u64().unwrap() as usize,
        f.expected.len()
    );
    // The CLI reads remote objects byte-exact.
    let k = f.expected.keys().next().unwrap();
    let out = s3
        .dos()
        .args(["-p", f.c.to_str().unwrap(), "cat", k])
        .output()
        .unwrap();
    assert_eq!(sha256_hex(&out.stdout), *k);

    // Python: right bytes or an error, never wrong bytes; validate does not pass; a pack write
    // fails instead of reusing an offloaded pack's number.
    let m = write_manifest(&f.c, &f.expected);
    let r = py(&["refuses", f.c.to_str().unwrap(), m.to_str().unwrap()]);
    assert!(r["refused"].as_u64().unwrap() > 0, "{r}");
    let r = py(&["append_refused", f.c.to_str().unwrap(), "7"]);
    assert!(r["refused"].is_string(), "{r}");
    validate_ok(&s3, &f.c, "after Python's refused write");

    // Back: Python reads and validates everything again.
    let s = dos_ok(&s3, &f.c, &["fetch-packs", "--all"]);
    assert_eq!(s["fetched"].as_array().unwrap().len(), offloaded);
    let st = status(&s3, &f.c);
    assert_eq!(st["python_readable"], Value::Bool(true), "{st}");
    py(&["verify", f.c.to_str().unwrap(), m.to_str().unwrap()]);
    // The fetched packs' remote copies are unreferenced now: clean deletes them.
    let s = dos_ok(&s3, &f.c, &["clean", "--remote-grace", "0s"]);
    assert_eq!(
        s["remote"]["objects_deleted"].as_u64().unwrap() as usize,
        offloaded,
        "{s}"
    );
    assert!(bucket_names(&s3, &f.url).is_empty());
}

#[test]
fn keep_local_then_offload_and_remote_repack_and_clean() {
    let s3 = S3::from_env();
    let mut f = fixture(&s3, "repack", 2);
    let s = dos_ok(&s3, &f.c, &["offload", "--keep-local"]);
    let ids: Vec<u64> = s["packs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pack_id"].as_u64().unwrap())
        .collect();
    assert!(ids.len() >= 2);
    // Kept local: still files, Python still reads them.
    assert!(f.c.join("packs").join(ids[0].to_string()).is_file());
    let st = status(&s3, &f.c);
    assert_eq!(st["python_readable"], Value::Bool(true), "{st}");
    // Then offloaded without uploading again.
    let s = dos_ok(&s3, &f.c, &["offload"]);
    assert_eq!(s["bytes_uploaded"].as_u64().unwrap(), 0, "{s}");
    assert!(s["bytes_freed"].as_u64().unwrap() > 0, "{s}");

    // Delete a tenth of the objects, then repack: remote packs with holes are rewritten and
    // offloaded again under new names.
    let doomed: Vec<String> = f.expected.keys().step_by(10).cloned().collect();
    let mut a = vec!["delete"];
    a.extend(doomed.iter().map(String::as_str));
    dos_ok(&s3, &f.c, &a);
    for k in &doomed {
        f.expected.remove(k);
    }
    let names_before = bucket_names(&s3, &f.url);
    let r = dos_ok(&s3, &f.c, &["repack"]);
    assert!(!r["packs_rewritten"].as_array().unwrap().is_empty(), "{r}");
    check_reads(&s3, &f.c, &f.expected, "after remote repack");
    let report = validate_ok(&s3, &f.c, "after remote repack");
    assert_eq!(
        report["objects_checked"].as_u64().unwrap() as usize,
        f.expected.len()
    );
    let st = status(&s3, &f.c);
    assert!(
        st["packs"]["remote_only"]["count"].as_u64().unwrap() >= 2,
        "{st}"
    );
    // The old objects are unreferenced: clean removes exactly those.
    let live: BTreeSet<String> = {
        let c = s3.open(&f.c);
        c.pack_places()
            .unwrap()
            .packs
            .into_iter()
            .filter_map(|p| p.remote)
            .collect()
    };
    let s = dos_ok(&s3, &f.c, &["clean", "--remote-grace", "0s"]);
    let after = bucket_names(&s3, &f.url);
    assert_eq!(after, live, "{s}");
    assert!(names_before.difference(&after).count() > 0);
    check_reads(&s3, &f.c, &f.expected, "after clean");

    // A backup keeps offloaded packs as stubs naming the same objects, and reads them.
    let dest = f.dir.path().join("backups");
    dos_ok(&s3, &f.c, &["backup", dest.to_str().unwrap()]);
    let b = dest.join("last-backup");
    assert!(b.join("dos-remote.json").is_file());
    check_reads(&s3, &b, &f.expected, "backup of an offloaded container");
    validate_ok(&s3, &b, "backup of an offloaded container");
}

#[test]
fn published_snapshot_is_read_from_the_bucket_alone() {
    let s3 = S3::from_env();
    let f = fixture(&s3, "publish", 3);
    let s = dos_ok(&s3, &f.c, &["offload", "--publish"]);
    assert!(s["publish"]["packs_copied"].as_u64().unwrap() >= 1, "{s}");
    // Another machine: nothing but the URL and a cache folder of its own.
    let other = tempfile::tempdir().unwrap();
    let reader = |args: &[&str]| {
        s3.dos()
            .env("DOS_CACHE_DIR", other.path())
            .arg("-q")
            .arg("-p")
            .arg(&f.url)
            .args(args)
            .output()
            .unwrap()
    };
    let out = reader(&["ls"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let expected: BTreeSet<String> = f.expected.keys().cloned().collect();
    assert_eq!(listed, expected);
    for k in f.expected.keys().step_by(9) {
        let out = reader(&["cat", k]);
        assert!(out.status.success());
        assert_eq!(sha256_hex(&out.stdout), *k);
    }
    let out = reader(&["validate", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["objects_checked"].as_u64().unwrap() as usize,
        f.expected.len()
    );
    let out = reader(&["meta", f.expected.keys().next().unwrap(), "--json"]);
    assert!(out.status.success());
    // Read-only: writes are refused with a clear error.
    let file = f.dir.path().join("new");
    fs::write(&file, b"not in the snapshot").unwrap();
    let out = reader(&["add", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("read-only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A new object and a new snapshot: readers see it, and clean keeps what the snapshot names.
    let out = s3
        .dos()
        .args([
            "-p",
            f.c.to_str().unwrap(),
            "add",
            "--pack",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let key = sha256_hex(b"not in the snapshot");
    dos_ok(&s3, &f.c, &["offload", "--publish"]);
    dos_ok(&s3, &f.c, &["clean", "--remote-grace", "0s"]);
    let out = reader(&["cat", &key]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"not in the snapshot");
    let out = reader(&["validate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One crash scenario: what to run, and where it may die.
#[derive(Clone, Copy, Debug)]
enum Crash {
    Offload,
    Fetch,
    Publish,
    RemoteRepack,
}

impl Crash {
    fn args(self) -> Vec<&'static str> {
        match self {
            Crash::Offload => vec!["offload"],
            Crash::Fetch => vec!["fetch-packs", "--all"],
            Crash::Publish => vec!["offload", "--publish"],
            Crash::RemoteRepack => vec!["repack"],
        }
    }

    fn points(self) -> &'static [&'static str] {
        match self {
            Crash::Offload => &[
                "offload.upload",
                "offload.uploaded",
                "index.remote.before",
                "offload.committed",
                "offload.stub",
                "offload.unlink",
            ],
            Crash::Fetch => &[
                "fetch.download",
                "fetch.swap",
                "fetch.commit",
                "index.remote.before",
            ],
            Crash::Publish => &["publish.pack", "publish.index", "publish.pointer"],
            Crash::RemoteRepack => &[
                "fetch.swap",
                "fetch.commit",
                "repack.remote.fetched",
                "repack.journal.after",
                "repack.switch.before",
                "repack.switch.after",
                "offload.uploaded",
                "offload.committed",
                "offload.stub",
            ],
        }
    }
}

fn crash_scenario(s3: &S3, which: Crash, seed: u64) -> usize {
    let mut runs = 0;
    for point in which.points() {
        let what = format!("{which:?} killed at {point}");
        let mut f = fixture(s3, "crash", seed);
        match which {
            Crash::Offload | Crash::Publish => {}
            Crash::Fetch => {
                dos_ok(s3, &f.c, &["offload"]);
            }
            Crash::RemoteRepack => {
                dos_ok(s3, &f.c, &["offload"]);
                let doomed: Vec<String> = f.expected.keys().step_by(10).cloned().collect();
                let mut a = vec!["delete"];
                a.extend(doomed.iter().map(String::as_str));
                dos_ok(s3, &f.c, &a);
                for k in &doomed {
                    f.expected.remove(k);
                }
            }
        }
        let out = s3
            .dos()
            .arg("-q")
            .arg("-p")
            .arg(&f.c)
            .args(which.args())
            .env("DOS_FAULT", format!("{point}:1"))
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{what}: the fault point was not reached"
        );
        check_reads(s3, &f.c, &f.expected, &what);
        validate_ok(s3, &f.c, &what);
        // Python reads what is local whenever nothing is remote only.
        let st = status(s3, &f.c);
        if st["packs"]["remote_only"]["count"] == 0 {
            let m = write_manifest(&f.c, &f.expected);
            py(&["verify", f.c.to_str().unwrap(), m.to_str().unwrap()]);
        }
        // The next run completes (all of it: every sealed pack offloaded, every pack fetched),
        // and then nothing unreferenced stays in the bucket.
        dos_ok(s3, &f.c, &which.args());
        let st = status(s3, &f.c);
        match which {
            Crash::Offload | Crash::Publish => {
                assert_eq!(st["packs"]["local"]["count"], 1, "{what}: {st}")
            }
            Crash::Fetch => assert_eq!(st["packs"]["remote"]["count"], 0, "{what}: {st}"),
            Crash::RemoteRepack => {}
        }
        check_reads(s3, &f.c, &f.expected, &format!("{what}, re-run"));
        validate_ok(s3, &f.c, &format!("{what}, re-run"));
        dos_ok(
            s3,
            &f.c,
            &["clean", "--remote-grace", "0s", "--sandbox-age", "0"],
        );
        // Nothing a killed offload or fetch left in sandbox/ (a stub folder) survives clean.
        let left: Vec<_> = fs::read_dir(f.c.join("sandbox"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            left.is_empty(),
            "{what}: left in sandbox/ after clean: {left:?}"
        );
        let live: BTreeSet<String> = {
            let c = s3.open(&f.c);
            c.pack_places()
                .unwrap()
                .packs
                .into_iter()
                .filter_map(|p| p.remote)
                .collect()
        };
        let names: BTreeSet<String> = bucket_names(s3, &f.url)
            .into_iter()
            .filter(|n| n.starts_with("packs/"))
            .collect();
        if !matches!(which, Crash::Publish) {
            assert_eq!(names, live, "{what}: unreferenced objects left after clean");
        }
        let _ = fs::remove_file(format!("{}.manifest.json", f.c.display()));
        runs += 1;
    }
    runs
}

#[test]
fn killed_offload_at_every_point() {
    let s3 = S3::from_env();
    assert_eq!(
        crash_scenario(&s3, Crash::Offload, 11),
        Crash::Offload.points().len()
    );
}

#[test]
fn killed_fetch_at_every_point() {
    let s3 = S3::from_env();
    assert_eq!(
        crash_scenario(&s3, Crash::Fetch, 12),
        Crash::Fetch.points().len()
    );
}

#[test]
fn killed_publish_at_every_point() {
    let s3 = S3::from_env();
    assert_eq!(
        crash_scenario(&s3, Crash::Publish, 13),
        Crash::Publish.points().len()
    );
}

#[test]
fn killed_remote_repack_at_every_point() {
    let s3 = S3::from_env();
    assert_eq!(
        crash_scenario(&s3, Crash::RemoteRepack, 14),
        Crash::RemoteRepack.points().len()
    );
}

#[test]
fn export_archive_from_a_published_snapshot() {
    let s3 = S3::from_env();
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("a.aiida");
    let made = common::make_archive("plain", &archive);
    let objects = common::archive_objects(&made);
    let c = tmp.path().join("c");
    let url = s3.fresh_url("export");
    let run = |dir: &Path, args: &[&str]| {
        let out = s3
            .dos()
            .arg("-q")
            .arg("-p")
            .arg(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "dos {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&c, &["init", "--pack-size-target", "100000"]);
    run(
        &c,
        &[
            "import-archive",
            archive.to_str().unwrap(),
            "--compress=auto",
        ],
    );
    run(&c, &["remote", "set", &url]);
    // The only pack is the one being written: it stays local, and the snapshot gets a copy.
    run(&c, &["offload", "--include-small", "--publish"]);
    // The archive's database, and an export read from the bucket alone.
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
    let out = s3
        .dos()
        .env("DOS_CACHE_DIR", tmp.path().join("cache"))
        .args(["-q", "-p", &url, "export-archive"])
        .arg(&exported)
        .arg("--db")
        .arg(&db)
        .arg("--metadata-from")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = tmp.path().join("back");
    run(&back, &["init"]);
    run(&back, &["import-archive", exported.to_str().unwrap()]);
    let container = dos_core::Container::open(&back).unwrap();
    let listed = container.list_all_objects().unwrap();
    assert!(listed.len() > 10, "{}", listed.len());
    for k in listed {
        let data = container.get_object_content(&k).unwrap();
        let (size, sha) = &objects[&k.to_string()];
        assert_eq!((data.len() as u64, sha256_hex(&data)), (*size, sha.clone()));
    }
}

#[test]
fn offload_fetch_and_reads_at_once_lose_nothing() {
    let s3 = S3::from_env();
    let f = fixture(&s3, "race", 5);
    let reader = |c: &Path| {
        let c = c.to_path_buf();
        let keys: Vec<String> = f.expected.keys().cloned().collect();
        let env = S3::from_env();
        std::thread::spawn(move || {
            let mut checked = 0;
            for k in keys.iter().cycle().take(60) {
                let out = env
                    .dos()
                    .args(["-p", c.to_str().unwrap(), "cat", k])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "cat {k}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(
                    sha256_hex(&out.stdout),
                    *k,
                    "wrong bytes during offload/fetch"
                );
                checked += 1;
            }
            checked
        })
    };
    for round in 0..4 {
        let r = reader(&f.c);
        let spawn = |args: &[&str]| {
            s3.dos()
                .arg("-q")
                .arg("-p")
                .arg(&f.c)
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let a = spawn(&["offload"]);
        let b = spawn(&["fetch-packs", "--all"]);
        let c = spawn(&["offload", "--keep-local"]);
        for (what, child) in [("offload", a), ("fetch", b), ("offload --keep-local", c)] {
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            // Refused because another command holds the container is fine; anything else not.
            assert!(
                out.status.success() || err.contains("another dos operation"),
                "round {round}, {what}: {err}"
            );
        }
        assert_eq!(r.join().unwrap(), 60);
        check_reads(&s3, &f.c, &f.expected, &format!("round {round}"));
        validate_ok(&s3, &f.c, &format!("round {round}"));
    }
}
