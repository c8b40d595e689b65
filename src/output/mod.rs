//! Output formats shared by the commands: CSV tables ([`csv`]), Prometheus
//! textfile-collector metrics ([`metrics`]), and self-contained HTML pages
//! ([`html`]) with inline SVG charts ([`html::charts`]).
//!
//! The helpers take plain data (rows that implement `Serialize`, numbers and
//! labels, chart series), not a command's own types, so that every command
//! uses the same ones. Text and JSON stay where they were (each command's
//! `to_text`, [`crate::json`]).
//!
//! # Adding a format to a command
//!
//! * **CSV**: define a flat row struct (`#[derive(Serialize)]`, no skipped
//!   fields: every row has the same columns; `Option` becomes an empty cell)
//!   and call [`csv::write_rows`]. When a command has several tables, offer a
//!   `--table` selector (one table per file) rather than concatenating them.
//! * **Metrics**: fill a [`metrics::Metrics`] (`gauge`, `counter`, units in
//!   the names: `_bytes`, `_seconds`), call [`metrics::Metrics::run`] with
//!   the command's name, and [`metrics::Metrics::write_file`] (atomic: a
//!   scrape never sees half a file). Metric names are per command, so that
//!   several commands' files can sit in one textfile directory without
//!   duplicate series.
//! * **HTML**: add a page template under `src/output/html/templates/` that
//!   `{% extends "base.html" %}` (inline CSS, no scripts, no external
//!   resources), a page struct that derives `askama::Template`, and build the
//!   charts with [`html::charts`] (each is a value that renders itself as an
//!   `<svg>`: embed it as `{{ chart|safe }}`). See [`html::report`] and
//!   [`html::verify`] for two complete pages.

pub mod csv;
pub mod html;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod sweep;
pub mod verify;

use std::io::{self, Write};
use std::path::Path;

/// Writes a file atomically: `f` writes to a temporary file in the same
/// directory (named `.<name>.tmp.<pid>`, which a textfile collector's `*.prom`
/// glob does not match), which is then renamed over `path`. Readers see the
/// old file or the new one, never a part.
pub fn write_atomic(
    path: &Path,
    f: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file name", path.display()),
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let res = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = io::BufWriter::new(file);
        f(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.prom");
        std::fs::write(&p, "old").unwrap();
        write_atomic(&p, |w| w.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.prom");
        std::fs::write(&p, "old").unwrap();
        let r = write_atomic(&p, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("boom"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
