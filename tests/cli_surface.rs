//! One vocabulary across commands, on the shipped fixture tree: the same
//! `--repo`/`--tag` selection picks the same repositories in `images` and
//! `prune`; every command that prints a result takes `--format`; a closed
//! standard output ends a run quietly with exit status 0.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/registry")
}

fn run(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_regsweep"))
        .args(args)
        .output()
        .unwrap();
    o
}

fn json_of(args: &[&str]) -> Value {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Repositories of the `images` rows that `sel` shows.
fn images_repos(sel: &[&str]) -> BTreeSet<String> {
    let root = fixture();
    let mut args = vec!["images", root.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(sel);
    json_of(&args)["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["repository"].as_str().unwrap().to_string())
        .collect()
}

/// Repositories in which a `prune` rule with the selection `sel` that
/// removes every tag it may (older than 0 s, `latest` not kept) removes
/// tags.
fn prune_repos(sel: &[&str]) -> BTreeSet<String> {
    let root = fixture();
    let mut args = vec![
        "prune",
        root.to_str().unwrap(),
        "--older-than",
        "0s",
        "--no-keep-latest",
        "--grace",
        "0s",
        "--format",
        "json",
    ];
    args.extend_from_slice(sel);
    json_of(&args)["tags_removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["repository"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_same_selection_picks_the_same_repositories_in_images_and_prune() {
    let all = images_repos(&["--tag", ".*"]);
    assert!(all.len() >= 4, "{all:?}");
    let selections: [&[&str]; 6] = [
        &["--repo", "a"],
        &["--repo", "a.*"],
        &["--repo", "team-a/.*", "--tag", r"1\.0|stable"],
        &["--repo", "multi/[^/]*", "--tag", "latest"],
        &["--repo", "a", "--repo", "team-a/svc/web"],
        &["--tag", "v1|stable"],
    ];
    let mut differing = 0;
    for sel in selections {
        let mut tagged = sel.to_vec();
        if !sel.contains(&"--tag") {
            tagged.extend(["--tag", ".*"]);
        }
        let shown = images_repos(&tagged);
        let pruned = prune_repos(sel);
        assert!(!shown.is_empty(), "{sel:?} selects nothing");
        assert_eq!(shown, pruned, "{sel:?}: images vs prune");
        differing += usize::from(shown != all);
    }
    assert!(differing >= 5, "the selections should narrow");
    // Anchored in both: `a` is not `a/b`, `team` not `team-a/...`.
    assert_eq!(
        images_repos(&["--repo", "a"]),
        BTreeSet::from(["a".to_string()])
    );
    assert!(images_repos(&["--repo", "team"]).is_empty());
    assert!(prune_repos(&["--repo", "team"]).is_empty());
}

#[test]
fn an_invalid_selection_is_the_same_error_in_images_and_prune() {
    let root = fixture();
    let root = root.to_str().unwrap();
    for cmd in [
        vec!["images", root, "--repo", "a/[b"],
        vec!["prune", root, "--repo", "a/[b", "--older-than", "1d"],
    ] {
        let o = run(&cmd);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{cmd:?}: {err}");
        assert!(
            err.contains("--repo") && err.contains("a/[b"),
            "{cmd:?}: {err}"
        );
        assert!(
            !err.contains(r"\A(?:"),
            "{cmd:?} shows the wrapped regex: {err}"
        );
    }
}

/// Every command that prints a result, run with its stdout closed after the
/// first bytes (as `| head -c1` does), ends with exit status 0 and says
/// nothing about the pipe.
#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let root = fixture();
    let root = root.to_str().unwrap();
    for args in [
        vec!["report", root, "--format", "json"],
        vec!["images", root],
        vec!["verify", root],
        vec!["sweep", root, "-m", "--grace", "0s"],
        vec!["prune", root, "--older-than", "0s", "--grace", "0s"],
        vec!["delete", root, "a:v1", "--grace", "0s"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_regsweep"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read one byte, then close the pipe.
        let mut out = child.stdout.take().unwrap();
        let mut one = [0u8; 1];
        std::io::Read::read_exact(&mut out, &mut one).unwrap();
        drop(out);
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
        assert!(
            !err.to_lowercase().contains("broken pipe"),
            "{args:?}: {err}"
        );
    }
}
