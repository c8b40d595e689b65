//! Harbor tag retention rules, evaluated as Harbor's retention job does
//! (`src/pkg/retention` of goharbor/harbor; see `docs/retention.md`):
//!
//! * a rule applies to a repository when every one of its
//!   `scope_selectors.repository` selectors does (`repoMatches` /
//!   `repoExcludes`, doublestar globs matched against the name without its
//!   first component, the Harbor project: `library/team/app` is matched as
//!   `team/app`); disabled rules apply nowhere; a repository no rule
//!   applies to is left alone;
//! * the candidates are artifacts: a manifest with all its tags, and
//!   untagged manifests nothing else needs; pushed = the newest of the
//!   manifest's push and its tags' assignments, pulled = its last pull
//!   (never pulled ranks last);
//! * each rule keeps what passes all its `tag_selectors` (`matches`: some
//!   tag matches; `excludes`: some tag does not; untagged artifacts by the
//!   `{"untagged": …}` extras, whose default depends on the decoration) and
//!   then its template: `latestPushedK`, `latestPulledN` (ties by digest),
//!   `nDaysSinceLastPush`, `nDaysSinceLastPull` (inclusive, whole seconds;
//!   never pulled is never within), `always`;
//! * rules only retain and are ORed; in a repository some rule applies
//!   to, every artifact no rule retains is deleted, with all its tags.

use super::load::field_error;
use super::{days_ago, pulled_at, pushed_at, Images, Plain, Said};
use crate::policy::{PolicyError, Reason};
use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// A validated retention policy.
#[derive(Debug, Clone)]
pub struct Retention {
    rules: Vec<HarborRule>,
}

#[derive(Debug, Clone)]
struct HarborRule {
    n: usize,
    template: Template,
    tags: Vec<TagSelector>,
    repos: Vec<(bool, GlobMatcher, String)>,
}

#[derive(Debug, Clone)]
enum Template {
    LatestPushed(usize),
    LatestPulled(usize),
    DaysSincePush(u64),
    DaysSincePull(u64),
    Always,
}

