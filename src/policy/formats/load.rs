//! Reading a policy file in any format: telling the format from the
//! content, and parsing a format's document with errors that name the file,
//! the line, the rule and the field.

use crate::policy::{Policy, PolicyError};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::Path;

/// A policy file's format (`prune --policy-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// regsweep's own rules (`rules[]` with `repo`).
    Regsweep,
    /// An ECR lifecycle policy (`rules[]` with `rulePriority`).
    Ecr,
    /// Harbor tag retention (`rules[]` with `template`).
    Harbor,
    /// zot's retention (`policies[]`, alone, under `retention` or `storage.retention`).
    Zot,
    /// A GitLab cleanup policy (`keep_n`, `older_than`, `name_regex`, …).
    Gitlab,
}

/// Keys of a GitLab cleanup policy.
const GITLAB_KEYS: [&str; 7] = [
    "keep_n",
    "older_than",
    "name_regex",
    "name_regex_delete",
    "name_regex_keep",
    "cadence",
    "enabled",
];

/// Tells a policy document's format from its keys.
pub fn detect(v: &Value) -> Result<Format, String> {
    let obj = v
        .as_object()
        .ok_or("the file is not a mapping of keys to values")?;
    if let Some(rules) = obj.get("rules").and_then(Value::as_array) {
        let has = |k: &str| rules.iter().any(|r| r.get(k).is_some());
        if has("rulePriority") || has("selection") {
            return Ok(Format::Ecr);
        }
        if has("template") || has("tag_selectors") || has("scope_selectors") {
            return Ok(Format::Harbor);
        }
        if has("repo") || rules.is_empty() || obj.contains_key("version") {
            return Ok(Format::Regsweep);
        }
    }
    let zot = |o: &serde_json::Map<String, Value>| {
        o.contains_key("policies")
            || o.get("retention").is_some_and(Value::is_object)
            || o.get("storage")
                .and_then(|s| s.get("retention"))
                .is_some_and(Value::is_object)
    };
    if zot(obj) {
        return Ok(Format::Zot);
    }
    let gitlab =
        |o: &serde_json::Map<String, Value>| GITLAB_KEYS.iter().any(|k| o.contains_key(*k));
    if gitlab(obj)
        || [
            "container_expiration_policy",
            "container_expiration_policy_attributes",
        ]
        .iter()
        .any(|k| obj.get(*k).and_then(Value::as_object).is_some_and(gitlab))
    {
        return Ok(Format::Gitlab);
    }
    Err(
        "cannot tell the policy's format from its keys (rules[].repo: regsweep; \
         rules[].rulePriority: ecr; rules[].template: harbor; policies / retention: zot; \
         keep_n, older_than, name_regex: gitlab): give --policy-format"
            .into(),
    )
}

/// Reads the policy in `path`, in `format` or the one its content shows.
pub fn load(path: &Path, format: Option<Format>) -> Result<Policy, PolicyError> {
    let origin = path.display().to_string();
    let err = |message: String| field_error(&origin, None, message);
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| err("not text (invalid UTF-8): not a policy file".into()))?;
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || text.trim_start().starts_with('{');
    let format = match format {
        Some(f) => f,
        None => {
            let value: Value = if json {
                serde_json::from_str(&text).map_err(|e| err(format!("not JSON: {e}")))?
            } else {
                serde_norway::from_str(&text).map_err(|e| err(format!("not YAML: {e}")))?
            };
            detect(&value).map_err(err)?
        }
    };
    let vendor = match format {
        Format::Regsweep => return Policy::parse(&text, json, &origin),
        Format::Ecr => super::Vendor::Ecr(super::ecr::Lifecycle::parse(&text, json, &origin)?),
        Format::Harbor => {
            super::Vendor::Harbor(super::harbor::Retention::parse(&text, json, &origin)?)
        }
        Format::Zot => super::Vendor::Zot(super::zot::Retention::parse(&text, json, &origin)?),
        Format::Gitlab => {
            super::Vendor::Gitlab(super::gitlab::Cleanup::parse(&text, json, &origin)?)
        }
    };
    Ok(Policy::vendor(&origin, vendor))
}

