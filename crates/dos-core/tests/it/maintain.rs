//! Maintenance operations: pack, repack, clean, delete, validate, import, recovery.

use std::fs;

use dos_core::maintain::{
    CleanOptions, PackLooseOptions, REPACK_JOURNAL, RepackCompress, RepackOptions, ValidateOptions,
};
use dos_core::{
    CompressMode, Container, Error, HashType, InitOptions, NoProgress, ObjectKey, PackWriteOptions,
};

use crate::util::{Rng, new_container, pack_dir_entries, sha256};

fn loose_container(d: &std::path::Path, n: usize) -> (Container, Vec<(ObjectKey, Vec<u8>)>) {
    let c = new_container(
        d,
        InitOptions {
            pack_size_target: 150_000,
            ..InitOptions::default()
        },
    );
    let mut rng = Rng::new(77);
    let mut all: Vec<(ObjectKey, Vec<u8>)> = rng
        .objects(n, 200_000)
        .into_iter()
        .map(|x| (c.add_object(&x).unwrap(), x))
        .collect();
    all.sort();
    all.dedup();
    (c, all)
}

fn assert_all_readable(c: &Container, all: &[(ObjectKey, Vec<u8>)]) {
    for (k, x) in all {
        assert_eq!(&c.get_object_content(k).unwrap(), x, "{k}");
    }
    let r = c
        .validate(&ValidateOptions::default(), &NoProgress)
        .unwrap();
    assert!(r.is_valid(), "{r:?}");
}

#[test]
fn pack_all_loose_with_and_without_cleaning() {
    for (clean_loose, compress) in [(false, CompressMode::No), (true, CompressMode::Auto)] {
        let d = tempfile::tempdir().unwrap();
        let (c, all) = loose_container(d.path(), 300);
        // A corrupt loose file: content does not match its name.
        let bad_key = sha256(b"what the name says");
        let bad_path = c.loose_path(&bad_key);
        fs::create_dir_all(bad_path.parent().unwrap()).unwrap();
        fs::write(&bad_path, b"something else").unwrap();

        let s = c
            .pack_all_loose(
                &PackLooseOptions {
                    compress,
                    clean_loose,
                    ..PackLooseOptions::default()
                },
                &NoProgress,
            )
            .unwrap();
        assert_eq!(s.packed as usize, all.len());
        assert_eq!(s.corrupt.len(), 1);
        assert_eq!(s.corrupt[0].key, bad_key);
        assert_eq!(s.corrupt[0].actual, sha256(b"something else"));
        assert!(bad_path.exists(), "a corrupt loose file is never deleted");
        let count = c.count_objects().unwrap();
        assert_eq!(count.packed as usize, all.len());
        assert!(count.pack_files > 1);
        assert_eq!(
            count.loose,
            if clean_loose { 1 } else { all.len() as u64 + 1 }
        );
        fs::remove_file(&bad_path).unwrap();
        assert_all_readable(&c, &all);
        // A second run has nothing to do.
        let s = c
            .pack_all_loose(&PackLooseOptions::default(), &NoProgress)
            .unwrap();
        assert_eq!(s.packed, 0);
    }
}

