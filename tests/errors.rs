//! Errors a user meets first: found before any scan, said once, with a hint
//! where one is known. Every command's output files are checked before the
//! storage is even opened (the storage given here does not exist: were the
//! scan first, its error would come instead); a registry root given one
//! level too deep or too high names the root to give; a plain-HTTP S3
//! endpoint without `AWS_ALLOW_HTTP` says so instead of "builder error".

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/registry")
}

/// Runs regsweep with `args` and the AWS variables cleared but `env`;
/// returns (exit code, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regsweep"));
    cmd.args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    let o = cmd.output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn output_paths_are_refused_before_the_scan_and_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = "/nonexistent-regsweep-dir/out.txt";
    let a_dir = dir.path().to_str().unwrap().to_string();
    let nowhere = dir.path().join("no-registry-here");
    let nowhere = nowhere.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["report", nowhere, "-o", missing],
        vec!["report", nowhere, "--metrics", missing],
        vec!["report", nowhere, "--plan", missing],
        vec!["report", nowhere, "-o", &a_dir],
        vec!["verify", nowhere, "-o", missing],
        vec!["verify", nowhere, "--metrics", missing],
        vec!["images", nowhere, "-o", missing],
        vec!["inventory", nowhere, "-o", missing],
        vec!["sweep", nowhere, "--plan", missing],
        vec!["sweep", nowhere, "--metrics", missing],
        vec!["prune", nowhere, "--keep-last", "1", "-o", missing],
        vec!["delete", nowhere, "a:v1", "--metrics", missing],
    ];
    for args in cases {
        let (code, err) = run(&args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        let target = args.last().unwrap();
        assert!(
            err.contains(&format!("cannot write {target}")),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("registry root"),
            "{args:?}: the storage was opened first: {err}"
        );
        assert!(
            !err.contains(".tmp."),
            "{args:?}: names a temporary file: {err}"
        );
        for said in ["No such file or directory", "is a directory"] {
            assert!(
                err.matches(said).count() <= 1,
                "{args:?}: said twice: {err}"
            );
        }
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    // With --apply, --plan is read, not written: no such check.
    let (code, err) = run(&["sweep", nowhere, "--plan", missing, "--apply"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(!err.contains("cannot write"), "{err}");
}

#[test]
fn a_root_given_too_deep_or_too_high_names_the_root() {
    let root = fixture();
    for below in ["docker", "docker/registry", "docker/registry/v2"] {
        let p = root.join(below);
        let (code, err) = run(&["report", p.to_str().unwrap(), "-q"], &[]);
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains(&format!(
                "give the directory that holds docker/: {}",
                root.display()
            )),
            "{below}: {err}"
        );
    }
    let above = tempfile::tempdir().unwrap();
    let link = above.path().join("registry");
    std::os::unix::fs::symlink(&root, &link).unwrap();
    let (code, err) = run(&["report", above.path().to_str().unwrap(), "-q"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("did you mean {}?", link.display())),
        "{err}"
    );
}

#[test]
fn a_plain_http_endpoint_without_allow_http_says_so() {
    let env = [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_ACCESS_KEY_ID", "x"),
        ("AWS_SECRET_ACCESS_KEY", "y"),
    ];
    let (code, err) = run(&["report", "s3://bucket/prefix", "-q"], &env);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("plain HTTP") && err.contains("AWS_ALLOW_HTTP=true"),
        "{err}"
    );
    assert!(!err.contains("builder error"), "{err}");
}
