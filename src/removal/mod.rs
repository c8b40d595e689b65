//! One removal pipeline for `sweep`, `delete` and `prune`: three kinds of
//! [`Request`] to the same two steps.
//!
//! * [`plan`]: a fresh snapshot of the storage (scan, parse, mark) and the
//!   request give a [`Removal`] — the preview, which is also the plan that
//!   `--apply` carries out and `--plan FILE` saves. Removals are a change of
//!   the mark's roots ([`crate::prune::decide`]); the snapshot itself is
//!   never changed.
//! * [`apply`]: with a request, or with a plan saved earlier ([`saved`]):
//!   refuse while problems make reachability uncertain, take a fresh
//!   snapshot, re-derive the plan from it, keep of a saved plan only what
//!   the fresh one also removes, re-summarise, and execute through the
//!   journal ([`crate::sweep::execute`]).
//!
//! The command line only parses, calls, prints and maps exit codes.

pub mod online;
pub mod saved;

use crate::mark::Mode;
use crate::plan::{self, Dropped, Plan, PlanOptions};
use crate::policy::Policy;
use crate::problem::Problem;
use crate::progress::Progress;
use crate::prune::{self, refs, PrunePlan};
use crate::storage::Storage;
use crate::sweep::{self, Journal, SweepOptions, SweepOutcome};
use crate::{Analysis, Error, ReportOptions};
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// What to remove.
#[derive(Debug)]
pub enum Request {
    /// `sweep`: what the mark finds unreachable.
    Sweep {
        /// The mark mode.
        mode: Mode,
        /// Grace period, upload age, empty repositories.
        options: PlanOptions,
    },
    /// `delete`: the named references.
    Delete {
        /// The references.
        refs: Vec<refs::Ref>,
        /// Remove only tags.
        untag_only: bool,
        /// Remove manifests a kept index needs anyway.
        force: bool,
        /// Grace period.
        grace: Duration,
    },
    /// `prune`: what a retention policy does not keep.
    Prune {
        /// The policy.
        policy: Box<Policy>,
        /// Access logs for pull times.
        access_logs: Vec<String>,
        /// Pulls by these user agents do not count.
        ignore_user_agent: Option<regex::Regex>,
        /// Grace period.
        grace: Duration,
    },
}

impl Request {
    /// The command the request comes from.
    pub fn command(&self) -> &'static str {
        match self {
            Request::Sweep { .. } => "sweep",
            Request::Delete { .. } => "delete",
            Request::Prune { .. } => "prune",
        }
    }
}

/// A plan: `sweep`'s, or the richer one of `delete` and `prune` (which
/// holds a sweep plan).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Removal {
    /// A `sweep` plan.
    Sweep(Plan),
    /// A `delete` or `prune` plan.
    Prune(Box<PrunePlan>),
}

impl Removal {
    /// The removals, in execution order.
    pub fn plan(&self) -> &Plan {
        match self {
            Removal::Sweep(p) => p,
            Removal::Prune(p) => &p.plan,
        }
    }

    /// The command that made it.
    pub fn command(&self) -> &str {
        match self {
            Removal::Sweep(_) => "sweep",
            Removal::Prune(p) => &p.command,
        }
    }

    /// The storage it was made for.
    pub fn storage(&self) -> &str {
        &self.plan().storage
    }

    /// Keeps only the removals `fresh` (a plan of the same request on a
    /// newer snapshot) also makes, and re-summarises; returns the dropped.
    fn recheck(&mut self, fresh: &Removal) -> Vec<Dropped> {
        match self {
            Removal::Sweep(p) => {
                let dropped = p.recheck(fresh.plan());
                p.resummarize();
                dropped
            }
            Removal::Prune(p) => {
                let dropped = p.plan.recheck(fresh.plan());
                p.resummarize();
                dropped
            }
        }
    }
}

/// On an object store, how far before the scan's start (taken down to its
/// whole second) a link counts as written since it.
const CLOCK_MARGIN: Duration = Duration::from_secs(1);

/// Online, at most this many looks at storage, a settle period apart,
/// before problems that keep changing are taken as blocking.
const ONLINE_LOOKS: usize = 5;

/// `t` without its fraction of a second.
fn whole_second(t: SystemTime) -> SystemTime {
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    std::time::UNIX_EPOCH + Duration::from_secs(since.as_secs())
}

/// Settings every request shares.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest manifest read, in bytes.
    pub max_manifest_size: u64,
    /// The time grace periods count back from.
    pub now: SystemTime,
    /// Tags kept outside the storage (`sweep --tags-from`).
    pub tags_from: Option<std::sync::Arc<crate::scan::external_tags::ExternalTags>>,
}

