//! Crash tests with real processes: `dos pack`, `dos repack`, `dos optimize` and a direct-to-pack
//! import are killed — at injected fault points around every write, fsync, commit, rename and
//! delete (the process aborts there, as `kill -9` would stop it), and with SIGKILL at random
//! instants — and made to fail with an I/O error (EIO) at the same points and at pack reads.
//! After each the container must validate clean in dos and in Python, every object must read
//! back byte-exact, and re-running the command must complete.
//!
//! `DOS_CRASH_RANDOM_KILLS` (default 12 per command) sets the number of random kills;
//! `DOS_CRASH_SEED` makes a run reproducible (the seed is printed).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Manifest, dos, py, random_objects, sha256_hex, write_manifest};

/// One scenario: how to prepare a container, and the command to crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Pack,
    Repack,
    Optimize,
    Import,
    /// `dos add` of loose objects.
    AddLoose,
    /// `dos repack --compression zlib+1` of a zstd container.
    Convert,
    /// `dos repack --compression zstd+3` of a zlib container.
    ConvertToZstd,
}

impl Scenario {
    fn args(self, files: &[PathBuf]) -> Vec<String> {
        let v: Vec<&str> = match self {
            Scenario::Pack => vec!["pack", "--clean-loose", "--compress", "auto"],
            Scenario::Repack => vec!["repack", "--compress", "auto"],
            Scenario::Optimize => vec!["optimize", "--compress", "yes"],
            Scenario::Import => vec!["add", "--pack", "--compress=auto"],
            Scenario::AddLoose => vec!["add"],
            Scenario::Convert => vec!["repack", "--compression", "zlib+1"],
            Scenario::ConvertToZstd => vec!["repack", "--compression", "zstd+3"],
        };
        let mut v: Vec<String> = v.into_iter().map(String::from).collect();
        if let Scenario::Import | Scenario::AddLoose = self {
            v.extend(files.iter().map(|p| p.display().to_string()));
        }
        v
    }

    fn fault_points(self) -> &'static [&'static str] {
        match self {
            Scenario::Pack => &[
                "pack.lock.prepared",
                "pack.lock.acquired",
                "pack.append",
                "pack.sync.before",
                "pack.sync.after",
                "index.commit.before",
                "index.commit.after",
                "loose.delete",
            ],
            Scenario::Import => &[
                "pack.lock.prepared",
                "pack.lock.acquired",
                "pack.append",
                "pack.sync.before",
                "pack.sync.after",
                "index.commit.before",
                "index.commit.after",
            ],
            Scenario::Repack => &[
                "pack.lock.acquired",
                "repack.journal.after",
                "repack.write.after",
                "repack.switch.before",
                "index.relocate.before",
                "repack.switch.after",
                "repack.unlink.after",
            ],
            Scenario::AddLoose => &["loose.rename.before", "loose.rename.after"],
            Scenario::Convert | Scenario::ConvertToZstd => &[
                "convert.marker.after",
                "convert.config.after",
                "pack.lock.acquired",
                "repack.journal.after",
                "repack.write.after",
                "repack.switch.before",
                "repack.switch.after",
                "repack.unlink.after",
            ],
            Scenario::Optimize => &[
                "pack.append",
                "index.commit.after",
                "loose.delete",
                "repack.journal.after",
                "repack.switch.before",
                "repack.switch.after",
            ],
        }
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    /// Every object the container must hold (key → sha256 of content, which is the key here).
    expected: Manifest,
    files: Vec<PathBuf>,
}

