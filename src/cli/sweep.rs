//! `regsweep sweep` and `regsweep restore`: their arguments; the one run of
//! the removal pipeline ([`regsweep::removal`]) that `sweep`, `delete` and
//! `prune` share — preview, or apply and say what was done; and moving a
//! quarantine back.

use super::exit::Exit;
use crate::{
    location, progress, timing_requests, worker_threads, write_json, write_metrics, StorageArgs,
};
use anyhow::{bail, Result};
use clap::Args;
use regsweep::mark::Mode;
use regsweep::output::sweep::SweepRun;
use regsweep::plan::PlanOptions;
use regsweep::removal::{self, Applied, Apply, ApplyOptions, Removal, Request, Settings};
use regsweep::storage::StorageExt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// The grace period when none is given.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

#[derive(Args, Debug)]
pub struct SweepArgs {
    #[command(flatten)]
    storage: StorageArgs,

    /// Untagged manifests are garbage too (see `report --help`).
    #[arg(long, short = 'm')]
    delete_untagged: bool,

    /// Nothing modified more recently than this is removed (e.g. 1h, 30m,
    /// 0s; default 1h). With --apply --plan FILE, the longer of this and
    /// the plan's own grace period is used.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    grace: Option<Duration>,

    /// Uploads whose startedat is older than this are removed; uploads
    /// without startedat are reported, never removed.
    #[arg(long, default_value = "168h", value_parser = humantime::parse_duration, value_name = "DURATION")]
    upload_age: Duration,

    /// Also remove repositories left with no tags, manifests or uploads.
    #[arg(long)]
    prune_empty_repositories: bool,

    /// The registry's tags, where its storage holds none (Harbor 2.15 and
    /// later keeps them only in its database): lines
    /// `REPOSITORY:TAG@DIGEST`, or a JSON object of repository names to
    /// Harbor's artifact listings (`GET …/repositories/NAME/artifacts?with_tag=true`).
    /// They count as the storage's own tags; one naming a manifest the
    /// storage lacks blocks the sweep.
    #[arg(long, value_name = "FILE")]
    tags_from: Option<PathBuf>,

    /// Carry out the plan. Without it nothing is changed.
    #[arg(long)]
    apply: bool,

    /// Without --apply: write the plan (JSON) to FILE. With --apply: carry
    /// out the plan saved in FILE, after re-checking every entry against a
    /// fresh scan (entries that became referenced or young are skipped).
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,

    #[command(flatten)]
    out: PlanOutput,

    #[command(flatten)]
    removal: RemovalArgs,
}

/// Output format of a plan (`sweep`, `delete`, `prune`).
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PlanFormat {
    /// What goes and what stays, for people.
    Text,
    /// The versioned plan document (the same as `--plan FILE`).
    Json,
    /// One row per decision: remove, keep, hold or refuse, with the reason.
    Csv,
}

/// Where and how `sweep`, `delete` and `prune` print their plan.
#[derive(Args, Debug)]
pub struct PlanOutput {
    /// Output format of the plan.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub(crate) format: PlanFormat,

    /// Write the plan to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
}

impl PlanOutput {
    /// Prints `removal` in the chosen format; `text` is its text form
    /// (each command's own), `blocking` the problems that would refuse an
    /// apply (listed in the text form).
    pub(crate) fn show(
        &self,
        removal: &Removal,
        text: impl FnOnce() -> String,
        blocking: &[regsweep::problem::Problem],
    ) -> Result<()> {
        let out = self.output.as_deref();
        match self.format {
            PlanFormat::Text => {
                let mut t = text();
                for p in blocking {
                    t.push_str(&format!("  blocking: {}: {}\n", p.path, p.message));
                }
                crate::write_output(out, &t)
            }
            // The same document as `--plan FILE`.
            PlanFormat::Json => crate::write_json_to(out, removal),
            PlanFormat::Csv => crate::write_with(out, |w| {
                regsweep::output::plan::write_csv(w, removal).map_err(Into::into)
            }),
        }
    }
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

