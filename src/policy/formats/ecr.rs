//! An ECR lifecycle policy, evaluated as ECR documents it (the
//! "Lifecycle policy evaluation rules" and every example of the ECR user
//! guide hold; see `docs/retention.md`):
//!
//! * the unit is the image: a manifest with all its tags; expiring it
//!   removes every tag and the manifest;
//! * `tagged` selects images with at least one tag where *every* entry of
//!   `tagPrefixList` (a prefix) or `tagPatternList` (a whole-tag glob, `*`
//!   any run, at most four) matches some tag of the image; `untagged`
//!   images without tags; `any` all;
//! * each rule's candidates are computed from its own selection alone:
//!   `imageCountMoreThan N` ranks the selected images newest first by push
//!   time (ties: digest) and takes those after the N-th;
//!   `sinceImagePushed N days` those pushed more than N days ago;
//! * rules are applied by ascending `rulePriority`: a candidate is expired
//!   by the rule unless an earlier rule expired it or *selected* it (an
//!   image a higher-priority rule's tags match, kept or not, cannot be
//!   expired by a lower one);
//! * `transition` rules (archive storage) act on their candidates without
//!   removing them here — regsweep's storage has no archive class — and
//!   `storageClass: archive` selects nothing.
//!
//! Validation is ECR's: unique priorities, one `any` rule at the highest
//! priority of its storage class, prefixes or patterns only (and one of
//! them) with `tagged`, `countUnit: days` only with the `since*` types,
//! `countNumber` ≥ 1, `sinceImagePulled` only with `transition`.

use super::load::field_error;
use super::{days_ago, pushed_at, Images, Plain, Said};
use crate::policy::{PolicyError, Reason};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

/// A validated lifecycle policy: rules by ascending priority.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    rules: Vec<EcrRule>,
}

#[derive(Debug, Clone)]
struct EcrRule {
    priority: i64,
    status: Status,
    count: Count,
    archive_class: bool,
    transition: bool,
}

#[derive(Debug, Clone)]
enum Status {
    Tagged(Vec<Entry>),
    Untagged,
    Any,
}

#[derive(Debug, Clone)]
enum Entry {
    Prefix(String),
    Pattern(String),
}

