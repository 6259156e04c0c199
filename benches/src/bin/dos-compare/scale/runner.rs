//! Running the scale benchmark's children (with a time limit for Python's), the untimed copies
//! of the base, and the facts about the machine recorded with the results.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::ops::Side;

/// What became of a child.
#[derive(Debug)]
pub enum Outcome {
    /// It printed its result (with `process_s`, the process's wall time, added).
    Done(Value),
    /// It was killed after the time limit (seconds).
    Timeout(f64),
    /// It failed (a Python child only; a failed dos child fails the run): how.
    Failed(String),
}

/// Where and with what the children run.
pub struct Runner {
    /// The Python interpreter with disk-objectstore.
    pub python: PathBuf,
    /// The Python side's script (`benches/python/scale_bench.py`).
    pub script: PathBuf,
    /// This binary (the dos side's `scale-child`).
    pub exe: PathBuf,
    /// Time limit of a Python child.
    pub python_timeout: Duration,
    /// Address-space limit of a Python child (MiB, 0: none).
    pub python_memory_limit_mb: u64,
}

impl Runner {
    /// A child command of `side` running `op` on `container`.
    pub fn command(&self, side: Side, op: &str, container: &Path) -> Command {
        let mut c = match side {
            Side::Python => {
                let mut c = Command::new(&self.python);
                c.arg(&self.script)
                    .arg("--memory-limit-mb")
                    .arg(self.python_memory_limit_mb.to_string());
                c
            }
            Side::Dos => {
                let mut c = Command::new(&self.exe);
                c.arg("scale-child");
                c
            }
        };
        c.arg(op).arg("--container").arg(container);
        // Python's stderr is kept, to record why a child failed (its last line, e.g.
        // `MemoryError`); dos children report their progress there.
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(match side {
                Side::Python => Stdio::piped(),
                Side::Dos => Stdio::inherit(),
            });
        c
    }

    /// Run `cmd` (a child of `side`) to completion, or kill it after the time limit when it is
    /// Python's and `limited`.
    pub fn run(&self, side: Side, what: &str, mut cmd: Command, limited: bool) -> Result<Outcome> {
        let limit = (limited && side == Side::Python).then_some(self.python_timeout);
        let t = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawn {} child for {what}", side.name()))?;
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout of the {} child", side.name()))?;
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let err_reader = child.stderr.take().map(|mut e| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = e.read_to_string(&mut s);
                s
            })
        });
        let stderr = move || err_reader.and_then(|r| r.join().ok()).unwrap_or_default();
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break st;
            }
            if let Some(l) = limit
                && t.elapsed() > l
            {
                // Only this child, by its own handle.
                let _ = child.kill();
                let _ = child.wait();
                let _ = reader.join();
                let _ = stderr();
                return Ok(Outcome::Timeout(l.as_secs_f64()));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let process_s = t.elapsed().as_secs_f64();
        let stdout = reader
            .join()
            .map_err(|_| anyhow!("the reader of the child's output panicked"))?;
        let stderr = stderr();
        if !stderr.trim().is_empty() {
            eprint!("{stderr}");
        }
        if !status.success() {
            if side == Side::Python && limited {
                let why = stderr.lines().rev().find(|l| !l.trim().is_empty());
                let why = format!("{status}: {}", why.unwrap_or("").trim());
                eprintln!("  python child for {what} failed ({why}); recorded as failed");
                return Ok(Outcome::Failed(why));
            }
            bail!(
                "{} child for {what} failed ({status}): {stdout}",
                side.name()
            );
        }
        let last = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .ok_or_else(|| anyhow!("{} child printed no result: {stdout}", side.name()))?;
        let mut v: Value = serde_json::from_str(last).context("parse child result")?;
        if let Value::Object(m) = &mut v {
            m.insert("process_s".into(), json!(process_s));
        }
        Ok(Outcome::Done(v))
    }
}

/// Run a command, failing unless it succeeds.
fn run_status(cmd: &mut Command, what: &str) -> Result<()> {
    let st = cmd.status().with_context(|| format!("run {what}"))?;
    if !st.success() {
        bail!("{what} failed: {st}");
    }
    Ok(())
}

/// `sync`: every dirty page to disk (before each timed child).
pub fn sync() -> Result<()> {
    run_status(&mut Command::new("sync"), "sync")
}

