//! One test per rule and reason of the decision.

use super::*;
use crate::policy::{Decision, Policy};

const DAY: u64 = 86400;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1000 * DAY)
}

fn ago(days: u64) -> Option<SystemTime> {
    Some(now() - Duration::from_secs(days * DAY))
}

fn dg(n: u32) -> String {
    format!("sha256:{n:064x}")
}

fn m(n: u32, pushed_days: u64) -> ManifestView {
    ManifestView {
        digest: dg(n),
        pushed_at: ago(pushed_days),
        last_pulled_at: None,
        pulled_by_digest_at: None,
        subject: None,
        reached: false,
    }
}

fn t(name: &str, n: u32, days: u64) -> TagView {
    TagView {
        name: name.into(),
        digest: dg(n),
        assigned_at: ago(days),
    }
}

fn repo(name: &str, tags: Vec<TagView>, manifests: Vec<ManifestView>) -> RepoView {
    RepoView {
        name: name.into(),
        tags,
        manifests,
    }
}

fn policy(yaml: &str) -> Policy {
    Policy::parse(yaml, false, "test").unwrap()
}

fn run(p: &str, repos: &[RepoView]) -> Decision {
    evaluate(&policy(p), repos, now(), Duration::from_secs(3600))
}

fn removed(d: &Decision) -> Vec<String> {
    d.tags_removed
        .iter()
        .map(|a| format!("{}:{}", a.repository, a.tag))
        .collect()
}

fn reason_of<'a>(d: &'a Decision, tag: &str) -> &'a Reason {
    &d.tags_removed
        .iter()
        .chain(&d.tags_kept)
        .find(|a| a.tag == tag)
        .unwrap_or_else(|| panic!("{tag} not decided"))
        .reason
}

fn manifest_reason(d: &Decision, n: u32) -> &Reason {
    &d.untagged_removed
        .iter()
        .chain(&d.untagged_kept)
        .find(|a| a.digest == dg(n))
        .unwrap_or_else(|| panic!("{n} not decided"))
        .reason
}

#[test]
fn keep_last_ranks_by_assignment_then_name_and_counts_digests_once() {
    // v3 and v3-alias share digest 3; v1 and v0 have the same age.
    let r = repo(
        "app",
        vec![
            t("v3", 3, 1),
            t("v3-alias", 3, 9),
            t("v2", 2, 5),
            t("v1", 1, 7),
            t("v0", 0, 7),
        ],
        (0..4).map(|i| m(i, 10)).collect(),
    );
    let d = run("rules:\n  - repo: app\n    keep_last: 3\n", &[r]);
    assert_eq!(removed(&d), ["app:v0"]);
    assert_eq!(reason_of(&d, "v3"), &Reason::KeepLast { rule: 1, rank: 1 });
    assert_eq!(
        reason_of(&d, "v3-alias"),
        &Reason::KeepLast { rule: 1, rank: 1 }
    );
    assert_eq!(reason_of(&d, "v2"), &Reason::KeepLast { rule: 1, rank: 2 });
    // Tie on age: name descending puts v1 before v0.
    assert_eq!(reason_of(&d, "v1"), &Reason::KeepLast { rule: 1, rank: 3 });
    assert_eq!(reason_of(&d, "v0"), &Reason::RemovedBy { rule: 1 });
}

#[test]
fn unknown_assignment_ranks_oldest_and_is_not_old() {
    let mut old = t("old", 1, 0);
    old.assigned_at = None;
    let r = repo("app", vec![old, t("new", 2, 50)], vec![m(1, 90), m(2, 90)]);
    let d = run(
        "rules:\n  - repo: app\n    keep_last: 1\n",
        std::slice::from_ref(&r),
    );
    assert_eq!(removed(&d), ["app:old"]);
    let d = run("rules:\n  - repo: app\n    older_than: 10d\n", &[r]);
    assert_eq!(removed(&d), ["app:new"]);
    assert_eq!(reason_of(&d, "old"), &Reason::AgeUnknown { rule: 1 });
}

