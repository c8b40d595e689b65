//! `acr purge`: the examples of Azure/acr-cli's README ("Purge command":
//! filter examples, `--ago`, `--keep`, `--untagged`, `--untagged-only`)
//! and the fixtures of its tests (`cmd/acr/purge_test.go`,
//! `cmd/acr/purge_untagged_only_test.go`).

use super::*;
use crate::policy::formats::acr::Purge;
use crate::policy::formats::Vendor;

fn purge(filters: &[&str], ago: Option<&str>, keep: i64, untagged: bool, only: bool) -> Vendor {
    let filters: Vec<String> = filters.iter().map(|s| s.to_string()).collect();
    Vendor::Acr(
        Purge::new(&filters, ago, Some(keep), untagged, only).unwrap_or_else(|e| panic!("{e}")),
    )
}

/// `FourTagsResult`: v1…v4 updated at the same time, keep 1 — v1, first
/// as the registry lists them, stays (`TestPurgeTags`, "keep 1").
#[test]
fn four_tags_keep_one() {
    let repo = Repo::new("hello-world").tags(&[
        ("v1", 15 * MIN),
        ("v2", 15 * MIN),
        ("v3", 15 * MIN),
        ("v4", 15 * MIN),
    ]);
    let d = run(
        purge(&["hello-world:[\\s\\S]*"], Some("0m"), 1, false, false),
        &[&repo],
    );
    assert_eq!(gone_tags(&d, &repo), set(&["v2", "v3", "v4"]));
}

/// `FourTagsWithRepoFilterMatch`: v1-a (15 minutes), v1-b (1 day), v1-c
/// (2 days), v2 (3 days). `v1-.*`, ago 0, keep 1 removes v1-c and v1-b;
/// ago 30m, keep 1 only v1-c (v1-a is too new, v1-b the kept newest of
/// the eligible).
#[test]
fn repo_filter_match_with_ago_and_keep() {
    let repo = Repo::new("repo").tags(&[
        ("v1-a", 15 * MIN),
        ("v1-b", DAY),
        ("v1-c", 2 * DAY),
        ("v2", 3 * DAY),
    ]);
    let d = run(
        purge(&["repo:v1-.*"], Some("0m"), 1, false, false),
        &[&repo],
    );
    assert_eq!(gone_tags(&d, &repo), set(&["v1-b", "v1-c"]));
    let d = run(
        purge(&["repo:v1-.*"], Some("30m"), 1, false, false),
        &[&repo],
    );
    assert_eq!(gone_tags(&d, &repo), set(&["v1-c"]));
    // `TagWithLocal`.
    let repo = repo.at("local", &["v1-c-local.test"], 2 * DAY);
    let d = run(
        purge(&["repo:.*-?local[.].+"], Some("0m"), 0, false, false),
        &[&repo],
    );
    assert_eq!(gone_tags(&d, &repo), set(&["v1-c-local.test"]));
}

/// The README's filter examples: the repository regex is anchored
/// (`^REPO$`, literally — `a|b` is "starts with a or ends with b"), the
/// tag regex is searched anywhere in the tag.
#[test]
fn readme_filter_examples() {
    let app = Repo::new("app").tags(&[
        ("hello", DAY),
        ("hello-1", DAY),
        ("say-hello", DAY),
        ("v1-hello-world-2", DAY),
        ("helloworld", DAY),
        ("worldwide", DAY),
        ("world_1", DAY),
    ]);
    let cases: [(&str, &[&str]); 4] = [
        ("app:^hello.*", &["hello", "hello-1", "helloworld"]),
        ("app:hello-world", &["v1-hello-world-2"]),
        ("app:\\w*world\\b", &["v1-hello-world-2", "helloworld"]),
        (
            "app:.*",
            &[
                "hello",
                "hello-1",
                "say-hello",
                "v1-hello-world-2",
                "helloworld",
                "worldwide",
                "world_1",
            ],
        ),
    ];
    for (f, expected) in cases {
        let d = run(purge(&[f], Some("0d"), 0, false, false), &[&app]);
        assert_eq!(gone_tags(&d, &app), set(expected), "{f}");
    }
    // `.*/cache:.*` and the alternation quirk.
    let repos: Vec<Repo> = [
        "cache",
        "a/cache",
        "x/y/cache",
        "a/cache2",
        "a",
        "b",
        "ab",
        "xa",
        "bx",
        "xb",
    ]
    .iter()
    .map(|n| Repo::new(n).tags(&[("t", DAY)]))
    .collect();
    let refs: Vec<&Repo> = repos.iter().collect();
    for (f, expected) in [
        (".*/cache:.*", vec!["a/cache", "x/y/cache"]),
        ("a|b:.*", vec!["a", "b", "ab", "xb", "a/cache", "a/cache2"]),
    ] {
        let d = run(purge(&[f], Some("0d"), 0, false, false), &refs);
        let hit: BTreeSet<String> = repos
            .iter()
            .filter(|r| !gone_tags(&d, r).is_empty())
            .map(|r| r.view.name.clone())
            .collect();
        assert_eq!(hit, set(&expected), "{f}");
    }
}

