//! `regsweep sweep` and `restore` against the real reference registry
//! (distribution 2.8.x) on its filesystem driver. Every test gets its own
//! registry and storage (they change it), so they run in parallel. Needs
//! `bash scripts/setup.sh` — missing tools fail the tests, never skip them.

mod common;

use common::sweep::*;
use common::*;
use std::fs;
use std::path::Path;

/// (1)+(2) on the same scenario (same seed, two registries): regsweep's
/// `sweep -m --apply` keeps every tag pullable and leaves nothing to reclaim;
/// the reference `garbage-collect -m` breaks a multi-arch tag.
#[test]
fn fs_sweep_m_keeps_every_tag_where_reference_gc_m_breaks_multiarch() {
    let (mut ours, mut theirs) = start_two(Backend::Fs);
    std::thread::scope(|sc| {
        let t = sc.spawn(|| check_reference_gc_m_breaks_multiarch(&mut theirs));
        check_sweep_keeps_every_tag(&mut ours);
        let broken = t.join().unwrap();
        eprintln!("reference garbage-collect -m broke: {broken:#?}");
    });
}

/// (3) SIGKILL part-way, then run again with the same journal.
#[test]
fn fs_killed_sweep_run_again_finishes_and_journals_each_removal_once() {
    let mut e = Env::start(Backend::Fs, SEED);
    check_killed_sweep_then_rerun(&mut e);
}

/// The issue: a sweep removes "empty directories left behind on a
/// filesystem". An upload's `hashstates/sha256/` must go with it.
#[test]
fn fs_sweep_leaves_no_empty_directories_behind() {
    let mut e = Env::start(Backend::Fs, SEED);
    let left = check_sweep_keeps_every_tag(&mut e);
    assert!(
        left.is_empty(),
        "`sweep --apply` left empty directories behind (uploads' hashstates/sha256):\n  {left:#?}"
    );
}

/// The same after a killed sweep is run again: the directories emptied by
/// the killed run (and by the action it was in the middle of) go too.
#[test]
fn fs_killed_sweep_run_again_leaves_no_empty_directories_behind() {
    let mut e = Env::start(Backend::Fs, SEED);
    let left = check_killed_sweep_then_rerun(&mut e);
    assert!(
        left.is_empty(),
        "after a killed sweep was run again, the directories emptied by the killed run are left:\n  {left:#?}"
    );
}

/// (4) The grace period, and a saved plan overtaken by a push.
#[test]
fn fs_grace_period_and_saved_plan_recheck_keep_new_data() {
    let mut e = Env::start(Backend::Fs, SEED);
    check_grace_and_late_push(&mut e);
}

/// (5) Quarantine into a directory outside the root, then restore.
#[test]
fn fs_quarantine_then_restore_is_byte_identical() {
    let mut e = Env::start(Backend::Fs, SEED);
    let q = e.dir.path().join("quarantine");
    let qs = q.to_str().unwrap().to_string();
    let dirs_before = dirs_of(e.root.as_ref().unwrap());
    let empty_before = empty_dirs(e.root.as_ref().unwrap());
    check_quarantine_restore(&mut e, &qs, &|_| {
        if q.exists() {
            content_snapshot(&q)
        } else {
            Default::default()
        }
    });
    let dirs_after = dirs_of(e.root.as_ref().unwrap());
    // Directories: every one that held something is back; only directories
    // that were already empty (left by the registry's own deletes, which a
    // sweep may tidy away) can be missing.
    let lost: Vec<_> = dirs_before
        .difference(&dirs_after)
        .filter(|d| {
            !empty_before
                .iter()
                .any(|x| x == *d || x.starts_with(&format!("{d}/")))
        })
        .collect();
    let added: Vec<_> = dirs_after.difference(&dirs_before).collect();
    assert!(
        lost.is_empty() && added.is_empty(),
        "directories after restore: lost {lost:?}, added {added:?}"
    );
}

