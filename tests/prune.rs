//! `regsweep prune` and `regsweep delete` against the real reference
//! registry (filesystem and S3 over moto), checked with skopeo and the
//! registry's own API: what the preview says goes is gone (404), everything
//! else still pulls whole, `report --delete-untagged` finds nothing left,
//! and the bytes that left storage are exactly the preview's
//! `reclaimable_bytes`. Bad input: exit 2 with the storage untouched.

mod common;

use common::prune::*;
use common::sweep::*;
use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;

/// `--keep-last 2 --untagged`: the three oldest versions go with the
/// signature and the referrer of v1; the two newest stay; run again,
/// nothing more goes.
fn check_keep_last(e: &mut Env) {
    let v = push_versions(e, REPO, 5, "v");
    let args = ["--keep-last", "2", "--untagged", "--grace", "0s"];
    let p = preview_then_apply(e, "prune", &args);
    let removed = set_of(&p, "tags_removed", &["repository", "tag", "digest"]);
    for (i, x) in v.versions.iter().enumerate() {
        let row = vec![REPO.to_string(), x.tag.clone(), x.digest.clone()];
        assert_eq!(removed.contains(&row), i < 3, "{}: {removed:?}", x.tag);
    }
    assert!(removed.contains(&vec![
        REPO.to_string(),
        v.signature.tag.clone(),
        v.signature.digest.clone()
    ]));
    let manifests = set_of(&p, "manifests_removed", &["repository", "digest"]);
    for d in [&v.referrer, &v.signature.digest, &v.versions[0].digest] {
        assert!(
            manifests.contains(&vec![REPO.to_string(), d.clone()]),
            "{d} not removed: {manifests:?}"
        );
    }
    let kept: BTreeMap<String, String> = p["kept"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["repository"] == REPO)
        .map(|k| (s(&k["tag"]), s(&k["reason"])))
        .collect();
    for x in &v.versions[3..] {
        assert!(kept[&x.tag].contains("keep_last"), "{}: {kept:?}", x.tag);
    }
    assert_nothing_left(e, "after prune --keep-last 2 --untagged --apply");
    // The same policy again removes nothing.
    let before = e.content_snapshot();
    let again = json_of(&cmd(
        e,
        "prune",
        &[
            &args[..],
            &[
                "--apply",
                "--settle",
                "0s",
                "--format",
                "json",
                "--journal",
                e.dir.path().join("again.jsonl").to_str().unwrap(),
            ],
        ]
        .concat(),
        0,
    ));
    for k in [
        "tags_removed",
        "manifests_removed",
        "blobs_removed",
        "reclaimable_bytes",
    ] {
        assert_eq!(
            again["summary"][k], 0,
            "second run: {k}: {}",
            again["summary"]
        );
    }
    assert_eq!(
        e.content_snapshot(),
        before,
        "a second run of the same policy changed the storage"
    );
}