/// A plan with what the snapshot it was made from says about it.
#[derive(Debug)]
pub struct Planned {
    /// The plan.
    pub removal: Removal,
    /// Scan problems that make reachability uncertain: `apply` refuses
    /// while there are any (unless told to ignore them).
    pub blocking: Vec<Problem>,
    /// Things worth telling the operator (unparsed access-log lines, saved
    /// entries skipped because the registry changed), one line each.
    pub notes: Vec<String>,
}

/// The scan settings a request needs.
fn report_options(mode: Mode, s: &Settings, tag_times: bool) -> ReportOptions {
    let mut o = ReportOptions {
        mode,
        graph: crate::graph::GraphOptions {
            max_manifest_size: s.max_manifest_size,
            ..Default::default()
        },
        scan: crate::scan::ScanOptions::fast(),
    };
    // Revision link times come with the scan's stat of each link.
    o.scan.link_times = true;
    o.scan.tag_times = tag_times;
    o.scan.tags_from = s.tags_from.clone();
    o
}

fn snapshot(
    storage: &dyn Storage,
    opts: &ReportOptions,
    progress: &Progress,
) -> Result<Analysis, Error> {
    Ok(crate::analyze(storage, opts, progress)?)
}

/// Problems that make a removal unsafe: the scan's errors, and — for a
/// request that removes untagged manifests — a registry whose tags are not
/// in its storage.
fn blocking(a: &Analysis, removes_untagged: bool) -> Vec<Problem> {
    let mut out: Vec<Problem> = a
        .inventory
        .problems
        .iter()
        .filter(|p| p.blocks_sweep())
        .cloned()
        .collect();
    if removes_untagged {
        out.extend(no_tag_files(a));
    }
    out
}

/// Manifests but not one tag file in any repository: the registry keeps
/// its tags elsewhere (Harbor 2.15 and later, in its database), and every
/// image would look untagged.
fn no_tag_files(a: &Analysis) -> Option<Problem> {
    let repos = &a.inventory.repos;
    let manifests: usize = repos.iter().map(|r| r.revisions.len()).sum();
    if manifests == 0 || repos.iter().any(|r| !r.tags.is_empty()) {
        return None;
    }
    Some(Problem::new(
        crate::problem::Kind::NoTagFiles,
        crate::problem::Severity::Error,
        "repositories/",
        format!(
            "{manifests} manifest(s) in {} repositories and not one tag file: the registry keeps \
             its tags elsewhere (Harbor 2.15 and later keeps them only in its database), so \
             every image would be removed as untagged",
            repos.len()
        ),
    ))
}

/// Plans `request` on a fresh snapshot of `storage`.
pub fn plan(
    storage: &dyn Storage,
    request: &Request,
    settings: &Settings,
    progress: &Progress,
) -> Result<Planned, Error> {
    match request {
        Request::Sweep { mode, options } => {
            let a = snapshot(storage, &report_options(*mode, settings, false), progress)?;
            progress.phase("planning");
            let p = plan::build(storage, &a, *mode, options, settings.now);
            progress.finish();
            Ok(Planned {
                removal: Removal::Sweep(p),
                blocking: blocking(&a, *mode == Mode::DeleteUntagged),
                notes: Vec::new(),
            })
        }
        Request::Delete { .. } | Request::Prune { .. } => {
            plan_prune(storage, Decide::Fresh(request), settings, progress)
        }
    }
}

