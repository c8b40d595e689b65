//! `regsweep delete` and `regsweep prune`: their arguments, and the run they
//! share — scan, decide, plan (the preview), and with `--apply` the journaled
//! sweep of that plan, re-checked against a fresh scan.

use crate::cli::images::user_agent_filter;
use crate::cli::sweep::{explain_refusal, open_journal};
use crate::{
    progress, report_options, worker_threads, write_json, write_json_to, write_metrics, StorageArgs,
};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use regsweep::mark::Mode;
use regsweep::output::sweep::SweepRun;
use regsweep::policy::{Policy, RuleFlags};
use regsweep::prune::{self, refs, PrunePlan, Request};
use regsweep::sweep::{self, SweepOptions};
use regsweep::Analysis;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Output format of the plan.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PlanFormat {
    /// What goes and what stays, for people.
    Text,
    /// The versioned plan document (the same as `--plan FILE`).
    Json,
}

/// What `delete` and `prune` share.
#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Carry out the plan. Without it nothing is changed.
    #[arg(long)]
    apply: bool,

    /// Without --apply: also write the plan (JSON) to FILE. With --apply:
    /// carry out the plan saved in FILE, re-checked against a fresh scan (a
    /// tag pushed again since, or anything that became needed, is skipped
    /// and named).
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,

    /// Nothing written more recently than this is removed (tags assigned,
    /// manifests pushed, blobs uploaded); e.g. 1h, 30m, 0s.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration, value_name = "DURATION")]
    grace: Duration,

    /// Output format of the plan.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    format: PlanFormat,

    /// Write the plan to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,

    #[command(flatten)]
    removal: super::sweep::RemovalArgs,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    storage: StorageArgs,

    /// What to delete: `repo:tag` (the manifest it names, with every tag
    /// naming it), `repo@sha256:<hex>` (the manifest and its tags), or
    /// `repo` (the whole repository).
    /// (None with `--apply --plan FILE`: the saved plan says what goes.)
    #[arg(value_name = "REF")]
    refs: Vec<String>,

    /// Remove only the named tags (`repo:tag`); manifests stay.
    #[arg(long)]
    untag_only: bool,

    /// Remove manifests even when a kept index still references them (the
    /// index can then no longer be pulled whole).
    #[arg(long)]
    force: bool,

    #[command(flatten)]
    apply: ApplyArgs,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    #[command(flatten)]
    storage: StorageArgs,

    /// Rules from a YAML or JSON file (see docs/retention.md); instead of
    /// the rule flags.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,

    #[command(flatten)]
    rule: RuleFlags,

    /// The registry's logs, for pull times (as for `images`; repeatable,
    /// `.gz` read transparently, `-` is standard input).
    #[arg(long = "access-log", value_name = "FILE")]
    access_logs: Vec<String>,

    /// Drop pulls whose user agent matches this regex.
    #[arg(long, value_name = "REGEX")]
    ignore_user_agent: Option<String>,

    #[command(flatten)]
    apply: ApplyArgs,
}

/// What a run decides from a fresh analysis.
enum Decide {
    /// A saved plan (`--apply --plan FILE`): its own request.
    Saved,
    /// `delete`'s references.
    Refs {
        refs: Vec<refs::Ref>,
        untag_only: bool,
    },
    /// `prune`'s policy.
    Policy {
        policy: Box<Policy>,
        access_logs: Vec<String>,
        ignore_ua: Option<regex::Regex>,
    },
}

/// Runs `delete`.
pub fn run_delete(a: DeleteArgs) -> Result<u8> {
    let saved = a.apply.apply && a.apply.plan.is_some();
    match (saved, a.refs.is_empty()) {
        (true, true) => return run("delete", &a.storage, &a.apply, a.force, Decide::Saved),
        (true, false) => {
            bail!("--apply --plan FILE carries out the saved plan as it is: give no REF")
        }
        (false, true) => bail!("give at least one REF (repo:tag, repo@sha256:<hex> or repo)"),
        (false, false) => {}
    }
    let parsed: Vec<refs::Ref> = a
        .refs
        .iter()
        .map(|r| refs::parse(r))
        .collect::<regsweep::Result<_>>()?;
    run(
        "delete",
        &a.storage,
        &a.apply,
        a.force,
        Decide::Refs {
            refs: parsed,
            untag_only: a.untag_only,
        },
    )
}

