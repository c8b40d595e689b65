//! Removals when storage fails. On S3 (moto) behind
//! `scripts/latency_proxy.py`: requests answered 500 or 503 SlowDown and
//! connections reset before and after the server acted, at random (seeded)
//! while pushes run; the deletes of every phase of an online apply (link
//! moves, blob moves, emptying the staging) reset; every DeleteObjects
//! reset. On a filesystem: a quarantine that fills up. After each, no link
//! names a missing object (`verify` exits 0), every tag pulls with skopeo,
//! and a run without faults ends where a fault-free one ends.

mod common;

use common::pushes::*;
use common::sweep::*;
use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// 8 % of requests answered 500 or 503 SlowDown, 3 % reset (half after S3
/// acted) while pushes reuse what the sweep removes: every acknowledged push
/// and every tag pulls, after the faulted run and after a clean rerun.
#[test]
fn s3_sweep_through_errors_and_resets_while_pushing() {
    for seed in [61, 62] {
        let seed_arg = seed.to_string();
        run_with_pushes(
            Backend::S3,
            "sweep",
            &["-m", "--grace", "0s"],
            seed,
            &[
                "--error-rate",
                "0.08",
                "--reset-rate",
                "0.03",
                "--seed",
                &seed_arg,
            ],
        );
    }
}

/// `sweep STORAGE -m --grace 0s --apply --offline --quiet`.
fn offline_sweep(storage: &str) -> [&str; 8] {
    [
        "sweep",
        storage,
        "-m",
        "--grace",
        "0s",
        "--apply",
        "--offline",
        "--quiet",
    ]
}

/// DeleteObjects batches whose connection is reset after S3 acted are sent
/// again: the sweep ends as a fault-free one would.
#[test]
fn s3_reset_delete_batches_are_sent_again() {
    let mut e = Env::start(Backend::S3, 21);
    let (proxy, env) = start_proxy(&e, &["--reset-when", "after", "--reset-deletes", "3"]);
    let storage = e.storage_arg();
    let o = regsweep_run(&offline_sweep(&storage), &env);
    drop(proxy);
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
    let (proxy, env) = start_proxy(&e, &["--reset-when", "after", "--reset-deletes", "100000"]);
    let storage = e.storage_arg();
    let o = regsweep_run(&offline_sweep(&storage), &env);
    drop(proxy);
    assert_eq!(o.status.code(), Some(1), "{}\n{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("failed:"), "{}", o.stderr);
    assert!(o.stderr.contains("not attempted"), "{}", o.stderr);
    let tags = e.tags();
    intact(
        &mut e,
        &tags,
        "after a sweep whose every delete batch was reset",
    );
    assert_ne!(left_to_sweep(&e), "reclaim 0 B");
    let o = e.regsweep_run(&offline_sweep(&storage));
    assert_eq!(o.status.code(), Some(0), "{}", o.stderr);
    assert_eq!(left_to_sweep(&e), "reclaim 0 B");
    e.assert_all_pull(&tags, "after the rerun");
}

/// Keys the proxy's `--reset-deletes-of` tells apart: the three phases of an
/// online apply on S3 (link moves, blob moves, emptying the staging).
const LINKS: &str = "^(?!.*regsweep-staging/).*/repositories/";
const BLOBS: &str = "^(?!.*regsweep-staging/).*/blobs/";
const STAGING: &str = "regsweep-staging/";

/// `sweep -m --grace 0s --upload-age 0s --apply --settle 0s` on `e`'s
/// storage, quiet.
fn sweep_args(e: &Env) -> Vec<String> {
    let mut a = vec!["sweep".to_string(), e.storage_arg(), "--quiet".into()];
    a.extend(NOW.iter().map(|s| s.to_string()));
    a.extend(["--apply", "--settle", "0s"].map(String::from));
    a
}

/// The plan of [`sweep_args`] (a dry run), its keys, and the storage now.
fn planned(e: &Env) -> (Value, BTreeSet<String>, BTreeMap<String, String>) {
    let plan = e.plan(&NOW, &e.dir.path().join("plan.json"));
    let keys = plan_keys(&plan, e);
    let before = e.content_snapshot();
    // Links younger than the online margin would be left alone as pushes.
    e.let_pushes_age();
    (plan, keys, before)
}

/// The storage holds exactly what it held before less what the plan names:
/// where a fault-free sweep ends, with no staging left behind.
fn ends_as_planned(
    e: &Env,
    plan: &Value,
    keys: &BTreeSet<String>,
    before: &BTreeMap<String, String>,
) {
    let after = e.content_snapshot();
    let removed = removed_keys(plan, &after);
    let left: Vec<&String> = keys.difference(&removed).collect();
    assert!(left.is_empty(), "planned but still there: {left:?}");
    assert_removed_only(before, &after, keys);
}

/// `verify` finds no link to a missing object and every tag pulls.
fn intact(e: &mut Env, tags: &[(String, String, String)], when: &str) {
    let v = e.regsweep_run(&["verify", &e.storage_arg()]);
    assert_eq!(
        v.status.code(),
        Some(0),
        "{when}: verify: {}\n{}",
        v.stdout,
        v.stderr
    );
    e.assert_all_pull(tags, when);
}

/// Lines of the proxy's log whose status is `status` (-1: a reset).
fn faults_logged(log: &Path, status: i32) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split(' ').nth(2) == Some(&status.to_string()))
        .map(String::from)
        .collect()
}

