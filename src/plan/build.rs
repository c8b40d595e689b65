//! Building a plan from an analysis: what the mark leaves unreachable,
//! each link and blob checked against the grace period (and against the
//! storage: a link gone since the scan is nothing to remove).

use super::names::{DigestId, Name, Tables};
use super::{summarize, Action, ActionKind, Held, Plan, PlanOptions, PLAN_FORMAT_VERSION};
use crate::mark::{self, Mode};
use crate::report::rfc3339;
use crate::storage::{Storage, StorageExt};
use crate::times::LinkTimes;
use crate::Analysis;
use roaring::RoaringBitmap;
use std::collections::HashSet;
use std::time::SystemTime;

/// The plan's ids of the analysis' digests, each interned once.
struct DigestIds<'a> {
    a: &'a Analysis,
    ids: Vec<Option<DigestId>>,
}

impl<'a> DigestIds<'a> {
    fn new(a: &'a Analysis) -> Self {
        DigestIds {
            a,
            ids: vec![None; a.inventory.interner.len()],
        }
    }

    /// The plan's id of the analysis' digest `id`.
    fn get(&mut self, id: u32) -> DigestId {
        let interner = &self.a.inventory.interner;
        *self.ids[id as usize].get_or_insert_with(|| match interner.sha256(id) {
            Some(b) => DigestId::sha256(b),
            None => DigestId::of(&interner.digest(id)),
        })
    }
}

/// When the revision link of manifest `id` in repository `i` was written,
/// as the scan saw it: from `times` when given, else from the inventory.
fn scan_time(a: &Analysis, times: Option<&LinkTimes>, i: usize, id: u32) -> Option<SystemTime> {
    match times {
        Some(t) => t.repos.get(i)?.revisions.get(&id).copied(),
        None => {
            let rt = &a.inventory.repos[i].revision_times;
            let k = rt.binary_search_by_key(&id, |&(x, _)| x).ok()?;
            Some(rt[k].1)
        }
    }
}

/// Links stat'ed per batch (bounds the memory of their file names).
const LINK_CHUNK: usize = 8192;