/// Runs `prune`.
pub fn run_prune(a: PruneArgs) -> Result<u8> {
    if a.apply.apply && a.apply.plan.is_some() {
        if a.policy.is_some() || !a.rule.is_empty() || !a.access_logs.is_empty() {
            bail!("--apply --plan FILE carries out the saved plan as it is: give no policy, rule flags or access logs");
        }
        return run("prune", &a.storage, &a.apply, false, Decide::Saved);
    }
    let policy = match (&a.policy, a.rule.is_empty()) {
        (Some(_), false) => bail!("give --policy FILE or rule flags, not both"),
        (Some(p), true) => Policy::from_file(p)?,
        (None, false) => Policy::from_flags(&a.rule)?,
        (None, true) => {
            bail!("give a policy: --policy FILE, or rule flags such as --keep-last N, --older-than D, --untagged")
        }
    };
    policy.validate(!a.access_logs.is_empty())?;
    let ignore_ua = user_agent_filter(a.ignore_user_agent.as_deref())?;
    for l in &a.access_logs {
        if l != "-" && !std::path::Path::new(l).is_file() {
            bail!("access log {l} does not exist or is not a file");
        }
    }
    run(
        "prune",
        &a.storage,
        &a.apply,
        false,
        Decide::Policy {
            policy: Box::new(policy),
            access_logs: a.access_logs,
            ignore_ua,
        },
    )
}

/// Reads a plan saved by `--plan FILE` and checks it fits this run.
fn read_saved(path: &std::path::Path, command: &str, storage: &str) -> Result<PrunePlan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading plan {}", path.display()))?;
    let plan: PrunePlan =
        serde_json::from_str(&text).with_context(|| format!("parsing plan {}", path.display()))?;
    if plan.format_version != prune::FORMAT_VERSION {
        bail!(
            "plan {} has format version {}; this regsweep reads version {}",
            path.display(),
            plan.format_version,
            prune::FORMAT_VERSION
        );
    }
    if plan.command != command {
        bail!(
            "plan {} is a {} plan, not a {command} plan",
            path.display(),
            plan.command
        );
    }
    if plan.storage != storage {
        bail!(
            "plan {} was made for {}, not {storage}",
            path.display(),
            plan.storage
        );
    }
    Ok(plan)
}

/// The request a saved plan made, on the fresh analysis: its tags while
/// they still name the same digest (the others are named and skipped), and
/// its requested manifests that are still there.
fn saved_request(a: &Analysis, saved: &PrunePlan) -> Request {
    let inv = &a.inventory;
    let mut req = Request::default();
    let find = |name: &str| inv.repos.iter().position(|r| r.name == name);
    for t in &saved.tags_removed {
        let Some(ri) = find(&t.repository) else {
            eprintln!(
                "regsweep: skipped tag {}:{}: the repository is gone",
                t.repository, t.tag
            );
            continue;
        };
        let r = &inv.repos[ri];
        match r.tags.binary_search_by(|x| x.name.as_str().cmp(&t.tag)) {
            Ok(ti) => {
                let now = r.tags[ti]
                    .current
                    .map(|c| inv.interner.digest(c).to_string());
                if now.as_deref() == Some(t.digest.as_str()) {
                    req.tags.insert((ri, ti), t.reason.clone());
                } else {
                    eprintln!(
                        "regsweep: skipped tag {}:{}: it now names {}, not {} (pushed since the plan)",
                        t.repository,
                        t.tag,
                        now.as_deref().unwrap_or("nothing readable"),
                        t.digest
                    );
                }
            }
            Err(_) => eprintln!(
                "regsweep: skipped tag {}:{}: it is gone",
                t.repository, t.tag
            ),
        }
    }
    for m in saved.manifests_removed.iter().filter(|m| m.requested) {
        let (Some(ri), Ok(d)) = (
            find(&m.repository),
            regsweep::digest::Digest::parse(&m.digest),
        ) else {
            continue;
        };
        if let Some(id) = inv.interner.get(&d) {
            req.manifests.insert((ri, id), m.reason.clone());
        }
    }
    for name in &saved.repositories_removed {
        if let Some(ri) = find(name) {
            req.repositories.push(ri);
        }
    }
    req.kept = saved.kept.clone();
    req.untag_only = saved.untag_only;
    req
}

