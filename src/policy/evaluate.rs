//! The pure decision: which tags and untagged manifests a [`Policy`]
//! removes, and why everything else stays. No I/O; semantics in the module
//! doc of [`crate::policy`].

use super::formats::{Plain, Vendor};
use super::in_use::{InUse, Listed};
use super::versions;
use super::{Decision, ManifestAction, ManifestView, Reason, RepoView, Rule, TagAction, TagView};
use crate::policy::Policy;
use crate::reach::TagRole;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

/// Decides every tag and untagged manifest of `repos` under `policy`.
/// `grace` protects untagged manifests pushed within it.
pub fn evaluate(policy: &Policy, repos: &[RepoView], now: SystemTime, grace: Duration) -> Decision {
    let mut d = Decision {
        untag_only: policy.vendor.as_deref().is_some_and(Vendor::untag_only),
        ..Decision::default()
    };
    for repo in repos {
        evaluate_repo(policy, repo, now, grace, &mut d);
    }
    d.tags_removed
        .sort_by(|a, b| (&a.repository, &a.tag).cmp(&(&b.repository, &b.tag)));
    d.tags_kept
        .sort_by(|a, b| (&a.repository, &a.tag).cmp(&(&b.repository, &b.tag)));
    d.untagged_removed
        .sort_by(|a, b| (&a.repository, &a.digest).cmp(&(&b.repository, &b.digest)));
    d.untagged_kept
        .sort_by(|a, b| (&a.repository, &a.digest).cmp(&(&b.repository, &b.digest)));
    d.pinned
        .sort_by(|a, b| (&a.repository, &a.digest).cmp(&(&b.repository, &b.digest)));
    d
}

/// The subject a follower tag's name gives: cosign's
/// `sha256-<64 hex>.sig|.att|.sbom` and the referrers tag schema's
/// `sha256-<64 hex>` (see [`TagRole`]).
pub fn signature_subject(tag: &str) -> Option<String> {
    TagRole::of_name(tag).and_then(|r| r.subject().map(str::to_string))
}

/// `now − d`, or `None` when that is before the epoch (nothing is older).
fn cutoff(now: SystemTime, d: Duration) -> Option<SystemTime> {
    now.checked_sub(d)
}

/// Strictly before the cutoff.
fn before(t: SystemTime, cut: Option<SystemTime>) -> bool {
    cut.is_some_and(|c| t < c)
}

/// What the repository's rules need, computed once.
struct Repo<'a> {
    rules: Vec<(usize, &'a Rule)>,
    manifests: HashMap<&'a str, &'a ManifestView>,
    tags_of: HashMap<&'a str, Vec<&'a TagView>>,
}

impl<'a> Repo<'a> {
    /// The subject a tag follows, by its [`TagRole`]: its manifest's
    /// `subject`, else the one a follower's name gives.
    fn tag_subject(&self, t: &TagView) -> Option<String> {
        let target_subject = self
            .manifests
            .get(t.digest.as_str())
            .and_then(|m| m.subject.as_deref());
        TagRole::of(&t.name, target_subject)
            .subject()
            .map(str::to_string)
    }

    /// The keep that rule `r` itself gives the tag by name.
    fn name_keep(&self, n: usize, r: &Rule, tag: &str) -> Option<Reason> {
        if let Some(p) = r.keep_tag.iter().find(|p| p.matches(tag)) {
            return Some(Reason::KeepTag {
                rule: n,
                regex: p.as_str().to_string(),
            });
        }
        (r.keep_latest && tag == "latest").then_some(Reason::KeepLatest { rule: n })
    }

    /// The keep any applicable rule gives the tag by name.
    fn any_name_keep(&self, tag: &str) -> Option<Reason> {
        self.rules
            .iter()
            .find_map(|&(n, r)| self.name_keep(n, r, tag))
    }

    /// Is the tag a candidate of rule `r` (matched, not a follower, not kept
    /// by the rule's own name keeps)?
    fn candidate(&self, n: usize, r: &Rule, t: &TagView, followers: &HashSet<&str>) -> bool {
        !followers.contains(t.name.as_str())
            && r.tag.as_ref().is_none_or(|p| p.matches(&t.name))
            && self.name_keep(n, r, &t.name).is_none()
    }
}

