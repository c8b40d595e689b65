//! Carrying a plan out while the registry keeps serving pushes.
//!
//! What the registry writes on each kind of push (distribution's
//! `linkedblobstore.go`, `blobwriter.go`, `manifeststore.go`,
//! `tagstore.go`): an upload, a re-upload of bytes it already has and a
//! cross-repository mount each write the repository's layer link (an
//! existing blob's `data` is never rewritten); a manifest PUT first checks
//! every blob it names through the repository's layer links, then writes
//! the revision link, and a PUT by tag then the tag's history link and
//! `current/link`. A HEAD on a blob answers from the layer link. So every
//! push writes a link, and a push that reuses a blob depends on links.
//!
//! The protocol, in [`execute`]:
//!
//! 1. **Links first**, moved into the run's staging (a quarantine) rather
//!    than deleted: tags, tag history, revision links, layer links,
//!    uploads. A link written at or after `t0` (the start of the scan the
//!    plan comes from) is left alone: a push rewrote it. Once a layer link
//!    is gone a client's HEAD answers 404 (it uploads again) and a manifest
//!    PUT naming the blob is refused with BLOB_UNKNOWN (clients retry).
//! 2. **Settle**, then **look again**: a fresh scan; every manifest a link
//!    now names (revision, tag, an index's child) is live with its closure.
//!    Staged links that such a manifest needs are moved back.
//! 3. **Blobs** that no link and no live manifest names are moved into the
//!    staging.
//! 4. **Settle** and **look again**: every staged object that a live
//!    manifest or a link needs now (a push that checked a blob just before
//!    it moved) is moved back; the look is repeated until nothing more
//!    comes back.
//! 5. Empty repositories go, unless the last look saw something in them;
//!    the staging is emptied (unless it is the operator's `--quarantine`).
//!
//! A failure in one phase keeps every later phase from running (see
//! [`crate::sweep::execute`]); the looks still run, so what a failed
//! removal protects is never left without its links.

use super::Settings;
use crate::config::Location;
use crate::mark::Mode;
use crate::plan::{Action, ActionKind, Plan};
use crate::progress::Progress;
use crate::storage::{EntryKind, Storage, StorageError, StorageExt};
use crate::sweep::{self, Journal, SweepOptions, SweepOutcome};
use crate::{Analysis, Error};
use roaring::RoaringBitmap;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// How to carry a plan out on a registry that stays online.
#[derive(Debug, Clone)]
pub struct Online {
    /// How long to wait after removing before looking again: longer than a
    /// request takes between the registry's check and its write.
    pub settle: Duration,
    /// The staging: the quarantine root that removed objects move into
    /// (the `q` the backend's `quarantine` takes).
    pub staging: String,
    /// The staging opened as a storage of its own, to empty it at the end.
    pub staging_location: Location,
    /// Keep the staging at the end (it is the operator's `--quarantine`).
    pub keep: bool,
    /// How long this run's staged objects stay after it
    /// (`--keep-quarantine`): until then every later apply moves back what
    /// is needed again and leaves the rest; after, the first apply deletes
    /// them. None: this run deletes them itself.
    pub retain: Option<Duration>,
}

/// The directory or prefix, relative to the storage root, where a run
/// stages what it removes when no `--quarantine` is given (one at a time:
/// what a killed run left there is moved back by the next, see
/// [`recover`]).
pub const STAGING: &str = "regsweep-staging";

/// What a fresh scan says is needed now.
struct Look {
    analysis: Analysis,
    /// Per repository name: (live manifests, digests they need).
    repos: HashMap<String, (RoaringBitmap, RoaringBitmap)>,
    /// Every digest a live manifest needs or a link names, in any repository.
    needed: RoaringBitmap,
}

impl Look {
    fn take(
        storage: &dyn Storage,
        settings: &Settings,
        progress: &Progress,
    ) -> Result<Look, Error> {
        progress.phase("looking again");
        let opts = super::report_options(Mode::KeepUntagged, settings, false);
        let analysis = super::snapshot(storage, &opts, progress)?;
        let nodes = &analysis.graph.nodes;
        let mut repos = HashMap::new();
        let mut needed = RoaringBitmap::new();
        for r in &analysis.inventory.repos {
            let mut roots = r.revisions.clone();
            roots.extend(r.tags.iter().filter_map(|t| t.current));
            let (live, refs) = crate::reach::live::from_roots(&r.revisions, &roots, nodes);
            needed |= &refs;
            needed.extend(r.layers.iter().copied());
            needed.extend(r.aliases.iter().map(|&(_, b)| b));
            repos.insert(r.name.clone(), (live, refs));
        }
        Ok(Look {
            analysis,
            repos,
            needed,
        })
    }

