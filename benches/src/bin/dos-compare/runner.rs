//! Running the children of both sides: their containers and inputs in the runs folder, the
//! untimed preparation of each run, and the spawning of each child.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use dos_bench::archive;
use serde_json::{Value, json};

use crate::expect::{check, expect, expect_base};
use crate::inputs::Inputs;
use crate::ops::{Api, ROWS, Row, Side};

/// Where and with what the children run.
pub struct Runner {
    /// The Python interpreter with disk-objectstore.
    pub python: PathBuf,
    /// The Python side's script (`benches/python/dos_bench.py`).
    pub script: PathBuf,
    /// This binary (the dos side's `child`).
    pub exe: PathBuf,
    /// The runs folder: the list files and the containers.
    pub runs: PathBuf,
    /// The data set folder (where its archives are).
    pub dataset: PathBuf,
    /// The API measured: with [`Api::Python`] both sides run the Python script (one with
    /// `dos_objectstore`), in containers of their own (`py-<name>-<side>`).
    pub api: Api,
    /// `compression_algorithm` of the containers the dos side creates.
    pub compression: Option<String>,
}

/// Run `sync` (write every dirty page to disk).
pub fn sync() -> Result<()> {
    let st = Command::new("sync").status().context("run sync")?;
    if !st.success() {
        bail!("sync failed: {st}");
    }
    Ok(())
}

/// Read a file once (into a small reused buffer), so that it is in the page cache.
fn read_through(path: &Path) -> Result<()> {
    let mut f = fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut buf = vec![0u8; 8 << 20];
    while f.read(&mut buf)? > 0 {}
    Ok(())
}

