//! Removals while the reference registry keeps serving pushes (filesystem
//! driver, no blob descriptor cache). While `sweep -m`, `sweep`, `prune`
//! and `delete` run with `--apply`, `scripts/push_during.py` pushes images
//! that mount, re-upload and HEAD-skip the blobs the plan removes, moves new
//! tags onto the manifests it removes, and pushes new images, at seeded
//! random moments. Afterwards every acknowledged push and every tag that
//! should stay pulls with skopeo, and the garbage no push reused is gone.
//!
//! `--keep-quarantine` leaves a run's removals staged: a later apply moves
//! back what a push needs again, `restore` puts them all back, and the
//! first apply after the period deletes them.
//!
//! And the registries whose storage is not the truth are refused.

mod common;

use common::pushes::run_with_pushes;
use common::sweep::*;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::time::Duration;

#[test]
fn sweep_m_while_pushing_keeps_every_acknowledged_push() {
    for seed in [11, 12, 13] {
        run_with_pushes(Backend::Fs, "sweep", &["-m", "--grace", "0s"], seed, &[]);
    }
}

#[test]
fn sweep_and_delete_while_pushing_keep_every_acknowledged_push() {
    run_with_pushes(Backend::Fs, "sweep", &["--grace", "0s"], 14, &[]);
    run_with_pushes(Backend::Fs, "delete", &["a:v1", "--grace", "0s"], 15, &[]);
}

#[test]
fn prune_while_pushing_keeps_every_acknowledged_push() {
    for seed in [16, 17] {
        run_with_pushes(
            Backend::Fs,
            "prune",
            &["--keep-last", "1", "--grace", "0s"],
            seed,
            &[],
        );
    }
}

/// A vendor's policy decides through its own format and removes through
/// the same pipeline: an ECR lifecycle policy on a directory and, on S3
/// with 8 % of requests failing and 3 % reset, an `acr purge` line —
/// applied while pushes run.
#[test]
fn vendor_policies_while_pushing_and_failing_keep_every_acknowledged_push() {
    let dir = tempfile::tempdir().unwrap();
    let ecr = dir.path().join("lifecycle.json");
    fs::write(
        &ecr,
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
    )
    .unwrap();
    let ecr = ecr.to_str().unwrap();
    run_with_pushes(
        Backend::Fs,
        "prune",
        &["--policy", ecr, "--grace", "0s"],
        20,
        &[],
    );
    run_with_pushes(
        Backend::S3,
        "prune",
        &[
            "--acr-filter",
            ".*:.*",
            "--ago",
            "0d",
            "--keep",
            "1",
            "--untagged",
            "--grace",
            "0s",
        ],
        23,
        &[
            "--error-rate",
            "0.08",
            "--reset-rate",
            "0.03",
            "--seed",
            "23",
        ],
    );
}

/// The same on S3 (moto): the staging is another prefix of the bucket.
#[test]
fn s3_sweep_m_and_prune_while_pushing_keep_every_acknowledged_push() {
    run_with_pushes(Backend::S3, "sweep", &["-m", "--grace", "0s"], 18, &[]);
    run_with_pushes(
        Backend::S3,
        "prune",
        &["--keep-last", "1", "--grace", "0s"],
        19,
        &[],
    );
}

/// A GitLab registry on its metadata database: refused, nothing changed.
#[test]
fn gitlab_database_lock_is_refused() {
    let (_dir, root, storage) = fixture_copy();
    let lock = root.join("docker/registry/lockfiles");
    fs::create_dir_all(&lock).unwrap();
    fs::write(lock.join("database-in-use"), "").unwrap();
    let before = tree_fingerprint(&root);
    for args in [
        vec!["sweep", storage.as_str(), "-m", "--grace", "0s", "--apply"],
        vec!["prune", storage.as_str(), "--keep-last", "1", "--apply"],
    ] {
        let o = regsweep_run(&args, &[]);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {}", o.stderr);
        assert!(
            o.stderr.contains("lockfiles/database-in-use") && o.stderr.contains("GitLab"),
            "{}",
            o.stderr
        );
    }
    assert_eq!(tree_fingerprint(&root), before);
}

