//! `dos backup`: complete, incremental backups in disk-objectstore's layout, each read and
//! validated by Python disk-objectstore; a killed backup leaves the earlier ones intact and the
//! next run completes; refused while a maintenance operation holds the container.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{Manifest, dos, py, random_objects, sha256_hex, write_manifest};
use dos_core::maintain::LockMode;
use dos_core::write::{ObjectSource, PackWriteOptions};
use dos_core::{Container, InitOptions, NoProgress};

/// Add `objects` to `c` (packed or loose), recording them in `m`; returns their bytes.
fn add(c: &Container, objects: &[Vec<u8>], packed: bool, m: &mut Manifest) -> u64 {
    if packed {
        let mut w = c
            .pack_writer(&PackWriteOptions::default(), &NoProgress, |_, _| {})
            .unwrap();
        for o in objects {
            w.push(ObjectSource::Bytes(o.clone())).unwrap();
        }
        w.finish().unwrap();
    } else {
        for o in objects {
            c.add_object(o).unwrap();
        }
    }
    for o in objects {
        m.insert(sha256_hex(o), (o.len() as u64, sha256_hex(o)));
    }
    objects.iter().map(|o| o.len() as u64).sum()
}

/// `dos -p C backup DEST --json ARGS...`: its JSON summary (panics on failure).
fn backup(c: &Path, dest: &Path, args: &[&str]) -> serde_json::Value {
    let out = dos()
        .arg("-q")
        .arg("-p")
        .arg(c)
        .arg("backup")
        .arg(dest)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dos backup failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Python disk-objectstore reads every object of the backup byte-exact and validates it.
fn python_verifies(folder: &Path, m: &Manifest, tmp: &Path, name: &str) -> serde_json::Value {
    let manifest = write_manifest(&tmp.join(name), m);
    py(&[
        "verify",
        folder.to_str().unwrap(),
        manifest.to_str().unwrap(),
    ])
}

fn backups(dest: &Path) -> Vec<PathBuf> {
    dos_core::maintain::existing_backups(dest).unwrap()
}

/// Number of loose files of the container at `c`.
fn loose_files(c: &Path) -> u64 {
    let mut n = 0;
    for e in fs::read_dir(c.join("loose")).unwrap() {
        let e = e.unwrap();
        n += if e.file_type().unwrap().is_dir() {
            fs::read_dir(e.path()).unwrap().count() as u64
        } else {
            1
        };
    }
    n
}

fn u(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

#[test]
fn incremental_backups_are_complete_containers_python_validates() {
    let tmp = tempfile::tempdir().unwrap();
    let cpath = tmp.path().join("c");
    let c = Container::init(&cpath, &InitOptions::default()).unwrap();
    let dest = tmp.path().join("backups");
    let mut m = Manifest::new();
    add(&c, &random_objects(1, 300, 2), true, &mut m);
    add(&c, &random_objects(2, 60, 0), false, &mut m);

    let loose1 = loose_files(&cpath);
    assert!(loose1 > 50);
    let first = backup(&cpath, &dest, &[]);
    let f1 = PathBuf::from(first["folder"].as_str().unwrap());
    assert_eq!(backups(&dest), vec![f1.clone()]);
    assert_eq!(
        (u(&first, "packs_copied"), u(&first, "packs_linked")),
        (1, 0)
    );
    assert_eq!(u(&first, "loose_copied"), loose1);
    let v = python_verifies(&f1, &m, tmp.path(), "m1");
    assert_eq!(v["objects"].as_u64(), Some(m.len() as u64));
    let m1 = m.clone();
    let pack1 = fs::read(f1.join("packs/0")).unwrap();

    // 1 % new data: a few objects appended to the same pack, a few new loose ones.
    let new_bytes = add(&c, &random_objects(3, 8, 0), true, &mut m)
        + add(&c, &random_objects(4, 4, 0), false, &mut m);
    let new_loose = loose_files(&cpath) - loose1;
    let second = backup(&cpath, &dest, &[]);
    let f2 = PathBuf::from(second["folder"].as_str().unwrap());
    assert_eq!(backups(&dest), vec![f1.clone(), f2.clone()]);
    assert_eq!(
        (
            u(&second, "packs_appended"),
            u(&second, "packs_copied"),
            u(&second, "loose_linked"),
            u(&second, "loose_copied")
        ),
        (1, 0, loose1, new_loose),
        "{second}"
    );
    let written = u(&second, "bytes_written") - u(&second, "index_bytes");
    assert!(
        written <= 2 * new_bytes,
        "the second backup wrote {written} bytes for {new_bytes} new"
    );
    assert_eq!(
        fs::read_link(dest.join("last-backup")).unwrap(),
        PathBuf::from(f2.file_name().unwrap())
    );
    python_verifies(&f2, &m, tmp.path(), "m2");
    // The first backup still holds exactly what it held: its pack only grew past its own end.
    python_verifies(&f1, &m1, tmp.path(), "m1b");
    let after = fs::read(f1.join("packs/0")).unwrap();
    assert_eq!(&after[..pack1.len()], &pack1[..]);

    // Nothing new: everything linked, only the index written.
    let third = backup(&cpath, &dest, &["--keep", "1", "--verify"]);
    assert_eq!(u(&third, "packs_linked"), 1, "{third}");
    assert_eq!(u(&third, "bytes_written"), u(&third, "index_bytes"));
    assert_eq!(
        u(&third, "verified_objects"),
        u(&third, "packed_objects") + loose_files(&cpath)
    );
    let f3 = PathBuf::from(third["folder"].as_str().unwrap());
    assert_eq!(backups(&dest), vec![f2, f3.clone()], "--keep 1 keeps two");
    python_verifies(&f3, &m, tmp.path(), "m3");
}

#[test]
fn a_killed_or_failed_backup_leaves_earlier_ones_intact_and_the_next_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let cpath = tmp.path().join("c");
    let c = Container::init(&cpath, &InitOptions::default()).unwrap();
    let dest = tmp.path().join("backups");
    let mut m = Manifest::new();
    add(&c, &random_objects(5, 200, 1), true, &mut m);
    add(&c, &random_objects(6, 30, 0), false, &mut m);
    let first = backup(&cpath, &dest, &[]);
    let f1 = PathBuf::from(first["folder"].as_str().unwrap());
    let m1 = m.clone();
    add(&c, &random_objects(7, 20, 0), true, &mut m);
    add(&c, &random_objects(8, 5, 0), false, &mut m);
    let points = [
        "backup.loose",
        "backup.index",
        "backup.pack",
        "backup.publish",
    ];
    // Killed there, or failed there by an I/O error.
    let faults = points
        .iter()
        .map(|p| format!("{p}:1"))
        .chain(points.iter().map(|p| format!("eio:{p}:1")));
    for point in faults {
        let out = dos()
            .args(["-q", "-p"])
            .arg(&cpath)
            .arg("backup")
            .arg(&dest)
            .env("DOS_FAULT", &point)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if point.starts_with("eio:") {
            assert_eq!(out.status.code(), Some(2), "{point}: {err}");
            assert!(
                err.contains("Input/output error") && err.contains(dest.to_str().unwrap()),
                "{point}: the error names neither the file nor the I/O error: {err}"
            );
        } else {
            assert!(!out.status.success(), "{point}: the backup was not killed");
        }
        assert_eq!(
            backups(&dest),
            vec![f1.clone()],
            "{point}: something was published"
        );
        python_verifies(&f1, &m1, tmp.path(), "m1");
    }
    let done = backup(&cpath, &dest, &[]);
    let f2 = PathBuf::from(done["folder"].as_str().unwrap());
    assert!(!dest.join("live-backup").exists());
    assert_eq!(backups(&dest), vec![f1.clone(), f2.clone()]);
    python_verifies(&f2, &m, tmp.path(), "m2");
    python_verifies(&f1, &m1, tmp.path(), "m1");
}

#[test]
fn refused_while_a_maintenance_operation_holds_the_container() {
    let tmp = tempfile::tempdir().unwrap();
    let cpath = tmp.path().join("c");
    let c = Container::init(&cpath, &InitOptions::default()).unwrap();
    let mut m = Manifest::new();
    add(&c, &random_objects(9, 10, 0), true, &mut m);
    let dest = tmp.path().join("backups");
    let lock = c.lock_maintenance(LockMode::Exclusive, "repack").unwrap();
    let out = dos()
        .args(["-q", "-p"])
        .arg(&cpath)
        .arg("backup")
        .arg(&dest)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("another dos operation") && err.contains("repack"),
        "{err}"
    );
    assert!(backups(&dest).is_empty() && !dest.join("live-backup").exists());
    drop(lock);
    let ok = backup(&cpath, &dest, &[]);
    python_verifies(
        Path::new(ok["folder"].as_str().unwrap()),
        &m,
        tmp.path(),
        "m",
    );
}