/// Copy the container `src` to `dst` (which must not exist): every file with `cp -a
/// --reflink=auto` (its own copy: packs are rewritten or appended to, the index is rewritten)
/// except the loose objects, which are hard links to `src`'s (`cp -al`): loose files are only
/// ever created, read, renamed into place or unlinked, never written in place, by either
/// implementation, so sharing their inodes is safe, and it spares creating and later freeing
/// 10^5 inodes per copy (ext4 creates files slowly after many were freed).
pub fn copy_container(src: &Path, dst: &Path) -> Result<()> {
    fs::create_dir_all(dst).with_context(|| format!("create {}", dst.display()))?;
    for e in fs::read_dir(src).with_context(|| format!("list {}", src.display()))? {
        let e = e?;
        let flags = if e.file_name() == "loose" {
            "-al"
        } else {
            "-a"
        };
        let to = dst.join(e.file_name());
        run_status(
            Command::new("cp")
                .args([flags, "--reflink=auto"])
                .arg(e.path())
                .arg(&to),
            &format!("cp {flags} {} {}", e.path().display(), to.display()),
        )?;
    }
    Ok(())
}

/// Hard-link every loose object of the container `src` into the container `dst` (see
/// [`copy_container`]).
pub fn link_loose(src: &Path, dst: &Path) -> Result<()> {
    let mut from = src.join("loose").into_os_string();
    from.push("/.");
    let to = dst.join("loose");
    run_status(
        Command::new("cp").arg("-al").arg(&from).arg(&to),
        &format!("cp -al {} {}", Path::new(&from).display(), to.display()),
    )
}

/// Remove a folder if it exists.
pub fn remove(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    Ok(())
}

/// Read the index and the pack files of `container` once (untimed), so that both sides start
/// from the page cache whatever ran before.
pub fn warm(container: &Path) -> Result<()> {
    let mut files = vec![container.join("packs.idx")];
    if let Ok(rd) = fs::read_dir(container.join("packs")) {
        files.extend(rd.flatten().map(|e| e.path()));
    }
    let mut buf = vec![0u8; 8 << 20];
    for p in files {
        if let Ok(mut f) = fs::File::open(&p) {
            while f.read(&mut buf)? > 0 {}
        }
    }
    Ok(())
}

/// Read every loose object of `container` once (untimed), so that an operation reading them
/// (`pack`) finds them in the page cache whichever side runs first.
pub fn warm_loose(container: &Path) -> Result<()> {
    let mut buf = Vec::new();
    for shard in fs::read_dir(container.join("loose"))?.flatten() {
        if let Ok(rd) = fs::read_dir(shard.path()) {
            for f in rd.flatten() {
                if let Ok(mut fh) = fs::File::open(f.path()) {
                    buf.clear();
                    fh.read_to_end(&mut buf)?;
                }
            }
        }
    }
    Ok(())
}

/// Bytes available to this user on the file system of `dir` (`df`).
pub fn available_bytes(dir: &Path) -> Result<u64> {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .context("run df")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| anyhow!("cannot read df's output for {}", dir.display()))
}

/// The load now: `uptime`'s line and `/proc/loadavg`.
pub fn load() -> Value {
    let uptime = Command::new("uptime")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let loadavg = fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    json!({
        "at_unix_s": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        "uptime": uptime,
        "loadavg": loadavg,
    })
}

/// The machine: cores, memory, kernel.
pub fn machine() -> Value {
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.trim().strip_suffix("kB"))
        .and_then(|r| r.trim().parse::<u64>().ok());
    let kernel = Command::new("uname")
        .arg("-r")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    json!({
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "mem_total_kb": mem_kb,
        "kernel": kernel,
    })
}

/// The repository's short commit (`git rev-parse --short HEAD`) and the paths the work tree
/// changes (`git status --porcelain`); outside git (a build from `git archive`, as
/// `scripts/scale.sh` makes), the commit and notes of the file `.source-commit` in the
/// repository (its first line, then one note per line), else `unknown`.
pub fn commit(repo: &Path) -> (String, Vec<String>) {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if repo.join(".git").exists()
        && let Some(c) = git(&["rev-parse", "--short", "HEAD"])
    {
        let changed = git(&["status", "--porcelain"])
            .map(|s| s.lines().map(|l| l.trim().to_string()).collect())
            .unwrap_or_default();
        return (c, changed);
    }
    let file = fs::read_to_string(repo.join(".source-commit")).unwrap_or_default();
    let mut lines = file.lines().map(str::trim).filter(|l| !l.is_empty());
    let c = lines.next().unwrap_or("unknown").to_string();
    (c, lines.map(String::from).collect())
}

/// Today's date, `YYYY-MM-DD` (`date +%F`).
pub fn today() -> String {
    Command::new("date")
        .arg("+%F")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "unknown-date".into())
}
