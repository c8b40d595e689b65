//! Progress on stderr with indicatif: a spinner per listing phase and a bar
//! while manifests are parsed. Silent unless stderr is a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

/// Progress reporting, possibly disabled.
#[derive(Debug, Default)]
pub struct Progress {
    enabled: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress {
    /// Progress on stderr when it is a terminal.
    pub fn auto() -> Self {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
        }
    }

    /// No output at all.
    pub fn hidden() -> Self {
        Progress::default()
    }

    fn replace(&self, new: Option<ProgressBar>) {
        let mut slot = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = slot.take() {
            old.finish_and_clear();
        }
        *slot = new;
    }

    /// Starts a phase of unknown length (a spinner).
    pub fn phase(&self, msg: &str) {
        if !self.enabled {
            return;
        }
        let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"),
        );
        pb.set_message(msg.to_string());
        pb.enable_steady_tick(Duration::from_millis(100));
        self.replace(Some(pb));
    }

    /// Starts a phase of `len` steps (a bar).
    pub fn start(&self, msg: &str, len: u64) {
        if !self.enabled {
            return;
        }
        let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(10));
        pb.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        pb.set_message(msg.to_string());
        self.replace(Some(pb));
    }

    /// Advances the current bar.
    pub fn inc(&self, n: u64) {
        if let Some(pb) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            pb.inc(n);
        }
    }

    /// Clears whatever is shown.
    pub fn finish(&self) {
        self.replace(None);
    }
}
