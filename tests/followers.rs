//! Tags that follow another manifest, on a tree the real reference registry
//! wrote through its HTTP API the way cosign and oras lay artifacts out on a
//! registry without the referrers API:
//!
//! * cosign's `sha256-<hex>.sig` and `sha256-<hex>.att` naming signature
//!   and attestation manifests of subject `sha256:<hex>`;
//! * the OCI distribution spec's referrers tag schema: an OCI index tagged
//!   `sha256-<hex>` (no suffix) listing the referrers (manifests with a
//!   `subject`, pushed by digest) of `sha256:<hex>`;
//! * an artifact with a `subject` pushed under an ordinary tag (`v2-sbom`).
//!
//! Repository `app/web` holds `v1` and, more than a second later, `v2`
//! (sharing a base layer), each with its followers; the newest tag of all is
//! v2's referrers index. What is checked:
//!
//! * `prune --keep-last 1 --no-keep-latest --apply` keeps `v2` and every
//!   follower of it (all still pull with `skopeo copy --all`, the referrer
//!   still answers by digest) and removes `v1` with its followers (404) —
//!   a follower is never counted as a version, so the referrers index does
//!   not take `v2`'s place; its preview gives every follower a "follows its
//!   subject" reason, never a keep-last rank;
//! * `images --format json` gives each tag its role, and `v1`'s
//!   `reclaimable_bytes` are exactly the bytes of the blob files that
//!   `delete app/web@<v1>` and then `sweep -m` remove; that delete takes
//!   `v1`'s followers along and every other tag still pulls.

mod common;

use common::sweep::*;
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const REPO: &str = "app/web";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const COSIGN_SIG: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const DSSE: &str = "application/vnd.dsse.envelope.v1+json";
const SPDX: &str = "application/spdx+json";
const CYCLONEDX: &str = "application/vnd.cyclonedx+json";

/// A manifest pushed: its digest and its size in bytes.
#[derive(Clone, Debug)]
struct Pushed {
    digest: String,
    size: usize,
}

/// One version of the image and what follows it.
struct Version {
    tag: String,
    image: Pushed,
    /// Blobs only this version's image uses (its config and own layer).
    own_blobs: Vec<String>,
    /// `sha256-<hex>.sig`.
    sig_tag: String,
    sig: Pushed,
    /// `sha256-<hex>.att` (v2 only).
    att: Option<(String, Pushed)>,
    /// The SPDX referrer, pushed by digest only.
    referrer: Pushed,
    /// `sha256-<hex>`: the referrers tag schema's index.
    index_tag: String,
    index: Pushed,
}

impl Version {
    /// Every tag naming this version or one of its followers (the tagged
    /// SBOM artifact aside).
    fn tags(&self) -> Vec<String> {
        let mut t = vec![
            self.tag.clone(),
            self.sig_tag.clone(),
            self.index_tag.clone(),
        ];
        t.extend(self.att.iter().map(|(a, _)| a.clone()));
        t
    }
}

/// What [`push_repo`] pushed.
struct Pushes {
    v1: Version,
    v2: Version,
    /// `v2-sbom`: a tagged artifact whose subject is v2.
    sbom_tag: String,
    sbom: Pushed,
    /// The layer v1 and v2 share.
    base: String,
}

fn put(e: &Env, reference: &str, body: &Value, media_type: &str) -> Pushed {
    let bytes = body.to_string().into_bytes();
    e.put_manifest(REPO, reference, &bytes, media_type);
    Pushed {
        digest: sha256_hex_of(&bytes),
        size: bytes.len(),
    }
}

fn descriptor(media_type: &str, p: &Pushed) -> Value {
    json!({"mediaType": media_type, "size": p.size, "digest": p.digest})
}

/// An image `tag` (config, the shared base layer, a layer of its own).
fn push_image(e: &Env, tag: &str, base: &str, base_len: usize) -> (Pushed, Vec<String>) {
    let layer = format!(
        "layer of {REPO}:{tag} {}",
        "y".repeat(3000 + tag.len() * 61)
    );
    let ld = e.push_blob(REPO, layer.as_bytes());
    let cfg = json!({"architecture": "amd64", "os": "linux",
        "config": {"Env": [format!("VERSION={tag}")]},
        "rootfs": {"type": "layers", "diff_ids": [base, ld]}})
    .to_string();
    let cd = e.push_blob(REPO, cfg.as_bytes());
    let body = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": cfg.len(), "digest": cd},
        "layers": [
            {"mediaType": OCI_LAYER, "size": base_len, "digest": base},
            {"mediaType": OCI_LAYER, "size": layer.len(), "digest": ld}]});
    (put(e, tag, &body, OCI_MANIFEST), vec![cd, ld])
}

