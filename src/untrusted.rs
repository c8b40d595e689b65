//! Entry points for fuzzing: one function per parser of bytes that come
//! from outside (the storage, the registry's logs and configuration, S3
//! Inventory reports, files regsweep wrote earlier and reads back).
//!
//! Each function hands `data` to the parser the commands use, as they use
//! it, renders an error the way it would be printed, and drops the result:
//! bytes that the parser refuses are expected. A function panics only when
//! the parser does, which is the bug a fuzzer looks for. The targets in
//! `fuzz/fuzz_targets/` call these functions, and `tests/fuzz_replay.rs`
//! replays their seeds and regressions on every test run.
//!
//! Parsers that only read a file are given `data` in a fresh file under
//! [`std::env::temp_dir`], removed afterwards.

use crate::access_log::{read_logs, LogOptions, LogSource};
use crate::s3_inventory::index::Part;
use crate::s3_inventory::Rows;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A manifest read from storage: [`crate::manifest::parse`], the graph's
/// [`crate::describe::parse_and_describe`] and [`crate::describe::describe`].
pub fn manifest(data: &[u8]) {
    let _ = crate::manifest::parse(data).map_err(|e| e.to_string());
    let (parsed, _) = crate::describe::parse_and_describe(data);
    let _ = parsed.map_err(|e| e.to_string());
    let _ = crate::describe::describe(data);
}

/// A manifest that does not parse, searched for the digests it names:
/// [`crate::manifest::conservative_refs`].
pub fn conservative_refs(data: &[u8]) {
    let _ = crate::manifest::conservative_refs(data);
}

/// An image config blob: [`crate::describe::image_config`].
pub fn image_config(data: &[u8]) {
    let _ = crate::describe::image_config(data);
}

/// A `link` file's content: [`crate::scan::parse_link`].
pub fn link(data: &[u8]) {
    let _ = crate::scan::parse_link(data).map_err(|e| e.to_string());
}

/// One line of the registry's output: [`crate::access_log::parse_line`].
pub fn log_line(data: &[u8]) {
    let _ = crate::access_log::parse_line(data);
}

/// A whole log file, plain or gzip: [`crate::access_log::read_logs`] with
/// the default options, then with blocks and a line limit small enough
/// that lines are cut across blocks and over-long lines are skipped.
pub fn log_file(data: &[u8]) {
    with_temp_file(data, ".log", |path| {
        let sources = [LogSource::Path(path.to_path_buf())];
        let small = LogOptions {
            ignore_user_agent: regex::Regex::new("scanner").ok(),
            block_size: 7,
            max_line: 64,
        };
        for opts in [LogOptions::default(), small] {
            let r = read_logs(
                &sources,
                &opts,
                || 0u64,
                |n, pull| *n += pull.request.reference.len() as u64,
                |a, b| a + b,
            );
            let _ = r.map_err(|e| e.to_string());
        }
    });
}

/// A retention policy file, as YAML and as JSON:
/// [`crate::policy::Policy::parse`] (what [`crate::policy::Policy::from_file`]
/// does with the text), then [`crate::policy::Policy::validate`].
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for json in [false, true] {
        match crate::policy::Policy::parse(text, json, "policy") {
            Ok(p) => {
                let _ = p.validate(false).map_err(|e| e.to_string());
                let _ = p.validate(true);
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
}

/// The registry's `config.yml`: [`crate::config::Location::from_registry_config`].
pub fn registry_config(data: &[u8]) {
    with_temp_file(data, ".yml", |path| {
        let _ = crate::config::Location::from_registry_config(path).map_err(|e| e.to_string());
    });
}

/// An S3 Inventory `manifest.json`: [`crate::s3_inventory::manifest::Manifest::parse`].
pub fn s3_manifest(data: &[u8]) {
    let _ = crate::s3_inventory::manifest::Manifest::parse(data, "manifest.json")
        .map_err(|e| e.to_string());
}

/// An S3 Inventory gzip CSV data file: [`crate::s3_inventory::csv::read`]
/// with the columns of a plain and of a versioned inventory, each time
/// into an index that is then finished.
pub fn s3_csv(data: &[u8]) {
    const SCHEMAS: [&str; 2] = [
        "Bucket, Key, Size, LastModifiedDate, ETag",
        "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate",
    ];
    for schema in SCHEMAS {
        let schema: Vec<String> = schema.split(", ").map(str::to_string).collect();
        let Ok(cols) = crate::s3_inventory::csv::Columns::find(&schema, "manifest.json") else {
            continue;
        };
        let mut part = Part::default();
        let r = crate::s3_inventory::csv::read(
            data,
            cols,
            &mut Rows::new("reg/docker/registry/v2/", &mut part),
            "data.csv.gz",
        );
        let _ = r.map_err(|e| e.to_string());
        let _ = part.finish();
    }
}

/// An S3 Inventory Parquet data file: [`crate::s3_inventory::parquet::read`]
/// into an index that is then finished.
pub fn parquet(data: &[u8]) {
    let mut part = Part::default();
    let r = crate::s3_inventory::parquet::read(
        bytes::Bytes::copy_from_slice(data),
        &mut Rows::new("reg/docker/registry/v2/", &mut part),
        "data.parquet",
    );
    let _ = r.map_err(|e| e.to_string());
    let _ = part.finish();
}

/// A plan saved with `--plan FILE`: [`crate::removal::saved::read`].
pub fn saved_plan(data: &[u8]) {
    with_temp_file(data, ".json", |path| {
        let _ = crate::removal::saved::read(path).map_err(|e| e.to_string());
    });
}

/// A sweep's journal: [`crate::sweep::Journal::read`].
pub fn journal(data: &[u8]) {
    with_temp_file(data, ".jsonl", |path| {
        let _ = crate::sweep::Journal::read(path).map_err(|e| e.to_string());
    });
}

/// A file written by `regsweep inventory`: [`crate::inventory::load`].
pub fn inventory(data: &[u8]) {
    with_temp_file(data, ".json", |path| {
        let _ = crate::inventory::load(path).map_err(|e| e.to_string());
    });
}

/// Writes `data` to a file of its own under the temporary directory, calls
/// `f` with its path and removes it (also when `f` panics and unwinds).
fn with_temp_file(data: &[u8], suffix: &str, f: impl FnOnce(&Path)) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let path = std::env::temp_dir().join(format!(
        "regsweep-untrusted-{}-{}{suffix}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let file = Remove(path);
    f(&file.0);
}