/// (6) Symlinks inside the storage pointing outside it: `--apply` refuses
/// (exit 3) and touches nothing; with `--ignore-problems` it sweeps, but
/// nothing outside the root changes and the symlinks stay.
#[test]
fn fs_symlinks_out_of_the_root_block_the_sweep_and_are_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    copy_tree(&repo_root().join("fixtures/registry"), &root);
    let v2 = root.join(V2);
    let outside = tmp.path().join("outside");
    // A repository directory that is a symlink to a copy of a real one.
    copy_tree(&v2.join("repositories/a"), &outside.join("repo"));
    std::os::unix::fs::symlink(outside.join("repo"), v2.join("repositories/evil")).unwrap();
    // A blob shard that is a symlink to a directory holding copies of real
    // garbage blobs (renamed into the shard).
    let recorded: Vec<String> =
        fs::read_to_string(repo_root().join("fixtures/registry.gc-dry-run.txt"))
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("blob eligible for deletion: "))
            .map(|d| d.trim().to_string())
            .collect();
    assert!(!recorded.is_empty());
    let shards: std::collections::BTreeSet<String> = fs::read_dir(v2.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    let shard = (0..=255u8)
        .map(|b| format!("{b:02x}"))
        .find(|s| !shards.contains(s))
        .unwrap();
    let src = v2.join(blob_key(&recorded[0])).join("data");
    let fake = format!("{shard}{}", &recorded[0]["sha256:".len() + 2..]);
    fs::create_dir_all(outside.join("shard").join(&fake)).unwrap();
    fs::copy(&src, outside.join("shard").join(&fake).join("data")).unwrap();
    std::os::unix::fs::symlink(outside.join("shard"), v2.join("blobs/sha256").join(&shard))
        .unwrap();

    let storage = root.to_str().unwrap().to_string();
    let journal = tmp.path().join("journal.jsonl");
    let jarg = journal.to_str().unwrap().to_string();
    let snap = |p: &Path| (content_snapshot(p), dirs_of(p));
    let out_before = tree_fingerprint(&outside);
    let root_before = snap(&root);

    let mut args = vec!["sweep", "--quiet", &storage];
    args.extend_from_slice(&NOW);
    args.extend_from_slice(&["--apply", "--settle", "0s", "--journal", &jarg]);
    let o = regsweep_run(&args, &[]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "sweep --apply with symlinks out of the root must refuse (exit 3)\nstdout: {}\nstderr: {}",
        o.stdout,
        o.stderr
    );
    assert!(
        root_before == snap(&root),
        "a refused sweep changed the storage"
    );
    let d = diff_fingerprints(&out_before, &tree_fingerprint(&outside));
    assert!(
        d.is_empty(),
        "a refused sweep changed files outside the root: {d:?}"
    );
    let (lines, _) = read_journal(&journal);
    assert!(
        lines.iter().all(|l| l["state"] != "done"),
        "a refused sweep journaled removals: {lines:?}"
    );

    args.push("--ignore-problems");
    let o = regsweep_run(&args, &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "sweep --apply --ignore-problems\nstdout: {}\nstderr: {}",
        o.stdout,
        o.stderr
    );
    let d = diff_fingerprints(&out_before, &tree_fingerprint(&outside));
    assert!(
        d.is_empty(),
        "the sweep changed files outside the root: {d:?}"
    );
    for (link, target) in [
        (v2.join("repositories/evil"), outside.join("repo")),
        (v2.join("blobs/sha256").join(&shard), outside.join("shard")),
    ] {
        assert_eq!(
            fs::read_link(&link).ok(),
            Some(target),
            "symlink {} was removed or changed",
            link.display()
        );
    }
    // It did sweep: the blobs the reference itself calls garbage are gone.
    for d in &recorded {
        assert!(
            !v2.join(blob_key(d)).join("data").exists(),
            "{d} was not swept with --ignore-problems"
        );
    }
    let (lines, _) = read_journal(&journal);
    assert!(!lines.is_empty());
    for l in &lines {
        let k = s(&l["key"]);
        assert!(
            !k.starts_with("repositories/evil/")
                && !k.starts_with(&format!("blobs/sha256/{shard}/")),
            "the sweep acted on a path behind a symlink: {l}"
        );
    }
}