/// What a `delete` / `prune` plan is derived from.
enum Decide<'a> {
    /// A request.
    Fresh(&'a Request),
    /// A saved plan's own request, re-read on the fresh snapshot, with the
    /// grace period to use.
    Saved(&'a PrunePlan, Duration),
}

fn plan_prune(
    storage: &dyn Storage,
    decide: Decide<'_>,
    settings: &Settings,
    progress: &Progress,
) -> Result<Planned, Error> {
    let logs = matches!(decide, Decide::Fresh(Request::Prune { access_logs, .. }) if !access_logs.is_empty());
    let mut a = snapshot(
        storage,
        &report_options(Mode::DeleteUntagged, settings, true),
        progress,
    )?;
    progress.phase("reading link times");
    let times = crate::times::read(storage, &mut a.inventory, logs);
    let mut notes = Vec::new();
    let (request, grace, force, command) = match decide {
        // A prune plan never removes what a kept index needs; only a
        // delete plan made with --force does.
        Decide::Saved(p, grace) => (
            saved::request(&a, p, &mut notes),
            grace,
            p.force && p.command == "delete",
            p.command.clone(),
        ),
        Decide::Fresh(Request::Delete {
            refs,
            untag_only,
            force,
            grace,
        }) => (
            refs::resolve(&a, refs, *untag_only)?,
            *grace,
            *force,
            "delete".to_string(),
        ),
        Decide::Fresh(Request::Prune {
            policy,
            access_logs,
            ignore_user_agent,
            grace,
        }) => {
            let pulls = if access_logs.is_empty() {
                None
            } else {
                progress.phase("reading access logs");
                let p = crate::images::pulls::from_logs(
                    &a.inventory,
                    &times,
                    access_logs,
                    ignore_user_agent.as_ref(),
                    true,
                )?;
                if p.summary.unparsed_lines > 0 {
                    notes.push(format!(
                        "{} access-log line(s) not understood (first: {})",
                        p.summary.unparsed_lines,
                        p.summary.first_unparsed.as_deref().unwrap_or("?")
                    ));
                }
                Some(p)
            };
            progress.phase("applying the policy");
            let views: Vec<crate::policy::RepoView> =
                prune::views::repo_views(&a, &times, pulls.as_ref())
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect();
            let d = crate::policy::evaluate(policy, &views, settings.now, *grace);
            (
                prune::views::request(&a, &d),
                *grace,
                false,
                "prune".to_string(),
            )
        }
        Decide::Fresh(Request::Sweep { .. }) => unreachable!("a sweep plans without a decision"),
    };
    progress.phase("planning");
    let opts = prune::Options {
        grace,
        force,
        now: settings.now,
        command,
    };
    let after = prune::decide(&a, &times, &request, &opts);
    // Sizes and ages of what becomes garbage: facts about the storage that
    // a fast scan learns only for the blobs that matter.
    let garbage = after.garbage_blobs(&a);
    crate::scan::fill_blob_stats(storage, &mut a.inventory, &garbage, true);
    let p = prune::build(storage, &a, &times, after, &request, &opts);
    progress.finish();
    Ok(Planned {
        removal: Removal::Prune(Box::new(p)),
        blocking: blocking(&a, true),
        notes,
    })
}

/// What to carry out.
#[derive(Debug)]
pub enum Apply {
    /// A request, planned on the fresh snapshot and carried out at once.
    Fresh(Request),
    /// A plan saved earlier (see [`saved::read`]): of its removals, only
    /// those a plan of the same request on a fresh snapshot also makes.
    Saved(Removal),
}

/// How to carry a plan out.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Move removed objects into this quarantine root instead of deleting.
    pub quarantine: Option<String>,
    /// Removals per journaled batch.
    pub batch: usize,
    /// Carry out even while problems make reachability uncertain.
    pub ignore_problems: bool,
    /// A grace period given at apply time: a saved plan is carried out
    /// with the longer of this and its own (the stricter of the two).
    pub grace: Option<Duration>,
    /// The registry stays online: carry the plan out as [`online`] does.
    /// `None`: the registry is stopped or read-only, one pass.
    pub online: Option<online::Online>,
}

/// What [`apply`] did.
#[derive(Debug)]
pub enum Applied {
    /// Problems make reachability uncertain: nothing was changed.
    Blocked {
        /// The plan that was not carried out.
        removal: Removal,
        /// The problems.
        blocking: Vec<Problem>,
    },
    /// `delete` named manifests that something kept still needs: nothing
    /// was changed (the plan's `refused` says what and why).
    Refused {
        /// The plan that was not carried out.
        removal: Removal,
    },
    /// The plan was carried out.
    Done {
        /// The plan carried out (a saved plan after the re-check).
        removal: Removal,
        /// Removals of a saved plan that the fresh snapshot does not make
        /// (pushed again, needed again, young, gone — or never justified:
        /// an edited plan), with why.
        dropped: Vec<Dropped>,
        /// What the sweep did.
        outcome: SweepOutcome,
    },
}

/// Plans a saved plan's own request again on a fresh snapshot, with the
/// stricter of its grace period and the one given at apply time.
fn replan_saved(
    storage: &dyn Storage,
    saved: &Removal,
    settings: &Settings,
    opts: &ApplyOptions,
    progress: &Progress,
) -> Result<Planned, Error> {
    let stricter = |own: Duration| opts.grace.map_or(own, |g| g.max(own));
    match saved {
        Removal::Sweep(p) => {
            let mut options = p.options();
            options.grace = stricter(options.grace);
            plan(
                storage,
                &Request::Sweep {
                    mode: p.mode,
                    options,
                },
                settings,
                progress,
            )
        }
        Removal::Prune(p) => {
            let grace = stricter(Duration::from_secs(p.grace_seconds));
            plan_prune(storage, Decide::Saved(p, grace), settings, progress)
        }
    }
}

