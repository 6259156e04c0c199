//! `dos`: command-line front end of the `dos-core` object store.
//!
//! All behaviour lives in the libraries; this crate parses arguments, draws progress bars,
//! prints results (human or `--json`) and turns errors into one-line messages and exit codes:
//! 0 success, 1 a negative result (an object is missing), 2 an error, 130 interrupted.

mod cli;
mod commands;
mod env;
mod output;
mod progress;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

/// How a command ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Everything asked for was done or found.
    Success,
    /// The command ran, but the answer is negative (e.g. an object is missing).
    Negative,
}

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let result = env::Env::from_process().and_then(|env| commands::run(&args, &env));
    match result {
        Ok(Verdict::Success) => ExitCode::SUCCESS,
        Ok(Verdict::Negative) => ExitCode::from(1),
        Err(e) => report(&e),
    }
}

/// The one place errors become messages and exit codes.
fn report(e: &anyhow::Error) -> ExitCode {
    // A closed stdout (`dos ls | head`) is not an error of ours.
    let broken_pipe = e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    let mut msg = format!("{e}");
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    let _ = writeln!(io::stderr(), "dos: error: {msg}");
    let core = e
        .downcast_ref::<dos_core::Error>()
        .or_else(|| match e.downcast_ref() {
            Some(dos_archive::ArchiveError::Container(inner)) => Some(inner),
            _ => None,
        });
    match core {
        Some(dos_core::Error::Interrupted) => ExitCode::from(130),
        Some(err) if err.is_not_found() => ExitCode::from(1),
        _ => ExitCode::from(2),
    }
}
