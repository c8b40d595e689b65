//! GitLab cleanup policies: the "Example cleanup policy workflow" of
//! GitLab's documentation (`doc/user/packages/container_registry/reduce_container_registry_storage.md`),
//! and the cases of GitLab's own specification of the cleanup service
//! (`spec/services/projects/container_repository/gitlab/cleanup_tags_service_spec.rb`
//! and its shared examples, "for a cleanup tags service"): tags `latest`,
//! A (1 hour), Ba (5 days), Bb (6 days), C (1 month), D and E (no time).

use super::*;
use crate::policy::formats::gitlab::Cleanup;
use crate::policy::formats::Vendor;

fn gitlab(yaml: &str) -> Vendor {
    Vendor::Gitlab(Cleanup::parse(yaml, false, "cleanup.yml").unwrap_or_else(|e| panic!("{e}")))
}

/// The documentation's workflow: keep 1, keep `production-.*`, remove
/// tags older than 7 days matching `.*` — "the cleanup policy deletes
/// dev-v42, v43 and v42".
#[test]
fn documented_workflow() {
    let repo = Repo::new("group/project").tags(&[
        ("latest", 2 * HOUR),
        ("production-v44", 3 * DAY),
        ("production-v43", 6 * DAY),
        ("production-v42", 11 * DAY),
        ("dev-v44", 2 * DAY),
        ("dev-v43", 5 * DAY),
        ("dev-v42", 10 * DAY),
        ("v44", DAY),
        ("v43", 12 * DAY),
        ("v42", 20 * DAY),
    ]);
    let v = gitlab(
        "keep_n: 1\nname_regex_keep: 'production-.*'\nolder_than: 7d\nname_regex_delete: '.*'\n",
    );
    let d = run(v, &[&repo]);
    assert_eq!(gone_tags(&d, &repo), set(&["dev-v42", "v43", "v42"]));
    assert!(!tag_reason(&d, "group/project", "latest").removes());
}

fn spec_fixture() -> Repo {
    Repo::new("group/project")
        .at("latest-image", &["latest", "A"], HOUR)
        .at("Ba", &["Ba"], 5 * DAY)
        .at("Bb", &["Bb"], 6 * DAY)
        .at("C", &["C"], 30 * DAY)
        .image("D", &["D"], None)
        .image("E", &["E"], None)
}

/// The specification's single-page cases, by their parameters.
#[test]
fn cleanup_service_spec_cases() {
    let repo = spec_fixture();
    let cases: [(&str, &[&str]); 9] = [
        ("name_regex_delete: '.*'", &["A", "Ba", "Bb", "C", "D", "E"]),
        ("name_regex: '.*'", &["A", "Ba", "Bb", "C", "D", "E"]),
        ("name_regex_delete: 'C|D'", &["C", "D"]),
        ("name_regex_delete: 'C|D'\nname_regex_keep: 'C'", &["D"]),
        ("name_regex: 'C|D'\nname_regex_delete: 'D'", &["D"]),
        (
            "name_regex_delete: '.*'\nname_regex_keep: 'B.*'",
            &["A", "C", "D", "E"],
        ),
        ("name_regex: 'A|B.*|C'\nkeep_n: 1", &["Ba", "Bb", "C"]),
        ("name_regex: 'A|B.*|C'", &["A", "Ba", "Bb", "C"]),
        ("name_regex_delete: '.*'\nkeep_n: 3", &["Ba", "Bb", "C"]),
    ];
    for (policy, expected) in cases {
        let d = run(gitlab(policy), &[&repo]);
        assert_eq!(gone_tags(&d, &repo), set(expected), "{policy}");
    }
    for policy in [
        "name_regex_delete: '.*'\nolder_than: 1d",
        "name_regex_delete: '.*'\nkeep_n: 1\nolder_than: 1d",
    ] {
        let d = run(gitlab(policy), &[&repo]);
        assert_eq!(gone_tags(&d, &repo), set(&["Ba", "Bb", "C"]), "{policy}");
    }
}

/// GitLab wraps a regex as `\A` + regex + `\z` without a group, so an
/// alternation is anchored on its ends only: `v1|v2` removes `v1`, `v10`
/// and `xv2`, not `v2x`; and `.*-main` does not keep `main`.
#[test]
fn anchoring_is_gitlabs() {
    let repo = Repo::new("p").tags(&[
        ("v1", 9 * DAY),
        ("v10", 9 * DAY),
        ("xv2", 9 * DAY),
        ("v2x", 9 * DAY),
    ]);
    let d = run(gitlab("name_regex_delete: 'v1|v2'\n"), &[&repo]);
    assert_eq!(gone_tags(&d, &repo), set(&["v1", "v10", "xv2"]));
    // The documentation's API example.
    let repo = Repo::new("p").tags(&[("main", 30 * DAY), ("foo-main", 30 * DAY)]);
    let d = run(
        gitlab(
            r#"{"cadence":"1month","enabled":true,"keep_n":1,"older_than":"14d","name_regex":".*","name_regex_keep":".*-main"}"#,
        ),
        &[&repo],
    );
    assert_eq!(gone_tags(&d, &repo), set(&[]));
    let repo = repo.at("old", &["old"], 60 * DAY);
    let d = run(
        gitlab(
            r#"{"cadence":"1month","enabled":true,"keep_n":1,"older_than":"14d","name_regex":".*","name_regex_keep":".*-main"}"#,
        ),
        &[&repo],
    );
    assert_eq!(gone_tags(&d, &repo), set(&["old"]));
}

/// Invalid policies name the file and the field.
#[test]
fn invalid_policies_name_the_field() {
    for (text, field) in [
        ("name_regex_delete: '*test*'\n", "name_regex_delete"),
        (
            "name_regex_delete: '.*'\nname_regex_keep: '(x'\n",
            "name_regex_keep",
        ),
        ("name_regex_delete: '.*'\nkeep_n: 0\n", "keep_n"),
        ("name_regex_delete: '.*'\nolder_than: soon\n", "older_than"),
        ("name_regex_delete: '.*'\nenabled: false\n", "enabled"),
        ("keep_n: 5\n", "name_regex_delete"),
        ("name_regex_delete: '.*'\nkeep_m: 5\n", "keep_m"),
    ] {
        let e = Cleanup::parse(text, false, "cleanup.yml")
            .err()
            .unwrap_or_else(|| panic!("accepted: {text}"));
        assert_eq!(e.origin, "cleanup.yml");
        assert!(
            e.field.as_deref().is_some_and(|f| f.contains(field)) || e.message.contains(field),
            "{text}: {e}"
        );
    }
}