    /// The registry is stopped or read-only while this runs: carry the
    /// plan out in one pass, with no settle periods and no second look.
    /// Implied when --registry-config sets storage.maintenance.readonly.
    #[arg(long)]
    pub(crate) offline: bool,

    /// With the registry online (the default): how long to wait after
    /// removing links, and again after moving blobs, before looking at the
    /// storage again; longer than any request takes between the registry's
    /// check of a blob and its write of a link.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub(crate) settle: Duration,

    /// With the registry online: leave what this run removes in the staging
    /// (`regsweep-staging` beside `docker/`) for DURATION. Until then every
    /// later apply moves back what a push needs again, and `regsweep
    /// restore STORAGE --from <staging>` puts it all back; the first apply
    /// after that deletes it (its bytes are freed then).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION",
          conflicts_with_all = ["quarantine", "offline"])]
    pub(crate) keep_quarantine: Option<Duration>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The registry's root directory (the one holding docker/registry/v2), or
    /// s3://bucket[/prefix], gs://bucket[/prefix], az://container[/prefix]
    /// (credentials and endpoint from the standard environment variables).
    #[arg(value_name = "STORAGE", required_unless_present = "registry_config")]
    storage: Option<String>,

    /// Read the storage location from the reference registry's config.yml
    /// (its storage: section: filesystem, s3, gcs or azure) instead of STORAGE.
    #[arg(long, value_name = "FILE", conflicts_with = "storage")]
    registry_config: Option<PathBuf>,

    /// Requests kept in flight on object stores (default 64), or threads
    /// moving files on a filesystem.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: Option<u16>,

    /// The quarantine given to `sweep --quarantine`.
    #[arg(long, value_name = "DEST")]
    from: String,

    /// Never show progress, even on a terminal.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `sweep`.
pub fn run(a: SweepArgs) -> Result<Exit> {
    let request = Request::Sweep {
        mode: if a.delete_untagged {
            Mode::DeleteUntagged
        } else {
            Mode::KeepUntagged
        },
        options: PlanOptions {
            grace: a.grace.unwrap_or(DEFAULT_GRACE),
            upload_max_age: a.upload_age,
            prune_empty_repositories: a.prune_empty_repositories,
        },
    };
    let tags_from = match &a.tags_from {
        Some(f) => Some(std::sync::Arc::new(
            regsweep::scan::external_tags::ExternalTags::read(f)?,
        )),
        None => None,
    };
    let run = Run {
        command: "sweep",
        storage: &a.storage,
        apply: a.apply,
        plan: a.plan.as_deref(),
        delete_untagged: a.delete_untagged,
        grace: a.grace,
        removal: &a.removal,
        tags_from,
        output: a.out.output.as_deref(),
    };
    run.go(Some(request), |removal, blocking| {
        a.out.show(removal, || removal.plan().to_text(), blocking)
    })
}

/// One run of the removal pipeline, as `sweep`, `delete` and `prune` give it.
pub(crate) struct Run<'a> {
    /// `sweep`, `delete` or `prune`.
    pub(crate) command: &'static str,
    pub(crate) storage: &'a StorageArgs,
    pub(crate) apply: bool,
    pub(crate) plan: Option<&'a std::path::Path>,
    /// `sweep -m`: a saved plan must be of that mode.
    pub(crate) delete_untagged: bool,
    /// `--grace` as given: a saved plan is carried out with the longer of
    /// this and its own.
    pub(crate) grace: Option<Duration>,
    pub(crate) removal: &'a RemovalArgs,
    /// `sweep --tags-from`: tags kept outside the storage.
    pub(crate) tags_from: Option<std::sync::Arc<regsweep::scan::external_tags::ExternalTags>>,
    /// `-o FILE`: where the plan is printed.
    pub(crate) output: Option<&'a std::path::Path>,
}

