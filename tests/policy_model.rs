//! The retention engine against a small obvious model: random repositories
//! (tags, digests, push/pull/assignment times, referrers, signatures) and
//! random rule sets; `evaluate` must remove exactly what the model removes,
//! decide every tag and untagged manifest once, and keep its invariants
//! (keep_tag never removed, keep_last keeps enough, a second run on the
//! state after the removals removes nothing when no age/pull criterion is
//! given). The model is written from the semantics in `src/policy/mod.rs`
//! with sets and loops and shares no code with the engine; its patterns are
//! hand-written predicates, not regexes.

use proptest::prelude::*;
use regsweep::policy::{evaluate, ManifestView, Policy, RepoView, TagView};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

const DAY: u64 = 86400;
const GRACE_DAYS: u64 = 1;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1000 * DAY)
}

fn ago(days: u64) -> SystemTime {
    now() - Duration::from_secs(days * DAY)
}

fn hex(i: u8) -> String {
    format!("{i:064x}")
}

fn dg(i: u8) -> String {
    format!("sha256:{}", hex(i))
}

/// A pattern as written in the policy, and what it means.
#[derive(Debug, Clone, Copy)]
struct Pat {
    src: &'static str,
    test: fn(&str) -> bool,
}

const REPO_PATS: [Pat; 4] = [
    Pat {
        src: ".*",
        test: |_| true,
    },
    Pat {
        src: "app",
        test: |s| s == "app",
    },
    Pat {
        src: "team/.*",
        test: |s| s.starts_with("team/"),
    },
    Pat {
        src: "team/a|app",
        test: |s| s == "team/a" || s == "app",
    },
];

const TAG_PATS: [Pat; 4] = [
    Pat {
        src: "v.*",
        test: |s| s.starts_with('v'),
    },
    Pat {
        src: "pr-.*",
        test: |s| s.starts_with("pr-"),
    },
    Pat {
        src: "v1",
        test: |s| s == "v1",
    },
    Pat {
        src: "latest|dev",
        test: |s| s == "latest" || s == "dev",
    },
];

const KEEP_PATS: [Pat; 4] = [
    Pat {
        src: "v1",
        test: |s| s == "v1",
    },
    Pat {
        src: "release-.*",
        test: |s| s.starts_with("release-"),
    },
    Pat {
        src: "dev",
        test: |s| s == "dev",
    },
    Pat {
        src: "sha256-.*",
        test: |s| s.starts_with("sha256-"),
    },
];

const PLAIN_TAGS: [&str; 8] = [
    "latest",
    "v1",
    "v10",
    "v2",
    "pr-1",
    "pr-2",
    "dev",
    "release-3",
];
const REPO_NAMES: [&str; 3] = ["app", "team/a", "team/b"];

#[derive(Debug, Clone)]
struct MRule {
    repo: Pat,
    tag: Option<Pat>,
    keep_tag: Vec<Pat>,
    keep_last: Option<usize>,
    older_than: Option<u64>,
    not_pulled_for: Option<u64>,
    untagged: bool,
    keep_latest: bool,
    keep_referrers: bool,
}

impl MRule {
    fn yaml(&self) -> String {
        let mut s = format!("  - repo: '{}'\n", self.repo.src);
        if let Some(t) = self.tag {
            s += &format!("    tag: '{}'\n", t.src);
        }
        if !self.keep_tag.is_empty() {
            let list: Vec<String> = self
                .keep_tag
                .iter()
                .map(|p| format!("'{}'", p.src))
                .collect();
            s += &format!("    keep_tag: [{}]\n", list.join(", "));
        }
        if let Some(k) = self.keep_last {
            s += &format!("    keep_last: {k}\n");
        }
        if let Some(d) = self.older_than {
            s += &format!("    older_than: {d}d\n");
        }
        if let Some(d) = self.not_pulled_for {
            s += &format!("    not_pulled_for: {d}days\n");
        }
        s += &format!(
            "    untagged: {}\n    no_keep_latest: {}\n    keep_referrers: {}\n",
            self.untagged, !self.keep_latest, self.keep_referrers
        );
        s
    }