#[test]
fn repack_reclaims_holes_and_changes_compression() {
    let d = tempfile::tempdir().unwrap();
    let (c, all) = loose_container(d.path(), 300);
    c.pack_all_loose(
        &PackLooseOptions {
            clean_loose: true,
            ..PackLooseOptions::default()
        },
        &NoProgress,
    )
    .unwrap();
    // Nothing to reclaim: no pack is rewritten.
    let s = c.repack(&RepackOptions::default(), &NoProgress).unwrap();
    assert!(s.packs_rewritten.is_empty(), "{s:?}");

    // Delete 10%: holes appear; repack rewrites only the packs that have some.
    let doomed: Vec<ObjectKey> = all.iter().map(|(k, _)| *k).step_by(10).collect();
    let deleted = c.delete_objects(&doomed).unwrap();
    assert_eq!(deleted.len(), doomed.len());
    let keep: Vec<(ObjectKey, Vec<u8>)> = all
        .iter()
        .filter(|(k, _)| !doomed.contains(k))
        .cloned()
        .collect();
    let before = c.get_total_size().unwrap();
    assert!(before.total_size_packfiles_on_disk > before.total_size_packed_on_disk);
    let s = c.repack(&RepackOptions::default(), &NoProgress).unwrap();
    assert!(!s.packs_rewritten.is_empty());
    let after = c.get_total_size().unwrap();
    assert_eq!(
        after.total_size_packfiles_on_disk,
        after.total_size_packed_on_disk
    );
    assert!(!c.layout().packs.join(REPACK_JOURNAL).exists());
    assert_all_readable(&c, &keep);
    for (k, _) in all.iter().step_by(10) {
        assert!(!c.has_object(k).unwrap());
    }

    // Compression changes.
    type Check = fn(bool, u64) -> bool;
    let checks: [(RepackCompress, Check); 4] = [
        (RepackCompress::Yes, |compressed, size| {
            compressed || size == 0
        }),
        (RepackCompress::No, |compressed, _| !compressed),
        (RepackCompress::Auto, |_, _| true),
        (RepackCompress::Keep, |_, _| true),
    ];
    for (mode, check) in checks {
        c.repack(
            &RepackOptions {
                compress: mode,
                force: mode == RepackCompress::Keep,
                ..RepackOptions::default()
            },
            &NoProgress,
        )
        .unwrap();
        for (k, _) in &keep {
            let loc = c.get_object_meta(k).unwrap().location.unwrap();
            assert!(check(loc.compressed, loc.size), "{mode:?} {loc:?}");
        }
        assert_all_readable(&c, &keep);
    }
}

#[test]
fn interrupted_dos_repack_is_rolled_back_or_completed() {
    let d = tempfile::tempdir().unwrap();
    let (c, all) = loose_container(d.path(), 100);
    c.pack_all_loose(
        &PackLooseOptions {
            clean_loose: true,
            ..PackLooseOptions::default()
        },
        &NoProgress,
    )
    .unwrap();
    let packs = pack_dir_entries(&c);
    // Crash before the switch: journal + a partial new pack; rows still point at pack 0.
    fs::write(c.layout().pack(99), b"partial garbage").unwrap();
    fs::write(
        c.layout().packs.join(REPACK_JOURNAL),
        br#"{"old":0,"new":99}"#,
    )
    .unwrap();
    let r = c
        .validate(&ValidateOptions::default(), &NoProgress)
        .unwrap();
    assert!(r.interrupted_repack.is_some() && r.is_valid());
    let notes = {
        let _l = c
            .lock_maintenance(dos_core::maintain::LockMode::Exclusive, "test")
            .unwrap();
        c.recover().unwrap()
    };
    assert!(notes[0].contains("rolled back"), "{notes:?}");
    assert_eq!(pack_dir_entries(&c), packs);
    assert_all_readable(&c, &all);

    // Crash after the switch: rows moved to the new pack, old pack still there.
    let old = fs::read(c.layout().pack(0)).unwrap();
    fs::write(c.layout().pack(99), &old).unwrap();
    {
        let conn = rusqlite_connection(c.layout());
        conn.execute("UPDATE db_object SET pack_id = 99 WHERE pack_id = 0", [])
            .unwrap();
    }
    fs::write(
        c.layout().packs.join(REPACK_JOURNAL),
        br#"{"old":0,"new":99}"#,
    )
    .unwrap();
    let s = c.clean(&CleanOptions::default(), &NoProgress).unwrap();
    assert!(s.recovered[0].contains("completed"), "{:?}", s.recovered);
    assert!(!c.layout().pack(0).exists());
    assert_all_readable(&c, &all);
}