/// Two deletes of every phase reset (before or after the server acted):
/// the run retries them, ends with exit 0 exactly where the plan says, and
/// every tag pulls.
fn check_resets_in_every_phase(seed: u64, when: &str) {
    let mut e = Env::start(Backend::S3, seed);
    let tags = e.tags();
    let (plan, keys, before) = planned(&e);
    let log = e.dir.path().join("proxy.log");
    let (proxy, env) = start_proxy(
        &e,
        &[
            "--reset-when",
            when,
            "--reset-deletes",
            "2",
            "--reset-deletes-of",
            LINKS,
            "--reset-deletes-of",
            BLOBS,
            "--reset-deletes-of",
            STAGING,
            "--log",
            &path_str(&log),
        ],
    );
    let args = sweep_args(&e);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = regsweep_run(&args, &env);
    drop(proxy);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", o.stdout, o.stderr);
    let resets = faults_logged(&log, -1);
    let reset = |method: &str, part: &str, staged: bool| {
        resets.iter().any(|l| {
            l.starts_with(method) && l.contains(part) && l.contains("regsweep-staging/") == staged
        })
    };
    for (phase, hit) in [
        ("a link move", reset("DELETE", "/repositories/", false)),
        ("a blob move", reset("DELETE", "/blobs/", false)),
        ("the staging", reset("POST", "first-key=", true)),
    ] {
        assert!(hit, "no delete of {phase} was reset: {resets:?}");
    }
    ends_as_planned(&e, &plan, &keys, &before);
    intact(
        &mut e,
        &tags,
        &format!("after a sweep whose deletes were reset {when} S3 acted"),
    );
}

#[test]
fn s3_resets_in_every_phase_after_the_server_acted() {
    check_resets_in_every_phase(41, "after");
}

#[test]
fn s3_resets_in_every_phase_before_the_server_acted() {
    check_resets_in_every_phase(42, "before");
}

