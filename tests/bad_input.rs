//! Damaged registries: each case copies the fixture tree (written by the real
//! reference registry), damages it one way, and checks that `regsweep report`
//! names the damage in a problem entry, does not crash, exits 1, keeps
//! everything the damage might reference, and leaves the storage unchanged.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const V2: &str = "docker/registry/v2";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/registry")
}

/// A private copy of the fixture tree.
fn copy_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", fixture().display()))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    dir
}

/// Every path under `root` with its type, mode and content (or link target).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let content = if m.file_type().is_symlink() {
            fs::read_link(&p)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else if m.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            Vec::new()
        } else {
            fs::read(&p).unwrap_or_else(|_| b"<unreadable>".to_vec())
        };
        out.insert(p, (m.mode(), content));
    }
    out
}

struct Run {
    code: i32,
    report: Value,
}

fn report_as(root: &Path, args: &[&str], as_nobody: bool) -> Run {
    let bin = env!("CARGO_BIN_EXE_regsweep");
    let mut cmd = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
        c
    } else {
        Command::new(bin)
    };
    let out = cmd
        .arg("report")
        .arg(root)
        .args(["--format", "json"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some(),
        "regsweep died from a signal: {stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stderr: {stderr}"));
    Run {
        code: out.status.code().unwrap(),
        report,
    }
}

fn report(root: &Path, args: &[&str]) -> Run {
    report_as(root, args, false)
}

/// Runs the report and checks that the storage was not modified.
fn report_unchanged(root: &Path, args: &[&str]) -> Run {
    let before = snapshot(root);
    let run = report(root, args);
    assert_eq!(before, snapshot(root), "report modified the storage");
    run
}

