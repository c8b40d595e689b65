//! Policy parsing and validation: files (YAML, JSON), flags, errors.

use super::*;

fn yaml(text: &str) -> Result<Policy, PolicyError> {
    Policy::parse(text, false, "p.yaml")
}

fn json(text: &str) -> Result<Policy, PolicyError> {
    Policy::parse(text, true, "p.json")
}

#[test]
fn yaml_policy_with_two_rules() {
    let p = yaml(
        "version: 1\nrules:\n  - repo: 'team-x/.*'\n    tag: 'pr-.*'\n    not_pulled_for: 90d\n  \
         - repo: '.*'\n    keep_tag: ['release-.*', 'stable']\n    keep-last: 10\n    older_than: 30days\n    untagged: true\n",
    )
    .unwrap();
    assert_eq!(p.rules.len(), 2);
    let r0 = &p.rules[0];
    assert!(r0.repo.matches("team-x/api") && !r0.repo.matches("team-y/api"));
    assert!(r0.tag.as_ref().unwrap().matches("pr-12"));
    assert_eq!(r0.not_pulled_for, Some(Duration::from_secs(90 * 86400)));
    assert!(r0.keep_latest && !r0.untagged);
    let r1 = &p.rules[1];
    assert_eq!(r1.keep_last, Some(10));
    assert_eq!(r1.older_than, Some(Duration::from_secs(30 * 86400)));
    assert_eq!(r1.keep_tag.len(), 2);
    assert!(r1.untagged);
}

#[test]
fn json_policy_and_single_keep_tag() {
    let p = json(r#"{"rules": [{"repo": "app", "keep_tag": "v1", "keep_last": 3, "no_keep_latest": true, "keep_referrers": true}]}"#)
        .unwrap();
    let r = &p.rules[0];
    assert_eq!(r.keep_tag.len(), 1);
    assert!(!r.keep_latest && r.keep_referrers);
}

#[test]
fn patterns_match_whole_names() {
    let p = Pattern::new("v1").unwrap();
    assert!(p.matches("v1"));
    assert!(!p.matches("v10") && !p.matches("xv1"));
    let alt = Pattern::new("a|b").unwrap();
    assert!(alt.matches("a") && alt.matches("b") && !alt.matches("ab"));
    // A multi-line flag inside the pattern cannot escape the anchors.
    let m = Pattern::new("(?m)x$").unwrap();
    assert!(!m.matches("x\ny"));
}

#[test]
fn unknown_key_names_rule_and_key() {
    let e = yaml("rules:\n  - repo: a\n    keep_last: 2\n  - repo: 'b/.*'\n    keep_lats: 5\n")
        .unwrap_err();
    assert_eq!(e.rule, Some((2, "repo \"b/.*\"".to_string())), "{e}");
    assert!(e.message.contains("keep_lats"), "{e}");
    assert_eq!(e.line, Some(5), "{e}");
    let shown = e.to_string();
    assert!(
        shown.starts_with("p.yaml line 5: rule 2 (repo \"b/.*\")"),
        "{shown}"
    );
}

#[test]
fn unknown_key_in_json_and_at_top() {
    let e = json(r#"{"rules": [{"repo": "a", "keep_last": 1, "olderThan": "3d"}]}"#).unwrap_err();
    assert_eq!(e.rule, Some((1, "repo \"a\"".to_string())));
    assert!(e.message.contains("olderThan"), "{e}");
    let e = yaml("rule:\n  - repo: a\n").unwrap_err();
    assert!(e.message.contains("rule"), "{e}");
    assert_eq!(e.rule, None);
}

#[test]
fn invalid_regex_names_rule_field_and_regex_error() {
    let e = yaml("rules:\n  - repo: a\n    keep_last: 1\n  - repo: '.*'\n    tag: 'pr-(['\n    keep_last: 2\n").unwrap_err();
    assert_eq!(e.rule, Some((2, "repo \".*\"".to_string())));
    assert_eq!(e.field.as_deref(), Some("tag"));
    assert!(
        e.message.contains("invalid regex") && e.message.contains("pr-(["),
        "{e}"
    );
    let e = yaml("rules:\n  - repo: 'a('\n    keep_last: 1\n").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("repo"));
    let e =
        yaml("rules:\n  - repo: a\n    keep_last: 1\n    keep_tag: [ok, '*bad']\n").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("keep_tag"));
}