#[derive(Debug, Clone)]
enum Count {
    MoreThan(usize),
    SincePushed(u64),
    SincePulled(u64),
    SinceTransitioned(u64),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    rules: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleSpec {
    rule_priority: i64,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    selection: Selection,
    action: Action,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Selection {
    tag_status: String,
    #[serde(default)]
    tag_prefix_list: Option<Vec<String>>,
    #[serde(default)]
    tag_pattern_list: Option<Vec<String>>,
    #[serde(default)]
    storage_class: Option<String>,
    count_type: String,
    #[serde(default)]
    count_unit: Option<String>,
    count_number: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Action {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    target_storage_class: Option<String>,
}

fn label(v: &Value) -> String {
    match v.get("rulePriority") {
        Some(p) => format!("rulePriority {p}"),
        None => "rulePriority ?".into(),
    }
}

impl Lifecycle {
    /// Parses and validates a policy document.
    pub fn parse(text: &str, json: bool, origin: &str) -> Result<Lifecycle, PolicyError> {
        let doc: Doc = super::load::typed(text, json, origin, "rules", label)?;
        let whole = |message: String| field_error(origin, Some("rules"), message);
        if doc.rules.is_empty() {
            return Err(whole("the policy has no rules".into()));
        }
        if doc.rules.len() > 50 {
            return Err(whole(format!(
                "{} rules: ECR allows at most 50",
                doc.rules.len()
            )));
        }
        let mut rules = Vec::new();
        let mut seen: HashMap<i64, usize> = HashMap::new();
        for (i, r) in doc.rules.iter().enumerate() {
            let n = i + 1;
            let err = |field: &str, message: String| {
                super::load::rule_error(
                    origin,
                    n,
                    format!("rulePriority {}", r.rule_priority),
                    field,
                    message,
                )
            };
            if r.rule_priority < 1 {
                return Err(err(
                    "rulePriority",
                    format!("{}: give a positive integer", r.rule_priority),
                ));
            }
            if let Some(other) = seen.insert(r.rule_priority, n) {
                return Err(err(
                    "rulePriority",
                    format!("the same priority as rule {other}: priorities must be unique"),
                ));
            }
            let s = &r.selection;
            let lists = (s.tag_prefix_list.as_ref(), s.tag_pattern_list.as_ref());
            let status = match s.tag_status.as_str() {
                "tagged" => match lists {
                    (Some(_), Some(_)) => {
                        return Err(err(
                            "selection",
                            "give tagPrefixList or tagPatternList, not both".into(),
                        ))
                    }
                    (Some(l), None) if !l.is_empty() => {
                        Status::Tagged(l.iter().cloned().map(Entry::Prefix).collect())
                    }
                    (None, Some(l)) if !l.is_empty() => {
                        for p in l {
                            if p.matches('*').count() > 4 {
                                return Err(err(
                                    "selection.tagPatternList",
                                    format!("{p:?}: at most four wildcards (*) per pattern"),
                                ));
                            }
                        }
                        Status::Tagged(l.iter().cloned().map(Entry::Pattern).collect())
                    }
                    _ => {
                        return Err(err(
                            "selection.tagStatus",
                            "tagged needs a non-empty tagPrefixList or tagPatternList".into(),
                        ))
                    }
                },
                "untagged" | "any" => {
                    let list = match lists {
                        (Some(_), _) => Some("selection.tagPrefixList"),
                        (None, Some(_)) => Some("selection.tagPatternList"),
                        (None, None) => None,
                    };
                    if let Some(field) = list {
                        return Err(err(
                            field,
                            format!("goes only with tagStatus tagged, not {}", s.tag_status),
                        ));
                    }
                    if s.tag_status == "any" {
                        Status::Any
                    } else {
                        Status::Untagged
                    }
                }
                other => {
                    return Err(err(
                        "selection.tagStatus",
                        format!("{other:?}: one of tagged, untagged, any"),
                    ))
                }
            };
            if s.count_number < 1 {
                return Err(err(
                    "selection.countNumber",
                    format!("{}: give a positive integer", s.count_number),
                ));
            }
            let number = s.count_number as u64;
            let since = |unit: &Option<String>| -> Result<u64, PolicyError> {
                match unit.as_deref() {
                    Some("days") => Ok(number),
                    Some(u) => Err(err(
                        "selection.countUnit",
                        format!("{u:?}: the only unit is days"),
                    )),
                    None => Err(err(
                        "selection.countUnit",
                        format!("missing: {} needs countUnit days", s.count_type),
                    )),
                }
            };
            let count = match s.count_type.as_str() {
                "imageCountMoreThan" => {
                    if s.count_unit.is_some() {
                        return Err(err("selection.countUnit", "not allowed with imageCountMoreThan".into()));
                    }
                    Count::MoreThan(number as usize)
                }
                "sinceImagePushed" => Count::SincePushed(since(&s.count_unit)?),
                "sinceImagePulled" => Count::SincePulled(since(&s.count_unit)?),
                "sinceImageTransitioned" => Count::SinceTransitioned(since(&s.count_unit)?),
                other => {
                    return Err(err(
                        "selection.countType",
                        format!("{other:?}: one of imageCountMoreThan, sinceImagePushed, sinceImagePulled, sinceImageTransitioned"),
                    ))
                }
            };
            let archive_class = match s.storage_class.as_deref() {
                None | Some("standard") => false,
                Some("archive") => true,
                Some(c) => {
                    return Err(err(
                        "selection.storageClass",
                        format!("{c:?}: standard or archive"),
                    ))
                }
            };
            let transition = match (
                r.action.kind.as_str(),
                r.action.target_storage_class.as_deref(),
            ) {
                ("expire", None) => false,
                ("expire", Some(_)) => {
                    return Err(err(
                        "action.targetStorageClass",
                        "goes only with type transition".into(),
                    ))
                }
                ("transition", Some("archive")) => true,
                ("transition", _) => {
                    return Err(err(
                        "action.targetStorageClass",
                        "transition needs targetStorageClass archive".into(),
                    ))
                }
                (other, _) => {
                    return Err(err(
                        "action.type",
                        format!("{other:?}: expire or transition"),
                    ))
                }
            };
            if matches!(count, Count::SincePulled(_)) && !transition {
                return Err(err(
                    "selection.countType",
                    "sinceImagePulled goes only with a transition action; ECR does not expire by pull time".into(),
                ));
            }
            if matches!(count, Count::SinceTransitioned(_)) != archive_class {
                return Err(err(
                    "selection.storageClass",
                    "sinceImageTransitioned goes with storageClass archive, and archive only with it".into(),
                ));
            }
            if transition && archive_class {
                return Err(err(
                    "action.type",
                    "archived images cannot be transitioned again".into(),
                ));
            }
            rules.push(EcrRule {
                priority: r.rule_priority,
                status,
                count,
                archive_class,
                transition,
            });
        }
        for (i, r) in rules.iter().enumerate() {
            let same_class = rules.iter().filter(|o| o.archive_class == r.archive_class);
            if matches!(r.status, Status::Any)
                && same_class.clone().any(|o| o.priority > r.priority)
            {
                return Err(super::load::rule_error(
                    origin,
                    i + 1,
                    format!("rulePriority {}", r.priority),
                    "rulePriority",
                    "a tagStatus any rule must have the highest rulePriority (it is evaluated last)".into(),
                ));
            }
            if matches!(r.status, Status::Untagged)
                && same_class
                    .clone()
                    .filter(|o| matches!(o.status, Status::Untagged))
                    .count()
                    > 1
            {
                return Err(super::load::rule_error(
                    origin,
                    i + 1,
                    format!("rulePriority {}", r.priority),
                    "selection.tagStatus",
                    "only one rule may select untagged images".into(),
                ));
            }
        }
        rules.sort_by_key(|r| r.priority);
        Ok(Lifecycle { rules })
    }

    /// Pull times never decide an expiry (`sinceImagePulled` only
    /// transitions).
    pub fn uses_pulls(&self) -> bool {
        false
    }

    /// Decides one repository's images.
    pub fn decide(&self, p: &Plain<'_>, now: SystemTime) -> Said {
        // Images: tagged ones (by digest), then untagged ones.
        let tagged = Images::of(p);
        struct Img<'a> {
            digest: &'a str,
            tags: Vec<&'a str>,
            pushed: Option<SystemTime>,
        }
        let mut imgs: Vec<Img<'_>> = tagged
            .images
            .iter()
            .map(|(d, ix)| Img {
                digest: d,
                tags: ix.iter().map(|&i| p.tags[i].name.as_str()).collect(),
                pushed: pushed_at(p, d, ix),
            })
            .collect();
        let n_tagged = imgs.len();
        imgs.extend(p.untagged.iter().map(|m| Img {
            digest: m.digest.as_str(),
            tags: Vec::new(),
            pushed: m.pushed_at,
        }));
        let mut claimed: HashSet<usize> = HashSet::new();
        let mut result: HashMap<usize, Reason> = HashMap::new();
        let mut first_selector: HashMap<usize, i64> = HashMap::new();
        for r in &self.rules {
            let selected: Vec<usize> = (0..imgs.len())
                .filter(|&i| !r.archive_class && r.selects(&imgs[i].tags))
                .collect();
            let candidates: Vec<usize> = match r.count {
                Count::MoreThan(n) => {
                    let mut order = selected.clone();
                    // Newest first; an unknown push time counts as newest.
                    order.sort_by(|&a, &b| {
                        let t = |i: usize| imgs[i].pushed.unwrap_or(now);
                        t(b).cmp(&t(a))
                            .then_with(|| imgs[a].digest.cmp(imgs[b].digest))
                    });
                    order.into_iter().skip(n).collect()
                }
                Count::SincePushed(days) => {
                    let cut = days_ago(now, days);
                    selected
                        .iter()
                        .copied()
                        .filter(|&i| matches!((imgs[i].pushed, cut), (Some(t), Some(c)) if t < c))
                        .collect()
                }
                Count::SincePulled(_) | Count::SinceTransitioned(_) => Vec::new(),
            };
            let words = r.words();
            for i in candidates {
                if claimed.contains(&i) || result.contains_key(&i) {
                    continue;
                }
                result.insert(
                    i,
                    if r.transition {
                        Reason::Retained {
                            by: format!("{words}: transition to archive, which regsweep's storage does not have"),
                        }
                    } else {
                        Reason::Expired { by: words.clone() }
                    },
                );
            }
            for i in selected {
                first_selector.entry(i).or_insert(r.priority);
                claimed.insert(i);
            }
        }
        let verdict = |i: usize| -> Reason {
            if let Some(r) = result.get(&i) {
                return r.clone();
            }
            match first_selector.get(&i) {
                Some(pri) => {
                    let r = self
                        .rules
                        .iter()
                        .find(|r| r.priority == *pri)
                        .expect("rule");
                    Reason::Retained {
                        by: format!("{} (selected, not expired)", r.words()),
                    }
                }
                None => Reason::Retained {
                    by: "ecr lifecycle policy: no rule selects the image".into(),
                },
            }
        };
        let mut tags = vec![Reason::NotMatched; p.tags.len()];
        for (k, (_, ix)) in tagged.images.iter().enumerate() {
            let v = verdict(k);
            for &i in ix {
                tags[i] = v.clone();
            }
        }
        Said {
            tags,
            untagged: (n_tagged..imgs.len()).map(verdict).collect(),
        }
    }
}

impl EcrRule {
    fn selects(&self, tags: &[&str]) -> bool {
        match &self.status {
            Status::Any => true,
            Status::Untagged => tags.is_empty(),
            Status::Tagged(entries) => {
                !tags.is_empty()
                    && entries.iter().all(|e| {
                        tags.iter().any(|t| match e {
                            Entry::Prefix(p) => t.starts_with(p.as_str()),
                            Entry::Pattern(p) => wildcard(p, t),
                        })
                    })
            }
        }
    }

    /// The rule in ECR's words.
    fn words(&self) -> String {
        let count = match self.count {
            Count::MoreThan(n) => format!("imageCountMoreThan {n}"),
            Count::SincePushed(d) => format!("sinceImagePushed {d} days"),
            Count::SincePulled(d) => format!("sinceImagePulled {d} days"),
            Count::SinceTransitioned(d) => format!("sinceImageTransitioned {d} days"),
        };
        format!("ecr rule {} ({count})", self.priority)
    }
}

/// A whole-string match where `*` matches any run, the empty one included.
pub fn wildcard(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(at) => rest = &rest[at + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn wildcards() {
        assert!(wildcard("prod*", "prod"));
        assert!(wildcard("prod*", "production-team1"));
        assert!(wildcard("*prod*", "repo-production"));
        assert!(!wildcard("prod*", "xprod"));
        assert!(wildcard("a*b*c", "abc"));
        assert!(!wildcard("a*b*c", "acb"));
        assert!(wildcard("v1", "v1"));
        assert!(!wildcard("v1", "v10"));
        assert!(!wildcard("ab*ba", "aba"));
    }
}