    fn has_criterion(&self) -> bool {
        self.keep_last.is_some() || self.older_than.is_some() || self.not_pulled_for.is_some()
    }
}

fn rule_strategy() -> impl Strategy<Value = MRule> {
    (
        (
            0..4usize,
            prop::option::of(0..4usize),
            prop::collection::vec(0..4usize, 0..3),
        ),
        (
            prop::option::of(1..4usize),
            prop::option::of(0..40u64),
            prop::option::of(0..40u64),
        ),
        (
            any::<bool>(),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.15),
        ),
    )
        .prop_map(
            |(
                (repo, tag, keeps),
                (keep_last, older_than, npf),
                (untagged, no_latest, keep_refs),
            )| {
                let mut r = MRule {
                    repo: REPO_PATS[repo],
                    tag: tag.map(|t| TAG_PATS[t]),
                    keep_tag: keeps.into_iter().map(|k| KEEP_PATS[k]).collect(),
                    keep_last,
                    older_than,
                    not_pulled_for: npf,
                    untagged,
                    keep_latest: !no_latest,
                    keep_referrers: keep_refs,
                };
                // Only valid policies: a tag pattern needs a criterion, and
                // every rule does something.
                if !r.has_criterion() {
                    r.tag = None;
                    r.untagged = true;
                }
                r
            },
        )
}

fn days() -> impl Strategy<Value = Option<u64>> {
    prop::option::weighted(0.85, 0..60u64)
}

fn manifest_strategy(
) -> impl Strategy<Value = (Option<u64>, Option<u64>, Option<u64>, Option<u8>, bool)> {
    (
        days(),
        prop::option::weighted(0.4, 0..60u64),
        prop::option::weighted(0.3, 0..60u64),
        prop::option::weighted(0.2, 0..8u8),
        prop::bool::weighted(0.15),
    )
}

/// (name choice, digest index, assigned days). Name choices 0..8 are plain
/// tags, 8..16 the cosign signature of digest `choice − 8`.
fn tag_strategy() -> impl Strategy<Value = (usize, u8, Option<u64>)> {
    (0..16usize, 0..6u8, days())
}

fn repo_strategy(name: &'static str) -> impl Strategy<Value = RepoView> {
    (
        1..7u8,
        prop::collection::vec(manifest_strategy(), 7),
        prop::collection::vec(tag_strategy(), 0..9),
    )
        .prop_map(move |(n, ms, tags)| {
            let manifests: Vec<ManifestView> = (0..n)
                .map(|i| {
                    let (pushed, pulled, by_digest, subject, reached) = ms[i as usize];
                    ManifestView {
                        digest: dg(i),
                        pushed_at: pushed.map(ago),
                        last_pulled_at: pulled.map(ago),
                        pulled_by_digest_at: by_digest.map(ago),
                        subject: subject.filter(|&s| s != i).map(dg),
                        reached,
                    }
                })
                .collect();
            let mut by_name: BTreeMap<String, TagView> = BTreeMap::new();
            for (choice, digest, assigned) in tags {
                let name = if choice < 8 {
                    PLAIN_TAGS[choice].to_string()
                } else {
                    format!("sha256-{}.sig", hex((choice - 8) as u8))
                };
                by_name.entry(name.clone()).or_insert(TagView {
                    name,
                    digest: dg(digest % n),
                    assigned_at: assigned.map(ago),
                });
            }
            RepoView {
                name: name.to_string(),
                tags: by_name.into_values().collect(),
                manifests,
            }
        })
}

fn world() -> impl Strategy<Value = (Vec<MRule>, Vec<RepoView>)> {
    (
        prop::collection::vec(rule_strategy(), 1..4),
        repo_strategy(REPO_NAMES[0]),
        repo_strategy(REPO_NAMES[1]),
        repo_strategy(REPO_NAMES[2]),
    )
        .prop_map(|(rules, a, b, c)| (rules, vec![a, b, c]))
}

