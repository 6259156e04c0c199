//! The `dos` command line: outputs, JSON shapes, exit codes, one-line errors.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{dos, run_dos, sha256_hex};

fn ok(args: &[&str]) -> String {
    let out = run_dos(args);
    assert!(
        out.status.success(),
        "dos {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command expected to fail: returns (exit code, stderr).
fn fails(args: &[&str]) -> (i32, String) {
    let out = run_dos(args);
    assert!(!out.status.success(), "dos {args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    (out.status.code().unwrap(), err)
}

#[test]
fn end_to_end_commands() {
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("store");
    let cs = c.to_str().unwrap();
    let out = ok(&["-p", cs, "init", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["id"].as_str().unwrap().len(), 32);

    let files: Vec<(std::path::PathBuf, Vec<u8>)> =
        [&b"alpha"[..], b"", b"beta beta beta", b"alpha"]
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let p = d.path().join(format!("f{i}.txt"));
                fs::write(&p, b).unwrap();
                (p, b.to_vec())
            })
            .collect();
    // Loose add: one "<key>  <path>" line per file, in order.
    let out = ok(&[
        "-p",
        cs,
        "add",
        files[0].0.to_str().unwrap(),
        files[1].0.to_str().unwrap(),
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    for (line, (p, b)) in lines.iter().zip(&files) {
        assert_eq!(*line, format!("{}  {}", sha256_hex(b), p.display()));
    }
    // Direct to pack, compressed, JSON output.
    let out = ok(&[
        "-p",
        cs,
        "add",
        "--pack",
        "--compress",
        "--json",
        files[2].0.to_str().unwrap(),
        files[3].0.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["hashkey"], sha256_hex(&files[2].1));
    assert_eq!(v[1]["hashkey"], sha256_hex(&files[3].1));

    // Standard input.
    let mut child = dos()
        .args(["-p", cs, "add", "--pack", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdin_key = sha256_hex(b"from stdin");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{stdin_key}  -\n")
    );

    // ls: sorted, each key once (alpha is both loose and packed).
    let mut want = [
        sha256_hex(b"alpha"),
        sha256_hex(b""),
        sha256_hex(b"beta beta beta"),
        stdin_key.clone(),
    ];
    want.sort();
    assert_eq!(ok(&["-p", cs, "ls"]), want.join("\n") + "\n");

    // cat: raw bytes, for packed, compressed and loose objects.
    let out = run_dos(&["-p", cs, "cat", &sha256_hex(b"beta beta beta")]);
    assert_eq!(out.stdout, b"beta beta beta");
    assert_eq!(run_dos(&["-p", cs, "cat", &sha256_hex(b"")]).stdout, b"");
    assert_eq!(
        run_dos(&["-p", cs, "cat", &stdin_key.to_uppercase()]).stdout,
        b"from stdin"
    );

    // meta: Python's field names; packed wins over loose.
    let out = ok(&[
        "-p",
        cs,
        "meta",
        "--json",
        &sha256_hex(b"alpha"),
        &sha256_hex(b""),
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["type"], "packed");
    assert_eq!(v[0]["size"], 5);
    assert_eq!(v[0]["pack_id"], 0);
    assert_eq!(v[0]["pack_compressed"], true);
    assert_eq!(v[1]["type"], "loose");
    assert_eq!(v[1]["pack_id"], serde_json::Value::Null);

    // status --json: ObjectCount and TotalSize field names.
    let v: serde_json::Value = serde_json::from_str(&ok(&["-p", cs, "status", "--json"])).unwrap();
    assert_eq!(v["count"]["packed"], 3);
    assert_eq!(v["count"]["loose"], 2);
    assert_eq!(v["count"]["pack_files"], 1);
    assert_eq!(v["size"]["total_size_loose"], 5);
    assert_eq!(v["size"]["total_size_packed"], 5 + 14 + 10);
    for k in [
        "total_size_packed_on_disk",
        "total_size_packfiles_on_disk",
        "total_size_packindexes_on_disk",
    ] {
        assert!(v["size"][k].as_u64().unwrap() > 0, "{k}");
    }
    assert!(ok(&["-p", cs, "status"]).contains("3 packed in 1 pack files"));

    // DOSTORE_PATH is the default container, as in Python's dostore.
    let out = dos().env("DOSTORE_PATH", cs).arg("ls").output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        want.join("\n") + "\n"
    );
}

#[test]
fn errors_are_one_line_with_exit_codes() {
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("store");
    let cs = c.to_str().unwrap();
    ok(&["-p", cs, "init"]);

    // Missing object: exit 1, names the key and the container.
    let missing = "ab".repeat(32);
    let (code, err) = fails(&["-p", cs, "cat", &missing]);
    assert_eq!(code, 1);
    assert!(err.contains(&missing) && err.contains("not found"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = run_dos(&["-p", cs, "meta", &missing]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("missing"));

    // Bad key: exit 2.
    let (code, err) = fails(&["-p", cs, "cat", "xyz"]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid object key \"xyz\""), "{err}");

    // Not a container.
    let (code, err) = fails(&["-p", d.path().join("nope").to_str().unwrap(), "ls"]);
    assert_eq!(code, 2);
    assert!(err.contains("not an initialised container"), "{err}");

    // Re-init refuses and leaves the container alone.
    let cfg = fs::read(c.join("config.json")).unwrap();
    let (code, err) = fails(&["-p", cs, "init"]);
    assert_eq!(code, 2);
    assert!(err.contains("already initialised"), "{err}");
    assert_eq!(fs::read(c.join("config.json")).unwrap(), cfg);

    // Bad init options.
    let (_, err) = fails(&[
        "-p",
        d.path().join("x").to_str().unwrap(),
        "init",
        "--compression",
        "zstd+30",
    ]);
    assert!(err.contains("zstd+3"), "{err}");
    assert!(!d.path().join("x").exists());

    // Missing input file: named, nothing added.
    let (code, err) = fails(&[
        "-p",
        cs,
        "add",
        "--pack",
        d.path().join("ghost").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("ghost"), "{err}");
    let (_, err) = fails(&["-p", cs, "add", d.path().to_str().unwrap()]);
    assert!(err.contains("is a directory"), "{err}");
    assert_eq!(ok(&["-p", cs, "ls"]), "");

    // A corrupt index: a clear error, not a panic.
    fs::write(
        c.join("packs.idx"),
        b"this is not sqlite, not at all, definitely not",
    )
    .unwrap();
    let (code, err) = fails(&["-p", cs, "status"]);
    assert_eq!(code, 2);
    assert!(err.contains("packs.idx"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn closed_stdout_is_not_an_error() {
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("store");
    let cs = c.to_str().unwrap();
    ok(&["-p", cs, "init"]);
    let big = d.path().join("big");
    fs::write(&big, vec![b'z'; 4 << 20]).unwrap();
    ok(&[
        "-p",
        cs,
        "add",
        "--pack",
        "--compress",
        big.to_str().unwrap(),
    ]);
    let key = sha256_hex(&vec![b'z'; 4 << 20]);
    let mut child = dos()
        .args(["-p", cs, "cat", &key])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // reader goes away immediately
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
}

#[test]
fn an_incomplete_archive_import_says_so_on_standard_error() {
    let d = tempfile::tempdir().unwrap();
    let archive = d.path().join("wrong-content.aiida");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../dos-archive/tests/python/make_archive.py");
    let made = Command::new(common::python())
        .arg(script)
        .arg("wrong-content")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let bad: Vec<String> = serde_json::from_value(
        serde_json::from_slice::<serde_json::Value>(&made.stdout).unwrap()["bad"].clone(),
    )
    .unwrap();
    let c = d.path().join("c");
    assert!(
        common::run_dos(&["-q", "-p", c.to_str().unwrap(), "init"])
            .status
            .success()
    );
    // Standard output goes elsewhere (a file, here captured); standard error still says it.
    let out = common::run_dos(&[
        "-q",
        "-p",
        c.to_str().unwrap(),
        "import-archive",
        archive.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(
        lines[0].contains("import incomplete")
            && lines[0].contains(&format!("{} bad", bad.len()))
            && lines[0].contains(&bad[0]),
        "{err}"
    );
}
