//! zot's `storage.retention`, evaluated as zot's garbage collection does
//! (`pkg/retention` and `pkg/storage/gc` of project-zot/zot; see
//! `docs/retention.md`):
//!
//! * the first policy one of whose `repositories` globs (doublestar v4:
//!   `*` within a component, `**` across, `a/**` also matches `a`) matches
//!   the repository applies; a policy without `repositories` matches
//!   nothing;
//! * without `keepTags` (or with none matching the repository's policy)
//!   every tag stays; otherwise each tag belongs to the *first* `keepTags`
//!   entry one of whose regexes matches it *anywhere* (unanchored, as zot
//!   matches; no `patterns` matches every tag) and a tag no entry takes is
//!   removed; an entry with no criterion keeps all its tags, otherwise a
//!   tag stays when one criterion keeps it: `mostRecentlyPushedCount` and
//!   `mostRecentlyPulledCount` count *tags* of the entry (never pulled
//!   ranks last; ties by name), `pushedWithin`, and `pulledWithin` (a push
//!   within the window counts as activity); a tag whose push time is
//!   unknown has no statistics and stays;
//! * untagged manifests go unless `deleteUntagged: false` — also in
//!   repositories no policy matches — once `delay` (default 1h) has
//!   passed since their push, except those `keepUntagged`'s criteria keep;
//! * `deleteReferrers: true` removes referrers whose subject goes; with
//!   the default `false` they stay.
//!
//! Durations are Go durations (`168h`, `90m`; no `d`).

use super::load::field_error;
use super::{all_decided, pulled_at, Plain, Said};
use crate::policy::{PolicyError, Reason};
use globset::{GlobBuilder, GlobMatcher};
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// A validated retention block.
#[derive(Debug, Clone)]
pub struct Retention {
    delay: Duration,
    policies: Vec<ZotPolicy>,
}

#[derive(Debug, Clone)]
struct ZotPolicy {
    n: usize,
    repositories: Vec<(GlobMatcher, Option<GlobMatcher>)>,
    delete_referrers: bool,
    delete_untagged: bool,
    keep_tags: Vec<Keep>,
    keep_untagged: Option<Keep>,
}

#[derive(Debug, Clone, Default)]
struct Keep {
    patterns: Vec<Regex>,
    pulled_within: Option<Duration>,
    pushed_within: Option<Duration>,
    pushed_count: usize,
    pulled_count: usize,
}

#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    storage: Option<StorageSpec>,
    #[serde(default)]
    retention: Option<RetentionSpec>,
    #[serde(default)]
    policies: Option<Vec<PolicySpec>>,
    #[serde(default)]
    delay: Option<String>,
}

