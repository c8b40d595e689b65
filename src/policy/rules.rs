//! Policy parsing and validation: one rule from `prune`'s flags, or several
//! from a YAML or JSON policy file, compiled into a [`Policy`].
//!
//! File format (YAML shown; JSON has the same keys):
//!
//! ```yaml
//! version: 1            # optional; 1 is the only version
//! rules:
//!   - repo: "team-x/.*"     # required in a file: which repositories
//!     tag: "pr-.*"          # the tags the rule may remove (default: all)
//!     keep_tag: ["release-.*"]  # one pattern or a list
//!     keep_last: 5
//!     older_than: 30d       # humantime: 30d, 12h, 90days, 1w
//!     not_pulled_for: 90d   # needs --access-log
//!     untagged: true
//!     no_keep_latest: false
//!     keep_referrers: false
//! ```
//!
//! Keys may also be spelled with `-` (`keep-last`), as the flags are.
//! Loading checks everything the policy alone can tell (unknown keys, regex
//! syntax, durations, a `keep_last` below 1, a rule that does nothing);
//! [`Policy::validate`] checks it against the run (access logs given).

use serde::Deserialize;
use std::fmt;
use std::path::Path;
use std::time::Duration;

pub use crate::select::Pattern;

/// One validated rule. See the module doc of [`crate::policy`] for what
/// each field means.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Repositories the rule applies to.
    pub repo: Pattern,
    /// Tags the rule may remove; `None` = all.
    pub tag: Option<Pattern>,
    /// Tags never removed.
    pub keep_tag: Vec<Pattern>,
    /// Keep the N newest digests of the rule's candidate tags (N ≥ 1).
    pub keep_last: Option<usize>,
    /// Remove only tags assigned before now − D.
    pub older_than: Option<Duration>,
    /// Remove only digests not used (pulled, pushed) since now − D.
    pub not_pulled_for: Option<Duration>,
    /// Also remove untagged manifests past the grace period.
    pub untagged: bool,
    /// Keep the tag `latest` (default true).
    pub keep_latest: bool,
    /// Keep signatures and referrers even when their subject goes.
    pub keep_referrers: bool,
    /// Keep the N highest semantic versions among the rule's candidate
    /// tags; tags that are not versions are not its candidates.
    pub keep_versions: Option<usize>,
    /// Rank versions per major version (`keep_versions` per major).
    pub versions_per_major: bool,
}

impl Rule {
    /// True when the rule gives a criterion that removes tags.
    pub fn removes_tags(&self) -> bool {
        self.keep_last.is_some()
            || self.older_than.is_some()
            || self.not_pulled_for.is_some()
            || self.keep_versions.is_some()
    }
}

/// A validated policy: rules in order (rule 1 first).
#[derive(Debug, Clone)]
pub struct Policy {
    /// Where it came from: a file path, or `command line`.
    pub origin: String,
    /// The rules (empty when `vendor` is given).
    pub rules: Vec<Rule>,
    /// A policy in a vendor's format, evaluated with its own semantics
    /// instead of `rules`.
    pub vendor: Option<Box<super::formats::Vendor>>,
    /// Images in use (`--keep-refs`): kept whatever the rules say.
    pub in_use: super::in_use::InUse,
}

/// A rule as written, before validation: the keys of a policy file, and
/// what [`RuleFlags`] produces.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Repository pattern (required in a file; `.*` from flags).
    pub repo: Option<String>,
    /// Tag pattern.
    pub tag: Option<String>,
    /// Keep patterns: one string or a list.
    #[serde(default, alias = "keep-tag", deserialize_with = "one_or_many")]
    pub keep_tag: Vec<String>,
    /// Signed so that a negative count gets a clear error.
    #[serde(alias = "keep-last")]
    pub keep_last: Option<i64>,
    /// Duration, e.g. `30d`.
    #[serde(alias = "older-than")]
    pub older_than: Option<String>,
    /// Duration, e.g. `90d`.
    #[serde(alias = "not-pulled-for")]
    pub not_pulled_for: Option<String>,
    /// Also remove untagged manifests.
    #[serde(default)]
    pub untagged: bool,
    /// Do not keep `latest`.
    #[serde(default, alias = "no-keep-latest")]
    pub no_keep_latest: bool,
    /// Keep signatures and referrers.
    #[serde(default, alias = "keep-referrers")]
    pub keep_referrers: bool,
    /// Keep the N highest semantic versions.
    #[serde(alias = "keep-versions")]
    pub keep_versions: Option<i64>,
    /// `keep_versions` counts per major version.
    #[serde(default, alias = "versions-per-major")]
    pub versions_per_major: bool,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match OneOrMany::deserialize(d) {
        Ok(OneOrMany::One(s)) => Ok(vec![s]),
        Ok(OneOrMany::Many(v)) => Ok(v),
        Err(_) => Err(serde::de::Error::custom(
            "expected a pattern or a list of patterns",
        )),
    }
}

