//! `regsweep delete` and `regsweep prune`: their arguments, and the
//! requests they make of the removal pipeline (see `cli::sweep::Run`).

use crate::cli::exit::Exit;
use crate::cli::images::user_agent_filter;
use crate::cli::sweep::Run;
use crate::{write_json_to, StorageArgs};
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use regsweep::policy::{Policy, RuleFlags};
use regsweep::prune::{self, refs};
use regsweep::removal::{Removal, Request};
use std::path::PathBuf;
use std::time::Duration;

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
    /// manifests pushed, blobs uploaded); e.g. 1h, 30m, 0s; default 1h.
    /// With --apply --plan FILE, the longer of this and the plan's own
    /// grace period is used.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    grace: Option<Duration>,

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

/// Runs `delete`.
pub fn run_delete(a: DeleteArgs) -> Result<Exit> {
    let saved = a.apply.apply && a.apply.plan.is_some();
    let request = match (saved, a.refs.is_empty()) {
        (true, true) => None,
        (true, false) => {
            bail!("--apply --plan FILE carries out the saved plan as it is: give no REF")
        }
        (false, true) => bail!("give at least one REF (repo:tag, repo@sha256:<hex> or repo)"),
        (false, false) => Some(Request::Delete {
            refs: a
                .refs
                .iter()
                .map(|r| refs::parse(r))
                .collect::<regsweep::Result<_>>()?,
            untag_only: a.untag_only,
            force: a.force,
            grace: a.apply.grace.unwrap_or(super::sweep::DEFAULT_GRACE),
        }),
    };
    go("delete", &a.storage, &a.apply, request)
}

/// Runs `prune`.
pub fn run_prune(a: PruneArgs) -> Result<Exit> {
    if a.apply.apply && a.apply.plan.is_some() {
        if a.policy.is_some() || !a.rule.is_empty() || !a.access_logs.is_empty() {
            bail!("--apply --plan FILE carries out the saved plan as it is: give no policy, rule flags or access logs");
        }
        return go("prune", &a.storage, &a.apply, None);
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
    let ignore_user_agent = user_agent_filter(a.ignore_user_agent.as_deref())?;
    for l in &a.access_logs {
        if l != "-" && !std::path::Path::new(l).is_file() {
            bail!("access log {l} does not exist or is not a file");
        }
    }
    let request = Request::Prune {
        policy: Box::new(policy),
        access_logs: a.access_logs,
        ignore_user_agent,
        grace: a.apply.grace.unwrap_or(super::sweep::DEFAULT_GRACE),
    };
    go("prune", &a.storage, &a.apply, Some(request))
}

/// The removal pipeline's run, with the plan printed in `--format`.
fn go(
    command: &'static str,
    storage: &StorageArgs,
    a: &ApplyArgs,
    request: Option<Request>,
) -> Result<Exit> {
    crate::check_outputs(&[a.output.as_deref()])?;
    let run = Run {
        command,
        storage,
        apply: a.apply,
        plan: a.plan.as_deref(),
        delete_untagged: false,
        grace: a.grace,
        removal: &a.removal,
        tags_from: None,
    };
    run.go(request, |removal, _| {
        let Removal::Prune(p) = removal else {
            bail!("a {command} run made a sweep plan");
        };
        match a.format {
            PlanFormat::Text => crate::write_output(a.output.as_deref(), &prune::output::text(p)),
            PlanFormat::Json => write_json_to(a.output.as_deref(), p),
        }
    })
}
