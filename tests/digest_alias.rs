//! Blobs pushed by a sha512 digest, against the real reference registry on
//! its filesystem and S3 drivers. The registry stores such a blob as its
//! sha256 and writes an alias link, `_layers/sha512/<hex>/link`, holding the
//! sha256 digest; a manifest then references the layer by its sha512
//! digest. Regression: regsweep (like the reference's `garbage-collect`,
//! which these tests show deleting it) once took the blob for garbage, and
//! a sweep deleted a layer of a tagged image.

mod common;

use common::sweep::*;
use common::*;
use serde_json::json;
use sha2::Digest as _;

const REPO: &str = "alias/app";
/// The tag of a second image in the same repository, deleted by digest.
const GONE: &str = "old";
const TAG: &str = "v1";

/// What was pushed: the layer's sha256 (how it is stored) and sha512 (how
/// the manifest names it), the alias link's key, and the manifest's digest.
struct Pushed {
    stored: String,
    alias: String,
    alias_link: String,
    manifest: String,
}

impl Pushed {
    fn blob_key(&self) -> String {
        format!(
            "blobs/sha256/{}/{}/data",
            &self.stored[7..9],
            &self.stored[7..]
        )
    }
}

/// Pushes to `repo` an image whose layer (made from `seed`) goes up by its
/// sha512 digest, tags it `tag`, and checks that skopeo pulls it.
fn push_aliased_image(e: &Env, repo: &str, tag: &str, seed: u32) -> Pushed {
    let layer: Vec<u8> = (0..4096u32).map(|i| ((i * 7 + seed) % 251) as u8).collect();
    let alias = format!("sha512:{:x}", sha2::Sha512::digest(&layer));
    assert_eq!(e.push_blob_as(repo, &layer, &alias), alias);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = e.push_blob(repo, config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": alias, "size": layer.len()}],
    })
    .to_string();
    e.put_manifest(
        repo,
        tag,
        manifest.as_bytes(),
        "application/vnd.oci.image.manifest.v1+json",
    );
    e.skopeo_copy(repo, tag)
        .expect("the image pushed by a sha512 digest pulls");
    let hex = alias.trim_start_matches("sha512:");
    Pushed {
        stored: sha256_hex_of(&layer),
        alias_link: format!("repositories/{repo}/_layers/sha512/{hex}/link"),
        alias,
        manifest: sha256_hex_of(manifest.as_bytes()),
    }
}

fn problem_kinds(r: &Report) -> Vec<String> {
    r.arr("problems").iter().map(|p| s(&p["kind"])).collect()
}

fn check_aliased_blob_is_live(backend: Backend) {
    let mut e = Env::start(backend, SEED);
    let p = push_aliased_image(&e, REPO, TAG, 0);
    // A second one, deleted through the API: its blob and alias link are
    // garbage.
    let gone = push_aliased_image(&e, REPO, GONE, 1);
    let (st, _, body) = http(
        e.port,
        "DELETE",
        &format!("/v2/{REPO}/manifests/{}", gone.manifest),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(
        st,
        202,
        "DELETE manifest: {}",
        String::from_utf8_lossy(&body)
    );
    let mut tags = e.tags();
    tags.push((REPO.into(), TAG.into(), String::new()));

    // Both modes: the stored layer is live, and nothing is wrong.
    for extra in [&[][..], &["--delete-untagged"][..]] {
        let r = e.regsweep_report(extra);
        assert!(
            !r.garbage_blobs().contains(&p.stored),
            "report {extra:?}: the layer pushed as {} (stored as {}) is listed as garbage",
            p.alias,
            p.stored
        );
        assert!(
            r.garbage_blobs().contains(&gone.stored),
            "report {extra:?}: the deleted image's layer {} is not garbage",
            gone.stored
        );
        assert!(
            problem_kinds(&r).is_empty(),
            "report {extra:?}: unexpected problems {:?}",
            r.arr("problems")
        );
    }
    // The reference's default mode marks the sha512 digest and sweeps the
    // sha256 blob it is stored as: exactly that one blob more than regsweep.
    let ours = e.regsweep_report(&[]).garbage_blobs();
    let theirs = e.reference_gc(false).blobs;
    let only_theirs: Vec<&String> = theirs.difference(&ours).collect();
    let only_ours: Vec<&String> = ours.difference(&theirs).collect();
    assert_eq!(
        (only_theirs, only_ours),
        (vec![&p.stored], vec![]),
        "regsweep's garbage should be the reference's minus the aliased layer"
    );

    // Verify: whole.
    let v = e.regsweep_run(&["verify", &e.storage_arg(), "--rehash"]);
    assert_eq!(
        v.status.code(),
        Some(0),
        "verify: {}\n{}",
        v.stdout,
        v.stderr
    );

    // Sweep -m for real: every tag, the aliased one too, still pulls.
    let journal = e.dir.path().join("alias-journal.jsonl");
    let journal = journal.to_str().unwrap();
    e.sweep(
        &[
            "--delete-untagged",
            "--grace",
            "0s",
            "--upload-age",
            "0s",
            "--apply",
            "--settle",
            "0s",
            "--journal",
            journal,
        ],
        0,
    );
    e.assert_all_pull(
        &tags,
        "after `regsweep sweep -m --apply` with a sha512 layer",
    );

    // Without its alias link the reference is unresolvable: an error that
    // blocks the sweep, and the stored layer stays.
    e.delete_object(&p.alias_link);
    let r = e.regsweep_report(&["--delete-untagged"]);
    assert!(
        problem_kinds(&r).contains(&"unresolved_digest".to_string()),
        "no unresolved_digest problem once the alias link is gone: {:?}",
        r.arr("problems")
    );
    assert_eq!(r.json["summary"]["sweep_blocked"], json!(true));
    e.sweep(
        &[
            "--delete-untagged",
            "--grace",
            "0s",
            "--apply",
            "--settle",
            "0s",
            "--journal",
            journal,
        ],
        3,
    );
    let blob_key = p.blob_key();
    assert!(
        key_exists(&e.content_snapshot(), &blob_key),
        "the refused sweep removed {blob_key}"
    );
    // And verify names the tag as broken by the missing alias link.
    let v = e.regsweep_run(&["verify", &e.storage_arg(), "--format", "json"]);
    assert_eq!(v.status.code(), Some(1), "verify: {}", v.stderr);
    let doc: serde_json::Value = serde_json::from_str(&v.stdout).unwrap();
    let broken: Vec<String> = doc["broken_tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{}:{}", s(&t["repository"]), s(&t["tag"])))
        .collect();
    assert_eq!(broken, vec![format!("{REPO}:{TAG}")]);
    assert!(
        e.skopeo_copy(REPO, TAG).is_err(),
        "the registry still serves {REPO}:{TAG} without its alias link"
    );
}

#[test]
fn fs_blob_pushed_by_sha512_digest_stays_live_and_pulls_after_sweep() {
    check_aliased_blob_is_live(Backend::Fs);
}

#[test]
fn s3_blob_pushed_by_sha512_digest_stays_live_and_pulls_after_sweep() {
    check_aliased_blob_is_live(Backend::S3);
}
