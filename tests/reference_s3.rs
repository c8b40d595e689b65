//! regsweep vs the real reference registry (distribution 2.8.x) on its S3
//! driver, backed by moto_server; and the same scenario on the filesystem
//! driver must give the same answers. Needs `bash scripts/setup.sh`.

mod common;

use common::*;

static S3: Shared = Shared::new();
static FS: Shared = Shared::new();

fn s3() -> &'static Env {
    shared(&S3, Backend::S3)
}

fn fs() -> &'static Env {
    shared(&FS, Backend::Fs)
}

#[test]
fn s3_default_mode_matches_reference_exactly() {
    check_default_mode(s3());
}

#[test]
fn s3_delete_untagged_keeps_what_the_reference_wrongly_deletes() {
    check_delete_untagged(s3());
}

#[test]
fn s3_abandoned_upload_and_unreferenced_blob_are_reported() {
    check_uploads_and_unreferenced(s3());
}

#[test]
fn s3_report_changes_nothing_in_the_bucket() {
    check_report_is_read_only(s3());
}

#[test]
fn s3_registry_config_gives_the_same_report() {
    check_registry_config(s3());
}

/// (d) The same scenario (same seed, so the same digests) pushed into a
/// filesystem registry and an S3 registry: the reports agree.
#[test]
fn fs_and_s3_reports_agree() {
    let (a, b) = (fs(), s3());
    assert_eq!(
        a.tags(),
        b.tags(),
        "the two pushes differ: same seed must give the same digests"
    );
    for extra in [&[][..], &["--delete-untagged"][..]] {
        let ra = a.regsweep_report(extra);
        let rb = b.regsweep_report(extra);
        assert_eq!(
            ra.garbage_blob_sizes(),
            rb.garbage_blob_sizes(),
            "garbage_blobs fs vs s3 {extra:?}"
        );
        assert_eq!(
            ra.garbage_manifests(),
            rb.garbage_manifests(),
            "garbage_manifests fs vs s3 {extra:?}"
        );
        assert_eq!(
            repo_counts(&ra),
            repo_counts(&rb),
            "per-repository counts fs vs s3 {extra:?}"
        );
        assert_eq!(
            ra.arr("abandoned_uploads").len(),
            rb.arr("abandoned_uploads").len(),
            "abandoned uploads fs vs s3 {extra:?}"
        );
    }
}
