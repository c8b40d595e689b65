//! The HTML page of `report --format html`: totals, a treemap of stored
//! bytes by repository, reclaimable bytes by repository, the age of
//! manifests, the problems with their remedies, and the repositories.

use super::charts::{self, BarChart, Histogram, Series, Treemap};
use super::{kind_name, severity_name, Total};
use crate::problem::Severity;
use crate::report::{counted, human_bytes, Report};
use crate::scan::Inventory;
use askama::Template;
use std::time::SystemTime;

/// Rows of the problems table at most (the JSON report has every one).
pub const MAX_PROBLEM_ROWS: usize = 1000;
/// Rows of the repositories table at most.
pub const MAX_REPOSITORY_ROWS: usize = 200;

/// One row of the problems table.
#[derive(Debug, Clone)]
pub struct ProblemRow {
    /// `error`, `warning` or `info`.
    pub severity: &'static str,
    /// The kind's snake_case name.
    pub kind: String,
    /// The key it concerns.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub remedy: &'static str,
}

/// One row of the repositories table.
#[derive(Debug, Clone)]
pub struct RepositoryRow {
    /// Name.
    pub name: String,
    /// Tags.
    pub tags: usize,
    /// Revision-linked manifests.
    pub manifests: usize,
    /// Untagged ones.
    pub untagged: usize,
    /// Unique bytes, formatted.
    pub unique: String,
    /// Shared bytes, formatted.
    pub shared: String,
    /// Reclaimable bytes, formatted.
    pub reclaimable: String,
}

/// The page.
#[derive(Debug, Template)]
#[template(path = "report.html")]
pub struct ReportPage {
    /// regsweep's version.
    pub tool_version: &'static str,
    /// When the report was made.
    pub generated_at: String,
    /// The storage.
    pub storage: String,
    /// The mark mode, for people.
    pub mode: &'static str,
    /// The verdict line.
    pub banner: String,
    /// `ok`, `warn` or `err`.
    pub banner_class: &'static str,
    /// The cards at the top.
    pub totals: Vec<Total>,
    /// Stored bytes by repository.
    pub treemap: Treemap,
    /// Reclaimable bytes by repository.
    pub bars: BarChart,
    /// Manifest ages, when any are known.
    pub ages: Option<Histogram>,
    /// What the ages are.
    pub ages_caption: String,
    /// All problems.
    pub problem_count: usize,
    /// The first [`MAX_PROBLEM_ROWS`] problems.
    pub problems: Vec<ProblemRow>,
    /// Problems not shown.
    pub problems_hidden: usize,
    /// All repositories.
    pub repository_count: usize,
    /// The first [`MAX_REPOSITORY_ROWS`] repositories, by reclaimable bytes.
    pub repositories: Vec<RepositoryRow>,
    /// Repositories not shown.
    pub repositories_hidden: usize,
}

/// Series of manifest ages for the page's histogram: each is a name and
/// the ages in seconds. [`manifest_ages`] gives the push times the scan
/// knows; other sources (e.g. last pulls from access logs) add their own
/// series.
#[derive(Debug, Clone)]
pub struct AgeSeries {
    /// What the ages are, e.g. "tagged manifests, pushed".
    pub name: String,
    /// One age per manifest, in seconds.
    pub ages: Vec<u64>,
}

/// Ages since push of every revision-linked manifest whose push time is
/// known, per repository, as two series: tagged and untagged. "Pushed" is
/// as everywhere ([`crate::times`]): the modification time of the
/// manifest's revision link in the repository, as `images` shows it.
pub fn manifest_ages(
    inv: &Inventory,
    times: &crate::times::LinkTimes,
    now: SystemTime,
) -> Vec<AgeSeries> {
    let (mut tagged, mut untagged) = (Vec::new(), Vec::new());
    for (r, rt) in inv.repos.iter().zip(&times.repos) {
        let tags: std::collections::HashSet<u32> =
            r.tags.iter().filter_map(|t| t.current).collect();
        for &m in &r.revisions {
            let Some(&t) = rt.revisions.get(&m) else {
                continue;
            };
            let age = now.duration_since(t).map_or(0, |d| d.as_secs());
            if tags.contains(&m) {
                tagged.push(age);
            } else {
                untagged.push(age);
            }
        }
    }
    vec![
        AgeSeries {
            name: "tagged manifests, pushed".into(),
            ages: tagged,
        },
        AgeSeries {
            name: "untagged manifests, pushed".into(),
            ages: untagged,
        },
    ]
}