impl Run<'_> {
    /// Plans `request` (or, with `--apply --plan FILE`, re-derives the saved
    /// plan: `request` is then `None`) and, with `--apply`, carries it out.
    /// `show` prints a plan, with the problems that would refuse an apply
    /// (none after one).
    pub(crate) fn go(
        &self,
        request: Option<Request>,
        show: impl Fn(&Removal, &[regsweep::problem::Problem]) -> Result<()>,
    ) -> Result<Exit> {
        let started = Instant::now();
        // A saved plan is read with --apply, written without.
        let plan_out = self.plan.filter(|_| !self.apply);
        crate::check_outputs(&[self.removal.metrics.as_deref(), plan_out, self.output])?;
        worker_threads(self.storage.jobs)?;
        let opened = super::listing::open(self.storage, self.apply)?;
        let (loc, storage) = (&opened.loc, opened.storage());
        let progress = progress(self.removal.quiet);
        progress.count_requests(storage.requests());
        let settings = Settings {
            max_manifest_size: self.removal.max_manifest_size,
            now: opened.now(),
            tags_from: self.tags_from.clone(),
        };
        let metrics = |plan: &regsweep::plan::Plan, run: SweepRun| {
            write_metrics(
                self.removal.metrics.as_deref(),
                self.command,
                started,
                |m| regsweep::output::sweep::add_metrics(m, plan, run),
            )
        };
        if !self.apply {
            let Some(request) = request else {
                bail!("{}: nothing to plan", self.command);
            };
            let planned = removal::plan(storage, &request, &settings, &progress)?;
            notes(&planned.notes);
            if let Some(code) = refused(&planned.removal, self.command) {
                return Ok(code);
            }
            show(&planned.removal, &planned.blocking)?;
            if let Some(p) = self.plan {
                write_json(p, &planned.removal)?;
                self.say(&format!("plan written to {}", p.display()))?;
            }
            self.say("dry run: nothing was changed (use --apply)")?;
            metrics(planned.removal.plan(), SweepRun::DryRun)?;
            return Ok(Exit::Success);
        }
        let what = match (self.plan, request) {
            (Some(p), _) => {
                let saved = removal::saved::read(p)?;
                removal::saved::check(
                    &saved,
                    p,
                    self.command,
                    &storage.describe(),
                    self.delete_untagged,
                )?;
                Apply::Saved(saved)
            }
            (None, Some(request)) => Apply::Fresh(request),
            (None, None) => bail!("{}: nothing to apply", self.command),
        };
        let quarantine = match &self.removal.quarantine {
            Some(d) => Some(loc.quarantine(d)?),
            None => None,
        };
        if loc.gitlab_database_lock()? {
            eprintln!(
                "regsweep: {}: {} exists: a GitLab registry on its metadata database keeps the \
                 truth in the database, and its storage must never be collected offline; use \
                 GitLab's online garbage collection. Nothing was changed.",
                self.command,
                regsweep::config::GITLAB_DATABASE_LOCK
            );
            return Ok(Exit::Refused);
        }
        let staging = match &quarantine {
            Some((ql, q)) => removal::online::Online {
                settle: self.removal.settle,
                staging: q.clone(),
                staging_location: ql.clone(),
                keep: true,
                retain: None,
            },
            None => {
                let (staging_location, staging) = loc.staging()?;
                removal::online::Online {
                    settle: self.removal.settle,
                    staging,
                    staging_location,
                    keep: false,
                    retain: self.removal.keep_quarantine,
                }
            }
        };
        let back = removal::online::recover(storage, &staging, &settings, &progress)?;
        if back > 0 {
            eprintln!(
                "regsweep: moved back {back} object(s) that a run killed before it finished \
                 had staged in {} and that are needed again",
                staging.staging
            );
        }
        let online = match self.online_mode()? {
            Err(code) => return Ok(code),
            Ok(false) if self.removal.keep_quarantine.is_some() => {
                bail!(
                    "--keep-quarantine keeps the staging of an online apply, and the registry \
                     is read-only: use --quarantine DEST instead (nothing was changed)"
                );
            }
            Ok(online) => online.then_some(staging),
        };
        let kept = online
            .as_ref()
            .and_then(|o| o.retain.map(|d| (o.staging.clone(), SystemTime::now() + d)));
        let quarantine = quarantine.map(|(_, q)| q);
        let (journal, recovered) = removal::open_journal(storage, &self.removal.journal)?;
        if recovered > 0 {
            eprintln!(
                "regsweep: closed {recovered} removal(s) left open by an earlier run in {}",
                self.removal.journal.display()
            );
        }
        let (applied, told) = removal::apply(
            storage,
            what,
            &settings,
            &journal,
            &ApplyOptions {
                quarantine,
                batch: self.removal.batch,
                ignore_problems: self.removal.ignore_problems,
                grace: self.grace,
                online,
            },
            &progress,
        )?;
        notes(&told);
        let (removal, dropped, out) = match applied {
            Applied::Refused { removal } => {
                return Ok(refused(&removal, self.command).unwrap_or(Exit::Error));
            }
            Applied::Blocked { removal, blocking } => {
                explain_refusal(self.command, &blocking);
                metrics(removal.plan(), SweepRun::Refused)?;
                return Ok(Exit::Refused);
            }
            Applied::Done {
                removal,
                dropped,
                outcome,
            } => (removal, dropped, outcome),
        };
        for d in &dropped {
            eprintln!("regsweep: skipped {}: {}", d.action.key(), d.reason);
        }
        if self.command != "sweep" {
            show(&removal, &[])?;
        }
        for (k, why) in &out.skipped {
            eprintln!("regsweep: skipped {k}: {why}");
        }
        for (k, why) in &out.restored {
            eprintln!("regsweep: kept {k}: {why} (moved back)");
        }
        if out.held_back > 0 {
            eprintln!(
                "regsweep: {} removal(s) not attempted: an earlier removal failed and what it \
                 protects stays; run again",
                out.held_back
            );
        }
        if let Some((staging, until)) = kept.filter(|_| out.objects > 0) {
            eprintln!(
                "regsweep: what this run removed stays in {staging} until {} \
                 (--keep-quarantine): `regsweep restore {} --from {staging}` puts it back; the \
                 first apply after that deletes it and frees its bytes",
                regsweep::report::rfc3339(until),
                storage.describe()
            );
        }
        let done = format!(
            "{} removals ({} objects), {} reclaimed",
            out.done,
            out.objects,
            regsweep::report::human_bytes(out.bytes),
        );
        let journal = self.removal.journal.display();
        // The removals are done: a closed standard output does not stop the
        // failures and metrics below from being written.
        let said = if self.command == "sweep" {
            self.say(&format!(
                "swept {}: {done}, {} skipped, {} failed; journal: {journal}",
                storage.describe(),
                out.skipped.len() + dropped.len(),
                out.failed.len(),
            ))
        } else {
            self.say(&format!(
                "{} applied to {}: {done}, {} skipped, {} failed; journal: {journal}",
                self.command,
                storage.describe(),
                out.skipped.len() + dropped.len(),
                out.failed.len(),
            ))
        };
        for (k, e) in &out.failed {
            eprintln!("  failed: {k}: {e}");
        }
        opened.report_skipped();
        metrics(removal.plan(), SweepRun::Applied(&out))?;
        timing_requests(storage);
        said?;
        if !dropped.is_empty() {
            eprintln!(
                "regsweep: {} removal(s) of the saved plan were not made: a fresh scan does not justify them",
                dropped.len()
            );
        }
        Ok(Exit::trouble_if(
            !out.failed.is_empty() || !dropped.is_empty(),
        ))
    }
}

