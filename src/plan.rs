//! The sweep plan: what a sweep would remove, built from the mark, checked
//! against the grace period, serializable so that an operator can review it
//! and apply it later (after a fresh scan re-checks every entry).
//!
//! Actions come in the order they are carried out — tags (`delete` and
//! `prune`), tag history entries, revision links, layer links, uploads,
//! blobs, empty repositories — so that a crash never leaves a link to a
//! missing blob.

use crate::mark::{self, Mode};
use crate::report::rfc3339;
use crate::storage::{Storage, StorageExt};
use crate::Analysis;
use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

/// Version of the plan format.
pub const PLAN_FORMAT_VERSION: u32 = 1;

/// What an action removes (also the order of the phases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// `_manifests/tags/<tag>/`: a whole tag (its `current/link` and its
    /// history), as the registry's own tag delete removes it. The action's
    /// digest is the one the tag must still name when it is removed.
    Tag,
    /// `_manifests/tags/<tag>/index/sha256/<hex>/`: a tag history entry.
    TagHistory,
    /// `_manifests/revisions/sha256/<hex>/`: an untagged manifest's revision link.
    Revision,
    /// `_layers/sha256/<hex>/`: a layer link no live manifest of the repository needs.
    LayerLink,
    /// `_uploads/<id>/`: an upload older than the upload age.
    Upload,
    /// `blobs/sha256/<xx>/<hex>/`: a blob no live manifest references.
    Blob,
    /// A repository left with no tags, manifests or uploads.
    Repository,
}

/// One removal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Action {
    /// What it removes.
    pub kind: ActionKind,
    /// The directory (key prefix, ending in `/`) it removes.
    pub key: String,
    /// The repository, for repository-scoped actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The digest, for links and blobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Bytes reclaimed (blobs and uploads).
    #[serde(default)]
    pub bytes: u64,
}

impl Action {
    /// The single file the action removes, when it is one (`link` or `data`);
    /// `None` when the whole directory is listed at execution time.
    pub fn file(&self) -> Option<String> {
        match self.kind {
            ActionKind::TagHistory | ActionKind::Revision | ActionKind::LayerLink => {
                Some(format!("{}link", self.key))
            }
            ActionKind::Blob => Some(format!("{}data", self.key)),
            ActionKind::Tag | ActionKind::Upload | ActionKind::Repository => None,
        }
    }
}

/// A removal of a saved plan that the fresh plan does not make.
#[derive(Debug, Clone)]
pub struct Dropped {
    /// The removal.
    pub action: Action,
    /// Why it is not made.
    pub reason: String,
}

/// Something the plan keeps although the mark found it unreachable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// What it is.
    pub kind: ActionKind,
    /// Its key.
    pub key: String,
    /// Why it is kept.
    pub reason: String,
}

/// Totals of a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    /// Whole tags to remove (`delete`, `prune`).
    #[serde(default)]
    pub tags: usize,
    /// Tag history entries to remove.
    pub tag_history: usize,
    /// Revision links to remove.
    pub revisions: usize,
    /// Layer links to remove.
    pub layer_links: usize,
    /// Uploads to remove.
    pub uploads: usize,
    /// Blobs to remove.
    pub blobs: usize,
    /// Empty repositories to remove.
    pub repositories: usize,
    /// Bytes reclaimed (blobs and uploads).
    pub bytes: u64,
    /// Entries kept by the grace period or for lack of an age.
    pub held: usize,
    /// Problems that make reachability uncertain (a sweep refuses to apply).
    pub blocking_problems: usize,
}

/// A sweep plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Version of this format.
    pub format_version: u32,
    /// The storage it was made for.
    pub storage: String,
    /// The mark mode.
    pub mode: Mode,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// Grace period, seconds.
    pub grace_seconds: u64,
    /// Uploads older than this (by `startedat`) are removed, seconds.
    pub upload_max_age_seconds: u64,
    /// Whether empty repositories are removed.
    pub prune_empty_repositories: bool,
    /// Totals.
    pub summary: PlanSummary,
    /// Removals, in execution order.
    pub actions: Vec<Action>,
    /// What is kept although unreachable, and why.
    pub held: Vec<Held>,
}

/// Settings of a plan.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Nothing modified more recently than this is removed.
    pub grace: Duration,
    /// Uploads started longer ago than this are removed.
    pub upload_max_age: Duration,
    /// Remove repositories left with no tags, manifests or uploads.
    pub prune_empty_repositories: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            grace: Duration::from_secs(3600),
            upload_max_age: Duration::from_secs(168 * 3600),
            prune_empty_repositories: false,
        }
    }
}

fn hex(a: &Analysis, id: u32) -> String {
    a.inventory
        .interner
        .digest(id)
        .sha256_hex()
        .expect("stored digests are sha256")
}

