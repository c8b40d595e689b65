//! `regsweep sweep` and `regsweep restore`: their arguments, and the runs
//! that plan, re-check and carry out a sweep, and move a quarantine back.

use crate::{
    location, progress, report_options, timing_requests, worker_threads, write_json, write_metrics,
    StorageArgs,
};
use anyhow::{bail, Context, Result};
use clap::Args;
use regsweep::mark::Mode;
use regsweep::output::sweep::SweepRun;
use regsweep::plan::{self, Plan, PlanOptions};
use regsweep::storage::StorageExt;
use regsweep::sweep::{self, Journal, SweepOptions};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct SweepArgs {
    #[command(flatten)]
    storage: StorageArgs,

    /// Untagged manifests are garbage too (see `report --help`).
    #[arg(long, short = 'm')]
    delete_untagged: bool,

    /// Nothing modified more recently than this is removed (e.g. 1h, 30m, 0s).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration, value_name = "DURATION")]
    grace: Duration,

    /// Uploads whose startedat is older than this are removed; uploads
    /// without startedat are reported, never removed.
    #[arg(long, default_value = "168h", value_parser = humantime::parse_duration, value_name = "DURATION")]
    upload_age: Duration,

    /// Also remove repositories left with no tags, manifests or uploads.
    #[arg(long)]
    prune_empty_repositories: bool,

    /// Carry out the plan. Without it nothing is changed.
    #[arg(long)]
    apply: bool,

    /// Without --apply: write the plan (JSON) to FILE. With --apply: carry
    /// out the plan saved in FILE, after re-checking every entry against a
    /// fresh scan (entries that became referenced or young are skipped).
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,

    #[command(flatten)]
    removal: RemovalArgs,
}

/// How `sweep`, `delete` and `prune` carry out removals and report them.
#[derive(Args, Debug)]
pub struct RemovalArgs {
    /// Move removed objects under DEST instead of deleting them (a
    /// directory outside the registry, or a prefix of the same bucket);
    /// `regsweep restore STORAGE --from DEST` puts them back.
    #[arg(long, value_name = "DEST")]
    pub(crate) quarantine: Option<String>,

    /// The journal (JSON lines) every removal is appended to.
    #[arg(long, default_value = "regsweep-journal.jsonl", value_name = "FILE")]
    pub(crate) journal: PathBuf,

    /// Apply even though the scan found problems that make reachability
    /// uncertain (unreadable or unparseable manifests, listing errors).
    #[arg(long)]
    pub(crate) ignore_problems: bool,

    /// Largest manifest read, in bytes.
    #[arg(long, default_value_t = 4 << 20, value_name = "BYTES")]
    pub(crate) max_manifest_size: u64,

    /// Removals per journaled batch (the journal is synced once per batch).
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub(crate) batch: usize,

    /// Also write Prometheus metrics to FILE (the plan, what was removed;
    /// textfile format, replaced atomically).
    #[arg(long, value_name = "FILE")]
    pub(crate) metrics: Option<PathBuf>,

    /// Never show progress, even on a terminal.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    storage: StorageArgs,

    /// The quarantine given to `sweep --quarantine`.
    #[arg(long, value_name = "DEST")]
    from: String,

