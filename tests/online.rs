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

use common::pushes::run_with_pushes;
use common::sweep::*;
use common::*;
use std::fs;

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
