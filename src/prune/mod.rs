//! Removing images on purpose: `delete` (references named on the command
//! line, see [`refs`]) and `prune` (a retention [`crate::policy`], fed by
//! [`views`]). Both come down to a [`Request`] — tags and manifests to
//! remove — which [`build`] turns into one sweep [`Plan`]:
//!
//! 1. tags assigned within the grace period (or at an unknown time) stay;
//! 2. the mark is re-run on the state after the removals: roots are the
//!    remaining tags and the untagged manifests that were there before and
//!    are not removed (a `prune` never collects an untagged manifest it was
//!    not asked to), so an index's children and a subject's referrers go
//!    with it unless something kept still needs them;
//! 3. a requested manifest that the re-run mark still finds live is
//!    refused: always when a remaining tag names it, and when a kept index
//!    references it unless `force` is given;
//! 4. the sweep plan of that state ([`crate::plan::build`], delete-untagged
//!    mode, without uploads) collects every revision link, layer link and
//!    blob that is left unreferenced, and the whole-tag removals go first.
//!
//! So the preview's `reclaimable_bytes` is the plan's blob bytes: exactly
//! what leaves storage when the plan is applied.

pub mod output;
pub mod refs;
pub mod views;

use crate::mark::{self, Mode, RepoRoots};
use crate::plan::names::{DigestId, Name};
use crate::plan::{self, Action, ActionKind, Held, Plan, PlanOptions};
use crate::times::LinkTimes;
use crate::Analysis;
use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime};

/// Version of the `delete` / `prune` plan format.
pub const FORMAT_VERSION: u32 = 1;

/// What to remove, by inventory position.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Tags: (repository index, tag index) → why.
    pub tags: BTreeMap<(usize, usize), String>,
    /// Manifests whose revision link goes, whatever else holds them:
    /// (repository index, manifest id) → why.
    pub manifests: BTreeMap<(usize, u32), String>,
    /// Repositories removed whole (their directory goes when nothing in
    /// them is left).
    pub repositories: Vec<usize>,
    /// Untag only: a manifest that loses its tags stays (untagged), with
    /// what it references, instead of going to the mark.
    pub untag_only: bool,
    /// Decisions to keep, reported with the plan: (repository, tag or
    /// `None` for an untagged manifest, digest, why).
    pub kept: Vec<Kept>,
    /// Manifests that stay roots of the mark whatever goes (images in
    /// use): (repository index, manifest id).
    pub pinned: std::collections::BTreeSet<(usize, u32)>,
}

/// Settings of [`build`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Nothing written more recently than this is removed.
    pub grace: Duration,
    /// Remove requested manifests even when a kept index references them.
    pub force: bool,
    /// The time the grace period counts back from.
    pub now: SystemTime,
    /// `delete` or `prune`.
    pub command: String,
}

/// A tag the plan removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRemoved {
    /// Repository name.
    pub repository: String,
    /// Tag name.
    pub tag: String,
    /// The digest it names (it is removed only while it still does).
    pub digest: String,
    /// Why.
    pub reason: String,
}

/// A manifest whose revision link the plan removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRemoved {
    /// Repository name.
    pub repository: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// True when it was asked for (named, or chosen by a rule); false when
    /// the mark collects it because nothing kept needs it any more.
    pub requested: bool,
    /// Why.
    pub reason: String,
}

/// Something that stays, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// Repository name.
    pub repository: String,
    /// The tag, or `None` for an untagged manifest.
    pub tag: Option<String>,
    /// The digest.
    pub digest: String,
    /// Why.
    pub reason: String,
}

/// A requested manifest that is not removed because something kept needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    /// Repository name.
    pub repository: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// What still needs it.
    pub reason: String,
}

/// Totals of a [`PrunePlan`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Tags removed.
    pub tags_removed: usize,
    /// Manifests (revision links) removed.
    pub manifests_removed: usize,
    /// Blobs removed.
    pub blobs_removed: usize,
    /// Bytes that leave storage: the removed blobs' stored sizes.
    pub reclaimable_bytes: u64,
    /// Layer links removed.
    pub layer_links_removed: usize,
    /// Tags and untagged manifests kept (with a reason in `kept`).
    pub kept: usize,
    /// Requested manifests refused.
    pub refused: usize,
    /// Entries the grace period keeps.
    pub held: usize,
    /// Problems that make reachability uncertain (`--apply` refuses).
    pub blocking_problems: usize,
}