#[derive(Deserialize)]
struct StorageSpec {
    #[serde(default)]
    retention: Option<RetentionSpec>,
    #[serde(default, rename = "gcDelay")]
    gc_delay: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RetentionSpec {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    delay: Option<String>,
    #[serde(default)]
    policies: Vec<PolicySpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicySpec {
    #[serde(default)]
    repositories: Vec<String>,
    #[serde(default)]
    delete_referrers: bool,
    #[serde(default)]
    delete_untagged: Option<bool>,
    #[serde(default)]
    keep_tags: Vec<KeepSpec>,
    #[serde(default)]
    keep_untagged: Option<KeepSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KeepSpec {
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    pulled_within: Option<String>,
    #[serde(default)]
    pushed_within: Option<String>,
    #[serde(default)]
    most_recently_pushed_count: i64,
    #[serde(default)]
    most_recently_pulled_count: i64,
}

fn label(v: &Value) -> String {
    match v.get("repositories") {
        Some(r) => format!("repositories {r}"),
        None => "no repositories".into(),
    }
}

/// Compiles a doublestar v4 glob (`a/**` also matches `a`).
fn glob(pattern: &str) -> Result<(GlobMatcher, Option<GlobMatcher>), globset::Error> {
    let build = |p: &str| -> Result<GlobMatcher, globset::Error> {
        Ok(GlobBuilder::new(p)
            .literal_separator(true)
            .backslash_escape(true)
            .build()?
            .compile_matcher())
    };
    let parent = match pattern.strip_suffix("/**") {
        Some(p) if !p.is_empty() => Some(build(p)?),
        _ => None,
    };
    Ok((build(pattern)?, parent))
}

/// A Go duration (`168h`, `1h30m`, `90s`); zot has no `d`.
fn go_duration(s: &str) -> Result<Duration, String> {
    if s.contains('d') {
        return Err("Go durations have no d: write hours, e.g. 168h".into());
    }
    super::acr::parse_ago(s)
}

impl Retention {
    /// Parses and validates a zot configuration (or its `retention` block,
    /// or its `policies` list).
    pub fn parse(text: &str, json: bool, origin: &str) -> Result<Retention, PolicyError> {
        let doc: Doc = super::load::typed(text, json, origin, "policies", label)?;
        let (spec, gc_delay) = match (doc.storage, doc.retention, doc.policies) {
            (Some(s), _, _) => (s.retention, s.gc_delay),
            (None, Some(r), _) => (Some(r), None),
            (None, None, Some(p)) => (
                Some(RetentionSpec {
                    dry_run: false,
                    delay: doc.delay,
                    policies: p,
                }),
                None,
            ),
            (None, None, None) => (None, None),
        };
        let whole = |field: &str, message: String| field_error(origin, Some(field), message);
        let spec =
            spec.ok_or_else(|| whole("storage.retention", "missing: no retention block".into()))?;
        let _ = spec.dry_run;
        let delay_src = spec.delay.or(gc_delay).unwrap_or_else(|| "1h".into());
        let delay =
            go_duration(&delay_src).map_err(|m| whole("delay", format!("{delay_src:?}: {m}")))?;
        if spec.policies.is_empty() {
            return Err(whole(
                "policies",
                "no policies: zot would only collect untagged manifests".into(),
            ));
        }
        let mut policies = Vec::new();
        for (i, p) in spec.policies.iter().enumerate() {
            let n = i + 1;
            let lab = format!("repositories {:?}", p.repositories);
            let err = |field: &str, message: String| {
                super::load::rule_error(origin, n, lab.clone(), field, message)
            };
            let repositories = p
                .repositories
                .iter()
                .map(|g| glob(g).map_err(|e| err("repositories", format!("{g:?}: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            let keep = |field: &str, k: &KeepSpec, patterns: bool| -> Result<Keep, PolicyError> {
                let dur = |f: &str, v: &Option<String>| {
                    v.as_deref()
                        .map(|s| {
                            go_duration(s)
                                .map_err(|m| err(&format!("{field}.{f}"), format!("{s:?}: {m}")))
                        })
                        .transpose()
                };
                let count = |f: &str, c: i64| {
                    usize::try_from(c)
                        .map_err(|_| err(&format!("{field}.{f}"), format!("{c}: give 0 or more")))
                };
                if !patterns && !k.patterns.is_empty() {
                    return Err(err(
                        &format!("{field}.patterns"),
                        "keepUntagged has no patterns".into(),
                    ));
                }
                Ok(Keep {
                    patterns: k
                        .patterns
                        .iter()
                        .map(|s| {
                            Regex::new(s).map_err(|e| {
                                err(
                                    &format!("{field}.patterns"),
                                    format!("invalid regex {s:?}: {e}"),
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?,
                    pulled_within: dur("pulledWithin", &k.pulled_within)?,
                    pushed_within: dur("pushedWithin", &k.pushed_within)?,
                    pushed_count: count("mostRecentlyPushedCount", k.most_recently_pushed_count)?,
                    pulled_count: count("mostRecentlyPulledCount", k.most_recently_pulled_count)?,
                })
            };
            let keep_tags = p
                .keep_tags
                .iter()
                .enumerate()
                .map(|(k, s)| keep(&format!("keepTags[{k}]"), s, true))
                .collect::<Result<Vec<_>, _>>()?;
            let keep_untagged = p
                .keep_untagged
                .as_ref()
                .map(|s| keep("keepUntagged", s, false))
                .transpose()?
                .filter(Keep::has_criteria);
            policies.push(ZotPolicy {
                n,
                repositories,
                delete_referrers: p.delete_referrers,
                delete_untagged: p.delete_untagged.unwrap_or(true),
                keep_tags,
                keep_untagged,
            });
        }
        Ok(Retention { delay, policies })
    }

    fn policy(&self, repo: &str) -> Option<&ZotPolicy> {
        self.policies.iter().find(|p| {
            p.repositories.iter().any(|(g, parent)| {
                g.is_match(repo) || parent.as_ref().is_some_and(|g| g.is_match(repo))
            })
        })
    }

    /// True when a criterion looks at pull times.
    pub fn uses_pulls(&self) -> bool {
        self.policies.iter().any(|p| {
            p.keep_tags
                .iter()
                .chain(p.keep_untagged.iter())
                .any(|k| k.pulled_within.is_some() || k.pulled_count > 0)
        })
    }

    /// `deleteReferrers: false` keeps a repository's referrers.
    pub fn keeps_referrers(&self, repo: &str) -> Option<String> {
        match self.policy(repo) {
            Some(p) if p.delete_referrers => None,
            Some(p) => Some(format!("zot policy {} (deleteReferrers false)", p.n)),
            None => Some("zot: no policy matches the repository (deleteReferrers false)".into()),
        }
    }

    /// Decides one repository.
    pub fn decide(&self, p: &Plain<'_>, now: SystemTime) -> Option<Said> {
        let policy = self.policy(p.repo);
        let by = |what: String| Reason::Retained {
            by: format!("zot {what}"),
        };
        let name = match policy {
            Some(pol) => format!("policy {}", pol.n),
            None => "(no policy matches the repository)".into(),
        };
        let mut tags: Vec<Option<Reason>> = vec![None; p.tags.len()];
        match policy.filter(|pol| !pol.keep_tags.is_empty()) {
            None => {
                for t in tags.iter_mut() {
                    *t = Some(by(format!("{name}: no keepTags, every tag stays")));
                }
            }
            Some(pol) => {
                let mut groups: Vec<Vec<usize>> = vec![Vec::new(); pol.keep_tags.len()];
                for (i, t) in p.tags.iter().enumerate() {
                    if t.assigned_at.is_none()
                        && p.manifests
                            .get(t.digest.as_str())
                            .and_then(|m| m.pushed_at)
                            .is_none()
                    {
                        tags[i] = Some(by(format!("{name}: tag statistics not found")));
                        continue;
                    }
                    match pol.keep_tags.iter().position(|k| k.takes(&t.name)) {
                        Some(g) => groups[g].push(i),
                        None => {
                            tags[i] = Some(Reason::Expired {
                                by: format!("zot {name}: no keepTags patterns match the tag"),
                            })
                        }
                    }
                }
                for (g, members) in groups.iter().enumerate() {
                    let k = &pol.keep_tags[g];
                    let entry = format!("{name} keepTags[{g}]");
                    let items: Vec<Item<'_>> = members
                        .iter()
                        .map(|&i| {
                            let t = p.tags[i];
                            Item {
                                name: &t.name,
                                pushed: p
                                    .manifests
                                    .get(t.digest.as_str())
                                    .and_then(|m| m.pushed_at)
                                    .or(t.assigned_at),
                                pulled: pulled_at(p, &t.digest),
                            }
                        })
                        .collect();
                    let kept = k.keeps(&items, now);
                    for (j, &i) in members.iter().enumerate() {
                        tags[i] = Some(match &kept[j] {
                            Some(why) => by(format!("{entry}: {why}")),
                            None => Reason::Expired {
                                by: format!("zot {entry} ({})", k.words()),
                            },
                        });
                    }
                }
            }
        }
        // Untagged manifests.
        let delete_untagged = policy.is_none_or(|pol| pol.delete_untagged);
        let items: Vec<Item<'_>> = p
            .untagged
            .iter()
            .map(|m| Item {
                name: &m.digest,
                pushed: m.pushed_at,
                pulled: pulled_at(p, &m.digest),
            })
            .collect();
        let keep_untagged = policy
            .and_then(|pol| pol.keep_untagged.as_ref())
            .map(|k| k.keeps(&items, now))
            .unwrap_or_else(|| vec![None; items.len()]);
        let untagged = items
            .iter()
            .zip(keep_untagged)
            .map(|(m, kept)| {
                if !delete_untagged {
                    return by(format!("{name}: deleteUntagged false"));
                }
                if let Some(why) = kept {
                    return by(format!("{name} keepUntagged: {why}"));
                }
                let past =
                    matches!((m.pushed, now.checked_sub(self.delay)), (Some(t), Some(c)) if t <= c);
                if !past {
                    return by(format!(
                        "{name}: pushed within the delay {}",
                        humantime::format_duration(self.delay)
                    ));
                }
                Reason::Expired {
                    by: format!("zot {name}: deleteUntagged"),
                }
            })
            .collect();
        Some(Said {
            tags: all_decided(tags),
            untagged,
        })
    }
}

/// A tag (or untagged manifest) with its times.
struct Item<'a> {
    name: &'a str,
    pushed: Option<SystemTime>,
    pulled: Option<SystemTime>,
}

impl Keep {
    fn has_criteria(&self) -> bool {
        self.pulled_within.is_some()
            || self.pushed_within.is_some()
            || self.pushed_count > 0
            || self.pulled_count > 0
    }

    /// No patterns take every tag; otherwise one of them found anywhere.
    fn takes(&self, tag: &str) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|r| r.is_match(tag))
    }

    /// Per item, why the entry keeps it (or `None`).
    fn keeps(&self, items: &[Item<'_>], now: SystemTime) -> Vec<Option<String>> {
        if !self.has_criteria() {
            return vec![Some("patterns only, every matching tag stays".into()); items.len()];
        }
        let mut kept: Vec<Option<String>> = vec![None; items.len()];
        let rank = |count: usize,
                    key: &dyn Fn(&Item<'_>) -> Option<SystemTime>,
                    what: &str,
                    kept: &mut Vec<Option<String>>| {
            if count == 0 {
                return;
            }
            let mut order: Vec<usize> = (0..items.len()).collect();
            order.sort_by(|&a, &b| {
                key(&items[b])
                    .cmp(&key(&items[a]))
                    .then_with(|| items[a].name.cmp(items[b].name))
            });
            for (r, &i) in order.iter().take(count).enumerate() {
                kept[i].get_or_insert_with(|| format!("{what} {count} (rank {})", r + 1));
            }
        };
        rank(
            self.pushed_count,
            &|it| it.pushed,
            "mostRecentlyPushedCount",
            &mut kept,
        );
        rank(
            self.pulled_count,
            &|it| it.pulled,
            "mostRecentlyPulledCount",
            &mut kept,
        );
        let within = |t: Option<SystemTime>, d: Duration| matches!((t, now.checked_sub(d)), (Some(t), Some(c)) if t > c);
        for (i, it) in items.iter().enumerate() {
            if let Some(d) = self.pushed_within {
                if within(it.pushed, d) {
                    kept[i].get_or_insert_with(|| {
                        format!("pushedWithin {}", humantime::format_duration(d))
                    });
                }
            }
            if let Some(d) = self.pulled_within {
                if within(it.pulled, d) || within(it.pushed, d) {
                    kept[i].get_or_insert_with(|| {
                        format!(
                            "pulledWithin {} (a push counts)",
                            humantime::format_duration(d)
                        )
                    });
                }
            }
        }
        kept
    }

    /// The entry in zot's words.
    fn words(&self) -> String {
        let mut w = Vec::new();
        if self.pushed_count > 0 {
            w.push(format!("mostRecentlyPushedCount {}", self.pushed_count));
        }
        if self.pulled_count > 0 {
            w.push(format!("mostRecentlyPulledCount {}", self.pulled_count));
        }
        if let Some(d) = self.pushed_within {
            w.push(format!("pushedWithin {}", humantime::format_duration(d)));
        }
        if let Some(d) = self.pulled_within {
            w.push(format!("pulledWithin {}", humantime::format_duration(d)));
        }
        w.join(", ")
    }
}
