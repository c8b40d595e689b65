//! regsweep vs the real reference registry (distribution 2.8.x) on its S3
//! driver, backed by moto_server; and the same scenario on the filesystem
//! driver must give the same answers. Needs `bash scripts/setup.sh`.

mod common;

use common::pushes::start_proxy;
use common::*;
use std::collections::BTreeMap;

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

/// The report without what differs between two pushes of the same
/// scenario or two runs: where the storage is, when the report was made,
/// the requests sent, and the uploads' ids, ages and bytes (the S3 driver
/// keeps an upload's parts elsewhere than the filesystem driver: the same
/// abandoned upload has other bytes in `_uploads/`); repositories by name.
fn comparable(r: &Report) -> serde_json::Value {
    let mut j = r.json.clone();
    let o = j.as_object_mut().unwrap();
    o.remove("storage");
    o.remove("generated_at");
    let mut by_repo: BTreeMap<String, u64> = BTreeMap::new();
    let mut uploads: Vec<String> = Vec::new();
    for u in r.arr("abandoned_uploads") {
        *by_repo.entry(s(&u["repository"])).or_default() += count(&u["size"]);
        uploads.push(s(&u["repository"]));
    }
    uploads.sort();
    o["abandoned_uploads"] = serde_json::json!(uploads);
    let summary = o["summary"].as_object_mut().unwrap();
    summary.remove("requests");
    let upload_bytes = count(&summary["upload_bytes"]);
    summary.remove("upload_bytes");
    let reclaimable = count(&summary["reclaimable_bytes"]) - upload_bytes;
    summary.insert("reclaimable_bytes".into(), reclaimable.into());
    let mut repos: Vec<serde_json::Value> = r.arr("repositories");
    for repo in &mut repos {
        let less = by_repo.get(&s(&repo["name"])).copied().unwrap_or(0);
        let b = count(&repo["reclaimable_bytes"]) - less;
        repo["reclaimable_bytes"] = b.into();
    }
    repos.sort_by_key(|r| s(&r["name"]));
    o["repositories"] = serde_json::json!(repos);
    j
}

/// `regsweep report` on S3 sends about one LIST per 1,000 keys, one GET per
/// manifest and per tag link and nothing else (the target of issue 16:
/// requests ≤ 1.05 × (keys / 1000 + manifests + tag links) + a constant),
/// and its report, whole, is the filesystem report of the same scenario;
/// the same through a proxy adding latency to every request.
#[test]
fn s3_requests_follow_the_formula_and_the_report_is_the_fs_report() {
    let (a, b) = (fs(), s3());
    let keys = b.bucket_listing().len() as u64;
    for extra in [&[][..], &["--delete-untagged"][..]] {
        let ra = a.regsweep_report(extra);
        let rb = b.regsweep_report(extra);
        assert!(
            ra.json["summary"].get("requests").is_none(),
            "a filesystem report counts no requests"
        );
        assert_eq!(comparable(&ra), comparable(&rb), "fs vs s3 {extra:?}");
        let req = &rb.json["summary"]["requests"];
        let (manifests, tags, uploads) = (
            count(&rb.json["summary"]["manifests"]),
            count(&rb.json["summary"]["tags"]),
            count(&rb.json["summary"]["uploads"]),
        );
        // blobs/ and repositories/: a page each for this bucket.
        assert_eq!(count(&req["list"]), keys.div_ceil(1000) + 1, "{req}");
        // A tag's current link; an upload's startedat; every manifest
        // (revision links name each once per repository).
        assert!(
            count(&req["get"]) <= tags + uploads + manifests,
            "{req}: {tags} tags, {uploads} uploads, {manifests} manifests"
        );
        assert_eq!(
            (
                count(&req["head"]),
                count(&req["delete"]),
                count(&req["copy"])
            ),
            (0, 0, 0),
            "{req}"
        );
        let bound = 1.05 * (keys as f64 / 1000.0 + (manifests + tags) as f64) + 4.0;
        assert!(
            (count(&req["total"]) as f64) <= bound,
            "{req}: more than {bound} requests for {keys} keys, {manifests} manifests, {tags} tags"
        );
    }

    // Through scripts/latency_proxy.py (5 ms a request): the same report,
    // the same requests.
    let proxy_log = b.dir.path().join("proxy.log");
    let log_arg = proxy_log.to_str().unwrap().to_string();
    let (proxy, env) = start_proxy(b, &["--latency-ms", "5", "--log", &log_arg]);
    let args: Vec<String> = ["report", &b.storage_arg(), "--format", "json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let slow = regsweep(&args, &env);
    drop(proxy);
    let direct = b.regsweep_report(&[]);
    assert_eq!(comparable(&slow), comparable(&direct), "through the proxy");
    assert_eq!(
        slow.json["summary"]["requests"], direct.json["summary"]["requests"],
        "through the proxy"
    );
    let proxied = std::fs::read_to_string(&proxy_log).unwrap_or_default();
    assert_eq!(
        proxied.lines().count() as u64,
        count(&slow.json["summary"]["requests"]["total"]),
        "every request counted went through the proxy, and no other"
    );
}