#[test]
fn keep_tag_and_latest_win_and_do_not_take_keep_last_slots() {
    let r = repo(
        "app",
        vec![
            t("latest", 9, 1),
            t("release-1", 8, 1),
            t("b", 2, 3),
            t("a", 1, 4),
        ],
        (1..10).map(|i| m(i, 10)).collect(),
    );
    let d = run(
        "rules:\n  - repo: app\n    keep_tag: 'release-.*'\n    keep_last: 1\n",
        std::slice::from_ref(&r),
    );
    assert_eq!(removed(&d), ["app:a"]);
    assert_eq!(reason_of(&d, "latest"), &Reason::KeepLatest { rule: 1 });
    assert_eq!(
        reason_of(&d, "release-1"),
        &Reason::KeepTag {
            rule: 1,
            regex: "release-.*".into()
        }
    );
    assert_eq!(reason_of(&d, "b"), &Reason::KeepLast { rule: 1, rank: 1 });
    let d = run(
        "rules:\n  - repo: app\n    older_than: 0s\n    no_keep_latest: true\n",
        &[r],
    );
    assert_eq!(
        removed(&d),
        ["app:a", "app:b", "app:latest", "app:release-1"]
    );
}

#[test]
fn criteria_and_within_a_rule_or_across_rules() {
    let r = repo(
        "app",
        vec![t("a", 1, 40), t("b", 2, 5)],
        vec![m(1, 40), m(2, 5)],
    );
    // AND: beyond keep_last and old enough.
    let d = run(
        "rules:\n  - repo: app\n    keep_last: 1\n    older_than: 30d\n",
        std::slice::from_ref(&r),
    );
    assert_eq!(removed(&d), ["app:a"]);
    assert_eq!(reason_of(&d, "b"), &Reason::KeepLast { rule: 1, rank: 1 });
    let d = run(
        "rules:\n  - repo: app\n    keep_last: 1\n    older_than: 50d\n",
        std::slice::from_ref(&r),
    );
    assert!(d.tags_removed.is_empty());
    assert!(matches!(reason_of(&d, "a"), Reason::TooNew { rule: 1, .. }));
    // A keep from one rule beats another rule's removal.
    let d = run(
        "rules:\n  - repo: app\n    older_than: 30d\n  - repo: '.*'\n    keep_tag: a\n",
        std::slice::from_ref(&r),
    );
    assert!(d.tags_removed.is_empty());
    // OR: the second rule removes what the first does not.
    let d = run(
        "rules:\n  - repo: app\n    older_than: 90d\n  - repo: 'a.*'\n    older_than: 30d\n",
        std::slice::from_ref(&r),
    );
    assert_eq!(removed(&d), ["app:a"]);
    assert_eq!(reason_of(&d, "a"), &Reason::RemovedBy { rule: 2 });
    assert_eq!(
        reason_of(&d, "b"),
        &Reason::TooNew {
            rule: 1,
            older_than: Duration::from_secs(90 * DAY)
        }
    );
}

#[test]
fn tag_pattern_limits_removal_and_keep_last_ranks_only_candidates() {
    let r = repo(
        "app",
        vec![t("pr-1", 1, 50), t("pr-2", 2, 40), t("main", 3, 60)],
        (1..4).map(|i| m(i, 60)).collect(),
    );
    let d = run(
        "rules:\n  - repo: app\n    tag: 'pr-.*'\n    keep_last: 1\n",
        &[r],
    );
    assert_eq!(removed(&d), ["app:pr-1"]);
    assert_eq!(reason_of(&d, "main"), &Reason::NotMatched);
    assert_eq!(
        reason_of(&d, "pr-2"),
        &Reason::KeepLast { rule: 1, rank: 1 }
    );
}

#[test]
fn repositories_without_rules_are_untouched() {
    let r = repo("other", vec![t("a", 1, 400)], vec![m(1, 400), m(2, 400)]);
    let d = run(
        "rules:\n  - repo: app\n    older_than: 1d\n    untagged: true\n",
        &[r],
    );
    assert!(d.tags_removed.is_empty() && d.untagged_removed.is_empty());
    assert_eq!(reason_of(&d, "a"), &Reason::NoRuleApplies);
    assert_eq!(manifest_reason(&d, 2), &Reason::NoRuleApplies);
}