#[test]
fn interrupted_python_repack_is_completed() {
    let d = tempfile::tempdir().unwrap();
    let (c, all) = loose_container(d.path(), 100);
    c.pack_all_loose(&PackLooseOptions::default(), &NoProgress)
        .unwrap();
    // Python's state after step 2 of repack_pack: packs/-1 holds the data, rows point at -1,
    // and the old pack is still there.
    fs::copy(c.layout().pack(0), c.layout().packs.join("-1")).unwrap();
    {
        let conn = rusqlite_connection(c.layout());
        conn.execute("UPDATE db_object SET pack_id = -1 WHERE pack_id = 0", [])
            .unwrap();
    }
    let moved: Vec<&ObjectKey> = all
        .iter()
        .map(|(k, _)| k)
        .filter(|k| matches!(c.get_object_meta(k), Err(Error::Corrupt { .. })))
        .collect();
    assert!(!moved.is_empty());
    let r = c
        .validate(&ValidateOptions::default(), &NoProgress)
        .unwrap();
    assert!(r.rows_in_pack_minus_one > 0 && !r.is_valid());
    let s = c.repack(&RepackOptions::default(), &NoProgress).unwrap();
    assert!(
        s.recovered[0].contains("Python repack"),
        "{:?}",
        s.recovered
    );
    assert!(!c.layout().packs.join("-1").exists());
    assert_all_readable(&c, &all);

    // packs/-1 alone (Python crashed while writing it): removed when no lock says it is in use.
    fs::write(c.layout().packs.join("-1"), b"junk").unwrap();
    c.clean(&CleanOptions::default(), &NoProgress).unwrap();
    assert!(!c.layout().packs.join("-1").exists());
}

/// A raw second connection to the index, to simulate states other programs leave.
fn rusqlite_connection(l: &dos_core::layout::Layout) -> rusqlite::Connection {
    rusqlite::Connection::open(&l.index).unwrap()
}

#[test]
fn clean_duplicates_sandbox_and_stale_locks() {
    let d = tempfile::tempdir().unwrap();
    let c = new_container(d.path(), InitOptions::default());
    let good = b"good".to_vec();
    let k_good = c.add_object(&good).unwrap();
    // Duplicates of an existing object: deleted.
    fs::write(c.layout().duplicates.join(format!("{k_good}.aaa")), &good).unwrap();
    // Duplicates of a missing object: the first valid one is restored.
    let lost = b"lost object".to_vec();
    let k_lost = sha256(&lost);
    fs::write(
        c.layout().duplicates.join(format!("{k_lost}.1")),
        b"corrupt",
    )
    .unwrap();
    fs::write(c.layout().duplicates.join(format!("{k_lost}.2")), &lost).unwrap();
    // Only corrupt duplicates: unresolved, kept.
    let k_bad = sha256(b"never seen");
    fs::write(c.layout().duplicates.join(format!("{k_bad}.x")), b"nope").unwrap();
    fs::write(c.layout().duplicates.join(".hidden"), b"").unwrap();
    // Sandbox: an old leftover and a fresh file (a live writer).
    let old = c.layout().sandbox.join("old");
    fs::write(&old, b"x").unwrap();
    let fresh = c.layout().sandbox.join("fresh");
    fs::write(&fresh, b"y").unwrap();
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(past)
        .unwrap();
    // A stale dos lock and a Python (unknown) lock.
    fs::write(c.layout().pack_lock(4), b"dos pid=4242 token=dead\n").unwrap();
    fs::write(c.layout().pack_lock(5), b"").unwrap();

    let s = c
        .clean(
            &CleanOptions {
                vacuum: true,
                ..CleanOptions::default()
            },
            &NoProgress,
        )
        .unwrap();
    assert_eq!(s.duplicates_restored, vec![k_lost.to_string()]);
    assert_eq!(s.duplicates_unresolved, vec![k_bad.to_string()]);
    assert_eq!(s.duplicates_deleted, 2);
    assert_eq!(c.get_object_content(&k_lost).unwrap(), lost);
    assert!(c.layout().duplicates.join(format!("{k_bad}.x")).exists());
    assert!(c.layout().duplicates.join(".hidden").exists());
    assert_eq!(s.sandbox_deleted, 1);
    assert!(!old.exists() && fresh.exists());
    assert!(
        s.recovered.iter().any(|n| n.contains("4.lock")),
        "{:?}",
        s.recovered
    );
    assert!(!c.layout().pack_lock(4).exists());
    assert!(
        c.layout().pack_lock(5).exists(),
        "Python's lock is never removed"
    );
    assert!(s.vacuumed);
}