/// A cosign-style manifest: a small config whose diff_ids name the payload,
/// and the payload as its one layer (`layer_type`), tagged `tag`.
fn push_cosign(e: &Env, tag: &str, layer_type: &str, payload: &str) -> Pushed {
    let pd = e.push_blob(REPO, payload.as_bytes());
    let cfg = json!({"architecture": "", "os": "", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [pd]}})
    .to_string();
    let cd = e.push_blob(REPO, cfg.as_bytes());
    let body = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": cfg.len(), "digest": cd},
        "layers": [{"mediaType": layer_type, "size": payload.len(), "digest": pd,
            "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQDfake"}}]});
    put(e, tag, &body, OCI_MANIFEST)
}

/// An artifact (empty config, one layer of `artifact_type`) whose subject is
/// `subject`, pushed under `reference` (a tag, or its own digest).
fn push_artifact(
    e: &Env,
    reference: Option<&str>,
    artifact_type: &str,
    doc: &str,
    subject: &Pushed,
) -> Pushed {
    let empty = e.push_blob(REPO, b"{}");
    let dd = e.push_blob(REPO, doc.as_bytes());
    let body = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "size": 2, "digest": empty},
        "layers": [{"mediaType": artifact_type, "size": doc.len(), "digest": dd}],
        "subject": descriptor(OCI_MANIFEST, subject)});
    let bytes = body.to_string().into_bytes();
    let digest = sha256_hex_of(&bytes);
    e.put_manifest(REPO, reference.unwrap_or(&digest), &bytes, OCI_MANIFEST);
    Pushed {
        digest,
        size: bytes.len(),
    }
}

/// The referrers tag schema's index of `subject`: an OCI index tagged
/// `sha256-<hex>` listing `referrers` (with their artifact types).
fn push_referrers_index(
    e: &Env,
    subject: &Pushed,
    referrers: &[(&Pushed, &str)],
) -> (String, Pushed) {
    let tag = subject.digest.replace("sha256:", "sha256-");
    let manifests: Vec<Value> = referrers
        .iter()
        .map(|(p, at)| {
            let mut d = descriptor(OCI_MANIFEST, p);
            d["artifactType"] = json!(at);
            d
        })
        .collect();
    let body = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    let p = put(e, &tag, &body, OCI_INDEX);
    (tag, p)
}

/// Pushes `tag` with a signature and an SPDX referrer (by digest); with
/// `att`, an attestation too. Its referrers index is left for the caller to
/// push once every referrer of `tag` is there.
fn push_version(e: &Env, tag: &str, base: &str, base_len: usize, att: bool) -> Version {
    let (image, own_blobs) = push_image(e, tag, base, base_len);
    let hex = image.digest.strip_prefix("sha256:").unwrap().to_string();
    let d = &image.digest;
    let sig_tag = format!("sha256-{hex}.sig");
    let sig = push_cosign(
        e,
        &sig_tag,
        COSIGN_SIG,
        &format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1/{REPO}"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
        ),
    );
    let att = att.then(|| {
        let t = format!("sha256-{hex}.att");
        let p = push_cosign(
            e,
            &t,
            DSSE,
            &format!(
                r#"{{"payloadType":"application/vnd.in-toto+json","payload":"{}","signatures":[{{"sig":"fake"}}]}}"#,
                hex
            ),
        );
        (t, p)
    });
    let referrer = push_artifact(
        e,
        None,
        SPDX,
        &format!(r#"{{"spdxVersion":"SPDX-2.3","name":"{REPO}:{tag}"}}"#),
        &image,
    );
    Version {
        tag: tag.to_string(),
        image,
        own_blobs,
        sig_tag,
        sig,
        att,
        referrer,
        index_tag: String::new(),
        index: Pushed {
            digest: String::new(),
            size: 0,
        },
    }
}