/// Modification times of the `link` files of `actions` (a missing file
/// gives `None`), stat'ed in concurrent chunks so that only one chunk's
/// file names exist at a time.
fn link_times(storage: &dyn Storage, actions: &[Action]) -> Vec<Option<SystemTime>> {
    use rayon::prelude::*;
    let mut out = Vec::with_capacity(actions.len());
    for chunk in actions.chunks(LINK_CHUNK) {
        // Each piece's names under one read lock, taken on the thread that
        // writes them (this thread holds none while it waits).
        let files: Vec<String> = chunk
            .par_chunks(512)
            .flat_map_iter(|piece| {
                let t = Tables::read();
                piece
                    .iter()
                    .map(|x| {
                        let mut k = x.key_in(&t);
                        k.push_str("link");
                        k
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        out.extend(storage.stat_many(&files).into_iter().map(|r| {
            r.ok()
                .and_then(|m| m.modified.or(Some(SystemTime::UNIX_EPOCH)))
        }));
    }
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
    /// Link times read after the scan (which then took the revision link
    /// times out of the inventory); `None`: the inventory's.
    pub times: Option<&'a LinkTimes>,
}

impl<'a> State<'a> {
    /// The analysis as it was scanned: nothing removed.
    pub fn of(a: &'a Analysis, none: &'a HashSet<(usize, usize)>) -> State<'a> {
        State {
            roots: &a.roots,
            marked: &a.marked,
            removed_tags: none,
            times: None,
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
    let repo_names: Vec<Name> = a
        .inventory
        .repos
        .iter()
        .map(|r| Name::of(&r.name))
        .collect();
    let mut ids = DigestIds::new(a);
    let mut held = Vec::new();
    let mut actions = Vec::new();

    // Revision links: young ones become roots.
    let mut remarked: Option<mark::Marked> = None;
    if mode == Mode::DeleteUntagged {
        let garbage = state.marked.garbage_manifests(state.roots);
        // Times the scan read; the links it has none for are stat'ed (a
        // link gone since then is nothing to remove).
        let mut cands: Vec<((usize, u32), Option<SystemTime>)> = Vec::new();
        let mut unknown: Vec<usize> = Vec::new();
        let mut links: Vec<Action> = Vec::new();
        for (i, g) in garbage.iter().enumerate() {
            for id in g {
                let t = scan_time(a, state.times, i, id);
                if t.is_none() {
                    unknown.push(cands.len());
                    links.push(Action::revision(repo_names[i], ids.get(id)));
                }
                cands.push(((i, id), t));
            }
        }
        for (k, t) in unknown.into_iter().zip(link_times(storage, &links)) {
            cands[k].1 = t;
        }
        let mut young: Vec<(usize, u32)> = Vec::new();
        let mut gone: HashSet<(usize, u32)> = HashSet::new();
        for (c, t) in cands {
            if t.is_none() {
                // The link vanished since the scan: nothing to remove.
                gone.insert(c);
            } else if recent(t) {
                held.push(Held {
                    kind: ActionKind::Revision,
                    key: Action::revision(repo_names[c.0], ids.get(c.1)).key(),
                    reason: "revision link is younger than the grace period; kept, with everything it references".into(),
                });
                young.push(c);
            }
        }
        drop(links);
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
                if !gone.contains(&(i, id)) {
                    actions.push(Action::revision(repo_names[i], ids.get(id)));
                }
            }
        }
    }

    let marked = remarked.as_ref().unwrap_or(state.marked);

    // Blobs.
    let garbage = a.inventory.stored_blobs() - &marked.blobs;
    actions.reserve(garbage.len() as usize);
    let mut deleted_blobs = RoaringBitmap::new();
    for id in &garbage {
        let b = &a.inventory.blobs[id as usize];
        let x = Action::blob(ids.get(id), b.size);
        if recent(b.modified()) {
            held.push(Held {
                kind: ActionKind::Blob,
                key: x.key(),
                reason: "blob is younger than the grace period".into(),
            });
            continue;
        }
        deleted_blobs.insert(id);
        actions.push(x);
    }

    // Tag history entries and layer links: candidates, appended and then
    // checked against the grace period a chunk at a time (only one chunk's
    // times and file names exist at once).
    let upper: usize = a
        .inventory
        .repos
        .iter()
        .map(|r| r.layers.len() + r.aliases.len())
        .sum();
    actions.reserve(upper);
    let check = |actions: &mut Vec<Action>, from: usize, held: &mut Vec<Held>| {
        let times = link_times(storage, &actions[from..]);
        let mut kept = from;
        for (k, t) in (from..actions.len()).zip(times) {
            let c = actions[k];
            match t {
                None => {} // gone since the scan
                Some(t) if recent(Some(t)) => held.push(Held {
                    kind: c.kind,
                    key: c.key(),
                    reason: "link is younger than the grace period".into(),
                }),
                Some(_) => {
                    actions[kept] = c;
                    kept += 1;
                }
            }
        }
        actions.truncate(kept);
    };
    let mut unchecked = actions.len();
    for (i, r) in a.inventory.repos.iter().enumerate() {
        let rn = repo_names[i];
        let live = &marked.live_manifests[i];
        for (ti, t) in r.tags.iter().enumerate() {
            if state.removed_tags.contains(&(i, ti)) {
                continue;
            }
            let mut tn = None;
            for &id in &t.history {
                if !live.contains(id) && a.inventory.interner.sha256(id).is_some() {
                    let tn = *tn.get_or_insert_with(|| Name::of(&t.name));
                    actions.push(Action::tag_history(rn, tn, ids.get(id)));
                }
            }
        }
        let refs = &marked.repo_refs[i];
        for &id in &r.layers {
            if deleted_blobs.contains(id) || !refs.contains(id) {
                actions.push(Action::layer_link(rn, ids.get(id)));
            }
        }
        // Alias links (`_layers/sha512/<hex>/`) go with their blob, or when
        // no live manifest of the repository references the alias.
        for &(alias, blob) in &r.aliases {
            if deleted_blobs.contains(blob) || !refs.contains(alias) {
                actions.push(Action::layer_link(rn, ids.get(alias)));
            }
        }
        if actions.len() - unchecked >= LINK_CHUNK {
            check(&mut actions, unchecked, &mut held);
            unchecked = actions.len();
        }
    }
    check(&mut actions, unchecked, &mut held);

    // Uploads.
    let upload_cutoff = now
        .checked_sub(opts.upload_max_age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut uploads_left: Vec<usize> = vec![0; a.inventory.repos.len()];
    for (i, r) in a.inventory.repos.iter().enumerate() {
        for u in &r.uploads {
            let x = Action::upload(repo_names[i], Name::of(&u.id), u.size);
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
                        key: x.key(),
                        reason,
                    });
                }
                None => actions.push(x),
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
                actions.push(Action::repository_dir(repo_names[i]));
            }
        }
    }

    super::sort(&mut actions);
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
