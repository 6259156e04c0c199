//! A full disk, on a small filesystem each test mounts itself (a sized tmpfs; the test fails,
//! saying why, where it cannot mount one). For every write command: at several filesystem
//! sizes, so that the space runs out at different places (pack bytes, the index commit and its
//! journal, a repack's new pack, a backup's copy), the command fails with exit 2 and a message
//! naming a file, the container stays valid for dos and for Python with every object committed
//! before byte-exact, no pack has bytes past its last committed object, and once the filesystem
//! is larger the same command completes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{archive_objects, dos, make_archive, python, random_objects, sha256_hex};
use dos_core::maintain::ValidateOptions;
use dos_core::write::{ObjectSource, PackWriteOptions};
use dos_core::{Container, InitOptions, NoProgress, ObjectKey};

/// A tmpfs of a given size mounted on a temporary folder, unmounted on drop.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn new(kib: u64) -> SmallFs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "the disk-full tests mount a {kib} KiB tmpfs and cannot ({}); they need root (or \
             CAP_SYS_ADMIN), as in CI: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        SmallFs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn resize(&self, kib: u64) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={kib}k")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(st.success(), "remount the tmpfs at {kib} KiB");
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Every object of a container with its content.
type Contents = BTreeMap<ObjectKey, Vec<u8>>;

fn contents(c: &Path) -> Contents {
    let c = Container::open(c).unwrap();
    c.list_all_objects()
        .unwrap()
        .into_iter()
        .map(|k| {
            let v = c.get_object_content(&k).unwrap();
            (k, v)
        })
        .collect()
}

/// Write `objects` as files in `dir`; returns their paths.
fn files(dir: &Path, objects: &[Vec<u8>]) -> Vec<PathBuf> {
    fs::create_dir_all(dir).unwrap();
    objects
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let p = dir.join(format!("f{i}"));
            fs::write(&p, o).unwrap();
            p
        })
        .collect()
}

fn run(c: &Path, args: &[&str], extra: &[PathBuf]) -> Output {
    dos()
        .arg("-q")
        .arg("-p")
        .arg(c)
        .args(args)
        .args(extra)
        .output()
        .unwrap()
}

/// The checks after a command that may have failed for lack of space. Returns whether it failed.
fn check_state(c: &Path, before: &Contents, out: &Output, what: &str) -> bool {
    let err = String::from_utf8_lossy(&out.stderr);
    let failed = !out.status.success();
    if failed {
        assert_eq!(
            out.status.code(),
            Some(2),
            "{what}: exit code; stderr: {err}"
        );
        // A full disk met while writing, or (import-archive) refused before writing anything.
        let full = err.contains("No space left on device")
            || err.contains("are free on the container's filesystem");
        assert!(
            full && err.contains('/'),
            "{what}: the message must say the disk is full and name the file: {err}"
        );
    }
    // Everything committed before is there, byte-exact.
    let cont = Container::open(c).unwrap();
    for (k, v) in before {
        assert_eq!(&cont.get_object_content(k).unwrap(), v, "{what}: {k}");
    }
    let report = cont
        .validate(&ValidateOptions::default(), &NoProgress)
        .unwrap();
    assert!(report.is_valid(), "{what}: dos validate: {report:?}");
    // No bytes past the last committed object of any pack.
    for e in fs::read_dir(c.join("packs")).unwrap() {
        let e = e.unwrap();
        let Ok(id) = e.file_name().to_string_lossy().parse::<i64>() else {
            continue;
        };
        let end = cont
            .rows_in_pack(id)
            .unwrap()
            .iter()
            .map(|r| r.offset + r.length)
            .max()
            .unwrap_or(0);
        let len = e.metadata().unwrap().len();
        assert!(
            len == u64::try_from(end).unwrap(),
            "{what}: pack {id} has {len} bytes, its committed objects end at {end}"
        );
    }
    drop(cont);
    // Python reads and validates the same container.
    let py = Command::new(python())
        .args([
            "-c",
            "import sys\nfrom disk_objectstore import Container\n\
             with Container(sys.argv[1]) as c:\n    \
             assert c.validate().is_valid(), c.validate()\n    \
             print(len(list(c.list_all_objects())))",
        ])
        .arg(c)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{what}: Python validate: {}",
        String::from_utf8_lossy(&py.stderr)
    );
    failed
}