impl Run<'_> {
    /// Whether to carry the plan out as on an online registry: `Ok(false)`
    /// with --offline or a read-only registry; `Err(exit)` when the
    /// registry's blob descriptor cache makes an online apply unsafe.
    fn online_mode(&self) -> Result<Result<bool, Exit>> {
        let settings = match &self.storage.registry_config {
            Some(cfg) => Some(regsweep::config::RegistrySettings::read(cfg)?),
            None => None,
        };
        if self.removal.offline || settings.as_ref().is_some_and(|s| s.readonly) {
            return Ok(Ok(false));
        }
        match settings.and_then(|s| s.blob_descriptor_cache) {
            Some(cache) => {
                eprintln!(
                    "regsweep: {}: the registry caches blob descriptors \
                     (storage.cache.blobdescriptor: {cache}): it answers a HEAD and a manifest \
                     PUT's check from memory, so a push can reuse a blob removed while it \
                     runs and be acknowledged broken. Safe procedure: set \
                     storage.maintenance.readonly.enabled: true (or stop the registry), run \
                     again with --offline, then restart the registry. Nothing was changed.",
                    self.command
                );
                Ok(Err(Exit::Refused))
            }
            None => {
                if self.storage.registry_config.is_none() {
                    eprintln!(
                        "regsweep: online apply assumes the registry caches no blob descriptors \
                         (storage.cache.blobdescriptor); give --registry-config to have it checked"
                    );
                }
                Ok(Ok(true))
            }
        }
    }

    /// A notice (what was done, where the plan went): on standard error,
    /// for every command; results go to standard output.
    fn say(&self, line: &str) -> Result<()> {
        eprintln!("regsweep: {line}");
        Ok(())
    }
}

