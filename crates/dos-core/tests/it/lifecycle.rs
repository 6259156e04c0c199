//! init / open: exactly Python's files, and clear errors for everything else.

use std::fs;

use dos_core::config::ConfigError;
use dos_core::{Container, Error, HashType, InitOptions, ZlibLevel};

#[test]
fn init_writes_python_layout() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("new/nested");
    let c = Container::init(
        &path,
        &InitOptions {
            pack_size_target: 1234,
            loose_prefix_len: 3,
            hash_type: HashType::Sha1,
            compression: ZlibLevel::new(9).unwrap().into(),
        },
    )
    .unwrap();
    let mut names: Vec<String> = fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with("packs.idx-")) // WAL side files come and go
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "config.json",
            "duplicates",
            "loose",
            "packs",
            "packs.idx",
            "sandbox"
        ]
    );
    let cfg = fs::read_to_string(path.join("config.json")).unwrap();
    let id = &c.config().container_id.clone();
    assert_eq!(
        cfg,
        format!(
            "{{\"container_version\": 1, \"loose_prefix_len\": 3, \"pack_size_target\": 1234, \
             \"hash_type\": \"sha1\", \"container_id\": \"{id}\", \"compression_algorithm\": \"zlib+9\"}}"
        )
    );
    assert!(fs::read_dir(path.join("sandbox")).unwrap().next().is_none());
    drop(c);
    let c = Container::open(&path).unwrap();
    assert_eq!(&c.config().container_id, id);
    assert_eq!(c.config().pack_size_target, 1234);
    // Opening never rewrites config.json.
    assert_eq!(fs::read_to_string(path.join("config.json")).unwrap(), cfg);
}