/// Run `args` (plus `extra` paths) on a container made by `setup` on a filesystem left with each
/// of `free_kib` KiB free after the setup; after a failure, the checks, then the filesystem grown to `big_kib` and the
/// same command run to completion. Asserts that at least one size ran out of space.
fn scenario(
    name: &str,
    free_kib: &[u64],
    big_kib: u64,
    setup: &dyn Fn(&Path),
    args: &[&str],
    extra: &[PathBuf],
    after: &dyn Fn(&Path),
) {
    let mut failures = 0;
    for &free in free_kib {
        let fsys = SmallFs::new(big_kib);
        let c = fsys.path().join("c");
        Container::init(&c, &InitOptions::default()).unwrap();
        setup(&c);
        let before = contents(&c);
        fsys.resize(used_kib(fsys.path()) + free);
        let what = format!("{name} with {free} KiB free");
        let out = run(&c, args, extra);
        // SQLite cannot open a WAL index (its -shm file) on a filesystem with no space at all,
        // for dos or Python alike: the checks get a little room, far from enough to complete.
        if !out.status.success() {
            fsys.resize(used_kib(fsys.path()) + 256);
        }
        if check_state(&c, &before, &out, &what) {
            failures += 1;
            fsys.resize(big_kib);
            let again = run(&c, args, extra);
            assert!(
                again.status.success(),
                "{what}: after space was freed the command failed: {}",
                String::from_utf8_lossy(&again.stderr)
            );
            check_state(&c, &before, &again, &format!("{what}, run again"));
        }
        after(&c);
    }
    assert!(failures > 0, "{name}: no size ran out of space");
}

/// KiB used on the filesystem at `p`.
fn used_kib(p: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-k", "--output=used"])
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}

fn objects() -> Vec<Vec<u8>> {
    random_objects(11, 300, 1)
}

fn expect_all(objs: &[Vec<u8>]) -> impl Fn(&Path) + '_ {
    move |c: &Path| {
        let got = contents(c);
        for o in objs {
            let k: ObjectKey = sha256_hex(o).parse().unwrap();
            assert_eq!(
                got.get(&k),
                Some(o),
                "{k} missing after the command completed"
            );
        }
    }
}

#[test]
fn add_to_packs_on_a_full_disk() {
    let objs = objects();
    let src = tempfile::tempdir().unwrap();
    let paths = files(src.path(), &objs);
    scenario(
        "add --pack",
        &[600, 1500, 3000],
        20_000,
        &|_| {},
        &["add", "--pack"],
        &paths,
        &expect_all(&objs),
    );
}

#[test]
fn loose_adds_on_a_full_disk() {
    let objs = objects();
    let src = tempfile::tempdir().unwrap();
    let paths = files(src.path(), &objs);
    scenario(
        "add",
        &[600, 2000],
        20_000,
        &|_| {},
        &["add"],
        &paths,
        &expect_all(&objs),
    );
}

#[test]
fn packing_loose_objects_on_a_full_disk() {
    let objs = objects();
    let setup = |c: &Path| {
        let c = Container::open(c).unwrap();
        for o in &objs {
            c.add_object(o).unwrap();
        }
    };
    scenario(
        "pack",
        &[64, 1000, 2500],
        40_000,
        &setup,
        &["pack", "--clean-loose"],
        &[],
        &expect_all(&objs),
    );
}

#[test]
fn repack_on_a_full_disk() {
    let objs = objects();
    let setup = |c: &Path| {
        let c = Container::open(c).unwrap();
        let mut w = c
            .pack_writer(&PackWriteOptions::default(), &NoProgress, |_, _| {})
            .unwrap();
        for o in &objs {
            w.push(ObjectSource::Bytes(o.clone())).unwrap();
        }
        w.finish().unwrap();
        let keys: Vec<ObjectKey> = c.list_all_objects().unwrap();
        let gone: Vec<ObjectKey> = keys.iter().step_by(5).copied().collect();
        c.delete_objects(&gone).unwrap();
    };
    scenario(
        "repack",
        &[64, 1500],
        40_000,
        &setup,
        &["repack"],
        &[],
        &|_| {},
    );
}

