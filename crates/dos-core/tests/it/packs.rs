//! Direct-to-pack writes: layout, rollover, streaming, dedup, failure and interruption.

use std::fs;
use std::io::{self, Read};

use dos_core::write::{self, PackItem, PackWriteSummary, Prepared, StoreOutcome, WriteTuning};
use dos_core::{
    CompressMode, Container, Error, InitOptions, Interrupt, NoProgress, ObjectKey, ObjectSource,
    PackWriteOptions,
};

use crate::util::{Rng, new_container, pack_dir_entries, sha256};

fn small_pipeline(compress: CompressMode) -> PackWriteOptions {
    PackWriteOptions {
        compress,
        // Tiny limits exercise chunking, batching and the streaming path.
        tuning: WriteTuning {
            memory_budget: 64 * 1024,
            large_object: 16 * 1024,
            batch_bytes: 100 * 1024,
            batch_objects: 50,
            ..WriteTuning::default()
        },
        ..PackWriteOptions::default()
    }
}

/// Write `items` in one pack writer session.
fn write_all<T: Into<PackItem>>(
    c: &Container,
    items: impl IntoIterator<Item = T>,
    opts: &PackWriteOptions,
    on_outcome: impl FnMut(usize, StoreOutcome),
) -> Result<PackWriteSummary, write::Error> {
    let mut w = c.pack_writer(opts, &NoProgress, on_outcome)?;
    for item in items {
        w.push(item)?;
    }
    w.finish()
}

/// The caller's own preparation, as a closure.
struct Custom(Box<dyn FnOnce() -> Prepared + Send>);

impl write::PrepareObject for Custom {
    fn size_hint(&self) -> u64 {
        100
    }
    fn prepare(self: Box<Self>) -> Prepared {
        (self.0)()
    }
}

#[test]
fn round_trip_all_modes_and_pipeline_shapes() {
    let mut rng = Rng::new(1);
    let data = rng.objects(400, 300_000);
    for compress in [CompressMode::No, CompressMode::Yes, CompressMode::Auto] {
        for opts in [
            PackWriteOptions {
                compress,
                ..PackWriteOptions::default()
            },
            small_pipeline(compress),
        ] {
            let d = tempfile::tempdir().unwrap();
            let c = new_container(d.path(), InitOptions::default());
            let keys = c.add_objects_to_pack(data.clone(), &opts).unwrap();
            for (k, x) in keys.iter().zip(&data) {
                assert_eq!(k, &sha256(x));
                assert_eq!(&c.get_object_content(k).unwrap(), x, "{compress:?}");
                let m = c.get_object_meta(k).unwrap();
                let loc = m.location.unwrap();
                assert_eq!(loc.size, x.len() as u64);
                if x.is_empty() && compress != CompressMode::Yes {
                    assert_eq!((loc.length, loc.compressed), (0, false));
                }
                match compress {
                    CompressMode::No => assert!(!loc.compressed),
                    // As Python: the empty object too.
                    CompressMode::Yes => assert!(loc.compressed),
                    CompressMode::Auto => {}
                }
            }
            // Nothing loose, no lock or sandbox leftovers, one pack.
            assert_eq!(c.count_objects().unwrap().loose, 0);
            assert_eq!(pack_dir_entries(&c), ["0"]);
            assert!(fs::read_dir(&c.layout().sandbox).unwrap().next().is_none());
            // With skip_existing (default) the pack holds each distinct object once, densely.
            let mut distinct: Vec<&Vec<u8>> = data.iter().collect();
            distinct.sort();
            distinct.dedup();
            let total = c.get_total_size().unwrap();
            assert_eq!(
                total.total_size_packed_on_disk,
                total.total_size_packfiles_on_disk
            );
            assert_eq!(c.count_objects().unwrap().packed, distinct.len() as u64);
        }
    }
}