/// The preview of `delete` and `prune`, which is also the plan `--apply`
/// carries out (`--plan FILE` saves it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrunePlan {
    /// Version of this format.
    pub format_version: u32,
    /// `delete` or `prune`.
    pub command: String,
    /// The storage it was made for.
    pub storage: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// Grace period, seconds.
    pub grace_seconds: u64,
    /// Whether requested manifests a kept index needs are removed anyway.
    pub force: bool,
    /// `delete --untag-only`: manifests that lose their tags stay.
    #[serde(default)]
    pub untag_only: bool,
    /// Tags removed, sorted by (repository, tag).
    pub tags_removed: Vec<TagRemoved>,
    /// Revision links removed, sorted by (repository, digest).
    pub manifests_removed: Vec<ManifestRemoved>,
    /// What stays, and why, sorted.
    pub kept: Vec<Kept>,
    /// Requested manifests that stay because something kept needs them.
    pub refused: Vec<Refused>,
    /// Repositories removed whole.
    pub repositories_removed: Vec<String>,
    /// Totals.
    pub summary: Summary,
    /// The sweep plan: every removal, in execution order.
    pub plan: Plan,
}

fn digest_str(a: &Analysis, id: u32) -> String {
    a.inventory.interner.digest(id).to_string()
}

fn tag_key(repo: &str, tag: &str) -> String {
    format!("repositories/{repo}/_manifests/tags/{tag}/")
}

/// What still makes manifest `id` of repository `ri` live: a live manifest
/// that lists it as a child, if any.
fn needed_by(a: &Analysis, marked: &mark::Marked, ri: usize, id: u32) -> String {
    match crate::reach::live::index_holding(&marked.live_manifests[ri], &a.graph.nodes, id) {
        Some(m) => format!("the kept index {} references it", digest_str(a, m)),
        None => "a kept manifest still needs it".into(),
    }
}

/// The mark's roots after the removals. `before` are the manifests the
/// delete-untagged mark found garbage before any removal (untagged and
/// unreached): they stay roots unless removed.
fn roots_after(
    a: &Analysis,
    removed_tags: &HashSet<(usize, usize)>,
    removed: &HashMap<usize, RoaringBitmap>,
    before: &[RoaringBitmap],
    untag_only: bool,
    pinned: &std::collections::BTreeSet<(usize, u32)>,
) -> Vec<RepoRoots> {
    a.inventory
        .repos
        .iter()
        .enumerate()
        .map(|(ri, r)| {
            let gone = removed.get(&ri);
            let is_gone = |id: u32| gone.is_some_and(|g| g.contains(id));
            let mut targets: Vec<u32> = r
                .tags
                .iter()
                .enumerate()
                .filter(|(ti, _)| untag_only || !removed_tags.contains(&(ri, *ti)))
                .filter_map(|(_, t)| t.current)
                .collect();
            targets.extend(before[ri].iter().filter(|&id| !is_gone(id)));
            targets.extend(
                pinned
                    .range((ri, 0)..=(ri, u32::MAX))
                    .map(|&(_, id)| id)
                    .filter(|&id| !is_gone(id)),
            );
            RepoRoots {
                revisions: r
                    .revisions
                    .iter()
                    .copied()
                    .filter(|&id| !is_gone(id))
                    .collect(),
                tag_targets: targets,
            }
        })
        .collect()
}

/// The registry after a request, decided on an analysis it does not
/// change: the tags and manifests that go, the roots and mark of what is
/// left, and what stays although asked for. [`build`] turns it into the plan.
#[derive(Debug)]
pub struct After {
    /// Tags removed whole: (repository index, tag index).
    pub removed_tags: HashSet<(usize, usize)>,
    tags_removed: Vec<TagRemoved>,
    /// Requested manifests that go, by repository.
    requested: HashMap<usize, RoaringBitmap>,
    why_of: HashMap<(usize, u32), String>,
    kept: Vec<Kept>,
    held: Vec<Held>,
    refused: Vec<Refused>,
    /// The mark's roots after the removals.
    pub roots: Vec<RepoRoots>,
    /// Their mark: what is live after the removals.
    pub marked: mark::Marked,
}

