//! `regsweep verify` and `regsweep inventory` on copies of the fixture tree
//! (written by the real reference registry), damaged one way per case.
//!
//! Each case checks the exact set of error findings (kind, repository,
//! digest) against an independent model of the tree (manifests parsed here),
//! the broken tags, the exit status, and that the storage is unchanged. The
//! `*_skopeo_*` test serves each damaged tree with the reference registry and
//! checks with the real client that exactly the broken tags fail to pull.
//! An object-store case runs the library over `object_store`'s in-memory
//! store (streamed rehash).

mod common;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const V2: &str = "docker/registry/v2";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/registry")
}

fn copy_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy_tree(&fixture(), dir.path());
    dir
}

fn v2(root: &Path) -> PathBuf {
    root.join(V2)
}

fn hex(d: &str) -> &str {
    d.strip_prefix("sha256:").unwrap()
}

fn blob_path(root: &Path, d: &str) -> PathBuf {
    let h = hex(d);
    v2(root).join(format!("blobs/sha256/{}/{h}/data", &h[..2]))
}

fn tag_link(root: &Path, repo: &str, tag: &str) -> PathBuf {
    v2(root).join(format!(
        "repositories/{repo}/_manifests/tags/{tag}/current/link"
    ))
}

fn layer_link(root: &Path, repo: &str, d: &str) -> PathBuf {
    v2(root).join(format!(
        "repositories/{repo}/_layers/sha256/{}/link",
        hex(d)
    ))
}

fn revision_link(root: &Path, repo: &str, d: &str) -> PathBuf {
    v2(root).join(format!(
        "repositories/{repo}/_manifests/revisions/sha256/{}/link",
        hex(d)
    ))
}

// ------------------------------------------------ an independent model ----