#[test]
fn auto_compresses_text_not_random() {
    let d = tempfile::tempdir().unwrap();
    let c = new_container(d.path(), InitOptions::default());
    let text = b"energy = -1234.5678 Ry\n".repeat(2000);
    let mut rng = Rng::new(5);
    let random: Vec<u8> = (0..40_000).map(|_| rng.next() as u8).collect();
    for opts in [
        PackWriteOptions {
            compress: CompressMode::Auto,
            ..PackWriteOptions::default()
        },
        small_pipeline(CompressMode::Auto), // streaming path decides on a sample
    ] {
        let keys = c
            .add_objects_to_pack(
                vec![text.clone(), random.clone()],
                &PackWriteOptions {
                    skip_existing: false,
                    ..opts
                },
            )
            .unwrap();
        let t = c.get_object_meta(&keys[0]).unwrap().location.unwrap();
        let r = c.get_object_meta(&keys[1]).unwrap().location.unwrap();
        assert!(t.compressed && t.length < t.size / 10);
        assert!(!r.compressed && r.length == r.size);
    }
}

#[test]
fn rollover_follows_python_rule() {
    let d = tempfile::tempdir().unwrap();
    let target = 50_000;
    let c = new_container(
        d.path(),
        InitOptions {
            pack_size_target: target,
            ..InitOptions::default()
        },
    );
    let mut rng = Rng::new(2);
    let data: Vec<Vec<u8>> = (0..200).map(|i| rng.content(1000 + i * 13)).collect();
    let keys = c
        .add_objects_to_pack(data.clone(), &small_pipeline(CompressMode::No))
        .unwrap();
    let packs = pack_dir_entries(&c);
    assert!(packs.len() > 3, "{packs:?}");
    // Every pack but the last reached the target, and exceeded it by less than one object.
    let ids: Vec<u64> = packs.iter().map(|p| p.parse().unwrap()).collect();
    assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>());
    let max_obj = data.iter().map(Vec::len).max().unwrap() as u64;
    for id in &ids[..ids.len() - 1] {
        let len = fs::metadata(c.layout().pack(*id)).unwrap().len();
        assert!(len >= target && len < target + max_obj, "pack {id}: {len}");
    }
    for (k, x) in keys.iter().zip(&data) {
        assert_eq!(&c.get_object_content(k).unwrap(), x);
    }
    // A second run appends to the last, not-yet-full pack.
    let last = *ids.last().unwrap();
    let before = fs::metadata(c.layout().pack(last)).unwrap().len();
    let k = c
        .add_objects_to_pack(vec![b"one more".to_vec()], &PackWriteOptions::default())
        .unwrap();
    let loc = c.get_object_meta(&k[0]).unwrap().location.unwrap();
    assert_eq!((loc.pack_id, loc.offset), (last, before));
}

#[test]
fn duplicates_without_skip_leave_holes_but_read_fine() {
    let d = tempfile::tempdir().unwrap();
    let c = new_container(d.path(), InitOptions::default());
    let opts = PackWriteOptions {
        skip_existing: false,
        ..PackWriteOptions::default()
    };
    let x = b"same content".to_vec();
    let k1 = c
        .add_objects_to_pack(vec![x.clone(), x.clone()], &opts)
        .unwrap();
    let k2 = c.add_objects_to_pack(vec![x.clone()], &opts).unwrap();
    assert_eq!(k1[0], k2[0]);
    let t = c.get_total_size().unwrap();
    assert_eq!(t.total_size_packed_on_disk, 12);
    assert_eq!(t.total_size_packfiles_on_disk, 36);
    assert_eq!(c.get_object_content(&k1[0]).unwrap(), x);
    // The first copy is the indexed one.
    assert_eq!(
        c.get_object_meta(&k1[0]).unwrap().location.unwrap().offset,
        0
    );

    // skip_existing writes nothing for known content, including large streamed objects.
    let big = vec![9u8; 100_000];
    let opts = small_pipeline(CompressMode::Yes);
    c.add_objects_to_pack(vec![big.clone()], &opts).unwrap();
    let size = fs::metadata(c.layout().pack(0)).unwrap().len();
    let again = c
        .add_objects_to_pack(vec![big.clone(), x.clone(), big.clone()], &opts)
        .unwrap();
    assert_eq!(fs::metadata(c.layout().pack(0)).unwrap().len(), size);
    assert_eq!(again[0], sha256(&big));
    assert_eq!(c.get_object_content(&again[2]).unwrap(), big);
}

/// A reader that fails after `ok` bytes.
struct Failing {
    ok: usize,
    done: usize,
}

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done >= self.ok {
            return Err(io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.ok - self.done).min(4096);
        buf[..n].fill(b'x');
        self.done += n;
        Ok(n)
    }
}