#[test]
fn keep_last_below_one_is_refused() {
    for k in ["0", "-3"] {
        let e = yaml(&format!("rules:\n  - repo: a\n    keep_last: {k}\n")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("keep_last"), "{e}");
        assert!(e.message.contains(k), "{e}");
    }
    let flags = RuleFlags {
        keep_last: Some(0),
        ..Default::default()
    };
    let e = Policy::from_flags(&flags).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("--keep-last"));
    assert_eq!(e.origin, "command line");
}

#[test]
fn wrong_type_names_the_field() {
    let e = yaml("rules:\n  - repo: a\n    keep_last: ten\n").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("keep_last"), "{e}");
    assert_eq!(e.rule, Some((1, "repo \"a\"".to_string())));
    let e = yaml("rules:\n  - repo: a\n    older_than: 30x\n").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("older_than"), "{e}");
    assert!(e.message.contains("30x"), "{e}");
}

#[test]
fn empty_and_useless_policies_are_refused() {
    let e = yaml("rules: []\n").unwrap_err();
    assert!(e.message.contains("no rules"), "{e}");
    let e = yaml("rules:\n  - repo: a\n    keep_tag: v1\n").unwrap_err();
    assert!(e.message.contains("removes nothing"), "{e}");
    let e = yaml("rules:\n  - repo: a\n").unwrap_err();
    assert!(e.message.contains("does nothing"), "{e}");
    let e = yaml("rules:\n  - repo: a\n    tag: 'pr-.*'\n").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("tag"), "{e}");
    let e = yaml("rules:\n  - keep_last: 3\n").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("repo"), "{e}");
    let e = Policy::from_flags(&RuleFlags::default()).unwrap_err();
    assert!(e.message.contains("removes nothing"), "{e}");
    let e = yaml("version: 2\nrules:\n  - repo: a\n    untagged: true\n").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("version"));
}

#[test]
fn flags_make_one_rule_over_every_repository() {
    let flags = RuleFlags {
        keep_last: Some(10),
        keep_tag: vec!["release-.*".into(), "prod".into()],
        older_than: Some("12h".into()),
        ..Default::default()
    };
    assert!(!flags.is_empty() && RuleFlags::default().is_empty());
    let p = Policy::from_flags(&flags).unwrap();
    let r = &p.rules[0];
    assert!(r.repo.matches("any/thing"));
    assert_eq!(r.keep_tag.len(), 2);
    assert_eq!(r.older_than, Some(Duration::from_secs(12 * 3600)));
    let bad = RuleFlags {
        repo: vec!["(".into()],
        keep_last: Some(1),
        ..Default::default()
    };
    let e = Policy::from_flags(&bad).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("--repo"));
}

#[test]
fn not_pulled_for_needs_access_logs() {
    let p =
        yaml("rules:\n  - repo: a\n    keep_last: 1\n  - repo: 'b.*'\n    not_pulled_for: 90d\n")
            .unwrap();
    assert!(p.validate(true).is_ok());
    let e = p.validate(false).unwrap_err();
    assert_eq!(e.rule, Some((2, "repo \"b.*\"".to_string())));
    assert_eq!(e.field.as_deref(), Some("not_pulled_for"));
    let flags = RuleFlags {
        not_pulled_for: Some("30d".into()),
        ..Default::default()
    };
    let e = Policy::from_flags(&flags)
        .unwrap()
        .validate(false)
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("--not-pulled-for"));
}

#[test]
fn example_policy_in_docs_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/policy-example.yaml");
    let p = Policy::from_file(&path).unwrap();
    assert!(p.rules.len() >= 2);
    assert!(p.validate(true).is_ok());
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let e = Policy::from_file(Path::new("/nonexistent/policy.yaml")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/policy.yaml: cannot read"),
        "{e}"
    );
}