/// Sum of the sizes of the files directly in `dir`, and of everything below it (also the
/// scale benchmark's).
pub fn du(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += du(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

impl Runner {
    /// The container of `row` on `side` (of every run but a loose one's).
    pub fn container(&self, row: &Row, side: Side) -> PathBuf {
        self.runs.join(format!(
            "{}{}-{}",
            self.prefix(),
            row.container,
            side.name()
        ))
    }

    /// The prefix of this API's container names.
    fn prefix(&self) -> &'static str {
        match self.api {
            Api::Rust => "",
            Api::Python => "py-",
        }
    }

    /// Container of repetition `rep`: loose containers get one folder per run, so that no run
    /// follows the deletion of tens of thousands of files (see [`Runner::quiet_inodes`]).
    fn container_rep(&self, row: &Row, side: Side, rep: usize) -> PathBuf {
        if row.op == "loose" {
            self.runs.join(format!(
                "{}{}-{}-r{}",
                self.prefix(),
                row.container,
                side.name(),
                rep + 1
            ))
        } else {
            self.container(row, side)
        }
    }

    /// Remove the per-run loose containers, recording when many inodes were freed.
    pub fn remove_loose(&self) -> Result<()> {
        let mut removed = false;
        for e in fs::read_dir(&self.runs)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if (name.starts_with("loose-") || name.starts_with("py-loose-")) && e.path().is_dir() {
                fs::remove_dir_all(e.path())
                    .with_context(|| format!("remove {}", e.path().display()))?;
                removed = true;
            }
        }
        if removed {
            self.mark_bulk_delete()?;
        }
        Ok(())
    }

    /// Record that many inodes were freed now (see [`Runner::quiet_inodes`]).
    fn mark_bulk_delete(&self) -> Result<()> {
        fs::write(self.runs.join("last-bulk-delete"), now_secs().to_string())?;
        Ok(())
    }

    /// Remove a container if it exists; `many_files` records the deletion of many inodes (see
    /// [`Runner::quiet_inodes`]).
    pub fn remove_container(&self, dir: &Path, many_files: bool) -> Result<()> {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
            if many_files {
                self.mark_bulk_delete()?;
            }
        }
        Ok(())
    }

    /// A child command of `side` running `op` on container `cont` (for this API).
    fn command(&self, side: Side, op: &str, cont: &Path) -> Command {
        self.command_for(self.api, side, op, cont)
    }

    /// A child command of `side` running `op` on container `cont` for `api`: the Python script
    /// (with `--impl upstream` or `--impl dos`) or this binary's `child`.
    fn command_for(&self, api: Api, side: Side, op: &str, cont: &Path) -> Command {
        let mut c = match (api, side) {
            (_, Side::Python) | (Api::Python, Side::Dos) => {
                let mut c = Command::new(&self.python);
                c.arg(&self.script).arg("--impl").arg(match side {
                    Side::Python => "upstream",
                    Side::Dos => "dos",
                });
                c
            }
            (Api::Rust, Side::Dos) => {
                let mut c = Command::new(&self.exe);
                c.arg("child");
                c
            }
        };
        c.arg(op).arg("--container").arg(cont);
        c.stdin(Stdio::null()).stderr(Stdio::inherit());
        c
    }

    /// Run a child to completion; returns its JSON result and the process wall time.
    fn spawn(&self, side: Side, what: &str, mut cmd: Command) -> Result<(Value, f64)> {
        let t = Instant::now();
        let output = cmd
            .output()
            .with_context(|| format!("spawn {} child", side.name()))?;
        let process_s = t.elapsed().as_secs_f64();
        if !output.status.success() {
            bail!(
                "{} child for {what} failed ({}): {}",
                side.name(),
                output.status,
                String::from_utf8_lossy(&output.stdout)
            );
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .ok_or_else(|| anyhow!("{} child printed no result: {stdout}", side.name()))?;
        let v: Value = serde_json::from_str(last).context("parse child result")?;
        Ok((v, process_s))
    }

    /// Build a base container once (untimed): initialised by Python (as a user's container is),
    /// filled by dos from the data set: `base-loose` holds every file as a loose object,
    /// `base-packed` every unique object in one pack, uncompressed and without holes. Its `.ok`
    /// marker records the data set digest, so a regenerated data set rebuilds it.
    fn ensure_base(&self, base: &str, inp: &Inputs) -> Result<()> {
        let dir = self.runs.join(base);
        let ok = dir.with_extension("ok");
        let stamp = format!("{}\n", inp.digest_all);
        if fs::read_to_string(&ok).is_ok_and(|s| s == stamp) {
            return Ok(());
        }
        let _ = fs::remove_file(&ok);
        let loose = base == "base-loose";
        self.remove_container(&dir, loose)?;
        eprintln!("  (building {base} once, untimed: Python init_container, dos fills it)");
        self.spawn(
            Side::Python,
            "init",
            self.command(Side::Python, "init", &dir),
        )?;
        let (op, list) = if loose {
            ("loose", "files-all.txt")
        } else {
            ("pack", "files-unique.txt")
        };
        let mut cmd = self.command_for(Api::Rust, Side::Dos, op, &dir);
        cmd.arg("--list")
            .arg(self.runs.join(list))
            .arg("--existing");
        let (v, secs) = self.spawn(Side::Dos, base, cmd)?;
        let bad = check(&v, &expect_base(base, inp));
        if !bad.is_empty() {
            bail!("building {base}: {}", bad.join("; "));
        }
        if loose && du(&dir.join("packs")) != 0 {
            bail!("building {base}: it has packed data");
        }
        eprintln!("  ({base} built in {secs:.1} s)");
        sync()?;
        fs::write(&ok, stamp)?;
        Ok(())
    }

    /// ext4 makes file creation much slower for a while after many inodes were freed (its inode
    /// allocator skips recently deleted inodes: `recently_deleted` in `ext4_create`); measured
    /// here, 20k loose adds took 10.2 s right after deleting 80k files and 2.1 s 90 s later. So
    /// before loose runs, wait until `quiet` seconds have passed since the last bulk delete.
    pub fn quiet_inodes(&self, quiet: u64) -> Result<()> {
        let last: u64 = fs::read_to_string(self.runs.join("last-bulk-delete"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let wait = (last + quiet).saturating_sub(now_secs());
        if wait > 0 {
            eprintln!("  (waiting {wait} s after the last bulk delete, see --inode-quiet-secs)");
            std::thread::sleep(std::time::Duration::from_secs(wait));
        }
        Ok(())
    }

    /// Run one child; returns its JSON result with the process wall time added.
    pub fn run(&self, row: &Row, side: Side, rep: usize, inp: &Inputs) -> Result<Value> {
        let cont = self.container_rep(row, side, rep);
        let marker = cont.with_extension("ok");
        if row.writes {
            let _ = fs::remove_file(&marker);
            self.remove_container(&cont, row.base == Some("base-loose"))?;
        }
        if let Some(base) = row.base {
            // Untimed: the same starting container for both sides.
            self.ensure_base(base, inp)?;
            let st = Command::new("cp")
                .args(["-a", "--reflink=auto"])
                .arg(self.runs.join(base))
                .arg(&cont)
                .status()
                .context("run cp")?;
            if !st.success() {
                bail!("copying {base} to {} failed: {st}", cont.display());
            }
            if row.op == "repack" {
                let mut cmd = self.command(side, "delete", &cont);
                cmd.arg("--list").arg(self.runs.join("keys-delete.txt"));
                let (v, _) = self.spawn(side, "delete", cmd)?;
                let deleted = v.get("deleted").and_then(Value::as_u64);
                if deleted != Some(inp.deleted) {
                    bail!(
                        "{} delete_objects before repack deleted {deleted:?} keys, expected {}",
                        side.name(),
                        inp.deleted
                    );
                }
            }
        }
        let mut cmd = self.command(side, row.op, &cont);
        if !row.list.is_empty() {
            cmd.arg("--list").arg(self.runs.join(row.list));
        }
        if row.op == "pack-loose" {
            cmd.arg("--keys").arg(self.runs.join("keys-unique.txt"));
        }
        if let Some(level) = row.archive {
            let path = archive::archive_path(&self.dataset, level);
            // Untimed: both sides read the archive from the page cache.
            read_through(&path)?;
            cmd.arg("--archive")
                .arg(path)
                .arg("--keys")
                .arg(self.runs.join("keys-verify.txt"));
        }
        if row.compress {
            cmd.arg("--compress");
        }
        if row.dedup {
            cmd.arg("--dedup");
        }
        if let (Some(algo), Side::Dos, Api::Rust) = (&self.compression, side, self.api) {
            cmd.arg("--compression").arg(algo);
        }
        sync()?;
        let (mut v, process_s) = self.spawn(side, row.label, cmd)?;
        if let Value::Object(m) = &mut v {
            m.insert("process_s".into(), json!(process_s));
            m.insert("container".into(), json!(cont.display().to_string()));
            if row.writes {
                m.insert("packs_bytes".into(), json!(du(&cont.join("packs"))));
                m.insert("loose_bytes".into(), json!(du(&cont.join("loose"))));
                let idx = fs::metadata(cont.join("packs.idx")).map_or(0, |m| m.len());
                m.insert("index_bytes".into(), json!(idx));
            }
        }
        Ok(v)
    }

    /// Run the machine probes in a fresh dos child (on the probe sample, writing in the runs
    /// folder, which is in the data folder; sampling `archive`'s deflate streams if given).
    pub fn probe(
        &self,
        write_mib: u64,
        write_runs: usize,
        archive: Option<(&Path, u64)>,
    ) -> Result<Value> {
        let mut cmd = self.command_for(Api::Rust, Side::Dos, "probe", &self.runs);
        cmd.arg("--list")
            .arg(self.runs.join("files-probe.txt"))
            .arg("--write-mib")
            .arg(write_mib.to_string())
            .arg("--write-runs")
            .arg(write_runs.to_string());
        if let Some((path, mb)) = archive {
            cmd.arg("--archive")
                .arg(path)
                .arg("--archive-probe-mb")
                .arg(mb.to_string());
        }
        let (v, _) = self.spawn(Side::Dos, "probe", cmd)?;
        Ok(v)
    }

    /// Make sure the container a read operation needs exists (made by an untimed write run).
    pub fn ensure_source(&self, row: &Row, side: Side, inp: &Inputs) -> Result<()> {
        if row.writes {
            return Ok(());
        }
        let cont = self.container(row, side);
        // The marker says the container was checked; it may since have been deleted by hand.
        if cont.with_extension("ok").exists() && cont.join("config.json").exists() {
            return Ok(());
        }
        let Some(src) = ROWS
            .iter()
            .find(|r| r.writes && r.container == row.container)
        else {
            bail!("no operation produces container {}", row.container);
        };
        eprintln!(
            "  ({} needs {}: producing it first, untimed)",
            row.label,
            cont.display()
        );
        let v = self.run(src, side, 0, inp)?;
        let bad = check(&v, &expect(src, inp));
        if !bad.is_empty() {
            bail!("{} {}: {}", side.name(), src.label, bad.join("; "));
        }
        fs::write(cont.with_extension("ok"), b"ok\n")?;
        Ok(())
    }

    /// Remove what `row` leaves behind and no later row needs: the loose containers (many
    /// files), and the containers copied from `base-loose`.
    pub fn clean_up(&self, row: &Row) -> Result<()> {
        if row.op == "loose" {
            self.remove_loose()?;
        }
        if row.base == Some("base-loose") {
            for side in [Side::Python, Side::Dos] {
                let _ = fs::remove_file(self.container(row, side).with_extension("ok"));
                self.remove_container(&self.container(row, side), true)?;
            }
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
