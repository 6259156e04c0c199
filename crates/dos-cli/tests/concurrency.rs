//! Several processes (dos and Python) write the same and different objects at once while others
//! read; nothing may be lost or corrupted.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{dos, interop_script, python, random_objects, sha256_hex};

fn spawn_python_worker(container: &Path, outdir: &Path, id: &str, n: usize, seed: u64) -> Child {
    Command::new(python())
        .arg(interop_script())
        .args([
            "worker",
            container.to_str().unwrap(),
            outdir.to_str().unwrap(),
            id,
        ])
        .arg(n.to_string())
        .arg(seed.to_string())
        .spawn()
        .unwrap()
}

fn wait_ok(mut child: Child, what: &str) {
    let status = child.wait().unwrap();
    assert!(status.success(), "{what} failed: {status}");
}

#[test]
fn concurrent_writers_and_readers_lose_nothing() {
    let py = python(); // fail loudly up front if Python is missing
    let _ = py;
    let d = tempfile::tempdir().unwrap();
    let container = d.path().join("c");
    let out = dos()
        .args(["-p", container.to_str().unwrap(), "init"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let outdir = d.path().join("published");
    fs::create_dir(&outdir).unwrap();

    // Files for the dos writers: each writer gets the shared objects the Python workers also
    // write (same content → same keys, concurrent identical renames) plus its own.
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    let mut dos_jobs = Vec::new();
    for w in 0..3 {
        let dir = d.path().join(format!("files{w}"));
        fs::create_dir(&dir).unwrap();
        let mut paths = Vec::new();
        for i in (0..200).step_by(2) {
            let body = format!("shared object {i}").repeat(1 + i % 50);
            let p = dir.join(format!("shared{i}"));
            fs::write(&p, &body).unwrap();
            expected.insert(sha256_hex(body.as_bytes()), sha256_hex(body.as_bytes()));
            paths.push(p);
        }
        for (i, body) in random_objects(1000 + w, 150, 0).into_iter().enumerate() {
            let p = dir.join(format!("own{i}"));
            fs::write(&p, &body).unwrap();
            expected.insert(sha256_hex(&body), sha256_hex(&body));
            paths.push(p);
        }
        dos_jobs.push(paths);
    }
    // One more set goes straight to packs, concurrently with the loose writers.
    let pack_dir = d.path().join("packfiles");
    fs::create_dir(&pack_dir).unwrap();
    let mut pack_paths = Vec::new();
    for (i, body) in random_objects(4242, 300, 1).into_iter().enumerate() {
        let p = pack_dir.join(format!("p{i}"));
        fs::write(&p, &body).unwrap();
        expected.insert(sha256_hex(&body), sha256_hex(&body));
        pack_paths.push(p);
    }

    let start = Instant::now();
    let mut children: Vec<(Child, String)> = Vec::new();
    for (w, paths) in dos_jobs.iter().enumerate() {
        // Each dos writer adds its files in several invocations to interleave more.
        for (j, chunk) in paths.chunks(60).enumerate() {
            let child = dos()
                .args(["-q", "-p", container.to_str().unwrap(), "add"])
                .args(chunk)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            children.push((child, format!("dos writer {w}.{j}")));
        }
    }
    for (j, chunk) in pack_paths.chunks(100).enumerate() {
        let child = dos()
            .args([
                "-q",
                "-p",
                container.to_str().unwrap(),
                "add",
                "--pack",
                "--compress=auto",
            ])
            .args(chunk)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        children.push((child, format!("dos pack writer {j}")));
    }
    for w in 0..3 {
        let child = spawn_python_worker(&container, &outdir, &format!("py{w}"), 200, 50 + w);
        children.push((child, format!("python worker {w}")));
    }
    // Readers: while writers run, repeatedly list and read everything visible with dos.
    let mut reads = 0;
    while children
        .iter_mut()
        .any(|(c, _)| c.try_wait().unwrap().is_none())
    {
        let ls = dos()
            .args(["-p", container.to_str().unwrap(), "ls"])
            .output()
            .unwrap();
        assert!(
            ls.status.success(),
            "{}",
            String::from_utf8_lossy(&ls.stderr)
        );
        let keys: Vec<String> = String::from_utf8(ls.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        for k in keys.iter().step_by(17) {
            let out = dos()
                .args(["-p", container.to_str().unwrap(), "cat", k])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "cat {k}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(&sha256_hex(&out.stdout), k, "a reader saw wrong content");
            reads += 1;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "writers hang");
    }
    for (c, what) in children {
        wait_ok(c, &what);
    }
    assert!(reads > 0);

    // Everything every writer wrote is there, byte-exact, seen by dos and by Python.
    for f in fs::read_dir(&outdir).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "json") {
            let theirs: BTreeMap<String, String> =
                serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
            expected.extend(theirs);
        }
    }
    let c = dos_core::Container::open(&container).unwrap();
    let keys: Vec<dos_core::ObjectKey> = expected.keys().map(|k| common::key(k)).collect();
    let mut n = 0;
    let missing = c
        .read_objects(&keys, |k, content, _| {
            let bytes = match content {
                dos_core::ObjectContent::Bytes(b) => b.to_vec(),
                dos_core::ObjectContent::Reader(r) => {
                    let mut v = Vec::new();
                    std::io::Read::read_to_end(r, &mut v).unwrap();
                    v
                }
            };
            assert_eq!(sha256_hex(&bytes), expected[&k.to_string()]);
            n += 1;
            Ok(())
        })
        .unwrap();
    assert!(missing.is_empty(), "lost objects: {missing:?}");
    assert_eq!(n, expected.len());
    // No leftovers: no locks, no sandbox files.
    assert!(
        fs::read_dir(container.join("sandbox"))
            .unwrap()
            .next()
            .is_none()
    );
    for e in fs::read_dir(container.join("packs")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(!name.ends_with(".lock"), "leftover {name}");
    }
    let mut m = common::Manifest::new();
    for (k, digest) in &expected {
        let size = c.get_object_meta(&common::key(k)).unwrap().size.unwrap();
        m.insert(k.clone(), (size, digest.clone()));
    }
    let manifest = common::write_manifest(&container, &m);
    common::py(&[
        "verify",
        container.to_str().unwrap(),
        manifest.to_str().unwrap(),
    ]);
}

/// Writers (dos and Python) add and read loose objects while one process packs over and over,
/// alternately with `--clean-loose` and compression: nobody sees an error, nothing is lost.
#[test]
fn writers_and_readers_while_packing() {
    let _ = python();
    let secs: u64 = std::env::var("DOS_CONCURRENCY_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let d = tempfile::tempdir().unwrap();
    let container = d.path().join("c");
    let cs = container.to_str().unwrap().to_string();
    assert!(
        dos()
            .args(["-p", &cs, "init", "--pack-size-target", "2000000"])
            .output()
            .unwrap()
            .status
            .success()
    );
    let outdir = d.path().join("published");
    fs::create_dir(&outdir).unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);

    // Python workers: rounds of 100 objects, re-reading everything published after each round.
    let mut py_workers: Vec<(Child, String)> = (0..2)
        .map(|w| {
            let rounds = (secs / 2).max(3);
            let child = Command::new(python())
                .arg(interop_script())
                .args(["worker", &cs, outdir.to_str().unwrap(), &format!("py{w}")])
                .args(["60", &(900 + w).to_string(), &rounds.to_string()])
                .spawn()
                .unwrap();
            (child, format!("python worker {w}"))
        })
        .collect();

    // The packer: `dos pack` in a loop until the deadline.
    let packer_cs = cs.clone();
    let packer = std::thread::spawn(move || {
        let mut runs = 0;
        while Instant::now() < deadline {
            let mut args = vec!["-q", "-p", &packer_cs, "pack"];
            if runs % 2 == 0 {
                args.push("--clean-loose");
            }
            if runs % 3 == 0 {
                args.extend(["--compress", "auto"]);
            }
            let out = dos().args(&args).output().unwrap();
            assert!(
                out.status.success(),
                "dos pack: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            runs += 1;
        }
        runs
    });

    // dos writers and readers: this thread.
    let mut dos_written: BTreeMap<String, String> = BTreeMap::new();
    let mut round = 0u64;
    let mut reads = 0;
    while Instant::now() < deadline {
        let dir = d.path().join(format!("round{round}"));
        fs::create_dir(&dir).unwrap();
        let mut paths = Vec::new();
        for (i, body) in random_objects(5000 + round, 40, 0).into_iter().enumerate() {
            let p = dir.join(format!("o{i}"));
            fs::write(&p, &body).unwrap();
            dos_written.insert(sha256_hex(&body), sha256_hex(&body));
            paths.push(p);
        }
        // Shared content with the Python workers.
        let shared = format!("shared object {}", (round * 2) % 60)
            .repeat(1 + (round as usize * 2 % 60) % 50);
        let sp = dir.join("shared");
        fs::write(&sp, &shared).unwrap();
        dos_written.insert(sha256_hex(shared.as_bytes()), sha256_hex(shared.as_bytes()));
        paths.push(sp);
        let out = dos()
            .args(["-q", "-p", &cs, "add"])
            .args(&paths)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "dos add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Read back a sample of everything written so far, by dos and by Python.
        let mut sample: Vec<String> = dos_written.keys().step_by(7).cloned().collect();
        for f in fs::read_dir(&outdir).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "json") {
                let theirs: BTreeMap<String, String> =
                    serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
                sample.extend(theirs.into_keys().step_by(11));
            }
        }
        for k in &sample {
            let out = dos().args(["-p", &cs, "cat", k]).output().unwrap();
            assert!(
                out.status.success(),
                "cat {k} while packing: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(&sha256_hex(&out.stdout), k);
            reads += 1;
        }
        round += 1;
    }
    let pack_runs = packer.join().unwrap();
    for (c, what) in py_workers.drain(..) {
        wait_ok(c, &what);
    }
    eprintln!("{round} dos write rounds, {reads} dos reads, {pack_runs} pack runs");
    assert!(pack_runs >= 2 && round >= 2);

    // Final: one more pack, then every object ever written is there, byte-exact.
    assert!(
        dos()
            .args(["-q", "-p", &cs, "pack", "--clean-loose"])
            .output()
            .unwrap()
            .status
            .success()
    );
    let mut expected = dos_written;
    for f in fs::read_dir(&outdir).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "json") {
            let theirs: BTreeMap<String, String> =
                serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
            expected.extend(theirs);
        }
    }
    let c = dos_core::Container::open(&container).unwrap();
    let keys: Vec<dos_core::ObjectKey> = expected.keys().map(|k| common::key(k)).collect();
    let missing = c
        .read_objects(&keys, |k, content, _| {
            let bytes = match content {
                dos_core::ObjectContent::Bytes(b) => b.to_vec(),
                dos_core::ObjectContent::Reader(r) => {
                    let mut v = Vec::new();
                    std::io::Read::read_to_end(r, &mut v).unwrap();
                    v
                }
            };
            assert_eq!(sha256_hex(&bytes), expected[&k.to_string()]);
            Ok(())
        })
        .unwrap();
    assert!(
        missing.is_empty(),
        "lost {} objects: {missing:?}",
        missing.len()
    );
    let out = dos().args(["-p", &cs, "validate"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut m = common::Manifest::new();
    for (k, digest) in &expected {
        let size = c.get_object_meta(&common::key(k)).unwrap().size.unwrap();
        m.insert(k.clone(), (size, digest.clone()));
    }
    let manifest = common::write_manifest(&container, &m);
    common::py(&["verify", &cs, manifest.to_str().unwrap()]);
}

/// A repack journal naming two packs that both hold rows (a repack died, and a writer that took
/// its stale lock appended to the new pack before anything recovered): recovery keeps both, and
/// every object still reads back byte-exact and validates (Python too).
#[test]
fn recovery_keeps_a_new_pack_a_writer_appended_to() {
    let _ = python();
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("c");
    let cs = c.to_str().unwrap();
    let out = dos()
        .args(["-p", cs, "init", "--pack-size-target", "20000"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut expected = BTreeMap::new();
    for (i, body) in random_objects(77, 16, 0).into_iter().enumerate() {
        let f = d.path().join(format!("o{i}"));
        fs::write(&f, &body).unwrap();
        let out = dos()
            .args(["-p", cs, "add", "--pack", f.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        expected.insert(sha256_hex(&body), body);
    }
    assert!(c.join("packs/0").is_file() && c.join("packs/1").is_file());
    fs::write(c.join("packs/dos-repack.json"), "{\"old\":0,\"new\":1}").unwrap();
    let out = dos().args(["-p", cs, "clean"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(c.join("packs/0").is_file() && c.join("packs/1").is_file());
    assert!(!c.join("packs/dos-repack.json").exists());
    for (k, body) in &expected {
        let out = dos().args(["-p", cs, "cat", k]).output().unwrap();
        assert!(
            out.status.success(),
            "{k}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(&out.stdout, body, "{k}");
    }
    let out = dos().args(["-p", cs, "validate"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let m: common::Manifest = expected
        .iter()
        .map(|(k, b)| (k.clone(), (b.len() as u64, sha256_hex(b))))
        .collect();
    let mp = common::write_manifest(&c, &m);
    common::py(&["verify", cs, mp.to_str().unwrap()]);
}