/// `prune`'s rule flags; `#[command(flatten)]` them into the subcommand.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RuleFlags {
    /// Repositories the rule applies to (regex, whole name; repeatable:
    /// any; default all). The same syntax as `images --repo`.
    #[arg(long, value_name = "REGEX")]
    pub repo: Vec<String>,
    /// The tags the rule may remove (regex, whole name; default all). The
    /// same syntax as `images --tag`.
    #[arg(long, value_name = "REGEX")]
    pub tag: Option<String>,
    /// Never remove tags matching REGEX (whole name; repeatable).
    #[arg(long, value_name = "REGEX")]
    pub keep_tag: Vec<String>,
    /// Keep the N newest digests per repository (by tag assignment time).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub keep_last: Option<i64>,
    /// Remove only tags last assigned more than DURATION ago (e.g. 30d).
    #[arg(long, value_name = "DURATION")]
    pub older_than: Option<String>,
    /// Remove only images not pulled for DURATION (needs --access-log;
    /// never pulled counts from the push).
    #[arg(long, value_name = "DURATION")]
    pub not_pulled_for: Option<String>,
    /// Also remove untagged manifests older than the grace period (those
    /// pulled by digest within --not-pulled-for stay).
    #[arg(long)]
    pub untagged: bool,
    /// Do not keep the tag `latest`.
    #[arg(long)]
    pub no_keep_latest: bool,
    /// Keep signatures, attestations and referrers even when their subject goes.
    #[arg(long)]
    pub keep_referrers: bool,
    /// Keep the N highest semantic versions (`1.2.3`, `v2.0.0-rc.1`;
    /// pre-releases rank below their release) and remove the other version
    /// tags; tags that are not versions are left alone.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub keep_versions: Option<i64>,
    /// With --keep-versions: keep N per major version.
    #[arg(long, requires = "keep_versions")]
    pub versions_per_major: bool,
}

impl RuleFlags {
    /// True when no rule flag was given (a `--policy` file may be used).
    pub fn is_empty(&self) -> bool {
        self.spec() == RuleSpec::default()
    }

    /// The flags as a [`RuleSpec`].
    pub fn spec(&self) -> RuleSpec {
        RuleSpec {
            repo: match self.repo.as_slice() {
                [] => None,
                [one] => Some(one.clone()),
                many => Some(
                    many.iter()
                        .map(|r| format!("(?:{r})"))
                        .collect::<Vec<_>>()
                        .join("|"),
                ),
            },
            tag: self.tag.clone(),
            keep_tag: self.keep_tag.clone(),
            keep_last: self.keep_last,
            older_than: self.older_than.clone(),
            not_pulled_for: self.not_pulled_for.clone(),
            untagged: self.untagged,
            no_keep_latest: self.no_keep_latest,
            keep_referrers: self.keep_referrers,
            keep_versions: self.keep_versions,
            versions_per_major: self.versions_per_major,
        }
    }
}

/// A policy that cannot be used: where, which rule, which field, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    /// The file, or `command line`.
    pub origin: String,
    /// Line in the file, when known.
    pub line: Option<usize>,
    /// Rule number (from 1) and what names it (`repo "x/.*"`, or a
    /// vendor format's own label such as `rulePriority 2`).
    pub rule: Option<(usize, String)>,
    /// The key at fault.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if let Some((n, repo)) = &self.rule {
            write!(f, ": rule {n} ({repo})")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    version: Option<u32>,
    rules: Vec<RuleSpec>,
}

/// Only the repo patterns, to name the rule a parse error is in.
#[derive(Deserialize)]
struct LooseFile {
    #[serde(default)]
    rules: Vec<LooseRule>,
}

#[derive(Deserialize)]
struct LooseRule {
    #[serde(default)]
    repo: Option<serde_norway::Value>,
}

const COMMAND_LINE: &str = "command line";

impl Policy {
    /// A policy of regsweep rules from `origin`, with nothing in use.
    pub fn new(origin: &str, rules: Vec<Rule>) -> Policy {
        Policy {
            origin: origin.to_string(),
            rules,
            vendor: None,
            in_use: Default::default(),
        }
    }

    /// A policy in a vendor's format from `origin`.
    pub fn vendor(origin: &str, v: super::formats::Vendor) -> Policy {
        Policy {
            vendor: Some(Box::new(v)),
            ..Policy::new(origin, Vec::new())
        }
    }

