//! Harbor tag retention: the examples of Harbor's documentation, "Create
//! Tag Retention Rules" (goharbor/website,
//! `docs/working-with-projects/working-with-images/create-tag-retention-rules.md`):
//! a project with repositories A–E, A holding 100 tagged and 2 untagged
//! artifacts all pulled in the last week, B–E 6 tagged and 1 untagged
//! each, none pulled in the last month; the note on artifacts with
//! several tags; and the example of two rules over `{2.1,2.2,3.1,4.4}-your_repo-{prod,rc,release}`.

use super::*;
use crate::policy::formats::harbor::Retention;
use crate::policy::formats::Vendor;

fn harbor(rules: &[String]) -> Vendor {
    let json = format!(r#"{{"algorithm":"or","rules":[{}]}}"#, rules.join(","));
    Vendor::Harbor(
        Retention::parse(&json, true, "retention.json").unwrap_or_else(|e| panic!("{e}\n{json}")),
    )
}

/// A rule as Harbor's API stores it.
fn rule(
    template: &str,
    param: Option<u64>,
    decoration: &str,
    pattern: &str,
    untagged: bool,
) -> String {
    let params = match param {
        Some(n) => format!(r#"{{"{template}":{n}}}"#),
        None => "{}".into(),
    };
    format!(
        r#"{{"disabled":false,"action":"retain","template":"{template}","params":{params},
            "tag_selectors":[{{"kind":"doublestar","decoration":"{decoration}","pattern":"{pattern}","extras":"{{\"untagged\":{untagged}}}"}}],
            "scope_selectors":{{"repository":[{{"kind":"doublestar","decoration":"repoMatches","pattern":"**"}}]}}}}"#
    )
}

/// The shared setup of Examples 1–4.
fn project() -> Vec<Repo> {
    let mut a = Repo::new("project/A");
    for i in 0..100 {
        let id = format!("A-{i}");
        a = a
            .at(&id, &[&format!("a{i}")], 20 * DAY)
            .pulled(&id, (i + 1) * HOUR);
    }
    for i in 0..2 {
        let id = format!("A-untagged-{i}");
        a = a.at(&id, &[], 20 * DAY).pulled(&id, (i + 1) * DAY);
    }
    let mut repos = vec![a];
    for r in ["B", "C", "D", "E"] {
        let mut repo = Repo::new(&format!("project/{r}"));
        for i in 0..6 {
            let id = format!("{r}-{i}");
            repo = repo
                .at(&id, &[&format!("t{i}")], 60 * DAY)
                .pulled(&id, 40 * DAY);
        }
        repos.push(repo.at(&format!("{r}-untagged"), &[], 60 * DAY));
    }
    repos
}

/// Retained artifacts per repository A–E.
fn retained(v: Vendor) -> Vec<usize> {
    let repos = project();
    let refs: Vec<&Repo> = repos.iter().collect();
    let d = run(v, &refs);
    repos
        .iter()
        .map(|r| r.ids.len() - gone(&d, r).len())
        .collect()
}

/// Example 1: retain the 10 most recently pulled artifacts, untagged not
/// checked — A keeps its 10 most recently pulled, B–E all 6 (fewer than
/// 10), every untagged artifact is deleted: 34 retained.
#[test]
fn example_1_latest_pulled() {
    let v = harbor(&[rule("latestPulledN", Some(10), "matches", "**", false)]);
    assert_eq!(retained(v), [10, 6, 6, 6, 6]);
    let repos = project();
    let d = run(
        harbor(&[rule("latestPulledN", Some(10), "matches", "**", false)]),
        &[&repos[0]],
    );
    let kept: BTreeSet<String> = (0..10).map(|i| format!("A-{i}")).collect();
    let all: BTreeSet<String> = repos[0].ids.iter().cloned().collect();
    assert_eq!(gone(&d, &repos[0]), &all - &kept);
}

/// Example 2: retain artifacts pulled within 7 days, untagged not
/// checked — A keeps its 100 tagged, B–E nothing: 100 retained.
#[test]
fn example_2_pulled_within_days() {
    let v = harbor(&[rule("nDaysSinceLastPull", Some(7), "matches", "**", false)]);
    assert_eq!(retained(v), [100, 0, 0, 0, 0]);
}

/// Example 3: Example 2 with untagged checked — everything in A stays
/// (the documentation says 103; the setup has 102), nothing in B–E.
#[test]
fn example_3_untagged_included() {
    let v = harbor(&[rule("nDaysSinceLastPull", Some(7), "matches", "**", true)]);
    assert_eq!(retained(v), [102, 0, 0, 0, 0]);
}

/// Example 4: both rules, ORed — every tagged artifact stays.
#[test]
fn example_4_rules_are_ored() {
    let v = harbor(&[
        rule("nDaysSinceLastPull", Some(7), "matches", "**", false),
        rule("latestPulledN", Some(10), "matches", "**", false),
    ]);
    assert_eq!(retained(v), [100, 6, 6, 6, 6]);
}

