//! Reads: streaming readers, bulk reads in pack order, existence checks, counts, corruption.

use std::fs;
use std::io::{Read, Seek, SeekFrom};

use dos_core::{
    CompressMode, Container, Error, HashType, InitOptions, ObjectContent, ObjectKey, ObjectType,
    PackWriteOptions,
};

use crate::util::{Rng, new_container, sha256};

fn mixed_container(d: &std::path::Path) -> (Container, Vec<(ObjectKey, Vec<u8>)>) {
    let c = new_container(
        d,
        InitOptions {
            pack_size_target: 200_000,
            ..InitOptions::default()
        },
    );
    let mut rng = Rng::new(21);
    let packed_plain = rng.objects(120, 100_000);
    let packed_z = rng.objects(120, 100_000);
    let loose = rng.objects(30, 50_000);
    let mut all = Vec::new();
    for (data, mode) in [
        (packed_plain, CompressMode::No),
        (packed_z, CompressMode::Yes),
    ] {
        let keys = c
            .add_objects_to_pack(
                data.clone(),
                &PackWriteOptions {
                    compress: mode,
                    ..PackWriteOptions::default()
                },
            )
            .unwrap();
        all.extend(keys.into_iter().zip(data));
    }
    for x in loose {
        all.push((c.add_object(&x).unwrap(), x));
    }
    all.sort();
    all.dedup();
    (c, all)
}

#[test]
fn streaming_reader_seeks_on_every_storage_without_writing() {
    let d = tempfile::tempdir().unwrap();
    let c = new_container(d.path(), InitOptions::default());
    let body: Vec<u8> = (0..300_000u32)
        .flat_map(|i| (i / 7).to_le_bytes())
        .collect();
    let kz = c
        .add_objects_to_pack(
            vec![body.clone()],
            &PackWriteOptions {
                compress: CompressMode::Yes,
                ..PackWriteOptions::default()
            },
        )
        .unwrap()
        .remove(0);
    let mut raw = body.clone();
    raw.push(1);
    let kp = c
        .add_objects_to_pack(vec![raw.clone()], &PackWriteOptions::default())
        .unwrap()
        .remove(0);
    let mut loose_body = body.clone();
    loose_body.push(2);
    let kl = c.add_object(&loose_body).unwrap();
    for (k, expect, kind) in [
        (&kz, &body, ObjectType::Packed),
        (&kp, &raw, ObjectType::Packed),
        (&kl, &loose_body, ObjectType::Loose),
    ] {
        let (mut r, meta) = c.open_object(k).unwrap();
        assert_eq!(meta.kind, kind);
        let n = expect.len() as u64;
        let mut buf = [0u8; 100];
        for pos in [
            SeekFrom::Start(1000),
            SeekFrom::Current(5),
            SeekFrom::End(-100),
            SeekFrom::Start(7),
        ] {
            let at = r.seek(pos).unwrap();
            let want = (n - at).min(100) as usize;
            r.read_exact(&mut buf[..want]).unwrap();
            assert_eq!(&buf[..want], &expect[at as usize..at as usize + want]);
        }
        r.seek(SeekFrom::Start(0)).unwrap();
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(&all, expect);
    }
    // Seeking in the compressed object left nothing on disk (Python would write a loose copy).
    assert_eq!(c.count_objects().unwrap().loose, 1);
    assert!(fs::read_dir(&c.layout().sandbox).unwrap().next().is_none());
}

#[test]
fn bulk_read_visits_each_pack_once_in_offset_order() {
    let d = tempfile::tempdir().unwrap();
    let (c, all) = mixed_container(d.path());
    assert!(c.count_objects().unwrap().pack_files > 2);
    let mut keys: Vec<ObjectKey> = all.iter().map(|(k, _)| *k).collect();
    let absent = ObjectKey::sha256([0xff; 32]);
    keys.push(absent);
    keys.reverse(); // input order must not matter
    let mut seen = Vec::new();
    let mut last: Option<(u64, u64)> = None;
    let mut packs_seen = Vec::new();
    let missing = c
        .read_objects(&keys, |k, content, meta| {
            let bytes = match content {
                ObjectContent::Bytes(b) => b.to_vec(),
                ObjectContent::Reader(r) => {
                    let mut v = Vec::new();
                    r.read_to_end(&mut v).unwrap();
                    v
                }
            };
            assert_eq!(sha256(&bytes), k);
            if let Some(loc) = meta.location {
                if let Some((p, off)) = last {
                    if p == loc.pack_id {
                        assert!(loc.offset >= off, "offsets go backwards in pack {p}");
                    } else {
                        assert!(!packs_seen.contains(&loc.pack_id), "pack visited twice");
                    }
                }
                if last.map(|l| l.0) != Some(loc.pack_id) {
                    packs_seen.push(loc.pack_id);
                }
                last = Some((loc.pack_id, loc.offset));
            }
            seen.push(k);
            Ok(())
        })
        .unwrap();
    assert_eq!(missing, vec![absent]);
    seen.sort();
    let want: Vec<ObjectKey> = all.iter().map(|(k, _)| *k).collect();
    assert_eq!(seen, want);
}