/// Deserializes a format's document. An error names the line, and — when
/// it lies inside the array `list` (`rules`, `policies`) — the rule, by
/// number from 1 and by `label` of its raw value, and the field.
pub(crate) fn typed<T: DeserializeOwned>(
    text: &str,
    json: bool,
    origin: &str,
    list: &str,
    label: impl Fn(&Value) -> String,
) -> Result<T, PolicyError> {
    let parsed: Result<T, (String, Option<usize>, String)> = if json {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let line = e.inner().line();
            (e.path().to_string(), Some(line), e.inner().to_string())
        })
    } else {
        serde_path_to_error::deserialize(serde_norway::Deserializer::from_str(text)).map_err(|e| {
            let line = e.inner().location().map(|l| l.line());
            (e.path().to_string(), line, e.inner().to_string())
        })
    };
    let (path, line, message) = match parsed {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let message = match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message,
    };
    let mut rule = None;
    let mut field = (path != "." && !path.is_empty()).then(|| path.clone());
    let marker = format!("{list}[");
    if let Some(at) = path.find(&marker) {
        let rest = &path[at + marker.len()..];
        if let Some((idx, after)) = rest.split_once(']') {
            if let Ok(i) = idx.parse::<usize>() {
                let raw: Option<Value> = if json {
                    serde_json::from_str(text).ok()
                } else {
                    serde_norway::from_str(text).ok()
                };
                let item = raw
                    .as_ref()
                    .and_then(|v| find_list(v, list))
                    .and_then(|l| l.get(i));
                rule = Some((i + 1, item.map(&label).unwrap_or_else(|| "?".into())));
                let f = after.trim_start_matches('.');
                field = (!f.is_empty()).then(|| f.to_string());
            }
        }
    }
    Err(PolicyError {
        origin: origin.to_string(),
        line,
        rule,
        field,
        message,
    })
}

/// The array `key` at the top of `v` or one or two mappings down.
fn find_list<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    if let Some(l) = v.get(key).filter(|l| l.is_array()) {
        return Some(l);
    }
    v.as_object()?
        .values()
        .find_map(|inner| find_list(inner, key))
}

/// An error in the document as a whole (no rule), at `field` when given.
pub(crate) fn field_error(origin: &str, field: Option<&str>, message: String) -> PolicyError {
    PolicyError {
        origin: origin.to_string(),
        line: None,
        rule: None,
        field: field.map(str::to_string),
        message,
    }
}

/// An error in rule `n` (from 1, named by `label`) at `field`.
pub(crate) fn rule_error(
    origin: &str,
    n: usize,
    label: String,
    field: &str,
    message: String,
) -> PolicyError {
    PolicyError {
        origin: origin.to_string(),
        line: None,
        rule: Some((n, label)),
        field: (!field.is_empty()).then(|| field.to_string()),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(text: &str) -> Result<Format, String> {
        detect(&serde_norway::from_str(text).unwrap())
    }

    #[test]
    fn detects_each_format() {
        assert_eq!(
            fmt("rules: [{repo: '.*', keep_last: 1}]"),
            Ok(Format::Regsweep)
        );
        assert_eq!(
            fmt(r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged"}}]}"#),
            Ok(Format::Ecr)
        );
        assert_eq!(
            fmt(r#"{"algorithm":"or","rules":[{"template":"always"}]}"#),
            Ok(Format::Harbor)
        );
        assert_eq!(
            fmt(r#"{"storage":{"retention":{"policies":[]}}}"#),
            Ok(Format::Zot)
        );
        assert_eq!(fmt("keep_n: 5\nolder_than: 14d"), Ok(Format::Gitlab));
        assert_eq!(
            fmt("container_expiration_policy_attributes: {keep_n: 5}"),
            Ok(Format::Gitlab)
        );
        assert!(fmt("foo: 1").unwrap_err().contains("--policy-format"));
    }
}