/// A policy file with two rules: `app/.*` keeps its 2 newest and `v1`;
/// every repository loses its untagged manifests.
fn check_policy_file(e: &mut Env) {
    let v = push_versions(e, REPO, 5, "r");
    let file = e.dir.path().join("policy.yaml");
    fs::write(
        &file,
        "version: 1\nrules:\n  - repo: \"app/.*\"\n    keep_last: 2\n    keep_tag: \"r1\"\n  - repo: \".*\"\n    untagged: true\n",
    )
    .unwrap();
    let f = file.to_str().unwrap().to_string();
    let p = preview_then_apply(e, "prune", &["--policy", &f, "--grace", "0s"]);
    let removed: BTreeSet<String> = p["tags_removed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["repository"] == REPO)
        .map(|t| s(&t["tag"]))
        .collect();
    assert_eq!(
        removed,
        BTreeSet::from(["r2".to_string(), "r3".to_string()])
    );
    // r1 stays, so its signature and referrer stay too.
    assert_eq!(manifest_status(e, REPO, &v.signature.tag), 200);
    assert_eq!(manifest_status(e, REPO, &v.referrer), 200);
    assert_nothing_left(e, "after prune --policy (two rules) --apply");
}

#[test]
fn fs_prune_keep_last_removes_exactly_its_preview() {
    let mut e = Env::start(Backend::Fs, SEED);
    check_keep_last(&mut e);
}

#[test]
fn fs_prune_with_a_two_rule_policy_file() {
    let mut e = Env::start(Backend::Fs, SEED);
    check_policy_file(&mut e);
}

#[test]
fn s3_prune_policy_file_then_keep_last() {
    let mut e = Env::start(Backend::S3, SEED);
    check_policy_file(&mut e);
    // The versions of the first check are still there, older: keep-last
    // over the whole repository removes them too.
    check_keep_last(&mut e);
}

/// `delete` of an index removes its children that nothing else uses and
/// keeps the one another tag names; deleting a signed image takes its
/// signature tag and referrer along; a child a kept index needs is refused.
#[test]
fn fs_delete_index_keeps_a_shared_child_and_signatures_follow() {
    let mut e = Env::start(Backend::Fs, SEED);
    let m = e.scenario["multiarch"][0].clone();
    let (repo, tag) = (s(&m["repository"]), s(&m["tag"]));
    let children: Vec<String> = m["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| s(&c["digest"]))
        .collect();
    // Tag the first child on its own.
    let (ct, body) = e.get_manifest(&repo, &children[0]);
    e.put_manifest(&repo, "only-amd64", &body, &ct);

    // The second child alone is refused: the index needs it.
    let o = cmd(
        &e,
        "delete",
        &[&format!("{repo}@{}", children[1]), "--grace", "0s"],
        2,
    );
    assert!(o.stderr.contains("references it"), "{}", o.stderr);

    let sig = e.scenario["signatures"][0].clone();
    let signed = s(&sig["signs"]);
    let api = s(&sig["repository"]);
    let referrer = e.scenario["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| s(&r["subject"]) == signed)
        .map(|r| s(&r["digest"]))
        .expect("a referrer of the signed image");
    let p = preview_then_apply(
        &mut e,
        "delete",
        &[
            &format!("{repo}:{tag}"),
            &format!("{api}@{signed}"),
            "--grace",
            "0s",
        ],
    );
    let manifests = set_of(&p, "manifests_removed", &["repository", "digest"]);
    let has = |r: &str, d: &str| manifests.contains(&vec![r.to_string(), d.to_string()]);
    assert!(has(&repo, &s(&m["digest"])), "the index: {manifests:?}");
    assert!(
        has(&repo, &children[1]),
        "the unshared child: {manifests:?}"
    );
    assert!(
        !has(&repo, &children[0]),
        "the child tagged only-amd64 went: {manifests:?}"
    );
    assert!(
        has(&api, &s(&sig["digest"])),
        "the signature: {manifests:?}"
    );
    assert!(has(&api, &referrer), "the referrer: {manifests:?}");
    let tags = set_of(&p, "tags_removed", &["repository", "tag"]);
    assert!(
        tags.contains(&vec![api.clone(), s(&sig["tag"])]),
        "{tags:?}"
    );
    assert_eq!(manifest_status(&e, &repo, "only-amd64"), 200);
}

/// A prune SIGKILLed after its first removals, run again with the same
/// journal, ends where an uninterrupted run would: the same tags left, all
/// pulling, nothing left to collect.
#[test]
fn fs_killed_prune_run_again_ends_consistent() {
    let mut e = Env::start(Backend::Fs, SEED);
    let v = push_versions(&e, REPO, 4, "v");
    let args = ["--keep-last", "1", "--untagged", "--grace", "0s"];
    let preview = json_of(&cmd(
        &e,
        "prune",
        &[&args[..], &["--format", "json"]].concat(),
        0,
    ));
    let removed = tags_removed(&preview);
    assert!(removed.len() >= 3, "{removed:?}");
    let tags_before = api_tags(&e);
    let journal = e.dir.path().join("killed.jsonl");
    let j = journal.to_str().unwrap().to_string();
    let mut child = e.spawn_regsweep(
        "prune",
        &[
            &args[..],
            &["--apply", "--settle", "0s", "--batch", "1", "--journal", &j],
        ]
        .concat(),
        &[("REGSWEEP_PAUSE_AFTER_BATCHES", "2")],
    );
    wait_done_lines(
        &journal,
        2,
        &mut child,
        &e.dir.path().join("paused-sweep.log"),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // Mid-way: two tags are gone, everything else still pulls.
    let mid = api_tags(&e);
    assert_eq!(tags_before.len() - mid.len(), 2, "{mid:?}");
    cmd(
        &e,
        "prune",
        &[&args[..], &["--apply", "--settle", "0s", "--journal", &j]].concat(),
        0,
    );
    let kept: Vec<(String, String, String)> = tags_before
        .iter()
        .filter(|(k, _)| !removed.contains(*k))
        .map(|((r, t), d)| (r.clone(), t.clone(), d.clone()))
        .collect();
    e.restart_registry();
    let now: Vec<(String, String, String)> = api_tags(&e)
        .into_iter()
        .map(|((r, t), d)| (r, t, d))
        .collect();
    assert_eq!(now, kept);
    e.assert_all_pull(&kept, "after a killed prune was run again");
    assert_nothing_left(&e, "after a killed prune was run again");
    assert_eq!(manifest_status(&e, REPO, &v.versions[3].tag), 200);
    let (lines, _) = read_journal(&journal);
    let done: Vec<&Value> = lines.iter().filter(|l| l["state"] == "done").collect();
    let keys: BTreeSet<String> = done.iter().map(|l| s(&l["key"])).collect();
    assert_eq!(keys.len(), done.len(), "a removal journaled done twice");
}

/// A copy of `fixtures/registry` in a temporary directory: (the directory,
/// the root, the root as a STORAGE argument).
/// Bad input names what is wrong, exits 2, and leaves the storage as it was.
#[test]
fn bad_input_is_refused_with_exit_2_and_nothing_touched() {
    let (dir, root, storage) = fixture_copy();
    let before = tree_fingerprint(&root);
    let policy = dir.path().join("bad.yaml");
    fs::write(&policy, "rules:\n  - repo: \".*\"\n    keep_lats: 3\n").unwrap();
    let pf = policy.to_str().unwrap().to_string();
    let zero = format!("a@sha256:{}", "0".repeat(64));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "prune", &storage, "--policy", &pf, "--apply", "--settle", "0s",
            ],
            "keep_lats",
        ),
        (
            vec![
                "prune",
                &storage,
                "--tag",
                "pr-([",
                "--older-than",
                "1d",
                "--apply",
                "--settle",
                "0s",
            ],
            "pr-([",
        ),
        (
            vec![
                "prune",
                &storage,
                "--keep-last",
                "0",
                "--apply",
                "--settle",
                "0s",
            ],
            "--keep-last",
        ),
        (
            vec![
                "prune",
                &storage,
                "--not-pulled-for",
                "30d",
                "--apply",
                "--settle",
                "0s",
            ],
            "access",
        ),
        (
            vec!["prune", &storage, "--apply", "--settle", "0s"],
            "policy",
        ),
        (
            vec![
                "delete",
                &storage,
                "nope/nope:1",
                "--apply",
                "--settle",
                "0s",
            ],
            "nope/nope",
        ),
        (
            vec!["delete", &storage, "a:v999", "--apply", "--settle", "0s"],
            "a:v999",
        ),
        (
            vec!["delete", &storage, &zero, "--apply", "--settle", "0s"],
            "does not exist",
        ),
        (
            vec!["delete", &storage, "Bad Name", "--apply", "--settle", "0s"],
            "Bad Name",
        ),
    ];
    let journal = dir.path().join("journal.jsonl");
    let j = journal.to_str().unwrap();
    for (mut args, needle) in cases {
        args.extend_from_slice(&["--journal", j]);
        let o = regsweep_run(&args, &[]);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?}: {} {}",
            o.stdout,
            o.stderr
        );
        assert!(
            o.stderr.contains(needle),
            "{args:?}: stderr does not name {needle:?}: {}",
            o.stderr
        );
        assert_eq!(
            tree_fingerprint(&root),
            before,
            "{args:?} touched the storage"
        );
    }
}

