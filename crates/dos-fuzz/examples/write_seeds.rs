//! Write the seed inputs of `dos_fuzz::seeds` into `fuzz/corpus/<target>/` (existing files of
//! the same name are overwritten; other corpus files are left alone).

use std::fs;
use std::path::Path;

fn main() -> std::io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (target, _) in dos_fuzz::TARGETS {
        let seeds = dos_fuzz::seeds::seeds(target);
        if seeds.is_empty() {
            continue;
        }
        let dir = corpus.join(target);
        fs::create_dir_all(&dir)?;
        for (name, bytes) in &seeds {
            fs::write(dir.join(name), bytes)?;
        }
        println!("{target}: {} seeds in {}", seeds.len(), dir.display());
    }
    Ok(())
}