    /// One rule from `prune`'s flags; `repo` defaults to every repository.
    pub fn from_flags(flags: &RuleFlags) -> Result<Policy, PolicyError> {
        let mut spec = flags.spec();
        let empty = Policy::new(COMMAND_LINE, Vec::new());
        if spec.keep_last.is_none()
            && spec.keep_versions.is_none()
            && spec.older_than.is_none()
            && spec.not_pulled_for.is_none()
            && !spec.untagged
        {
            return Err(empty.check_removes_something().unwrap_err());
        }
        if spec.repo.is_none() {
            spec.repo = Some(".*".to_string());
        }
        let rule = compile(&spec, COMMAND_LINE, None, |f: &str| {
            format!("--{}", f.replace('_', "-"))
        })?;
        let policy = Policy::new(COMMAND_LINE, vec![rule]);
        policy.check_removes_something()?;
        Ok(policy)
    }

    /// Reads a policy file: JSON when its name ends in `.json`, else YAML.
    pub fn from_file(path: &Path) -> Result<Policy, PolicyError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            origin: origin.clone(),
            line: None,
            rule: None,
            field: None,
            message: format!("cannot read: {e}"),
        })?;
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        Policy::parse(&text, json, &origin)
    }

    /// Parses policy text (`json` or YAML); `origin` names it in errors.
    pub fn parse(text: &str, json: bool, origin: &str) -> Result<Policy, PolicyError> {
        let parsed: Result<PolicyFile, (String, Option<usize>, String)> = if json {
            let mut de = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(&mut de).map_err(|e| {
                (
                    e.path().to_string(),
                    Some(e.inner().line()),
                    e.inner().to_string(),
                )
            })
        } else {
            serde_path_to_error::deserialize(serde_norway::Deserializer::from_str(text)).map_err(
                |e| {
                    let line = e.inner().location().map(|l| l.line());
                    (e.path().to_string(), line, e.inner().to_string())
                },
            )
        };
        let file = match parsed {
            Ok(f) => f,
            Err((path, line, message)) => {
                return Err(parse_error(text, json, origin, &path, line, message))
            }
        };
        let err = |message: String| PolicyError {
            origin: origin.to_string(),
            line: None,
            rule: None,
            field: None,
            message,
        };
        if let Some(v) = file.version {
            if v != 1 {
                return Err(PolicyError {
                    field: Some("version".into()),
                    ..err(format!(
                        "unsupported version {v}; this regsweep reads version 1"
                    ))
                });
            }
        }
        if file.rules.is_empty() {
            return Err(err("the policy has no rules".into()));
        }
        let rules = file
            .rules
            .iter()
            .enumerate()
            .map(|(i, spec)| compile(spec, origin, Some(i + 1), |f: &str| f.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let policy = Policy::new(origin, rules);
        policy.check_removes_something()?;
        Ok(policy)
    }

    /// Checks the policy against the run: `not_pulled_for` needs access
    /// logs (without them every image looks never pulled).
    pub fn validate(&self, access_logs_given: bool) -> Result<(), PolicyError> {
        if access_logs_given {
            return Ok(());
        }
        if let Some(v) = self.vendor.as_deref().filter(|v| v.uses_pulls()) {
            return Err(PolicyError {
                origin: self.origin.clone(),
                line: None,
                rule: None,
                field: None,
                message: format!(
                    "this {} policy looks at pull times: give --access-log FILE (pull times come only from the registry's logs)",
                    v.name()
                ),
            });
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.not_pulled_for.is_some() {
                let cli = self.origin == COMMAND_LINE;
                return Err(PolicyError {
                    origin: self.origin.clone(),
                    line: None,
                    rule: (!cli).then(|| (i + 1, format!("repo {:?}", rule.repo.as_str()))),
                    field: Some(if cli { "--not-pulled-for" } else { "not_pulled_for" }.into()),
                    message: "needs the registry's logs: give --access-log FILE (pull times come only from logs)"
                        .into(),
                });
            }
        }
        Ok(())
    }

    fn check_removes_something(&self) -> Result<(), PolicyError> {
        if self.vendor.is_some() || self.rules.iter().any(|r| r.removes_tags() || r.untagged) {
            return Ok(());
        }
        Err(PolicyError {
            origin: self.origin.clone(),
            line: None,
            rule: None,
            field: None,
            message: "the policy removes nothing: give keep_last, keep_versions, older_than, not_pulled_for or untagged \
                      (flags --keep-last, --keep-versions, --older-than, --not-pulled-for, --untagged)"
                .into(),
        })
    }
}

/// Turns a deserialization error into one naming the rule and field.
fn parse_error(
    text: &str,
    json: bool,
    origin: &str,
    path: &str,
    line: Option<usize>,
    message: String,
) -> PolicyError {
    // `path` is like `rules[1].keep_last` (0-based index), or `.` at the top.
    let mut rule = None;
    let mut field = None;
    if let Some(rest) = path.strip_prefix("rules[") {
        if let Some((idx, after)) = rest.split_once(']') {
            if let Ok(i) = idx.parse::<usize>() {
                let loose: Option<LooseFile> = if json {
                    serde_json::from_str(text).ok()
                } else {
                    serde_norway::from_str(text).ok()
                };
                let repo = loose
                    .and_then(|l| l.rules.into_iter().nth(i))
                    .and_then(|r| r.repo)
                    .map(|v| match v {
                        serde_norway::Value::String(s) => format!("repo {s:?}"),
                        other => format!("repo {other:?}"),
                    })
                    .unwrap_or_else(|| "repo ?".to_string());
                rule = Some((i + 1, repo));
                let f = after.trim_start_matches('.');
                if !f.is_empty() {
                    field = Some(f.split(['.', '[']).next().unwrap_or(f).to_string());
                }
            }
        }
    } else if path != "." && !path.is_empty() {
        field = Some(path.to_string());
    }
    // The line is already in the message of serde_norway/serde_json; keep it
    // once, in front.
    let message = strip_location(&message);
    PolicyError {
        origin: origin.to_string(),
        line,
        rule,
        field,
        message,
    }
}

/// Drops a trailing " at line L column C" that the parsers append.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Validates one rule. `n` is its number in a file (None from flags);
/// `name` spells a field the way the user wrote it.
fn compile(
    spec: &RuleSpec,
    origin: &str,
    n: Option<usize>,
    name: impl Fn(&str) -> String,
) -> Result<Rule, PolicyError> {
    let repo_src = spec.repo.clone().unwrap_or_default();
    let err = |field: &str, message: String| PolicyError {
        origin: origin.to_string(),
        line: None,
        rule: n.map(|n| (n, format!("repo {repo_src:?}"))),
        field: Some(name(field)),
        message,
    };
    let pattern = |field: &str, src: &str| {
        Pattern::new(src).map_err(|e| err(field, format!("invalid regex {src:?}: {e}")))
    };
    let Some(repo) = &spec.repo else {
        return Err(err(
            "repo",
            "missing: every rule names its repositories (e.g. repo: \".*\")".into(),
        ));
    };
    let repo = pattern("repo", repo)?;
    let tag = spec.tag.as_deref().map(|t| pattern("tag", t)).transpose()?;
    let keep_tag = spec
        .keep_tag
        .iter()
        .map(|t| pattern("keep_tag", t))
        .collect::<Result<Vec<_>, _>>()?;
    let keep_last = match spec.keep_last {
        None => None,
        Some(k) if k >= 1 => Some(usize::try_from(k).unwrap_or(usize::MAX)),
        Some(k) => {
            return Err(err(
                "keep_last",
                format!("{k} keeps nothing; give a count of at least 1, or leave it out"),
            ))
        }
    };
    let keep_versions = match spec.keep_versions {
        None => None,
        Some(k) if k >= 1 => Some(usize::try_from(k).unwrap_or(usize::MAX)),
        Some(k) => {
            return Err(err(
                "keep_versions",
                format!("{k} keeps nothing; give a count of at least 1, or leave it out"),
            ))
        }
    };
    if spec.versions_per_major && keep_versions.is_none() {
        return Err(err(
            "versions_per_major",
            "needs keep_versions (how many versions to keep per major)".into(),
        ));
    }
    let duration = |field: &str, v: &Option<String>| -> Result<Option<Duration>, PolicyError> {
        v.as_deref()
            .map(|s| {
                humantime::parse_duration(s.trim()).map_err(|e| {
                    err(
                        field,
                        format!("invalid duration {s:?}: {e} (write e.g. 30d, 12h, 90days)"),
                    )
                })
            })
            .transpose()
    };
    let older_than = duration("older_than", &spec.older_than)?;
    let not_pulled_for = duration("not_pulled_for", &spec.not_pulled_for)?;
    let rule = Rule {
        repo,
        tag,
        keep_tag,
        keep_last,
        older_than,
        not_pulled_for,
        untagged: spec.untagged,
        keep_latest: !spec.no_keep_latest,
        keep_referrers: spec.keep_referrers,
        keep_versions,
        versions_per_major: spec.versions_per_major,
    };
    if rule.tag.is_some() && !rule.removes_tags() {
        return Err(err(
            "tag",
            "a tag pattern needs keep_last, keep_versions, older_than or not_pulled_for to say which of its tags go \
             (to remove every matching tag, use older_than: 0s)"
                .into(),
        ));
    }
    if !rule.removes_tags() && !rule.untagged && rule.keep_tag.is_empty() && !rule.keep_referrers {
        return Err(PolicyError {
            field: None,
            ..err(
                "repo",
                "the rule does nothing: give keep_last, keep_versions, older_than, not_pulled_for, untagged or keep_tag".into(),
            )
        });
    }
    Ok(rule)
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
