//! `regsweep delete` and `regsweep prune`: their arguments, and the
//! requests they make of the removal pipeline (see `cli::sweep::Run`).

use crate::cli::exit::Exit;
use crate::cli::images::user_agent_filter;
use crate::cli::sweep::Run;
use crate::StorageArgs;
use anyhow::{bail, Result};
use clap::Args;
use regsweep::policy::formats::{self, acr::Purge, Format, Vendor};
use regsweep::policy::{Policy, RuleFlags, RuleSpec};
use regsweep::prune::{self, refs};
use regsweep::removal::{Removal, Request};
use std::path::PathBuf;
use std::time::Duration;

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

    #[command(flatten)]
    out: super::sweep::PlanOutput,

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

    /// Rules from a YAML or JSON file: regsweep's own, or an ECR lifecycle
    /// policy, Harbor tag retention rules, a zot retention block or a
    /// GitLab cleanup policy, each evaluated with its own semantics (see
    /// docs/retention.md); instead of the rule flags.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,

    /// The policy file's format; by default told from its keys.
    #[arg(long, value_enum, value_name = "FORMAT", requires = "policy")]
    policy_format: Option<Format>,

    #[command(flatten)]
    rule: RuleFlags,

    /// `acr purge --filter`: REPO-REGEX:TAG-REGEX (repeatable); with --ago,
    /// --keep, --untagged or --untagged-only, evaluated as `acr purge` does.
    #[arg(long = "acr-filter", value_name = "REPO:TAG")]
    acr_filter: Vec<String>,

    /// `acr purge --ago`: tags last updated before now − D (`30d`, `2d3h`).
    #[arg(long, value_name = "D")]
    ago: Option<String>,

    /// `acr purge --keep`: keep the N most recent of what would go.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    keep: Option<i64>,

    /// `acr purge --untagged-only`: remove untagged manifests, no tag.
    #[arg(long)]
    untagged_only: bool,

    /// Images in use, kept whatever the policy says: a file of image
    /// references (`host/repo:tag`, `repo@sha256:…`), one per line or
    /// separated by spaces as `kubectl get pods -A -o
    /// jsonpath='{..image}'` prints them (repeatable; `-` is standard input).
    #[arg(long = "keep-refs", value_name = "FILE")]
    keep_refs: Vec<String>,

    /// Print, for every image, what decided it, in the policy's own words
    /// (text format).
    #[arg(long)]
    explain: bool,

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
    go("delete", &a.storage, &a.apply, request, false)
}

/// Runs `prune`.
pub fn run_prune(a: PruneArgs) -> Result<Exit> {
    if a.apply.apply && a.apply.plan.is_some() {
        if a.policy.is_some()
            || !a.rule.is_empty()
            || !a.access_logs.is_empty()
            || !a.acr_filter.is_empty()
            || !a.keep_refs.is_empty()
        {
            bail!("--apply --plan FILE carries out the saved plan as it is: give no policy, rule flags or access logs");
        }
        return go("prune", &a.storage, &a.apply, None, false);
    }
    let acr = !a.acr_filter.is_empty() || a.ago.is_some() || a.keep.is_some() || a.untagged_only;
    let mut policy = if acr {
        let mut rest = a.rule.spec();
        let untagged = std::mem::take(&mut rest.untagged);
        if a.policy.is_some() || rest != RuleSpec::default() {
            bail!("the acr purge flags (--acr-filter, --ago, --keep, --untagged, --untagged-only) go alone: give no --policy or other rule flags");
        }
        let purge = Purge::new(
            &a.acr_filter,
            a.ago.as_deref(),
            a.keep,
            untagged,
            a.untagged_only,
        )?;
        Policy::vendor("command line", Vendor::Acr(purge))
    } else {
        match (&a.policy, a.rule.is_empty()) {
            (Some(_), false) => bail!("give --policy FILE or rule flags, not both"),
            (Some(p), true) => formats::load(p, a.policy_format)?,
            (None, false) => Policy::from_flags(&a.rule)?,
            (None, true) => {
                bail!("give a policy: --policy FILE, rule flags such as --keep-last N, --keep-versions N, --older-than D, --untagged, or acr purge flags (--acr-filter)")
            }
        }
    };
    policy.validate(!a.access_logs.is_empty())?;
    for f in &a.keep_refs {
        policy.in_use.read(f)?;
    }
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
    go("prune", &a.storage, &a.apply, Some(request), a.explain)
}

/// The removal pipeline's run, with the plan printed in `--format`.
fn go(
    command: &'static str,
    storage: &StorageArgs,
    a: &ApplyArgs,
    request: Option<Request>,
    explain: bool,
) -> Result<Exit> {
    let run = Run {
        command,
        storage,
        apply: a.apply,
        plan: a.plan.as_deref(),
        delete_untagged: false,
        grace: a.grace,
        removal: &a.removal,
        tags_from: None,
        output: a.out.output.as_deref(),
    };
    run.go(request, |removal, blocking| {
        let Removal::Prune(p) = removal else {
            bail!("a {command} run made a sweep plan");
        };
        let text = || {
            let mut text = prune::output::text(p);
            if explain {
                text.push_str(&prune::output::explain(p));
            }
            text
        };
        a.out.show(removal, text, blocking)
    })
}