#[test]
fn not_pulled_for_uses_last_pull_then_push_then_assignment() {
    let mut pulled = m(1, 200);
    pulled.last_pulled_at = ago(10);
    let never = m(2, 200);
    let mut unknown = m(3, 0);
    unknown.pushed_at = None;
    let mut repushed = m(4, 5);
    repushed.last_pulled_at = ago(100);
    let mut no_time = t("d", 3, 0);
    no_time.assigned_at = None;
    let r = repo(
        "app",
        vec![
            t("a", 1, 200),
            t("b", 2, 200),
            t("c", 3, 20),
            no_time,
            t("e", 4, 200),
        ],
        vec![pulled, never, unknown, repushed],
    );
    let d = run("rules:\n  - repo: app\n    not_pulled_for: 30d\n", &[r]);
    assert_eq!(removed(&d), ["app:b"]);
    assert_eq!(
        reason_of(&d, "a"),
        &Reason::PulledRecently {
            rule: 1,
            at: ago(10).unwrap()
        }
    );
    assert_eq!(
        reason_of(&d, "c"),
        &Reason::PushedRecently {
            rule: 1,
            at: ago(20).unwrap()
        }
    );
    assert_eq!(reason_of(&d, "d"), &Reason::UsageUnknown { rule: 1 });
    assert_eq!(
        reason_of(&d, "e"),
        &Reason::PushedRecently {
            rule: 1,
            at: ago(5).unwrap()
        }
    );
}

#[test]
fn untagged_manifests_grace_reach_push_time_and_pull_by_digest() {
    let mut reached = m(2, 100);
    reached.reached = true;
    let mut unknown = m(3, 0);
    unknown.pushed_at = None;
    let fresh = ManifestView {
        pushed_at: Some(now() - Duration::from_secs(60)),
        ..m(4, 0)
    };
    let mut by_digest = m(5, 100);
    by_digest.pulled_by_digest_at = ago(3);
    let r = repo(
        "app",
        vec![t("v", 1, 1)],
        vec![m(1, 1), reached, unknown, fresh, by_digest, m(6, 100)],
    );
    let d = run(
        "rules:\n  - repo: app\n    untagged: true\n    not_pulled_for: 7d\n",
        std::slice::from_ref(&r),
    );
    let gone: Vec<&str> = d
        .untagged_removed
        .iter()
        .map(|a| a.digest.as_str())
        .collect();
    assert_eq!(gone, [dg(6).as_str()]);
    assert_eq!(manifest_reason(&d, 2), &Reason::Reached);
    assert_eq!(manifest_reason(&d, 3), &Reason::PushTimeUnknown);
    assert!(matches!(manifest_reason(&d, 4), Reason::WithinGrace { .. }));
    assert_eq!(
        manifest_reason(&d, 5),
        &Reason::PulledByDigest {
            rule: 1,
            at: ago(3).unwrap()
        }
    );
    // The tagged manifest is not an untagged decision; its tag stays.
    assert!(d.untagged_kept.iter().all(|a| a.digest != dg(1)));
    // The rule's not_pulled_for is also a tag criterion; the tag is new.
    assert!(matches!(
        reason_of(&d, "v"),
        Reason::PushedRecently { rule: 1, .. }
    ));
    // Without `untagged` nothing untagged goes; older_than applies to them.
    let d = run(
        "rules:\n  - repo: app\n    older_than: 1d\n",
        std::slice::from_ref(&r),
    );
    assert_eq!(manifest_reason(&d, 6), &Reason::UntaggedNotSelected);
    let d = run(
        "rules:\n  - repo: app\n    older_than: 200d\n    untagged: true\n",
        &[r],
    );
    assert!(matches!(
        manifest_reason(&d, 6),
        Reason::TooNew { rule: 1, .. }
    ));
}

#[test]
fn shared_digest_only_untags() {
    let r = repo(
        "app",
        vec![t("old", 1, 90), t("keep", 1, 90)],
        vec![m(1, 90)],
    );
    let d = run(
        "rules:\n  - repo: app\n    tag: old\n    older_than: 30d\n",
        &[r],
    );
    assert_eq!(removed(&d), ["app:old"]);
    assert!(d.untagged_removed.is_empty() && d.untagged_kept.is_empty());
}

fn sig_tag(subject: u32, kind: &str) -> String {
    format!("sha256-{subject:064x}.{kind}")
}

