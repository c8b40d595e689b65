//! Self-contained HTML pages: askama templates (compiled in, under
//! `templates/`) that extend `base.html` (inline CSS, no scripts, fonts or
//! other external resources), with inline SVG charts from [`charts`].
//! A page opens offline and reads without JavaScript; hovering a chart
//! shows its numbers (SVG `<title>`s).

pub mod charts;
pub mod images;
pub mod report;
pub mod verify;

use std::io::{self, Write};

/// A total shown as a card at the top of a page.
#[derive(Debug, Clone)]
pub struct Total {
    /// What it counts.
    pub label: String,
    /// The number, formatted.
    pub value: String,
    /// A line under it (may be empty).
    pub detail: String,
}

impl Total {
    /// A card.
    pub fn new(label: &str, value: impl ToString, detail: impl Into<String>) -> Total {
        Total {
            label: label.to_string(),
            value: value.to_string(),
            detail: detail.into(),
        }
    }
}

/// Renders `page` into `w`.
pub fn write_page(w: &mut dyn Write, page: &impl askama::Template) -> io::Result<()> {
    let html = page
        .render()
        .map_err(|e| io::Error::other(format!("rendering the HTML page: {e}")))?;
    w.write_all(html.as_bytes())
}

/// A severity's name as shown (and used as a CSS class).
pub fn severity_name(s: crate::problem::Severity) -> &'static str {
    match s {
        crate::problem::Severity::Error => "error",
        crate::problem::Severity::Warning => "warning",
        crate::problem::Severity::Info => "info",
    }
}

/// A problem kind's stable snake_case name (as in the JSON output).
pub fn kind_name(k: crate::problem::Kind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A repository's bytes, for the two repository charts of a page.
pub struct RepoBytes {
    /// Name.
    pub name: String,
    /// Its stored bytes, split by what deleting frees (in the order of the
    /// categories given to [`repository_charts`]): the tile's area is their
    /// sum.
    pub parts: Vec<u64>,
    /// The bar's length: the bytes the bar chart is about.
    pub bar: u64,
}

/// The treemap of each repository's stored bytes (area), coloured by the
/// `categories` of its [`RepoBytes::parts`], and the bars of
/// [`RepoBytes::bar`], with the page's titles.
pub fn repository_charts(
    repos: &[RepoBytes],
    categories: &[&str],
    treemap_title: &str,
    bars_title: &str,
) -> (charts::Treemap, charts::BarChart) {
    let human = crate::report::human_bytes;
    let treemap = charts::Treemap::new(
        treemap_title,
        categories,
        repos
            .iter()
            .map(|r| charts::TreemapItem {
                label: r.name.clone(),
                parts: r.parts.clone(),
            })
            .collect(),
        human,
        (1100.0, 440.0),
        60,
    );
    let bars = charts::BarChart::new(
        bars_title,
        repos.iter().map(|r| (r.name.clone(), r.bar)).collect(),
        human,
        1100.0,
        25,
    );
    (treemap, bars)
}