/// Decides `req` on `a` (a delete-untagged analysis of the storage, with
/// `times` read from it): steps 1–3 above, as a change of roots.
pub fn decide(a: &Analysis, times: &LinkTimes, req: &Request, opts: &Options) -> After {
    let cutoff = opts.now.checked_sub(opts.grace);
    let young = |t: Option<SystemTime>| match (t, cutoff) {
        (None, _) => true,
        (Some(t), Some(c)) => t > c,
        (Some(_), None) => true,
    };
    let mut kept = req.kept.clone();
    let mut held: Vec<Held> = Vec::new();

    // 1. Tags: the grace period first (a tag just pushed stays, and so
    //    does what it names).
    let mut removed_tags: HashSet<(usize, usize)> = HashSet::new();
    let mut tags_removed = Vec::new();
    for (&(ri, ti), why) in &req.tags {
        let r = &a.inventory.repos[ri];
        let t = &r.tags[ti];
        let Some(cur) = t.current else { continue };
        let at = times
            .repos
            .get(ri)
            .and_then(|rt| rt.tags.get(ti).copied().flatten());
        if young(at) {
            let reason = match at {
                Some(at) => format!(
                    "assigned {} (within the grace period)",
                    crate::report::rfc3339(at)
                ),
                None => "assignment time unknown".into(),
            };
            kept.push(Kept {
                repository: r.name.clone(),
                tag: Some(t.name.clone()),
                digest: digest_str(a, cur),
                reason: reason.clone(),
            });
            held.push(Held {
                kind: ActionKind::Tag,
                key: tag_key(&r.name, &t.name),
                reason,
            });
            continue;
        }
        removed_tags.insert((ri, ti));
        tags_removed.push(TagRemoved {
            repository: r.name.clone(),
            tag: t.name.clone(),
            digest: digest_str(a, cur),
            reason: why.clone(),
        });
    }

    // 2. Requested manifests: young revision links stay.
    let mut requested: HashMap<usize, RoaringBitmap> = HashMap::new();
    let mut why_of: HashMap<(usize, u32), &str> = HashMap::new();
    for (&(ri, id), why) in &req.manifests {
        let r = &a.inventory.repos[ri];
        if r.revisions.binary_search(&id).is_err() {
            continue; // no revision link: only its tags go
        }
        let pushed = times
            .repos
            .get(ri)
            .and_then(|rt| rt.revisions.get(&id).copied());
        if young(pushed) {
            let reason = match pushed {
                Some(t) => format!(
                    "pushed {} (within the grace period)",
                    crate::report::rfc3339(t)
                ),
                None => "push time unknown".into(),
            };
            kept.push(Kept {
                repository: r.name.clone(),
                tag: None,
                digest: digest_str(a, id),
                reason,
            });
            continue;
        }
        requested.entry(ri).or_default().insert(id);
        why_of.insert((ri, id), why.as_str());
    }

    // 3. A manifest a remaining tag names stays, even with --force (which
    //    overrides only the indexes that reference it): removing its
    //    revision would leave the tag naming nothing.
    let mut refused = Vec::new();
    for (&ri, ids) in requested.iter_mut() {
        let r = &a.inventory.repos[ri];
        for (ti, t) in r.tags.iter().enumerate() {
            let Some(cur) = t.current else { continue };
            if removed_tags.contains(&(ri, ti)) || !ids.contains(cur) {
                continue;
            }
            ids.remove(cur);
            refused.push(Refused {
                repository: r.name.clone(),
                digest: digest_str(a, cur),
                reason: format!("the kept tag {} names it", t.name),
            });
        }
    }

    //    Re-mark the state after the removals; refuse what is still needed.
    let before = a.marked.garbage_manifests(&a.roots);
    let (roots, marked) = loop {
        let roots = roots_after(
            a,
            &removed_tags,
            &requested,
            &before,
            req.untag_only,
            &req.pinned,
        );
        let marked = mark::mark(&roots, &a.graph.nodes, Mode::DeleteUntagged);
        if opts.force {
            break (roots, marked);
        }
        let mut still: Vec<(usize, u32)> = Vec::new();
        for (&ri, ids) in &requested {
            for id in ids {
                if marked.live_manifests[ri].contains(id) {
                    still.push((ri, id));
                }
            }
        }
        if still.is_empty() {
            break (roots, marked);
        }
        for (ri, id) in still {
            refused.push(Refused {
                repository: a.inventory.repos[ri].name.clone(),
                digest: digest_str(a, id),
                reason: needed_by(a, &marked, ri, id),
            });
            if let Some(s) = requested.get_mut(&ri) {
                s.remove(id);
            }
        }
    };

    After {
        removed_tags,
        tags_removed,
        requested,
        why_of: why_of
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect(),
        kept,
        held,
        refused,
        roots,
        marked,
    }
}