#[test]
fn signatures_follow_their_subject_and_are_never_versions() {
    let s_old = sig_tag(1, "sig");
    let s_new = sig_tag(2, "att");
    let r = repo(
        "app",
        vec![
            t("v1", 1, 90),
            t(&s_old, 11, 1),
            t("v2", 2, 1),
            t(&s_new, 12, 100),
        ],
        vec![m(1, 90), m(2, 1), m(11, 1), m(12, 100)],
    );
    let d = run(
        "rules:\n  - repo: app\n    keep_last: 1\n",
        std::slice::from_ref(&r),
    );
    // The signature tags are not ranked: v2 is newest, v1 goes, its sig follows.
    assert_eq!(removed(&d), [format!("app:{s_old}"), "app:v1".to_string()]);
    assert_eq!(
        reason_of(&d, &s_old),
        &Reason::FollowsSubject { subject: dg(1) }
    );
    assert_eq!(
        reason_of(&d, &s_new),
        &Reason::SubjectStays { subject: dg(2) }
    );
    // Old signatures are never removed by age on their own.
    let d = run(
        "rules:\n  - repo: app\n    older_than: 30d\n    keep_tag: v1\n",
        std::slice::from_ref(&r),
    );
    assert!(d.tags_removed.is_empty());
    let d = run(
        "rules:\n  - repo: app\n    keep_last: 1\n    keep_referrers: true\n",
        &[r],
    );
    assert_eq!(removed(&d), ["app:v1"]);
    assert_eq!(
        reason_of(&d, &s_old),
        &Reason::KeepReferrers {
            rule: 1,
            subject: dg(1)
        }
    );
}

#[test]
fn a_signature_of_a_reached_or_missing_subject_stays() {
    let mut child = m(1, 90);
    child.reached = true;
    let s1 = sig_tag(1, "sig");
    let s9 = sig_tag(9, "sig");
    let r = repo(
        "app",
        vec![t("c", 1, 90), t(&s1, 11, 90), t(&s9, 12, 90)],
        vec![child, m(11, 90), m(12, 90)],
    );
    let d = run("rules:\n  - repo: app\n    older_than: 30d\n", &[r]);
    assert_eq!(removed(&d), ["app:c"]);
    assert_eq!(reason_of(&d, &s1), &Reason::SubjectStays { subject: dg(1) });
    assert_eq!(
        reason_of(&d, &s9),
        &Reason::SubjectMissing { subject: dg(9) }
    );
}

#[test]
fn referrer_chains_follow_to_a_fixed_point() {
    // Image 1 (tag v1) ← SBOM 2 (untagged, subject 1) ← signature 3 of the
    // SBOM (tagged sha256-<2>.sig) ; an unrelated referrer 4 of image 5.
    let mut sbom = m(2, 90);
    sbom.subject = Some(dg(1));
    sbom.reached = true;
    let mut other = m(4, 90);
    other.subject = Some(dg(5));
    other.reached = true;
    let sig = sig_tag(2, "sig");
    let r = repo(
        "app",
        vec![t("v1", 1, 90), t(&sig, 3, 90), t("v5", 5, 1)],
        vec![m(1, 90), sbom, m(3, 90), other, m(5, 1)],
    );
    let d = run("rules:\n  - repo: app\n    older_than: 30d\n", &[r]);
    assert_eq!(removed(&d), [format!("app:{sig}"), "app:v1".to_string()]);
    assert_eq!(
        manifest_reason(&d, 2),
        &Reason::FollowsSubject { subject: dg(1) }
    );
    assert!(d.untagged_removed.iter().any(|a| a.digest == dg(2)));
    assert_eq!(
        manifest_reason(&d, 4),
        &Reason::SubjectStays { subject: dg(5) }
    );
    assert!(d.untagged_kept.iter().any(|a| a.digest == dg(4)));
}

#[test]
fn keep_tag_protects_a_signature_tag() {
    let sig = sig_tag(1, "sig");
    let r = repo(
        "app",
        vec![t("v1", 1, 90), t(&sig, 2, 90)],
        vec![m(1, 90), m(2, 90)],
    );
    let d = run(
        "rules:\n  - repo: app\n    older_than: 30d\n    keep_tag: 'sha256-.*'\n",
        &[r],
    );
    assert_eq!(removed(&d), ["app:v1"]);
    assert!(matches!(reason_of(&d, &sig), Reason::KeepTag { .. }));
}

#[test]
fn output_is_sorted_and_reasons_serialize_snake_case() {
    let repos = [
        repo(
            "b",
            vec![t("z", 1, 90), t("a", 2, 90)],
            vec![m(1, 90), m(2, 90)],
        ),
        repo(
            "a",
            vec![t("y", 1, 90), t("x", 2, 1)],
            vec![m(1, 90), m(2, 1)],
        ),
    ];
    let d = run("rules:\n  - repo: '.*'\n    older_than: 30d\n", &repos);
    assert_eq!(removed(&d), ["a:y", "b:a", "b:z"]);
    let v = serde_json::to_value(&d.tags_kept[0]).unwrap();
    assert_eq!(v["reason"]["kind"], "too_new");
    assert_eq!(v["reason"]["older_than"], "30days");
    let v = serde_json::to_value(Reason::PulledByDigest {
        rule: 2,
        at: SystemTime::UNIX_EPOCH + Duration::from_secs(86400),
    })
    .unwrap();
    assert_eq!(v["kind"], "pulled_by_digest");
    assert_eq!(v["at"], "1970-01-02T00:00:00Z");
    assert_eq!(
        Reason::KeepLast { rule: 1, rank: 2 }.to_string(),
        "kept by rule 1: keep_last, rank 2"
    );
}