/// The staging cannot be emptied (every DeleteObjects of it reset): the run
/// exits 1 saying so, every tag pulls, and the next run finishes the staging
/// and ends where the plan says.
#[test]
fn s3_staging_left_by_a_failed_run_is_finished_by_the_next() {
    let mut e = Env::start(Backend::S3, 43);
    let tags = e.tags();
    let (plan, keys, before) = planned(&e);
    let (proxy, env) = start_proxy(
        &e,
        &[
            "--reset-when",
            "before",
            "--reset-deletes",
            "100000",
            "--reset-deletes-of",
            STAGING,
        ],
    );
    let args = sweep_args(&e);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = regsweep_run(&args, &env);
    drop(proxy);
    assert_eq!(o.status.code(), Some(1), "{}\n{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("regsweep-staging"), "{}", o.stderr);
    assert!(
        e.bucket_listing()
            .keys()
            .any(|k| k.contains("regsweep-staging/") && k.contains("/regsweep-quarantine/")),
        "the failed run's staging lost its record"
    );
    intact(
        &mut e,
        &tags,
        "after a run whose staging could not be emptied",
    );
    let o = regsweep_run(&args, &e.regsweep_env());
    assert_eq!(o.status.code(), Some(0), "{}\n{}", o.stdout, o.stderr);
    ends_as_planned(&e, &plan, &keys, &before);
    intact(&mut e, &tags, "after the next run");
}

/// A tmpfs of `bytes` mounted on `dir` for the life of the value.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// None where this process may not mount (no CAP_SYS_ADMIN).
    fn mount(dir: &Path, bytes: u64) -> Option<Tmpfs> {
        fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        o.status.success().then(|| Tmpfs(dir.to_path_buf()))
    }

    fn resize(&self, bytes: u64) {
        let o = Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A quarantine on a filesystem that fills up part-way (a small tmpfs, so
/// every move is a copy): the run stops at the first full write and exits
/// 1; no partial copy is left (every quarantined blob hashes to its
/// digest, no temporary file remains); every tag pulls; `restore` exits 0
/// and gives back the storage byte for byte; with room again, a run into
/// the same quarantine ends where the plan says.
#[test]
fn fs_quarantine_that_fills_up_leaves_no_partial_copy() {
    let mut e = Env::start(Backend::Fs, 44);
    let tags = e.tags();
    let (plan, keys, before) = planned(&e);
    // Room for every link the plan moves and about half of its blobs
    // (tmpfs counts whole pages): the blob phase fills it part-way.
    let page = |n: u64| n.div_ceil(4096).max(1);
    let root = e.root.clone().unwrap().join(V2);
    let actions = plan_actions(&plan);
    // The run's record lists every action (about 200 bytes each).
    let (mut link_pages, mut blob_pages, mut blobs) =
        (page(actions.len() as u64 * 200 + 512), 0, 0);
    for (kind, key) in actions {
        if kind == "blob" {
            blob_pages += page(fs::metadata(root.join(&key).join("data")).unwrap().len());
            blobs += 1;
        } else {
            let p = root.join(key.trim_end_matches('/'));
            link_pages += if p.is_dir() {
                content_snapshot(&p)
                    .values()
                    .map(|v| {
                        page(
                            v.split(':')
                                .nth(1)
                                .and_then(|n| n.parse().ok())
                                .unwrap_or(0),
                        )
                    })
                    .sum()
            } else {
                1
            };
        }
    }
    assert!(blobs >= 2, "the plan moves {blobs} blob(s)");
    let pages = link_pages + blob_pages / 2;
    let q = e.dir.path().join("quarantine");
    let Some(tmpfs) = Tmpfs::mount(&q, pages * 4096) else {
        eprintln!("skipped: this process cannot mount a tmpfs (needs CAP_SYS_ADMIN)");
        return;
    };
    let qa = path_str(&q);
    let mut args = sweep_args(&e);
    args.extend(["--quarantine".to_string(), qa.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = e.regsweep_run(&args);
    assert_eq!(o.status.code(), Some(1), "{}\n{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("No space left on device"), "{}", o.stderr);
    let mut moved = 0;
    for rel in content_snapshot(&q).into_keys() {
        assert!(!rel.contains(".tmp-"), "a partial copy was left: {rel}");
        if rel.contains("blobs/") && rel.ends_with("/data") {
            let p = q.join(&rel);
            let hex = p
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let got = sha256_hex_of(&fs::read(&p).unwrap());
            assert_eq!(
                got.trim_start_matches("sha256:"),
                hex,
                "a partial copy: {rel}"
            );
            moved += 1;
        }
    }
    assert!(
        moved > 0,
        "nothing reached the quarantine before it filled up"
    );
    intact(&mut e, &tags, "after a sweep whose quarantine filled up");

    let r = e.regsweep_run(&["restore", &e.storage_arg(), "--from", &qa]);
    assert_eq!(
        r.status.code(),
        Some(0),
        "restore: {}\n{}",
        r.stdout,
        r.stderr
    );
    assert_eq!(
        e.content_snapshot(),
        before,
        "restore did not give the storage back"
    );

    tmpfs.resize((link_pages + blob_pages) * 4 * 4096 + (1 << 20));
    e.let_pushes_age();
    let o = e.regsweep_run(&args);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", o.stdout, o.stderr);
    ends_as_planned(&e, &plan, &keys, &before);
    intact(&mut e, &tags, "after the run with room in the quarantine");
}