#[test]
fn validate_finds_every_kind_of_problem() {
    let d = tempfile::tempdir().unwrap();
    let c = new_container(
        d.path(),
        InitOptions {
            pack_size_target: 20_000,
            ..InitOptions::default()
        },
    );
    let mut rng = Rng::new(8);
    let data: Vec<Vec<u8>> = (0..60).map(|i| rng.content(500 + i * 50)).collect();
    let keys = c
        .add_objects_to_pack(
            data.clone(),
            &PackWriteOptions {
                compress: CompressMode::Auto,
                ..PackWriteOptions::default()
            },
        )
        .unwrap();
    let loose_key = c.add_object(b"loose one").unwrap();
    let r = c
        .validate(&ValidateOptions::default(), &NoProgress)
        .unwrap();
    assert!(r.is_valid(), "{r:?}");
    assert_eq!(r.objects_checked, 61);

    // Corrupt one packed object's bytes (flip the middle of its range).
    let victim = &keys[3];
    let loc = c.get_object_meta(victim).unwrap().location.unwrap();
    let p = c.layout().pack(loc.pack_id);
    let mut bytes = fs::read(&p).unwrap();
    let mid = (loc.offset + loc.length / 2) as usize;
    bytes[mid] ^= 0x55;
    fs::write(&p, &bytes).unwrap();
    // A corrupt loose file.
    fs::write(c.loose_path(&loose_key), b"tampered").unwrap();
    // An orphan pack, a missing pack (rename the last one away), a stale lock.
    fs::write(c.layout().pack(50), b"orphan").unwrap();
    let last = c.count_objects().unwrap().pack_files - 2; // ignore pack 50
    fs::rename(c.layout().pack(last), d.path().join("moved-away")).unwrap();
    fs::write(c.layout().pack_lock(7), b"dos pid=1 token=gone\n").unwrap();

    let r = c
        .validate(&ValidateOptions::default(), &NoProgress)
        .unwrap();
    assert!(!r.is_valid());
    let bad_packed: Vec<&String> = r
        .invalid_hashes_packed
        .iter()
        .chain(r.invalid_sizes_packed.iter())
        .chain(r.unreadable_packed.iter().map(|p| &p.key))
        .collect();
    assert_eq!(bad_packed, vec![&victim.to_string()]);
    assert_eq!(r.invalid_hashes_loose, vec![loose_key.to_string()]);
    assert_eq!(r.orphan_packs, vec![50]);
    assert_eq!(r.missing_packs.len(), 1);
    assert_eq!(r.missing_packs[0].pack_id, last as i64);
    assert_eq!(r.stale_locks, vec!["7.lock".to_string()]);
}

