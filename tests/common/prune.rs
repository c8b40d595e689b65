//! Pushing versioned, signed images through the registry's API and
//! applying a `prune` or `delete` the way an operator does (preview to a
//! plan file, apply the file), with the checks every removal test makes:
//! what the preview says goes is gone, everything else pulls, and the bytes
//! that left storage are the preview's.

use super::sweep::*;
use super::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::time::Duration;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const REPO: &str = "app/svc";

/// An image pushed by [`push_versions`].
pub struct Pushed {
    pub tag: String,
    pub digest: String,
}

/// What [`push_versions`] pushed: the versions oldest first, the signature
/// tag of the first version and the referrer pushed by digest for it.
pub struct Versions {
    pub versions: Vec<Pushed>,
    pub signature: Pushed,
    pub referrer: String,
}

/// `sha256:<hex>` of `body`.
pub fn sha(body: &[u8]) -> String {
    sha256_hex_of(body)
}

/// Pushes an OCI image (config + a shared base layer + one of its own)
/// under `reference`; returns its digest.
pub fn push_image(e: &Env, repo: &str, reference: &str, base: &str, nonce: &str) -> String {
    let layer = format!(
        "layer of {repo}:{nonce} {}",
        "x".repeat(2000 + nonce.len() * 37)
    );
    let ld = e.push_blob(repo, layer.as_bytes());
    let cfg = json!({"architecture": "amd64", "os": "linux",
        "config": {"Env": [format!("NONCE={nonce}")]},
        "rootfs": {"type": "layers", "diff_ids": [base, ld]}})
    .to_string();
    let cd = e.push_blob(repo, cfg.as_bytes());
    let base_size = 4000u64;
    let body = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": cfg.len(), "digest": cd},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": base_size, "digest": base},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": layer.len(), "digest": ld}]})
    .to_string();
    e.put_manifest(repo, reference, body.as_bytes(), OCI_MANIFEST);
    sha(body.as_bytes())
}

/// Pushes `n` versions `v1..vn` of `repo`, more than a second apart (object
/// stores keep LastModified in seconds), sharing one base layer; signs v1
/// with a cosign-style tag and attaches an OCI referrer to it.
pub fn push_versions(e: &Env, repo: &str, n: usize, tag_prefix: &str) -> Versions {
    let base = e.push_blob(repo, &vec![b'b'; 4000]);
    let mut versions = Vec::new();
    for i in 1..=n {
        let tag = format!("{tag_prefix}{i}");
        let digest = push_image(e, repo, &tag, &base, &tag);
        versions.push(Pushed { tag, digest });
        std::thread::sleep(Duration::from_millis(1100));
    }
    let v1 = &versions[0].digest;
    // cosign: sha256-<hex>.sig naming a signature manifest.
    let payload = format!("{{\"critical\":{{\"image\":{{\"docker-manifest-digest\":\"{v1}\"}}}}}}");
    let pd = e.push_blob(repo, payload.as_bytes());
    let sig_tag = format!("sha256-{}.sig", &v1["sha256:".len()..]);
    let empty = e.push_blob(repo, b"{}");
    let sig = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": empty},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "size": payload.len(), "digest": pd}]})
    .to_string();
    e.put_manifest(repo, &sig_tag, sig.as_bytes(), OCI_MANIFEST);
    // An SBOM referrer of v1, pushed by digest only.
    let sbom = format!("{{\"spdxVersion\":\"SPDX-2.3\",\"name\":\"{repo}\"}}");
    let sd = e.push_blob(repo, sbom.as_bytes());
    let v1_len = e.get_manifest(repo, v1).1.len();
    let referrer = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2, "digest": empty},
        "layers": [{"mediaType": "application/spdx+json", "size": sbom.len(), "digest": sd}],
        "subject": {"mediaType": OCI_MANIFEST, "size": v1_len, "digest": v1}})
    .to_string();
    let rd = sha(referrer.as_bytes());
    e.put_manifest(repo, &rd, referrer.as_bytes(), OCI_MANIFEST);
    Versions {
        versions,
        signature: Pushed {
            tag: sig_tag,
            digest: sha(sig.as_bytes()),
        },
        referrer: rd,
    }
}

/// Stored blobs (digest → size) in a content snapshot.
pub fn blob_sizes(snap: &BTreeMap<String, String>) -> BTreeMap<String, u64> {
    snap.iter()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix(&format!("{V2}blobs/sha256/"))?;
            let hex = rest.strip_suffix("/data")?.split('/').nth(1)?;
            let size = v.strip_prefix("file:").unwrap_or(v).split(':').next()?;
            Some((format!("sha256:{hex}"), size.parse().ok()?))
        })
        .collect()
}