fn evaluate_repo(
    policy: &Policy,
    view: &RepoView,
    now: SystemTime,
    grace: Duration,
    d: &mut Decision,
) {
    let rules: Vec<(usize, &Rule)> = policy
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.repo.matches(&view.name))
        .map(|(i, r)| (i + 1, r))
        .collect();
    let mut repo = Repo {
        rules,
        manifests: view
            .manifests
            .iter()
            .map(|m| (m.digest.as_str(), m))
            .collect(),
        tags_of: HashMap::new(),
    };
    for t in &view.tags {
        repo.tags_of.entry(t.digest.as_str()).or_default().push(t);
    }
    let repo = repo;
    let name = &view.name;
    let tag_action = |t: &TagView, reason: Reason| TagAction {
        repository: name.clone(),
        tag: t.name.clone(),
        digest: t.digest.clone(),
        reason,
    };
    let manifest_action = |m: &ManifestView, reason: Reason| ManifestAction {
        repository: name.clone(),
        digest: m.digest.clone(),
        reason,
    };

    // Tags that follow a subject.
    let follower_subject: HashMap<&str, String> = view
        .tags
        .iter()
        .filter_map(|t| repo.tag_subject(t).map(|s| (t.name.as_str(), s)))
        .collect();
    let followers: HashSet<&str> = follower_subject.keys().copied().collect();

    // Plain tags and untagged manifests: the policy's own decision.
    let plain_tags: Vec<&TagView> = view
        .tags
        .iter()
        .filter(|t| !followers.contains(t.name.as_str()))
        .collect();
    let plain_untagged: Vec<&ManifestView> = view
        .manifests
        .iter()
        .filter(|m| !repo.tags_of.contains_key(m.digest.as_str()) && m.subject.is_none())
        .collect();
    let Verdicts {
        tags: mut tag_reasons,
        untagged: mut untagged_reasons,
        applies,
        keep_referrers,
    } = match &policy.vendor {
        None => regsweep_verdicts(
            &repo,
            view,
            &plain_tags,
            &plain_untagged,
            &followers,
            now,
            grace,
        ),
        Some(v) => vendor_verdicts(v, &repo, view, &plain_tags, &plain_untagged, now, grace),
    };

    // Images in use stay whatever the policy says.
    let in_use = in_use_here(&policy.in_use, view);
    for m in &view.manifests {
        if let Some(l) = in_use.get(m.digest.as_str()) {
            d.pinned.push(manifest_action(m, in_use_reason(l)));
        }
    }
    for (t, reason) in plain_tags.iter().zip(tag_reasons.iter_mut()) {
        if reason.removes() {
            if let Some(l) = in_use.get(t.digest.as_str()) {
                *reason = in_use_reason(l);
            }
        }
    }
    for (m, reason) in plain_untagged.iter().zip(untagged_reasons.iter_mut()) {
        if reason.removes() {
            if let Some(l) = in_use.get(m.digest.as_str()) {
                *reason = in_use_reason(l);
            }
        }
    }

    let mut removed_tags: HashSet<&str> = HashSet::new();
    for (t, reason) in plain_tags.iter().zip(tag_reasons) {
        if reason.removes() {
            removed_tags.insert(t.name.as_str());
            d.tags_removed.push(tag_action(t, reason));
        } else {
            d.tags_kept.push(tag_action(t, reason));
        }
    }
    let mut removed_untagged: HashSet<&str> = HashSet::new();
    for (m, reason) in plain_untagged.iter().zip(untagged_reasons) {
        if reason.removes() {
            removed_untagged.insert(m.digest.as_str());
            d.untagged_removed.push(manifest_action(m, reason));
        } else {
            d.untagged_kept.push(manifest_action(m, reason));
        }
    }
    let pending_tags: Vec<&TagView> = view
        .tags
        .iter()
        .filter(|t| followers.contains(t.name.as_str()))
        .collect();
    let pending_manifests: Vec<&ManifestView> = view
        .manifests
        .iter()
        .filter(|m| !repo.tags_of.contains_key(m.digest.as_str()) && m.subject.is_some())
        .collect();

    // Followers: decide those kept regardless of the subject, then let the
    // rest go with their subjects until nothing changes.
    let fixed = |subject: &str, name_keep: Option<Reason>| -> Option<Reason> {
        if !applies {
            return Some(Reason::NoRuleApplies);
        }
        if let Some(k) = name_keep {
            return Some(k);
        }
        match &keep_referrers {
            Some(KeepReferrers::Rule(rule)) => {
                return Some(Reason::KeepReferrers {
                    rule: *rule,
                    subject: subject.to_string(),
                })
            }
            Some(KeepReferrers::Vendor(by)) => {
                return Some(Reason::Retained {
                    by: format!("{by} (subject {subject})"),
                })
            }
            None => {}
        }
        let known = repo.manifests.contains_key(subject) || repo.tags_of.contains_key(subject);
        (!known).then(|| Reason::SubjectMissing {
            subject: subject.to_string(),
        })
    };
    let mut open_tags: Vec<(&TagView, &str)> = Vec::new();
    for t in pending_tags {
        let subject = follower_subject[t.name.as_str()].as_str();
        let keep = in_use
            .get(t.digest.as_str())
            .map(|l| in_use_reason(l))
            .or_else(|| repo.any_name_keep(&t.name));
        match fixed(subject, keep) {
            Some(reason) => d.tags_kept.push(tag_action(t, reason)),
            None => open_tags.push((t, subject)),
        }
    }
    let mut open_manifests: Vec<(&ManifestView, &str)> = Vec::new();
    for m in pending_manifests {
        let subject = m.subject.as_deref().unwrap_or_default();
        let keep = in_use.get(m.digest.as_str()).map(|l| in_use_reason(l));
        let reason = fixed(subject, keep).or_else(|| match m.pushed_at {
            None => Some(Reason::PushTimeUnknown),
            Some(p) if !before(p, cutoff(now, grace)) => Some(Reason::WithinGrace { pushed_at: p }),
            Some(_) => None,
        });
        match reason {
            Some(reason) => d.untagged_kept.push(manifest_action(m, reason)),
            None => open_manifests.push((m, subject)),
        }
    }
    loop {
        let goes =
            |s: &str, removed_tags: &HashSet<&str>, removed_untagged: &HashSet<&str>| match repo
                .tags_of
                .get(s)
            {
                Some(tags) => {
                    let otherwise = repo
                        .manifests
                        .get(s)
                        .is_some_and(|m| m.reached && m.subject.is_none());
                    !otherwise && tags.iter().all(|t| removed_tags.contains(t.name.as_str()))
                }
                None => removed_untagged.contains(s),
            };
        let mut changed = false;
        open_tags.retain(|&(t, s)| {
            let go = goes(s, &removed_tags, &removed_untagged);
            if go {
                removed_tags.insert(t.name.as_str());
                changed = true;
            }
            !go
        });
        open_manifests.retain(|&(m, s)| {
            let go = goes(s, &removed_tags, &removed_untagged);
            if go {
                removed_untagged.insert(m.digest.as_str());
                changed = true;
            }
            !go
        });
        if !changed {
            break;
        }
    }
    let open_tag_names: HashSet<&str> = open_tags.iter().map(|(t, _)| t.name.as_str()).collect();
    for t in view
        .tags
        .iter()
        .filter(|t| followers.contains(t.name.as_str()))
    {
        let subject = follower_subject[t.name.as_str()].clone();
        if removed_tags.contains(t.name.as_str()) {
            d.tags_removed
                .push(tag_action(t, Reason::FollowsSubject { subject }));
        } else if open_tag_names.contains(t.name.as_str()) {
            d.tags_kept
                .push(tag_action(t, Reason::SubjectStays { subject }));
        }
    }
    for (m, s) in open_manifests {
        d.untagged_kept.push(manifest_action(
            m,
            Reason::SubjectStays {
                subject: s.to_string(),
            },
        ));
    }
    for m in view.manifests.iter().filter(|m| m.subject.is_some()) {
        if removed_untagged.contains(m.digest.as_str())
            && !repo.tags_of.contains_key(m.digest.as_str())
        {
            let subject = m.subject.clone().unwrap_or_default();
            d.untagged_removed
                .push(manifest_action(m, Reason::FollowsSubject { subject }));
        }
    }
}