/// Without `--untagged` the purge only untags: the manifest stays. With
/// it, the untagged manifests old enough go too (`.*:^$` cleans only
/// untagged manifests: no tag is empty).
#[test]
fn untagged_flag() {
    let repo = Repo::new("app")
        .at("old", &["old"], 10 * DAY)
        .at("dangling", &[], 10 * DAY)
        .at("fresh", &[], HOUR);
    let d = run(purge(&["app:.*"], Some("1d"), 0, false, false), &[&repo]);
    assert_eq!(gone_tags(&d, &repo), set(&["old"]));
    assert!(d.untag_only);
    assert!(d.untagged_removed.is_empty());
    let d = run(purge(&["app:.*"], Some("1d"), 0, true, false), &[&repo]);
    assert!(!d.untag_only);
    assert_eq!(gone(&d, &repo), set(&["old", "dangling"]));
    let d = run(purge(&[".*:^$"], Some("1d"), 0, true, false), &[&repo]);
    assert_eq!(gone(&d, &repo), set(&["dangling"]));
}

/// `purge_untagged_only_test.go`: keep applies among the manifests old
/// enough; ties keep the smaller digest; a manifest updated exactly at
/// the cutoff goes (a tag at the cutoff stays).
#[test]
fn untagged_only_cases() {
    let y = 365 * DAY;
    // Keep 2 of five, ago 0.
    let r = Repo::new("r")
        .at("oldest", &[], 3 * y)
        .at("old", &[], 3 * y - 150 * DAY)
        .at("medium", &[], 2 * y)
        .at("recent", &[], y + 180 * DAY)
        .at("newest", &[], y);
    let d = run(purge(&[], None, 2, false, true), &[&r]);
    assert_eq!(gone(&d, &r), set(&["oldest", "old", "medium"]));
    // Ago 300 days, keep 1: the recent ones are protected by age, keep 1
    // of the three old ones.
    let r = Repo::new("r")
        .at("veryold1", &[], 395 * DAY)
        .at("veryold2", &[], 364 * DAY)
        .at("veryold3", &[], 336 * DAY)
        .at("recent1", &[], 30 * DAY)
        .at("recent2", &[], 16 * DAY);
    let d = run(purge(&[], Some("300d"), 1, false, true), &[&r]);
    assert_eq!(gone(&d, &r), set(&["veryold1", "veryold2"]));
    // Keep ≥ count removes nothing; newer than ago stays; older goes.
    let r = Repo::new("r")
        .at("a", &[], DAY)
        .at("b", &[], DAY)
        .at("c", &[], DAY);
    for keep in [3, 10] {
        assert!(gone(&run(purge(&[], None, keep, false, true), &[&r]), &r).is_empty());
    }
    let r = Repo::new("r")
        .at("new", &[], 15 * MIN)
        .at("old", &[], 48 * HOUR);
    assert_eq!(
        gone(&run(purge(&[], Some("1h"), 0, false, true), &[&r]), &r),
        set(&["old"])
    );
    // Boundaries.
    let r = Repo::new("r")
        .at("at-cutoff", &[], DAY)
        .at("tagged-at-cutoff", &["t"], DAY)
        .at("tie-1", &[], 5 * DAY)
        .at("tie-2", &[], 5 * DAY);
    let d = run(purge(&["r:.*"], Some("1d"), 0, true, false), &[&r]);
    assert!(gone(&d, &r).contains("at-cutoff"));
    assert!(!gone(&d, &r).contains("tagged-at-cutoff"));
    let d = run(purge(&[], Some("2d"), 1, false, true), &[&r]);
    let kept = if dg("tie-1") < dg("tie-2") {
        "tie-1"
    } else {
        "tie-2"
    };
    assert!(!gone(&d, &r).contains(kept));
    assert_eq!(gone(&d, &r).len(), 1);
}

/// Bad flags are refused naming the flag: an invalid regex (`[`), a
/// filter without a tag part, a lookaround (acr-cli's engine has them,
/// RE2 syntax here does not), a missing `--ago`.
#[test]
fn invalid_flags_name_the_flag() {
    let cases: [(&[&str], Option<&str>, &str); 5] = [
        (&["app:["], Some("1d"), "--acr-filter"),
        (&["bar.*:"], Some("1d"), "--acr-filter"),
        (&[":.*"], Some("1d"), "--acr-filter"),
        (&["repo:v1(?!-a)"], Some("0d"), "--acr-filter"),
        (&["app:.*"], None, "--ago"),
    ];
    for (filters, ago, flag) in cases {
        let f: Vec<String> = filters.iter().map(|s| s.to_string()).collect();
        let e = Purge::new(&f, ago, None, false, false)
            .err()
            .unwrap_or_else(|| panic!("accepted {filters:?}"));
        assert_eq!(e.field.as_deref(), Some(flag), "{e}");
        assert!(e.to_string().contains(filters[0]) || flag == "--ago", "{e}");
    }
}
