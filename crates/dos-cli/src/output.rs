//! Rendering results for humans and for scripts (`--json`): every line the commands print.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;
use dos_archive::ArchiveImportSummary;
use dos_archive::export::ExportSummary;
use dos_archive::info::ArchiveInfo;
use dos_core::maintain::{
    BackupSummary, CleanSummary, ImportObjectsSummary, OptimizeSummary, PackLooseSummary,
    RepackSummary, ValidationReport,
};
use dos_core::{Container, ObjectCount, ObjectKey, ObjectMeta, ObjectType, TotalSize};
use serde_json::{Value, json};

/// Python-shaped JSON of an object's metadata (`ObjectMeta` field names).
pub fn meta_json(key: &ObjectKey, m: &ObjectMeta) -> Value {
    let loc = m.location;
    json!({
        "hashkey": key,
        "type": m.kind,
        "size": m.size,
        "pack_id": loc.map(|l| l.pack_id),
        "pack_compressed": loc.map(|l| l.compressed),
        "pack_offset": loc.map(|l| l.offset),
        "pack_length": loc.map(|l| l.length),
    })
}

/// One human line of an object's metadata.
pub fn meta_line(key: &ObjectKey, m: &ObjectMeta) -> String {
    match (m.kind, m.location) {
        (ObjectType::Packed, Some(l)) => format!(
            "{key}  packed  size={} pack={} offset={} length={} compressed={}",
            l.size, l.pack_id, l.offset, l.length, l.compressed
        ),
        (ObjectType::Loose, _) => format!("{key}  loose  size={}", m.size.unwrap_or(0)),
        _ => format!("{key}  missing"),
    }
}

/// Print a JSON value on stdout.
pub fn print_json(out: &mut impl Write, v: &Value) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, v)?;
    writeln!(out)
}

/// Print a summary: JSON when asked, else the human line.
pub fn summary(json: bool, value: &impl serde::Serialize, human_line: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    if json {
        print_json(&mut out, &serde_json::to_value(value)?)?;
    } else if !human_line.is_empty() {
        writeln!(out, "{human_line}")?;
    }
    Ok(())
}

/// `dos init`.
pub fn initialised(c: &Container, json: bool) -> Result<()> {
    let mut out = io::stdout().lock();
    if json {
        print_json(
            &mut out,
            &json!({"path": c.path(), "id": c.config().container_id}),
        )?;
    } else {
        writeln!(
            out,
            "Initialised container {} (id {})",
            c.path().display(),
            c.config().container_id
        )?;
    }
    Ok(())
}

/// `dos add`: one "<key>  <path>" line per file, or a JSON list.
pub fn added(files: &[PathBuf], keys: &[Option<ObjectKey>], json: bool) -> Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    let key = |k: &Option<ObjectKey>| k.map(|k| k.to_string()).unwrap_or_default();
    if json {
        let items: Vec<_> = files
            .iter()
            .zip(keys)
            .map(|(f, k)| json!({"hashkey": key(k), "path": f}))
            .collect();
        print_json(&mut out, &json!(items))?;
    } else {
        for (f, k) in files.iter().zip(keys) {
            writeln!(out, "{}  {}", key(k), f.display())?;
        }
    }
    out.flush()?;
    Ok(())
}

/// `dos meta`.
pub fn metas(metas: &[(ObjectKey, ObjectMeta)], json: bool) -> Result<()> {
    let mut out = io::stdout().lock();
    if json {
        let v: Vec<_> = metas.iter().map(|(k, m)| meta_json(k, m)).collect();
        print_json(&mut out, &json!(v))?;
    } else {
        for (k, m) in metas {
            writeln!(out, "{}", meta_line(k, m))?;
        }
    }
    Ok(())
}

/// `dos delete`: the keys that existed.
pub fn deleted(deleted: &[ObjectKey], json: bool) -> Result<()> {
    let human: Vec<String> = deleted.iter().map(ToString::to_string).collect();
    summary(json, &json!({"deleted": deleted}), &human.join("\n"))
}