impl After {
    /// The blobs that are garbage after the removals: the ones whose sizes
    /// and ages [`build`] needs (`scan::fill_blob_stats`).
    pub fn garbage_blobs(&self, a: &Analysis) -> RoaringBitmap {
        a.inventory.stored_blobs() - &self.marked.blobs
    }
}

/// Builds the plan of `after` (see [`decide`]) on `a`, which holds the
/// sizes and ages of [`After::garbage_blobs`]: step 4 above.
pub fn build(
    storage: &dyn crate::storage::Storage,
    a: &Analysis,
    times: &LinkTimes,
    after: After,
    req: &Request,
    opts: &Options,
) -> PrunePlan {
    let After {
        removed_tags,
        mut tags_removed,
        requested,
        why_of,
        mut kept,
        held,
        mut refused,
        roots,
        marked,
    } = after;
    let mut tag_actions = Vec::new();
    for &(ri, ti) in &removed_tags {
        let r = &a.inventory.repos[ri];
        let t = &r.tags[ti];
        tag_actions.push(Action::tag(
            Name::of(&r.name),
            Name::of(&t.name),
            t.current
                .map(|c| DigestId::of(&a.inventory.interner.digest(c))),
        ));
    }
    let state = plan::State {
        roots: &roots,
        marked: &marked,
        removed_tags: &removed_tags,
        times: Some(times),
    };
    let mut plan = plan::build_on(
        storage,
        a,
        state,
        Mode::DeleteUntagged,
        &PlanOptions {
            grace: opts.grace,
            upload_max_age: Duration::MAX,
            prune_empty_repositories: false,
        },
        opts.now,
    );
    // Uploads are `sweep`'s business.
    plan.actions.retain(|x| x.kind != ActionKind::Upload);
    plan.held.retain(|h| h.kind != ActionKind::Upload);
    plan.actions.extend(tag_actions);
    plan.held.extend(held);

    // 5. Requested revision links (the mark no longer counts them).
    let mut manifests_removed = Vec::new();
    let mut named: HashSet<Action> = HashSet::new();
    for (&ri, ids) in &requested {
        let name = &a.inventory.repos[ri].name;
        let rn = Name::of(name);
        for id in ids {
            let Some(hex) = a.inventory.interner.sha256(id) else {
                continue;
            };
            let x = Action::revision(rn, DigestId::sha256(hex));
            plan.actions.push(x);
            named.insert(x);
            let why = why_of.get(&(ri, id)).map_or("requested", String::as_str);
            let why = if marked.live_manifests[ri].contains(id) {
                format!("{why}; forced although {}", needed_by(a, &marked, ri, id))
            } else {
                why.to_string()
            };
            manifests_removed.push(ManifestRemoved {
                repository: name.clone(),
                digest: digest_str(a, id),
                requested: true,
                reason: why,
            });
        }
    }
    {
        let t = plan::names::Tables::read();
        for x in &plan.actions {
            if x.kind != ActionKind::Revision || named.contains(x) {
                continue;
            }
            let (Some(r), Some(d)) = (x.repository_name(), x.digest_id()) else {
                continue;
            };
            manifests_removed.push(ManifestRemoved {
                repository: t.name(r).to_string(),
                digest: t.digest(d).to_string(),
                requested: false,
                reason: "nothing kept needs it any more".into(),
            });
        }
    }
    drop(named);

    // 6. Whole repositories: their directory goes when nothing is left.
    let mut repositories_removed = Vec::new();
    let revisions_removed: HashSet<Action> = plan
        .actions
        .iter()
        .filter(|x| x.kind == ActionKind::Revision)
        .map(Action::identity)
        .collect();
    for &ri in &req.repositories {
        let r = &a.inventory.repos[ri];
        let rn = Name::of(&r.name);
        let prefix = format!("repositories/{}/", r.name);
        let revs_gone = r.revisions.iter().all(|&id| {
            a.inventory.interner.sha256(id).is_some_and(|hex| {
                revisions_removed.contains(&Action::revision(rn, DigestId::sha256(hex)))
            })
        });
        let held_here = plan.held.iter().any(|h| h.key.starts_with(&prefix));
        let tags_gone = (0..r.tags.len()).all(|ti| removed_tags.contains(&(ri, ti)));
        if tags_gone && revs_gone && !held_here && r.uploads.is_empty() {
            plan.actions.push(Action::repository_dir(rn));
            repositories_removed.push(r.name.clone());
        }
    }

    plan::sort(&mut plan.actions);
    tags_removed.sort_by(|x, y| (&x.repository, &x.tag).cmp(&(&y.repository, &y.tag)));
    manifests_removed.sort_by(|x, y| (&x.repository, &x.digest).cmp(&(&y.repository, &y.digest)));
    kept.sort_by(|x, y| {
        (&x.repository, &x.tag, &x.digest).cmp(&(&y.repository, &y.tag, &y.digest))
    });
    refused.sort_by(|x, y| (&x.repository, &x.digest).cmp(&(&y.repository, &y.digest)));
    let mut p = PrunePlan {
        format_version: FORMAT_VERSION,
        command: opts.command.clone(),
        storage: a.inventory.storage.clone(),
        created_at: crate::report::rfc3339(opts.now),
        grace_seconds: opts.grace.as_secs(),
        force: opts.force,
        untag_only: req.untag_only,
        tags_removed,
        manifests_removed,
        kept,
        refused,
        repositories_removed,
        summary: Summary::default(),
        plan,
    };
    p.resummarize();
    p
}