/// Manifests but no tag file anywhere (Harbor 2.15+ keeps tags in its
/// database): removing untagged manifests is refused, naming why; keeping
/// them (plain `sweep`) is not.
#[test]
fn a_registry_without_tag_files_is_refused_for_untagged_removal() {
    let (_dir, root, storage) = fixture_copy();
    // Remove every tag directory.
    let mut tags = Vec::new();
    let mut dirs = vec![root.join(V2).join("repositories")];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                if e.file_name() == "tags" {
                    tags.push(e.path());
                } else {
                    dirs.push(e.path());
                }
            }
        }
    }
    assert!(!tags.is_empty());
    for t in tags {
        fs::remove_dir_all(&t).unwrap();
        fs::create_dir_all(&t).unwrap();
    }
    let before = tree_fingerprint(&root);
    for args in [
        vec![
            "sweep",
            storage.as_str(),
            "-m",
            "--grace",
            "0s",
            "--apply",
            "--offline",
        ],
        vec![
            "prune",
            storage.as_str(),
            "--keep-last",
            "1",
            "--grace",
            "0s",
            "--apply",
            "--offline",
        ],
    ] {
        let o = regsweep_run(&args, &[]);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains("not one tag file"), "{}", o.stderr);
        assert!(o.stderr.contains("Harbor"), "{}", o.stderr);
    }
    assert_eq!(tree_fingerprint(&root), before);
    let o = regsweep_run(
        &[
            "sweep",
            storage.as_str(),
            "--grace",
            "0s",
            "--apply",
            "--offline",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", o.stderr);
}

/// With `--registry-config` naming a blob descriptor cache, an online apply
/// is refused naming the setting and the safe procedure; read-only (or
/// `--offline`) goes ahead.
#[test]
fn a_blob_descriptor_cache_refuses_online_apply() {
    let (dir, root, _) = fixture_copy();
    let cfg = dir.path().join("config.yml");
    let write = |extra: &str| {
        fs::write(
            &cfg,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n{extra}",
                root.display()
            ),
        )
        .unwrap();
    };
    write("  cache:\n    blobdescriptor: inmemory\n");
    let before = tree_fingerprint(&root);
    let c = path_str(&cfg);
    let o = regsweep_run(
        &[
            "sweep",
            "--registry-config",
            &c,
            "-m",
            "--grace",
            "0s",
            "--apply",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(3), "{}", o.stderr);
    assert!(
        o.stderr.contains("storage.cache.blobdescriptor: inmemory")
            && o.stderr.contains("readonly")
            && o.stderr.contains("restart"),
        "{}",
        o.stderr
    );
    assert_eq!(tree_fingerprint(&root), before);
    write("  cache:\n    blobdescriptor: inmemory\n  maintenance:\n    readonly:\n      enabled: true\n");
    let o = regsweep_run(
        &[
            "sweep",
            "--registry-config",
            &c,
            "-m",
            "--grace",
            "0s",
            "--apply",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", o.stderr);
    assert_ne!(
        tree_fingerprint(&root),
        before,
        "the read-only sweep removed nothing"
    );
}

/// The registry's part of the storage (without the staging beside it).
fn registry_files(e: &Env) -> BTreeMap<String, String> {
    let mut m = e.content_snapshot();
    m.retain(|k, _| k.starts_with("docker/"));
    m
}

/// Files under the staging, by path relative to it.
fn staged_files(e: &Env) -> BTreeMap<String, String> {
    let d = e.root.as_ref().unwrap().join("regsweep-staging");
    if d.exists() {
        content_snapshot(&d)
    } else {
        BTreeMap::new()
    }
}

/// Runs `sweep` with `args` (after the storage) and `--apply --settle 0s`;
/// asserts exit 0.
fn apply(e: &Env, args: &[&str]) -> String {
    let storage = e.storage_arg();
    let mut all = vec!["sweep", storage.as_str(), "--quiet"];
    all.extend_from_slice(args);
    all.extend(["--apply", "--settle", "0s"]);
    let o = e.regsweep_run(&all);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{all:?}: {}\n{}",
        o.stdout,
        o.stderr
    );
    o.stderr
}

/// `--keep-quarantine 1h`: the run's removals stay staged. A manifest it
/// removed is tagged again the way a registry with a warm blob descriptor
/// cache would acknowledge it (revision link and tag written, its blobs
/// and layer links taken for present): the next apply moves back what that
/// tag needs, and it pulls, while the rest stays staged. `restore` from the
/// staging gives every removed file back, byte for byte. Then a run kept
/// for 2 s: after that, the next apply deletes its staging, and the storage
/// ends where that run's plan says.
#[test]
fn kept_staging_heals_a_push_restores_and_expires() {
    let mut e = Env::start(Backend::Fs, 23);
    let mut tags = e.tags();
    let root = e.root.clone().unwrap();
    let before = registry_files(&e);
    let plan = e.plan(&NOW, &e.dir.path().join("plan.json"));
    let acts = plan["actions"]
        .as_array()
        .or_else(|| plan["plan"]["actions"].as_array())
        .unwrap()
        .clone();
    let blobs = acts.iter().filter(|a| a["kind"] == "blob").count();
    let said = apply(&e, &with_now(&["--keep-quarantine", "1h"]));
    assert!(said.contains("--keep-quarantine"), "{said}");
    let staged = staged_files(&e);
    let staged_blobs = staged
        .keys()
        .filter(|k| k.ends_with("/data") && k.contains("blobs/"))
        .count();
    assert_eq!(
        staged_blobs, blobs,
        "staged blobs vs the plan's: {staged:?}"
    );
    e.assert_all_pull(&tags, "after a run kept in the staging");

    // A removed manifest tagged again, as a cached registry acknowledges it.
    let m = acts
        .iter()
        .find(|a| a["kind"] == "revision")
        .expect("the plan removes a manifest");
    let (repo, digest) = (s(&m["repository"]), s(&m["digest"]));
    let hex = digest.trim_start_matches("sha256:");
    let manifests = root
        .join(V2)
        .join("repositories")
        .join(&repo)
        .join("_manifests");
    for (dir, what) in [
        (manifests.join("revisions/sha256").join(hex), "link"),
        (manifests.join("tags/healed/index/sha256").join(hex), "link"),
        (manifests.join("tags/healed/current"), "link"),
    ] {
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(what), &digest).unwrap();
    }
    assert!(
        !e.pull_failures(&[(repo.clone(), "healed".into(), digest.clone())])
            .is_empty(),
        "{repo}:healed pulls before anything was moved back"
    );
    let said = apply(&e, &["--grace", "0s"]);
    assert!(said.contains("moved back"), "{said}");
    tags.push((repo.clone(), "healed".into(), digest.clone()));
    e.assert_all_pull(&tags, "after the next apply moved back what the tag needs");
    assert!(
        staged_files(&e).keys().any(|k| k.ends_with("/data")),
        "the rest of the kept run left the staging early"
    );

    // Everything back.
    let staging = path_str(&root.join("regsweep-staging"));
    let o = e.regsweep_run(&["restore", &e.storage_arg(), "--from", &staging, "--quiet"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "restore: {}\n{}",
        o.stdout,
        o.stderr
    );
    let now = registry_files(&e);
    let lost: Vec<&String> = before
        .keys()
        .filter(|k| now.get(*k) != before.get(*k))
        .collect();
    assert!(lost.is_empty(), "not given back by restore: {lost:?}");

    // Kept for 2 s; after that, the next apply finishes the staging.
    e.let_pushes_age();
    let before = registry_files(&e);
    let plan = e.plan(&NOW, &e.dir.path().join("plan2.json"));
    let keys: BTreeSet<String> = plan_actions(&plan).into_iter().map(|(_, k)| k).collect();
    assert!(keys.iter().any(|k| k.starts_with("blobs/")), "{keys:?}");
    apply(&e, &with_now(&["--keep-quarantine", "2s"]));
    assert!(!staged_files(&e).is_empty(), "nothing was kept");
    std::thread::sleep(Duration::from_millis(2500));
    apply(&e, &["--grace", "0s"]);
    assert!(
        !root.join("regsweep-staging").exists(),
        "the expired staging is still there: {:?}",
        staged_files(&e).keys().collect::<Vec<_>>()
    );
    let after = registry_files(&e);
    let removed = removed_keys(&plan, &after);
    let left: Vec<&String> = keys.difference(&removed).collect();
    assert!(left.is_empty(), "planned but still there: {left:?}");
    assert_removed_only(&before, &after, &keys);
    e.assert_all_pull(&tags, "after the kept staging expired");
}

/// `NOW` followed by `extra`.
fn with_now<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    NOW.iter().copied().chain(extra.iter().copied()).collect()
}

/// HEAD of a blob in a repository, through the registry: its status.
fn head_blob(e: &Env, repo: &str, digest: &str) -> u16 {
    http(
        e.port,
        "HEAD",
        &format!("/v2/{repo}/blobs/{digest}"),
        &[],
        b"",
    )
    .unwrap()
    .0
}

/// The blob descriptor cache on and warm (`storage.cache.blobdescriptor:
/// inmemory`, every layer the plan removes asked for through the
/// registry). An online apply given the registry's config is refused,
/// naming the setting, and changes nothing. The safe procedure it names:
/// read-only (the apply then runs offline), the sweep, a restart. Before
/// the restart the warm cache still answers 200 for a removed layer (why
/// the restart is part of it); after, the HEAD answers 404, the client
/// uploads the layer again, and its new image pulls with every tag.
#[test]
fn warm_blob_descriptor_cache_refused_and_the_safe_procedure_holds() {
    let mut e = Env::start(Backend::Fs, 24);
    let mut tags = e.tags();
    let root = e.root.clone().unwrap();
    let cached = |readonly| RegistryOptions {
        log: QUIET_LOG,
        blob_cache: true,
        readonly,
    };
    e.restart_registry_with(cached(false));
    let plan = e.plan(&NOW, &e.dir.path().join("plan.json"));
    let acts = plan_actions(&plan);
    let gone: BTreeSet<String> = acts
        .iter()
        .filter(|(k, _)| k == "blob")
        .map(|(_, key)| key.clone())
        .collect();
    // (repository, digest, bytes) of the layer links the plan removes
    // together with their blob.
    let actions = plan["actions"]
        .as_array()
        .or_else(|| plan["plan"]["actions"].as_array())
        .unwrap()
        .clone();
    let layers: Vec<(String, String, Vec<u8>)> = actions
        .iter()
        .filter(|a| a["kind"] == "layer_link")
        .map(|a| (s(&a["repository"]), s(&a["digest"])))
        .filter(|(_, d)| gone.contains(&blob_key(d)))
        .map(|(r, d)| {
            let data = root.join(V2).join(blob_key(&d)).join("data");
            let bytes = fs::read(&data).unwrap();
            (r, d, bytes)
        })
        .collect();
    assert!(
        !layers.is_empty(),
        "the plan removes no layer with its blob"
    );
    for (r, d, _) in &layers {
        assert_eq!(head_blob(&e, r, d), 200, "warming {r}@{d}");
    }

    let cfg = path_str(&e.config);
    let mut args = vec!["sweep", "--registry-config", cfg.as_str(), "--quiet"];
    args.extend(NOW);
    args.push("--apply");
    let before = e.content_snapshot();
    let o = e.regsweep_run(&args);
    assert_eq!(o.status.code(), Some(3), "{}", o.stderr);
    assert!(
        o.stderr.contains("storage.cache.blobdescriptor: inmemory"),
        "{}",
        o.stderr
    );
    assert_eq!(
        e.content_snapshot(),
        before,
        "the refused apply changed the storage"
    );

    // Read-only: the registry keeps its warm cache; the apply runs offline.
    e.restart_registry_with(cached(true));
    for (r, d, _) in &layers {
        assert_eq!(head_blob(&e, r, d), 200, "warming {r}@{d} again");
    }
    let cfg = path_str(&e.config);
    args[2] = cfg.as_str();
    let o = e.regsweep_run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", o.stderr);
    let (r, d, bytes) = &layers[0];
    assert!(
        !root.join(V2).join(blob_key(d)).join("data").exists(),
        "{d} was not removed"
    );
    assert_eq!(
        head_blob(&e, r, d),
        200,
        "the warm cache no longer answers for the removed {r}@{d}: the hazard the refusal \
         guards against did not show"
    );

    // Restarted (not read-only): nothing cached, the client uploads again.
    e.restart_registry_with(cached(false));
    assert_eq!(head_blob(&e, r, d), 404, "{r}@{d} after the restart");
    e.push_blob(r, bytes);
    let cfg_body = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{d}"]}}}}"#
    );
    let cd = e.push_blob(r, cfg_body.as_bytes());
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{cd}"}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":{},"digest":"{d}"}}]}}"#,
        cfg_body.len(),
        bytes.len()
    );
    e.put_manifest(
        r,
        "after-restart",
        body.as_bytes(),
        "application/vnd.oci.image.manifest.v1+json",
    );
    tags.push((
        r.clone(),
        "after-restart".into(),
        sha256_hex_of(body.as_bytes()),
    ));
    e.assert_all_pull(&tags, "after the safe procedure");
}