/// `dos status`.
pub fn status(c: &Container, count: &ObjectCount, size: &TotalSize, json: bool) -> Result<()> {
    let cfg = c.config();
    let unfinished = c.unfinished_conversion()?;
    let python_readable = c.python_readable()?;
    let places = c.pack_places()?;
    let remote = c.remote_settings()?.map(|r| r.url.to_string());
    let (local_n, local_b) = places.local();
    let (remote_n, remote_b) = places.remote();
    let (only_n, only_b) = places.remote_only();
    let mut out = io::stdout().lock();
    if json {
        print_json(
            &mut out,
            &json!({
                "path": c.path(),
                "id": cfg.container_id,
                "hash_type": cfg.hash_type.name(),
                "compression": cfg.compression.algorithm(),
                "python_readable": python_readable,
                "unfinished_conversion": unfinished,
                "pack_size_target": cfg.pack_size_target,
                "loose_prefix_len": cfg.loose_prefix_len,
                "count": count,
                "size": size,
                "remote": remote,
                "packs": {
                    "local": {"count": local_n, "bytes": local_b},
                    "remote": {"count": remote_n, "bytes": remote_b},
                    "remote_only": {"count": only_n, "bytes": only_b},
                },
            }),
        )?;
    } else {
        writeln!(out, "container   {}", c.path().display())?;
        writeln!(out, "id          {}", cfg.container_id)?;
        writeln!(
            out,
            "format      {} keys, {}, packs of {}, loose prefix {}",
            cfg.hash_type,
            cfg.compression.algorithm(),
            human(cfg.pack_size_target),
            cfg.loose_prefix_len
        )?;
        writeln!(
            out,
            "objects     {} packed in {} pack files, {} loose files",
            count.packed, count.pack_files, count.loose
        )?;
        writeln!(
            out,
            "packed      {} of content, {} on disk in objects, {} of pack files",
            human(size.total_size_packed),
            human(size.total_size_packed_on_disk),
            human(size.total_size_packfiles_on_disk)
        )?;
        writeln!(out, "loose       {}", human(size.total_size_loose))?;
        if let Some(url) = &remote {
            writeln!(
                out,
                "remote      {url}: {remote_n} packs ({}), {only_n} of them only there",
                human(remote_b)
            )?;
            writeln!(out, "local packs {local_n} ({})", human(local_b))?;
        }
        match &unfinished {
            Some(to) => writeln!(
                out,
                "python      cannot read it: a conversion to {to} is unfinished \
                 (run `dos repack --compression {to}`)"
            )?,
            None if python_readable => writeln!(out, "python      disk-objectstore reads it")?,
            None if only_n > 0 => writeln!(
                out,
                "python      cannot read its {only_n} offloaded packs (`dos fetch-packs --all` \
                 brings them back)"
            )?,
            None => writeln!(
                out,
                "python      cannot read it ({} is dos only; `dos repack --compression \
                 zlib+1` converts it)",
                cfg.compression.algorithm()
            )?,
        }
        writeln!(
            out,
            "index       {}",
            human(size.total_size_packindexes_on_disk)
        )?;
    }
    Ok(())
}