/// What a policy decided for the plain tags and untagged manifests of one
/// repository, in their order, and how it treats followers.
struct Verdicts {
    tags: Vec<Reason>,
    untagged: Vec<Reason>,
    /// False when no rule applies to the repository.
    applies: bool,
    /// What keeps followers whatever happens to their subjects.
    keep_referrers: Option<KeepReferrers>,
}

/// Who keeps followers regardless of their subjects.
enum KeepReferrers {
    /// A regsweep rule's `keep_referrers`.
    Rule(usize),
    /// A vendor policy, in its words (zot's `deleteReferrers: false`).
    Vendor(String),
}

/// The regsweep rules' verdicts.
fn regsweep_verdicts(
    repo: &Repo<'_>,
    view: &RepoView,
    plain_tags: &[&TagView],
    plain_untagged: &[&ManifestView],
    followers: &HashSet<&str>,
    now: SystemTime,
    grace: Duration,
) -> Verdicts {
    // keep_last and keep_versions: per rule, what each keeps.
    let mut kept_last: Vec<HashMap<&str, usize>> = Vec::with_capacity(repo.rules.len());
    let mut kept_versions: Vec<HashMap<&str, usize>> = Vec::with_capacity(repo.rules.len());
    for &(n, r) in &repo.rules {
        let mut kept = HashMap::new();
        let cands = || {
            view.tags
                .iter()
                .filter(move |t| repo.candidate(n, r, t, followers))
        };
        if let Some(k) = r.keep_last {
            let mut cands: Vec<&TagView> = cands().collect();
            // Newest first (unknown = oldest), ties by name descending.
            cands.sort_by(|a, b| {
                b.assigned_at
                    .cmp(&a.assigned_at)
                    .then_with(|| b.name.cmp(&a.name))
            });
            for t in cands {
                let rank = kept.len() + 1;
                if !kept.contains_key(t.digest.as_str()) {
                    if rank > k {
                        break;
                    }
                    kept.insert(t.digest.as_str(), rank);
                }
            }
        }
        kept_last.push(kept);
        let mut versions = versions::rank(cands().map(|t| t.name.as_str()), r.versions_per_major);
        if let Some(k) = r.keep_versions {
            versions.retain(|_, rank| *rank <= k);
        } else {
            versions.clear();
        }
        kept_versions.push(versions);
    }
    Verdicts {
        tags: plain_tags
            .iter()
            .map(|t| decide_tag(repo, &kept_last, &kept_versions, t, followers, now))
            .collect(),
        untagged: plain_untagged
            .iter()
            .map(|m| decide_untagged(repo, m, now, grace))
            .collect(),
        applies: !repo.rules.is_empty(),
        keep_referrers: repo
            .rules
            .iter()
            .find(|(_, r)| r.keep_referrers)
            .map(|&(n, _)| KeepReferrers::Rule(n)),
    }
}