/// Every tag the storage holds: (repository, tag, digest), read from the
/// tags' `current/link`s.
fn stored_tags(root: &std::path::Path) -> Vec<(String, String, String)> {
    let repos = root.join(V2).join("repositories");
    let mut out = Vec::new();
    for (k, _) in content_snapshot(&repos) {
        let Some((repo, rest)) = k.split_once("/_manifests/tags/") else {
            continue;
        };
        let Some(tag) = rest.strip_suffix("/current/link") else {
            continue;
        };
        let digest = fs::read_to_string(repos.join(&k)).unwrap();
        out.push((repo.to_string(), tag.to_string(), digest.trim().to_string()));
    }
    out.sort();
    out
}

/// A storage whose tags live elsewhere (every tag directory taken away, as
/// Harbor 2.15 and later writes it) is refused for `-m`; given its tags
/// with `--tags-from` — as lines, then as Harbor's artifact listings — it
/// plans what the storage with its tag files plans (tag history aside),
/// and the apply keeps every image: with the tag directories written back,
/// every tag pulls and the planned blobs are gone. A file naming a manifest
/// the storage lacks blocks the sweep, naming the file and line.
#[test]
fn tags_from_a_file_stand_in_for_tag_files() {
    let mut e = Env::start(Backend::Fs, 25);
    let root = e.root.clone().unwrap();
    let dir = e.dir.path().to_path_buf();
    let tags = stored_tags(&root);
    assert!(tags.len() >= 3, "{tags:?}");
    let with_tag_files = e.plan(&NOW, &dir.join("p0.json"));
    let kept_aside = dir.join("tags-aside");
    let repos: BTreeSet<&String> = tags.iter().map(|(r, _, _)| r).collect();
    for r in &repos {
        let from = root
            .join(V2)
            .join("repositories")
            .join(r)
            .join("_manifests/tags");
        let to = kept_aside.join(r.replace('/', "%"));
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::rename(&from, &to).unwrap();
    }
    let storage = e.storage_arg();
    let o = e.regsweep_run(&[
        "sweep", &storage, "-m", "--grace", "0s", "--apply", "--settle", "0s",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", o.stderr);

    let lines: String = tags
        .iter()
        .map(|(r, t, d)| format!("{r}:{t}@{d}\n"))
        .collect();
    let txt = dir.join("tags.txt");
    fs::write(&txt, lines).unwrap();
    let mut harbor = serde_json::Map::new();
    for (r, t, d) in &tags {
        let list = harbor
            .entry(r.clone())
            .or_insert_with(|| serde_json::json!([]));
        list.as_array_mut()
            .unwrap()
            .push(serde_json::json!({"digest": d, "tags": [{"name": t}], "push_time": "2026-01-01T00:00:00.000Z"}));
    }
    let json = dir.join("tags.json");
    fs::write(&json, serde_json::Value::Object(harbor).to_string()).unwrap();
    let keys = |p: &serde_json::Value| -> BTreeSet<(String, String)> {
        plan_actions(p)
            .into_iter()
            .filter(|(k, _)| k != "tag_history")
            .collect()
    };
    for f in [&txt, &json] {
        let fa = path_str(f);
        let p = e.plan(&with_now(&["--tags-from", &fa]), &dir.join("p1.json"));
        assert_eq!(
            keys(&p),
            keys(&with_tag_files),
            "planned with --tags-from {fa}"
        );
    }

    let bad = dir.join("bad.txt");
    fs::write(
        &bad,
        format!(
            "{}:{}@{}\n{}:ghost@sha256:{}\n",
            tags[0].0,
            tags[0].1,
            tags[0].2,
            tags[0].0,
            "0".repeat(64)
        ),
    )
    .unwrap();
    let o = e.regsweep_run(&[
        "sweep",
        &storage,
        "-m",
        "--grace",
        "0s",
        "--tags-from",
        &path_str(&bad),
        "--apply",
        "--settle",
        "0s",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", o.stderr);
    assert!(o.stderr.contains("bad.txt: line 2"), "{}", o.stderr);

    apply(&e, &with_now(&["--tags-from", &path_str(&txt)]));
    for r in &repos {
        let to = root
            .join(V2)
            .join("repositories")
            .join(r)
            .join("_manifests/tags");
        fs::rename(kept_aside.join(r.replace('/', "%")), &to).unwrap();
    }
    for (kind, key) in plan_actions(&with_tag_files) {
        if kind == "blob" {
            assert!(
                !root.join(V2).join(&key).exists(),
                "{key} was planned and is still there"
            );
        }
    }
    e.assert_all_pull(&tags, "after a sweep with --tags-from");
}