fn run(container: &Path, args: &[String], fault: Option<&str>) -> std::process::Output {
    let mut cmd = dos();
    cmd.arg("-q").arg("-p").arg(container).args(args);
    if let Some(f) = fault {
        cmd.env("DOS_FAULT", f);
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn ok(container: &Path, args: &[&str]) {
    let out = dos()
        .arg("-q")
        .arg("-p")
        .arg(container)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dos {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A container ready for the scenario, with 16 KB... 2 MB objects and small packs.
fn prepare(s: Scenario, seed: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("c");
    let mut init = vec![
        "-p",
        c.to_str().unwrap(),
        "init",
        "--pack-size-target",
        "300000",
    ];
    if let Scenario::Convert = s {
        init.extend(["--compression", "zstd+3"]);
    }
    let out = dos().args(init).output().unwrap();
    assert!(out.status.success());
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    let mut files = Vec::new();
    let mut expected = Manifest::new();
    for (i, body) in random_objects(seed, 160, 1).into_iter().enumerate() {
        let p = src.join(format!("f{i}"));
        fs::write(&p, &body).unwrap();
        expected.insert(sha256_hex(&body), (body.len() as u64, sha256_hex(&body)));
        files.push(p);
    }
    let file_args: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
    match s {
        Scenario::Import | Scenario::AddLoose => {}
        Scenario::Pack => {
            let mut a = vec!["add"];
            a.extend(&file_args);
            ok(&c, &a);
        }
        Scenario::Repack | Scenario::Optimize | Scenario::Convert | Scenario::ConvertToZstd => {
            let mut a = vec!["add"];
            a.extend(&file_args);
            ok(&c, &a);
            if let Scenario::Convert | Scenario::ConvertToZstd = s {
                ok(&c, &["pack", "--clean-loose", "--compress", "yes"]);
            } else {
                ok(&c, &["pack", "--clean-loose"]);
            }
            // Delete ~10% to leave holes in the packs.
            let doomed: Vec<String> = expected.keys().step_by(10).cloned().collect();
            let mut a = vec!["delete"];
            a.extend(doomed.iter().map(String::as_str));
            ok(&c, &a);
            for k in &doomed {
                expected.remove(k);
            }
            if let Scenario::Optimize = s {
                // Some new loose objects too.
                let mut a = vec!["add"];
                let extra: Vec<PathBuf> = random_objects(seed + 1, 40, 0)
                    .into_iter()
                    .enumerate()
                    .map(|(i, b)| {
                        let p = src.join(format!("extra{i}"));
                        fs::write(&p, &b).unwrap();
                        expected.insert(sha256_hex(&b), (b.len() as u64, sha256_hex(&b)));
                        p
                    })
                    .collect();
                a.extend(extra.iter().map(|p| p.to_str().unwrap()));
                ok(&c, &a);
            }
        }
    }
    Fixture {
        dir,
        expected,
        files,
    }
}

/// Everything that must hold after a crash.
fn check_after_crash(f: &Fixture, s: Scenario, what: &str) -> usize {
    check(f, s, what, !s.converts())
}

impl Scenario {
    /// Whether the scenario converts between codings (Python then reads the container only
    /// once a conversion to zlib has finished).
    fn converts(self) -> bool {
        matches!(self, Scenario::Convert | Scenario::ConvertToZstd)
    }
}

/// Everything that must hold after a crash, Python's reading too when `python` (a conversion
/// from zstd cut short leaves zstd objects, which Python cannot read).
fn check(f: &Fixture, s: Scenario, what: &str, python: bool) -> usize {
    let c = f.dir.path().join("c");
    let container = dos_core::Container::open(&c).unwrap_or_else(|e| panic!("{what}: {e}"));
    // Every object the container lists is byte-exact.
    let listed = container.list_all_objects().unwrap();
    let mut checked = 0;
    let missing = container
        .read_objects(&listed, |k, content, _| {
            let data = match content {
                dos_core::ObjectContent::Bytes(b) => b.to_vec(),
                dos_core::ObjectContent::Reader(r) => {
                    let mut v = Vec::new();
                    std::io::Read::read_to_end(r, &mut v).unwrap();
                    v
                }
            };
            assert_eq!(sha256_hex(&data), k.to_string(), "{what}: wrong content");
            checked += 1;
            Ok(())
        })
        .unwrap();
    assert!(
        missing.is_empty(),
        "{what}: listed but unreadable: {missing:?}"
    );
    // Nothing was lost: every expected object is there (an import may not have reached all).
    if !matches!(s, Scenario::Import | Scenario::AddLoose) {
        let have: std::collections::BTreeSet<String> =
            listed.iter().map(ToString::to_string).collect();
        let lost: Vec<&String> = f.expected.keys().filter(|k| !have.contains(*k)).collect();
        assert!(
            lost.is_empty(),
            "{what}: LOST {} objects: {lost:?}",
            lost.len()
        );
    }
    // dos validate: no errors (leftovers of the crash are warnings).
    let out = dos()
        .args(["-p", c.to_str().unwrap(), "validate", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{what}: validate: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        out.status.success(),
        "{what}: dos validate failed: {report}"
    );
    // Python reads and validates the same objects.
    let mut present = Manifest::new();
    for k in &listed {
        present.insert(
            k.to_string(),
            f.expected.get(&k.to_string()).cloned().unwrap_or_else(|| {
                let d = container.get_object_content(k).unwrap();
                (d.len() as u64, sha256_hex(&d))
            }),
        );
    }
    let m = write_manifest(&c, &present);
    if python {
        py(&["verify", c.to_str().unwrap(), m.to_str().unwrap()]);
    }
    checked
}

fn rerun_completes(f: &Fixture, s: Scenario, what: &str) {
    let c = f.dir.path().join("c");
    let out = run(&c, &s.args(&f.files), None);
    assert!(
        out.status.success(),
        "{what}: re-run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if let Scenario::Import | Scenario::AddLoose = s {
        let container = dos_core::Container::open(&c).unwrap();
        let keys: Vec<dos_core::ObjectKey> = f.expected.keys().map(|k| common::key(k)).collect();
        assert!(
            container.has_objects(&keys).unwrap().iter().all(|b| *b),
            "{what}"
        );
    }
    if s.converts() {
        let st = dos()
            .args(["-p", c.to_str().unwrap(), "status", "--json"])
            .output()
            .unwrap();
        let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
        assert_eq!(
            st["python_readable"],
            serde_json::json!(s == Scenario::Convert),
            "{what}: {st}"
        );
        assert_eq!(
            st["unfinished_conversion"],
            serde_json::Value::Null,
            "{what}: {st}"
        );
    }
    check(
        f,
        s,
        &format!("{what}, after re-run"),
        s != Scenario::ConvertToZstd,
    );
}

/// Tallies reported at the end (for the closing note).
#[derive(Default)]
struct Tally {
    kills: usize,
    /// Runs failed by an injected I/O error.
    faults: usize,
    objects_checked: usize,
}

/// How many times each fault point is reached by an uninterrupted run.
fn trace_points(s: Scenario, seed: u64) -> BTreeMap<String, u64> {
    let f = prepare(s, seed);
    let c = f.dir.path().join("c");
    let trace = f.dir.path().join("trace");
    let out = dos()
        .arg("-q")
        .arg("-p")
        .arg(&c)
        .args(s.args(&f.files))
        .env("DOS_FAULT_TRACE", &trace)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut counts = BTreeMap::new();
    for line in fs::read_to_string(&trace).unwrap_or_default().lines() {
        *counts.entry(line.to_string()).or_insert(0) += 1;
    }
    counts
}

fn crash_at_fault_points(s: Scenario, seed: u64, tally: &mut Tally) {
    let counts = trace_points(s, seed);
    for point in s.fault_points() {
        let n = counts.get(*point).copied().unwrap_or(0);
        assert!(
            n > 0,
            "{s:?}: fault point {point} is never reached: {counts:?}"
        );
        // The first, a middle and the last occurrence.
        let mut hits = vec![1, n.div_ceil(2), n];
        hits.dedup();
        for hit in hits {
            let f = prepare(s, seed);
            let c = f.dir.path().join("c");
            let what = format!("{s:?} aborted at {point}:{hit}");
            let out = run(&c, &s.args(&f.files), Some(&format!("{point}:{hit}")));
            let aborted = String::from_utf8_lossy(&out.stderr).contains("fault injection");
            assert!(
                aborted,
                "{what}: did not abort: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            tally.kills += 1;
            tally.objects_checked += check_after_crash(&f, s, &what);
            rerun_completes(&f, s, &what);
        }
    }
}

/// Every pack holds nothing beyond its last committed object (an aborted batch's bytes were cut).
fn no_uncommitted_tail(f: &Fixture, what: &str) {
    let c = f.dir.path().join("c");
    let conn = rusqlite::Connection::open_with_flags(
        c.join("packs.idx"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    for entry in fs::read_dir(c.join("packs")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(id) = name.parse::<i64>() else {
            continue;
        };
        let end: i64 = conn
            .query_row(
                "SELECT COALESCE(MAX(\"offset\" + length), 0) FROM db_object WHERE pack_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        let len = entry.metadata().unwrap().len();
        assert_eq!(
            len, end as u64,
            "{what}: pack {name} is {len} bytes, its objects end at {end}"
        );
    }
}

/// The same points as the crash tests, but the operation there fails with EIO: the command must
/// stop with a clear error (exit 2, the file and the error named), leave the container as valid as
/// before with nothing lost and no uncommitted bytes in packs, and complete when run again.
fn eio_at_fault_points(s: Scenario, seed: u64, tally: &mut Tally) {
    let counts = trace_points(s, seed);
    let mut points: Vec<&str> = s.fault_points().to_vec();
    if matches!(
        s,
        Scenario::Repack | Scenario::Optimize | Scenario::Convert | Scenario::ConvertToZstd
    ) {
        points.push("pack.read");
    }
    for point in points {
        let n = counts.get(point).copied().unwrap_or(0);
        assert!(n > 0, "{s:?}: fault point {point} is never reached");
        // The first and the last occurrence (an error ends the command, so the middle one
        // differs from the last only in how much was committed before).
        let mut hits = vec![1, n];
        hits.dedup();
        for hit in hits {
            let f = prepare(s, seed);
            let c = f.dir.path().join("c");
            let what = format!("{s:?} with EIO at {point}:{hit}");
            let out = run(&c, &s.args(&f.files), Some(&format!("eio:{point}:{hit}")));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("fault injection: I/O error"),
                "{what}: not injected: {err}"
            );
            assert_eq!(out.status.code(), Some(2), "{what}: {err}");
            let message = err
                .lines()
                .find(|l| !l.contains("fault injection"))
                .unwrap_or_default();
            assert!(
                message.contains("Input/output error") && message.contains(c.to_str().unwrap()),
                "{what}: the error names neither the file nor the I/O error: {err}"
            );
            tally.faults += 1;
            tally.objects_checked += check_after_crash(&f, s, &what);
            if matches!(s, Scenario::Pack | Scenario::Import) {
                no_uncommitted_tail(&f, &what);
            }
            rerun_completes(&f, s, &what);
            if matches!(s, Scenario::Pack | Scenario::Import) {
                no_uncommitted_tail(&f, &format!("{what}, after re-run"));
            }
        }
    }
}

fn random_kills(s: Scenario, seed: u64, n: usize, tally: &mut Tally) {
    // Measure an uninterrupted run to spread the kill instants over it.
    let f = prepare(s, seed);
    let c = f.dir.path().join("c");
    let t = Instant::now();
    let out = run(&c, &s.args(&f.files), None);
    assert!(out.status.success());
    let dur = t.elapsed().max(Duration::from_millis(20));
    let mut x = seed | 1;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = dur.mul_f64((x % 1000) as f64 / 1000.0 * 1.2);
        let f = prepare(s, seed);
        let c = f.dir.path().join("c");
        let mut child = dos()
            .arg("-q")
            .arg("-p")
            .arg(&c)
            .args(s.args(&f.files))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let _ = Command::new("kill")
            .args(["-9", &child.id().to_string()])
            .status();
        let status = child.wait().unwrap();
        let what = format!("{s:?} SIGKILL #{i} after {at:?} ({status})");
        tally.kills += usize::from(!status.success());
        tally.objects_checked += check_after_crash(&f, s, &what);
        rerun_completes(&f, s, &what);
    }
}

fn scenario(s: Scenario) {
    let _ = common::python();
    let seed = std::env::var("DOS_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos() as u64)
        });
    let n = std::env::var("DOS_CRASH_RANDOM_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    eprintln!("{s:?}: DOS_CRASH_SEED={seed}");
    let mut tally = Tally::default();
    crash_at_fault_points(s, seed, &mut tally);
    eio_at_fault_points(s, seed, &mut tally);
    random_kills(s, seed, n, &mut tally);
    eprintln!(
        "{s:?}: {} kills, {} injected I/O errors, {} objects checked after them, 0 lost",
        tally.kills, tally.faults, tally.objects_checked
    );
    let summary: BTreeMap<&str, usize> = [
        ("kills", tally.kills),
        ("io_errors", tally.faults),
        ("objects_checked", tally.objects_checked),
    ]
    .into();
    if let Ok(dir) = std::env::var("DOS_CRASH_REPORT_DIR") {
        let _ = fs::write(
            Path::new(&dir).join(format!("{s:?}.json")),
            serde_json::to_vec(&summary).unwrap(),
        );
    }
    assert!(tally.kills > 0);
}

#[test]
fn crash_pack() {
    scenario(Scenario::Pack);
}

#[test]
fn crash_repack() {
    scenario(Scenario::Repack);
}

#[test]
fn crash_optimize() {
    scenario(Scenario::Optimize);
}

#[test]
fn crash_direct_to_pack_import() {
    scenario(Scenario::Import);
}

#[test]
fn crash_loose_add() {
    scenario(Scenario::AddLoose);
}

#[test]
fn crash_compression_conversion() {
    scenario(Scenario::Convert);
}

#[test]
fn crash_compression_conversion_to_zstd() {
    scenario(Scenario::ConvertToZstd);
}