/// Validate the same damaged container through both ways of walking the index (rows sorted in
/// memory and mapped packs; SQLite's sort and `pread`): the reports must be identical, and
/// each kind of damage must be in them.
#[test]
fn validate_sorts_in_memory_and_in_spilled_runs_alike() {
    let d = tempfile::tempdir().unwrap();
    let c = new_container(d.path(), InitOptions::default());
    let mut rng = Rng::new(21);
    let data: Vec<Vec<u8>> = (0..40).map(|i| rng.content(300 + i * 37)).collect();
    let keys = c
        .add_objects_to_pack(data.clone(), &PackWriteOptions::default())
        .unwrap();
    let empty = c
        .add_objects_to_pack(vec![Vec::new()], &PackWriteOptions::default())
        .unwrap()
        .remove(0);
    let loc = |k: &ObjectKey| c.get_object_meta(k).unwrap().location.unwrap();
    let hex: Vec<String> = keys.iter().map(ToString::to_string).collect();
    let empty_hex = empty.to_string();
    let pack_len = fs::metadata(c.layout().pack(0)).unwrap().len() as i64;
    let conn = rusqlite_connection(c.layout());
    let set = |sql: &str, p: &[&dyn rusqlite::ToSql]| {
        assert_eq!(conn.execute(sql, p).unwrap(), 1, "{sql}");
    };
    let add = |key: &str, offset: i64, length: i64, size: i64, pack: i64| {
        conn.execute(
            "INSERT INTO db_object (hashkey, compressed, size, \"offset\", length, pack_id) \
             VALUES (?1, 0, ?2, ?3, ?4, ?5)",
            rusqlite::params![key, size, offset, length, pack],
        )
        .unwrap();
    };
    // Overlap: object 5 starts one byte into object 4 (and so also hashes wrong).
    let (l4, l5) = (loc(&keys[4]), loc(&keys[5]));
    set(
        "UPDATE db_object SET \"offset\" = ?1 WHERE hashkey = ?2",
        &[&((l4.offset + 1) as i64), &hex[5]],
    );
    assert!(l5.length > 1);
    // The empty object tied with object 7's offset: it comes after it (higher id), so it
    // overlaps, as Python's validate sees it.
    set(
        "UPDATE db_object SET \"offset\" = ?1 WHERE hashkey = ?2",
        &[&(loc(&keys[7]).offset as i64), &empty_hex],
    );
    // A wrong size, a range past the end, a malformed row, a missing pack, a pack -1 row.
    set(
        "UPDATE db_object SET size = size + 1 WHERE hashkey = ?1",
        &[&hex[9]],
    );
    add(
        &sha256(b"past the end").to_string(),
        pack_len + 5,
        10,
        10,
        0,
    );
    add(&sha256(b"negative").to_string(), -5, 10, 10, 0);
    add(&sha256(b"in a missing pack").to_string(), 0, 10, 10, 77);
    add(
        &sha256(b"during a python repack").to_string(),
        0,
        10,
        10,
        -1,
    );
    // Corrupt bytes of object 12.
    let l12 = loc(&keys[12]);
    let p = c.layout().pack(0);
    let mut bytes = fs::read(&p).unwrap();
    bytes[(l12.offset + l12.length / 2) as usize] ^= 0x5a;
    fs::write(&p, &bytes).unwrap();

    let run = |max_rows_in_memory: usize, map_packs: bool| {
        let opts = ValidateOptions {
            max_rows_in_memory,
            map_packs,
            ..ValidateOptions::default()
        };
        let r = c.validate(&opts, &NoProgress).unwrap();
        serde_json::to_value(&r).unwrap()
    };
    let fast = run(1_000_000, true);
    assert_eq!(fast, run(0, false));
    assert_eq!(fast, run(0, true));
    assert_eq!(fast, run(1_000_000, false));
    // Fewer rows allowed in memory than there are: sorted in spilled runs and merged (runs of
    // 3 rows: many runs, merged in order), same report, no run file left.
    assert_eq!(fast, run(10, true));
    let spilled = ValidateOptions {
        max_rows_in_memory: 0,
        sort_run_rows: 3,
        ..ValidateOptions::default()
    };
    let r = c.validate(&spilled, &NoProgress).unwrap();
    assert_eq!(fast, serde_json::to_value(&r).unwrap());
    assert_eq!(fs::read_dir(&c.layout().sandbox).unwrap().count(), 0);
    let list = |field: &str| -> Vec<String> {
        let v = &fast[field];
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.get("key").unwrap_or(x).as_str().unwrap().to_string())
            .collect()
    };
    let mut overlapping = vec![hex[5].clone(), empty_hex.clone()];
    overlapping.sort();
    let mut got = list("overlapping_packed");
    got.sort();
    assert_eq!(got, overlapping);
    assert!(list("invalid_hashes_packed").contains(&hex[12]));
    assert!(list("invalid_hashes_packed").contains(&hex[5]));
    assert_eq!(list("invalid_sizes_packed"), vec![hex[9].clone()]);
    let mut unreadable = list("unreadable_packed");
    unreadable.sort();
    let mut want = vec![
        sha256(b"past the end").to_string(),
        sha256(b"negative").to_string(),
    ];
    want.sort();
    assert_eq!(unreadable, want);
    assert_eq!(fast["missing_packs"][0]["pack_id"], 77);
    assert_eq!(fast["rows_in_pack_minus_one"], 1);

    // A key that is not lowercase hex cannot be held in 32 bytes: SQLite's sort is used, and
    // the row is reported (its content does not hash to it) the same way.
    set(
        "UPDATE db_object SET hashkey = ?1 WHERE hashkey = ?2",
        &[&hex[20].to_uppercase(), &hex[20]],
    );
    let upper = run(1_000_000, true);
    assert_eq!(upper, run(0, false));
    let bad: Vec<String> = upper["invalid_hashes_packed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    assert!(bad.contains(&hex[20].to_uppercase()), "{bad:?}");
}