fn policy_of(rules: &[MRule]) -> Policy {
    let text = format!(
        "rules:\n{}",
        rules.iter().map(MRule::yaml).collect::<String>()
    );
    Policy::parse(&text, false, "model").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

// ---------------------------------------------------------------- the model

type Removed = (BTreeSet<(String, String)>, BTreeSet<(String, String)>);

fn cosign_subject(name: &str) -> Option<String> {
    for ext in [".sig", ".att", ".sbom"] {
        if let Some(h) = name
            .strip_prefix("sha256-")
            .and_then(|r| r.strip_suffix(ext))
        {
            if h.len() == 64 && h.chars().all(|c| "0123456789abcdef".contains(c)) {
                return Some(format!("sha256:{h}"));
            }
        }
    }
    None
}

fn older(t: Option<SystemTime>, days: u64) -> bool {
    match t {
        Some(t) => t < ago(days),
        None => false,
    }
}

fn model(rules: &[MRule], repos: &[RepoView]) -> Removed {
    let mut tags_out = BTreeSet::new();
    let mut untagged_out = BTreeSet::new();
    for repo in repos {
        let app: Vec<&MRule> = rules.iter().filter(|r| (r.repo.test)(&repo.name)).collect();
        let manifest = |d: &str| repo.manifests.iter().find(|m| m.digest == d);
        let tags_on =
            |d: &str| -> Vec<&TagView> { repo.tags.iter().filter(|t| t.digest == d).collect() };
        let subject_of = |t: &TagView| {
            manifest(&t.digest)
                .and_then(|m| m.subject.clone())
                .or_else(|| cosign_subject(&t.name))
        };
        let name_kept = |r: &MRule, name: &str| {
            r.keep_tag.iter().any(|p| (p.test)(name)) || (r.keep_latest && name == "latest")
        };
        let cand = |r: &MRule, t: &TagView| {
            subject_of(t).is_none()
                && r.tag.is_none_or(|p| (p.test)(&t.name))
                && !name_kept(r, &t.name)
        };
        let keep_last_digests = |r: &MRule| -> BTreeSet<String> {
            let Some(k) = r.keep_last else {
                return BTreeSet::new();
            };
            // Each digest's best candidate tag, then the k best digests.
            let mut best: BTreeMap<String, (Option<SystemTime>, String)> = BTreeMap::new();
            for t in repo.tags.iter().filter(|t| cand(r, t)) {
                let key = (t.assigned_at, t.name.clone());
                let e = best.entry(t.digest.clone()).or_insert(key.clone());
                if key > *e {
                    *e = key;
                }
            }
            let mut order: Vec<(String, (Option<SystemTime>, String))> = best.into_iter().collect();
            order.sort_by(|a, b| b.1.cmp(&a.1));
            order.into_iter().take(k).map(|(d, _)| d).collect()
        };
        let kl: Vec<BTreeSet<String>> = app.iter().map(|r| keep_last_digests(r)).collect();
        let unused = |r: &MRule, m: Option<&ManifestView>, assigned: Option<SystemTime>| match r
            .not_pulled_for
        {
            None => true,
            Some(d) => {
                let mut times = vec![assigned];
                if let Some(m) = m {
                    times.extend([m.last_pulled_at, m.pulled_by_digest_at, m.pushed_at]);
                }
                let known: Vec<SystemTime> = times.into_iter().flatten().collect();
                !known.is_empty() && known.iter().all(|&t| older(Some(t), d))
            }
        };
        let old = |r: &MRule, t: Option<SystemTime>| r.older_than.is_none_or(|d| older(t, d));

        let mut removed_tags: BTreeSet<String> = BTreeSet::new();
        for t in &repo.tags {
            if subject_of(t).is_some() || app.is_empty() {
                continue;
            }
            let kept = app.iter().any(|r| name_kept(r, &t.name))
                || app
                    .iter()
                    .zip(&kl)
                    .any(|(r, set)| cand(r, t) && set.contains(&t.digest));
            let removes = app.iter().any(|r| {
                cand(r, t)
                    && r.has_criterion()
                    && old(r, t.assigned_at)
                    && unused(r, manifest(&t.digest), t.assigned_at)
            });
            if !kept && removes {
                removed_tags.insert(t.name.clone());
            }
        }
        let past_grace = |m: &ManifestView| m.pushed_at.is_some_and(|p| p < ago(GRACE_DAYS));
        let mut removed_untagged: BTreeSet<String> = BTreeSet::new();
        for m in &repo.manifests {
            if !tags_on(&m.digest).is_empty()
                || m.subject.is_some()
                || app.is_empty()
                || m.reached
                || !past_grace(m)
            {
                continue;
            }
            if app
                .iter()
                .any(|r| r.untagged && old(r, m.pushed_at) && unused(r, Some(m), None))
            {
                removed_untagged.insert(m.digest.clone());
            }
        }
        // Followers.
        let present = |s: &str| manifest(s).is_some() || !tags_on(s).is_empty();
        let refs_kept = app.iter().any(|r| r.keep_referrers);
        let mut open_tags: Vec<(&TagView, String)> = Vec::new();
        for t in &repo.tags {
            if let Some(s) = subject_of(t) {
                let fixed = app.is_empty()
                    || app.iter().any(|r| name_kept(r, &t.name))
                    || refs_kept
                    || !present(&s);
                if !fixed {
                    open_tags.push((t, s));
                }
            }
        }
        let mut open_ms: Vec<(&ManifestView, String)> = Vec::new();
        for m in &repo.manifests {
            if let (Some(s), true) = (m.subject.clone(), tags_on(&m.digest).is_empty()) {
                let fixed = app.is_empty() || refs_kept || !present(&s) || !past_grace(m);
                if !fixed {
                    open_ms.push((m, s));
                }
            }
        }
        loop {
            let mut changed = false;
            let goes = |s: &str, rt: &BTreeSet<String>, ru: &BTreeSet<String>| {
                let on = tags_on(s);
                if on.is_empty() {
                    ru.contains(s)
                } else {
                    let alive_otherwise =
                        manifest(s).is_some_and(|m| m.reached && m.subject.is_none());
                    !alive_otherwise && on.iter().all(|t| rt.contains(&t.name))
                }
            };
            for (t, s) in &open_tags {
                if !removed_tags.contains(&t.name) && goes(s, &removed_tags, &removed_untagged) {
                    removed_tags.insert(t.name.clone());
                    changed = true;
                }
            }
            for (m, s) in &open_ms {
                if !removed_untagged.contains(&m.digest)
                    && goes(s, &removed_tags, &removed_untagged)
                {
                    removed_untagged.insert(m.digest.clone());
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        tags_out.extend(removed_tags.into_iter().map(|t| (repo.name.clone(), t)));
        untagged_out.extend(removed_untagged.into_iter().map(|d| (repo.name.clone(), d)));
    }
    (tags_out, untagged_out)
}

/// The repositories after the removals and the mark: removed tags and
/// untagged manifests gone, and manifests whose tags all went unless
/// something else reaches them.
fn after(repos: &[RepoView], removed: &Removed) -> Vec<RepoView> {
    repos
        .iter()
        .map(|r| {
            let gone_tag = |t: &TagView| removed.0.contains(&(r.name.clone(), t.name.clone()));
            let tags: Vec<TagView> = r.tags.iter().filter(|t| !gone_tag(t)).cloned().collect();
            let manifests = r
                .manifests
                .iter()
                .filter(|m| {
                    let had: Vec<&TagView> =
                        r.tags.iter().filter(|t| t.digest == m.digest).collect();
                    let lost_all = !had.is_empty() && had.iter().all(|t| gone_tag(t));
                    let collected = lost_all && !(m.reached && m.subject.is_none());
                    !collected && !removed.1.contains(&(r.name.clone(), m.digest.clone()))
                })
                .cloned()
                .collect();
            RepoView {
                name: r.name.clone(),
                tags,
                manifests,
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn evaluate_matches_the_model((rules, repos) in world()) {
        let policy = policy_of(&rules);
        let d = evaluate(&policy, &repos, now(), Duration::from_secs(GRACE_DAYS * DAY));
        let got_tags: BTreeSet<(String, String)> =
            d.tags_removed.iter().map(|a| (a.repository.clone(), a.tag.clone())).collect();
        let got_untagged: BTreeSet<(String, String)> =
            d.untagged_removed.iter().map(|a| (a.repository.clone(), a.digest.clone())).collect();
        let (want_tags, want_untagged) = model(&rules, &repos);
        prop_assert_eq!(&got_tags, &want_tags, "tags removed");
        prop_assert_eq!(&got_untagged, &want_untagged, "untagged manifests removed");

        // Every tag and every untagged manifest decided exactly once, with a
        // reason that agrees with the list it is in.
        let all_tags: BTreeSet<(String, String)> = repos
            .iter()
            .flat_map(|r| r.tags.iter().map(|t| (r.name.clone(), t.name.clone())))
            .collect();
        let decided: Vec<(String, String)> = d.tags_removed.iter().chain(&d.tags_kept)
            .map(|a| (a.repository.clone(), a.tag.clone())).collect();
        prop_assert_eq!(decided.len(), all_tags.len());
        prop_assert_eq!(decided.iter().cloned().collect::<BTreeSet<_>>(), all_tags);
        let untagged: BTreeSet<(String, String)> = repos.iter().flat_map(|r| {
            r.manifests.iter().filter(|m| r.tags.iter().all(|t| t.digest != m.digest))
                .map(|m| (r.name.clone(), m.digest.clone()))
        }).collect();
        let decided_m: Vec<(String, String)> = d.untagged_removed.iter().chain(&d.untagged_kept)
            .map(|a| (a.repository.clone(), a.digest.clone())).collect();
        prop_assert_eq!(decided_m.len(), untagged.len());
        prop_assert_eq!(decided_m.iter().cloned().collect::<BTreeSet<_>>(), untagged);
        prop_assert!(d.tags_removed.iter().all(|a| a.reason.removes()));
        prop_assert!(d.tags_kept.iter().all(|a| !a.reason.removes()));
        prop_assert!(d.untagged_removed.iter().all(|a| a.reason.removes()));
        prop_assert!(d.untagged_kept.iter().all(|a| !a.reason.removes()));
        // Sorted output.
        let keys: Vec<(&str, &str)> = d.tags_kept.iter().map(|a| (a.repository.as_str(), a.tag.as_str())).collect();
        prop_assert!(keys.windows(2).all(|w| w[0] < w[1]));

        for repo in &repos {
            let app: Vec<&MRule> = rules.iter().filter(|r| (r.repo.test)(&repo.name)).collect();
            let gone = |t: &TagView| got_tags.contains(&(repo.name.clone(), t.name.clone()));
            // A tag an applicable keep_tag matches is never removed.
            for t in repo.tags.iter().filter(|t| gone(t)) {
                prop_assert!(!app.iter().any(|r| r.keep_tag.iter().any(|p| (p.test)(&t.name))), "{} removed", t.name);
            }
            // keep_last N keeps at least min(N, candidate digests) digests.
            for r in app.iter().filter(|r| r.keep_last.is_some()) {
                let is_follower = |t: &TagView| cosign_subject(&t.name).is_some()
                    || repo.manifests.iter().any(|m| m.digest == t.digest && m.subject.is_some());
                let named_keep = |t: &TagView| r.keep_tag.iter().any(|p| (p.test)(&t.name))
                    || (r.keep_latest && t.name == "latest");
                let in_scope = |t: &TagView| r.tag.is_none_or(|p| (p.test)(&t.name));
                let cands: Vec<&TagView> = repo.tags.iter()
                    .filter(|t| in_scope(t) && !is_follower(t) && !named_keep(t))
                    .collect();
                let all: BTreeSet<&str> = cands.iter().map(|t| t.digest.as_str()).collect();
                let kept: BTreeSet<&str> = cands.iter().filter(|t| !gone(t)).map(|t| t.digest.as_str()).collect();
                prop_assert!(kept.len() >= r.keep_last.unwrap().min(all.len()));
            }
        }

        // Without age or pull criteria a second run removes nothing more.
        if rules.iter().all(|r| r.older_than.is_none() && r.not_pulled_for.is_none()) {
            let state = after(&repos, &(got_tags.clone(), got_untagged.clone()));
            let again = evaluate(&policy, &state, now(), Duration::from_secs(GRACE_DAYS * DAY));
            prop_assert!(again.tags_removed.is_empty(), "second run removes tags: {:?}", again.tags_removed);
            prop_assert!(again.untagged_removed.is_empty(), "second run removes manifests: {:?}", again.untagged_removed);
        }
    }
}
