//! Progress bars: the CLI's implementation of `dos_core::Progress`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use dos_core::{Progress, Unit};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress bars on standard error, drawn only when it is a terminal and not `--quiet`.
pub struct Bars {
    enabled: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Bars {
    /// Bars that draw when stderr is a terminal and `quiet` is false.
    pub fn new(quiet: bool) -> Self {
        Self {
            enabled: !quiet && std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.bar.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Progress for Bars {
    fn start(&self, total: u64, unit: Unit, what: &str) {
        if !self.enabled {
            return;
        }
        let bar = if total > 0 {
            ProgressBar::new(total)
        } else {
            ProgressBar::new_spinner()
        };
        bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let tmpl = match (unit, total > 0) {
            (Unit::Bytes, true) => {
                "{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
            }
            (Unit::Bytes, false) => "{spinner} {msg:24} {bytes} {bytes_per_sec} {elapsed}",
            (Unit::Objects, true) => {
                "{msg:24} [{bar:30}] {human_pos}/{human_len} {per_sec} eta {eta}"
            }
            (Unit::Objects, false) => "{spinner} {msg:24} {human_pos} {per_sec} {elapsed}",
        };
        if let Ok(style) = ProgressStyle::with_template(tmpl) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Some(old) = self.slot().replace(bar) {
            old.finish_and_clear();
        }
    }

    fn inc(&self, n: u64) {
        if let Some(b) = self.slot().as_ref() {
            b.inc(n);
        }
    }

    fn finish(&self) {
        if let Some(b) = self.slot().take() {
            b.finish_and_clear();
        }
    }
}