#[derive(Debug, Clone)]
struct TagSelector {
    excludes: bool,
    glob: GlobMatcher,
    untagged: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    #[serde(default)]
    #[allow(dead_code)]
    id: Option<Value>,
    #[serde(default)]
    algorithm: Option<String>,
    rules: Vec<RuleSpec>,
    #[serde(default)]
    #[allow(dead_code)]
    trigger: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    scope: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    #[serde(default)]
    #[allow(dead_code)]
    id: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    priority: Option<Value>,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    action: Option<String>,
    template: String,
    #[serde(default)]
    params: HashMap<String, Value>,
    #[serde(default)]
    tag_selectors: Vec<SelectorSpec>,
    #[serde(default)]
    scope_selectors: HashMap<String, Vec<SelectorSpec>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectorSpec {
    kind: String,
    decoration: String,
    pattern: String,
    #[serde(default)]
    extras: Option<String>,
}

fn label(v: &Value) -> String {
    match v.get("template").and_then(Value::as_str) {
        Some(t) => format!("template {t}"),
        None => "template ?".into(),
    }
}

/// Compiles a doublestar pattern (v1: `*` stays within a path component,
/// `**` spans components, `{a,b}` alternation, whole-name match; an
/// empty pattern matches everything).
fn doublestar(pattern: &str) -> Result<GlobMatcher, globset::Error> {
    let p = if pattern.is_empty() { "**" } else { pattern };
    Ok(GlobBuilder::new(p)
        .literal_separator(true)
        .backslash_escape(true)
        .build()?
        .compile_matcher())
}

impl Retention {
    /// Parses and validates a policy document.
    pub fn parse(text: &str, json: bool, origin: &str) -> Result<Retention, PolicyError> {
        let doc: Doc = super::load::typed(text, json, origin, "rules", label)?;
        let whole = |field: &str, message: String| field_error(origin, Some(field), message);
        if let Some(a) = doc.algorithm.as_deref().filter(|a| *a != "or") {
            return Err(whole("algorithm", format!("{a:?}: Harbor has only \"or\"")));
        }
        if doc.rules.is_empty() {
            return Err(whole("rules", "the policy has no rules".into()));
        }
        if doc.rules.len() > 15 {
            return Err(whole(
                "rules",
                format!("{} rules: Harbor allows at most 15", doc.rules.len()),
            ));
        }
        let mut rules = Vec::new();
        for (i, r) in doc.rules.iter().enumerate() {
            let n = i + 1;
            let err = |field: &str, message: String| {
                super::load::rule_error(
                    origin,
                    n,
                    format!("template {}", r.template),
                    field,
                    message,
                )
            };
            if let Some(a) = r.action.as_deref().filter(|a| *a != "retain") {
                return Err(err("action", format!("{a:?}: Harbor rules only retain")));
            }
            let param = |max: i64| -> Result<i64, PolicyError> {
                let v = r.params.get(&r.template).ok_or_else(|| {
                    err(
                        "params",
                        format!(
                            "missing required parameter {} for rule {}",
                            r.template, r.template
                        ),
                    )
                })?;
                let n = v.as_f64().ok_or_else(|| {
                    err(
                        &format!("params.{}", r.template),
                        format!("{v}: give a number"),
                    )
                })? as i64;
                if n < 0 || n > max {
                    return Err(err(
                        &format!("params.{}", r.template),
                        format!("{n}: give 0 to {max}"),
                    ));
                }
                Ok(n)
            };
            let template = match r.template.as_str() {
                "latestPushedK" => Template::LatestPushed(param(32766)? as usize),
                "latestPulledN" => Template::LatestPulled(param(32766)? as usize),
                "nDaysSinceLastPush" => Template::DaysSincePush(param(20_190_904)? as u64),
                "nDaysSinceLastPull" => Template::DaysSincePull(param(20_190_904)? as u64),
                "always" => Template::Always,
                other => {
                    return Err(err(
                        "template",
                        format!("{other:?}: one of latestPushedK, latestPulledN, nDaysSinceLastPush, nDaysSinceLastPull, always"),
                    ))
                }
            };
            let mut tags = Vec::new();
            for (k, s) in r.tag_selectors.iter().enumerate() {
                let field = format!("tag_selectors[{k}]");
                if s.kind != "doublestar" {
                    return Err(err(
                        &format!("{field}.kind"),
                        format!("{:?}: Harbor has only doublestar", s.kind),
                    ));
                }
                let excludes = match s.decoration.as_str() {
                    "matches" => false,
                    "excludes" => true,
                    d => {
                        return Err(err(
                            &format!("{field}.decoration"),
                            format!("{d:?}: matches or excludes"),
                        ))
                    }
                };
                let glob = doublestar(&s.pattern).map_err(|e| {
                    err(&format!("{field}.pattern"), format!("{:?}: {e}", s.pattern))
                })?;
                // Harbor's default for an absent or unreadable extras.
                let mut untagged = !excludes;
                if let Some(x) = s.extras.as_deref().filter(|x| !x.is_empty()) {
                    if let Ok(v) = serde_json::from_str::<Value>(x) {
                        untagged = v.get("untagged").and_then(Value::as_bool).unwrap_or(false);
                    }
                }
                tags.push(TagSelector {
                    excludes,
                    glob,
                    untagged,
                });
            }
            let mut repos = Vec::new();
            for (key, list) in &r.scope_selectors {
                if key != "repository" {
                    continue;
                }
                for (k, s) in list.iter().enumerate() {
                    let field = format!("scope_selectors.repository[{k}]");
                    let excludes = match s.decoration.as_str() {
                        "repoMatches" => false,
                        "repoExcludes" => true,
                        d => {
                            return Err(err(
                                &format!("{field}.decoration"),
                                format!("{d:?}: repoMatches or repoExcludes"),
                            ))
                        }
                    };
                    let glob = doublestar(&s.pattern).map_err(|e| {
                        err(&format!("{field}.pattern"), format!("{:?}: {e}", s.pattern))
                    })?;
                    repos.push((excludes, glob, s.pattern.clone()));
                }
            }
            if r.disabled || tags.is_empty() {
                // Harbor runs neither a disabled rule nor one without tag
                // selectors.
                continue;
            }
            rules.push(HarborRule {
                n,
                template,
                tags,
                repos,
            });
        }
        Ok(Retention { rules })
    }

    /// True when a template looks at pull times.
    pub fn uses_pulls(&self) -> bool {
        self.rules.iter().any(|r| {
            matches!(
                r.template,
                Template::LatestPulled(_) | Template::DaysSincePull(_)
            )
        })
    }