/// `v1` with its signature, referrer and referrers index; more than a
/// second later `v2` with its signature, attestation, referrer, the tagged
/// `v2-sbom` artifact and, last of all, its referrers index listing both
/// referrers. Checks that every tag pulls.
fn push_repo(e: &Env) -> Pushes {
    let base_data = vec![b'b'; 5000];
    let base = e.push_blob(REPO, &base_data);
    let mut v1 = push_version(e, "v1", &base, base_data.len(), false);
    let (t, p) = push_referrers_index(e, &v1.image, &[(&v1.referrer, SPDX)]);
    (v1.index_tag, v1.index) = (t, p);
    std::thread::sleep(Duration::from_millis(1100));
    let mut v2 = push_version(e, "v2", &base, base_data.len(), true);
    let sbom_tag = "v2-sbom".to_string();
    let sbom = push_artifact(
        e,
        Some(&sbom_tag),
        CYCLONEDX,
        r#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#,
        &v2.image,
    );
    // The referrers index is the newest tag of the repository: were it
    // counted as a version, `--keep-last 1` would keep it instead of v2.
    std::thread::sleep(Duration::from_millis(50));
    let (t, p) = push_referrers_index(e, &v2.image, &[(&v2.referrer, SPDX), (&sbom, CYCLONEDX)]);
    (v2.index_tag, v2.index) = (t, p);
    let pushes = Pushes {
        v1,
        v2,
        sbom_tag,
        sbom,
        base,
    };
    let tags: BTreeSet<String> = repo_tags(e, REPO);
    assert_eq!(tags, all_tags_of(&pushes), "tags of {REPO} after the push");
    let failures = e.pull_failures(&triples(&tags));
    assert!(failures.is_empty(), "after the push: {failures:?}");
    pushes
}

/// Every tag [`push_repo`] pushed.
fn all_tags_of(p: &Pushes) -> BTreeSet<String> {
    p.v1.tags()
        .into_iter()
        .chain(p.v2.tags())
        .chain([p.sbom_tag.clone()])
        .collect()
}

fn triples(tags: &BTreeSet<String>) -> Vec<(String, String, String)> {
    tags.iter()
        .map(|t| (REPO.to_string(), t.clone(), String::new()))
        .collect()
}

/// The tags of `repo` the registry lists (empty when it has none).
fn repo_tags(e: &Env, repo: &str) -> BTreeSet<String> {
    let (st, _, body) = http(e.port, "GET", &format!("/v2/{repo}/tags/list"), &[], b"").unwrap();
    if st == 404 {
        return BTreeSet::new();
    }
    assert_eq!(
        st,
        200,
        "tags/list {repo}: {}",
        String::from_utf8_lossy(&body)
    );
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["tags"].as_array().into_iter().flatten().map(s).collect()
}

/// Every (repository, tag) the registry lists.
fn every_tag(e: &Env) -> Vec<(String, String, String)> {
    let (st, _, body) = http(e.port, "GET", "/v2/_catalog?n=1000", &[], b"").unwrap();
    assert_eq!(st, 200, "catalog: {}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    let mut out = Vec::new();
    for r in v["repositories"].as_array().unwrap() {
        let r = s(r);
        for t in repo_tags(e, &r) {
            out.push((r.clone(), t, String::new()));
        }
    }
    out
}

/// The status of `GET /v2/REPO/manifests/<reference>`.
fn manifest_status(e: &Env, reference: &str) -> u16 {
    http(
        e.port,
        "GET",
        &format!("/v2/{REPO}/manifests/{reference}"),
        &[(
            "Accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
        )],
        b"",
    )
    .unwrap()
    .0
}

/// `regsweep COMMAND STORAGE --quiet args...` with a journal of its own in
/// the test's directory; asserts exit 0.
fn regsweep_ok(e: &Env, command: &str, args: &[&str]) -> Output {
    let storage = e.storage_arg();
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, Ordering::SeqCst);
    let journal = e.dir.path().join(format!("{command}-{n}-journal.jsonl"));
    let j = journal.to_str().unwrap();
    let mut all = vec![command, storage.as_str(), "--quiet"];
    all.extend_from_slice(args);
    if command != "images" {
        all.extend_from_slice(&["--journal", j]);
    }
    let o = e.regsweep_run(&all);
    assert_eq!(
        o.status.code(),
        Some(0),
        "regsweep {all:?} -> {}\nstdout: {}\nstderr: {}",
        o.status,
        o.stdout,
        o.stderr
    );
    o
}