/// Every current tag in the storage: (repository, tag) → digest, from
/// the registry's API (catalog, tags/list, HEAD).
pub fn api_tags(e: &Env) -> BTreeMap<(String, String), String> {
    let get = |path: &str| -> Value {
        let (st, _, body) = http(e.port, "GET", path, &[], b"").unwrap();
        assert_eq!(st, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    };
    let mut out = BTreeMap::new();
    for r in get("/v2/_catalog?n=1000")["repositories"]
        .as_array()
        .unwrap()
    {
        let r = s(r);
        let (st, _, body) = http(e.port, "GET", &format!("/v2/{r}/tags/list"), &[], b"").unwrap();
        if st != 200 {
            continue; // a repository with no tags left
        }
        let v: Value = serde_json::from_slice(&body).unwrap();
        for t in v["tags"].as_array().into_iter().flatten() {
            let t = s(t);
            let (_, body) = e.get_manifest(&r, &t);
            out.insert((r.clone(), t), sha(&body));
        }
    }
    out
}

/// The status of `GET /v2/<repo>/manifests/<reference>`.
pub fn manifest_status(e: &Env, repo: &str, reference: &str) -> u16 {
    let (st, _, _) = http(
        e.port,
        "GET",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json")],
        b"",
    )
    .unwrap();
    st
}

/// Runs `regsweep COMMAND STORAGE args... --quiet` and returns the output,
/// asserting the exit status.
pub fn cmd(e: &Env, command: &str, args: &[&str], want: i32) -> Output {
    let storage = e.storage_arg();
    let mut all = vec![command, storage.as_str(), "--quiet"];
    all.extend_from_slice(args);
    let o = e.regsweep_run(&all);
    assert_eq!(
        o.status.code(),
        Some(want),
        "regsweep {all:?} -> {}\nstdout: {}\nstderr: {}",
        o.status,
        o.stdout,
        o.stderr
    );
    o
}

pub fn json_of(o: &Output) -> Value {
    serde_json::from_str(&o.stdout).unwrap_or_else(|err| panic!("{err}: {}", o.stdout))
}

pub fn set_of(v: &Value, key: &str, fields: &[&str]) -> BTreeSet<Vec<String>> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| fields.iter().map(|f| s(&x[*f])).collect())
        .collect()
}

/// Applies `args` (a prune or delete) the exact way an operator would:
/// preview to a plan file, apply that file, then checks everything the
/// module doc promises. Returns the preview.
pub fn preview_then_apply(e: &mut Env, command: &str, args: &[&str]) -> Value {
    let dir = e.dir.path().to_path_buf();
    let plan_file = dir.join(format!("{command}-plan.json"));
    let journal = dir.join(format!("{command}-journal.jsonl"));
    let tags_before = api_tags(e);
    let before = e.content_snapshot();
    let mut a: Vec<&str> = args.to_vec();
    let pf = plan_file.to_str().unwrap().to_string();
    a.extend_from_slice(&["--format", "json", "--plan", &pf]);
    let preview = json_of(&cmd(e, command, &a, 0));
    assert_eq!(preview["format_version"], 1);
    // Nothing changed by the preview.
    assert_eq!(
        e.content_snapshot(),
        before,
        "the preview changed the storage"
    );
    let saved: Value = serde_json::from_str(&fs::read_to_string(&plan_file).unwrap()).unwrap();
    assert_eq!(
        saved["plan"], preview["plan"],
        "--plan FILE is not the previewed plan"
    );

    let j = journal.to_str().unwrap().to_string();
    e.let_pushes_age();
    let applied = cmd(
        e,
        command,
        &[
            "--apply",
            "--settle",
            "0s",
            "--plan",
            &pf,
            "--journal",
            &j,
            "--format",
            "json",
        ],
        0,
    );
    let applied = json_of(&applied);
    assert_eq!(applied["plan"]["actions"], preview["plan"]["actions"]);
    let after = e.content_snapshot();

    // Bytes: exactly the preview's, blob by blob.
    let (b0, b1) = (blob_sizes(&before), blob_sizes(&after));
    let gone: BTreeMap<&String, &u64> = b0.iter().filter(|(d, _)| !b1.contains_key(*d)).collect();
    assert!(b1.keys().all(|d| b0.contains_key(d)), "blobs appeared");
    let planned: BTreeSet<String> = preview["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["kind"] == "blob")
        .map(|x| s(&x["digest"]))
        .collect();
    let gone_set: BTreeSet<String> = gone.keys().map(|d| d.to_string()).collect();
    assert_eq!(gone_set, planned, "blobs that left storage vs the plan's");
    let freed: u64 = gone.values().copied().sum();
    assert_eq!(
        freed,
        preview["summary"]["reclaimable_bytes"].as_u64().unwrap(),
        "bytes that left storage vs the preview's reclaimable_bytes"
    );
    assert_eq!(
        preview["summary"]["blobs_removed"].as_u64().unwrap() as usize,
        gone.len()
    );

    // Tags: the removed ones answer 404, every other one pulls whole.
    let removed = tags_removed(&preview);
    e.restart_registry();
    for (r, t) in &removed {
        assert_eq!(
            manifest_status(e, r, t),
            404,
            "{r}:{t} was removed but still answers"
        );
    }
    for m in preview["manifests_removed"].as_array().unwrap() {
        let (r, d) = (s(&m["repository"]), s(&m["digest"]));
        assert_eq!(
            manifest_status(e, &r, &d),
            404,
            "{r}@{d} was removed but still answers"
        );
    }
    let kept: Vec<(String, String, String)> = tags_before
        .iter()
        .filter(|(k, _)| !removed.contains(k))
        .map(|((r, t), d)| (r.clone(), t.clone(), d.clone()))
        .collect();
    let now: Vec<(String, String, String)> = api_tags(e)
        .into_iter()
        .map(|((r, t), d)| (r, t, d))
        .collect();
    assert_eq!(
        now, kept,
        "tags after the apply vs the tags before minus the removed"
    );
    e.assert_all_pull(&kept, &format!("after {command} --apply"));
    preview
}

/// After a prune with `--untagged`: `report --delete-untagged` has nothing
/// left to collect (abandoned uploads are `sweep`'s, not `prune`'s).
pub fn assert_nothing_left(e: &Env, when: &str) {
    let r = e.regsweep_report(&["--delete-untagged"]);
    for k in ["garbage_blobs", "garbage_manifests"] {
        assert!(
            r.arr(k).is_empty(),
            "{when}: `report -m` still lists {k}: {:?}",
            r.arr(k)
        );
    }
}

/// (repository, tag) of every tag a delete or prune plan removes.
pub fn tags_removed(plan: &Value) -> BTreeSet<(String, String)> {
    plan["tags_removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (s(&t["repository"]), s(&t["tag"])))
        .collect()
}
