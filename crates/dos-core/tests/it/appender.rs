//! The pack appender against a model: random appends, copies, flushes, truncations, syncs and
//! reopenings at unaligned sizes, in direct (O_DIRECT) and buffered mode; the file must always
//! hold exactly the model's bytes once flushed.

use std::fs::{self, File};
use std::time::Duration;

use dos_core::layout::Layout;
use dos_core::pack::PackAppender;

use crate::util::Rng;

/// Whether the filesystem under `dir` accepts O_DIRECT (the appender must then use it).
fn fs_supports_direct(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let p = dir.join("probe");
    let ok = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&p)
        .is_ok();
    let _ = fs::remove_file(&p);
    ok
}

fn run(seed: u64, buffered: bool) {
    let d = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let layout = Layout::new(d.path());
    fs::create_dir_all(&layout.packs).unwrap();
    let direct_possible = fs_supports_direct(&layout.packs);
    let src_path = d.path().join("source");
    let mut rng = Rng::new(seed);
    let source = rng.content(3 << 20);
    fs::write(&src_path, &source).unwrap();
    let src = File::open(&src_path).unwrap();

    // An existing pack of an unaligned size, as Python leaves them.
    let mut model: Vec<u8> = rng.content(10_007);
    fs::write(layout.pack(0), &model).unwrap();
    let mut committed = model.len();
    let open = || {
        let mut a = PackAppender::open(
            &layout,
            0,
            Duration::from_secs(5),
            &dos_core::IoOptions::default(),
        )
        .unwrap();
        if buffered {
            a.use_buffered_writes().unwrap();
        }
        assert_eq!(a.is_direct(), !buffered && direct_possible);
        a
    };
    let mut a = open();
    let check = |a: &mut PackAppender, model: &[u8]| {
        a.flush().unwrap();
        let on_disk = fs::read(layout.pack(0)).unwrap();
        assert_eq!(on_disk.len(), model.len(), "size (seed {seed})");
        assert!(on_disk == model, "content (seed {seed})");
    };
    for step in 0..250 {
        assert_eq!(a.pos(), model.len() as u64);
        match rng.below(10) {
            0..=3 => {
                let len = match rng.below(20) {
                    0 => rng.below(12 << 20) as usize,
                    1..=3 => rng.below(5000) as usize,
                    _ => rng.below(300_000) as usize,
                };
                let bytes = rng.content(len);
                a.write(&bytes).unwrap();
                model.extend_from_slice(&bytes);
            }
            4 => {
                let off = rng.below(source.len() as u64) as usize;
                let len = rng.below((source.len() - off) as u64) as usize;
                a.append_from(&src, &src_path, off as u64, len as u64)
                    .unwrap();
                model.extend_from_slice(&source[off..off + len]);
            }
            5 => check(&mut a, &model),
            6 => {
                // Cut back an uncommitted tail.
                let to = committed + rng.below((model.len() - committed) as u64 + 1) as usize;
                a.truncate_to(to as u64).unwrap();
                model.truncate(to);
            }
            7 => {
                a.sync().unwrap();
                committed = model.len();
                check(&mut a, &model);
            }
            8 if step % 5 == 0 => {
                a.sync().unwrap();
                committed = model.len();
                drop(a);
                a = open();
            }
            _ => {
                // A read past the source's end fails cleanly and appends nothing.
                let before = a.pos();
                assert!(
                    a.append_from(&src, &src_path, source.len() as u64 - 10, 20)
                        .is_err()
                );
                assert_eq!(a.pos(), before);
            }
        }
    }
    a.sync().unwrap();
    check(&mut a, &model);
}

#[test]
fn appender_matches_model_direct() {
    for seed in 1..=3 {
        run(seed, false);
    }
}

#[test]
fn appender_matches_model_buffered() {
    for seed in 1..=3 {
        run(seed, true);
    }
}