/// `delete --apply --quarantine DEST` moves the tags, manifests and blobs it
/// removes; `restore` puts back a byte-identical tree.
#[test]
fn delete_into_quarantine_then_restore_is_byte_identical() {
    let (dir, root, storage) = fixture_copy();
    let before = tree_fingerprint(&root);
    let q = dir.path().join("quarantine");
    let j = dir.path().join("journal.jsonl");
    let o = regsweep_run(
        &[
            "delete",
            &storage,
            "multi/oci:latest",
            "team-a/svc/api:1.0",
            "--grace",
            "0s",
            "--apply",
            "--settle",
            "0s",
            "--quiet",
            "--format",
            "json",
            "--quarantine",
            q.to_str().unwrap(),
            "--journal",
            j.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", o.stderr);
    let plan: Value = serde_json::from_str(&o.stdout).unwrap();
    assert!(
        plan["summary"]["tags_removed"].as_u64().unwrap() >= 3,
        "{}",
        plan["summary"]
    );
    let mid = tree_fingerprint(&root);
    assert!(
        !mid.keys()
            .any(|k| k.contains("multi/oci/_manifests/tags/latest")),
        "the tag is still there"
    );
    let o = regsweep_run(
        &[
            "restore",
            &storage,
            "--from",
            q.to_str().unwrap(),
            "--quiet",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", o.stderr);
    assert_eq!(
        tree_fingerprint(&root),
        before,
        "restore did not give back the tree"
    );
}

/// `delete --untag-only repo:tag` removes the tag alone: the manifest stays
/// (untagged, so `report -m` now counts it), nothing else goes.
#[test]
fn untag_only_keeps_the_manifest() {
    let (dir, root, storage) = fixture_copy();
    let before = tree_fingerprint(&root);
    let j = dir.path().join("journal.jsonl");
    let o = regsweep_run(
        &[
            "delete",
            &storage,
            "a:v1",
            "--untag-only",
            "--grace",
            "0s",
            "--apply",
            "--settle",
            "0s",
            "--quiet",
            "--format",
            "json",
            "--journal",
            j.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", o.stderr);
    let plan: Value = serde_json::from_str(&o.stdout).unwrap();
    let kinds: BTreeSet<String> = plan["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| s(&x["kind"]))
        .collect();
    assert!(
        plan["manifests_removed"].as_array().unwrap().is_empty(),
        "{plan}"
    );
    assert!(kinds.contains("tag"), "{kinds:?}");
    assert!(!kinds.contains("revision"), "{kinds:?}");
    let after = tree_fingerprint(&root);
    let gone: Vec<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    assert!(
        gone.iter()
            .any(|k| k.contains("repositories/a/_manifests/tags/v1/current/link")),
        "{gone:?}"
    );
    assert!(
        gone.iter().all(|k| k.contains("/_manifests/tags/v1")
            || k.contains("blobs/")
            || k.contains("/_layers/")),
        "untag-only removed more than the tag and pre-existing garbage: {gone:?}"
    );
    let digest = s(&plan["tags_removed"][0]["digest"]);
    let hex = digest.trim_start_matches("sha256:");
    assert!(after.keys().any(|k| k.contains(&format!(
        "repositories/a/_manifests/revisions/sha256/{hex}/link"
    ))));
    assert!(after
        .keys()
        .any(|k| k.contains(&format!("blobs/sha256/{}/{hex}/data", &hex[..2]))));
}
