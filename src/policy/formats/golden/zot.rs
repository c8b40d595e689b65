//! zot retention: the "Complete configuration file example" and the
//! "simple policy example" of zot's documentation
//! (project-zot/zot, `docs/articles/retention.md`, also on zotregistry.dev,
//! "Retention policies"), and the cases of zot's own tests of retention
//! (`pkg/storage/gc/gc_test.go`, repository `retention`).

use super::*;
use crate::policy::formats::zot::Retention;
use crate::policy::formats::Vendor;

fn zot(json: &str) -> Vendor {
    Vendor::Zot(
        Retention::parse(json, true, "config.json").unwrap_or_else(|e| panic!("{e}\n{json}")),
    )
}

const COMPLETE: &str = r#"{"storage": {"rootDirectory": "/tmp/zot", "gc": true, "gcDelay": "2h",
  "retention": {"dryRun": false, "delay": "24h", "policies": [
    {"repositories": ["infra/*", "prod/*"], "deleteReferrers": false,
     "keepTags": [{"patterns": ["v2.*", ".*-prod"]},
                  {"patterns": ["v3.*", ".*-prod"], "pulledWithin": "168h"}]},
    {"repositories": ["tmp/**"], "deleteReferrers": true, "deleteUntagged": true,
     "keepTags": [{"patterns": ["v1.*"], "pulledWithin": "168h", "pushedWithin": "168h"}]},
    {"repositories": ["**"], "deleteReferrers": true, "deleteUntagged": true,
     "keepTags": [{"mostRecentlyPushedCount": 10, "mostRecentlyPulledCount": 10,
                   "pulledWithin": "720h", "pushedWithin": "720h"}]}]}}}"#;

/// `infra/*`: `v2.*` and `.*-prod` tags stay, `v3.*` ones pulled (or
/// pushed) within 168h, every other tag goes; untagged manifests older
/// than the 24h delay go.
#[test]
fn complete_example_first_policy() {
    let repo = Repo::new("infra/app")
        .at("v2.0", &["v2.0"], 100 * DAY)
        .at("x-prod", &["x-prod"], 100 * DAY)
        .at("v3.1", &["v3.1"], 100 * DAY)
        .pulled("v3.1", 2 * DAY)
        .at("v3.0", &["v3.0"], 100 * DAY)
        .pulled("v3.0", 30 * DAY)
        .at("v3.2", &["v3.2"], DAY)
        .at("dev", &["dev"], HOUR)
        .at("old-untagged", &[], 2 * DAY)
        .at("new-untagged", &[], 2 * HOUR);
    let d = run(zot(COMPLETE), &[&repo]);
    assert_eq!(gone(&d, &repo), set(&["v3.0", "dev", "old-untagged"]));
    assert!(matches!(
        untagged_reason(&d, "infra/app", "new-untagged"),
        Reason::Retained { .. }
    ));
}

/// `infra/team/app` does not match `infra/*` and falls to `**`: the 10
/// most recently pushed (and pulled) tags stay, older ones not used
/// within 720h go. (A never-pulled tag would still fill a
/// `mostRecentlyPulledCount` place, in an order zot leaves undefined.)
/// `tmp/**` also matches `tmp`: `v1.*` pushed within 168h stay.
#[test]
fn complete_example_other_policies() {
    let mut deep = Repo::new("infra/team/app");
    for i in 0..12 {
        let t = format!("t{i}");
        deep = deep
            .at(&t, &[&t], (40 + i) * DAY)
            .pulled(&t, (35 + i) * DAY);
    }
    let tmp = Repo::new("tmp")
        .at("v1.0", &["v1.0"], 2 * DAY)
        .at("v1.1", &["v1.1"], 10 * DAY)
        .at("other", &["other"], DAY);
    let d = run(zot(COMPLETE), &[&deep, &tmp]);
    assert_eq!(gone(&d, &deep), set(&["t10", "t11"]));
    assert_eq!(gone(&d, &tmp), set(&["v1.1", "other"]));
}

/// The simple example: a policy without `repositories` matches nothing,
/// so a repository outside `infra/*` and `tmp/**` keeps every tag; its
/// untagged manifests still go after the delay.
#[test]
fn simple_example_unmatched_repository() {
    let json = r#"{"retention": {"delay": "24h", "policies": [
        {"repositories": ["infra/*", "tmp/**"], "deleteReferrers": false, "deleteUntagged": true,
         "keepTags": [{"patterns": ["v2.*", ".*-prod"], "mostRecentlyPushedCount": 10,
                       "mostRecentlyPulledCount": 10, "pulledWithin": "720h", "pushedWithin": "720h"}]},
        {"keepTags": [{"patterns": [".*"]}]}]}}"#;
    let other = Repo::new("apps/web")
        .at("old", &["old"], 400 * DAY)
        .at("dangling", &[], 3 * DAY);
    let infra = Repo::new("infra/db")
        .at("v2.0", &["v2.0"], 400 * DAY)
        .at("dev", &["dev"], DAY);
    let d = run(zot(json), &[&other, &infra]);
    assert_eq!(gone(&d, &other), set(&["dangling"]));
    assert_eq!(gone(&d, &infra), set(&["dev"]));
}

