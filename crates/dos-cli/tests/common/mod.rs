//! Helpers shared by the CLI, interop and concurrency tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

/// The `dos` binary under test.
pub fn dos() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dos"))
}

/// Run `dos` with args, returning the output (whatever the exit code).
pub fn run_dos(args: &[&str]) -> Output {
    dos().args(args).output().expect("spawn dos")
}

/// The Python interpreter with disk-objectstore 1.5.0. The interop tests must never be skipped
/// silently: a missing interpreter is a failure that says how to get one.
pub fn python() -> PathBuf {
    let p = std::env::var_os("DOS_TEST_PYTHON").unwrap_or_else(|| {
        panic!(
            "DOS_TEST_PYTHON is not set: the interoperability tests need a Python with \
             disk-objectstore==1.5.0. Run the suite with ./scripts/test.sh, which creates .venv, \
             or set DOS_TEST_PYTHON=/path/to/python"
        )
    });
    let p = PathBuf::from(p);
    let out = Command::new(&p)
        .args([
            "-c",
            "import disk_objectstore; print(disk_objectstore.__version__)",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run DOS_TEST_PYTHON={}: {e}", p.display()));
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && version == "1.5.0",
        "DOS_TEST_PYTHON={} must have disk-objectstore 1.5.0 (got {version:?}; {})",
        p.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    p
}

/// Path of the interop driver script.
pub fn interop_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/interop.py")
}

/// Run the interop script; panic with its stderr if it fails. Returns its JSON output.
pub fn py(args: &[&str]) -> serde_json::Value {
    let out = Command::new(python())
        .arg(interop_script())
        .args(args)
        .output()
        .expect("spawn python");
    assert!(
        out.status.success(),
        "python interop.py {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("null")).expect("json output")
}

/// A manifest: key → (size, sha256 of the content).
pub type Manifest = BTreeMap<String, (u64, String)>;

/// The key of a manifest's hex key.
pub fn key(hex: &str) -> dos_core::ObjectKey {
    hex.parse().unwrap()
}

pub fn sha256_hex(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn read_manifest(container: &Path) -> Manifest {
    let p = PathBuf::from(format!("{}.manifest.json", container.display()));
    let v: BTreeMap<String, (u64, String)> =
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    v
}

pub fn write_manifest(container: &Path, m: &Manifest) -> PathBuf {
    let p = PathBuf::from(format!("{}.manifest.json", container.display()));
    std::fs::write(&p, serde_json::to_vec(m).unwrap()).unwrap();
    p
}

/// Deterministic content: empty, tiny, text, random, and a few multi-MB objects.
pub fn random_objects(seed: u64, n: usize, big: usize) -> Vec<Vec<u8>> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut out = vec![Vec::new(), b"y".to_vec()];
    for i in 0..n {
        let len = (next() % 25_000) as usize;
        if i % 2 == 0 {
            let line = format!("iteration {i} total energy = {} Ry\n", next() % 100_000);
            out.push(line.as_bytes().iter().copied().cycle().take(len).collect());
        } else {
            out.push((0..len).map(|_| next() as u8).collect());
        }
    }
    for _ in 0..big {
        let len = 2_000_000 + (next() % 2_000_000) as usize;
        out.push((0..len).map(|_| next() as u8).collect());
    }
    let dups: Vec<Vec<u8>> = out.iter().skip(2).take(n / 10).cloned().collect();
    out.extend(dups);
    out
}

/// Build the archive of `scenario` at `out` with dos-archive's `make_archive.py`; returns the
/// JSON it prints (`objects`: key -> [size, sha256], `bad`, `ignored`).
pub fn make_archive(scenario: &str, out: &Path) -> serde_json::Value {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../dos-archive/tests/python/make_archive.py");
    let made = Command::new(python())
        .arg(script)
        .arg(scenario)
        .arg(out)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "make_archive.py {scenario}: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    serde_json::from_slice(&made.stdout).unwrap()
}

/// The `objects` of a [`make_archive`] result as a manifest.
pub fn archive_objects(made: &serde_json::Value) -> Manifest {
    serde_json::from_value(made["objects"].clone()).unwrap()
}

/// The S3 server the remote tests run against: a real Ceph radosgw that `./scripts/test.sh`
/// starts (scripts/ceph-s3.sh) and names in `DOS_TEST_S3_ENV` (its `s3.env` file). Never
/// skipped: without it the tests fail and say how to get one.
pub struct S3 {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    /// The bucket the tests use (each test under a prefix of its own).
    pub bucket: String,
    /// The cluster folder (for stopping and starting radosgw), from `DOS_TEST_CEPH_DIR`.
    pub ceph_dir: Option<PathBuf>,
}

impl S3 {
    pub fn from_env() -> S3 {
        let file = std::env::var_os("DOS_TEST_S3_ENV").unwrap_or_else(|| {
            panic!(
                "DOS_TEST_S3_ENV is not set: the remote-pack tests need a real S3 server. Run \
                 the suite with ./scripts/test.sh (it starts a local Ceph), or start one with \
                 scripts/ceph-s3.sh start DIR dos-test and set DOS_TEST_S3_ENV=DIR/s3.env \
                 DOS_TEST_CEPH_DIR=DIR"
            )
        });
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("DOS_TEST_S3_ENV={}: {e}", Path::new(&file).display()));
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("{k} missing from {}", Path::new(&file).display()))
                .to_string()
        };
        S3 {
            endpoint: get("S3_ENDPOINT"),
            access_key: get("AWS_ACCESS_KEY_ID"),
            secret_key: get("AWS_SECRET_ACCESS_KEY"),
            bucket: std::env::var("DOS_TEST_S3_BUCKET").unwrap_or_else(|_| "dos-test".into()),
            ceph_dir: std::env::var_os("DOS_TEST_CEPH_DIR").map(PathBuf::from),
        }
    }

    /// A fresh `s3://bucket/<name>-<random>` for one test.
    pub fn fresh_url(&self, name: &str) -> String {
        let mut r = [0u8; 6];
        getrandom_fill(&mut r);
        let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
        format!("s3://{}/{name}-{hex}", self.bucket)
    }

    /// `dos` with this server's credentials and endpoint in its environment, fast retries.
    pub fn dos(&self) -> Command {
        let mut c = dos();
        self.apply(&mut c);
        c
    }

    /// Put this server's credentials and endpoint into `c`'s environment.
    pub fn apply(&self, c: &mut Command) {
        c.env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN");
    }

    /// An opener for dos-core with these credentials.
    pub fn opener(&self) -> dos_remote::S3Opener {
        dos_remote::S3Opener {
            credentials: Some(dos_remote::Credentials {
                access_key_id: self.access_key.clone(),
                secret_access_key: self.secret_key.clone(),
                session_token: None,
            }),
            default_endpoint: Some(self.endpoint.clone()),
            default_region: Some("us-east-1".into()),
            ..dos_remote::S3Opener::default()
        }
    }

    /// Open a container with remote access.
    pub fn open(&self, path: &Path) -> dos_core::Container {
        let io = dos_core::IoOptions {
            remote: Some(std::sync::Arc::new(self.opener())),
            ..dos_core::IoOptions::default()
        };
        dos_core::Container::open_with(path, io).unwrap()
    }

    /// The store at `url`, for looking at what is in the bucket.
    pub fn store(&self, url: &str) -> std::sync::Arc<dyn dos_core::remote::RemoteStore> {
        use dos_core::remote::RemoteOpener;
        let settings =
            dos_core::remote::RemoteSettings::new(dos_core::remote::RemoteUrl::parse(url).unwrap());
        self.opener().open(&settings).unwrap()
    }

    /// Run scripts/ceph-s3.sh `what` (stop-rgw, start-rgw) on the test cluster.
    pub fn ceph(&self, what: &str) {
        let dir = self.ceph_dir.as_ref().unwrap_or_else(|| {
            panic!("DOS_TEST_CEPH_DIR is not set: this test stops and starts radosgw")
        });
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ceph-s3.sh");
        let out = Command::new("bash")
            .arg(script)
            .arg(what)
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ceph-s3.sh {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn getrandom_fill(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .unwrap();
}