#[test]
fn import_objects_on_a_full_disk() {
    let objs = objects();
    let src = tempfile::tempdir().unwrap();
    let source = src.path().join("source");
    let s = Container::init(&source, &InitOptions::default()).unwrap();
    for o in &objs[..objs.len() / 2] {
        s.add_object(o).unwrap();
    }
    let mut w = s
        .pack_writer(&PackWriteOptions::default(), &NoProgress, |_, _| {})
        .unwrap();
    for o in &objs[objs.len() / 2..] {
        w.push(ObjectSource::Bytes(o.clone())).unwrap();
    }
    w.finish().unwrap();
    drop(s);
    scenario(
        "import-objects",
        &[600, 2000],
        20_000,
        &|_| {},
        &["import-objects"],
        &[source],
        &expect_all(&objs),
    );
}

#[test]
fn backup_onto_a_full_disk() {
    let objs = objects();
    let src = tempfile::tempdir().unwrap();
    let cpath = src.path().join("c");
    let c = Container::init(&cpath, &InitOptions::default()).unwrap();
    for o in &objs[..50] {
        c.add_object(o).unwrap();
    }
    let mut w = c
        .pack_writer(&PackWriteOptions::default(), &NoProgress, |_, _| {})
        .unwrap();
    for o in &objs[50..] {
        w.push(ObjectSource::Bytes(o.clone())).unwrap();
    }
    w.finish().unwrap();
    drop(c);
    let want = contents(&cpath);
    let mut failures = 0;
    for kib in [100, 1000, 3000] {
        let fsys = SmallFs::new(kib);
        let dest = fsys.path().join("backups");
        let out = run(&cpath, &["backup"], std::slice::from_ref(&dest));
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            continue;
        }
        failures += 1;
        assert_eq!(out.status.code(), Some(2), "{kib} KiB: {err}");
        assert!(
            err.contains("No space left on device") && err.contains('/'),
            "{kib} KiB: {err}"
        );
        assert!(
            dos_core::maintain::existing_backups(&dest)
                .unwrap_or_default()
                .is_empty(),
            "{kib} KiB: a backup was published"
        );
        fsys.resize(40_000);
        let again = run(&cpath, &["backup"], std::slice::from_ref(&dest));
        assert!(
            again.status.success(),
            "{kib} KiB, run again: {}",
            String::from_utf8_lossy(&again.stderr)
        );
        let published = dos_core::maintain::existing_backups(&dest).unwrap();
        assert_eq!(published.len(), 1);
        assert!(!dest.join("live-backup").exists());
        assert_eq!(
            contents(&published[0]),
            want,
            "{kib} KiB: the backup's objects"
        );
    }
    assert!(failures > 0, "backup: no size ran out of space");
}

#[test]
fn archive_import_on_a_full_disk() {
    let src = tempfile::tempdir().unwrap();
    let archive = src.path().join("plain.aiida");
    let want = archive_objects(&make_archive("plain", &archive));
    // Small free spaces: the pack bytes, the index commit and its journal run out in turn.
    scenario(
        "import-archive",
        &[8, 32, 96, 160],
        20_000,
        &|_| {},
        &["import-archive"],
        &[archive],
        &|c: &Path| {
            let got = contents(c);
            for (k, (size, digest)) in &want {
                let v = &got[&k.parse::<ObjectKey>().unwrap()];
                assert_eq!(
                    (v.len() as u64, sha256_hex(v)),
                    (*size, digest.clone()),
                    "{k}"
                );
            }
        },
    );
}

#[test]
fn archive_import_while_another_process_fills_the_disk() {
    let src = tempfile::tempdir().unwrap();
    let archive = src.path().join("plain.aiida");
    make_archive("plain", &archive);
    let mut failures = 0;
    for round in 0..6 {
        let fsys = SmallFs::new(8_000);
        let c = fsys.path().join("c");
        Container::init(&c, &InitOptions::default()).unwrap();
        let before = contents(&c);
        // The filler writes until the disk is full, racing the import.
        let mut filler = Command::new("dd")
            .args(["if=/dev/zero", "bs=64k", "status=none"])
            .arg(format!("of={}", fsys.path().join("filler").display()))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        if round % 2 == 1 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let out = run(&c, &["import-archive"], std::slice::from_ref(&archive));
        let _ = filler.wait();
        let what = format!("import-archive racing a filler, round {round}");
        fs::remove_file(fsys.path().join("filler")).unwrap();
        if check_state(&c, &before, &out, &what) {
            failures += 1;
            let again = run(&c, &["import-archive"], std::slice::from_ref(&archive));
            assert!(
                again.status.success(),
                "{what}: after space was freed: {}",
                String::from_utf8_lossy(&again.stderr)
            );
        }
    }
    assert!(failures > 0, "the filler never won a race");
}