    /// Decides one repository, or `None` when no rule applies to it.
    pub fn decide(&self, p: &Plain<'_>, now: SystemTime) -> Option<Said> {
        let name = p.repo.split_once('/').map_or(p.repo, |(_, rest)| rest);
        let rules: Vec<&HarborRule> = self
            .rules
            .iter()
            .filter(|r| r.repos.iter().all(|(ex, g, _)| g.is_match(name) != *ex))
            .collect();
        if rules.is_empty() {
            return None;
        }
        let tagged = Images::of(p);
        struct Art<'a> {
            digest: &'a str,
            tags: Vec<&'a str>,
            pushed: i64,
            pulled: Option<i64>,
        }
        let secs = |t: SystemTime| match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        };
        let mut arts: Vec<Art<'_>> = tagged
            .images
            .iter()
            .map(|(d, ix)| Art {
                digest: d,
                tags: ix.iter().map(|&i| p.tags[i].name.as_str()).collect(),
                pushed: pushed_at(p, d, ix).map(secs).unwrap_or(i64::MAX),
                pulled: pulled_at(p, d).map(secs),
            })
            .collect();
        let n_tagged = arts.len();
        arts.extend(p.untagged.iter().map(|m| Art {
            digest: m.digest.as_str(),
            tags: Vec::new(),
            pushed: m.pushed_at.map(secs).unwrap_or(i64::MAX),
            pulled: pulled_at(p, &m.digest).map(secs),
        }));
        let mut retained: HashMap<usize, String> = HashMap::new();
        for r in &rules {
            let selected: Vec<usize> = (0..arts.len())
                .filter(|&i| r.tags.iter().all(|s| s.selects(&arts[i].tags)))
                .collect();
            let kept: Vec<usize> = match r.template {
                Template::Always => selected,
                Template::LatestPushed(k) | Template::LatestPulled(k) => {
                    let pushed = matches!(r.template, Template::LatestPushed(_));
                    let mut order = selected;
                    let key = |i: usize| {
                        if pushed {
                            Some(arts[i].pushed)
                        } else {
                            arts[i].pulled
                        }
                    };
                    order.sort_by(|&a, &b| {
                        key(b)
                            .cmp(&key(a))
                            .then_with(|| arts[a].digest.cmp(arts[b].digest))
                    });
                    order.truncate(k);
                    order
                }
                Template::DaysSincePush(d) | Template::DaysSincePull(d) => {
                    let min = days_ago(now, d).map(secs).unwrap_or(i64::MIN);
                    let pushed = matches!(r.template, Template::DaysSincePush(_));
                    selected
                        .into_iter()
                        .filter(|&i| {
                            let t = if pushed {
                                Some(arts[i].pushed)
                            } else {
                                arts[i].pulled
                            };
                            t.is_some_and(|t| t >= min)
                        })
                        .collect()
                }
            };
            let words = r.words();
            for i in kept {
                retained.entry(i).or_insert_with(|| words.clone());
            }
        }
        let verdict = |i: usize| match retained.get(&i) {
            Some(by) => Reason::Retained { by: by.clone() },
            None => Reason::Expired {
                by: format!(
                    "harbor tag retention: no rule retains it (rules {})",
                    rules
                        .iter()
                        .map(|r| r.n.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
        };
        let mut tags = vec![Reason::NotMatched; p.tags.len()];
        for (k, (_, ix)) in tagged.images.iter().enumerate() {
            let v = verdict(k);
            for &i in ix {
                tags[i] = v.clone();
            }
        }
        Some(Said {
            tags,
            untagged: (n_tagged..arts.len()).map(verdict).collect(),
        })
    }
}

impl TagSelector {
    fn selects(&self, tags: &[&str]) -> bool {
        if tags.is_empty() {
            return if self.excludes {
                !self.untagged
            } else {
                self.untagged
            };
        }
        if self.excludes {
            tags.iter().any(|t| !self.glob.is_match(t))
        } else {
            tags.iter().any(|t| self.glob.is_match(t))
        }
    }
}

impl HarborRule {
    /// The rule in Harbor's words.
    fn words(&self) -> String {
        let t = match self.template {
            Template::LatestPushed(k) => format!("latestPushedK {k}"),
            Template::LatestPulled(k) => format!("latestPulledN {k}"),
            Template::DaysSincePush(d) => format!("nDaysSinceLastPush {d}"),
            Template::DaysSincePull(d) => format!("nDaysSinceLastPull {d}"),
            Template::Always => "always".into(),
        };
        format!("harbor rule {} ({t})", self.n)
    }
}
