//! One vocabulary across commands, on the shipped fixture tree: the same
//! `--repo`/`--tag` selection picks the same repositories in `images` and
//! `prune`; every command that prints a result takes `--format` (a closed
//! standard output is tests/exit.rs's).

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// `sweep`, `delete` and `prune` print their plan in `--format
/// text|json|csv`, to standard output or `-o FILE`, notices on standard
/// error: the JSON is the `--plan FILE` document, the CSV's `remove` rows
/// are the plan's removals in order, with the same bytes.
#[test]
fn every_removal_command_prints_its_plan_in_each_format() {
    let root = fixture();
    let root = root.to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("regsweep-surface-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let commands: [&[&str]; 3] = [
        &["sweep", root, "-m", "--grace", "0s"],
        &["delete", root, "a:v1", "--grace", "0s"],
        &[
            "prune",
            root,
            "--keep-last",
            "1",
            "--no-keep-latest",
            "--grace",
            "0s",
        ],
    ];
    for base in commands {
        let saved = dir.join("plan.json");
        let mut args = base.to_vec();
        args.extend(["--format", "json", "--plan", saved.to_str().unwrap()]);
        let doc = json_of(&args);
        let file: Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
        let strip = |mut v: Value| {
            v.as_object_mut().unwrap().remove("created_at");
            if let Some(p) = v.get_mut("plan") {
                p.as_object_mut().unwrap().remove("created_at");
            }
            v
        };
        assert_eq!(
            strip(doc.clone()),
            strip(file),
            "{base:?}: stdout vs --plan"
        );
        let plan = doc.get("plan").unwrap_or(&doc);
        let actions = plan["actions"].as_array().unwrap();
        assert!(!actions.is_empty(), "{base:?} removes nothing");

        let mut args = base.to_vec();
        args.extend(["--format", "csv"]);
        let o = run(&args);
        assert!(o.status.success(), "{base:?}");
        let mut rd = csv::Reader::from_reader(o.stdout.as_slice());
        let header: Vec<String> = rd.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(
            header,
            [
                "decision",
                "kind",
                "repository",
                "tag",
                "digest",
                "bytes",
                "reason",
                "key"
            ]
        );
        let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
        let removed: Vec<&csv::StringRecord> = rows.iter().filter(|r| &r[0] == "remove").collect();
        assert_eq!(removed.len(), actions.len(), "{base:?}");
        for (r, a) in removed.iter().zip(actions) {
            assert_eq!(&r[7], a["key"].as_str().unwrap(), "{base:?}: order");
            assert!(!r[6].is_empty(), "{base:?}: a removal without a reason");
        }
        let bytes: u64 = removed.iter().map(|r| r[5].parse::<u64>().unwrap()).sum();
        assert_eq!(
            bytes,
            plan["summary"]["bytes"].as_u64().unwrap(),
            "{base:?}"
        );
        if base[0] != "sweep" {
            // A delete's or prune's decisions: what stays is in the table too.
            let kept = rows.iter().filter(|r| &r[0] == "keep").count();
            assert_eq!(kept, doc["kept"].as_array().unwrap().len(), "{base:?}");
        }

        // -o FILE: nothing on standard output, the same table in the file.
        let out = dir.join("plan.csv");
        let mut args = base.to_vec();
        args.extend(["--format", "csv", "-o", out.to_str().unwrap()]);
        let o2 = run(&args);
        assert!(o2.status.success(), "{base:?}");
        assert!(o2.stdout.is_empty(), "{base:?}: stdout with -o");
        assert_eq!(
            std::fs::read(&out).unwrap(),
            o.stdout,
            "{base:?}: -o vs stdout"
        );
        assert!(
            String::from_utf8_lossy(&o2.stderr).contains("dry run"),
            "{base:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