/// What a manifest references: (blobs, children).
fn refs_of(root: &Path, m: &str) -> (Vec<String>, Vec<String>) {
    let v: Value = serde_json::from_slice(&fs::read(blob_path(root, m)).unwrap()).unwrap();
    let ds = |k: &str| -> Vec<String> {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x["digest"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut blobs = ds("layers");
    if let Some(c) = v["config"]["digest"].as_str() {
        blobs.insert(0, c.to_string());
    }
    (blobs, ds("manifests"))
}

/// Repository → (tag → digest, revision-linked manifests), from the pristine fixture.
fn model() -> BTreeMap<String, (BTreeMap<String, String>, Vec<String>)> {
    let mut out = BTreeMap::new();
    let scenario: Value =
        serde_json::from_slice(&fs::read(fixture().with_extension("scenario.json")).unwrap())
            .unwrap();
    for r in scenario["repositories"].as_array().unwrap() {
        let r = r.as_str().unwrap();
        let revs = v2(&fixture()).join(format!("repositories/{r}/_manifests/revisions/sha256"));
        let mut manifests = Vec::new();
        for e in fs::read_dir(revs).unwrap() {
            let e = e.unwrap();
            if e.path().join("link").exists() {
                manifests.push(format!("sha256:{}", e.file_name().to_string_lossy()));
            }
        }
        manifests.sort();
        out.insert(r.to_string(), (BTreeMap::new(), manifests));
    }
    for t in scenario["tags"].as_array().unwrap() {
        let r = t["repository"].as_str().unwrap();
        out.get_mut(r).unwrap().0.insert(
            t["tag"].as_str().unwrap().to_string(),
            t["digest"].as_str().unwrap().to_string(),
        );
    }
    out
}

/// Every digest reachable from manifest `m` (itself included).
fn closure(m: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![m.to_string()];
    while let Some(d) = stack.pop() {
        if !seen.insert(d.clone()) {
            continue;
        }
        let (blobs, children) = refs_of(&fixture(), &d);
        seen.extend(blobs);
        stack.extend(children);
    }
    seen
}

/// Repositories with a revision-linked manifest that references `d` directly
/// (or, for a manifest digest, that link it).
fn users(d: &str) -> BTreeSet<String> {
    model()
        .into_iter()
        .filter(|(_, (_, ms))| {
            ms.iter()
                .any(|m| m == d || refs_of(&fixture(), m).0.iter().any(|b| b == d))
        })
        .map(|(r, _)| r)
        .collect()
}

/// Tags (repo:tag) whose closure contains `d`, optionally only in `repo`.
fn tags_reaching(d: &str, repo: Option<&str>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (r, (tags, _)) in model() {
        if repo.is_some_and(|x| x != r) {
            continue;
        }
        for (t, m) in tags {
            if closure(&m).contains(d) {
                out.insert(format!("{r}:{t}"));
            }
        }
    }
    out
}

fn all_tags() -> BTreeSet<String> {
    model()
        .into_iter()
        .flat_map(|(r, (tags, _))| tags.into_keys().map(move |t| format!("{r}:{t}")))
        .collect()
}

// --------------------------------------------------------- running ----

struct Run {
    code: i32,
    json: Value,
}

impl Run {
    /// (kind, repository, digest) of every error finding.
    fn errors(&self) -> BTreeSet<(String, String, String)> {
        self.findings("error")
    }

    fn findings(&self, severity: &str) -> BTreeSet<(String, String, String)> {
        self.json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] == severity)
            .map(|f| {
                (
                    f["kind"].as_str().unwrap().to_string(),
                    f["repository"].as_str().unwrap_or("").to_string(),
                    f["digest"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    fn find(&self, kind: &str) -> Value {
        self.json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} finding: {:#}", self.json["findings"]))
    }

    fn broken(&self) -> BTreeSet<String> {
        self.json["broken_tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                format!(
                    "{}:{}",
                    b["repository"].as_str().unwrap(),
                    b["tag"].as_str().unwrap()
                )
            })
            .collect()
    }
}

fn regsweep(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_regsweep"))
        .args(args)
        .output()
        .unwrap()
}

/// `verify --format json` plus `args`; checks the storage is unchanged.
fn verify(root: &Path, args: &[&str]) -> Run {
    let before = common::tree_fingerprint(root);
    let mut all = vec![
        "verify",
        root.to_str().unwrap(),
        "--format",
        "json",
        "--quiet",
    ];
    all.extend_from_slice(args);
    let out = regsweep(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}); stderr: {stderr}"));
    assert_eq!(
        common::diff_fingerprints(&before, &common::tree_fingerprint(root)),
        Vec::<String>::new(),
        "verify modified the storage"
    );
    let run = Run {
        code: out.status.code().expect("killed by a signal"),
        json,
    };
    assert_eq!(
        run.code,
        if run.errors().is_empty() { 0 } else { 1 },
        "exit status vs findings: {:#}",
        run.json
    );
    assert_eq!(run.json["summary"]["whole"], run.errors().is_empty());
    run
}

fn set<const N: usize>(items: [(&str, &str, &str); N]) -> BTreeSet<(String, String, String)> {
    items
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

fn per_repo(kind: &str, repos: &BTreeSet<String>, d: &str) -> BTreeSet<(String, String, String)> {
    repos
        .iter()
        .map(|r| (kind.to_string(), r.clone(), d.to_string()))
        .collect()
}

/// The tag `a:v1`: its manifest and the digests it references.
fn a_v1() -> (String, Vec<String>) {
    let m = model()["a"].0["v1"].clone();
    let (blobs, _) = refs_of(&fixture(), &m);
    (m, blobs)
}

// ------------------------------------------------------------ cases ----

#[test]
fn pristine_fixture_is_whole() {
    let d = copy_fixture();
    for args in [&[][..], &["--rehash"][..]] {
        let r = verify(d.path(), args);
        assert_eq!(r.code, 0, "{:#}", r.json);
        assert_eq!(r.json["findings"], Value::Array(vec![]));
        assert!(r.broken().is_empty());
        assert_eq!(r.json["format_version"], 1);
        assert_eq!(r.json["summary"]["tags"], 8);
    }
    let r = verify(d.path(), &["--rehash"]);
    assert_eq!(
        r.json["summary"]["blobs_hashed"],
        r.json["summary"]["blobs"]
    );
    // Text output says so too.
    let out = regsweep(&["verify", d.path().to_str().unwrap(), "--quiet"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Whole"));
}

#[test]
fn layer_with_one_byte_flipped_is_found_only_by_rehash() {
    let d = copy_fixture();
    let (_, refs) = a_v1();
    let layer = &refs[1];
    let p = blob_path(d.path(), layer);
    let mut bytes = fs::read(&p).unwrap();
    bytes[0] ^= 0x01;
    fs::write(&p, &bytes).unwrap();
    assert_eq!(
        verify(d.path(), &[]).code,
        0,
        "same size: invisible without --rehash"
    );
    let r = verify(d.path(), &["--rehash"]);
    assert_eq!(
        r.errors(),
        per_repo("digest_mismatch", &users(layer), layer)
    );
    let f = r.find("digest_mismatch");
    assert_eq!(
        f["path"],
        format!("blobs/sha256/{}/{}/data", &hex(layer)[..2], hex(layer))
    );
    let actual = common::sha256_hex_of(&bytes);
    assert!(f["message"].as_str().unwrap().contains(&actual), "{f}");
    assert_eq!(r.broken(), tags_reaching(layer, None));
    assert!(r.broken().contains("a:v1"));
}

#[test]
fn layer_of_another_length_is_a_size_mismatch() {
    let d = copy_fixture();
    let (_, refs) = a_v1();
    let layer = &refs[1];
    let p = blob_path(d.path(), layer);
    let mut bytes = fs::read(&p).unwrap();
    bytes.push(b'!');
    fs::write(&p, &bytes).unwrap();
    let r = verify(d.path(), &[]);
    assert_eq!(r.errors(), per_repo("size_mismatch", &users(layer), layer));
    let r = verify(d.path(), &["--rehash"]);
    let mut want = per_repo("size_mismatch", &users(layer), layer);
    want.extend(per_repo("digest_mismatch", &users(layer), layer));
    assert_eq!(r.errors(), want);
    assert_eq!(r.broken(), tags_reaching(layer, None));
}

#[test]
fn deleted_config_blob() {
    let d = copy_fixture();
    let m = model()["a/b"].0["latest"].clone();
    let config = refs_of(&fixture(), &m).0[0].clone();
    fs::remove_file(blob_path(d.path(), &config)).unwrap();
    let r = verify(d.path(), &[]);
    assert_eq!(
        r.errors(),
        per_repo("missing_blob", &users(&config), &config)
    );
    assert_eq!(r.broken(), tags_reaching(&config, None));
    assert!(r.broken().contains("a/b:latest"));
}

#[test]
fn deleted_layers_link() {
    let d = copy_fixture();
    let m = model()["team-a/svc/web"].0["stable"].clone();
    let layer = refs_of(&fixture(), &m).0[1].clone();
    fs::remove_file(layer_link(d.path(), "team-a/svc/web", &layer)).unwrap();
    let r = verify(d.path(), &[]);
    assert_eq!(
        r.errors(),
        set([("missing_layer_link", "team-a/svc/web", &layer)])
    );
    let f = r.find("missing_layer_link");
    assert_eq!(
        f["path"],
        format!(
            "repositories/team-a/svc/web/_layers/sha256/{}/link",
            hex(&layer)
        )
    );
    assert_eq!(r.broken(), tags_reaching(&layer, Some("team-a/svc/web")));
}

#[test]
fn truncated_manifest() {
    let d = copy_fixture();
    let (m, _) = a_v1();
    let p = blob_path(d.path(), &m);
    let bytes = fs::read(&p).unwrap();
    fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let r = verify(d.path(), &[]);
    assert_eq!(r.errors(), per_repo("unparseable_manifest", &users(&m), &m));
    assert_eq!(r.broken(), tags_reaching(&m, None));
}

#[test]
fn manifest_too_large_to_read_breaks_its_tags() {
    // Regression: a manifest the graph could not read at all gave no finding
    // (its scan problem was dropped as one verify re-derives) and broke no
    // tag, with or without --rehash.
    let d = copy_fixture();
    let (m, _) = a_v1();
    let p = blob_path(d.path(), &m);
    let mut bytes = fs::read(&p).unwrap();
    bytes.resize(bytes.len() + (4 << 20), b' ');
    fs::write(&p, &bytes).unwrap();
    for args in [&[][..], &["--rehash"][..]] {
        let r = verify(d.path(), args);
        assert_eq!(r.errors(), per_repo("manifest_too_large", &users(&m), &m));
        assert_eq!(r.broken(), tags_reaching(&m, None));
    }
}

#[test]
fn index_child_without_revision_link() {
    let d = copy_fixture();
    let index = model()["multi/oci"].0["latest"].clone();
    let child = refs_of(&fixture(), &index).1[0].clone();
    fs::remove_file(revision_link(d.path(), "multi/oci", &child)).unwrap();
    let r = verify(d.path(), &[]);
    assert_eq!(
        r.errors(),
        set([("missing_index_child", "multi/oci", &child)])
    );
    assert!(r.find("missing_index_child")["message"]
        .as_str()
        .unwrap()
        .contains(&index));
    assert_eq!(r.broken(), BTreeSet::from(["multi/oci:latest".to_string()]));
}

#[test]
fn tag_naming_a_missing_manifest() {
    let d = copy_fixture();
    let gone = format!("sha256:{}", "0".repeat(64));
    fs::write(tag_link(d.path(), "a", "v1"), &gone).unwrap();
    let r = verify(d.path(), &[]);
    assert_eq!(r.errors(), set([("dangling_tag", "a", &gone)]));
    assert_eq!(r.find("dangling_tag")["tag"], "v1");
    assert_eq!(r.broken(), BTreeSet::from(["a:v1".to_string()]));
}

#[test]
fn tag_naming_a_manifest_without_revision_link() {
    let d = copy_fixture();
    let other = model()["a/b"].0["latest"].clone();
    fs::write(tag_link(d.path(), "a", "v1"), &other).unwrap();
    let r = verify(d.path(), &[]);
    // Its layers are not linked in `a` either: each is named.
    let mut want = set([("dangling_tag", "a", &other)]);
    let (blobs, _) = refs_of(&fixture(), &other);
    let linked_in_a: BTreeSet<String> = blobs
        .iter()
        .filter(|b| layer_link(&fixture(), "a", b).exists())
        .cloned()
        .collect();
    for b in blobs.iter().filter(|b| !linked_in_a.contains(*b)) {
        want.insert(("missing_layer_link".into(), "a".into(), b.clone()));
    }
    assert_eq!(r.errors(), want);
    assert_eq!(r.broken(), BTreeSet::from(["a:v1".to_string()]));
}

#[test]
fn layers_link_that_disagrees_with_its_path() {
    let d = copy_fixture();
    let (_, refs) = a_v1();
    let link = layer_link(d.path(), "a", &refs[1]);
    fs::write(&link, &refs[0]).unwrap();
    let r = verify(d.path(), &[]);
    assert_eq!(r.errors(), set([("bad_link", "a", &refs[1])]));
    let f = r.find("bad_link");
    assert_eq!(
        f["path"],
        format!("repositories/a/_layers/sha256/{}/link", hex(&refs[1]))
    );
    assert!(f["message"].as_str().unwrap().contains("disagrees"));
    assert!(f["remedy"].as_str().unwrap().contains("link"));
    assert_eq!(r.broken(), tags_reaching(&refs[1], Some("a")));
}

#[test]
fn stray_temp_file_is_a_note() {
    let d = copy_fixture();
    let (_, refs) = a_v1();
    let dir = layer_link(d.path(), "a", &refs[0]);
    fs::write(dir.with_file_name("link.1234-5678.tmp"), &refs[0]).unwrap();
    let r = verify(d.path(), &[]);
    assert_eq!(r.code, 0);
    let notes = r.findings("info");
    assert!(
        notes.contains(&("stray_temp_file".into(), "a".into(), refs[0].clone())),
        "{notes:?}"
    );
    assert!(r.find("stray_temp_file")["path"]
        .as_str()
        .unwrap()
        .ends_with("link.1234-5678.tmp"));
}

#[test]
fn inventory_then_verify_against() {
    let d = copy_fixture();
    let inv = d.path().join("inventory.json");
    let before = common::tree_fingerprint(&v2(d.path()));
    let out = regsweep(&[
        "inventory",
        d.path().to_str().unwrap(),
        "--output",
        inv.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        common::diff_fingerprints(&before, &common::tree_fingerprint(&v2(d.path()))).is_empty()
    );
    let doc: Value = serde_json::from_slice(&fs::read(&inv).unwrap()).unwrap();
    assert_eq!(doc["repositories"].as_array().unwrap().len(), 6);
    assert_eq!(doc["blobs"].as_object().unwrap().len(), 47);
    let inv_arg = inv.to_str().unwrap();

    // Same tree: whole, nothing missing or extra.
    let r = verify(d.path(), &["--against", inv_arg]);
    assert_eq!(r.code, 0, "{:#}", r.json);
    assert_eq!(r.json["findings"], Value::Array(vec![]));

    // A tag re-pointed (to a manifest of the same repository).
    let api = model()["team-a/svc/api"].0.clone();
    fs::write(tag_link(d.path(), "team-a/svc/api", "latest"), &api["1.0"]).unwrap();
    let r = verify(d.path(), &["--against", inv_arg]);
    assert_eq!(
        r.errors(),
        set([("inventory_tag_changed", "team-a/svc/api", &api["latest"])])
    );
    let f = r.find("inventory_tag_changed");
    assert_eq!(f["tag"], "latest");
    assert!(f["message"].as_str().unwrap().contains(&api["1.0"]));

    // A repository directory deleted: a finding for each of its tags.
    fs::write(
        tag_link(d.path(), "team-a/svc/api", "latest"),
        &api["latest"],
    )
    .unwrap();
    fs::remove_dir_all(v2(d.path()).join("repositories/multi/docker")).unwrap();
    let r = verify(d.path(), &["--against", inv_arg]);
    assert_eq!(r.code, 1);
    let (tags, manifests) = model()["multi/docker"].clone();
    let missing: BTreeSet<(String, String, String)> = r
        .errors()
        .into_iter()
        .filter(|f| f.0 == "inventory_tag_missing")
        .collect();
    assert_eq!(
        missing,
        per_repo(
            "inventory_tag_missing",
            &["multi/docker".into()].into(),
            &tags["latest"]
        )
    );
    assert_eq!(tags.len(), 1);
    let gone: BTreeSet<String> = r
        .errors()
        .into_iter()
        .filter(|f| f.0 == "inventory_manifest_missing")
        .map(|f| f.2)
        .collect();
    assert_eq!(gone, manifests.into_iter().collect());
    // Blobs are global: still there, so no blob findings.
    assert!(r
        .errors()
        .iter()
        .all(|f| !f.0.starts_with("inventory_blob")));

    // A bad inventory is a fatal error (exit 2).
    fs::write(&inv, b"{\"format_version\": 9}").unwrap();
    let out = regsweep(&["verify", d.path().to_str().unwrap(), "--against", inv_arg]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn object_store_rehash_streams_and_finds_a_flipped_byte() {
    use object_store::{memory::InMemory, path::Path as ObjPath, ObjectStore, PutPayload};
    use regsweep::storage::object::ObjectStorage;
    use std::sync::Arc;

    let mem = Arc::new(InMemory::new());
    let (_, refs) = a_v1();
    let flipped = &refs[1];
    let root = fixture();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let mut bytes = fs::read(&p).unwrap();
            if p == blob_path(&root, flipped) {
                bytes[0] ^= 0x80;
            }
            let key = format!("reg/{}", p.strip_prefix(&root).unwrap().display());
            futures::executor::block_on(mem.put(&ObjPath::from(key), PutPayload::from(bytes)))
                .unwrap();
        }
    }
    let s = ObjectStorage::new(mem, "reg", "memory://").unwrap();
    let progress = regsweep::progress::Progress::hidden();
    let mut opts = regsweep::verify::VerifyOptions::default();
    let v = regsweep::verify::verify(&s, &opts, &progress).unwrap();
    assert!(v.is_whole(), "{:#?}", v.findings);
    opts.rehash = true;
    let v = regsweep::verify::verify(&s, &opts, &progress).unwrap();
    let errs: BTreeSet<(String, String)> = v
        .findings
        .iter()
        .filter(|f| f.severity == regsweep::problem::Severity::Error)
        .map(|f| (f.repository.clone().unwrap(), f.digest.clone().unwrap()))
        .collect();
    let want: BTreeSet<(String, String)> = users(flipped)
        .into_iter()
        .map(|r| (r, flipped.clone()))
        .collect();
    assert_eq!(errs, want);
    assert_eq!(v.checked.hashed_blobs, 47);
}

// ------------------------------------------- the real client as oracle ----

/// Serves `root` with the reference registry and returns the tags that
/// `skopeo copy --all` fails to pull.
fn unpullable(root: &Path, work: &Path) -> BTreeSet<String> {
    common::require(&["docker-registry", "skopeo"]);
    let port = common::free_port();
    let config = work.join("config.yml");
    fs::write(
        &config,
        common::registry_config(port, common::Backend::Fs, Some(root), None),
    )
    .unwrap();
    let mut reg = common::Daemon::spawn(
        "docker-registry",
        &["docker-registry", "serve", config.to_str().unwrap()],
        &work.join("registry.log"),
    );
    reg.wait_ready(port, "/v2/", Duration::from_secs(60))
        .expect("registry did not start");
    let policy = work.join("policy.json");
    fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let mut failed = BTreeSet::new();
    for (i, t) in all_tags().iter().enumerate() {
        let (repo, tag) = t.rsplit_once(':').unwrap();
        let dest = work.join(format!("oci-{i}"));
        let o = common::run(
            Command::new("skopeo")
                .arg("--policy")
                .arg(&policy)
                .args(["copy", "-q", "--all", "--src-tls-verify=false"])
                .arg(format!("docker://127.0.0.1:{port}/{repo}:{tag}"))
                .arg(format!("oci:{}:{tag}", dest.display())),
            Duration::from_secs(600),
        );
        if !o.status.success() {
            failed.insert(t.clone());
        }
        let _ = fs::remove_dir_all(&dest);
    }
    failed
}

#[test]
fn broken_tags_are_exactly_those_skopeo_cannot_pull() {
    type Damage = Box<dyn Fn(&Path)>;
    let (a_manifest, a_refs) = a_v1();
    let ab_config = refs_of(&fixture(), &model()["a/b"].0["latest"]).0[0].clone();
    let web_layer = refs_of(&fixture(), &model()["team-a/svc/web"].0["stable"]).0[1].clone();
    let oci_index = model()["multi/oci"].0["latest"].clone();
    let oci_child = refs_of(&fixture(), &oci_index).1[0].clone();
    let cases: Vec<(&str, Damage)> = vec![
        ("pristine", Box::new(|_: &Path| {})),
        ("layer byte flipped", {
            let l = a_refs[1].clone();
            Box::new(move |root: &Path| {
                let p = blob_path(root, &l);
                let mut b = fs::read(&p).unwrap();
                b[0] ^= 1;
                fs::write(&p, b).unwrap();
            })
        }),
        (
            "config blob deleted",
            Box::new(move |root: &Path| {
                fs::remove_file(blob_path(root, &ab_config)).unwrap();
            }),
        ),
        (
            "_layers link deleted",
            Box::new(move |root: &Path| {
                fs::remove_file(layer_link(root, "team-a/svc/web", &web_layer)).unwrap();
            }),
        ),
        (
            "manifest truncated",
            Box::new(move |root: &Path| {
                let p = blob_path(root, &a_manifest);
                let b = fs::read(&p).unwrap();
                fs::write(&p, &b[..b.len() / 2]).unwrap();
            }),
        ),
        (
            "index child unlinked",
            Box::new(move |root: &Path| {
                fs::remove_file(revision_link(root, "multi/oci", &oci_child)).unwrap();
            }),
        ),
        (
            "tag names a missing manifest",
            Box::new(|root: &Path| {
                fs::write(
                    tag_link(root, "a", "v1"),
                    format!("sha256:{}", "0".repeat(64)),
                )
                .unwrap();
            }),
        ),
    ];
    for (name, damage) in cases {
        let d = copy_fixture();
        let work = tempfile::tempdir().unwrap();
        damage(d.path());
        let r = verify(d.path(), &["--rehash"]);
        let failed = unpullable(d.path(), work.path());
        assert_eq!(r.broken(), failed, "{name}: broken tags vs skopeo failures");
        assert_eq!(failed.is_empty(), name == "pristine", "{name}");
    }
}

// ------------------------------------------------- an S3 server (moto) ----

/// One damage of the S3 case: objects to replace (`Some`) or delete (`None`),
/// whether to `--rehash`, and the expected error findings and broken tags.
struct S3Damage {
    name: &'static str,
    ops: Vec<(String, Option<Vec<u8>>)>,
    rehash: bool,
    errors: BTreeSet<(String, String, String)>,
    broken: BTreeSet<String>,
}

/// `verify` over the reference registry's S3 storage in a moto bucket: the
/// pristine store is whole with `--rehash`; then, one at a time (injected
/// through the S3 API and restored afterwards), each kind of damage of the
/// filesystem cases gives exactly the expected findings and broken tags, and
/// the broken tags are exactly those skopeo cannot pull.
#[test]
fn s3_storage_written_by_the_reference_registry() {
    let env = common::Env::start(common::Backend::S3, common::SEED);
    let s3 = env.s3_port.unwrap();
    let run = |extra: &[&str]| -> Run {
        let storage = env.storage_arg();
        let mut args = vec!["verify", storage.as_str(), "--format", "json", "-q"];
        args.extend_from_slice(extra);
        let out = Command::new(env!("CARGO_BIN_EXE_regsweep"))
            .args(&args)
            .envs(env.regsweep_env())
            .output()
            .unwrap();
        let json: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
        let run = Run {
            code: out.status.code().unwrap(),
            json,
        };
        assert_eq!(
            run.code,
            if run.errors().is_empty() { 0 } else { 1 },
            "exit status vs findings: {:#}",
            run.json
        );
        run
    };
    let before = env.bucket_listing();
    let r = run(&["--rehash"]);
    assert_eq!(r.code, 0, "{:#}", r.json["findings"]);
    assert!(r.errors().is_empty() && r.broken().is_empty());
    assert_eq!(before, env.bucket_listing(), "verify modified the bucket");

    // Objects are read and damaged through the S3 API (signed requests;
    // moto refuses anonymous writes).
    use object_store::{aws::AmazonS3Builder, path::Path as ObjPath, ObjectStore};
    let store = AmazonS3Builder::new()
        .with_bucket_name(common::BUCKET)
        .with_region("us-east-1")
        .with_endpoint(format!("http://127.0.0.1:{s3}"))
        .with_allow_http(true)
        .with_access_key_id(common::ACCESS_KEY)
        .with_secret_access_key(common::SECRET_KEY)
        .build()
        .unwrap();
    let base = format!("{}/{V2}/", common::S3_ROOT.trim_start_matches('/'));
    let obj = |k: &str| ObjPath::from(format!("{base}{k}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let get = |k: &str| -> Vec<u8> {
        rt.block_on(async { store.get(&obj(k)).await.unwrap().bytes().await.unwrap() })
            .to_vec()
    };
    let put = |k: &str, b: Vec<u8>| {
        rt.block_on(store.put(&obj(k), b.into())).unwrap();
    };
    let del = |k: &str| {
        rt.block_on(store.delete(&obj(k))).unwrap();
    };
    let blob_key = |d: &str| format!("blobs/sha256/{}/{}/data", &hex(d)[..2], hex(d));
    let layer_key = |r: &str, d: &str| format!("repositories/{r}/_layers/sha256/{}/link", hex(d));
    let rev_key = |r: &str, d: &str| {
        format!(
            "repositories/{r}/_manifests/revisions/sha256/{}/link",
            hex(d)
        )
    };
    let tag_key = |r: &str, t: &str| format!("repositories/{r}/_manifests/tags/{t}/current/link");

    // The model, as for the fixture: revision-linked manifests per repository
    // (from the bucket listing) and what each references (parsed here).
    let mut linked: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for k in before.keys() {
        let Some(rest) = k.strip_prefix(&format!("{base}repositories/")) else {
            continue;
        };
        if let Some((repo, tail)) = rest.split_once("/_manifests/revisions/sha256/") {
            if let Some(h) = tail.strip_suffix("/link") {
                linked
                    .entry(repo.to_string())
                    .or_default()
                    .insert(format!("sha256:{h}"));
            }
        }
    }
    let parsed: BTreeMap<String, common::Parsed> = linked
        .values()
        .flatten()
        .map(|m| (m.clone(), common::parse_manifest(&get(&blob_key(m)))))
        .collect();
    let closure = |m: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![m.to_string()];
        while let Some(d) = stack.pop() {
            if !seen.insert(d.clone()) {
                continue;
            }
            let p = &parsed[&d];
            if p.is_index {
                stack.extend(p.refs.iter().cloned());
            } else {
                seen.extend(p.refs.iter().cloned());
            }
        }
        seen
    };
    let users = |d: &str| -> BTreeSet<String> {
        linked
            .iter()
            .filter(|(_, ms)| {
                ms.iter().any(|m| {
                    m == d || (!parsed[m].is_index && parsed[m].refs.iter().any(|b| b == d))
                })
            })
            .map(|(r, _)| r.clone())
            .collect()
    };
    let tags = env.tags();
    let tags_reaching = |d: &str, repo: Option<&str>| -> BTreeSet<String> {
        tags.iter()
            .filter(|(r, _, m)| repo.is_none_or(|x| x == r) && closure(m).contains(d))
            .map(|(r, t, _)| format!("{r}:{t}"))
            .collect()
    };
    let errs = |items: Vec<(&str, &str, &str)>| -> BTreeSet<(String, String, String)> {
        items
            .into_iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect()
    };

    // Targets: image tags in two repositories, and an index tag.
    let images: Vec<&(String, String, String)> =
        tags.iter().filter(|t| !parsed[&t.2].is_index).collect();
    let (r1, t1, m1) = images[0].clone();
    let (r2, _, m2) = images
        .iter()
        .find(|t| t.0 != r1)
        .map(|t| (*t).clone())
        .expect("two repositories with image tags");
    let l1 = parsed[&m1].refs[1].clone();
    let config2 = parsed[&m2].refs[0].clone();
    let l2 = parsed[&m2].refs[1].clone();
    let (ri, _, index) = tags
        .iter()
        .find(|t| parsed[&t.2].is_index)
        .cloned()
        .expect("an index tag");
    let child = parsed[&index]
        .refs
        .iter()
        .find(|c| !tags.iter().any(|t| t.0 == ri && &t.2 == *c))
        .cloned()
        .expect("an untagged child");
    let gone = format!("sha256:{}", "0".repeat(64));

    let flipped = {
        let mut b = get(&blob_key(&l1));
        b[0] ^= 1;
        b
    };
    let truncated = {
        let b = get(&blob_key(&m1));
        b[..b.len() / 2].to_vec()
    };
    let cases = vec![
        S3Damage {
            name: "layer byte flipped",
            ops: vec![(blob_key(&l1), Some(flipped))],
            rehash: true,
            errors: per_repo("digest_mismatch", &users(&l1), &l1),
            broken: tags_reaching(&l1, None),
        },
        S3Damage {
            name: "config blob deleted",
            ops: vec![(blob_key(&config2), None)],
            rehash: false,
            errors: per_repo("missing_blob", &users(&config2), &config2),
            broken: tags_reaching(&config2, None),
        },
        S3Damage {
            name: "_layers link deleted",
            ops: vec![(layer_key(&r2, &l2), None)],
            rehash: false,
            errors: errs(vec![("missing_layer_link", &r2, &l2)]),
            broken: tags_reaching(&l2, Some(&r2)),
        },
        S3Damage {
            name: "manifest truncated",
            ops: vec![(blob_key(&m1), Some(truncated))],
            rehash: false,
            errors: per_repo("unparseable_manifest", &users(&m1), &m1),
            broken: tags_reaching(&m1, None),
        },
        S3Damage {
            name: "index child unlinked",
            ops: vec![(rev_key(&ri, &child), None)],
            rehash: false,
            errors: errs(vec![("missing_index_child", &ri, &child)]),
            broken: tags_reaching(&child, Some(&ri)),
        },
        S3Damage {
            name: "tag names a missing manifest",
            ops: vec![(tag_key(&r1, &t1), Some(gone.clone().into_bytes()))],
            rehash: false,
            errors: errs(vec![("dangling_tag", &r1, &gone)]),
            broken: BTreeSet::from([format!("{r1}:{t1}")]),
        },
    ];

    // The real client as oracle: the tags `skopeo copy --all` cannot pull.
    let policy = env.dir.path().join("verify-policy.json");
    fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let unpullable = || -> BTreeSet<String> {
        let mut failed = BTreeSet::new();
        for (i, (repo, tag, _)) in tags.iter().enumerate() {
            let dest = env.dir.path().join(format!("verify-oci-{i}"));
            let o = common::run(
                Command::new("skopeo")
                    .arg("--policy")
                    .arg(&policy)
                    .args(["copy", "-q", "--all", "--src-tls-verify=false"])
                    .arg(format!("docker://127.0.0.1:{}/{repo}:{tag}", env.port))
                    .arg(format!("oci:{}:{tag}", dest.display())),
                Duration::from_secs(600),
            );
            if !o.status.success() {
                failed.insert(format!("{repo}:{tag}"));
            }
            let _ = fs::remove_dir_all(&dest);
        }
        failed
    };

    for case in cases {
        let name = case.name;
        assert!(!case.errors.is_empty() && !case.broken.is_empty(), "{name}");
        let originals: Vec<(String, Vec<u8>)> =
            case.ops.iter().map(|(k, _)| (k.clone(), get(k))).collect();
        for (k, op) in case.ops {
            match op {
                Some(b) => put(&k, b),
                None => del(&k),
            }
        }
        if case.rehash {
            assert_eq!(run(&[]).code, 0, "{name}: invisible without --rehash");
        }
        let damaged = env.bucket_listing();
        let r = run(if case.rehash {
            &["--rehash"][..]
        } else {
            &[][..]
        });
        assert_eq!(
            damaged,
            env.bucket_listing(),
            "{name}: verify modified the bucket"
        );
        assert_eq!(r.code, 1, "{name}");
        assert_eq!(r.errors(), case.errors, "{name}: findings");
        assert_eq!(r.broken(), case.broken, "{name}: broken tags");
        assert_eq!(unpullable(), case.broken, "{name}: skopeo failures");
        for (k, b) in originals {
            put(&k, b);
        }
        let r = run(&[]);
        assert_eq!(r.code, 0, "{name} restored: {:#}", r.json["findings"]);
    }
}
