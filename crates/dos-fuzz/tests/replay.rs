//! Replays every input of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` through the
//! target bodies of `dos-fuzz`, as an ordinary test (stable toolchain, no libFuzzer).
//!
//! A plain `main` (`harness = false`): it prints how many inputs it replayed per target, names
//! every input that failed, and fails when a target has no corpus folder or when the fuzz
//! binaries and the library's targets disagree. Each target runs in a child process (this
//! program again, with `--replay-target NAME`), so that an input that aborts the process (an
//! allocation failure, a stack overflow) or never finishes (a deadlock) is reported by name
//! like a panic.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::panic;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Longest one input may run before it counts as hung (the fuzz binaries allow 10 s, in a
/// release build; this is a debug build).
const HANG: Duration = Duration::from_secs(120);

/// Every file under `dir`, sorted (none if `dir` is missing); README files are not inputs.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.starts_with("README") {
                continue;
            }
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn fuzz_dir() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    fs::canonicalize(&p).unwrap_or(p)
}

/// The inputs of one target, in replay order: the corpus, then the regressions.
fn target_inputs(name: &str) -> Vec<(&'static str, PathBuf)> {
    let fuzz = fuzz_dir();
    let mut v: Vec<(&'static str, PathBuf)> = inputs(&fuzz.join("corpus").join(name))
        .into_iter()
        .map(|p| ("corpus", p))
        .collect();
    v.extend(
        inputs(&fuzz.join("regressions").join(name))
            .into_iter()
            .map(|p| ("regression", p)),
    );
    v
}

/// The child: run the inputs of one target from the `from`-th on, reporting on stdout
/// `start <index> <kind> <path>` before and `fail <path>` after an input that panicked.
fn child(name: &str, from: usize) {
    let Some((_, body)) = dos_fuzz::TARGETS.iter().find(|(n, _)| *n == name) else {
        eprintln!("no target {name}");
        std::process::exit(2);
    };
    let mut out = std::io::stdout();
    for (i, (kind, file)) in target_inputs(name).into_iter().enumerate().skip(from) {
        let Ok(data) = fs::read(&file) else {
            let _ = writeln!(out, "unreadable {}", file.display());
            continue;
        };
        let _ = writeln!(out, "start {i} {kind} {}", file.display());
        let _ = out.flush();
        if panic::catch_unwind(|| body(&data)).is_err() {
            let _ = writeln!(out, "fail {}", file.display());
        }
    }
    dos_fuzz::remove_scratch();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        println!("replay: test");
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--replay-target") {
        let from = args.get(i + 2).and_then(|s| s.parse().ok()).unwrap_or(0);
        child(args.get(i + 1).map_or("", String::as_str), from);
        return;
    }
    let fuzz = fuzz_dir();
    let mut problems: Vec<String> = Vec::new();

    // The fuzz binaries are exactly the library's targets.
    let binaries: BTreeSet<String> = fs::read_dir(fuzz.join("fuzz_targets"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_suffix(".rs").map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    let targets: BTreeSet<String> = dos_fuzz::TARGETS
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .collect();
    if binaries != targets {
        problems.push(format!(
            "fuzz/fuzz_targets/ has {binaries:?}, dos_fuzz::TARGETS has {targets:?}"
        ));
    }

    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => panic!("cannot find this test's executable: {e}"),
    };
    let mut total = 0;
    for (name, _) in dos_fuzz::TARGETS {
        let corpus = fuzz.join("corpus").join(name);
        if !corpus.is_dir() {
            problems.push(format!(
                "target {name} has no corpus folder {}",
                corpus.display()
            ));
            continue;
        }
        // The child's stderr (panic messages) goes straight to ours. A child that dies is
        // started again after the input that killed it.
        let (mut corpus_n, mut regression_n) = (0, 0);
        let mut from = 0;
        loop {
            let mut child = match Command::new(&exe)
                .args(["--replay-target", name, &from.to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
            {
                Ok(c) => c,
                Err(e) => panic!("cannot run {}: {e}", exe.display()),
            };
            // The child's lines, as they come: an input that runs for too long (a deadlock)
            // is named, and the child killed, instead of hanging the test.
            let (tx, rx) = mpsc::channel::<String>();
            if let Some(out) = child.stdout.take() {
                std::thread::spawn(move || {
                    for line in BufReader::new(out).lines() {
                        let Ok(line) = line else { break };
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                });
            }
            let mut last: Option<(usize, String)> = None;
            let mut hung = false;
            loop {
                let line = match rx.recv_timeout(HANG) {
                    Ok(l) => l,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        hung = true;
                        let _ = child.kill();
                        break;
                    }
                };
                if let Some(rest) = line.strip_prefix("start ") {
                    let mut parts = rest.splitn(3, ' ');
                    let i = parts.next().and_then(|i| i.parse().ok()).unwrap_or(0);
                    if parts.next() == Some("corpus") {
                        corpus_n += 1;
                    } else {
                        regression_n += 1;
                    }
                    last = Some((i, parts.next().unwrap_or_default().to_owned()));
                } else if let Some(p) = line.strip_prefix("fail ") {
                    problems.push(format!("{name}: {p} panicked"));
                } else if let Some(p) = line.strip_prefix("unreadable ") {
                    problems.push(format!("{name}: cannot read {p}"));
                }
            }
            let status = match child.wait() {
                Ok(s) => s,
                Err(e) => panic!("cannot wait for {}: {e}", exe.display()),
            };
            if status.success() && !hung {
                break;
            }
            let Some((i, path)) = last else {
                problems.push(format!("{name}: the replay process failed ({status})"));
                break;
            };
            if hung {
                problems.push(format!(
                    "{name}: {path} did not finish in {} s (a deadlock?)",
                    HANG.as_secs()
                ));
            } else {
                problems.push(format!("{name}: {path} killed the process ({status})"));
            }
            from = i + 1;
        }
        if corpus_n == 0 {
            problems.push(format!("target {name}: its corpus folder is empty"));
        }
        total += corpus_n + regression_n;
        println!("replay {name}: {corpus_n} corpus + {regression_n} regression inputs");
    }
    dos_fuzz::remove_scratch();
    if !problems.is_empty() {
        eprintln!("\nreplay FAILED:");
        for p in &problems {
            eprintln!("  {p}");
        }
        std::process::exit(1);
    }
    println!("replay: {total} inputs, all passed");
}