impl ReportPage {
    /// The page for `report`; `ages` are the series of the age histogram
    /// (empty series are left out; none at all shows "no ages known").
    pub fn new(report: &Report, ages: &[AgeSeries]) -> ReportPage {
        let s = &report.summary;
        let count = |sev| report.problems.iter().filter(|p| p.severity == sev).count();
        let (errors, warnings, notes) = (
            count(Severity::Error),
            count(Severity::Warning),
            count(Severity::Info),
        );
        let (banner, banner_class) = if s.sweep_blocked {
            (
                format!(
                    "A sweep would refuse to run: {} reachability uncertain.",
                    counted(s.blocking_problems, "problem makes", "problems make")
                ),
                "err",
            )
        } else if warnings > 0 {
            (
                format!(
                    "{} reclaimable; {} to look at.",
                    human_bytes(s.reclaimable_bytes),
                    counted(warnings, "warning", "warnings")
                ),
                "warn",
            )
        } else {
            (
                format!(
                    "{} reclaimable; no problems that need attention.",
                    human_bytes(s.reclaimable_bytes)
                ),
                "ok",
            )
        };
        let totals = vec![
            Total::new(
                "Repositories",
                s.repositories,
                counted(s.tags, "tag", "tags"),
            ),
            Total::new(
                "Manifests",
                s.manifests,
                format!(
                    "{} to remove",
                    counted(s.garbage_manifests, "revision", "revisions")
                ),
            ),
            Total::new(
                "Stored",
                human_bytes(s.blob_bytes),
                counted(s.blobs, "blob", "blobs"),
            ),
            Total::new(
                "Reclaimable",
                human_bytes(s.reclaimable_bytes),
                format!(
                    "{}{} ({}), {} ({})",
                    if s.reclaimable_uncertain.is_some() {
                        "uncertain: problems make reachability uncertain; "
                    } else {
                        ""
                    },
                    counted(s.garbage_blobs, "garbage blob", "garbage blobs"),
                    human_bytes(s.garbage_blob_bytes),
                    counted(s.uploads, "upload", "uploads"),
                    human_bytes(s.upload_bytes)
                ),
            ),
            Total::new(
                "Problems",
                s.problems,
                format!(
                    "{}, {}, {}",
                    counted(errors, "error", "errors"),
                    counted(warnings, "warning", "warnings"),
                    counted(notes, "note", "notes")
                ),
            ),
        ];
        let (treemap, bars) = super::repository_charts(
            &report
                .repositories
                .iter()
                .map(|r| super::RepoBytes {
                    name: r.name.clone(),
                    parts: vec![r.reclaimable_bytes, r.unique_bytes, r.shared_bytes],
                    bar: r.reclaimable_bytes,
                })
                .chain(s.unowned().map(|(name, bytes)| super::RepoBytes {
                    name,
                    parts: vec![bytes, 0, 0],
                    bar: bytes,
                }))
                .collect::<Vec<_>>(),
            &[
                "reclaimable now (garbage, uploads)",
                "freed by deleting it",
                "needed by other repositories",
            ],
            "Stored bytes by repository",
            "Reclaimable bytes by repository",
        );
        let series: Vec<Series> = ages
            .iter()
            .filter(|a| !a.ages.is_empty())
            .map(|a| Series {
                name: format!("{} ({})", a.name, a.ages.len()),
                counts: charts::age_buckets(a.ages.iter().copied()),
            })
            .collect();
        let ages_caption = if series.is_empty() {
            "No manifest ages are known for this storage.".to_string()
        } else {
            "How long ago each revision-linked manifest was pushed (the modification time of its \
             revision link, as images shows it), per repository."
                .to_string()
        };
        let ages = (!series.is_empty()).then(|| {
            Histogram::new(
                "Age of manifests",
                &charts::AGE_BUCKETS,
                &series,
                "manifests",
                (1100.0, 300.0),
            )
        });
        let problems = report
            .problems
            .iter()
            .take(MAX_PROBLEM_ROWS)
            .map(|p| ProblemRow {
                severity: severity_name(p.severity),
                kind: kind_name(p.kind),
                path: p.path.clone(),
                message: p.message.clone(),
                remedy: crate::verify::remedy(p.kind),
            })
            .collect();
        let repositories = report
            .repositories
            .iter()
            .take(MAX_REPOSITORY_ROWS)
            .map(|r| RepositoryRow {
                name: r.name.clone(),
                tags: r.tags,
                manifests: r.manifests,
                untagged: r.manifests_untagged,
                unique: human_bytes(r.unique_bytes),
                shared: human_bytes(r.shared_bytes),
                reclaimable: human_bytes(r.reclaimable_bytes),
            })
            .chain(s.unowned().map(|(name, bytes)| RepositoryRow {
                name,
                tags: 0,
                manifests: 0,
                untagged: 0,
                unique: String::new(),
                shared: String::new(),
                reclaimable: human_bytes(bytes),
            }))
            .collect();
        ReportPage {
            tool_version: env!("CARGO_PKG_VERSION"),
            generated_at: report.generated_at.clone(),
            storage: report.storage.clone(),
            mode: report.mode.as_str(),
            banner,
            banner_class,
            totals,
            treemap,
            bars,
            ages,
            ages_caption,
            problem_count: report.problems.len(),
            problems,
            problems_hidden: report.problems.len().saturating_sub(MAX_PROBLEM_ROWS),
            repository_count: report.repositories.len(),
            repositories,
            repositories_hidden: report
                .repositories
                .len()
                .saturating_sub(MAX_REPOSITORY_ROWS),
        }
    }
}