/// `dos pack`.
pub fn packed_line(s: &PackLooseSummary) -> String {
    format!(
        "packed {} objects ({}); {} were already packed; {} loose files deleted{}",
        s.packed,
        human(s.bytes_in),
        s.already_packed,
        s.loose_deleted,
        if s.corrupt.is_empty() {
            String::new()
        } else {
            format!(
                "; {} corrupt loose files NOT packed: {}",
                s.corrupt.len(),
                s.corrupt
                    .iter()
                    .map(|c| c.key.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    )
}

/// `dos repack`.
pub fn repacked_line(s: &RepackSummary) -> String {
    format!(
        "rewrote {} of {} packs ({} -> {}), removed {} empty packs{}",
        s.packs_rewritten.len(),
        s.packs_examined,
        human(s.bytes_before),
        human(s.bytes_after),
        s.packs_removed.len(),
        notes(&s.recovered)
    )
}

/// `dos clean`.
pub fn cleaned_line(s: &CleanSummary) -> String {
    format!(
        "deleted {} loose copies of packed objects, {} duplicates, {} sandbox files{}{}",
        s.loose_deleted,
        s.duplicates_deleted,
        s.sandbox_deleted,
        if s.vacuumed { "; index vacuumed" } else { "" },
        notes(&s.recovered)
    )
}

/// `dos backup`.
pub fn backup_line(s: &BackupSummary) -> String {
    format!(
        "backup {}: {} loose files linked, {} copied; packs: {} linked, {} grown (tail appended), \
         {} copied; {:.1} MB written{}{}",
        s.folder.display(),
        s.loose_linked,
        s.loose_copied,
        s.packs_linked,
        s.packs_appended,
        s.packs_copied,
        s.bytes_written as f64 / 1e6,
        s.verified_objects
            .map_or(String::new(), |n| format!("; {n} objects verified")),
        if s.removed.is_empty() {
            String::new()
        } else {
            format!("; {} old backups removed", s.removed.len())
        }
    )
}

/// `dos optimize`.
pub fn optimized_line(s: &OptimizeSummary) -> String {
    format!(
        "packed {} objects, deleted {} loose files, rewrote {} packs ({} -> {}){}",
        s.pack.packed,
        s.pack.loose_deleted + s.clean.loose_deleted,
        s.repack.packs_rewritten.len(),
        human(s.repack.bytes_before),
        human(s.repack.bytes_after),
        notes(&s.recovered)
    )
}

/// `dos export-archive`.
pub fn exported_line(s: &ExportSummary) -> String {
    format!(
        "wrote {} ({}): {} objects, {} of content{}",
        s.path.display(),
        human(s.archive_size),
        s.objects,
        human(s.bytes),
        if s.zip64 { ", zip64" } else { "" }
    )
}

/// `dos import-objects`.
pub fn imported_objects_line(s: &ImportObjectsSummary) -> String {
    format!(
        "copied {} of {} objects ({} already present){}",
        s.written,
        s.requested,
        s.already_present,
        if s.corrupt_in_source.is_empty() {
            String::new()
        } else {
            format!(
                "; {} corrupt in the source, not copied",
                s.corrupt_in_source.len()
            )
        }
    )
}

/// `dos import-archive`.
pub fn archive_import(s: &ArchiveImportSummary) -> Result<()> {
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "imported {} objects ({}; {} without recompressing) from {} repository entries; \
         {} already present, {} other entries ignored",
        s.imported,
        human(s.bytes_in),
        s.passthrough,
        s.repo_entries,
        s.already_present,
        s.ignored_entries
    )?;
    if s.unreferenced_skipped > 0 {
        writeln!(
            out,
            "{} entries no node references were skipped",
            s.unreferenced_skipped
        )?;
    }
    for b in &s.bad_entries {
        writeln!(out, "BAD ENTRY {}: {}", b.name, b.reason)?;
    }
    for k in &s.missing_referenced {
        writeln!(
            out,
            "MISSING referenced object {k} (not in the archive, not in the container)"
        )?;
    }
    Ok(())
}

/// One line for standard error when an import is incomplete: how many entries were skipped (the
/// first one named) and how many referenced objects are missing.
pub fn archive_import_problems(s: &ArchiveImportSummary) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(first) = s.bad_entries.first() {
        parts.push(format!(
            "{} bad {} skipped (first: {}: {})",
            s.bad_entries.len(),
            if s.bad_entries.len() == 1 {
                "entry"
            } else {
                "entries"
            },
            first.name,
            first.reason
        ));
    }
    if let Some(k) = s.missing_referenced.first() {
        parts.push(format!(
            "{} referenced objects missing (first: {k})",
            s.missing_referenced.len()
        ));
    }
    (!parts.is_empty()).then(|| {
        format!(
            "{}: import incomplete: {}; everything else was imported",
            s.archive.display(),
            parts.join("; ")
        )
    })
}

/// `dos archive-info`; `container` is the `-p` path the archive was compared with.
pub fn archive_info(i: &ArchiveInfo, container: &Path) -> Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "archive     {} ({})", i.path.display(), human(i.size))?;
    writeln!(
        out,
        "format      {} ({:?}), aiida {}",
        i.format_version.as_deref().unwrap_or("unknown"),
        i.format_kind,
        i.aiida_version.as_deref().unwrap_or("unknown")
    )?;
    writeln!(
        out,
        "entries     {} ({} repository objects, {} directories, {} other){}",
        i.entries,
        i.repo_entries,
        i.directories,
        i.other_count,
        if i.zip64 { ", zip64" } else { "" }
    )?;
    writeln!(
        out,
        "sizes       {} compressed, {} uncompressed ({} of repository objects)",
        human(i.compressed_bytes),
        human(i.uncompressed_bytes),
        human(i.repo_bytes)
    )?;
    writeln!(
        out,
        "methods     {} deflated, {} stored; {} with data descriptors, {} with local zip64 extras",
        i.deflated_entries, i.stored_entries, i.data_descriptors, i.zip64_local_extras
    )?;
    if let (Some(n), Some(b)) = (i.new_objects, i.new_bytes) {
        writeln!(
            out,
            "new         {n} objects ({}) are not in {}",
            human(b),
            container.display()
        )?;
    }
    for s in &i.suspicious {
        writeln!(out, "warning: {s}")?;
    }
    Ok(())
}