impl PrunePlan {
    /// Recomputes the totals, and the lists of tags, manifests and
    /// repositories removed, after the sweep plan's actions changed (a saved
    /// plan re-checked against a fresh one).
    pub fn resummarize(&mut self) {
        self.plan.resummarize();
        // The tags, revisions and repositories the actions still remove.
        let actions: HashSet<Action> = self
            .plan
            .actions
            .iter()
            .filter(|x| x.kind != ActionKind::LayerLink && x.kind != ActionKind::Blob)
            .map(Action::identity)
            .collect();
        self.tags_removed.retain(|t| {
            actions.contains(&Action::tag(
                Name::of(&t.repository),
                Name::of(&t.tag),
                None,
            ))
        });
        self.manifests_removed.retain(|m| {
            crate::digest::Digest::parse(&m.digest).is_ok_and(|d| {
                matches!(d, crate::digest::Digest::Sha256(_))
                    && actions
                        .contains(&Action::revision(Name::of(&m.repository), DigestId::of(&d)))
            })
        });
        self.repositories_removed
            .retain(|r| actions.contains(&Action::repository_dir(Name::of(r))));
        drop(actions);
        let s = &self.plan.summary;
        self.summary = Summary {
            tags_removed: s.tags,
            manifests_removed: s.revisions,
            blobs_removed: s.blobs,
            reclaimable_bytes: s.bytes,
            layer_links_removed: s.layer_links,
            kept: self.kept.len(),
            refused: self.refused.len(),
            held: s.held,
            blocking_problems: s.blocking_problems,
        };
    }
}
