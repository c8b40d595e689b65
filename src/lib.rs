//! regsweep: an offline garbage collector and auditor for container-registry
//! (CNCF distribution) storage.
//!
//! The pipeline, one module per stage:
//! [`storage`] (filesystem or object store) → [`scan`] (list into an
//! [`scan::Inventory`]) → [`graph`] (read and parse manifests, see
//! [`manifest`]) → [`mark`] (roaring-bitmap mark in two modes) → [`report`],
//! or, for the per-manifest listing, [`times`] (link mtimes) → [`images`];
//! to remove, one pipeline for `sweep`, `delete` and `prune`
//! ([`removal`]): [`policy`] or `delete`'s references → [`prune`] (the
//! roots after the removals, re-marked) → [`plan`] → [`sweep`]; what a
//! manifest keeps alive and what a tag follows are decided in [`reach`].
//!
//! Fallible calls return [`Error`] ([`error`]), whose every variant names the
//! file, object, row or argument it concerns.

pub mod access_log;
pub mod config;
pub mod describe;
pub mod digest;
pub mod error;
pub mod graph;
pub mod images;
pub mod inventory;
pub mod json;
pub mod manifest;
pub mod mark;
pub mod output;
pub mod plan;
pub mod policy;
pub mod problem;
pub mod progress;
pub mod prune;
pub mod quarantine;
pub mod reach;
pub mod removal;
pub mod report;
pub mod s3_inventory;
pub mod scan;
pub mod select;
pub mod storage;
pub mod sweep;
pub mod times;
pub mod untrusted;
pub mod verify;

pub use error::{Error, Result};

/// Settings of a `report` run.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Which manifests are roots.
    pub mode: mark::Mode,
    /// Scan settings.
    pub scan: scan::ScanOptions,
    /// Parse settings.
    pub graph: graph::GraphOptions,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            mode: mark::Mode::KeepUntagged,
            scan: scan::ScanOptions::fast(),
            graph: graph::GraphOptions::default(),
        }
    }
}

/// Everything a run computed: the scan, the graph, the mark and the report.
#[derive(Debug)]
pub struct Analysis {
    /// What the storage holds.
    pub inventory: scan::Inventory,
    /// Parsed manifests.
    pub graph: graph::Graph,
    /// Per-repository mark inputs.
    pub roots: Vec<mark::RepoRoots>,
    /// The mark's result.
    pub marked: mark::Marked,
}

/// Scans, parses and marks. Fails only when the storage cannot be listed.
pub fn analyze(
    storage: &dyn storage::Storage,
    opts: &ReportOptions,
    progress: &progress::Progress,
) -> Result<Analysis, storage::StorageError> {
    let mut a = scan_parse_mark(storage, opts, progress)?;
    // A fast scan learns sizes and ages only of the blobs that matter.
    progress.phase("reading sizes of garbage blobs");
    let garbage = a.inventory.stored_blobs() - &a.marked.blobs;
    scan::fill_blob_stats(storage, &mut a.inventory, &garbage, opts.scan.blob_ages);
    progress.finish();
    Ok(a)
}

/// [`analyze`] without the garbage blobs' sizes: a fast scan knows only the
/// sizes of the manifests it read.
fn scan_parse_mark(
    storage: &dyn storage::Storage,
    opts: &ReportOptions,
    progress: &progress::Progress,
) -> Result<Analysis, storage::StorageError> {
    let mut inventory = scan::scan(storage, &opts.scan, progress)?;
    let graph = graph::build(storage, &mut inventory, &opts.graph, progress);
    mark::check_roots(&mut inventory);
    progress.phase("marking");
    let roots = mark::roots(&inventory);
    let marked = mark::mark(&roots, &graph.nodes, opts.mode);
    Ok(Analysis {
        inventory,
        graph,
        roots,
        marked,
    })
}

/// Settings of an `images` run.
#[derive(Debug, Clone)]
pub struct ImagesRun {
    /// Largest manifest read.
    pub max_manifest_size: u64,
    /// Stat every blob for its stored size (without it, sizes are what
    /// manifests declare).
    pub sizes: bool,
    /// Read image configs (platforms, creation times).
    pub read_configs: bool,
    /// Read tag history link times (to attribute pulls by tag).
    pub history_times: bool,
    /// Listing settings.
    pub images: images::ImagesOptions,
}

/// Scans, parses, marks (`--delete-untagged`) and reads link times: what
/// [`images::build`] needs, with the image configs read.
pub fn analyze_images(
    storage: &dyn storage::Storage,
    run: &ImagesRun,
    progress: &progress::Progress,
) -> Result<(Analysis, times::LinkTimes, images::Configs), storage::StorageError> {
    let opts = ReportOptions {
        mode: mark::Mode::DeleteUntagged,
        scan: scan::ScanOptions {
            blob_ages: false,
            link_times: true,
            tag_times: true,
            // Tag history only attributes pulls by tag.
            tag_history: run.history_times,
            ..scan::ScanOptions::fast()
        },
        graph: graph::GraphOptions {
            max_manifest_size: run.max_manifest_size,
            describe: true,
            ..Default::default()
        },
    };
    let mut a = if run.sizes {
        // Every blob's size is read below: the garbage's need no pass of
        // their own.
        scan_parse_mark(storage, &opts, progress)?
    } else {
        analyze(storage, &opts, progress)?
    };
    // Configs first: the length of each one read whole is its stored size,
    // which then needs no stat.
    let configs = if run.read_configs {
        progress.phase("reading image configs");
        images::read_configs(storage, &mut a, run.sizes)
    } else {
        Default::default()
    };
    if run.sizes {
        // Every blob's stored size; manifests' and configs' are known from
        // reading them.
        progress.phase("reading blob sizes");
        let all = a.inventory.stored_blobs();
        scan::fill_blob_stats(storage, &mut a.inventory, &all, false);
    }
    progress.phase("reading link times");
    let times = times::read(storage, &mut a.inventory, run.history_times);
    progress.finish();
    Ok((a, times, configs))
}
