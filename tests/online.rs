//! Removals while the reference registry keeps serving pushes (filesystem
//! driver, no blob descriptor cache). While `sweep -m`, `sweep`, `prune`
//! and `delete` run with `--apply`, `scripts/push_during.py` pushes images
//! that mount, re-upload and HEAD-skip the blobs the plan removes, moves new
//! tags onto the manifests it removes, and pushes new images, at seeded
//! random moments. Afterwards every acknowledged push and every tag that
//! should stay pulls with skopeo, and the garbage no push reused is gone.
//!
//! And the registries whose storage is not the truth are refused.

mod common;

use common::sweep::*;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

/// One run: a fresh registry with the scenario of `seed`, the removal
/// `args` (after the storage) applied while pushes run.
fn run_with_pushes(backend: Backend, command: &str, args: &[&str], seed: u64) -> (usize, usize) {
    let mut e = Env::start(backend, seed);
    let storage = e.storage_arg();
    let dir = e.dir.path().to_path_buf();
    let plan = dir.join("plan.json");
    let stop = dir.join("stop");
    let pushes = dir.join("pushes.json");

    // The preview the pusher reuses from: the same request, planned once.
    let mut preview = vec![command, storage.as_str(), "--quiet"];
    preview.extend_from_slice(args);
    let plan_arg = path_str(&plan);
    preview.extend(["--plan", plan_arg.as_str()]);
    let o = e.regsweep_run(&preview);
    assert_eq!(o.status.code(), Some(0), "{preview:?}: {}", o.stderr);
    let planned: Value = serde_json::from_slice(&fs::read(&plan).unwrap()).unwrap();
    let actions = planned
        .get("actions")
        .or_else(|| planned["plan"].get("actions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap();
    let garbage: BTreeSet<String> = actions
        .iter()
        .filter(|a| a["kind"] == "blob")
        .map(|a| s(&a["digest"]))
        .collect();
    assert!(
        !garbage.is_empty(),
        "the plan of {command} {args:?} removes no blob"
    );
    let mut pusher = Command::new("python3");
    pusher
        .arg(script("push_during.py"))
        .args(["--registry", &format!("127.0.0.1:{}", e.port)]);
    if let Some(root) = &e.root {
        pusher.args(["--root", &path_str(root)]);
    }
    let pusher = pusher
        .args(["--plan", &plan_arg])
        .args(["--seed", &seed.to_string()])
        .args(["--until", &path_str(&stop)])
        .args(["--out", &path_str(&pushes)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Pushes start before the removal's scan, run through it, and go on
    // a little after it ends.
    std::thread::sleep(Duration::from_millis(300 + seed % 5 * 100));
    let journal = dir.join("journal.jsonl");
    let mut apply = vec![command, storage.as_str(), "--quiet"];
    apply.extend_from_slice(args);
    let journal_arg = path_str(&journal);
    apply.extend([
        "--apply",
        "--settle",
        "2s",
        "--journal",
        journal_arg.as_str(),
    ]);
    let o = e.regsweep_run(&apply);
    std::thread::sleep(Duration::from_millis(500));
    fs::write(&stop, "").unwrap();
    let out = pusher.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "push_during.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        matches!(o.status.code(), Some(0)),
        "{apply:?} -> {}\nstdout: {}\nstderr: {}",
        o.status,
        o.stdout,
        o.stderr
    );
    let log: Value = serde_json::from_slice(&fs::read(&pushes).unwrap()).unwrap();
    let acked: Vec<(String, String, String)> = log["acked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (s(&p["repository"]), s(&p["tag"]), s(&p["kind"])))
        .collect();
    let reused: BTreeSet<String> = log["reused"].as_array().unwrap().iter().map(s).collect();
    assert!(!acked.is_empty(), "no push was acknowledged: {log}");

    // Every tag and every acknowledged push pulls, but for the tags the run
    // removed (its journal's `done` tag removals): a retention policy
    // re-derived on the storage as the run found it may remove a tag that
    // a push displaced, and only those.
    let removed_tags: BTreeSet<(String, String)> = fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["kind"] == "tag" && l["state"] == "done")
        .filter_map(|l| {
            let key = s(&l["key"]);
            let (repo, tag) = key
                .strip_prefix("repositories/")?
                .trim_end_matches('/')
                .split_once("/_manifests/tags/")?;
            Some((repo.to_string(), tag.to_string()))
        })
        .collect();
    let mut stay: Vec<(String, String, String)> = e.tags();
    stay.extend(acked.iter().cloned());
    stay.retain(|(r, t, _)| !removed_tags.contains(&(r.clone(), t.clone())));
    if command == "sweep" {
        assert!(
            removed_tags.is_empty(),
            "sweep removed tags: {removed_tags:?}"
        );
    }
    e.restart_registry();
    let failures = e.pull_failures(&stay);
    let kinds = |k: &str| acked.iter().filter(|p| p.2 == k).count();
    eprintln!(
        "{command} {args:?} seed {seed}: {} pushes acknowledged (mount {}, reupload {}, \
         headskip {}, retag {}, new {}), {} failed; {} tags pulled",
        acked.len(),
        kinds("mount"),
        kinds("reupload"),
        kinds("headskip"),
        kinds("retag"),
        kinds("new"),
        log["failed"].as_array().unwrap().len(),
        stay.len()
    );
    assert!(
        failures.is_empty(),
        "{command} {args:?} seed {seed}: {} of {} tags no longer pull:\n  {}\nregsweep stderr:\n{}",
        failures.len(),
        stay.len(),
        failures.join("\n  "),
        o.stderr
    );
    // The garbage that no push reused is gone, and nothing is left staged.
    let stored: BTreeSet<String> = match &e.root {
        Some(root) => tree_fingerprint(root).into_keys().collect(),
        None => e.bucket_listing().into_keys().collect(),
    };
    let still: Vec<&String> = garbage
        .iter()
        .filter(|d| !reused.contains(*d))
        .filter(|d| {
            let hex = d.trim_start_matches("sha256:");
            let data = format!("blobs/sha256/{}/{hex}/data", &hex[..2]);
            stored.iter().any(|k| k.ends_with(&data))
        })
        .collect();
    assert!(
        still.is_empty(),
        "{command} {args:?} seed {seed}: garbage no push reused is still there: {still:?}\nstderr:\n{}",
        o.stderr
    );
    let staged: Vec<&String> = stored
        .iter()
        .filter(|k| k.contains("regsweep-staging"))
        .collect();
    assert!(
        staged.is_empty(),
        "the run's staging was left behind: {staged:?}"
    );
    (acked.len(), failures.len())
}

#[test]
fn sweep_m_while_pushing_keeps_every_acknowledged_push() {
    for seed in [11, 12, 13] {
        run_with_pushes(Backend::Fs, "sweep", &["-m", "--grace", "0s"], seed);
    }
}

#[test]
fn sweep_and_delete_while_pushing_keep_every_acknowledged_push() {
    run_with_pushes(Backend::Fs, "sweep", &["--grace", "0s"], 14);
    run_with_pushes(Backend::Fs, "delete", &["a:v1", "--grace", "0s"], 15);
}

#[test]
fn prune_while_pushing_keeps_every_acknowledged_push() {
    for seed in [16, 17] {
        run_with_pushes(
            Backend::Fs,
            "prune",
            &["--keep-last", "1", "--grace", "0s"],
            seed,
        );
    }
}

/// The same on S3 (moto): the staging is another prefix of the bucket.
#[test]
fn s3_sweep_m_and_prune_while_pushing_keep_every_acknowledged_push() {
    run_with_pushes(Backend::S3, "sweep", &["-m", "--grace", "0s"], 18);
    run_with_pushes(
        Backend::S3,
        "prune",
        &["--keep-last", "1", "--grace", "0s"],
        19,
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

/// `scripts/latency_proxy.py` in front of the environment's S3 server,
/// resetting the first `resets` DeleteObjects requests after the server
/// acted; the environment for regsweep to go through it.
fn resetting_proxy(e: &Env, resets: usize) -> (std::process::Child, Vec<(String, String)>) {
    let mut proxy = Command::new("python3")
        .arg(script("latency_proxy.py"))
        .args([
            "--upstream",
            &format!("http://127.0.0.1:{}", e.s3_port.unwrap()),
        ])
        .args(["--latency-ms", "0", "--reset-when", "after"])
        .args(["--reset-deletes", &resets.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start latency_proxy.py");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(proxy.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port: u16 = line.trim().parse().expect("the proxy prints its port");
    let env = e
        .regsweep_env()
        .into_iter()
        .map(|(k, v)| {
            if k == "AWS_ENDPOINT_URL" {
                (k, format!("http://127.0.0.1:{port}"))
            } else {
                (k, v)
            }
        })
        .collect();
    (proxy, env)
}

/// What a dry run of `sweep -m --grace 0s` would still remove.
fn left_to_sweep(e: &Env) -> String {
    let o = e.regsweep_run(&["sweep", &e.storage_arg(), "-m", "--grace", "0s"]);
    assert_eq!(o.status.code(), Some(0), "{}", o.stderr);
    o.stdout
        .lines()
        .find(|l| l.trim_start().starts_with("reclaim"))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// DeleteObjects batches whose connection is reset after S3 acted are sent
/// again: the sweep ends as a fault-free one would.
#[test]
fn s3_reset_delete_batches_are_sent_again() {
    let mut e = Env::start(Backend::S3, 21);
    let (mut proxy, env) = resetting_proxy(&e, 3);
    let storage = e.storage_arg();
    let o = regsweep_run(
        &[
            "sweep",
            &storage,
            "-m",
            "--grace",
            "0s",
            "--apply",
            "--offline",
            "--quiet",
        ],
        &env,
    );
    let _ = proxy.kill();
    assert_eq!(o.status.code(), Some(0), "{}\n{}", o.stdout, o.stderr);
    assert_eq!(left_to_sweep(&e), "reclaim 0 B");
    let tags = e.tags();
    e.assert_all_pull(&tags, "after a sweep whose delete batches were reset");
}

/// Every DeleteObjects request reset: the first phase's removals fail, no
/// later phase runs (no blob goes while a link naming it may remain), the
/// run exits 1 naming what failed; every tag still pulls, `verify` finds
/// nothing missing, and a rerun without faults finishes the job.
#[test]
fn s3_failed_delete_batches_keep_what_they_protect_and_a_rerun_finishes() {
    let mut e = Env::start(Backend::S3, 22);
    let (mut proxy, env) = resetting_proxy(&e, 100_000);
    let storage = e.storage_arg();
    let o = regsweep_run(
        &[
            "sweep",
            &storage,
            "-m",
            "--grace",
            "0s",
            "--apply",
            "--offline",
            "--quiet",
        ],
        &env,
    );
    let _ = proxy.kill();
    assert_eq!(o.status.code(), Some(1), "{}\n{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("failed:"), "{}", o.stderr);
    assert!(o.stderr.contains("not attempted"), "{}", o.stderr);
    let v = e.regsweep_run(&["verify", &storage]);
    assert_eq!(
        v.status.code(),
        Some(0),
        "verify: {}\n{}",
        v.stdout,
        v.stderr
    );
    let tags = e.tags();
    e.assert_all_pull(&tags, "after a sweep whose every delete batch was reset");
    assert_ne!(left_to_sweep(&e), "reclaim 0 B");
    let o = e.regsweep_run(&[
        "sweep",
        &storage,
        "-m",
        "--grace",
        "0s",
        "--apply",
        "--offline",
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", o.stderr);
    assert_eq!(left_to_sweep(&e), "reclaim 0 B");
    e.assert_all_pull(&tags, "after the rerun");
}