/// `gc_test.go`'s repository: tags with (push, last pull) ages in days.
fn gc_test_repo() -> Repo {
    let mut r = Repo::new("retention");
    for (t, push, pull) in [
        ("0.0.1", 10, 10),
        ("0.0.2", 11, 11),
        ("0.0.3", 12, 12),
        ("0.0.7", 13, 13),
        ("0.0.4", 1, 1),
        ("0.0.5", 2, 2),
        ("0.0.6", 3, 2),
        ("0.0.8", 4, 4),
    ] {
        r = r.at(t, &[t], push * DAY).pulled(t, pull * DAY);
    }
    r
}

fn policy(keep_tags: &str) -> String {
    format!(
        r#"{{"retention": {{"delay": "1ms", "policies": [{{"repositories": ["**"],
            "deleteReferrers": true, "deleteUntagged": true {keep_tags}}}]}}}}"#
    )
}

#[test]
fn gc_test_cases() {
    let repo = gc_test_repo();
    let all = [
        "0.0.1", "0.0.2", "0.0.3", "0.0.4", "0.0.5", "0.0.6", "0.0.7", "0.0.8",
    ];
    let cases: [(&str, &[&str]); 6] = [
        (
            r#", "keepTags": [{"patterns": [".*"], "pulledWithin": "168h", "pushedWithin": "168h"}]"#,
            &["0.0.4", "0.0.5", "0.0.6", "0.0.8"],
        ),
        (
            r#", "keepTags": [{"patterns": [".*"], "mostRecentlyPushedCount": 3}]"#,
            &["0.0.4", "0.0.5", "0.0.6"],
        ),
        (
            r#", "keepTags": [{"patterns": [".*"], "mostRecentlyPulledCount": 3}]"#,
            &["0.0.4", "0.0.5", "0.0.6"],
        ),
        (
            r#", "keepTags": [{"patterns": [".*"], "mostRecentlyPulledCount": 3, "mostRecentlyPushedCount": 4}]"#,
            &["0.0.4", "0.0.5", "0.0.6", "0.0.8"],
        ),
        // "first match rule logic": 0.0.5 was pulled exactly 48h ago,
        // not after the cutoff.
        (
            r#", "keepTags": [{"patterns": ["0.0.1"]}, {"patterns": ["0.0.2"]}, {"patterns": [".*"], "pulledWithin": "48h"}]"#,
            &["0.0.1", "0.0.2", "0.0.4"],
        ),
        // "retain all tags if keeptags is not specified".
        ("", &all),
    ];
    for (keep_tags, kept) in cases {
        let d = run(zot(&policy(keep_tags)), &[&repo]);
        let expected: BTreeSet<String> = set(&all).difference(&set(kept)).cloned().collect();
        assert_eq!(gone_tags(&d, &repo), expected, "{keep_tags}");
    }
    // "remove one tag because it didn't match, preserve tags without
    // statistics": 0.0.9 has none.
    let repo = repo.image("0.0.9", &["0.0.9"], None);
    let d = run(
        zot(&policy(
            r#", "keepTags": [{"patterns": ["0.0.[1-5]", "0.0.7"]}]"#,
        )),
        &[&repo],
    );
    assert_eq!(gone_tags(&d, &repo), set(&["0.0.6", "0.0.8"]));
    // A policy for another repository leaves this one's tags alone.
    let other = r#"{"retention": {"policies": [{"repositories": ["no-match"], "keepTags": [{"patterns": ["v1"]}]}]}}"#;
    assert!(gone_tags(&run(zot(other), &[&repo]), &repo).is_empty());
    // `keepTags: []` keeps every tag.
    assert!(gone_tags(&run(zot(&policy(r#", "keepTags": []"#)), &[&repo]), &repo).is_empty());
}

/// Invalid blocks are refused naming the file, the policy and the field.
#[test]
fn invalid_blocks_name_policy_and_field() {
    for (keep_tags, field) in [
        (r#", "keepTags": [{"patterns": ["(v1"]}]"#, "patterns"),
        (r#", "keepTags": [{"pulledWithin": "7d"}]"#, "pulledWithin"),
        (
            r#", "keepTags": [{"mostRecentlyPushedCount": -1}]"#,
            "mostRecentlyPushedCount",
        ),
        (r#", "keepTagz": []"#, "keepTagz"),
    ] {
        let e = Retention::parse(&policy(keep_tags), true, "config.json")
            .err()
            .unwrap_or_else(|| panic!("accepted {keep_tags}"));
        assert_eq!(e.origin, "config.json");
        assert_eq!(e.rule.as_ref().map(|r| r.0), Some(1), "{e}");
        assert!(
            e.field.as_deref().is_some_and(|f| f.contains(field)) || e.message.contains(field),
            "{field}: {e}"
        );
    }
}
