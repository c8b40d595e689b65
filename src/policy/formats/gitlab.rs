//! A GitLab cleanup policy (`container_expiration_policy`), evaluated as
//! GitLab's cleanup service does, on every repository:
//!
//! 1. the tag `latest` is never removed (and takes no `keep_n` place);
//! 2. candidates are the tags `name_regex_delete` (or the older
//!    `name_regex`) matches and `name_regex_keep` does not — none without
//!    a delete regex;
//! 3. the candidates are ordered newest first by when they were pushed
//!    (the tag's link time; an unknown time counts as now, so newest; ties
//!    by name, descending) and the first `keep_n` are kept;
//! 4. of the rest, those pushed within `older_than` (or at an unknown time)
//!    are kept;
//! 5. the remaining tags are removed. GitLab removes tags only and leaves
//!    the manifests to the registry's garbage collection; regsweep's plan
//!    collects them, with what only they reference, in the same run.
//!
//! Regexes are wrapped as GitLab wraps them, `\A` + regex + `\z` with no
//! group and searched, so `v1|v2` means "starts with v1 or ends with v2"
//! (write `(?:v1|v2)` for either whole name).

use super::load::field_error;
use super::{all_decided, Plain, Said};
use crate::policy::{PolicyError, Reason};
use regex::Regex;
use serde::Deserialize;
use std::time::{Duration, SystemTime};

/// A validated cleanup policy.
#[derive(Debug, Clone)]
pub struct Cleanup {
    keep_n: Option<usize>,
    older_than: Option<(Duration, String)>,
    delete: Option<(Regex, String)>,
    keep: Option<(Regex, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    keep_n: Option<i64>,
    #[serde(default)]
    older_than: Option<String>,
    #[serde(default)]
    name_regex: Option<String>,
    #[serde(default)]
    name_regex_delete: Option<String>,
    #[serde(default)]
    name_regex_keep: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    /// How often GitLab runs it; nothing here.
    #[serde(default)]
    #[allow(dead_code)]
    cadence: Option<String>,
    /// GitLab's API returns these; nothing here.
    #[serde(default)]
    #[allow(dead_code)]
    next_run_at: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Doc {
    Wrapped {
        #[serde(alias = "container_expiration_policy_attributes")]
        container_expiration_policy: Spec,
    },
    Bare(Spec),
}

impl Cleanup {
    /// Parses and validates a policy document.
    pub fn parse(text: &str, json: bool, origin: &str) -> Result<Cleanup, PolicyError> {
        // An untagged enum hides field errors: try the bare form first for
        // its precise errors when the wrapper is absent.
        let wrapped = text.contains("container_expiration_policy");
        let spec: Spec = if wrapped {
            match super::load::typed::<Doc>(text, json, origin, "", |_| String::new())? {
                Doc::Wrapped {
                    container_expiration_policy,
                } => container_expiration_policy,
                Doc::Bare(s) => s,
            }
        } else {
            super::load::typed(text, json, origin, "", |_| String::new())?
        };
        let err = |field: &str, message: String| field_error(origin, Some(field), message);
        if spec.enabled == Some(false) {
            return Err(err(
                "enabled",
                "false: GitLab would not run this policy; set it to true to preview it".into(),
            ));
        }
        let pattern = |field: &str, src: &Option<String>| {
            src.as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| {
                    // GitLab validates the regex as written, then wraps it.
                    Regex::new(s)
                        .and_then(|_| Regex::new(&format!(r"\A{s}\z")))
                        .map(|r| (r, s.to_string()))
                        .map_err(|e| err(field, format!("invalid regex {s:?}: {e}")))
                })
                .transpose()
        };
        let (delete_field, delete_src) = match (&spec.name_regex_delete, &spec.name_regex) {
            (Some(_), _) => ("name_regex_delete", &spec.name_regex_delete),
            (None, _) => ("name_regex", &spec.name_regex),
        };
        let delete = pattern(delete_field, delete_src)?;
        let keep = pattern("name_regex_keep", &spec.name_regex_keep)?;
        let keep_n = match spec.keep_n {
            None => None,
            Some(n) if n >= 1 => Some(n as usize),
            Some(n) => {
                return Err(err(
                    "keep_n",
                    format!("{n}: give a count of at least 1, or leave it out"),
                ))
            }
        };
        let older_than = spec
            .older_than
            .as_deref()
            .map(|s| {
                humantime::parse_duration(s.trim())
                    .map(|d| (d, s.trim().to_string()))
                    .map_err(|e| err("older_than", format!("invalid duration {s:?}: {e} (GitLab offers 7d, 14d, 30d, 60d, 90d)")))
            })
            .transpose()?;
        if delete.is_none() {
            return Err(err(
                "name_regex_delete",
                "missing: without it GitLab removes no tag (write \".*\" for every tag)".into(),
            ));
        }
        Ok(Cleanup {
            keep_n,
            older_than,
            delete,
            keep,
        })
    }

    /// Decides one repository's tags; untagged manifests are GitLab's
    /// garbage collection's, not the policy's, and stay.
    pub fn decide(&self, p: &Plain<'_>, now: SystemTime) -> Said {
        let by = |what: String| Reason::Retained {
            by: format!("gitlab cleanup policy: {what}"),
        };
        let mut tags: Vec<Option<Reason>> = p
            .tags
            .iter()
            .map(|t| {
                if t.name == "latest" {
                    return Some(by("latest is never removed".into()));
                }
                let Some((d, ds)) = &self.delete else {
                    return Some(by("no name_regex_delete".into()));
                };
                if !d.is_match(&t.name) {
                    return Some(by(format!("name_regex_delete {ds:?} does not match")));
                }
                self.keep
                    .as_ref()
                    .filter(|(k, _)| k.is_match(&t.name))
                    .map(|(_, ks)| by(format!("name_regex_keep {ks:?}")))
            })
            .collect();
        let mut order: Vec<usize> = (0..p.tags.len()).filter(|&i| tags[i].is_none()).collect();
        // Newest first; an unknown time counts as now.
        let at = |i: usize| p.tags[i].assigned_at.unwrap_or(now);
        order.sort_by(|&a, &b| {
            at(b)
                .cmp(&at(a))
                .then_with(|| p.tags[b].name.cmp(&p.tags[a].name))
        });
        for (rank, &i) in order.iter().enumerate() {
            let t = p.tags[i];
            let keep_n = self
                .keep_n
                .filter(|&n| rank < n)
                .map(|n| by(format!("keep_n {n} (rank {})", rank + 1)));
            let young = self.older_than.as_ref().and_then(|(d, s)| {
                let old =
                    matches!((t.assigned_at, now.checked_sub(*d)), (Some(a), Some(c)) if a < c);
                (!old).then(|| {
                    by(format!(
                        "older_than {s}: pushed more recently (or at an unknown time)"
                    ))
                })
            });
            tags[i] = Some(keep_n.or(young).unwrap_or_else(|| Reason::Expired {
                by: format!("gitlab cleanup policy ({})", self.words()),
            }));
        }
        Said {
            tags: all_decided(tags),
            untagged: p
                .untagged
                .iter()
                .map(|_| by("untagged manifests are left to garbage collection".into()))
                .collect(),
        }
    }

    /// The policy in GitLab's words.
    fn words(&self) -> String {
        let mut w = Vec::new();
        if let Some((_, d)) = &self.delete {
            w.push(format!("name_regex_delete {d:?}"));
        }
        if let Some(n) = self.keep_n {
            w.push(format!("keep_n {n}"));
        }
        if let Some((_, s)) = &self.older_than {
            w.push(format!("older_than {s}"));
        }
        w.join(", ")
    }
}