fn json_of(o: &Output) -> Value {
    serde_json::from_str(&o.stdout).unwrap_or_else(|err| panic!("{err}: {}", o.stdout))
}

/// Stored blobs on the filesystem: digest → size of its data file.
fn blob_files(root: &Path) -> BTreeMap<String, u64> {
    tree_fingerprint(&root.join(format!("{V2}blobs")))
        .into_iter()
        .filter_map(|(k, v)| {
            let hex = k.strip_suffix("/data")?.rsplit('/').next()?.to_string();
            let size = v.strip_prefix("file:")?.split(':').next()?.parse().ok()?;
            Some((format!("sha256:{hex}"), size))
        })
        .collect()
}

fn blob_exists(e: &Env, digest: &str) -> bool {
    let hex = digest.strip_prefix("sha256:").unwrap();
    e.root
        .as_ref()
        .unwrap()
        .join(format!("{V2}blobs/sha256/{}/{hex}/data", &hex[..2]))
        .is_file()
}

/// Whether a plan reason says the tag or manifest goes or stays with its
/// subject `subject`.
fn follows(reason: &str, subject: &str) -> bool {
    (reason.starts_with("removed with its subject") || reason.starts_with("kept: its subject"))
        && reason.contains(subject)
}

/// Whether a tag name is cosign's or the referrers tag schema's.
fn follower_name(tag: &str) -> bool {
    tag.strip_prefix("sha256-").is_some_and(|rest| {
        let (hex, suffix) = rest
            .split_once('.')
            .map_or((rest, None), |(h, x)| (h, Some(x)));
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && matches!(suffix, None | Some("sig" | "att" | "sbom"))
    })
}