fn notes(recovered: &[String]) -> String {
    recovered
        .iter()
        .map(|n| format!("\nrecovered: {n}"))
        .collect()
}

/// The human report of a validation.
pub fn validation(r: &ValidationReport) -> Result<()> {
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "checked {} objects ({})",
        r.objects_checked,
        human(r.bytes_checked)
    )?;
    let lists: [(&str, &Vec<String>); 4] = [
        ("invalid hash (loose)", &r.invalid_hashes_loose),
        ("invalid hash (packed)", &r.invalid_hashes_packed),
        ("invalid size (packed)", &r.invalid_sizes_packed),
        ("overlapping (packed)", &r.overlapping_packed),
    ];
    for (what, keys) in lists {
        for k in keys {
            writeln!(out, "ERROR {what}: {k}")?;
        }
    }
    for p in &r.unreadable_packed {
        writeln!(out, "ERROR unreadable: {}: {}", p.key, p.detail)?;
    }
    for m in &r.missing_packs {
        writeln!(
            out,
            "ERROR pack {} is missing ({} objects point at it)",
            m.pack_id, m.objects
        )?;
    }
    if r.rows_in_pack_minus_one > 0 {
        writeln!(
            out,
            "ERROR {} objects point at pack -1 (interrupted Python repack; run `dos repack`)",
            r.rows_in_pack_minus_one
        )?;
    }
    if let Some(j) = &r.interrupted_repack {
        writeln!(
            out,
            "ERROR {j} (run any maintenance command, e.g. `dos clean`, to finish it)"
        )?;
    }
    for id in &r.orphan_packs {
        writeln!(out, "warning: pack {id} holds no indexed object")?;
    }
    let holes: u64 = r.unreferenced_bytes.values().sum();
    if holes > 0 {
        writeln!(
            out,
            "warning: {} in {} packs is unreferenced (holes; `dos repack` reclaims it)",
            human(holes),
            r.unreferenced_bytes.len()
        )?;
    }
    for l in &r.stale_locks {
        writeln!(
            out,
            "warning: stale lock packs/{l} of a dead dos process (`dos clean` removes it)"
        )?;
    }
    for l in &r.other_locks {
        writeln!(
            out,
            "warning: lock packs/{l} is held (or written by Python)"
        )?;
    }
    if r.sandbox_files > 0 {
        writeln!(out, "warning: {} files in sandbox/", r.sandbox_files)?;
    }
    if r.is_valid() {
        writeln!(out, "no errors found")?;
    } else {
        writeln!(out, "{} errors found", r.errors())?;
    }
    Ok(())
}

/// Bytes in binary units, e.g. "1.50 GiB".
pub fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// `dos offload`.
pub fn offloaded_line(s: &dos_core::remote::OffloadSummary) -> String {
    let mut line = format!(
        "offloaded {} packs to {} ({} uploaded, {} freed locally)",
        s.packs.len(),
        s.url,
        human(s.bytes_uploaded),
        human(s.bytes_freed)
    );
    if !s.skipped.is_empty() {
        line.push_str(&format!("; {} packs kept local", s.skipped.len()));
        for (id, why) in s.skipped.iter().take(3) {
            line.push_str(&format!("\n  pack {id}: {why}"));
        }
    }
    line
}

/// `dos offload --publish`.
pub fn published_line(s: &dos_core::remote::PublishSummary) -> String {
    let mut line = format!(
        "published snapshot {} of {} objects in {} packs to {} ({} uploaded)",
        s.pointer.snapshot,
        s.pointer.objects,
        s.pointer.packs,
        s.url,
        human(s.bytes_uploaded)
    );
    if s.loose_objects_left_out > 0 {
        line.push_str(&format!(
            "; {} loose objects are not in it (dos pack first)",
            s.loose_objects_left_out
        ));
    }
    line
}

/// `dos fetch-packs`.
pub fn fetched_line(s: &dos_core::remote::FetchSummary) -> String {
    format!(
        "fetched {} packs ({} downloaded)",
        s.fetched.len(),
        human(s.bytes)
    )
}

/// `dos clean`, the remote part.
pub fn remote_cleaned_line(s: &dos_core::remote::RemoteCleanSummary) -> String {
    format!(
        "remote {}: deleted {} unreferenced objects ({}), {} younger than the grace period kept, \
         {} interrupted uploads cleared",
        s.url,
        s.objects_deleted,
        human(s.bytes_deleted),
        s.objects_too_young,
        s.uploads_recovered
    )
}
