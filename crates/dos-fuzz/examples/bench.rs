//! Run the corpus of one target through its body in a loop, without libFuzzer, and print the
//! executions per second: `cargo run --release -p dos-fuzz --example bench -- TARGET [SECONDS]`
//! (for profiling a target, e.g. under `perf record`).

use std::path::Path;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(name) = args.get(1) else {
        eprintln!("usage: bench TARGET [SECONDS]");
        std::process::exit(2);
    };
    let secs: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let Some((_, body)) = dos_fuzz::TARGETS.iter().find(|(n, _)| n == name) else {
        eprintln!("no target {name}");
        std::process::exit(2);
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(name);
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    inputs.sort();
    if inputs.is_empty() {
        eprintln!("no inputs in {}", dir.display());
        std::process::exit(2);
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs_f64(secs) {
        for i in &inputs {
            body(i);
            n += 1;
        }
    }
    let t = start.elapsed().as_secs_f64();
    println!(
        "{name}: {n} executions of {} inputs in {t:.1} s: {:.0} exec/s",
        inputs.len(),
        n as f64 / t
    );
    dos_fuzz::remove_scratch();
}