/// The prune preview: every follower tag (in any repository) has a
/// "follows its subject" reason and never a keep-last rank; in `app/web`
/// v2 is the one kept by keep-last, v1 goes by the rule, and each of v1's
/// followers (tags and its untagged referrer) goes with it.
fn check_preview(e: &Env, p: &Pushes, args: &[&str]) {
    let before = tree_fingerprint(e.root.as_ref().unwrap());
    let mut a = args.to_vec();
    a.extend_from_slice(&["--format", "json"]);
    let plan = json_of(&regsweep_ok(e, "prune", &a));
    assert_eq!(
        tree_fingerprint(e.root.as_ref().unwrap()),
        before,
        "the preview changed the storage"
    );
    // tag -> (kept?, reason) in app/web; follower names everywhere.
    let mut ours: BTreeMap<String, (bool, String)> = BTreeMap::new();
    for (key, kept) in [("kept", true), ("tags_removed", false)] {
        for row in plan[key].as_array().unwrap() {
            let Some(tag) = row["tag"].as_str() else {
                continue; // an untagged manifest
            };
            let reason = s(&row["reason"]);
            if follower_name(tag) {
                let subject = format!("sha256:{}", &tag["sha256-".len()..][..64]);
                assert!(
                    follows(&reason, &subject),
                    "{}:{tag} ({key}) has reason {reason:?}, not one following {subject}",
                    s(&row["repository"]),
                );
            }
            assert!(
                !(follower_name(tag) && reason.contains("keep_last")),
                "a follower counted as a version: {row}"
            );
            if row["repository"] == REPO {
                assert!(
                    ours.insert(tag.to_string(), (kept, reason)).is_none(),
                    "{tag} listed twice"
                );
            }
        }
    }
    let want_tags = all_tags_of(p);
    assert_eq!(
        ours.keys().cloned().collect::<BTreeSet<_>>(),
        want_tags,
        "the plan names every tag of {REPO} once:\n{plan:#}"
    );
    let (v1, v2) = (&p.v1, &p.v2);
    assert_eq!(
        ours["v2"],
        (true, "kept by rule 1: keep_last, rank 1".to_string()),
        "{ours:#?}"
    );
    assert_eq!(
        ours["v1"],
        (false, "removed by rule 1".to_string()),
        "{ours:#?}"
    );
    for t in v1.tags().iter().filter(|t| **t != v1.tag) {
        let (kept, reason) = &ours[t];
        assert!(
            !kept
                && reason.starts_with("removed with its subject")
                && reason.contains(&v1.image.digest),
            "{t}: {reason}"
        );
    }
    for t in v2
        .tags()
        .iter()
        .filter(|t| **t != v2.tag)
        .chain([&p.sbom_tag])
    {
        let (kept, reason) = &ours[t];
        assert!(
            *kept && *reason == format!("kept: its subject {} stays", v2.image.digest),
            "{t}: {reason}"
        );
    }
    // v1's manifests go: the image, its signature, its referrers index, and
    // the untagged referrer with its subject.
    let removed: BTreeMap<String, String> = plan["manifests_removed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["repository"] == REPO)
        .map(|m| (s(&m["digest"]), s(&m["reason"])))
        .collect();
    let want: BTreeSet<String> = [&v1.image, &v1.sig, &v1.index, &v1.referrer]
        .iter()
        .map(|x| x.digest.clone())
        .collect();
    assert_eq!(
        removed.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "manifests removed from {REPO}: {removed:#?}"
    );
}

/// Regression: `sha256-<hex>` (the referrers tag schema) was counted as a
/// version, so `--keep-last 1` kept v2's referrers index, the newest tag,
/// and removed v2 itself.
#[test]
fn fs_prune_keep_last_keeps_the_newest_version_with_its_followers() {
    let mut e = Env::start(Backend::Fs, SEED);
    let p = push_repo(&e);
    let args = ["--keep-last", "1", "--no-keep-latest", "--grace", "0s"];
    check_preview(&e, &p, &args);

    let mut a = args.to_vec();
    a.extend(["--apply", "--settle", "0s"]);
    regsweep_ok(&e, "prune", &a);
    e.restart_registry();

    let (v1, v2) = (&p.v1, &p.v2);
    let mut want: BTreeSet<String> = v2.tags().into_iter().collect();
    want.insert(p.sbom_tag.clone());
    assert_eq!(repo_tags(&e, REPO), want, "tags of {REPO} after the prune");
    for t in v1.tags() {
        assert_eq!(manifest_status(&e, &t), 404, "{REPO}:{t} after the prune");
    }
    for x in [&v1.image, &v1.sig, &v1.index, &v1.referrer] {
        assert_eq!(manifest_status(&e, &x.digest), 404, "{REPO}@{}", x.digest);
    }
    for x in [&v2.image, &v2.sig, &v2.index, &v2.referrer, &p.sbom] {
        assert_eq!(manifest_status(&e, &x.digest), 200, "{REPO}@{}", x.digest);
    }
    assert_eq!(manifest_status(&e, &v2.att.as_ref().unwrap().1.digest), 200);
    // v1's own blobs left the storage; the layer v2 shares stayed.
    for b in &v1.own_blobs {
        assert!(!blob_exists(&e, b), "v1's blob {b} is still stored");
    }
    for b in v2.own_blobs.iter().chain([&p.base]) {
        assert!(blob_exists(&e, b), "v2's blob {b} was removed");
    }
    // Every tag still listed, in every repository, pulls whole.
    let tags = every_tag(&e);
    assert!(
        tags.iter().any(|(r, t, _)| r == REPO && *t == v2.index_tag),
        "{tags:?}"
    );
    e.assert_all_pull(&tags, "after prune --keep-last 1 --apply");
}

/// `images` names each tag's role, and v1's `reclaimable_bytes` are what
/// `delete app/web@<v1>` then `sweep -m` free.
#[test]
fn fs_images_roles_and_reclaimable_bytes_of_a_signed_version() {
    let mut e = Env::start(Backend::Fs, SEED);
    let p = push_repo(&e);
    let (v1, v2) = (&p.v1, &p.v2);
    let root = e.root.clone().unwrap();
    // The scenario's own garbage first, so that what the delete frees is
    // v1's alone.
    regsweep_ok(
        &e,
        "sweep",
        &[&NOW[..], &["--apply", "--settle", "0s"]].concat(),
    );

    let images = json_of(&regsweep_ok(
        &e,
        "images",
        &["--repo", REPO, "--format", "json"],
    ));
    let rows: BTreeMap<String, Value> = images["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (s(&r["digest"]), r.clone()))
        .collect();
    let roles = |d: &str| -> BTreeMap<String, String> {
        let r = rows
            .get(d)
            .unwrap_or_else(|| panic!("no row for {d}: {images:#}"));
        r["tag_roles"]
            .as_object()
            .unwrap_or_else(|| panic!("tag_roles of {r}"))
            .iter()
            .map(|(t, role)| (t.clone(), s(role)))
            .collect()
    };
    let one = |t: &str, role: &str| BTreeMap::from([(t.to_string(), role.to_string())]);
    for v in [v1, v2] {
        assert_eq!(roles(&v.image.digest), one(&v.tag, "version"));
        assert_eq!(roles(&v.sig.digest), one(&v.sig_tag, "signature"));
        assert_eq!(roles(&v.index.digest), one(&v.index_tag, "referrers-index"));
        assert_eq!(roles(&v.referrer.digest), BTreeMap::new());
        assert_eq!(
            rows[&v.referrer.digest]["subject"],
            v.image.digest.as_str(),
            "the referrer's row names its subject"
        );
    }
    let (att_tag, att) = v2.att.as_ref().unwrap();
    assert_eq!(roles(&att.digest), one(att_tag, "attestation"));
    assert_eq!(roles(&p.sbom.digest), one(&p.sbom_tag, "referrer"));
    assert_eq!(rows.len(), 10, "rows of {REPO}: {:#?}", rows.keys());
    let reclaimable = rows[&v1.image.digest]["reclaimable_bytes"]
        .as_u64()
        .unwrap();

    let tags_before = every_tag(&e);
    let before = blob_files(&root);
    let target = format!("{REPO}@{}", v1.image.digest);
    let plan = json_of(&regsweep_ok(
        &e,
        "delete",
        &[
            &target, "--grace", "0s", "--apply", "--settle", "0s", "--format", "json",
        ],
    ));
    let removed: BTreeSet<String> = plan["tags_removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{}:{}", s(&t["repository"]), s(&t["tag"])))
        .collect();
    let want: BTreeSet<String> = v1.tags().iter().map(|t| format!("{REPO}:{t}")).collect();
    assert_eq!(removed, want, "tags the delete removed");
    regsweep_ok(
        &e,
        "sweep",
        &[
            "--delete-untagged",
            "--grace",
            "0s",
            "--apply",
            "--settle",
            "0s",
        ],
    );
    let after = blob_files(&root);
    assert!(
        after.keys().all(|d| before.contains_key(d)),
        "blobs appeared"
    );
    let gone: BTreeMap<&String, &u64> = before
        .iter()
        .filter(|(d, _)| !after.contains_key(*d))
        .collect();
    let freed: u64 = gone.values().copied().sum();
    assert_eq!(
        freed, reclaimable,
        "bytes freed by delete + sweep -m vs v1's reclaimable_bytes; blobs gone: {gone:#?}"
    );
    for b in v1.own_blobs.iter().chain([
        &v1.image.digest,
        &v1.sig.digest,
        &v1.index.digest,
        &v1.referrer.digest,
    ]) {
        assert!(gone.contains_key(b), "{b} is still stored");
    }
    assert!(!gone.contains_key(&p.base), "the shared layer went");

    e.restart_registry();
    let mut want: BTreeSet<String> = v2.tags().into_iter().collect();
    want.insert(p.sbom_tag.clone());
    assert_eq!(repo_tags(&e, REPO), want, "tags of {REPO} after the delete");
    for t in v1.tags() {
        assert_eq!(manifest_status(&e, &t), 404, "{REPO}:{t} after the delete");
    }
    let left: Vec<(String, String, String)> = tags_before
        .into_iter()
        .filter(|(r, t, _)| !(r == REPO && v1.tags().contains(t)))
        .collect();
    assert_eq!(every_tag(&e), left, "tags after the delete");
    e.assert_all_pull(&left, "after delete v1 and sweep -m");
    e.assert_nothing_reclaimable("after delete v1 and sweep -m");
}