    /// Never show progress, even on a terminal.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `sweep`.
pub fn run(a: SweepArgs) -> Result<u8> {
    let started = Instant::now();
    worker_threads(a.storage.jobs)?;
    let opened = super::listing::open(&a.storage, a.apply)?;
    let (loc, storage) = (&opened.loc, opened.storage());
    let progress = progress(a.removal.quiet);
    progress.count_requests(storage.requests());
    let saved: Option<Plan> = match (&a.plan, a.apply) {
        (Some(p), true) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading plan {}", p.display()))?;
            let plan: Plan = serde_json::from_str(&text)
                .with_context(|| format!("parsing plan {}", p.display()))?;
            if plan.format_version != plan::PLAN_FORMAT_VERSION {
                bail!(
                    "plan {} has format version {}; this regsweep reads version {}",
                    p.display(),
                    plan.format_version,
                    plan::PLAN_FORMAT_VERSION
                );
            }
            if a.delete_untagged && plan.mode != Mode::DeleteUntagged {
                bail!(
                    "plan {} was made without --delete-untagged; make a new plan to sweep in that mode",
                    p.display()
                );
            }
            if plan.storage != storage.describe() {
                bail!(
                    "plan {} was made for {}, not {}",
                    p.display(),
                    plan.storage,
                    storage.describe()
                );
            }
            Some(plan)
        }
        _ => None,
    };
    let mode = match &saved {
        Some(p) => p.mode,
        None if a.delete_untagged => Mode::DeleteUntagged,
        None => Mode::KeepUntagged,
    };
    let plan_opts = match &saved {
        Some(p) => p.options(),
        None => PlanOptions {
            grace: a.grace,
            upload_max_age: a.upload_age,
            prune_empty_repositories: a.prune_empty_repositories,
        },
    };
    let opts = report_options(mode, a.removal.max_manifest_size, false);
    let journal = open_journal(a.apply, &a.removal.journal, storage)?;
    let mut analysis = regsweep::analyze(storage, &opts, &progress)
        .with_context(|| format!("scanning {}", storage.describe()))?;
    let fresh = plan::build(storage, &mut analysis, mode, &plan_opts, opened.now());
    let blocking: Vec<_> = analysis
        .inventory
        .problems
        .iter()
        .filter(|p| p.blocks_sweep())
        .collect();
    let Some(journal) = journal else {
        print!("{}", fresh.to_text());
        for p in &blocking {
            println!("  blocking: {}: {}", p.path, p.message);
        }
        if let Some(p) = &a.plan {
            write_json(p, &fresh)?;
            println!("plan written to {}", p.display());
        }
        println!("dry run: nothing was changed (use --apply)");
        write_metrics(a.removal.metrics.as_deref(), "sweep", started, |m| {
            regsweep::output::sweep::add_metrics(m, &fresh, SweepRun::DryRun)
        })?;
        return Ok(0);
    };
    if !blocking.is_empty() && !a.removal.ignore_problems {
        explain_refusal("sweep", &blocking);
        write_metrics(a.removal.metrics.as_deref(), "sweep", started, |m| {
            regsweep::output::sweep::add_metrics(m, &fresh, SweepRun::Refused)
        })?;
        return Ok(3);
    }
    let plan = match saved {
        Some(mut p) => {
            let dropped = p.recheck(&fresh);
            for d in &dropped {
                eprintln!(
                    "regsweep: skipped {} (no longer garbage, or young, or gone)",
                    d.key
                );
            }
            p
        }
        None => fresh,
    };
    let quarantine = match &a.removal.quarantine {
        Some(d) => Some(loc.quarantine(d)?.1),
        None => None,
    };
    let out = sweep::execute(
        storage,
        &plan,
        &journal,
        &SweepOptions {
            quarantine,
            batch: a.removal.batch,
        },
        &progress,
    )?;
    println!(
        "swept {}: {} removals ({} objects), {} reclaimed, {} failed; journal: {}",
        storage.describe(),
        out.done,
        out.objects,
        regsweep::report::human_bytes(out.bytes),
        out.failed.len(),
        a.removal.journal.display()
    );
    for (k, e) in &out.failed {
        eprintln!("  failed: {k}: {e}");
    }
    opened.report_skipped();
    write_metrics(a.removal.metrics.as_deref(), "sweep", started, |m| {
        regsweep::output::sweep::add_metrics(m, &plan, SweepRun::Applied(&out))
    })?;
    timing_requests(storage);
    Ok(u8::from(!out.failed.is_empty()))
}

/// Runs `restore`.
pub fn restore(a: RestoreArgs) -> Result<u8> {
    if a.storage.listing.is_some() {
        bail!("restore moves a quarantine back; it takes no --listing");
    }
    let loc = location(&a.storage)?;
    let storage = loc.open_with_concurrency(a.storage.concurrency.map(usize::from))?;
    let (qloc, q) = loc.quarantine(&a.from)?;
    let qstore = qloc.open_with_concurrency(a.storage.concurrency.map(usize::from))?;
    let n = sweep::restore(storage.as_ref(), qstore.as_ref(), &q, &progress(a.quiet))?;
    println!(
        "restored {n} object(s) from {} into {}",
        a.from,
        storage.describe()
    );
    Ok(0)
}

/// With `--apply`: opens the journal at `path` and first closes what a
/// killed earlier run left open in it. Without: `None`.
pub fn open_journal(
    apply: bool,
    path: &std::path::Path,
    storage: &dyn regsweep::storage::Storage,
) -> Result<Option<Journal>> {
    if !apply {
        return Ok(None);
    }
    let j = Journal::open(path).with_context(|| format!("opening journal {}", path.display()))?;
    let n = sweep::recover(storage, &j)?;
    if n > 0 {
        eprintln!(
            "regsweep: closed {n} removal(s) left open by an earlier run in {}",
            path.display()
        );
    }
    Ok(Some(j))
}

/// Says why `--apply` of `command` is refused: the problems that make
/// reachability uncertain (the first 20), and how to proceed.
pub fn explain_refusal(command: &str, blocking: &[&regsweep::problem::Problem]) {
    eprintln!(
        "regsweep: refusing to {command}: {} problem(s) make reachability uncertain:",
        blocking.len()
    );
    for p in blocking.iter().take(20) {
        eprintln!("  {}: {}", p.path, p.message);
    }
    eprintln!("fix them, or pass --ignore-problems to {command} anyway");
}
