//! `report`'s CSV tables and metrics (its HTML page is [`super::html::report`]).

use super::metrics::{MetricError, Metrics};
use crate::problem::Kind;
use crate::report::Report;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// The tables `report --format csv` can write, one per file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportTable {
    /// One row per repository (the JSON's `repositories`), then a row
    /// each for reclaimable bytes no repository holds: `(linked into
    /// several repositories)`, `(unlinked blobs)` (not visible; only
    /// `reclaimable_bytes` set), so that the column adds up to the total.
    Repositories,
    /// One row per garbage blob: digest, size (`garbage_blobs`).
    GarbageBlobs,
    /// One row per revision link to remove: repository, digest (`garbage_manifests`).
    GarbageManifests,
    /// One row per upload (`abandoned_uploads`).
    Uploads,
    /// One row per problem, with its remedy (`problems`).
    Problems,
}

/// A problem as a CSV row: the JSON's fields and the remedy.
#[derive(Debug, Serialize)]
pub struct ProblemRow<'a> {
    /// Kind (snake_case).
    pub kind: Kind,
    /// `error`, `warning` or `info`.
    pub severity: crate::problem::Severity,
    /// The key it concerns.
    pub path: &'a str,
    /// What is wrong.
    pub message: &'a str,
    /// What to do about it.
    pub remedy: &'static str,
}

/// Writes one table of `report` as CSV.
pub fn write_csv(w: &mut dyn Write, report: &Report, table: ReportTable) -> Result<(), csv::Error> {
    use super::csv::write_rows;
    match table {
        ReportTable::Repositories => write_rows(
            w,
            &[
                "name",
                "visible",
                "tags",
                "manifests",
                "manifests_tagged",
                "manifests_untagged",
                "manifests_garbage",
                "layer_links",
                "unique_bytes",
                "shared_bytes",
                "reclaimable_bytes",
                "uploads",
            ],
            report
                .repositories
                .iter()
                .cloned()
                .chain(report.summary.unowned().map(|(name, bytes)| {
                    crate::report::RepositoryEntry {
                        name,
                        visible: false,
                        reclaimable_bytes: bytes,
                        ..Default::default()
                    }
                })),
        ),
        ReportTable::GarbageBlobs => write_rows(w, &["digest", "size"], &report.garbage_blobs),
        ReportTable::GarbageManifests => {
            write_rows(w, &["repository", "digest"], &report.garbage_manifests)
        }
        ReportTable::Uploads => write_rows(
            w,
            &["repository", "id", "size", "started_at", "age_seconds"],
            &report.abandoned_uploads,
        ),
        ReportTable::Problems => write_rows(
            w,
            &["kind", "severity", "path", "message", "remedy"],
            report.problems.iter().map(|p| ProblemRow {
                kind: p.kind,
                severity: p.severity,
                path: &p.path,
                message: &p.message,
                remedy: crate::verify::remedy(p.kind),
            }),
        ),
    }
}

/// Adds `report`'s metrics: totals, reclaimable bytes per repository,
/// problems per kind and severity, and whether a sweep would be refused.
pub fn add_metrics(m: &mut Metrics, report: &Report) -> Result<(), MetricError> {
    let s = &report.summary;
    for (name, help, v) in [
        (
            "regsweep_repositories",
            "Repositories the registry can see.",
            s.repositories as f64,
        ),
        (
            "regsweep_tags",
            "Tags, over all repositories.",
            s.tags as f64,
        ),
        (
            "regsweep_manifests",
            "Revision-linked manifests, over all repositories.",
            s.manifests as f64,
        ),
        (
            "regsweep_stored_blobs",
            "Distinct blobs stored.",
            s.blobs as f64,
        ),
        (
            "regsweep_stored_bytes",
            "Bytes of the blobs stored.",
            s.blob_bytes as f64,
        ),
        (
            "regsweep_garbage_blobs",
            "Blobs no live manifest references.",
            s.garbage_blobs as f64,
        ),
        (
            "regsweep_garbage_bytes",
            "Bytes of the garbage blobs, each counted once.",
            s.garbage_blob_bytes as f64,
        ),
        (
            "regsweep_garbage_manifests",
            "Revision links a sweep would remove.",
            s.garbage_manifests as f64,
        ),
        (
            "regsweep_uploads",
            "Uploads in progress or abandoned.",
            s.uploads as f64,
        ),
        (
            "regsweep_upload_bytes",
            "Bytes of the uploads.",
            s.upload_bytes as f64,
        ),
        (
            "regsweep_total_reclaimable_bytes",
            "Bytes a sweep would free: garbage blobs and uploads.",
            s.reclaimable_bytes as f64,
        ),
        (
            "regsweep_sweep_blocked",
            "1 when problems make reachability uncertain and a sweep would refuse to run.",
            f64::from(u8::from(s.sweep_blocked)),
        ),
    ] {
        m.gauge(name, help, &[], v)?;
    }
    for r in &report.repositories {
        m.gauge(
            "regsweep_reclaimable_bytes",
            "Bytes of garbage blobs linked into the repository (a blob linked into several \
             counts in each), plus its uploads.",
            &[("repository", &r.name)],
            r.reclaimable_bytes as f64,
        )?;
    }
    let mut per = BTreeMap::new();
    for p in &report.problems {
        *per.entry((super::html::kind_name(p.kind), p.severity))
            .or_insert(0u64) += 1;
    }
    for ((kind, sev), n) in per {
        m.gauge(
            "regsweep_problems",
            "Problems found in the storage, by kind and severity.",
            &[
                ("kind", &kind),
                ("severity", super::html::severity_name(sev)),
            ],
            n as f64,
        )?;
    }
    Ok(())
}