fn run(command: &str, sa: &StorageArgs, a: &ApplyArgs, force: bool, decide: Decide) -> Result<u8> {
    let started = Instant::now();
    worker_threads(sa.jobs)?;
    let opened = super::listing::open(sa, a.apply)?;
    let (loc, storage) = (&opened.loc, opened.storage());
    let progress = progress(a.removal.quiet);
    let saved = match (&a.plan, a.apply) {
        (Some(p), true) => Some(read_saved(p, command, &storage.describe())?),
        _ => None,
    };
    let quarantine = match &a.removal.quarantine {
        Some(d) => Some(loc.quarantine(d)?.1),
        None => None,
    };
    let journal = open_journal(a.apply, &a.removal.journal, storage)?;
    let mut opts = report_options(Mode::DeleteUntagged, a.removal.max_manifest_size, false);
    // The link times the decision needs, kept while the scan has them.
    opts.scan.link_times = true;
    let mut analysis = regsweep::analyze(storage, &opts, &progress)
        .with_context(|| format!("scanning {}", storage.describe()))?;
    let logs = matches!(&decide, Decide::Policy { access_logs, .. } if !access_logs.is_empty());
    progress.phase("reading link times");
    let times = regsweep::times::read(storage, &mut analysis.inventory, logs);
    let now = opened.now();
    let request = match (&saved, &decide) {
        (Some(s), _) => saved_request(&analysis, s),
        (None, Decide::Saved) => unreachable!("a saved plan is read above"),
        (None, Decide::Refs { refs, untag_only }) => refs::resolve(&analysis, refs, *untag_only)?,
        (
            None,
            Decide::Policy {
                policy,
                access_logs,
                ignore_ua,
            },
        ) => {
            let pulls = if access_logs.is_empty() {
                None
            } else {
                progress.phase("reading access logs");
                let p = regsweep::images::pulls::from_logs(
                    &analysis.inventory,
                    &times,
                    access_logs,
                    ignore_ua.as_ref(),
                )?;
                if p.summary.unparsed_lines > 0 {
                    eprintln!(
                        "regsweep: {} access-log line(s) not understood (first: {})",
                        p.summary.unparsed_lines,
                        p.summary.first_unparsed.as_deref().unwrap_or("?")
                    );
                }
                Some(p)
            };
            let views: Vec<regsweep::policy::RepoView> =
                prune::views::repo_views(&analysis, &times, pulls.as_ref())
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect();
            let d = regsweep::policy::evaluate(policy, &views, now, a.grace);
            prune::views::request(&analysis, &d)
        }
    };
    progress.phase("planning");
    let fresh = prune::build(
        storage,
        &mut analysis,
        &times,
        &request,
        &prune::Options {
            grace: saved
                .as_ref()
                .map_or(a.grace, |s| Duration::from_secs(s.grace_seconds)),
            force: saved.as_ref().map_or(force, |s| s.force),
            now,
            command: command.to_string(),
        },
    );
    progress.finish();
    let metrics_name = command;
    // `delete` names what it removes: a reference it cannot remove is an error.
    if command == "delete" && !fresh.refused.is_empty() && saved.is_none() {
        for r in &fresh.refused {
            eprintln!(
                "regsweep: refusing to delete {}@{}: {} (--untag-only removes only the tag; --force removes the manifest anyway)",
                r.repository, r.digest, r.reason
            );
        }
        return Ok(2);
    }
    let Some(journal) = journal else {
        match a.format {
            PlanFormat::Text => {
                crate::write_output(a.output.as_deref(), &prune::output::text(&fresh))?
            }
            PlanFormat::Json => write_json_to(a.output.as_deref(), &fresh)?,
        }
        if let Some(p) = &a.plan {
            write_json(p, &fresh)?;
            eprintln!("regsweep: plan written to {}", p.display());
        }
        eprintln!("regsweep: dry run: nothing was changed (use --apply)");
        write_metrics(a.removal.metrics.as_deref(), metrics_name, started, |m| {
            regsweep::output::sweep::add_metrics(m, &fresh.plan, SweepRun::DryRun)
        })?;
        return Ok(0);
    };
    let blocking: Vec<_> = analysis
        .inventory
        .problems
        .iter()
        .filter(|p| p.blocks_sweep())
        .collect();
    if !blocking.is_empty() && !a.removal.ignore_problems {
        explain_refusal(command, &blocking);
        write_metrics(a.removal.metrics.as_deref(), metrics_name, started, |m| {
            regsweep::output::sweep::add_metrics(m, &fresh.plan, SweepRun::Refused)
        })?;
        return Ok(3);
    }
    let plan = match saved {
        Some(mut p) => {
            for d in p.plan.recheck(&fresh.plan) {
                eprintln!(
                    "regsweep: skipped {} (pushed again, needed again, young, or gone since the plan)",
                    d.key
                );
            }
            p.plan.resummarize();
            p
        }
        None => fresh,
    };
    match a.format {
        PlanFormat::Text => crate::write_output(a.output.as_deref(), &prune::output::text(&plan))?,
        PlanFormat::Json => write_json_to(a.output.as_deref(), &plan)?,
    }
    let out = sweep::execute(
        storage,
        &plan.plan,
        &journal,
        &SweepOptions {
            quarantine,
            batch: a.removal.batch,
        },
        &progress,
    )?;
    for (k, why) in &out.skipped {
        eprintln!("regsweep: skipped {k}: {why}");
    }
    eprintln!(
        "regsweep: {command} applied to {}: {} removals ({} objects), {} reclaimed, {} skipped, {} failed; journal: {}",
        storage.describe(),
        out.done,
        out.objects,
        regsweep::report::human_bytes(out.bytes),
        out.skipped.len(),
        out.failed.len(),
        a.removal.journal.display()
    );
    for (k, e) in &out.failed {
        eprintln!("  failed: {k}: {e}");
    }
    opened.report_skipped();
    write_metrics(a.removal.metrics.as_deref(), metrics_name, started, |m| {
        regsweep::output::sweep::add_metrics(m, &plan.plan, SweepRun::Applied(&out))
    })?;
    Ok(u8::from(!out.failed.is_empty()))
}
