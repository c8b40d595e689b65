//! The HTML page of `images --format html`: totals, a treemap of bytes by
//! repository (unique, shared, reclaimable), what deleting each repository
//! would free, the age of manifests (pushed, and pulled where logs were
//! given), the largest rows, and the manifests with problems.

use super::charts::{self, BarChart, Histogram, Series, Treemap};
use super::Total;
use crate::images::output::ago;
use crate::images::{rfc3339, Images, Row};
use crate::report::{counted, human_bytes};
use askama::Template;

/// Rows of the images table at most (the JSON or CSV has every one).
pub const MAX_IMAGE_ROWS: usize = 500;

/// One row of the images table.
#[derive(Debug, Clone)]
pub struct ImageRow {
    /// Repository.
    pub repository: String,
    /// Tags, joined.
    pub tags: String,
    /// Short digest.
    pub digest: String,
    /// Kind.
    pub kind: String,
    /// Platforms, joined.
    pub platforms: String,
    /// Size, formatted.
    pub size: String,
    /// Reclaimable bytes, formatted.
    pub reclaimable: String,
    /// Pushed, relative.
    pub pushed: String,
    /// Pulled, relative.
    pub pulled: String,
    /// Status, one word.
    pub status: String,
}

/// One manifest with problems.
#[derive(Debug, Clone)]
pub struct ProblemRow {
    /// `repo@digest`.
    pub what: String,
    /// What is wrong.
    pub message: String,
}

/// The page.
#[derive(Debug, Template)]
#[template(path = "images.html")]
pub struct ImagesPage {
    /// regsweep's version.
    pub tool_version: &'static str,
    /// When it was made.
    pub generated_at: String,
    /// The storage.
    pub storage: String,
    /// The cards at the top.
    pub totals: Vec<Total>,
    /// Bytes by repository.
    pub treemap: Treemap,
    /// What deleting each repository frees.
    pub bars: BarChart,
    /// Ages of the rows shown.
    pub ages: Option<Histogram>,
    /// Rows shown in the table.
    pub rows: Vec<ImageRow>,
    /// Rows listed (after filters).
    pub row_count: usize,
    /// Rows not in the table.
    pub rows_hidden: usize,
    /// Manifests with problems.
    pub problems: Vec<ProblemRow>,
}

fn image_row(r: &Row, now: std::time::SystemTime) -> ImageRow {
    ImageRow {
        repository: r.repository.clone(),
        tags: if r.tags.is_empty() {
            "<none>".into()
        } else {
            r.tags.join(", ")
        },
        digest: r.digest.chars().skip(7).take(12).collect(),
        kind: serde_json::to_value(r.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        platforms: r.platforms.join(", "),
        size: human_bytes(r.size),
        reclaimable: human_bytes(r.reclaimable_bytes),
        pushed: ago(r.pushed_at, now),
        pulled: ago(r.last_pulled_at, now),
        status: r.status.as_str().to_string(),
    }
}

impl ImagesPage {
    /// The page of a listing (after `--repo`/`--filter`/`--sort`).
    pub fn new(images: &Images<'_>) -> ImagesPage {
        let s = &images.summary;
        let now = images.generated_at;
        let mut totals = vec![
            Total::new(
                "Manifests",
                s.images,
                format!(
                    "in {}, {}",
                    counted(s.repositories, "repository", "repositories"),
                    counted(s.tags, "tag", "tags")
                ),
            ),
            Total::new(
                "Stored",
                human_bytes(s.stored_bytes),
                counted(s.stored_blobs, "blob", "blobs"),
            ),
            Total::new(
                "Sum of image sizes",
                human_bytes(s.sum_of_image_sizes),
                format!("deduplication {:.2}×", s.deduplication_ratio),
            ),
            Total::new(
                "Garbage",
                human_bytes(s.garbage_bytes),
                "what report --delete-untagged frees",
            ),
        ];
        if let Some(l) = &images.access_logs {
            totals.push(Total::new(
                "Pulls in the logs",
                l.pulls,
                format!("{} lines, {} not understood", l.lines, l.unparsed_lines),
            ));
        }
        let (treemap, bars) = super::repository_charts(
            &images
                .repositories
                .iter()
                .map(|r| super::RepoBytes {
                    name: r.name.clone(),
                    parts: vec![
                        r.reclaimable_bytes.min(r.size),
                        r.size.saturating_sub(r.reclaimable_bytes),
                    ],
                    bar: r.reclaimable_bytes,
                })
                .collect::<Vec<_>>(),
            &["freed by deleting it", "needed by other repositories"],
            "Stored bytes by repository",
            "What deleting each repository frees",
        );
        let age = |t: Option<std::time::SystemTime>| {
            t.map(|t| now.duration_since(t).map_or(0, |d| d.as_secs()))
        };
        let pushed: Vec<u64> = images
            .entries
            .iter()
            .filter_map(|e| age(e.pushed_at))
            .collect();
        let pulled: Vec<u64> = images
            .entries
            .iter()
            .filter_map(|e| age(e.last_pulled_at))
            .collect();
        let series: Vec<Series> = [("pushed", pushed), ("last pulled", pulled)]
            .into_iter()
            .filter(|(_, a)| !a.is_empty())
            .map(|(name, a)| Series {
                name: format!("{name} ({})", a.len()),
                counts: charts::age_buckets(a.iter().copied()),
            })
            .collect();
        let ages = (!series.is_empty()).then(|| {
            Histogram::new(
                "Age of manifests",
                &charts::AGE_BUCKETS,
                &series,
                "manifests",
                (1100.0, 300.0),
            )
        });
        let rows = images
            .entries
            .iter()
            .take(MAX_IMAGE_ROWS)
            .map(|e| image_row(&images.row(e), now))
            .collect();
        let problems = images
            .entries
            .iter()
            .filter(|e| !e.problems.is_empty())
            .flat_map(|e| {
                let what = format!(
                    "{}@{}",
                    images.repository(e),
                    images.source.analysis.inventory.interner.digest(e.id)
                );
                e.problems.iter().map(move |p| ProblemRow {
                    what: what.clone(),
                    message: p.clone(),
                })
            })
            .take(1000)
            .collect();
        ImagesPage {
            tool_version: env!("CARGO_PKG_VERSION"),
            generated_at: rfc3339(now),
            storage: images.storage.clone(),
            totals,
            treemap,
            bars,
            ages,
            row_count: images.entries.len(),
            rows_hidden: images.entries.len().saturating_sub(MAX_IMAGE_ROWS),
            rows,
            problems,
        }
    }
}