/// A vendor policy's verdicts. Untagged manifests that are reached, of
/// unknown push time or within the grace period stay before the policy is
/// asked, whatever its format says.
fn vendor_verdicts(
    v: &Vendor,
    repo: &Repo<'_>,
    view: &RepoView,
    plain_tags: &[&TagView],
    plain_untagged: &[&ManifestView],
    now: SystemTime,
    grace: Duration,
) -> Verdicts {
    let mut untagged: Vec<Option<Reason>> = plain_untagged
        .iter()
        .map(|m| {
            if m.reached {
                return Some(Reason::Reached);
            }
            match m.pushed_at {
                None => Some(Reason::PushTimeUnknown),
                Some(p) if !before(p, cutoff(now, grace)) => {
                    Some(Reason::WithinGrace { pushed_at: p })
                }
                Some(_) => None,
            }
        })
        .collect();
    let open: Vec<&ManifestView> = plain_untagged
        .iter()
        .zip(&untagged)
        .filter(|(_, r)| r.is_none())
        .map(|(m, _)| *m)
        .collect();
    let plain = Plain {
        repo: &view.name,
        tags: plain_tags,
        untagged: &open,
        manifests: &repo.manifests,
    };
    let Some(said) = v.decide(&plain, now) else {
        return Verdicts {
            tags: vec![Reason::NoRuleApplies; plain_tags.len()],
            untagged: vec![Reason::NoRuleApplies; plain_untagged.len()],
            applies: false,
            keep_referrers: None,
        };
    };
    let mut said_untagged = said.untagged.into_iter();
    for r in untagged.iter_mut().filter(|r| r.is_none()) {
        *r = said_untagged.next();
    }
    Verdicts {
        tags: said.tags,
        untagged: untagged
            .into_iter()
            .map(|r| r.unwrap_or(Reason::UntaggedNotSelected))
            .collect(),
        applies: true,
        keep_referrers: v.keeps_referrers(&view.name).map(KeepReferrers::Vendor),
    }
}

/// The in-use listings that name manifests of this repository: digest →
/// listing (a listed tag counts for the digest it names now).
fn in_use_here<'a>(u: &'a InUse, view: &'a RepoView) -> HashMap<&'a str, &'a Listed> {
    let mut here = HashMap::new();
    if u.is_empty() {
        return here;
    }
    for t in &view.tags {
        if let Some(l) = u.tags.get(&(view.name.clone(), t.name.clone())) {
            here.entry(t.digest.as_str()).or_insert(l);
        }
    }
    for m in &view.manifests {
        if let Some(l) = u.digests.get(&(view.name.clone(), m.digest.clone())) {
            here.entry(m.digest.as_str()).or_insert(l);
        }
    }
    here
}

fn in_use_reason(l: &Listed) -> Reason {
    Reason::InUse {
        reference: l.reference.clone(),
        at: l.at.clone(),
    }
}

