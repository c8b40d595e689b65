//! `verify`'s CSV tables and metrics (its HTML page is [`super::html::verify`]).

use super::metrics::{MetricError, Metrics};
use crate::problem::{Kind, Severity};
use crate::verify::Verification;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// The tables `verify --format csv` can write, one per file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerifyTable {
    /// One row per finding, errors first (the JSON's `findings`).
    Findings,
    /// One row per broken tag (`broken_tags`); `causes` are the 0-based
    /// rows of the findings table, separated by spaces.
    BrokenTags,
}

/// A finding as a CSV row (the JSON's fields; absent ones are empty cells).
#[derive(Debug, Serialize)]
pub struct FindingRow<'a> {
    /// Kind (snake_case).
    pub kind: Kind,
    /// `error`, `warning` or `info`.
    pub severity: Severity,
    /// Repository involved.
    pub repository: Option<&'a str>,
    /// Tag involved.
    pub tag: Option<&'a str>,
    /// Digest involved.
    pub digest: Option<&'a str>,
    /// The key it concerns.
    pub path: &'a str,
    /// What is wrong.
    pub message: &'a str,
    /// What to do about it.
    pub remedy: &'a str,
}

/// A broken tag as a CSV row.
#[derive(Debug, Serialize)]
pub struct BrokenTagRow<'a> {
    /// Repository.
    pub repository: &'a str,
    /// Tag.
    pub tag: &'a str,
    /// The manifest its current link names.
    pub digest: Option<&'a str>,
    /// Rows of the findings table that break it, separated by spaces.
    pub causes: String,
}

/// Writes one table of a verification as CSV.
pub fn write_csv(
    w: &mut dyn Write,
    v: &Verification,
    table: VerifyTable,
) -> Result<(), csv::Error> {
    use super::csv::write_rows;
    match table {
        VerifyTable::Findings => write_rows(
            w,
            &[
                "kind",
                "severity",
                "repository",
                "tag",
                "digest",
                "path",
                "message",
                "remedy",
            ],
            v.findings.iter().map(|f| FindingRow {
                kind: f.kind,
                severity: f.severity,
                repository: f.repository.as_deref(),
                tag: f.tag.as_deref(),
                digest: f.digest.as_deref(),
                path: &f.path,
                message: &f.message,
                remedy: f.remedy,
            }),
        ),
        VerifyTable::BrokenTags => write_rows(
            w,
            &["repository", "tag", "digest", "causes"],
            v.broken_tags.iter().map(|b| BrokenTagRow {
                repository: &b.repository,
                tag: &b.tag,
                digest: b.digest.as_deref(),
                causes: b
                    .causes
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            }),
        ),
    }
}

/// Adds a verification's metrics: whether the storage is whole, broken
/// tags, findings by kind and severity, and what was checked.
pub fn add_metrics(m: &mut Metrics, v: &Verification) -> Result<(), MetricError> {
    let c = &v.checked;
    for (name, help, val) in [
        (
            "regsweep_verify_whole",
            "1 when verify found no errors: every tag can be pulled whole.",
            f64::from(u8::from(v.is_whole())),
        ),
        (
            "regsweep_verify_broken_tags",
            "Tags that cannot be pulled whole.",
            v.broken_tags.len() as f64,
        ),
        (
            "regsweep_verify_repositories",
            "Repositories verified.",
            c.repositories as f64,
        ),
        ("regsweep_verify_tags", "Tags verified.", c.tags as f64),
        (
            "regsweep_verify_manifests",
            "Revision links verified.",
            c.manifests as f64,
        ),
        (
            "regsweep_verify_links",
            "Link files read and checked against their paths.",
            c.links as f64,
        ),
        ("regsweep_verify_blobs", "Blobs stored.", c.blobs as f64),
        (
            "regsweep_verify_stored_bytes",
            "Bytes of the blobs stored.",
            c.blob_bytes as f64,
        ),
        (
            "regsweep_verify_hashed_blobs",
            "Blobs whose sha256 was recomputed.",
            c.hashed_blobs as f64,
        ),
        (
            "regsweep_verify_hashed_bytes",
            "Bytes whose sha256 was recomputed.",
            c.hashed_bytes as f64,
        ),
    ] {
        m.gauge(name, help, &[], val)?;
    }
    if let Some(s) = c.rehash_seconds {
        m.gauge(
            "regsweep_verify_rehash_duration_seconds",
            "How long the --rehash pass took.",
            &[],
            s,
        )?;
    }
    let mut per = BTreeMap::new();
    for f in &v.findings {
        *per.entry((super::html::kind_name(f.kind), f.severity))
            .or_insert(0u64) += 1;
    }
    for ((kind, sev), n) in per {
        m.gauge(
            "regsweep_verify_findings",
            "Findings of verify, by kind and severity.",
            &[
                ("kind", &kind),
                ("severity", super::html::severity_name(sev)),
            ],
            n as f64,
        )?;
    }
    Ok(())
}