#[test]
fn signature_subject_parses_only_follower_names() {
    let hex = "a".repeat(64);
    assert_eq!(
        signature_subject(&format!("sha256-{hex}.sig")),
        Some(format!("sha256:{hex}"))
    );
    assert_eq!(
        signature_subject(&format!("sha256-{hex}.sbom")),
        Some(format!("sha256:{hex}"))
    );
    assert_eq!(signature_subject(&format!("sha256-{hex}.tar")), None);
    assert_eq!(
        signature_subject(&format!("sha256-{}.sig", "A".repeat(64))),
        None
    );
    assert_eq!(signature_subject("sha256-abc.sig"), None);
    // The referrers tag schema: no suffix.
    assert_eq!(
        signature_subject(&format!("sha256-{hex}")),
        Some(format!("sha256:{hex}"))
    );
}

/// Regression: `keep_last 1` counted a referrers-schema index tag
/// (`sha256-<hex>`, the newest tag, written after its subject's push) as a
/// version, kept it and removed the newest real image `v2`.
#[test]
fn a_referrers_schema_tag_is_no_version_and_follows_its_subject() {
    let idx2 = format!("sha256-{:064x}", 2);
    let idx1 = format!("sha256-{:064x}", 1);
    let r = repo(
        "app",
        vec![
            t("v1", 1, 90),
            t("v2", 2, 10),
            t(&idx2, 22, 1),
            t(&idx1, 21, 2),
        ],
        vec![m(1, 90), m(2, 10), m(21, 2), m(22, 1)],
    );
    let d = run(
        "rules:\n  - repo: app\n    keep_last: 1\n",
        std::slice::from_ref(&r),
    );
    assert_eq!(removed(&d), [format!("app:{idx1}"), "app:v1".to_string()]);
    assert!(matches!(reason_of(&d, "v2"), Reason::KeepLast { .. }));
    assert_eq!(
        reason_of(&d, &idx2),
        &Reason::SubjectStays { subject: dg(2) }
    );
    assert_eq!(
        reason_of(&d, &idx1),
        &Reason::FollowsSubject { subject: dg(1) }
    );
}

#[test]
fn keep_versions_ranks_semver_per_repository_or_per_major() {
    let r = repo(
        "app",
        vec![
            t("1.9.0", 1, 9),
            t("1.10.0", 2, 8),
            t("v1.10.0_build.7", 2, 8),
            t("2.0.0-rc.1", 3, 7),
            t("2.0.0", 4, 1),
            t("1.2", 5, 9),
            t("main", 6, 9),
        ],
        (1..7).map(|i| m(i, 10)).collect(),
    );
    let d = run(
        "rules:\n  - repo: app\n    keep_versions: 2\n",
        std::slice::from_ref(&r),
    );
    // 2.0.0 > 2.0.0-rc.1 > 1.10.0 (both spellings, one version) > 1.9.0.
    assert_eq!(
        removed(&d),
        ["app:1.10.0", "app:1.9.0", "app:v1.10.0_build.7"]
    );
    assert_eq!(
        reason_of(&d, "2.0.0"),
        &Reason::KeepVersions { rule: 1, rank: 1 }
    );
    assert_eq!(
        reason_of(&d, "2.0.0-rc.1"),
        &Reason::KeepVersions { rule: 1, rank: 2 }
    );
    assert_eq!(reason_of(&d, "main"), &Reason::NotVersion { rule: 1 });
    assert_eq!(reason_of(&d, "1.2"), &Reason::NotVersion { rule: 1 });
    let d = run(
        "rules:\n  - repo: app\n    keep_versions: 1\n    versions_per_major: true\n",
        &[r],
    );
    assert_eq!(removed(&d), ["app:1.9.0", "app:2.0.0-rc.1"]);
    assert_eq!(
        reason_of(&d, "1.10.0"),
        &Reason::KeepVersions { rule: 1, rank: 1 }
    );
}