/// Prints the pipeline's notes on standard error.
fn notes(notes: &[String]) {
    for n in notes {
        eprintln!("regsweep: {n}");
    }
}

/// `delete` names what it removes: a reference it cannot remove is an
/// error (exit 2), said here. `None` when nothing was refused.
fn refused(removal: &Removal, command: &str) -> Option<Exit> {
    let Removal::Prune(p) = removal else {
        return None;
    };
    if command != "delete" || p.refused.is_empty() {
        return None;
    }
    for r in &p.refused {
        eprintln!(
            "regsweep: refusing to delete {}@{}: {} (--untag-only removes only the tag; --force removes the manifest anyway)",
            r.repository, r.digest, r.reason
        );
    }
    Some(Exit::Error)
}

/// Runs `restore`.
pub fn restore(a: RestoreArgs) -> Result<Exit> {
    let loc = location(&StorageArgs {
        storage: a.storage.clone(),
        registry_config: a.registry_config.clone(),
        concurrency: a.concurrency,
        jobs: None,
        listing: None,
    })?;
    let storage = loc.open_with_concurrency(a.concurrency.map(usize::from))?;
    let (qloc, q) = loc.quarantine(&a.from)?;
    let qstore = qloc.open_with_concurrency(a.concurrency.map(usize::from))?;
    let r =
        regsweep::quarantine::restore(storage.as_ref(), qstore.as_ref(), &q, &progress(a.quiet))?;
    super::out(&format!(
        "restored {} object(s) from {} into {}\n",
        r.objects,
        a.from,
        storage.describe()
    ))?;
    for k in r.unlisted.iter().take(20) {
        eprintln!("regsweep: left in the quarantine (no record lists it): {k}");
    }
    Ok(Exit::trouble_if(!r.unlisted.is_empty()))
}

/// Says why `--apply` of `command` is refused: the problems that make
/// reachability uncertain (the first 20), and how to proceed.
pub fn explain_refusal(command: &str, blocking: &[regsweep::problem::Problem]) {
    eprintln!(
        "regsweep: refusing to {command}: {} problem(s) make reachability uncertain:",
        blocking.len()
    );
    for p in blocking.iter().take(20) {
        eprintln!("  {}: {}", p.path, p.message);
    }
    eprintln!("fix them, or pass --ignore-problems to {command} anyway");
}