/// Opens the journal at `path` and first closes what a killed earlier run
/// left open in it; returns the journal and how many removals it closed.
pub fn open_journal(storage: &dyn Storage, path: &Path) -> Result<(Journal, usize), Error> {
    let j = Journal::open(path).map_err(|e| Error::io(path, e))?;
    let n = sweep::recover(storage, &j)?;
    Ok((j, n))
}

/// Carries out `what` on `storage` through `journal`: a fresh snapshot, the
/// plan re-derived from it, the checks, the journaled sweep.
pub fn apply(
    storage: &dyn Storage,
    what: Apply,
    settings: &Settings,
    journal: &Journal,
    opts: &ApplyOptions,
    progress: &Progress,
) -> Result<(Applied, Vec<String>), Error> {
    // Links written from here on are pushes the plan cannot know of. A
    // filesystem's times come from this machine's clock, to the
    // nanosecond. An object store's come from its own clock, cut to the
    // second (S3's LastModified): there the start is taken down to its
    // whole second, less a margin, erring on the side of keeping.
    let t0 = if storage.fast_paths().is_some() {
        SystemTime::now()
    } else {
        whole_second(SystemTime::now()) - CLOCK_MARGIN
    };
    let (request, removal) = match what {
        Apply::Fresh(request) => (Some(request), None),
        Apply::Saved(removal) => (None, Some(removal)),
    };
    let make = || -> Result<Planned, Error> {
        match (&request, &removal) {
            (Some(r), _) => plan(storage, r, settings, progress),
            (None, Some(saved)) => replan_saved(storage, saved, settings, opts, progress),
            (None, None) => unreachable!("an apply has a request or a saved plan"),
        }
    };
    let mut planned = make()?;
    if let (Some(online), false) = (&opts.online, opts.ignore_problems) {
        // Online, a push in flight looks like damage for a moment (a tag
        // directory whose `current/link` is not written yet). Damage is
        // what two looks a settle period apart both see; a look that finds
        // a problem the one before did not is taken again, up to
        // ONLINE_LOOKS looks, since pushes keep arriving.
        let mut looks = 1;
        let mut before: std::collections::BTreeSet<(String, String)> =
            std::collections::BTreeSet::new();
        while !planned.blocking.is_empty() && looks < ONLINE_LOOKS {
            let now: std::collections::BTreeSet<(String, String)> = planned
                .blocking
                .iter()
                .map(|p| (p.path.clone(), p.message.clone()))
                .collect();
            if looks > 1 && now.is_subset(&before) {
                break;
            }
            before = now;
            progress.phase("settling");
            std::thread::sleep(online.settle.max(Duration::from_secs(1)));
            planned = make()?;
            looks += 1;
        }
    }
    if let (Some(Request::Delete { .. }), Removal::Prune(p)) = (&request, &planned.removal) {
        if !p.refused.is_empty() {
            return Ok((
                Applied::Refused {
                    removal: planned.removal,
                },
                planned.notes,
            ));
        }
    }
    let Planned {
        removal: fresh,
        blocking,
        notes,
    } = planned;
    if !blocking.is_empty() && !opts.ignore_problems {
        let removal = removal.unwrap_or(fresh);
        return Ok((Applied::Blocked { removal, blocking }, notes));
    }
    let (removal, dropped) = match removal {
        Some(mut saved) => {
            let dropped = saved.recheck(&fresh);
            (saved, dropped)
        }
        None => (fresh, Vec::new()),
    };
    let sweep_opts = SweepOptions {
        quarantine: opts.quarantine.clone(),
        batch: opts.batch,
        command: removal.command().to_string(),
        since: None,
        recorded: false,
    };
    let outcome = match &opts.online {
        None => sweep::execute(storage, removal.plan(), journal, &sweep_opts, progress)?,
        Some(o) => online::execute(
            storage,
            removal.plan(),
            journal,
            &SweepOptions {
                since: Some(t0),
                ..sweep_opts
            },
            o,
            settings,
            progress,
        )?,
    };
    Ok((
        Applied::Done {
            removal,
            dropped,
            outcome,
        },
        notes,
    ))
}
