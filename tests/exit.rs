//! A closed standard output (`regsweep … | head -1`) ends the run quietly,
//! as ripgrep's does: exit status 0, nothing on stderr, no panic.
//!
//! Rust ignores SIGPIPE, so a write to a pipe whose reader is gone fails
//! with EPIPE; the run must take that as the end of its output, not as an
//! error. The outputs here are large enough (over a megabyte, against a
//! 64 KiB pipe buffer) that the write is still going on when the reader
//! leaves after its first line.

use sha2::{Digest, Sha256};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const V2: &str = "docker/registry/v2";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/registry")
}

/// Writes `bytes` as a blob; returns its hex digest.
fn blob(root: &Path, bytes: &[u8]) -> String {
    let hex = format!("{:x}", Sha256::digest(bytes));
    let dir = root.join(format!("{V2}/blobs/sha256/{}/{hex}", &hex[..2]));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("data"), bytes).unwrap();
    hex
}

fn link(path: PathBuf, hex: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, format!("sha256:{hex}")).unwrap();
}

/// A registry with one repository of `n` tagged single-image manifests
/// (each with its own config, no layers).
fn big_tree(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let repo = root.join(format!("{V2}/repositories/big"));
    for i in 0..n {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"n":"{i}"}}}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        );
        let c = blob(root, config.as_bytes());
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{c}","size":{}}},"layers":[]}}"#,
            config.len()
        );
        let m = blob(root, manifest.as_bytes());
        link(repo.join(format!("_layers/sha256/{c}/link")), &c);
        link(
            repo.join(format!("_manifests/revisions/sha256/{m}/link")),
            &m,
        );
        let tag = repo.join(format!("_manifests/tags/release-{i:05}"));
        link(tag.join("current/link"), &m);
        link(tag.join(format!("index/sha256/{m}/link")), &m);
    }
    dir
}

/// Runs regsweep with stdout on a pipe that is closed after its first line
/// is read (`first_line`), or at once; returns the exit status, stderr and
/// the line read.
fn run_closing(args: &[&str], first_line: bool) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_regsweep"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    if first_line {
        BufReader::new(stdout).read_line(&mut line).unwrap();
    } else {
        drop(stdout);
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        line,
    )
}

#[test]
fn a_closed_stdout_ends_the_run_quietly_with_status_0() {
    let tree = big_tree(4000);
    let root = tree.path().to_str().unwrap();
    // The output is larger than the pipe buffer, so the reader leaves
    // while it is being written.
    let (code, stderr, _) = run_closing(&["images", root, "--format", "json", "-q"], false);
    let full = Command::new(env!("CARGO_BIN_EXE_regsweep"))
        .args(["images", root, "--format", "json", "-q"])
        .output()
        .unwrap();
    assert!(full.status.success());
    assert!(
        full.stdout.len() > 1 << 20,
        "{} bytes: too small to fill the pipe",
        full.stdout.len()
    );
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
    for args in [
        // Streamed JSON, the CSV writer, and one string (the table).
        vec!["images", root, "--format", "json"],
        vec!["images", root, "--format", "csv"],
        vec!["images", root],
        // A pipe given as the output file is written in place.
        vec!["inventory", root, "-o", "/dev/stdout"],
    ] {
        let mut args = args.clone();
        args.push("-q");
        let (code, stderr, line) = run_closing(&args, true);
        assert!(
            !line.is_empty(),
            "{args:?}: no first line; stderr: {stderr}"
        );
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
    // Closed before anything is written: the report of the fixture, in
    // every format.
    let fixture = fixture();
    let fixture = fixture.to_str().unwrap();
    for format in ["json", "text", "csv", "html"] {
        let args = ["report", fixture, "--format", format, "-q"];
        let (code, stderr, _) = run_closing(&args, false);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
    // Every other command that prints a result, in each of its formats;
    // the removal commands' "dry run" notice is on stderr, and nothing
    // about the pipe.
    for (args, formats) in [
        (
            vec!["verify", fixture],
            &["text", "json", "csv", "html"][..],
        ),
        (
            vec!["sweep", fixture, "-m", "--grace", "0s"],
            &["text", "json", "csv"],
        ),
        (
            vec!["delete", fixture, "a:v1", "--grace", "0s"],
            &["text", "json", "csv"],
        ),
        (
            vec!["prune", fixture, "--older-than", "0s", "--grace", "0s"],
            &["text", "json", "csv"],
        ),
    ] {
        for format in formats {
            let mut args = args.clone();
            args.extend(["--format", format, "-q"]);
            let (code, stderr, _) = run_closing(&args, false);
            assert_eq!(code, Some(0), "{args:?}: {stderr}");
            assert!(
                !stderr.to_lowercase().contains("pipe"),
                "{args:?}: {stderr}"
            );
        }
    }
}

/// A failure that is not a closed pipe still says what failed, exit 2.
#[test]
fn other_output_errors_are_still_reported() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_regsweep"))
        .args(["report", fixture().to_str().unwrap(), "--format", "json"])
        .arg("-q")
        .stdout(
            fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("writing to standard output") && stderr.contains("No space left"),
        "{stderr}"
    );
}