/// The note on artifacts with several tags: one artifact tagged
/// harbor-1.8, harbor-release, harbor-nightly and harbor-latest, "retain
/// the 2 most recently pushed artifacts matching harbor-*" retains the
/// one artifact with all four tags; an older artifact beyond the two
/// goes.
#[test]
fn an_artifact_with_several_tags_is_one_unit() {
    let repo = Repo::new("library/harbor")
        .at(
            "one",
            &[
                "harbor-1.8",
                "harbor-release",
                "harbor-nightly",
                "harbor-latest",
            ],
            DAY,
        )
        .at("two", &["harbor-2"], 2 * DAY)
        .at("three", &["harbor-3"], 3 * DAY);
    let d = run(
        harbor(&[rule("latestPushedK", Some(2), "matches", "harbor-*", false)]),
        &[&repo],
    );
    assert_eq!(gone(&d, &repo), set(&["three"]));
    assert!(gone_tags(&d, &repo).iter().all(|t| t == "harbor-3"));
}

/// The example of two rules: `latestPushedK 10` on `2*` and on `*-prod`
/// retain 8 of the 12 tags; the other 4 go.
#[test]
fn example_two_rules_over_twelve_tags() {
    let mut repo = Repo::new("project/your_repo");
    let mut age = 1;
    for v in ["2.1", "2.2", "3.1", "4.4"] {
        for kind in ["prod", "rc", "release"] {
            let t = format!("{v}-your_repo-{kind}");
            repo = repo.at(&t, &[&t], age * HOUR);
            age += 1;
        }
    }
    for untagged in [false, true] {
        let d = run(
            harbor(&[
                rule("latestPushedK", Some(10), "matches", "2*", untagged),
                rule("latestPushedK", Some(10), "matches", "*-prod", untagged),
            ]),
            &[&repo],
        );
        assert_eq!(
            gone(&d, &repo),
            set(&[
                "3.1-your_repo-rc",
                "3.1-your_repo-release",
                "4.4-your_repo-rc",
                "4.4-your_repo-release"
            ])
        );
    }
}

/// Selectors: `excludes` keeps what has a tag the pattern does not match;
/// a repository that no rule's scope matches is left alone; the project
/// component is not part of what `repoMatches` sees.
#[test]
fn selectors_and_scope() {
    let redis = Repo::new("retention/redis")
        .at("40", &["4.0"], 9 * DAY)
        .at("41", &["4.1"], 9 * DAY)
        .at("latest", &["latest"], 9 * DAY);
    let d = run(
        harbor(&[rule("always", None, "excludes", "4.*", false)]),
        &[&redis],
    );
    assert_eq!(gone(&d, &redis), set(&["40", "41"]));
    let d = run(
        harbor(&[rule("always", None, "matches", "{latest,4.*}", false)]),
        &[&redis],
    );
    assert!(gone(&d, &redis).is_empty());
    let scoped = format!(
        r#"{{"rules":[{}]}}"#,
        rule("latestPushedK", Some(1), "matches", "**", false)
            .replace(r#""pattern":"**"}]}"#, r#""pattern":"redis"}]}"#)
    );
    let v = Vendor::Harbor(Retention::parse(&scoped, true, "r.json").unwrap());
    let other = Repo::new("retention/other").tags(&[("x", 9 * DAY), ("y", 8 * DAY)]);
    let d = run(v, &[&redis, &other]);
    assert_eq!(gone(&d, &redis).len(), 2);
    assert!(gone(&d, &other).is_empty());
}

/// Invalid rules are refused naming the file, the rule and the field.
#[test]
fn invalid_rules_name_rule_and_field() {
    let good = rule("latestPushedK", Some(3), "matches", "**", false);
    for (text, field) in [
        (
            good.replace("latestPushedK\":3", "latestPushedK\":-1"),
            "params",
        ),
        (
            good.replace("\"params\":{\"latestPushedK\":3}", "\"params\":{}"),
            "params",
        ),
        (good.replace("\"matches\"", "\"resembles\""), "decoration"),
        (
            good.replace("\"template\":\"latestPushedK\"", "\"template\":\"newest\""),
            "template",
        ),
        (
            good.replace(
                "\"pattern\":\"**\",\"extras\"",
                "\"pattern\":\"[\",\"extras\"",
            ),
            "pattern",
        ),
        (good.replace("\"disabled\"", "\"disabeld\""), "disabeld"),
    ] {
        let doc = format!(r#"{{"rules":[{text}]}}"#);
        let e = Retention::parse(&doc, true, "retention.json")
            .err()
            .unwrap_or_else(|| panic!("accepted {doc}"));
        assert_eq!(e.origin, "retention.json");
        assert_eq!(e.rule.as_ref().map(|r| r.0), Some(1), "{e}");
        assert!(
            e.field.as_deref().is_some_and(|f| f.contains(field)) || e.message.contains(field),
            "{field}: {e}"
        );
    }
}