fn problems(r: &Run) -> Vec<(String, String, String, String)> {
    r.report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_string(),
                p["severity"].as_str().unwrap().to_string(),
                p["path"].as_str().unwrap().to_string(),
                p["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn has_problem(r: &Run, kind: &str, path_part: &str) -> (String, String) {
    problems(r)
        .into_iter()
        .find(|(k, _, p, _)| k == kind && p.contains(path_part))
        .map(|(_, sev, _, msg)| (sev, msg))
        .unwrap_or_else(|| panic!("no {kind} problem at {path_part}: {:#?}", problems(r)))
}

fn garbage(r: &Run) -> Vec<String> {
    r.report["garbage_blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap().to_string())
        .collect()
}

fn tag_link(root: &Path, repo: &str, tag: &str) -> PathBuf {
    root.join(V2).join(format!(
        "repositories/{repo}/_manifests/tags/{tag}/current/link"
    ))
}

fn blob_path(root: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    root.join(V2)
        .join(format!("blobs/sha256/{}/{hex}/data", &hex[..2]))
}

/// The tag `a:v1`'s manifest digest and the digests it references.
fn a_v1(root: &Path) -> (String, Vec<String>) {
    let digest = fs::read_to_string(tag_link(root, "a", "v1")).unwrap();
    let m: Value = serde_json::from_slice(&fs::read(blob_path(root, &digest)).unwrap()).unwrap();
    let mut refs = vec![m["config"]["digest"].as_str().unwrap().to_string()];
    for l in m["layers"].as_array().unwrap() {
        refs.push(l["digest"].as_str().unwrap().to_string());
    }
    (digest, refs)
}

#[test]
fn clean_fixture_has_no_problems() {
    let d = copy_fixture();
    let r = report_unchanged(d.path(), &[]);
    assert_eq!(r.code, 0, "{:#?}", problems(&r));
    assert!(problems(&r).is_empty());
    assert_eq!(r.report["summary"]["sweep_blocked"], false);
}

#[test]
fn corrupt_manifest_json_is_an_error_and_keeps_what_it_names() {
    let d = copy_fixture();
    let (digest, refs) = a_v1(d.path());
    let p = blob_path(d.path(), &digest);
    let original = fs::read(&p).unwrap();
    // Truncated JSON: the config digest is still in it, the end is lost.
    let cut = String::from_utf8_lossy(&original).find(&refs[0]).unwrap() + refs[0].len();
    fs::write(&p, &original[..cut]).unwrap();
    for args in [&[][..], &["--delete-untagged"][..]] {
        let r = report_unchanged(d.path(), args);
        assert_eq!(r.code, 1);
        let (sev, msg) = has_problem(&r, "unparseable_manifest", &digest[7..]);
        assert_eq!(sev, "error");
        assert!(msg.contains(&digest), "{msg}");
        assert_eq!(r.report["summary"]["sweep_blocked"], true);
        let g = garbage(&r);
        assert!(
            !g.contains(&digest),
            "the corrupt manifest itself is garbage"
        );
        assert!(
            !g.contains(&refs[0]),
            "a digest named in the corrupt manifest is garbage"
        );
    }
}

#[test]
fn manifest_that_is_not_a_manifest() {
    let d = copy_fixture();
    let (digest, _) = a_v1(d.path());
    fs::write(
        blob_path(d.path(), &digest),
        br#"{"mediaType":"application/x-unknown"}"#,
    )
    .unwrap();
    let r = report_unchanged(d.path(), &[]);
    assert_eq!(r.code, 1);
    assert_eq!(
        has_problem(&r, "unknown_media_type", &digest[7..]).0,
        "error"
    );
}

/// A manifest without `mediaType` that has both `manifests` and
/// `config`/`layers`: the registry serves it as an index, and what the image
/// half names stays live too. The same bytes with an explicit index
/// `mediaType` leave some of those blobs garbage: the test could fail.
#[test]
fn mediatype_less_manifest_with_both_shapes_keeps_both() {
    let run = |media_type: Option<&str>| {
        let d = copy_fixture();
        let (digest, refs) = a_v1(d.path());
        let p = blob_path(d.path(), &digest);
        let mut m: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        let o = m.as_object_mut().unwrap();
        o.remove("mediaType");
        if let Some(t) = media_type {
            o.insert("mediaType".into(), t.into());
        }
        o.insert("manifests".into(), Value::Array(Vec::new()));
        fs::write(&p, serde_json::to_vec(&m).unwrap()).unwrap();
        let r = report_unchanged(d.path(), &["--delete-untagged"]);
        assert_eq!(r.code, 0, "{:#?}", problems(&r));
        let g = garbage(&r);
        assert!(
            !g.contains(&digest),
            "the tagged manifest itself is garbage"
        );
        let lost: Vec<String> = refs.into_iter().filter(|b| g.contains(b)).collect();
        lost
    };
    let as_index = run(Some("application/vnd.oci.image.index.v1+json"));
    assert!(!as_index.is_empty(), "no blob of a:v1 is its own");
    assert_eq!(run(None), Vec::<String>::new());
}

#[test]
fn empty_and_newline_terminated_tag_links() {
    for (content, word) in [(&b""[..], "empty"), (&b"\n"[..], "newline")] {
        let d = copy_fixture();
        let link = tag_link(d.path(), "a", "v1");
        let mut bytes = fs::read(&link).unwrap();
        if content.is_empty() {
            bytes.clear();
        } else {
            bytes.extend_from_slice(content);
        }
        fs::write(&link, bytes).unwrap();
        let r = report_unchanged(d.path(), &["--delete-untagged"]);
        assert_eq!(r.code, 1);
        let (sev, msg) = has_problem(
            &r,
            "bad_link",
            "repositories/a/_manifests/tags/v1/current/link",
        );
        assert_eq!(sev, "error");
        assert!(msg.contains(word), "{msg}");
    }
}

#[test]
fn bad_revision_link() {
    let d = copy_fixture();
    let (digest, _) = a_v1(d.path());
    let link = d.path().join(V2).join(format!(
        "repositories/a/_manifests/revisions/sha256/{}/link",
        &digest[7..]
    ));
    fs::write(&link, format!("{digest}\n")).unwrap();
    // The fast scan trusts revision directories' names; --deep reads the links.
    let r = report_unchanged(d.path(), &["--deep"]);
    assert_eq!(r.code, 1);
    has_problem(
        &r,
        "bad_link",
        &format!("revisions/sha256/{}", &digest[7..]),
    );
    // The manifest stays live all the same.
    assert!(!garbage(&r).contains(&digest));
}

#[test]
fn link_to_a_missing_blob() {
    let d = copy_fixture();
    let (digest, _) = a_v1(d.path());
    fs::remove_dir_all(blob_path(d.path(), &digest).parent().unwrap()).unwrap();
    // And a revision link to a digest that was never stored.
    let ghost = "ab".repeat(32);
    let dir = d.path().join(V2).join(format!(
        "repositories/a/_manifests/revisions/sha256/{ghost}"
    ));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("link"), format!("sha256:{ghost}")).unwrap();
    let r = report_unchanged(d.path(), &[]);
    assert_eq!(r.code, 1);
    assert_eq!(
        has_problem(&r, "missing_manifest_blob", &digest[7..]).0,
        "error"
    );
    has_problem(&r, "missing_manifest_blob", &ghost);
}

#[test]
fn symlinks_out_of_the_root_are_never_followed() {
    let d = copy_fixture();
    let outside = copy_fixture();
    let v2 = d.path().join(V2);
    // A repository directory that is a symlink to a real repository elsewhere.
    symlink(
        outside.path().join(V2).join("repositories/a"),
        v2.join("repositories/evil"),
    )
    .unwrap();
    // A blob shard and a tag link pointing outside.
    symlink(
        outside.path().join(V2).join("blobs/sha256/0c"),
        v2.join("blobs/sha256/00"),
    )
    .unwrap();
    let link = tag_link(d.path(), "a/b", "latest");
    let target = tag_link(outside.path(), "a/b", "latest");
    fs::remove_file(&link).unwrap();
    symlink(&target, &link).unwrap();
    let outside_before = snapshot(outside.path());
    let r = report_unchanged(d.path(), &[]);
    assert_eq!(r.code, 1);
    for path in [
        "repositories/evil",
        "blobs/sha256/00",
        "repositories/a/b/_manifests/tags/latest/current/link",
    ] {
        assert_eq!(has_problem(&r, "symlink", path).0, "error");
    }
    let repos: Vec<&str> = r.report["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert!(
        !repos.contains(&"evil"),
        "followed a symlinked repository: {repos:?}"
    );
    assert_eq!(r.report["summary"]["sweep_blocked"], true);
    assert_eq!(outside_before, snapshot(outside.path()));
}

#[test]
fn non_sha256_digest_directories() {
    let d = copy_fixture();
    let v2 = d.path().join(V2);
    fs::create_dir_all(v2.join("blobs/sha256/ab/not-a-digest")).unwrap();
    fs::write(v2.join("blobs/sha256/ab/not-a-digest/data"), b"x").unwrap();
    fs::create_dir_all(v2.join("blobs/sha512/ab/abcd")).unwrap();
    fs::write(v2.join("blobs/sha512/ab/abcd/data"), b"x").unwrap();
    let upper = "AB".repeat(32);
    fs::create_dir_all(v2.join(format!("repositories/a/_layers/sha256/{upper}"))).unwrap();
    fs::write(
        v2.join(format!("repositories/a/_layers/sha256/{upper}/link")),
        b"x",
    )
    .unwrap();
    let r = report_unchanged(d.path(), &[]);
    assert_eq!(r.code, 1);
    has_problem(&r, "bad_digest_directory", "blobs/sha256/ab/not-a-digest");
    has_problem(&r, "non_sha256_digest", "blobs/sha512");
    has_problem(&r, "bad_digest_directory", &upper);
}

#[test]
fn unreadable_file_and_directory() {
    let d = copy_fixture();
    let link = tag_link(d.path(), "a", "v1");
    fs::set_permissions(&link, fs::Permissions::from_mode(0o000)).unwrap();
    let layers = d.path().join(V2).join("repositories/a/b/_manifests");
    fs::set_permissions(&layers, fs::Permissions::from_mode(0o000)).unwrap();
    let root_user = unsafe { libc_geteuid() } == 0;
    if root_user {
        // Root reads everything: run as nobody over a world-readable tree.
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let before = snapshot(d.path());
    let r = report_as(d.path(), &["--delete-untagged"], root_user);
    assert_eq!(before, snapshot(d.path()));
    assert_eq!(r.code, 1);
    let (sev, msg) = has_problem(
        &r,
        "unreadable",
        "repositories/a/_manifests/tags/v1/current/link",
    );
    assert_eq!(sev, "error");
    assert!(msg.to_lowercase().contains("permission"), "{msg}");
    has_problem(&r, "unreadable", "repositories/a/b/_manifests");
    assert_eq!(r.report["summary"]["sweep_blocked"], true);
}

#[test]
fn huge_manifest_is_refused_not_read() {
    let d = copy_fixture();
    let (digest, _) = a_v1(d.path());
    let r = report_unchanged(d.path(), &["--max-manifest-size", "64"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        has_problem(&r, "manifest_too_large", &digest[7..]).0,
        "error"
    );
    assert!(!garbage(&r).contains(&digest));
}

#[test]
fn stray_tmp_files_and_directories_without_manifests() {
    let d = copy_fixture();
    let v2 = d.path().join(V2);
    let (digest, _) = a_v1(d.path());
    fs::write(
        v2.join("repositories/a/_manifests/tags/v1/current/link.1234.tmp"),
        &digest,
    )
    .unwrap();
    fs::create_dir_all(v2.join("repositories/orphan/_layers/sha256")).unwrap();
    let r = report_unchanged(d.path(), &["--deep"]);
    assert_eq!(
        has_problem(&r, "stray_temp_file", "link.1234.tmp").0,
        "info"
    );
    assert_eq!(
        has_problem(&r, "not_a_repository", "repositories/orphan").0,
        "warning"
    );
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// The shallow (fast) scan and the full one agree on everything they report.
#[test]
fn fast_and_deep_scans_agree() {
    let d = copy_fixture();
    for mode in [&[][..], &["--delete-untagged"][..]] {
        let fast = report_unchanged(d.path(), mode);
        let deep = report_unchanged(d.path(), &[mode, &["--deep"][..]].concat());
        for key in [
            "garbage_blobs",
            "garbage_manifests",
            "abandoned_uploads",
            "repositories",
            "problems",
        ] {
            // Uploads' ages are measured at each run's own second.
            let strip = |v: &Value| {
                let mut v = v.clone();
                for u in v.as_array_mut().into_iter().flatten() {
                    u.as_object_mut().map(|o| o.remove("age_seconds"));
                }
                v
            };
            let (f, dp) = (&fast.report[key], &deep.report[key]);
            assert_eq!(strip(f), strip(dp), "{key} differs");
        }
        assert_eq!(fast.report["summary"], deep.report["summary"]);
    }
}

/// Runs `regsweep sweep ROOT ARGS --apply --grace 0s` with a private journal;
/// returns its exit status and stderr.
fn sweep_apply(root: &Path, args: &[&str]) -> (i32, String) {
    let journal = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_regsweep"))
        .arg("sweep")
        .arg(root)
        .args(args)
        .args([
            "--apply",
            "--settle",
            "0s",
            "--grace",
            "0s",
            "--quiet",
            "--journal",
        ])
        .arg(journal.path().join("j.jsonl"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (out.status.code().expect("killed by a signal"), stderr)
}

/// Rewrites `a:v1`'s manifest so that its last layer is named by `digest`;
/// returns the layer's sha256 digest.
fn rename_last_layer(root: &Path, digest: &str) -> String {
    let (m, refs) = a_v1(root);
    let p = blob_path(root, &m);
    let mut v: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
    let layers = v["layers"].as_array_mut().unwrap();
    layers.last_mut().unwrap()["digest"] = Value::from(digest);
    fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    refs.last().unwrap().clone()
}

/// A layer referenced by a sha512 digest, which the repository's
/// `_layers/sha512/<hex>/link` maps to the sha256 blob: the blob is live.
/// regsweep used to ignore the alias and delete the blob.
#[test]
fn sha512_alias_keeps_its_sha256_blob_live() {
    let d = copy_fixture();
    let alias = format!("sha512:{}", "ab".repeat(64));
    let layer = rename_last_layer(d.path(), &alias);
    let dir = d
        .path()
        .join(V2)
        .join(format!("repositories/a/_layers/sha512/{}", &alias[7..]));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("link"), &layer).unwrap();
    for mode in [&[][..], &["--delete-untagged"][..]] {
        let r = report_unchanged(d.path(), mode);
        assert!(!garbage(&r).contains(&layer), "aliased layer is garbage");
        assert_eq!(r.report["summary"]["sweep_blocked"], false);
        let (code, stderr) = sweep_apply(d.path(), mode);
        assert_eq!(code, 0, "{stderr}");
        assert!(
            blob_path(d.path(), &layer).exists(),
            "sweep deleted the aliased layer"
        );
        assert!(d
            .path()
            .join(V2)
            .join(format!(
                "repositories/a/_layers/sha256/{}/link",
                &layer[7..]
            ))
            .exists());
    }
}

/// A reference by a digest of another algorithm that no alias link
/// resolves: which blob it needs is unknown, so the sweep is refused.
#[test]
fn unresolved_non_sha256_reference_blocks_the_sweep() {
    for alias in [
        format!("sha512:{}", "cd".repeat(64)),
        format!("md5:{}", "ef".repeat(16)),
    ] {
        let d = copy_fixture();
        let (m, _) = a_v1(d.path());
        rename_last_layer(d.path(), &alias);
        let r = report_unchanged(d.path(), &[]);
        assert_eq!(r.code, 1);
        let (sev, msg) = has_problem(&r, "unresolved_digest", &m[7..]);
        assert_eq!(sev, "error");
        assert!(msg.contains(&alias), "{msg}");
        let before = snapshot(d.path());
        assert_eq!(sweep_apply(d.path(), &[]).0, 3);
        assert_eq!(
            before,
            snapshot(d.path()),
            "a refused sweep changed the storage"
        );
    }
}

/// A tag directory whose `current/link` is gone (its history still names
/// the manifest): an error in fast and deep scans, so that
/// `--delete-untagged` does not delete what the tag held. It used to be
/// silently skipped, and the sweep deleted the tag's manifest and layers.
#[test]
fn tag_without_current_link_blocks_the_sweep() {
    let d = copy_fixture();
    let (m, refs) = a_v1(d.path());
    fs::remove_dir_all(tag_link(d.path(), "a", "v1").parent().unwrap()).unwrap();
    for deep in [&[][..], &["--deep"][..]] {
        let r = report_unchanged(d.path(), &[deep, &["--delete-untagged"][..]].concat());
        assert_eq!(r.code, 1);
        let (sev, _) = has_problem(&r, "dangling_tag", "repositories/a/_manifests/tags/v1/");
        assert_eq!(sev, "error");
        assert_eq!(r.report["summary"]["sweep_blocked"], true);
    }
    assert_eq!(sweep_apply(d.path(), &["--delete-untagged"]).0, 3);
    assert!(blob_path(d.path(), &m).exists());
    assert!(refs.iter().all(|b| blob_path(d.path(), b).exists()));
}

/// Blobs but no repository at all (a wrong root, or `repositories/` lost
/// in a restore): every blob would be garbage. An error, not a clean
/// report that a sweep would act on by deleting everything.
#[test]
fn no_repositories_blocks_the_sweep() {
    for remove_dir in [false, true] {
        let d = copy_fixture();
        let repos = d.path().join(V2).join("repositories");
        fs::remove_dir_all(&repos).unwrap();
        if !remove_dir {
            fs::create_dir(&repos).unwrap();
        }
        let r = report_unchanged(d.path(), &[]);
        assert_eq!(r.code, 1);
        assert_eq!(
            has_problem(&r, "no_repositories", "repositories/").0,
            "error"
        );
        let before = snapshot(d.path());
        assert_eq!(sweep_apply(d.path(), &[]).0, 3);
        assert_eq!(before, snapshot(d.path()));
    }
}

/// A tag whose manifest has no revision link: a warning in the report
/// (verify calls the tag broken); the manifest and its blobs stay live.
#[test]
fn tag_target_without_revision_link_is_reported_and_kept() {
    let d = copy_fixture();
    let (m, refs) = a_v1(d.path());
    fs::remove_dir_all(d.path().join(V2).join(format!(
        "repositories/a/_manifests/revisions/sha256/{}",
        &m[7..]
    )))
    .unwrap();
    for mode in [&[][..], &["--delete-untagged"][..]] {
        let r = report_unchanged(d.path(), mode);
        assert_eq!(r.code, 1);
        let (sev, msg) = has_problem(&r, "dangling_tag", "repositories/a/_manifests/tags/v1/");
        assert_eq!(sev, "warning");
        assert!(msg.contains(&m), "{msg}");
        let g = garbage(&r);
        assert!(!g.contains(&m) && refs.iter().all(|b| !g.contains(b)));
    }
}

/// A digest written with JSON escapes is a valid manifest (the registry
/// parses it with Go's encoding/json); regsweep used to call it unparseable.
#[test]
fn manifest_with_escaped_digest_parses() {
    let d = copy_fixture();
    let (m, refs) = a_v1(d.path());
    let p = blob_path(d.path(), &m);
    let text = fs::read_to_string(&p).unwrap();
    let layer = refs.last().unwrap();
    let escaped = layer.replace("sha256:", "sha256\\u003a");
    fs::write(&p, text.replace(layer.as_str(), &escaped)).unwrap();
    let r = report_unchanged(d.path(), &[]);
    assert_eq!(r.code, 0, "{:#?}", problems(&r));
    assert!(!garbage(&r).contains(layer));
}

/// A saved plan of another format version, or applied with a mode it was
/// not made in, is refused (exit 2) and nothing is removed. A plan with
/// `format_version: 99` used to be carried out.
#[test]
fn plan_of_another_version_or_mode_is_refused() {
    let d = copy_fixture();
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    let st = Command::new(env!("CARGO_BIN_EXE_regsweep"))
        .arg("sweep")
        .arg(d.path())
        .args(["--grace", "0s", "--plan"])
        .arg(&plan)
        .output()
        .unwrap();
    assert!(st.status.success());
    let mut v: Value = serde_json::from_slice(&fs::read(&plan).unwrap()).unwrap();
    assert!(!v["actions"].as_array().unwrap().is_empty());
    let before = snapshot(d.path());
    let plan_arg = plan.to_str().unwrap();
    let (code, stderr) = sweep_apply(d.path(), &["--plan", plan_arg, "--delete-untagged"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("without --delete-untagged"), "{stderr}");
    v["format_version"] = Value::from(99);
    fs::write(&plan, serde_json::to_vec(&v).unwrap()).unwrap();
    let (code, stderr) = sweep_apply(d.path(), &["--plan", plan_arg]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("format version 99"), "{stderr}");
    fs::write(&plan, b"{\"format_version\": 1, \"stor").unwrap();
    assert_eq!(sweep_apply(d.path(), &["--plan", plan_arg]).0, 2);
    assert_eq!(before, snapshot(d.path()));
}

/// A chain of 20,000 indexes, each the only child of the next, the top one
/// tagged: `verify` used to recurse once per level and died of a stack
/// overflow. It now stops at a depth limit with an error finding; report
/// (whose parse and mark are iterative) keeps the whole chain.
#[test]
fn deeply_nested_index_chain_is_not_a_stack_overflow() {
    use sha2::{Digest as _, Sha256};
    let d = copy_fixture();
    let v2 = d.path().join(V2);
    let (mut digest, _) = a_v1(d.path());
    let mut size = fs::metadata(blob_path(d.path(), &digest)).unwrap().len();
    let index = "application/vnd.oci.image.index.v1+json";
    for _ in 0..20_000 {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{index}","manifests":[{{"mediaType":"{index}","digest":"{digest}","size":{size}}}]}}"#
        );
        let hex: String = Sha256::digest(body.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        digest = format!("sha256:{hex}");
        size = body.len() as u64;
        let p = blob_path(d.path(), &digest);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, &body).unwrap();
        let rev = v2.join(format!("repositories/a/_manifests/revisions/sha256/{hex}"));
        fs::create_dir_all(&rev).unwrap();
        fs::write(rev.join("link"), &digest).unwrap();
    }
    let tag = tag_link(d.path(), "a", "deep");
    fs::create_dir_all(tag.parent().unwrap()).unwrap();
    fs::write(&tag, &digest).unwrap();
    let r = report_unchanged(d.path(), &["--delete-untagged"]);
    assert!(!garbage(&r).contains(&digest));
    let out = Command::new(env!("CARGO_BIN_EXE_regsweep"))
        .arg("verify")
        .arg(d.path())
        .args(["--format", "json", "--quiet"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"index_too_deep"), "{kinds:?}");
}

/// A root whose `docker/registry/v2/` holds nothing (a wrong root, a
/// restore that went elsewhere) is not a clean and whole registry: report,
/// verify and sweep fail with exit 2 and say so.
#[test]
fn nothing_under_v2_is_not_a_whole_registry() {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir_all(d.path().join(V2)).unwrap();
    for args in [&["report"][..], &["verify", "--rehash"][..], &["sweep"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_regsweep"))
            .args(args)
            .arg(d.path())
            .arg("--quiet")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("not a registry root"), "{args:?}: {stderr}");
    }
}