    /// Whether the object `a` removed is needed now, and why.
    fn needs(&self, a: &Action) -> Option<&'static str> {
        let id = self.analysis.inventory.interner.get(&a.digest()?)?;
        let repo = a.repository().and_then(|r| self.repos.get(r));
        match a.kind {
            ActionKind::Revision => repo
                .is_some_and(|(live, _)| live.contains(id))
                .then_some("a tag or an index written during the run names the manifest"),
            ActionKind::LayerLink => repo
                .is_some_and(|(_, refs)| refs.contains(id))
                .then_some("a manifest live now in the repository needs the blob"),
            ActionKind::Blob => self
                .needed
                .contains(id)
                .then_some("a link or a live manifest names the blob again"),
            _ => None,
        }
    }

    /// True when the repository holds anything now.
    fn holds(&self, name: &str) -> bool {
        self.analysis.inventory.repos.iter().any(|r| {
            r.name == name
                && !(r.revisions.is_empty()
                    && r.tags.is_empty()
                    && r.layers.is_empty()
                    && r.uploads.is_empty())
        })
    }
}

/// A plan of some of `plan`'s actions.
fn part(plan: &Plan, actions: Vec<Action>) -> Plan {
    let mut p = plan.clone();
    p.actions = actions;
    p
}

/// Moves back every staged object of `staged` that `look` says is needed;
/// returns how many came back.
fn bring_back(
    storage: &dyn Storage,
    staging: &str,
    look: &Look,
    staged: &mut Vec<Action>,
    out: &mut SweepOutcome,
) -> usize {
    let mut back = 0;
    let mut left = Vec::with_capacity(staged.len());
    for a in staged.drain(..) {
        let Some(why) = look.needs(&a) else {
            left.push(a);
            continue;
        };
        let Some(file) = a.file() else {
            left.push(a);
            continue;
        };
        match storage.unquarantine(&file, staging) {
            Ok(()) => {
                back += 1;
                out.restored.push((file, why.to_string()));
                if a.kind == ActionKind::Blob {
                    out.bytes = out.bytes.saturating_sub(a.bytes);
                }
            }
            // Written again by the push itself: nothing to move back (the
            // staged copy is the same content-addressed object; `restore`
            // and the end of the staging take care of it).
            Err(StorageError::Exists { .. }) => {
                out.restored.push((file, why.to_string()));
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => out.failed.push((file, format!("cannot move it back: {e}"))),
        }
    }
    *staged = left;
    back
}

/// The actions of `plan` that the run moved: neither skipped nor failed.
fn moved(actions: &[Action], out: &SweepOutcome) -> Vec<Action> {
    let not: std::collections::HashSet<&str> = out
        .skipped
        .iter()
        .chain(&out.failed)
        .map(|(k, _)| k.as_str())
        .collect();
    actions
        .iter()
        .filter(|a| !not.contains(a.key().as_str()))
        .copied()
        .collect()
}

fn settle(d: Duration, progress: &Progress) {
    if !d.is_zero() {
        progress.phase("settling");
        std::thread::sleep(d);
    }
}

/// Carries `plan` out on a registry that stays online (see the module
/// documentation); `opts.since` is when the scan the plan comes from
/// started (links written since are pushes, left alone).
pub fn execute(
    storage: &dyn Storage,
    plan: &Plan,
    journal: &Journal,
    opts: &SweepOptions,
    online: &Online,
    settings: &Settings,
    progress: &Progress,
) -> Result<SweepOutcome, Error> {
    let started = SystemTime::now();
    let staged_opts = SweepOptions {
        quarantine: Some(online.staging.clone()),
        since: Some(opts.since.unwrap_or_else(SystemTime::now)),
        recorded: true,
        ..opts.clone()
    };
    if !plan.actions.is_empty() {
        // One record of the whole run, before anything moves: what
        // `restore` (or the next run, see [`recover`]) may move back.
        let mut record = crate::quarantine::Record::of(&opts.command, storage, plan, started);
        if !online.keep {
            record.keep_until = online.retain.map(|d| unix_seconds(started + d));
        }
        crate::quarantine::write(storage, &online.staging, &record)?;
    }
    let by = |f: fn(ActionKind) -> bool| -> Vec<Action> {
        plan.actions.iter().filter(|a| f(a.kind)).cloned().collect()
    };
    let links = by(|k| k < ActionKind::Blob);
    let blobs = by(|k| k == ActionKind::Blob);
    let repos = by(|k| k == ActionKind::Repository);

    let mut out = sweep::execute(
        storage,
        &part(plan, links.clone()),
        journal,
        &staged_opts,
        progress,
    )?;
    let mut staged = moved(&links, &out);
    let failed_links = !out.failed.is_empty();
    settle(online.settle, progress);
    let look = Look::take(storage, settings, progress)?;
    bring_back(storage, &online.staging, &look, &mut staged, &mut out);

    if failed_links {
        out.held_back += blobs.len() + repos.len();
    } else {
        let (keep, go): (Vec<Action>, Vec<Action>) =
            blobs.into_iter().partition(|a| look.needs(a).is_some());
        for a in keep {
            out.skipped.push((
                a.key(),
                "a link or a live manifest names the blob again (a push during the run); left alone"
                    .into(),
            ));
        }
        let o = sweep::execute(
            storage,
            &part(plan, go.clone()),
            journal,
            &staged_opts,
            progress,
        )?;
        staged.extend(moved(&go, &o));
        out.merge(o);
        settle(online.settle, progress);
        // Moving a manifest back can make its blobs needed: look until
        // nothing more comes back.
        let mut look = Look::take(storage, settings, progress)?;
        for _ in 0..8 {
            if bring_back(storage, &online.staging, &look, &mut staged, &mut out) == 0 {
                break;
            }
            look = Look::take(storage, settings, progress)?;
        }
        let (keep, go): (Vec<Action>, Vec<Action>) = repos
            .into_iter()
            .partition(|a| a.repository().is_some_and(|r| look.holds(r)));
        for a in keep {
            out.skipped.push((
                a.key(),
                "the repository holds something again (a push during the run); left alone".into(),
            ));
        }
        if out.failed.is_empty() {
            let o = sweep::execute(storage, &part(plan, go), journal, &staged_opts, progress)?;
            out.merge(o);
        } else {
            out.held_back += go.len();
        }
    }
    if !online.keep {
        // Everything is removed or back by now: a staging that cannot be
        // emptied is a failure of this run (the next run finishes it), not
        // an error that hides what was done.
        // Runs kept past this one's start stay: they were looked at when it
        // started, not since.
        if let Err(e) = finish_staging(online, progress, started) {
            out.failed.push((online.staging.clone(), e.to_string()));
        }
    }
    Ok(out)
}

/// Finishes what earlier runs left in the staging (a run killed before it
/// finished, or runs kept with `--keep-quarantine`; each left a record):
/// what a fresh look says is needed now moves back; the rest — removed by
/// their plans and needed by nothing since — is deleted, but for the
/// objects of runs still kept. Returns how many objects came back.
pub fn recover(
    storage: &dyn Storage,
    online: &Online,
    settings: &Settings,
    progress: &Progress,
) -> Result<usize, Error> {
    if online.keep {
        // The operator's quarantine: `restore` is theirs to run.
        return Ok(0);
    }
    let Ok(staging) = online.staging_location.open() else {
        remove_staging_dirs(&online.staging_location);
        return Ok(0);
    };
    if crate::quarantine::records(staging.as_ref(), &online.staging)?.is_empty() {
        remove_staging_dirs(&online.staging_location);
        return Ok(0);
    }
    progress.phase("finishing what earlier runs staged");
    let listing = staging.list("", false).map_err(|e| Error::Quarantine {
        quarantine: online.staging.clone(),
        message: format!("cannot be listed: {e}"),
    })?;
    let mut staged: Vec<Action> = listing
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .filter_map(|e| staged_action(&e.key))
        .collect();
    let mut out = SweepOutcome::default();
    let mut back = 0;
    for _ in 0..8 {
        let look = Look::take(storage, settings, progress)?;
        let n = bring_back(storage, &online.staging, &look, &mut staged, &mut out);
        back += n;
        if n == 0 {
            break;
        }
    }
    if let Some((key, e)) = out.failed.first() {
        return Err(Error::Quarantine {
            quarantine: online.staging.clone(),
            message: format!("{key}: {e}"),
        });
    }
    finish_staging(online, progress, SystemTime::now())?;
    Ok(back)
}

/// The removal a staged file came from, for the kinds that may be needed
/// again (revision links, layer links, blobs).
fn staged_action(key: &str) -> Option<Action> {
    let kind = if key.starts_with("blobs/") && key.ends_with("/data") {
        ActionKind::Blob
    } else if key.contains("/_manifests/revisions/") && key.ends_with("/link") {
        ActionKind::Revision
    } else if key.contains("/_layers/") && key.ends_with("/link") {
        ActionKind::LayerLink
    } else {
        return None;
    };
    let dir = key.rsplit_once('/')?.0;
    Action::parse_key(kind, &format!("{dir}/"))
}

/// Deletes what the staging holds but for the objects of runs kept
/// (`--keep-quarantine`) past `cutoff`, then the records of the runs it
/// finished: last, so that while one is left the next run finds the
/// staging to finish.
fn finish_staging(online: &Online, progress: &Progress, cutoff: SystemTime) -> Result<(), Error> {
    progress.phase("emptying the staging");
    let staging = match online.staging_location.open() {
        Ok(s) => s,
        // Nothing was moved: there is no staging to empty.
        Err(_) => {
            remove_staging_dirs(&online.staging_location);
            return Ok(());
        }
    };
    let failed = |message: String| Error::Quarantine {
        quarantine: online.staging.clone(),
        message,
    };
    let cutoff = unix_seconds(cutoff);
    let (kept, done): (Vec<_>, Vec<_>) =
        crate::quarantine::records(staging.as_ref(), &online.staging)?
            .into_iter()
            .partition(|(_, r)| r.keep_until.is_some_and(|t| t > cutoff));
    let (dirs, files) = crate::quarantine::objects_of(&kept);
    let listing = staging
        .list("", false)
        .map_err(|e| failed(format!("cannot be listed: {e}")))?;
    if let Some(e) = listing.errors.first() {
        return Err(failed(format!("cannot be listed: {e}")));
    }
    let objects: Vec<String> = listing
        .entries
        .into_iter()
        .filter(|e| e.kind == EntryKind::File)
        .map(|e| e.key)
        .filter(|k| !k.starts_with(crate::quarantine::RECORDS))
        .filter(|k| !crate::quarantine::listed(&dirs, &files, k))
        .collect();
    let records: Vec<String> = done.into_iter().map(|(k, _)| k).collect();
    for part in [&objects, &records] {
        let errors: Vec<String> = staging
            .delete_many(part)
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        if !errors.is_empty() {
            return Err(failed(format!(
                "{} staged object(s) could not be deleted; they are garbage, and the next \
                 run deletes them:\n  {}",
                errors.len(),
                errors.join("\n  ")
            )));
        }
    }
    let emptied: Vec<String> = objects
        .iter()
        .chain(&records)
        .filter_map(|k| k.rsplit_once('/').map(|(d, _)| d.to_string()))
        .collect();
    staging.remove_empty_dirs(&emptied, &|_| false);
    remove_staging_dirs(&online.staging_location);
    Ok(())
}

/// Seconds since the Unix epoch.
fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// A filesystem staging's directories that are empty, deepest first, the
/// staging itself included: objects moved back leave theirs behind.
fn remove_staging_dirs(location: &Location) {
    let Location::Dir(d) = location else { return };
    remove_empty_tree(d);
}

/// Removes `dir` and every directory under it that holds no file (never
/// following a symlink); true when `dir` itself went.
fn remove_empty_tree(dir: &std::path::Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut empty = true;
    for e in entries {
        let is_dir = e
            .as_ref()
            .ok()
            .and_then(|e| e.file_type().ok())
            .is_some_and(|t| t.is_dir());
        match e {
            Ok(e) if is_dir => empty &= remove_empty_tree(&e.path()),
            _ => empty = false,
        }
    }
    empty && std::fs::remove_dir(dir).is_ok()
}