#[test]
fn import_objects_between_containers() {
    let d = tempfile::tempdir().unwrap();
    let (src, all) = loose_container(&d.path().join("a"), 150);
    src.pack_all_loose(
        &PackLooseOptions {
            compress: CompressMode::Yes,
            ..PackLooseOptions::default()
        },
        &NoProgress,
    )
    .unwrap();
    // Same hash type, some objects already present.
    let dst = new_container(&d.path().join("b"), InitOptions::default());
    dst.add_object(&all[0].1).unwrap();
    let mut mapped = 0;
    let s = dst
        .import_objects(
            &src,
            None,
            &PackWriteOptions::default(),
            &NoProgress,
            |a, b| {
                assert_eq!(a, b);
                mapped += 1;
            },
        )
        .unwrap();
    assert_eq!(s.requested as usize, all.len());
    assert_eq!(s.already_present, 1);
    assert_eq!(s.written as usize, all.len() - 1);
    assert_eq!(mapped, all.len() - 1);
    assert_all_readable(&dst, &all);

    // Different hash type: rehashed, mapping reported.
    let sha1 = new_container(
        &d.path().join("c"),
        InitOptions {
            hash_type: HashType::Sha1,
            ..InitOptions::default()
        },
    );
    let mut map = std::collections::BTreeMap::new();
    sha1.import_objects(
        &src,
        None,
        &PackWriteOptions::default(),
        &NoProgress,
        |a, b| {
            map.insert(a, b);
        },
    )
    .unwrap();
    assert_eq!(map.len(), all.len());
    for (k, x) in &all {
        assert_eq!(map[k], HashType::Sha1.key_of(x));
        assert_eq!(&sha1.get_object_content(&map[k]).unwrap(), x);
    }
}

#[test]
fn maintenance_operations_exclude_each_other() {
    let d = tempfile::tempdir().unwrap();
    let c = new_container(d.path(), InitOptions::default());
    let other = Container::open(c.path()).unwrap();
    let held = other
        .lock_maintenance(dos_core::maintain::LockMode::Exclusive, "repack")
        .unwrap();
    let e = c.clean(&CleanOptions::default(), &NoProgress).unwrap_err();
    assert!(matches!(e, Error::Busy { .. }), "{e}");
    assert!(e.to_string().contains("running `repack`"), "{e}");
    assert!(
        c.validate(&ValidateOptions::default(), &NoProgress)
            .is_err()
    );
    drop(held);
    c.clean(&CleanOptions::default(), &NoProgress).unwrap();
    // Shared holders coexist (two validations at once).
    let _a = other
        .lock_maintenance(dos_core::maintain::LockMode::Shared, "validate")
        .unwrap();
    c.validate(&ValidateOptions::default(), &NoProgress)
        .unwrap();
    assert!(c.repack(&RepackOptions::default(), &NoProgress).is_err());
}

/// A repack's new pack is the highest pack, where writers start: a writer running alongside
/// must never take it between its creation and the repack's first write (the repack would then
/// fail on its own fresh pack), and every object either side wrote stays readable.
#[test]
fn repack_alongside_a_writer_keeps_its_fresh_pack() {
    let d = tempfile::tempdir().unwrap();
    let c = new_container(
        d.path(),
        InitOptions {
            pack_size_target: 4_000,
            ..InitOptions::default()
        },
    );
    let path = d.path().join("c");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let c = Container::open(&path).unwrap();
            let mut rng = Rng::new(9);
            let mut written = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let batch: Vec<Vec<u8>> = (0..3).map(|_| rng.content(700)).collect();
                let keys = c
                    .add_objects_to_pack(batch.clone(), &PackWriteOptions::default())
                    .unwrap();
                written.extend(keys.into_iter().zip(batch));
            }
            written
        })
    };
    let start = std::time::Instant::now();
    let mut repacks = 0;
    while start.elapsed() < std::time::Duration::from_secs(4) {
        let opts = RepackOptions {
            force: true,
            ..RepackOptions::default()
        };
        if let Err(e) = c.repack(&opts, &NoProgress) {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            panic!("repack {repacks} failed beside a writer: {e}");
        }
        repacks += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(
        repacks > 5 && written.len() > 30,
        "{repacks} {}",
        written.len()
    );
    assert_all_readable(&c, &written);
}