#[test]
fn init_refuses_non_empty_folders_and_bad_options() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("c");
    Container::init(&p, &InitOptions::default()).unwrap();
    let id = fs::read_to_string(p.join("config.json")).unwrap();
    let e = Container::init(&p, &InitOptions::default()).unwrap_err();
    assert!(e.to_string().contains("already initialised"), "{e}");
    assert_eq!(fs::read_to_string(p.join("config.json")).unwrap(), id);

    let q = d.path().join("q");
    fs::create_dir(&q).unwrap();
    fs::write(q.join("precious.txt"), b"x").unwrap();
    assert!(matches!(
        Container::init(&q, &InitOptions::default()),
        Err(Error::FolderNotEmpty { .. })
    ));
    let bad = InitOptions {
        pack_size_target: 0,
        ..InitOptions::default()
    };
    assert!(matches!(
        Container::init(&d.path().join("z"), &bad),
        Err(Error::InvalidArgument(_))
    ));
    let bad = InitOptions {
        loose_prefix_len: 64,
        ..InitOptions::default()
    };
    assert!(matches!(
        Container::init(&d.path().join("z"), &bad),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn open_errors_name_the_problem() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("nothing");
    let e = Container::open(&missing).unwrap_err();
    assert!(matches!(e, Error::NotInitialised { .. }), "{e}");

    let p = d.path().join("c");
    Container::init(&p, &InitOptions::default()).unwrap();
    let good = fs::read_to_string(p.join("config.json")).unwrap();

    // Unknown hash type and compression.
    for (from, to, key) in [
        ("\"sha256\"", "\"blake3\"", "hash_type"),
        ("\"zlib+1\"", "\"lz4+1\"", "compression_algorithm"),
    ] {
        fs::write(p.join("config.json"), good.replace(from, to)).unwrap();
        match Container::open(&p).unwrap_err() {
            Error::Config {
                source: ConfigError::InvalidValue { key: k, .. },
                path,
            } => {
                assert_eq!(k, key);
                assert!(path.ends_with("config.json"));
            }
            other => panic!("{other}"),
        }
    }
    // Legacy config without container_id / compression_algorithm.
    fs::write(
        p.join("config.json"),
        r#"{"container_version": 1, "loose_prefix_len": 2, "pack_size_target": 4294967296, "hash_type": "sha256"}"#,
    )
    .unwrap();
    let e = Container::open(&p).unwrap_err();
    assert!(
        e.to_string().contains("missing key \"container_id\""),
        "{e}"
    );
    assert!(e.to_string().contains("disk-objectstore < 0.5"), "{e}");
    fs::write(p.join("config.json"), &good).unwrap();

    // Missing index.
    fs::rename(p.join("packs.idx"), p.join("packs.idx.bak")).unwrap();
    let e = Container::open(&p).unwrap_err();
    assert!(e.to_string().contains("packs.idx is missing"), "{e}");
    fs::rename(p.join("packs.idx.bak"), p.join("packs.idx")).unwrap();

    // Missing folder.
    fs::remove_dir(p.join("duplicates")).unwrap();
    let e = Container::open(&p).unwrap_err();
    assert!(e.to_string().contains("duplicates/ is missing"), "{e}");
    fs::create_dir(p.join("duplicates")).unwrap();

    // Garbage config.
    fs::write(p.join("config.json"), b"\x00\x01 not json").unwrap();
    assert!(matches!(
        Container::open(&p).unwrap_err(),
        Error::Config {
            source: ConfigError::Syntax(_),
            ..
        }
    ));
    fs::write(p.join("config.json"), &good).unwrap();
    Container::open(&p).unwrap();

    // An extra file at the root is tolerated, as Python tolerates it.
    fs::write(p.join("README"), b"notes").unwrap();
    Container::open(&p).unwrap();
}

#[test]
fn loose_objects_with_every_prefix_and_hash() {
    for hash_type in [HashType::Sha256, HashType::Sha1] {
        for prefix in [0, 2, 3] {
            let d = tempfile::tempdir().unwrap();
            let c = Container::init(
                &d.path().join("c"),
                &InitOptions {
                    loose_prefix_len: prefix,
                    hash_type,
                    ..InitOptions::default()
                },
            )
            .unwrap();
            let data: Vec<Vec<u8>> = vec![b"".to_vec(), b"a".to_vec(), vec![7u8; 600_000]];
            let mut keys = Vec::new();
            for x in &data {
                let k = c.add_object(x).unwrap();
                assert_eq!(k, hash_type.key_of(x));
                let p = c.loose_path(&k);
                let rel = p.strip_prefix(&c.layout().loose).unwrap();
                let hex = k.to_string();
                if prefix == 0 {
                    assert_eq!(rel.to_str().unwrap(), hex);
                } else {
                    assert_eq!(
                        rel,
                        std::path::Path::new(&hex[..prefix]).join(&hex[prefix..])
                    );
                }
                // Adding again is harmless.
                assert_eq!(c.add_object(x).unwrap(), k);
                keys.push(k);
            }
            for (k, x) in keys.iter().zip(&data) {
                assert_eq!(&c.get_object_content(k).unwrap(), x);
            }
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(c.list_all_objects().unwrap(), sorted);
            // Stray files in loose/ are ignored, never fatal.
            fs::write(c.layout().loose.join(".DS_Store"), b"x").unwrap();
            fs::create_dir_all(c.layout().loose.join("zz")).unwrap();
            assert_eq!(c.list_all_objects().unwrap(), sorted);
            // No sandbox leftovers.
            assert!(fs::read_dir(&c.layout().sandbox).unwrap().next().is_none());
        }
    }
}

#[test]
fn batched_loose_files() {
    let d = tempfile::tempdir().unwrap();
    let c = Container::init(&d.path().join("c"), &InitOptions::default()).unwrap();
    let src = d.path().join("src");
    fs::create_dir(&src).unwrap();
    let mut paths = Vec::new();
    let mut rng = crate::util::Rng::new(3);
    for i in 0..300 {
        let p = src.join(format!("f{i}"));
        // Some duplicates among the files.
        let body = rng.content((i % 50) * 37);
        fs::write(&p, &body).unwrap();
        paths.push(p);
    }
    let written = c.add_files_loose(&paths, &dos_core::NoProgress).unwrap();
    assert_eq!(written.len(), paths.len());
    for (w, p) in written.iter().zip(&paths) {
        let body = fs::read(p).unwrap();
        assert_eq!(w.key, crate::util::sha256(&body));
        assert_eq!(w.size, body.len() as u64);
        assert_eq!(c.get_object_content(&w.key).unwrap(), body);
    }
    assert!(fs::read_dir(&c.layout().sandbox).unwrap().next().is_none());
    // A missing file is named in the error and leaves no sandbox files behind.
    let e = c
        .add_files_loose(&[paths[0].clone(), src.join("nope")], &dos_core::NoProgress)
        .unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    assert!(fs::read_dir(&c.layout().sandbox).unwrap().next().is_none());
}
