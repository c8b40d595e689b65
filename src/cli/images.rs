//! `regsweep images`: arguments, and the run that scans, lists and writes.

use crate::cli::exit::Exit;
use crate::{progress, worker_threads, write_output, write_with, StorageArgs};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use regsweep::problem::Severity;
use std::path::PathBuf;
use std::time::Duration;

/// Output format of `images`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ImagesFormat {
    /// A table for people (human sizes, relative ages); `table` is
    /// accepted too.
    #[value(alias = "table")]
    Text,
    /// The versioned JSON document described in the README.
    Json,
    /// One line per manifest, with a header line.
    Csv,
    /// A self-contained page: totals, charts, the largest rows.
    Html,
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    #[command(flatten)]
    storage: StorageArgs,

    /// Only repositories this regex matches whole (repeatable: any;
    /// `team-a/.*`). The same syntax as `prune --repo`.
    #[arg(long = "repo", value_name = "REGEX")]
    repos: Vec<String>,

    /// Only manifests with a tag this regex matches whole (`v1\..*`). The
    /// same syntax as `prune --tag`.
    #[arg(long, value_name = "REGEX")]
    tag: Option<String>,

    /// Only manifests for which this holds (repeatable: all must hold).
    #[arg(long = "filter", value_enum, value_name = "KIND")]
    filters: Vec<regsweep::images::select::Filter>,

    /// Order: sizes and times largest or newest first, names alphabetically
    /// (default: name).
    #[arg(long, value_enum, value_name = "KEY")]
    sort: Option<regsweep::images::select::SortKey>,

    /// Flip the order.
    #[arg(long)]
    reverse: bool,

    /// The registry's log (its app log, text or JSON formatter, and its
    /// access log, as it writes them); `.gz` is read transparently, `-` is
    /// standard input. Repeatable (one per replica or rotated file).
    #[arg(long = "access-log", value_name = "FILE")]
    access_logs: Vec<String>,

    /// Drop pulls whose user agent matches this regex (vulnerability
    /// scanners, mirrors).
    #[arg(long, value_name = "REGEX")]
    ignore_user_agent: Option<String>,

    /// `stale`: not pulled for this long (pushed before, when never pulled).
    #[arg(long, default_value = "180days", value_parser = humantime::parse_duration, value_name = "DURATION")]
    stale_after: Duration,

    /// Show index children and referrers under their parent (text format).
    #[arg(long)]
    tree: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = ImagesFormat::Text)]
    format: ImagesFormat,

    /// Write the listing to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Don't stat every blob: sizes are then what manifests declare, not
    /// what is stored (faster on a cold disk).
    #[arg(long)]
    no_sizes: bool,

    /// Don't read image configs (platforms of single-platform images and
    /// creation times are then left empty).
    #[arg(long)]
    no_configs: bool,

    /// Largest manifest read, in bytes; larger ones are reported as problems.
    #[arg(long, default_value_t = 4 << 20, value_name = "BYTES")]
    max_manifest_size: u64,

    /// Never show progress, even on a terminal.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `images`.
pub fn run(a: ImagesArgs) -> Result<Exit> {
    use regsweep::images::{self, output, select::Selection};
    crate::check_outputs(&[a.output.as_deref()])?;
    worker_threads(a.storage.jobs)?;
    // Everything the user typed is checked before any I/O.
    let selection = Selection::new(
        &a.repos,
        a.tag.as_deref(),
        a.filters.clone(),
        a.sort,
        a.reverse,
    )?;
    let ignore_ua = user_agent_filter(a.ignore_user_agent.as_deref())?;
    let opened = super::listing::open(&a.storage, false)?;
    let storage = opened.storage();
    let progress = progress(a.quiet);
    let run = regsweep::ImagesRun {
        max_manifest_size: a.max_manifest_size,
        sizes: !a.no_sizes,
        read_configs: !a.no_configs,
        history_times: !a.access_logs.is_empty(),
        images: images::ImagesOptions {
            stale_after: a.stale_after,
            now: opened.now(),
        },
    };
    let (analysis, times, configs) = regsweep::analyze_images(storage, &run, &progress)?;
    let pulls = if a.access_logs.is_empty() {
        None
    } else {
        progress.phase("reading access logs");
        // A filter by pulls is a decision: a source that is not a log is
        // an error then; otherwise it is said, and the listing goes on.
        let p = images::pulls::from_logs(
            &analysis.inventory,
            &times,
            &a.access_logs,
            ignore_ua.as_ref(),
            selection.decides_by_pulls(),
        )?;
        progress.finish();
        for s in p.sources.iter().filter(|s| s.is_not_a_log()) {
            eprintln!(
                "regsweep: warning: {} does not look like a registry log: {} of {} lines not understood (first: line {})",
                s.name,
                s.not_understood,
                s.lines,
                s.first_not_understood
                    .as_ref()
                    .map_or_else(String::new, |b| format!("{}: {}", b.line_number, b.text)),
            );
        }
        Some(p)
    };
    progress.phase("building the listing");
    let mut listing = images::build(&analysis, &times, pulls.as_ref(), &configs, &run.images);
    selection.apply(&mut listing);
    progress.phase("writing the listing");
    match a.format {
        ImagesFormat::Text => write_output(a.output.as_deref(), &output::table(&listing, a.tree))?,
        ImagesFormat::Json => write_with(a.output.as_deref(), |w| {
            output::json(&listing, &mut *w)?;
            Ok(w.write_all(b"\n")?)
        })?,
        ImagesFormat::Csv => write_with(a.output.as_deref(), |w| Ok(output::csv(&listing, w)?))?,
        ImagesFormat::Html => write_with(a.output.as_deref(), |w| {
            let page = regsweep::output::html::images::ImagesPage::new(&listing);
            Ok(regsweep::output::html::write_page(w, &page)?)
        })?,
    }
    progress.finish();
    let troubled = analysis
        .inventory
        .problems
        .iter()
        .any(|p| p.severity >= Severity::Warning);
    std::mem::forget(analysis);
    Ok(Exit::trouble_if(troubled))
}

/// `--ignore-user-agent REGEX`, compiled (an invalid one is an error that
/// names it).
pub fn user_agent_filter(pattern: Option<&str>) -> Result<Option<regex::Regex>> {
    pattern
        .map(|r| {
            regex::Regex::new(r)
                .with_context(|| format!("--ignore-user-agent {r:?} is not a valid regex"))
        })
        .transpose()
}
