//! The pure decision: which tags and untagged manifests a [`Policy`]
//! removes, and why everything else stays. No I/O; semantics in the module
//! doc of [`crate::policy`].

use super::{Decision, ManifestAction, ManifestView, Reason, RepoView, Rule, TagAction, TagView};
use crate::policy::Policy;
use crate::reach::TagRole;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

/// Decides every tag and untagged manifest of `repos` under `policy`.
/// `grace` protects untagged manifests pushed within it.
pub fn evaluate(policy: &Policy, repos: &[RepoView], now: SystemTime, grace: Duration) -> Decision {
    let mut d = Decision::default();
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

    // keep_last: per rule, the rank of each kept digest.
    let mut kept_last: Vec<HashMap<&str, usize>> = Vec::with_capacity(repo.rules.len());
    for &(n, r) in &repo.rules {
        let mut kept = HashMap::new();
        if let Some(k) = r.keep_last {
            let mut cands: Vec<&TagView> = view
                .tags
                .iter()
                .filter(|t| repo.candidate(n, r, t, &followers))
                .collect();
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
    }

    // Plain tags.
    let mut removed_tags: HashSet<&str> = HashSet::new();
    let mut pending_tags: Vec<&TagView> = Vec::new();
    for t in &view.tags {
        if followers.contains(t.name.as_str()) {
            pending_tags.push(t);
            continue;
        }
        let reason = decide_tag(&repo, &kept_last, t, &followers, now);
        if reason.removes() {
            removed_tags.insert(t.name.as_str());
            d.tags_removed.push(tag_action(t, reason));
        } else {
            d.tags_kept.push(tag_action(t, reason));
        }
    }

    // Plain untagged manifests.
    let mut removed_untagged: HashSet<&str> = HashSet::new();
    let mut pending_manifests: Vec<&ManifestView> = Vec::new();
    for m in &view.manifests {
        if repo.tags_of.contains_key(m.digest.as_str()) {
            continue;
        }
        if m.subject.is_some() {
            pending_manifests.push(m);
            continue;
        }
        let reason = decide_untagged(&repo, m, now, grace);
        if reason.removes() {
            removed_untagged.insert(m.digest.as_str());
            d.untagged_removed.push(manifest_action(m, reason));
        } else {
            d.untagged_kept.push(manifest_action(m, reason));
        }
    }

    // Followers: decide those kept regardless of the subject, then let the
    // rest go with their subjects until nothing changes.
    let keep_referrers = repo
        .rules
        .iter()
        .find(|(_, r)| r.keep_referrers)
        .map(|&(n, _)| n);
    let fixed = |subject: &str, name_keep: Option<Reason>| -> Option<Reason> {
        if repo.rules.is_empty() {
            return Some(Reason::NoRuleApplies);
        }
        if let Some(k) = name_keep {
            return Some(k);
        }
        if let Some(rule) = keep_referrers {
            return Some(Reason::KeepReferrers {
                rule,
                subject: subject.to_string(),
            });
        }
        let known = repo.manifests.contains_key(subject) || repo.tags_of.contains_key(subject);
        (!known).then(|| Reason::SubjectMissing {
            subject: subject.to_string(),
        })
    };
    let mut open_tags: Vec<(&TagView, &str)> = Vec::new();
    for t in pending_tags {
        let subject = follower_subject[t.name.as_str()].as_str();
        match fixed(subject, repo.any_name_keep(&t.name)) {
            Some(reason) => d.tags_kept.push(tag_action(t, reason)),
            None => open_tags.push((t, subject)),
        }
    }
    let mut open_manifests: Vec<(&ManifestView, &str)> = Vec::new();
    for m in pending_manifests {
        let subject = m.subject.as_deref().unwrap_or_default();
        let reason = fixed(subject, None).or_else(|| match m.pushed_at {
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

/// A plain (non-follower) tag.
fn decide_tag(
    repo: &Repo<'_>,
    kept_last: &[HashMap<&str, usize>],
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
    }
    let mut first_fail = None;
    for &(n, r) in &repo.rules {
        if !r.removes_tags() || !repo.candidate(n, r, t, followers) {
            continue;
        }
        let fail = age_fail(n, r, t.assigned_at, now).or_else(|| {
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