/// Modification times of the `link` files of link directories `keys` (a
/// missing file gives `None`), stat'ed in concurrent chunks so that only one
/// chunk's file names exist at a time.
fn link_times<'a>(
    storage: &dyn Storage,
    keys: impl ExactSizeIterator<Item = &'a str>,
) -> Vec<Option<SystemTime>> {
    const CHUNK: usize = 8192;
    let mut out = Vec::with_capacity(keys.len());
    let mut files: Vec<String> = Vec::with_capacity(CHUNK);
    let flush = |files: &mut Vec<String>, out: &mut Vec<Option<SystemTime>>| {
        out.extend(storage.stat_many(files).into_iter().map(|r| {
            r.ok()
                .and_then(|m| m.modified.or(Some(SystemTime::UNIX_EPOCH)))
        }));
        files.clear();
    };
    for k in keys {
        files.push(format!("{k}link"));
        if files.len() == CHUNK {
            flush(&mut files, &mut out);
        }
    }
    flush(&mut files, &mut out);
    out
}

/// The state of the registry a plan is made for: the roots and mark of the
/// analysis itself, or of the registry after a `delete` or `prune` request
/// (its roots changed, its removed tags named) — never a changed snapshot.
#[derive(Debug, Clone, Copy)]
pub struct State<'a> {
    /// Per-repository roots.
    pub roots: &'a [mark::RepoRoots],
    /// The mark of those roots.
    pub marked: &'a mark::Marked,
    /// Tags that go whole: (repository index, tag index). Their history
    /// goes with them, so it is no separate action.
    pub removed_tags: &'a HashSet<(usize, usize)>,
}

impl<'a> State<'a> {
    /// The analysis as it was scanned: nothing removed.
    pub fn of(a: &'a Analysis, none: &'a HashSet<(usize, usize)>) -> State<'a> {
        State {
            roots: &a.roots,
            marked: &a.marked,
            removed_tags: none,
        }
    }
}

/// Builds the plan of the analysis as scanned (see [`build_on`]).
pub fn build(
    storage: &dyn Storage,
    a: &Analysis,
    mode: Mode,
    opts: &PlanOptions,
    now: SystemTime,
) -> Plan {
    let none = HashSet::new();
    build_on(storage, a, State::of(a, &none), mode, opts, now)
}

