//! Progress on stderr with indicatif: a spinner per listing phase, a bar
//! while manifests are parsed, a bar in bytes with rate and ETA while blobs
//! are hashed; a finished phase leaves a one-line summary. Silent unless
//! stderr is a terminal.

use crate::storage::{RequestCounter, RequestCounts};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Progress reporting, possibly disabled.
#[derive(Debug, Default)]
pub struct Progress {
    enabled: bool,
    /// The bar or spinner shown, and whether it counts bytes.
    bar: Mutex<Option<(ProgressBar, bool)>>,
    /// With `REGSWEEP_TIMINGS` set: the current phase and when it started,
    /// printed to stderr when the next one begins.
    timing: Mutex<Option<(String, std::time::Instant, f64, RequestCounts)>>,
    /// The storage's request counter, when it counts requests: each
    /// phase's timing line then says what it sent.
    requests: OnceLock<Arc<RequestCounter>>,
}

/// CPU seconds (user and system) the process has used so far.
fn cpu_seconds() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes a `struct rusage` into the pointer it is given.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

impl Progress {
    /// Progress on stderr when it is a terminal.
    pub fn auto() -> Self {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            ..Default::default()
        }
    }

    /// No output at all.
    pub fn hidden() -> Self {
        Progress::default()
    }

    /// Counts the requests of each phase in its `REGSWEEP_TIMINGS` line.
    pub fn count_requests(&self, counter: Option<Arc<RequestCounter>>) {
        if let Some(c) = counter {
            let _ = self.requests.set(c);
        }
    }

    fn time(&self, next: Option<&str>) {
        if std::env::var_os("REGSWEEP_TIMINGS").is_none() {
            return;
        }
        let mut t = self.timing.lock().unwrap_or_else(|e| e.into_inner());
        let sent = self
            .requests
            .get()
            .map(|c| c.snapshot())
            .unwrap_or_default();
        if let Some((name, start, cpu0, sent0)) = t.take() {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let kib = |field: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(field))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                    .map_or(0, |k| k >> 10)
            };
            let requests = match self.requests.get() {
                Some(_) => format!(", {}", sent.since(&sent0)),
                None => String::new(),
            };
            eprintln!(
                "regsweep: {name}: {:.3}s, cpu {:.3}s (rss {} MiB, peak {} MiB){requests}",
                start.elapsed().as_secs_f64(),
                cpu_seconds() - cpu0,
                kib("VmRSS:"),
                kib("VmHWM:")
            );
        }
        *t = next.map(|n| {
            (
                n.to_string(),
                std::time::Instant::now(),
                cpu_seconds(),
                sent,
            )
        });
    }

    fn replace(&self, new: Option<(ProgressBar, bool)>) {
        let mut slot = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((old, bytes)) = slot.take() {
            // The finished phase leaves one line: what, how many, how long.
            let (msg, pos, len, took) =
                (old.message(), old.position(), old.length(), old.elapsed());
            old.finish_and_clear();
            let n = |v: u64| {
                if bytes {
                    crate::report::human_bytes(v)
                } else {
                    v.to_string()
                }
            };
            let count = match len {
                Some(l) => format!(" {}/{}", n(pos), n(l)),
                None if pos > 0 => format!(" {}", n(pos)),
                None => String::new(),
            };
            eprintln!("  done: {msg}{count} in {:.1}s", took.as_secs_f64());
        }
        *slot = new;
    }

    /// Shows a new bar (`len` steps) or spinner (`None`) drawn with
    /// `template`, in place of the one before; `bytes`: it counts bytes.
    fn show(&self, msg: &str, len: Option<u64>, template: &str, bytes: bool) {
        self.time(Some(msg));
        if !self.enabled {
            return;
        }
        let pb = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr_with_hz(10));
        pb.set_style(
            ProgressStyle::with_template(template)
                .expect("valid template")
                .with_key(
                    "rate",
                    |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.1}/s", s.per_sec());
                    },
                )
                .progress_chars("=> "),
        );
        pb.set_message(msg.to_string());
        if len.is_none() {
            pb.enable_steady_tick(Duration::from_millis(100));
        }
        self.replace(Some((pb, bytes)));
    }

    /// Starts a phase of unknown length (a spinner).
    pub fn phase(&self, msg: &str) {
        self.show(msg, None, "{spinner} {msg} {elapsed}", false);
    }

    /// Starts a phase of `len` steps (a bar).
    pub fn start(&self, msg: &str, len: u64) {
        self.show(
            msg,
            Some(len),
            "{msg} [{bar:30}] {pos}/{len} {rate} eta {eta}",
            false,
        );
    }

    /// Starts a phase that moves bytes whose total is not known yet: a
    /// spinner with the bytes so far and the rate.
    pub fn phase_bytes(&self, msg: &str) {
        let t = "{spinner} {msg} {binary_bytes} {binary_bytes_per_sec} {elapsed}";
        self.show(msg, None, t, true);
    }

    /// Starts a phase that moves `total` bytes (a bar with bytes, rate
    /// and ETA in binary units: `1.2 GiB/3.4 GiB 85.3 MiB/s eta 27s`).
    pub fn start_bytes(&self, msg: &str, total: u64) {
        let t =
            "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}";
        self.show(msg, Some(total), t, true);
    }

    /// Advances the current bar.
    pub fn inc(&self, n: u64) {
        if let Some((pb, _)) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            pb.inc(n);
        }
    }

    /// Clears whatever is shown.
    pub fn finish(&self) {
        self.time(None);
        self.replace(None);
    }
}
