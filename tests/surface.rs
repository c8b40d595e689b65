//! The removal commands speak alike: the result (the plan) on standard
//! output, notices ("dry run", what was done, where the plan went) on
//! standard error, for `sweep`, `delete` and `prune`; modes in the words of
//! the JSON, in `sweep` and `report` alike; per-run metrics as gauges; the
//! same `--repo`/`--tag` selection picks the same repositories in `images`
//! and `prune`; every command that prints a plan takes `--format` (a closed
//! standard output is tests/exit.rs's).

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/registry")
}

/// (exit code, stdout, stderr) of regsweep with `args`.
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_regsweep"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The whole output of regsweep with `args`.
fn output(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_regsweep"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn results_on_stdout_notices_on_stderr_for_every_removal_command() {
    let root = fixture();
    let r = root.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    let p = plan.to_str().unwrap();
    for args in [
        vec!["sweep", r, "-q", "--plan", p],
        vec!["sweep", r, "-q", "-m", "--plan", p],
        vec!["prune", r, "-q", "--keep-last", "1", "--plan", p],
        vec!["delete", r, "-q", "a:v1", "--plan", p],
    ] {
        let (code, out, err) = run(&args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert!(!out.trim().is_empty(), "{args:?}: no plan on stdout");
        assert!(
            err.contains("regsweep: dry run: nothing was changed"),
            "{args:?}: {err}"
        );
        assert!(err.contains("regsweep: plan written to"), "{args:?}: {err}");
        for notice in ["dry run", "plan written"] {
            assert!(
                !out.contains(notice),
                "{args:?}: {notice:?} on stdout: {out}"
            );
        }
    }
    let (_, out, _) = run(&["sweep", r, "-q"]);
    assert!(out.contains("(mode: keep-untagged,"), "{out}");
    let (_, out, _) = run(&["sweep", r, "-q", "-m"]);
    assert!(out.contains("(mode: delete-untagged,"), "{out}");
    assert!(!out.contains("Untagged"), "an enum's name: {out}");
    // `report` names its mode in the same words.
    let (_, out, _) = run(&["report", r, "-q", "-m"]);
    assert!(out.contains("(mode: delete-untagged)"), "{out}");
}

#[test]
fn per_run_removal_metrics_are_gauges() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.prom");
    let (code, _, err) = run(&[
        "sweep",
        fixture().to_str().unwrap(),
        "-q",
        "--metrics",
        m.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let text = std::fs::read_to_string(&m).unwrap();
    for name in ["regsweep_removed_bytes", "regsweep_removed_objects"] {
        assert!(
            text.contains(&format!("# TYPE {name} gauge\n")),
            "{name}: {text}"
        );
        assert!(text.contains(&format!("\n{name} 0\n")), "{name}: {text}");
    }
    assert!(
        !text.contains("_total"),
        "a per-run value as a counter: {text}"
    );
}

#[test]
fn restore_offers_only_what_it_uses() {
    let (code, out, _) = run(&["restore", "--help"]);
    assert_eq!(code, Some(0));
    for flag in ["--from", "--registry-config", "--concurrency", "--quiet"] {
        assert!(out.contains(flag), "{flag}: {out}");
    }
    for flag in ["--listing", "--jobs"] {
        assert!(!out.contains(flag), "{flag} offered: {out}");
    }
}

fn json_of(args: &[&str]) -> Value {
    let o = output(args);
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
        let o = output(&cmd);
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
        let o = output(&args);
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
        let o2 = output(&args);
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

/// Progress as on a terminal (run under `script`, which gives it a pty):
/// `verify --rehash` counts the bytes it hashes with their unit, a finished
/// phase leaves one summary line; on a pipe, nothing.
#[test]
fn rehash_progress_counts_bytes_on_a_terminal_and_nothing_on_a_pipe() {
    let root = fixture();
    let r = root.to_str().unwrap();
    let bin = env!("CARGO_BIN_EXE_regsweep");
    let o = Command::new("script")
        .args([
            "-qec",
            &format!("'{bin}' verify '{r}' --rehash"),
            "/dev/null",
        ])
        .output()
        .expect("script (util-linux) runs a command on a pty");
    let tty = String::from_utf8_lossy(&o.stdout).replace('\r', "\n");
    let stored = output(&["report", r, "--format", "json", "-q"]);
    let stored: Value = serde_json::from_slice(&stored.stdout).unwrap();
    let bytes = regsweep::report::human_bytes(stored["summary"]["blob_bytes"].as_u64().unwrap());
    let done: Vec<&str> = tty.lines().filter(|l| l.contains("done: ")).collect();
    assert!(
        done.iter()
            .any(|l| l.contains(&format!("done: listing and hashing blobs {bytes} in "))),
        "no hashing summary with {bytes}: {done:?}"
    );
    assert!(
        done.iter()
            .any(|l| l.contains("done: parsing manifests 14/14 in")),
        "{done:?}"
    );
    let piped = output(&["verify", r, "--rehash"]);
    let err = String::from_utf8_lossy(&piped.stderr);
    assert!(!err.contains("done:") && !err.contains("hashing"), "{err}");
}

/// The README's Quick start examples are what the binary prints (ages,
/// rates and column padding aside): `scripts/readme_examples.py` runs each
/// on a copy of the fixture, in order, and compares.
#[test]
fn readme_examples_are_the_binarys_output() {
    let o = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/readme_examples.py"))
        .args(["--check", "--bin", env!("CARGO_BIN_EXE_regsweep")])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `scripts/gen_tree.py` says its defaults, and `--spread` dates pushes
/// over a window — links as well as blobs — so that age rules can be
/// tried on a generated tree: `prune --older-than` removes some tags of it
/// and keeps others.
#[test]
fn generated_trees_spread_push_times_over_links_and_blobs() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gen_tree.py");
    let help = Command::new("python3")
        .arg(&script)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for opt in ["--repos", "--manifests-per-repo", "--seed", "--spread"] {
        let at = help
            .find(&format!("  {opt} "))
            .unwrap_or_else(|| panic!("{opt} in --help"));
        let rest = &help[at..];
        let entry = &rest[..rest[2..].find("\n  --").map_or(rest.len(), |e| e + 2)];
        assert!(
            entry.contains("(default: "),
            "{opt} shows no default: {entry}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let o = Command::new("python3")
        .arg(&script)
        .args(["--root", root, "--repos", "6", "--manifests-per-repo", "12"])
        .args(["--spread", "30d", "--workers", "1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let now = std::time::SystemTime::now();
    let ages = |suffix: &str| -> Vec<f64> {
        let mut v = Vec::new();
        let mut stack = vec![dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.to_str().unwrap().contains(suffix) {
                    let m = std::fs::metadata(&p).unwrap().modified().unwrap();
                    v.push(now.duration_since(m).unwrap_or_default().as_secs_f64() / 86_400.0);
                }
            }
        }
        v
    };
    for kind in [
        "/current/link",
        "/_manifests/revisions/",
        "/_layers/",
        "/blobs/",
    ] {
        let v = ages(kind);
        assert!(v.len() >= 5, "{kind}: {} files", v.len());
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, 0.0f64), |(l, h), &a| (l.min(a), h.max(a)));
        assert!(hi <= 30.01, "{kind}: a time before the window ({hi} days)");
        assert!(
            hi - lo >= 10.0,
            "{kind}: times not spread ({lo}..{hi} days)"
        );
    }
    // Age rules now decide: some tags are older than 15 days, some not.
    let plan = output(&[
        "prune",
        root,
        "--older-than",
        "15d",
        "--no-keep-latest",
        "--grace",
        "0s",
        "--format",
        "json",
        "-q",
    ]);
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let removed = plan["tags_removed"].as_array().unwrap().len();
    let kept = plan["kept"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["tag"].is_string())
        .count();
    assert!(
        removed > 0 && kept > 0,
        "{removed} tags removed, {kept} kept"
    );
}
