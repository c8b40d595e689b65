//! regsweep vs the real reference registry (distribution 2.8.x) on the
//! filesystem driver. One registry is started for this test binary; every
//! test only reads it. Needs `bash scripts/setup.sh` (docker-registry,
//! skopeo, moto) — missing tools fail the tests, they are never skipped.

mod common;

use common::*;
use std::collections::BTreeSet;

static FS: Shared = Shared::new();

/// The shared filesystem registry with the seed-`SEED` scenario pushed (and
/// every tag checked with `skopeo copy --all`).
fn env() -> &'static Env {
    shared(&FS, Backend::Fs)
}

#[test]
fn fs_scenario_is_real_every_tag_pulls_with_skopeo() {
    let e = env();
    // Env::start already ran skopeo on every tag; check the scenario has what
    // the other tests rely on.
    let sc = &e.scenario;
    let tags = e.tags();
    assert!(
        tags.iter().any(|t| t.0 == "a") && tags.iter().any(|t| t.0 == "a/b"),
        "prefix repos"
    );
    assert!(
        tags.iter().any(|t| t.0.matches('/').count() >= 2),
        "nested repo"
    );
    assert!(
        tags.iter()
            .any(|t| t.1.starts_with("sha256-") && t.1.ends_with(".sig")),
        "cosign tag"
    );
    let mts: BTreeSet<String> = sc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| s(&t["media_type"]))
        .collect();
    for mt in [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        OCI_INDEX,
        DOCKER_LIST,
    ] {
        assert!(mts.contains(mt), "no tag of type {mt}");
    }
    for k in [
        "deleted_manifests",
        "untagged_manifests",
        "multiarch_tags",
        "referrers",
        "unreferenced_blobs",
        "abandoned_uploads",
    ] {
        assert!(!sc[k].as_array().unwrap().is_empty(), "scenario has no {k}");
    }
}

#[test]
fn fs_default_mode_matches_reference_exactly() {
    check_default_mode(env());
}

#[test]
fn fs_delete_untagged_keeps_what_the_reference_wrongly_deletes() {
    check_delete_untagged(env());
}

#[test]
fn fs_abandoned_upload_and_unreferenced_blob_are_reported() {
    check_uploads_and_unreferenced(env());
}

#[test]
fn fs_report_changes_nothing_on_disk() {
    check_report_is_read_only(env());
}

#[test]
fn fs_registry_config_gives_the_same_report() {
    check_registry_config(env());
}

/// The committed fixture (written by the reference registry, see
/// scripts/make_fixture.sh): regsweep agrees with the reference's dry-run
/// recorded next to it, and with a fresh reference run on a copy of it.
#[test]
fn fixture_tree_matches_reference() {
    let fixture = repo_root().join("fixtures/registry");
    let recorded =
        std::fs::read_to_string(repo_root().join("fixtures/registry.gc-dry-run.txt")).unwrap();
    let recorded: BTreeSet<String> = recorded
        .lines()
        .filter_map(|l| l.strip_prefix("blob eligible for deletion: "))
        .map(|d| d.trim().to_string())
        .collect();
    assert!(!recorded.is_empty());
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    copy_tree(&fixture, &root);
    let before = tree_fingerprint(&root);
    let report = regsweep(
        &[
            "report".into(),
            root.to_str().unwrap().into(),
            "--format".into(),
            "json".into(),
        ],
        &[],
    );
    let after = tree_fingerprint(&root);
    assert!(
        diff_fingerprints(&before, &after).is_empty(),
        "report changed the fixture copy"
    );
    report.assert_clean();
    assert_eq!(
        report.garbage_blobs(),
        recorded,
        "regsweep vs recorded reference dry-run on fixtures/registry"
    );

    // And the reference itself still says so on this copy (git drops empty
    // directories; that must not change anything).
    let cfg = tmp.path().join("config.yml");
    std::fs::write(
        &cfg,
        registry_config(free_port(), Backend::Fs, Some(&root), None),
    )
    .unwrap();
    assert_eq!(
        reference_gc(&cfg, false).blobs,
        recorded,
        "reference dry-run on the fixture copy"
    );
}