/// A plain (non-follower) tag.
fn decide_tag(
    repo: &Repo<'_>,
    kept_last: &[HashMap<&str, usize>],
    kept_versions: &[HashMap<&str, usize>],
    t: &TagView,
    followers: &HashSet<&str>,
    now: SystemTime,
) -> Reason {
    if repo.rules.is_empty() {
        return Reason::NoRuleApplies;
    }
    if let Some(k) = repo.any_name_keep(&t.name) {
        return k;
    }
    for (i, &(n, r)) in repo.rules.iter().enumerate() {
        if let Some(&rank) = kept_last[i].get(t.digest.as_str()) {
            if repo.candidate(n, r, t, followers) {
                return Reason::KeepLast { rule: n, rank };
            }
        }
        if let Some(&rank) = kept_versions[i].get(t.name.as_str()) {
            if repo.candidate(n, r, t, followers) {
                return Reason::KeepVersions { rule: n, rank };
            }
        }
    }
    let mut first_fail = None;
    for &(n, r) in &repo.rules {
        if !r.removes_tags() || !repo.candidate(n, r, t, followers) {
            continue;
        }
        let not_version = (r.keep_versions.is_some() && versions::parse(&t.name).is_none())
            .then_some(Reason::NotVersion { rule: n });
        let fail = not_version
            .or_else(|| age_fail(n, r, t.assigned_at, now))
            .or_else(|| {
                let m = repo.manifests.get(t.digest.as_str()).copied();
                use_fail(n, r, m, t.assigned_at, now, false)
            });
        match fail {
            None => return Reason::RemovedBy { rule: n },
            Some(f) => {
                first_fail.get_or_insert(f);
            }
        }
    }
    first_fail.unwrap_or(Reason::NotMatched)
}

/// Why `older_than` fails for time `at`, if it does.
fn age_fail(n: usize, r: &Rule, at: Option<SystemTime>, now: SystemTime) -> Option<Reason> {
    let d = r.older_than?;
    match at {
        None => Some(Reason::AgeUnknown { rule: n }),
        Some(a) if before(a, cutoff(now, d)) => None,
        Some(_) => Some(Reason::TooNew {
            rule: n,
            older_than: d,
        }),
    }
}

/// Why `not_pulled_for` fails, if it does: the newest known pull, push or
/// assignment is within the window. `untagged` names a recent pull by
/// digest as such.
fn use_fail(
    n: usize,
    r: &Rule,
    m: Option<&ManifestView>,
    assigned_at: Option<SystemTime>,
    now: SystemTime,
    untagged: bool,
) -> Option<Reason> {
    let d = r.not_pulled_for?;
    let cut = cutoff(now, d);
    let by_digest = m.and_then(|m| m.pulled_by_digest_at);
    let pulled = m.and_then(|m| m.last_pulled_at).max(by_digest);
    let pushed = m.and_then(|m| m.pushed_at).max(assigned_at);
    if pulled.is_none() && pushed.is_none() {
        return Some(Reason::UsageUnknown { rule: n });
    }
    let recent = |t: Option<SystemTime>| t.filter(|&t| !before(t, cut));
    if let Some(at) = recent(by_digest).filter(|_| untagged) {
        return Some(Reason::PulledByDigest { rule: n, at });
    }
    if let Some(at) = recent(pulled) {
        return Some(Reason::PulledRecently { rule: n, at });
    }
    recent(pushed).map(|at| Reason::PushedRecently { rule: n, at })
}

/// A plain untagged manifest (no tag, no subject).
fn decide_untagged(repo: &Repo<'_>, m: &ManifestView, now: SystemTime, grace: Duration) -> Reason {
    if repo.rules.is_empty() {
        return Reason::NoRuleApplies;
    }
    if !repo.rules.iter().any(|(_, r)| r.untagged) {
        return Reason::UntaggedNotSelected;
    }
    if m.reached {
        return Reason::Reached;
    }
    let Some(pushed) = m.pushed_at else {
        return Reason::PushTimeUnknown;
    };
    if !before(pushed, cutoff(now, grace)) {
        return Reason::WithinGrace { pushed_at: pushed };
    }
    let mut first_fail = None;
    for &(n, r) in repo.rules.iter().filter(|(_, r)| r.untagged) {
        match age_fail(n, r, Some(pushed), now).or_else(|| use_fail(n, r, Some(m), None, now, true))
        {
            None => return Reason::RemovedBy { rule: n },
            Some(f) => {
                first_fail.get_or_insert(f);
            }
        }
    }
    first_fail.unwrap_or(Reason::UntaggedNotSelected)
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
