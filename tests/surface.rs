//! The removal commands speak alike: the result (the plan) on standard
//! output, notices ("dry run", what was done, where the plan went) on
//! standard error, for `sweep`, `delete` and `prune`; modes in the words of
//! the JSON, in `sweep` and `report` alike; per-run metrics as gauges.

use std::path::{Path, PathBuf};
use std::process::Command;

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