#[test]
fn bulk_read_hands_large_objects_as_streams() {
    let d = tempfile::tempdir().unwrap();
    let c = new_container(d.path(), InitOptions::default());
    let big = vec![3u8; (dos_core::BULK_INLINE_MAX + 10) as usize];
    let k = c
        .add_objects_to_pack(
            vec![big.clone(), b"small".to_vec()],
            &PackWriteOptions {
                compress: CompressMode::Yes,
                ..PackWriteOptions::default()
            },
        )
        .unwrap();
    let mut streamed = 0;
    c.read_objects(&k, |key, content, _| {
        match content {
            ObjectContent::Reader(r) => {
                streamed += 1;
                let mut n = 0u64;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let m = r.read(&mut buf).unwrap();
                    if m == 0 {
                        break;
                    }
                    assert!(buf[..m].iter().all(|b| *b == 3));
                    n += m as u64;
                }
                assert_eq!(n, big.len() as u64);
            }
            ObjectContent::Bytes(b) => assert_eq!(sha256(b), key),
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(streamed, 1);
}

#[test]
fn has_objects_every_strategy() {
    let d = tempfile::tempdir().unwrap();
    let (c, all) = mixed_container(d.path());
    let mut rng = Rng::new(4);
    let present: Vec<String> = all.iter().map(|(k, _)| k.to_string()).collect();
    // Few keys (indexed lookups + stat), many keys (sorted scan + loose listing).
    for n_absent in [5usize, 30_000] {
        let mut keys = present.clone();
        for _ in 0..n_absent {
            keys.push(format!(
                "{:016x}{:016x}{:016x}{:016x}",
                rng.next(),
                rng.next(),
                rng.next(),
                rng.next()
            ));
        }
        keys.push("not a key".into());
        keys.push(present[0].to_uppercase());
        keys.push(present[3].clone()); // duplicate in input
        // Keys as they are stored (lowercase hex of the right length) are looked up; anything
        // else names no object, as in Python, and is never looked up.
        let parsed: Vec<Option<ObjectKey>> = keys
            .iter()
            .map(|k| ObjectKey::from_canonical(HashType::Sha256, k.as_bytes()))
            .collect();
        let valid: Vec<ObjectKey> = parsed.iter().flatten().copied().collect();
        let found = c.has_objects(&valid).unwrap();
        assert_eq!(found.len(), valid.len());
        let mut found = found.into_iter();
        let has: Vec<bool> = parsed
            .iter()
            .map(|p| p.is_some() && found.next().unwrap())
            .collect();
        assert_eq!(has.len(), keys.len());
        for (k, h) in keys.iter().zip(&has) {
            assert_eq!(*h, present.contains(k), "{k}");
        }
    }
}

#[test]
fn counts_sizes_and_listing() {
    let d = tempfile::tempdir().unwrap();
    let (c, all) = mixed_container(d.path());
    let listed = c.list_all_objects().unwrap();
    let want: Vec<ObjectKey> = all.iter().map(|(k, _)| *k).collect();
    assert_eq!(listed, want);
    // Make one object both packed and loose: listed once, counted in both.
    let (k0, x0) = all
        .iter()
        .find(|(k, _)| c.get_object_meta(k).unwrap().kind == ObjectType::Packed)
        .unwrap();
    c.add_object(x0).unwrap();
    assert_eq!(c.list_all_objects().unwrap(), want);
    assert_eq!(c.get_object_meta(k0).unwrap().kind, ObjectType::Packed);
    let count = c.count_objects().unwrap();
    let loose = c.list_loose().unwrap();
    assert_eq!(count.loose, loose.len() as u64);
    assert!(loose.contains(k0));
    let both = loose
        .iter()
        .filter(|k| c.get_object_meta(k).unwrap().kind == ObjectType::Packed)
        .count() as u64;
    assert!(both >= 1);
    assert_eq!(count.packed + count.loose - both, want.len() as u64);
    let size = c.get_total_size().unwrap();
    let packed_sum: u64 = all
        .iter()
        .filter(|(k, _)| c.get_object_meta(k).unwrap().kind == ObjectType::Packed)
        .map(|(_, x)| x.len() as u64)
        .sum();
    assert_eq!(size.total_size_packed, packed_sum);
    assert!(size.total_size_packindexes_on_disk > 0);
}

#[test]
fn corruption_is_reported_with_object_and_file() {
    let d = tempfile::tempdir().unwrap();
    let c = new_container(d.path(), InitOptions::default());
    let body = b"some text that compresses, some text that compresses".repeat(20);
    let k = c
        .add_objects_to_pack(
            vec![body],
            &PackWriteOptions {
                compress: CompressMode::Yes,
                ..PackWriteOptions::default()
            },
        )
        .unwrap()
        .remove(0);
    // Flip bytes in the middle of the deflate stream.
    let pack = c.layout().pack(0);
    let mut bytes = fs::read(&pack).unwrap();
    for b in &mut bytes[10..20] {
        *b ^= 0xff;
    }
    fs::write(&pack, &bytes).unwrap();
    let e = c.get_object_content(&k).unwrap_err();
    match &e {
        Error::Corrupt { key, path, .. } => {
            assert_eq!(key, &k.to_string());
            assert_eq!(path, &pack);
        }
        other => panic!("{other}"),
    }
    // Truncated pack.
    fs::write(&pack, &bytes[..5]).unwrap();
    assert!(matches!(
        c.get_object_content(&k),
        Err(Error::Corrupt { .. })
    ));
    let e = c
        .read_objects(std::slice::from_ref(&k), |_, _, _| Ok(()))
        .unwrap_err();
    assert!(e.to_string().contains(&k.to_string()), "{e}");
    // Missing pack file.
    fs::remove_file(&pack).unwrap();
    let e = c.get_object_content(&k).unwrap_err().to_string();
    assert!(
        e.contains("pack file referenced by the index is missing"),
        "{e}"
    );
    assert!(
        c.get_object_content(&ObjectKey::sha256([0; 32]))
            .unwrap_err()
            .is_not_found()
    );
}
