//! The `config_parse` and `config_open` targets.

use std::cell::RefCell;
use std::fs;
use std::path::PathBuf;

use dos_core::maintain::ValidateOptions;
use dos_core::{
    CompressMode, Config, Container, HashType, InitOptions, IoOptions, NoProgress, ObjectKey,
    PackWriteOptions,
};

use crate::scratch;

/// `config.json` parsing never panics, and what it accepts round-trips through the writer.
pub fn config_parse(data: &[u8]) {
    if let Ok(cfg) = Config::parse(data) {
        let again = match Config::parse(cfg.to_python_json().as_bytes()) {
            Ok(c) => c,
            Err(e) => panic!("own output {:?} does not parse: {e}", cfg.to_python_json()),
        };
        assert_eq!(cfg, again);
    }
}

/// I/O as the targets do it: through the page cache (`/dev/shm` has no O_DIRECT).
pub(crate) fn io() -> IoOptions {
    IoOptions {
        direct_io: false,
        early_writeback: false,
        ..IoOptions::default()
    }
}

/// The container `config_open` opens: made once per thread, then only its `config.json`
/// changes.
struct Base {
    root: PathBuf,
    /// A connection to `packs.idx` kept open (as an AiiDA process keeps it): dos's connections
    /// then find it in WAL mode, and closing them checkpoints nothing.
    _keeper: rusqlite::Connection,
    /// A packed (compressed) object.
    packed: ObjectKey,
    /// A loose object, at `loose/<2 hex>/<62 hex>`.
    loose: ObjectKey,
}

impl Base {
    fn create() -> Option<Self> {
        let root = scratch::new_dir("config_open").ok()?.join("c");
        let c = Container::init_with(&root, &InitOptions::default(), io()).ok()?;
        let loose = c.add_object(b"a loose object").ok()?;
        let opts = PackWriteOptions {
            compress: CompressMode::Yes,
            ..PackWriteOptions::default()
        };
        let packed = *c
            .add_objects_to_pack(vec![b"a packed object".to_vec()], &opts)
            .ok()?
            .first()?;
        drop(c);
        let keeper = rusqlite::Connection::open(root.join("packs.idx")).ok()?;
        keeper
            .query_row("SELECT COUNT(*) FROM db_object", [], |_| Ok(()))
            .ok()?;
        Some(Self {
            root,
            _keeper: keeper,
            packed,
            loose,
        })
    }
}

thread_local! {
    static BASE: RefCell<Option<Base>> = const { RefCell::new(None) };
}

/// A hostile `config.json` next to a valid container (one packed, one loose object):
/// [`Container::open`] fails with an error, or opens a container on which `count_objects`,
/// listing, reads and `validate` work. A sha256 container is valid whatever the other values
/// (a loose prefix other than 2 only hides the loose object).
pub fn config_open(data: &[u8]) {
    scratch::serial(|| {
        BASE.with(|b| {
            let mut b = b.borrow_mut();
            if b.is_none() {
                *b = Base::create();
            }
            let Some(base) = b.as_ref() else { return };
            if fs::write(base.root.join("config.json"), data).is_err() {
                return;
            }
            let Ok(c) = Container::open_with(&base.root, io()) else {
                return;
            };
            let cfg = c.config().clone();
            if let Err(e) = c.count_objects() {
                panic!("count_objects fails with {cfg:?}: {e}");
            }
            let listed = match c.list_all_objects() {
                Ok(l) => l,
                Err(e) => panic!("list_all_objects fails with {cfg:?}: {e}"),
            };
            for k in &listed {
                if let Ok(content) = c.get_object_content(k) {
                    // Whatever reads is what was stored (no other content exists here).
                    assert!(
                        content == b"a packed object" || content == b"a loose object",
                        "{k} reads {content:?}"
                    );
                }
            }
            let report = match c.validate(&ValidateOptions::default(), &NoProgress) {
                Ok(r) => r,
                Err(e) => panic!("validate fails with {cfg:?}: {e}"),
            };
            if cfg.hash_type == HashType::Sha256 {
                assert!(report.is_valid(), "{cfg:?}: {report:?}");
                let mut want = vec![base.packed];
                if cfg.loose_prefix_len == 2 {
                    want.push(base.loose);
                }
                want.sort();
                assert_eq!(listed, want, "{cfg:?}");
                for k in &listed {
                    match c.get_object_content(k) {
                        Ok(content) => assert_eq!(HashType::Sha256.key_of(&content), *k),
                        Err(e) => panic!("{k} listed in a valid container but unreadable: {e}"),
                    }
                }
            }
        })
    });
}
