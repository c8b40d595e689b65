//! The HTML page of `verify --format html`: the verdict, totals, broken tags
//! first, findings by kind, then every finding with its remedy.

use super::charts::BarChart;
use super::{kind_name, severity_name, Total};
use crate::problem::Severity;
use crate::report::{counted, human_bytes};
use crate::verify::Verification;
use askama::Template;

/// Rows of the findings table at most (JSON and CSV have every one).
pub const MAX_FINDING_ROWS: usize = 2000;

/// One row of the broken tags table.
#[derive(Debug, Clone)]
pub struct BrokenTagRow {
    /// Repository.
    pub repository: String,
    /// Tag.
    pub tag: String,
    /// The manifest its current link names (empty when none).
    pub digest: String,
    /// The findings that break it, as `kind digest` pairs.
    pub causes: String,
}

/// One row of the findings table.
#[derive(Debug, Clone)]
pub struct FindingRow {
    /// `error`, `warning` or `info`.
    pub severity: &'static str,
    /// The kind's snake_case name.
    pub kind: String,
    /// Repository (empty when none).
    pub repository: String,
    /// The key it concerns.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub remedy: &'static str,
}

/// The page.
#[derive(Debug, Template)]
#[template(path = "verify.html")]
pub struct VerifyPage {
    /// regsweep's version.
    pub tool_version: &'static str,
    /// When the run ended.
    pub generated_at: String,
    /// The storage.
    pub storage: String,
    /// What was checked (rehash, inventory).
    pub scope: String,
    /// The verdict line.
    pub banner: String,
    /// `ok`, `warn` or `err`.
    pub banner_class: &'static str,
    /// The cards at the top.
    pub totals: Vec<Total>,
    /// Broken tags.
    pub broken_tags: Vec<BrokenTagRow>,
    /// Findings per kind.
    pub by_kind: BarChart,
    /// All findings.
    pub finding_count: usize,
    /// The first [`MAX_FINDING_ROWS`] findings, errors first.
    pub findings: Vec<FindingRow>,
    /// Findings not shown.
    pub findings_hidden: usize,
}

impl VerifyPage {
    /// The page for a verification; `against` names the inventory compared
    /// with, if any; `generated_at` is RFC 3339.
    pub fn new(v: &Verification, against: Option<&str>, generated_at: String) -> VerifyPage {
        let c = &v.checked;
        let (e, w, n) = (
            v.count(Severity::Error),
            v.count(Severity::Warning),
            v.count(Severity::Info),
        );
        let (banner, banner_class) = if !v.is_whole() {
            (
                format!(
                    "NOT WHOLE: {}, {}.",
                    counted(e, "error", "errors"),
                    counted(v.broken_tags.len(), "broken tag", "broken tags")
                ),
                "err",
            )
        } else if w > 0 {
            (
                format!("Whole: no errors ({}).", counted(w, "warning", "warnings")),
                "warn",
            )
        } else {
            ("Whole: no errors, no warnings.".to_string(), "ok")
        };
        let mut scope = if v.rehash {
            "every blob rehashed".to_string()
        } else {
            "manifests hashed, layers not (no --rehash)".to_string()
        };
        if let Some(a) = against {
            scope.push_str(&format!(" · compared with {a}"));
        }
        let hashed = match c.rehash_seconds {
            Some(s) => format!("{} in {s:.1} s", human_bytes(c.hashed_bytes)),
            None => human_bytes(c.hashed_bytes),
        };
        let totals = vec![
            Total::new(
                "Repositories",
                c.repositories,
                counted(c.tags, "tag", "tags"),
            ),
            Total::new("Manifests", c.manifests, counted(c.links, "link", "links")),
            Total::new("Blobs", c.blobs, human_bytes(c.blob_bytes)),
            Total::new("Hashed", c.hashed_blobs, hashed),
            Total::new(
                "Broken tags",
                v.broken_tags.len(),
                format!(
                    "{}, {}, {}",
                    counted(e, "error", "errors"),
                    counted(w, "warning", "warnings"),
                    counted(n, "note", "notes")
                ),
            ),
        ];
        let broken_tags = v
            .broken_tags
            .iter()
            .map(|b| BrokenTagRow {
                repository: b.repository.clone(),
                tag: b.tag.clone(),
                digest: b.digest.clone().unwrap_or_default(),
                causes: b
                    .causes
                    .iter()
                    .filter_map(|&i| v.findings.get(i))
                    .map(|f| match &f.digest {
                        Some(d) => format!("{} {d}", kind_name(f.kind)),
                        None => kind_name(f.kind),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .collect();
        let mut per_kind = std::collections::BTreeMap::new();
        for f in &v.findings {
            *per_kind.entry(kind_name(f.kind)).or_insert(0u64) += 1;
        }
        let by_kind = BarChart::new(
            "Findings by kind",
            per_kind.into_iter().collect(),
            |n| n.to_string(),
            1100.0,
            40,
        );
        let findings = v
            .findings
            .iter()
            .take(MAX_FINDING_ROWS)
            .map(|f| FindingRow {
                severity: severity_name(f.severity),
                kind: kind_name(f.kind),
                repository: f.repository.clone().unwrap_or_default(),
                path: f.path.clone(),
                message: f.message.clone(),
                remedy: f.remedy,
            })
            .collect();
        VerifyPage {
            tool_version: env!("CARGO_PKG_VERSION"),
            generated_at,
            storage: v.storage.clone(),
            scope,
            banner,
            banner_class,
            totals,
            broken_tags,
            by_kind,
            finding_count: v.findings.len(),
            findings,
            findings_hidden: v.findings.len().saturating_sub(MAX_FINDING_ROWS),
        }
    }
}
