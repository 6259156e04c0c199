//! Property test: random sequences of writes against a `BTreeMap` model; every read agrees.

use std::collections::BTreeMap;

use dos_core::{CompressMode, Container, InitOptions, ObjectKey, PackWriteOptions};
use proptest::prelude::*;

use crate::util::sha256;

#[derive(Debug, Clone)]
enum Op {
    Loose(Vec<u8>),
    Pack {
        objects: Vec<Vec<u8>>,
        compress: u8,
        skip_existing: bool,
        tiny_pipeline: bool,
    },
    Reopen,
}

fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 0..64),
        (any::<u8>(), 0usize..40_000).prop_map(|(b, n)| vec![b; n]),
        proptest::collection::vec(0u8..4, 0..3000),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        content().prop_map(Op::Loose),
        (
            proptest::collection::vec(content(), 0..12),
            0u8..3,
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(
                |(objects, compress, skip_existing, tiny_pipeline)| Op::Pack {
                    objects,
                    compress,
                    skip_existing,
                    tiny_pipeline
                }
            ),
        Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, .. ProptestConfig::default() })]

    #[test]
    fn container_agrees_with_model(ops in proptest::collection::vec(op(), 1..12), target in 1_000u64..200_000) {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("c");
        let mut c = Container::init(&path, &InitOptions { pack_size_target: target, ..InitOptions::default() }).unwrap();
        let mut model: BTreeMap<ObjectKey, Vec<u8>> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Loose(x) => {
                    let k = c.add_object(&x).unwrap();
                    prop_assert_eq!(&k, &sha256(&x));
                    model.insert(k, x);
                }
                Op::Pack { objects, compress, skip_existing, tiny_pipeline } => {
                    let mut opts = PackWriteOptions {
                        compress: [CompressMode::No, CompressMode::Yes, CompressMode::Auto][compress as usize],
                        skip_existing,
                        ..PackWriteOptions::default()
                    };
                    if tiny_pipeline {
                        opts.tuning.memory_budget = 10_000;
                        opts.tuning.large_object = 2_000;
                        opts.tuning.batch_objects = 3;
                    }
                    let keys = c.add_objects_to_pack(objects.clone(), &opts).unwrap();
                    for (k, x) in keys.into_iter().zip(objects) {
                        prop_assert_eq!(&k, &sha256(&x));
                        model.insert(k, x);
                    }
                }
                Op::Reopen => {
                    drop(c);
                    c = Container::open(&path).unwrap();
                }
            }
        }
        let listed = c.list_all_objects().unwrap();
        prop_assert_eq!(listed, model.keys().cloned().collect::<Vec<_>>());
        for (k, x) in &model {
            prop_assert_eq!(&c.get_object_content(k).unwrap(), x);
        }
        let keys: Vec<ObjectKey> = model.keys().copied().collect();
        let mut n = 0;
        c.read_objects(&keys, |k, content, _| {
            let b = match content {
                dos_core::ObjectContent::Bytes(b) => b.to_vec(),
                dos_core::ObjectContent::Reader(_) => unreachable!("small objects only"),
            };
            assert_eq!(&b, &model[&k]);
            n += 1;
            Ok(())
        }).unwrap();
        prop_assert_eq!(n, model.len());
        prop_assert!(c.has_objects(&keys).unwrap().into_iter().all(|b| b));
        // No leftovers of the write protocol.
        for e in std::fs::read_dir(&c.layout().packs).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            prop_assert!(!name.ends_with(".lock"), "leftover lock {}", name);
        }
    }
}