#[test]
fn failing_source_rolls_back_uncommitted_bytes() {
    for fail_at in [100, 50_000] {
        let d = tempfile::tempdir().unwrap();
        let c = new_container(d.path(), InitOptions::default());
        let first = c
            .add_objects_to_pack(vec![b"committed".to_vec()], &PackWriteOptions::default())
            .unwrap();
        let size_before = fs::metadata(c.layout().pack(0)).unwrap().len();
        let mut rng = Rng::new(9);
        let mut sources: Vec<ObjectSource> = (0..30)
            .map(|_| ObjectSource::Bytes(rng.content(3000)))
            .collect();
        sources.push(ObjectSource::Reader {
            name: "the bad stream".into(),
            reader: Box::new(Failing {
                ok: fail_at,
                done: 0,
            }),
        });
        let mut reported = Vec::new();
        let e = write_all(
            &c,
            sources,
            &PackWriteOptions {
                tuning: WriteTuning {
                    batch_objects: 1000,
                    ..small_pipeline(CompressMode::No).tuning
                },
                ..small_pipeline(CompressMode::No)
            },
            |i, o| reported.push((i, o.key().unwrap().to_string())),
        )
        .unwrap_err();
        assert!(e.to_string().contains("the bad stream"), "{e}");
        assert!(e.to_string().contains("disk on fire"), "{e}");
        // Nothing of the failed batch is visible; the pack is back to its committed size;
        // the lock is gone; the committed object is intact.
        assert!(reported.is_empty(), "{reported:?}");
        assert_eq!(c.count_objects().unwrap().packed, 1);
        assert_eq!(fs::metadata(c.layout().pack(0)).unwrap().len(), size_before);
        assert_eq!(pack_dir_entries(&c), ["0"]);
        assert_eq!(c.get_object_content(&first[0]).unwrap(), b"committed");
    }
}

#[test]
fn interruption_stops_cleanly() {
    let d = tempfile::tempdir().unwrap();
    let c = new_container(d.path(), InitOptions::default());
    let flag = Interrupt::new();
    flag.trigger();
    let e = c
        .add_objects_to_pack(
            vec![b"a".to_vec(), b"b".to_vec()],
            &PackWriteOptions {
                interrupt: flag,
                ..PackWriteOptions::default()
            },
        )
        .unwrap_err();
    assert!(matches!(e, write::Error::Interrupted));
    assert_eq!(c.count_objects().unwrap().packed, 0);
    assert!(pack_dir_entries(&c).iter().all(|p| !p.ends_with(".lock")));
}