/// Builds the plan of `state` on analysis `a`, which it does not change. In
/// delete-untagged mode, untagged manifests whose revision link is younger
/// than the grace period are treated as roots (a push may be in flight),
/// and the mark is re-run with them.
pub fn build_on(
    storage: &dyn Storage,
    a: &Analysis,
    state: State<'_>,
    mode: Mode,
    opts: &PlanOptions,
    now: SystemTime,
) -> Plan {
    let cutoff = now
        .checked_sub(opts.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let recent = |t: Option<SystemTime>| t.is_none_or(|t| t > cutoff);
    let mut held = Vec::new();
    let mut actions = Vec::new();

    // Revision links: young ones become roots.
    let rev_key = |r: &str, h: &str| format!("repositories/{r}/_manifests/revisions/sha256/{h}/");
    let mut remarked: Option<mark::Marked> = None;
    if mode == Mode::DeleteUntagged {
        let garbage = state.marked.garbage_manifests(state.roots);
        let mut cands = Vec::new();
        for (i, g) in garbage.iter().enumerate() {
            for id in g {
                cands.push((i, id, rev_key(&a.inventory.repos[i].name, &hex(a, id))));
            }
        }
        let times = link_times(storage, cands.iter().map(|c| c.2.as_str()));
        let mut young: Vec<(usize, u32)> = Vec::new();
        let mut gone: Vec<(usize, u32)> = Vec::new();
        for ((i, id, key), t) in cands.into_iter().zip(times) {
            if t.is_none() {
                // The link vanished since the scan: nothing to remove.
                gone.push((i, id));
            } else if recent(t) {
                held.push(Held {
                    kind: ActionKind::Revision,
                    key,
                    reason: "revision link is younger than the grace period; kept, with everything it references".into(),
                });
                young.push((i, id));
            }
        }
        if !young.is_empty() {
            // More roots: the state's, with the young manifests.
            let mut roots = state.roots.to_vec();
            for &(i, id) in &young {
                roots[i].tag_targets.push(id);
            }
            remarked = Some(mark::mark(&roots, &a.graph.nodes, mode));
        }
        let marked = remarked.as_ref().unwrap_or(state.marked);
        for (i, g) in marked.garbage_manifests(state.roots).iter().enumerate() {
            for id in g {
                if gone.contains(&(i, id)) {
                    continue;
                }
                let r = &a.inventory.repos[i].name;
                actions.push(Action {
                    kind: ActionKind::Revision,
                    key: rev_key(r, &hex(a, id)),
                    repository: Some(r.clone()),
                    digest: Some(a.inventory.interner.digest(id).to_string()),
                    bytes: 0,
                });
            }
        }
    }

    let marked = remarked.as_ref().unwrap_or(state.marked);

    // Blobs.
    let garbage = a.inventory.stored_blobs() - &marked.blobs;
    let mut deleted_blobs = RoaringBitmap::new();
    for id in &garbage {
        let b = &a.inventory.blobs[id as usize];
        let h = hex(a, id);
        let key = format!("blobs/sha256/{}/{h}/", &h[..2]);
        if recent(b.modified()) {
            held.push(Held {
                kind: ActionKind::Blob,
                key,
                reason: "blob is younger than the grace period".into(),
            });
            continue;
        }
        deleted_blobs.insert(id);
        actions.push(Action {
            kind: ActionKind::Blob,
            key,
            repository: None,
            digest: Some(format!("sha256:{h}")),
            bytes: b.size,
        });
    }

    // Tag history entries and layer links: candidates, then the grace check.
    let mut cands: Vec<Action> = Vec::new();
    for (i, r) in a.inventory.repos.iter().enumerate() {
        let live = &marked.live_manifests[i];
        for (ti, t) in r.tags.iter().enumerate() {
            if state.removed_tags.contains(&(i, ti)) {
                continue;
            }
            for &id in &t.history {
                if !live.contains(id) && a.inventory.interner.digest(id).sha256_hex().is_some() {
                    cands.push(Action {
                        kind: ActionKind::TagHistory,
                        key: format!(
                            "repositories/{}/_manifests/tags/{}/index/sha256/{}/",
                            r.name,
                            t.name,
                            hex(a, id)
                        ),
                        repository: Some(r.name.clone()),
                        digest: Some(a.inventory.interner.digest(id).to_string()),
                        bytes: 0,
                    });
                }
            }
        }
        let refs = &marked.repo_refs[i];
        for &id in &r.layers {
            if deleted_blobs.contains(id) || !refs.contains(id) {
                cands.push(Action {
                    kind: ActionKind::LayerLink,
                    key: format!("repositories/{}/_layers/sha256/{}/", r.name, hex(a, id)),
                    repository: Some(r.name.clone()),
                    digest: Some(a.inventory.interner.digest(id).to_string()),
                    bytes: 0,
                });
            }
        }
        // Alias links (`_layers/sha512/<hex>/`) go with their blob, or when
        // no live manifest of the repository references the alias.
        for &(alias, blob) in &r.aliases {
            if deleted_blobs.contains(blob) || !refs.contains(alias) {
                let d = a.inventory.interner.digest(alias);
                cands.push(Action {
                    kind: ActionKind::LayerLink,
                    key: crate::scan::layer_link_dir(&r.name, &d),
                    repository: Some(r.name.clone()),
                    digest: Some(d.to_string()),
                    bytes: 0,
                });
            }
        }
    }
    let times = link_times(storage, cands.iter().map(|c| c.key.as_str()));
    for (c, t) in cands.into_iter().zip(times) {
        match t {
            None => {} // gone since the scan
            Some(t) if recent(Some(t)) => held.push(Held {
                kind: c.kind,
                key: c.key,
                reason: "link is younger than the grace period".into(),
            }),
            Some(_) => actions.push(c),
        }
    }

    // Uploads.
    let upload_cutoff = now
        .checked_sub(opts.upload_max_age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut uploads_left: Vec<usize> = vec![0; a.inventory.repos.len()];
    for (i, r) in a.inventory.repos.iter().enumerate() {
        for u in &r.uploads {
            let key = format!("repositories/{}/_uploads/{}/", r.name, u.id);
            let reason = match u.started_at {
                None => Some("upload has no valid startedat: its age is unknown".to_string()),
                Some(t) if t > upload_cutoff => Some(format!(
                    "upload is younger than the upload age ({})",
                    humantime::format_duration(opts.upload_max_age)
                )),
                Some(_) if recent(u.modified) && u.modified.is_some() => {
                    Some("upload was written to within the grace period".into())
                }
                Some(_) => None,
            };
            match reason {
                Some(reason) => {
                    uploads_left[i] += 1;
                    held.push(Held {
                        kind: ActionKind::Upload,
                        key,
                        reason,
                    });
                }
                None => actions.push(Action {
                    kind: ActionKind::Upload,
                    key,
                    repository: Some(r.name.clone()),
                    digest: None,
                    bytes: u.size,
                }),
            }
        }
    }

    // Empty repositories.
    if opts.prune_empty_repositories {
        let held_repos: HashSet<&str> = held
            .iter()
            .filter_map(|h| h.key.strip_prefix("repositories/"))
            .filter_map(|k| k.split("/_").next())
            .collect();
        for (i, r) in a.inventory.repos.iter().enumerate() {
            let revs: RoaringBitmap = r.revisions.iter().copied().collect();
            let live_left = (&revs & &marked.live_manifests[i]).len();
            let tags_left = (0..r.tags.len()).any(|ti| !state.removed_tags.contains(&(i, ti)));
            if !tags_left
                && live_left == 0
                && uploads_left[i] == 0
                && !held_repos.contains(r.name.as_str())
            {
                actions.push(Action {
                    kind: ActionKind::Repository,
                    key: format!("repositories/{}/", r.name),
                    repository: Some(r.name.clone()),
                    digest: None,
                    bytes: 0,
                });
            }
        }
    }

    actions.sort_by(|x, y| x.kind.cmp(&y.kind).then_with(|| x.key.cmp(&y.key)));
    let blocking = a
        .inventory
        .problems
        .iter()
        .filter(|p| p.blocks_sweep())
        .count();
    let summary = summarize(&actions, held.len(), blocking);
    Plan {
        format_version: PLAN_FORMAT_VERSION,
        storage: a.inventory.storage.clone(),
        mode,
        created_at: rfc3339(now),
        grace_seconds: opts.grace.as_secs(),
        upload_max_age_seconds: opts.upload_max_age.as_secs(),
        prune_empty_repositories: opts.prune_empty_repositories,
        summary,
        actions,
        held,
    }
}

/// The totals of `actions` (in execution order), with `held` entries kept
/// and `blocking` problems.
pub fn summarize(actions: &[Action], held: usize, blocking: usize) -> PlanSummary {
    let count = |k| actions.iter().filter(|x: &&Action| x.kind == k).count();
    PlanSummary {
        tags: count(ActionKind::Tag),
        tag_history: count(ActionKind::TagHistory),
        revisions: count(ActionKind::Revision),
        layer_links: count(ActionKind::LayerLink),
        uploads: count(ActionKind::Upload),
        blobs: count(ActionKind::Blob),
        repositories: count(ActionKind::Repository),
        bytes: crate::report::sum_bytes(actions.iter().map(|x| x.bytes)),
        held,
        blocking_problems: blocking,
    }
}

impl Plan {
    /// Recomputes the totals after the actions or held entries changed.
    pub fn resummarize(&mut self) {
        self.summary = summarize(
            &self.actions,
            self.held.len(),
            self.summary.blocking_problems,
        );
    }

    /// The settings this plan was made with.
    pub fn options(&self) -> PlanOptions {
        PlanOptions {
            grace: Duration::from_secs(self.grace_seconds),
            upload_max_age: Duration::from_secs(self.upload_max_age_seconds),
            prune_empty_repositories: self.prune_empty_repositories,
        }
    }

    /// Keeps only the actions that `fresh` (a plan from a new scan) also
    /// has, as `fresh` has them (its digests and sizes, not the saved
    /// ones), in this plan's order; returns the others, each with why the
    /// fresh plan does not make it.
    pub fn recheck(&mut self, fresh: &Plan) -> Vec<Dropped> {
        let now: HashMap<(ActionKind, &str), &Action> = fresh
            .actions
            .iter()
            .map(|x| ((x.kind, x.key.as_str()), x))
            .collect();
        let held: HashMap<(ActionKind, &str), &str> = fresh
            .held
            .iter()
            .map(|h| ((h.kind, h.key.as_str()), h.reason.as_str()))
            .collect();
        let mut dropped = Vec::new();
        for x in std::mem::take(&mut self.actions) {
            let k = (x.kind, x.key.as_str());
            match now.get(&k) {
                Some(f) => self.actions.push((*f).clone()),
                None => {
                    let reason = held.get(&k).map_or(
                        "a fresh scan does not remove it (referenced, pushed again, or gone since the plan)",
                        |r| r,
                    );
                    dropped.push(Dropped {
                        reason: reason.to_string(),
                        action: x,
                    });
                }
            }
        }
        dropped
    }

    /// The plan as text for people.
    pub fn to_text(&self) -> String {
        let s = &self.summary;
        let mut o = format!(
            "sweep plan for {} (mode: {}, grace {}):\n  remove {} tag history entries, {} revision links, {} layer links, {} uploads, {} blobs, {} empty repositories\n  reclaim {}\n  kept by grace or unknown age: {}\n",
            self.storage,
            self.mode,
            humantime::format_duration(Duration::from_secs(self.grace_seconds)),
            s.tag_history,
            s.revisions,
            s.layer_links,
            s.uploads,
            s.blobs,
            s.repositories,
            crate::report::human_bytes(s.bytes),
            s.held
        );
        if s.blocking_problems > 0 {
            o.push_str(&format!(
                "  {} problem(s) make reachability uncertain: --apply refuses unless --ignore-problems is given\n",
                s.blocking_problems
            ));
        }
        o
    }
}
