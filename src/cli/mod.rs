//! Commands of the binary that have grown their own file: each holds the
//! command's arguments (clap derive) and the function that runs it; and how
//! the binary writes to standard output.

pub mod exit;
pub mod images;
pub mod listing;
pub mod prune;
pub mod sweep;

use anyhow::Context;
use std::io::{ErrorKind, Write};

/// Writes `text` to standard output (locked, then flushed). Unlike `print!`,
/// which panics when standard output is a closed pipe (`regsweep … | head`;
/// Rust ignores SIGPIPE, so the write fails with EPIPE), it returns the
/// error: `main` then ends the run quietly with exit status 0 (see
/// [`is_broken_pipe`]).
pub fn out(text: &str) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())
        .and_then(|()| o.flush())
        .context("writing to standard output")
}

/// True when the error, or anything in its chain, is a write to a closed
/// pipe: the reader of the output is gone, and the run ends quietly, as
/// ripgrep's does.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(broken_pipe)
}

fn broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        // An I/O error may wrap another (a serializer's, say) that holds it.
        return io.kind() == ErrorKind::BrokenPipe
            || io.get_ref().is_some_and(|inner| broken_pipe(inner));
    }
    if let Some(e) = e.downcast_ref::<regsweep::Error>() {
        return e
            .io_error()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe);
    }
    if let Some(e) = e.downcast_ref::<serde_json::Error>() {
        return e.io_error_kind() == Some(ErrorKind::BrokenPipe);
    }
    if let Some(e) = e.downcast_ref::<csv::Error>() {
        return matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == ErrorKind::BrokenPipe);
    }
    false
}