#[test]
fn passes_over_foreign_locks() {
    let d = tempfile::tempdir().unwrap();
    let c = new_container(d.path(), InitOptions::default());
    // Another process (e.g. Python) is appending to pack 0: the writer takes the next pack.
    fs::write(c.layout().pack_lock(0), b"").unwrap();
    let keys = c
        .add_objects_to_pack(
            vec![b"a".to_vec()],
            &PackWriteOptions {
                tuning: WriteTuning {
                    lock_timeout: std::time::Duration::from_millis(50),
                    ..WriteTuning::default()
                },
                ..PackWriteOptions::default()
            },
        )
        .unwrap();
    assert_eq!(c.get_object_content(&keys[0]).unwrap(), b"a");
    assert_eq!(
        c.get_object_meta(&keys[0])
            .unwrap()
            .location
            .unwrap()
            .pack_id,
        1
    );
    // The foreign lock is untouched.
    assert!(c.layout().pack_lock(0).exists());
    // Every pack it could take is held: after passing over a few, it waits, then gives up.
    for id in 0..=20 {
        fs::write(c.layout().pack_lock(id), b"").unwrap();
    }
    let e = c
        .add_objects_to_pack(
            vec![b"b".to_vec()],
            &PackWriteOptions {
                tuning: WriteTuning {
                    lock_timeout: std::time::Duration::from_millis(50),
                    ..WriteTuning::default()
                },
                ..PackWriteOptions::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(e, write::Error::Container(Error::PackLocked { .. })),
        "{e}"
    );
}

#[test]
fn file_sources_and_large_files_stream() {
    let d = tempfile::tempdir().unwrap();
    let c = new_container(d.path(), InitOptions::default());
    let mut rng = Rng::new(11);
    let mut files = Vec::new();
    let mut bodies = Vec::new();
    for (i, len) in [0usize, 10, 5000, 200_000, 1_500_000]
        .into_iter()
        .enumerate()
    {
        let p = d.path().join(format!("f{i}"));
        let b = rng.content(len);
        fs::write(&p, &b).unwrap();
        files.push(ObjectSource::File(p));
        bodies.push(b);
    }
    files.push(ObjectSource::File(d.path().join("missing")));
    let e = write_all(&c, files, &small_pipeline(CompressMode::Yes), |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    let sources = (0..bodies.len()).map(|i| ObjectSource::File(d.path().join(format!("f{i}"))));
    let mut keys = vec![ObjectKey::sha256([0; 32]); bodies.len()];
    let s = write_all(&c, sources, &small_pipeline(CompressMode::Yes), |i, o| {
        keys[i] = o.key().unwrap()
    })
    .unwrap();
    assert_eq!(s.objects, 5);
    for (k, b) in keys.iter().zip(&bodies) {
        assert_eq!(&c.get_object_content(k).unwrap(), b);
    }
}

#[test]
fn expected_key_mismatches_are_reported_and_never_stored() {
    let d = tempfile::tempdir().unwrap();
    let c = new_container(d.path(), InitOptions::default());
    let good = b"good object".to_vec();
    let big_good = vec![5u8; 100_000];
    let big_bad = vec![6u8; 100_000];
    let items = vec![
        PackItem {
            source: ObjectSource::Bytes(good.clone()),
            expect: Some(sha256(&good)),
        },
        PackItem {
            source: ObjectSource::Bytes(b"tampered".to_vec()),
            expect: Some(sha256(b"original")),
        },
        PackItem {
            source: ObjectSource::Bytes(big_good.clone()),
            expect: Some(sha256(&big_good)),
        },
        PackItem {
            source: ObjectSource::Bytes(big_bad.clone()),
            expect: Some(ObjectKey::sha256([0; 32])),
        },
    ];
    let mut outcomes = Vec::new();
    let s = write_all(&c, items, &small_pipeline(CompressMode::Yes), |i, o| {
        outcomes.push((
            i,
            match o {
                StoreOutcome::Written { key, .. } => format!("written {key}"),
                StoreOutcome::AlreadyPacked { key } => format!("known {key}"),
                StoreOutcome::Vanished { expected } => format!("vanished {expected}"),
                StoreOutcome::Rejected { reason, .. } => format!("rejected {reason}"),
                StoreOutcome::Mismatch { expected, actual } => {
                    format!("mismatch {expected} {actual}")
                }
            },
        ))
    })
    .unwrap();
    assert_eq!(s.mismatched, 2);
    assert_eq!(
        outcomes,
        vec![
            (0, format!("written {}", sha256(&good))),
            (
                1,
                format!("mismatch {} {}", sha256(b"original"), sha256(b"tampered"))
            ),
            (2, format!("written {}", sha256(&big_good))),
            (
                3,
                format!("mismatch {} {}", "0".repeat(64), sha256(&big_bad))
            ),
        ]
    );
    assert_eq!(c.list_all_objects().unwrap().len(), 2);
    assert!(!c.has_object(&sha256(b"tampered")).unwrap());
    assert!(!c.has_object(&sha256(&big_bad)).unwrap());
    // The pack holds exactly the two good objects: the streamed bad one was cut.
    let t = c.get_total_size().unwrap();
    assert_eq!(t.total_size_packfiles_on_disk, t.total_size_packed_on_disk);
}

#[test]
fn skip_existing_holds_across_commits_inside_a_chunk() {
    // One big chunk, many small batches: duplicates that follow a commit must still be skipped.
    let d = tempfile::tempdir().unwrap();
    let c = new_container(d.path(), InitOptions::default());
    let mut rng = Rng::new(31);
    let distinct: Vec<Vec<u8>> = (0..20).map(|i| rng.content(100 + i * 7)).collect();
    let data: Vec<Vec<u8>> = (0..200).map(|i| distinct[(i * 7) % 20].clone()).collect();
    let keys = c
        .add_objects_to_pack(
            data.clone(),
            &PackWriteOptions {
                tuning: WriteTuning {
                    batch_objects: 3,
                    ..WriteTuning::default()
                },
                ..PackWriteOptions::default()
            },
        )
        .unwrap();
    let t = c.get_total_size().unwrap();
    let want: u64 = distinct.iter().map(|x| x.len() as u64).sum();
    assert_eq!(
        t.total_size_packfiles_on_disk, want,
        "duplicates were written"
    );
    for (k, x) in keys.iter().zip(&data) {
        assert_eq!(&c.get_object_content(k).unwrap(), x);
    }
}

/// An encoded stream over fixed bytes with a fixed verdict.
struct FixedEncoded {
    data: io::Cursor<Vec<u8>>,
    verdict: Result<(ObjectKey, u64), String>,
}

impl dos_core::write::EncodedStream for FixedEncoded {
    fn compressed(&self) -> bool {
        true
    }
    fn read_stored(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        io::Read::read(&mut self.data, buf)
    }
    fn finish(self: Box<Self>) -> Result<(ObjectKey, u64), write::Rejection> {
        self.verdict.map_err(Into::into)
    }
}

#[test]
fn deferred_sources_encode_reject_and_stream() {
    use dos_core::codec::{Compressor, ZlibLevel};
    use dos_core::write::EncodedObject;
    let d = tempfile::tempdir().unwrap();
    let c = new_container(d.path(), InitOptions::default());
    let text = b"passthrough content ".repeat(100);
    let z = Compressor::new(ZlibLevel::new(6).unwrap()).compress(&text);
    let big = vec![1u8; 50_000];
    let big_z = Compressor::new(ZlibLevel::new(1).unwrap()).compress(&big);
    let deferred =
        |f: Box<dyn FnOnce() -> Prepared + Send>| ObjectSource::Prepare(Box::new(Custom(f)));
    let (t2, z2, b2, bz2, bz3) = (
        text.clone(),
        z.clone(),
        big.clone(),
        big_z.clone(),
        big_z.clone(),
    );
    let items: Vec<PackItem> = vec![
        deferred(Box::new(move || Prepared::Content(t2))).into(),
        PackItem {
            source: deferred(Box::new(move || {
                Prepared::Encoded(EncodedObject {
                    key: sha256(&b"passthrough content ".repeat(100)),
                    size: 2000,
                    stored: z2,
                    compressed: true,
                })
            })),
            expect: Some(sha256(&text)),
        },
        deferred(Box::new(|| Prepared::Rejected("bad CRC-32".into()))).into(),
        deferred(Box::new(|| {
            Prepared::Stream(Box::new(Failing {
                ok: 30_000,
                done: 0,
            }))
        }))
        .into(),
        deferred(Box::new(move || {
            Prepared::EncodedStream(Box::new(FixedEncoded {
                data: io::Cursor::new(bz2),
                verdict: Err("size mismatch".into()),
            }))
        }))
        .into(),
        deferred(Box::new(move || {
            Prepared::EncodedStream(Box::new(FixedEncoded {
                data: io::Cursor::new(bz3),
                verdict: Ok((sha256(&b2), 50_000)),
            }))
        }))
        .into(),
    ];
    let mut outcomes = Vec::new();
    let s = write_all(
        &c,
        items,
        &PackWriteOptions {
            skip_existing: false,
            ..small_pipeline(CompressMode::No)
        },
        |i, o| {
            outcomes.push(match o {
                StoreOutcome::Written { key, location, .. } => {
                    format!("{i} written {key} {}", location.compressed)
                }
                StoreOutcome::Rejected { reason, .. } => format!("{i} rejected {reason}"),
                other => format!("{i} {other:?}"),
            })
        },
    )
    .unwrap();
    assert_eq!(s.rejected, 3);
    assert_eq!(outcomes[0], format!("0 written {} false", sha256(&text)));
    assert_eq!(outcomes[1], format!("1 written {} true", sha256(&text)));
    assert_eq!(outcomes[2], "2 rejected bad CRC-32");
    assert!(
        outcomes[3].starts_with("3 rejected disk on fire"),
        "{}",
        outcomes[3]
    );
    assert_eq!(outcomes[4], "4 rejected size mismatch");
    assert_eq!(outcomes[5], format!("5 written {} true", sha256(&big)));
    assert_eq!(c.get_object_content(&sha256(&text)).unwrap(), text);
    assert_eq!(c.get_object_content(&sha256(&big)).unwrap(), big);
    // Rejected streamed bytes were cut: the pack holds the three written objects only.
    let t = c.get_total_size().unwrap();
    assert_eq!(
        t.total_size_packfiles_on_disk,
        text.len() as u64 + z.len() as u64 + big_z.len() as u64
    );
}

/// `absent_as_of` lets the writer trust the caller's existence check only while no other
/// connection has committed: an object packed meanwhile by another handle is still skipped, and
/// with the index unchanged every object is written once and readable.
#[test]
fn absent_as_of_is_trusted_only_while_the_index_is_unchanged() {
    let d = tempfile::tempdir().unwrap();
    let c = new_container(d.path(), InitOptions::default());
    let mut rng = Rng::new(77);
    let bodies = rng.objects(120, 40_000);
    let mut distinct = bodies.clone();
    distinct.sort();
    distinct.dedup();
    let items = |v: &[Vec<u8>]| -> Vec<PackItem> {
        v.iter()
            .map(|b| PackItem {
                source: ObjectSource::Bytes(b.clone()),
                expect: Some(sha256(b)),
            })
            .collect()
    };
    // The caller's check: nothing is packed at this version.
    let checked = c.index_version().unwrap();
    // Meanwhile another process (another connection) packs the first ten objects.
    let other = Container::open(c.path()).unwrap();
    other
        .add_objects_to_pack(distinct[..10].to_vec(), &PackWriteOptions::default())
        .unwrap();
    assert_ne!(c.index_version().unwrap(), checked);
    let opts = PackWriteOptions {
        absent_as_of: Some(checked),
        ..small_pipeline(CompressMode::No)
    };
    let mut skipped = 0;
    let s = write_all(&c, items(&distinct), &opts, |_, o| {
        if matches!(o, StoreOutcome::AlreadyPacked { .. }) {
            skipped += 1;
        }
    })
    .unwrap();
    assert_eq!(skipped, 10, "{s:?}");
    assert_eq!(s.written as usize, distinct.len() - 10);
    // No holes: every packed byte belongs to exactly one object.
    let total = c.get_total_size().unwrap();
    assert_eq!(
        total.total_size_packed_on_disk,
        total.total_size_packfiles_on_disk
    );

    // Unchanged index: the check is trusted and every object is written once.
    let d2 = tempfile::tempdir().unwrap();
    let c2 = new_container(d2.path(), InitOptions::default());
    let opts = PackWriteOptions {
        absent_as_of: Some(c2.index_version().unwrap()),
        ..small_pipeline(CompressMode::Yes)
    };
    let s = write_all(&c2, items(&distinct), &opts, |_, _| {}).unwrap();
    assert_eq!(s.written as usize, distinct.len());
    assert_eq!(c2.count_objects().unwrap().packed as usize, distinct.len());
    for b in &distinct {
        assert_eq!(&c2.get_object_content(&sha256(b)).unwrap(), b);
    }
    let total = c2.get_total_size().unwrap();
    assert_eq!(
        total.total_size_packed_on_disk,
        total.total_size_packfiles_on_disk
    );
}

/// A panic inside `add_to_pack` (here: in the caller's callback, while the committer thread may
/// be waiting for work) propagates as a panic instead of hanging the call, and what was
/// committed before stays valid.
#[test]
fn a_panicking_callback_panics_instead_of_hanging() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let c = new_container(&path, InitOptions::default());
        let data = Rng::new(5).objects(200, 5_000);
        let mut opts = small_pipeline(CompressMode::No);
        opts.tuning.batch_objects = 10;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            write_all(
                &c,
                data.into_iter().map(ObjectSource::Bytes),
                &opts,
                |_, _| panic!("callback failure"),
            )
        }));
        let _ = tx.send(r.is_err());
    });
    let panicked = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("add_to_pack hung after a panic");
    assert!(panicked);
    let c = dos_core::Container::open(&d.path().join("c")).unwrap();
    let r = c
        .validate(&dos_core::maintain::ValidateOptions::default(), &NoProgress)
        .unwrap();
    assert!(r.is_valid(), "{r:?}");
}
