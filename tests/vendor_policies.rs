//! Vendor retention policies (`prune --policy` in ECR's format, and
//! `--keep-refs`) against the real reference registry on a filesystem:
//! images pushed through the registry's API, their link times set as the
//! registry would have written them had the pushes been spread over weeks;
//! the preview is applied from its plan file and then every kept tag pulls
//! with skopeo, the removed ones answer 404, and the bytes that left
//! storage are the preview's. Invalid policy files in every format are
//! refused naming the file, the rule and the field, with the storage
//! untouched.

mod common;

use common::prune::*;
use common::sweep::*;
use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

const DAY: u64 = 86_400;

/// The tags of [`REPO`] a preview removes.
fn removed_tags(p: &serde_json::Value) -> BTreeSet<String> {
    p["tags_removed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["repository"] == REPO)
        .map(|t| s(&t["tag"]))
        .collect()
}

/// Sets the modification time of `path` to `days` ago.
fn set_age(path: &Path, days: u64) {
    let t = SystemTime::now() - Duration::from_secs(days * DAY);
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(t))
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
}

/// Dates the push of `digest` in `repo` (its revision link and manifest
/// blob) and the assignment of `tags` `days` ago.
fn pushed_days_ago(e: &Env, repo: &str, digest: &str, tags: &[&str], days: u64) {
    let root = e.root.as_ref().unwrap().join(V2);
    let hex = &digest["sha256:".len()..];
    let manifests = root.join(format!("repositories/{repo}/_manifests"));
    set_age(
        &manifests.join(format!("revisions/sha256/{hex}/link")),
        days,
    );
    set_age(
        &root.join(format!("blobs/sha256/{}/{hex}/data", &hex[..2])),
        days,
    );
    for t in tags {
        let tag = manifests.join(format!("tags/{t}"));
        set_age(&tag.join("current/link"), days);
        set_age(&tag.join(format!("index/sha256/{hex}/link")), days);
    }
}

/// Pushes `v1`..`v5` (v1 signed, with an SBOM referrer) after a first `v5`
/// that the last push leaves untagged; v1 40 days old, v2 30, v3 20, v4 10,
/// v5 1, the untagged one 5. Returns the versions and the untagged digest.
fn spread_pushes(e: &Env) -> (Versions, String) {
    let base = e.push_blob(REPO, &vec![b'c'; 4000]);
    let first_v5 = push_image(e, REPO, "v5", &base, "v5-first");
    let v = push_versions(e, REPO, 5, "v");
    for (x, days) in v.versions.iter().zip([40, 30, 20, 10, 1]) {
        pushed_days_ago(e, REPO, &x.digest, &[&x.tag], days);
    }
    pushed_days_ago(e, REPO, &first_v5, &[], 5);
    (v, first_v5)
}

/// Rule 1 selects v1 (and so protects it from the rules below) without
/// expiring it; rule 2 keeps the two newest `v*` images and expires v2
/// and v3; rule 3 expires untagged images older than a day.
const LIFECYCLE: &str = r#"{"rules": [
  {"rulePriority": 1, "description": "keep the first release",
   "selection": {"tagStatus": "tagged", "tagPatternList": ["v1"],
                 "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 365},
   "action": {"type": "expire"}},
  {"rulePriority": 2, "description": "two newest releases",
   "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"],
                 "countType": "imageCountMoreThan", "countNumber": 2},
   "action": {"type": "expire"}},
  {"rulePriority": 3, "description": "untagged after a day",
   "selection": {"tagStatus": "untagged",
                 "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1},
   "action": {"type": "expire"}}]}"#;

#[test]
fn fs_ecr_lifecycle_policy_leaves_exactly_the_expected_tags() {
    let mut e = Env::start(Backend::Fs, SEED);
    let (v, first_v5) = spread_pushes(&e);
    let file = e.dir.path().join("ecr.json");
    fs::write(&file, LIFECYCLE).unwrap();
    let f = file.to_str().unwrap().to_string();

    // --explain names the rule that decided each image, in ECR's words.
    let explained = cmd(&e, "prune", &["--policy", &f, "--explain"], 0);
    let text = format!("{}{}", explained.stdout, explained.stderr);
    assert!(text.contains("ecr rule 2 (imageCountMoreThan 2)"), "{text}");

    let p = preview_then_apply(&mut e, "prune", &["--policy", &f]);
    let removed = removed_tags(&p);
    assert_eq!(removed, BTreeSet::from(["v2".into(), "v3".into()]));
    let manifests = set_of(&p, "manifests_removed", &["repository", "digest"]);
    for d in [&first_v5, &v.versions[1].digest, &v.versions[2].digest] {
        assert!(
            manifests.contains(&vec![REPO.to_string(), d.clone()]),
            "{d}"
        );
    }
    let ours = manifests.iter().filter(|m| m[0] == REPO).count();
    assert_eq!(ours, 3, "{manifests:?}");
    // v1 stays (selected by rule 1), so do its signature and referrer.
    for reference in [&v.versions[0].tag, &v.signature.tag, &v.referrer] {
        assert_eq!(manifest_status(&e, REPO, reference), 200, "{reference}");
    }
    let reason = |tag: &str| -> String {
        p["kept"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["repository"] == REPO && k["tag"] == tag)
            .map(|k| k["reason"].to_string())
            .unwrap_or_else(|| panic!("{tag} not among the kept: {}", p["kept"]))
    };
    assert!(reason("v1").contains("ecr rule 1"), "{}", reason("v1"));
    assert!(reason("v4").contains("ecr rule 2"), "{}", reason("v4"));
}

#[test]
fn fs_keep_refs_keeps_images_in_use_whatever_the_policy() {
    let mut e = Env::start(Backend::Fs, SEED);
    let (v, _) = spread_pushes(&e);
    let file = e.dir.path().join("ecr.json");
    fs::write(
        &file,
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
    )
    .unwrap();
    // As `kubectl get pods -A -o jsonpath='{..image}'` prints them: one
    // line, separated by spaces, with the registry host; and by digest.
    let refs = e.dir.path().join("in-use.txt");
    fs::write(
        &refs,
        format!(
            "registry.example.com:5000/{REPO}:v2 docker.io/library/nginx:1.27\n# by digest\n{REPO}@{}\n",
            v.versions[0].digest
        ),
    )
    .unwrap();
    let (f, r) = (file.to_str().unwrap(), refs.to_str().unwrap());
    let p = preview_then_apply(&mut e, "prune", &["--policy", f, "--keep-refs", r]);
    let removed = removed_tags(&p);
    assert_eq!(removed, BTreeSet::from(["v3".into(), "v4".into()]));
    for tag in ["v1", "v2"] {
        let k = p["kept"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["repository"] == REPO && k["tag"] == tag)
            .unwrap_or_else(|| panic!("{tag}: {}", p["kept"]));
        let line = if tag == "v2" {
            "in-use.txt:1"
        } else {
            "in-use.txt:3"
        };
        let why = s(&k["reason"]);
        assert!(
            why.starts_with("kept: in use") && why.contains(line),
            "{tag}: {k}"
        );
    }
    assert_eq!(manifest_status(&e, REPO, &v.signature.tag), 200);
}

#[test]
fn invalid_policy_files_name_file_rule_and_field_and_touch_nothing() {
    let e = Env::start(Backend::Fs, SEED);
    spread_pushes(&e);
    let before = e.content_snapshot();
    let cases = [
        (
            "ecr.json",
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPatternList":["a*b*c*d*e*f"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            "ecr",
            "tagPatternList",
        ),
        (
            "harbor.json",
            r#"{"algorithm":"or","rules":[{"action":"retain","template":"latestPushedK","params":{"latestPushedK":"ten"},"tag_selectors":[{"kind":"doublestar","decoration":"matches","pattern":"**"}],"scope_selectors":{"repository":[{"kind":"doublestar","decoration":"repoMatches","pattern":"**"}]}}]}"#,
            "harbor",
            "latestPushedK",
        ),
        (
            "zot.json",
            r#"{"storage":{"retention":{"policies":[{"repositories":["**"],"keepTags":[{"patterns":["v1"],"pulledWithin":"7d"}]}]}}}"#,
            "zot",
            "pulledWithin",
        ),
        (
            "gitlab.yml",
            "keep_n: 5\nolder_than: 14d\nname_regex_delete: '*'\n",
            "gitlab",
            "name_regex_delete",
        ),
        (
            "policy.yaml",
            "rules:\n  - repo: app/.*\n    keep_lats: 3\n",
            "regsweep",
            "keep_lats",
        ),
    ];
    for (name, text, format, field) in cases {
        let file = e.dir.path().join(name);
        fs::write(&file, text).unwrap();
        let f = file.to_str().unwrap();
        for extra in [&[][..], &["--policy-format", format][..]] {
            let mut args = vec!["--policy", f];
            args.extend_from_slice(extra);
            let o = cmd(&e, "prune", &args, 2);
            assert!(o.stderr.contains(name), "{name}: {}", o.stderr);
            assert!(o.stderr.contains(field), "{name}: {}", o.stderr);
            if format != "gitlab" {
                assert!(o.stderr.contains("rule 1"), "{name}: {}", o.stderr);
            }
        }
        // --apply refuses the same way.
        let o = cmd(&e, "prune", &["--policy", f, "--apply"], 2);
        assert!(o.stderr.contains(field), "{name}: {}", o.stderr);
    }
    // A binary file and a file of no known format.
    let bin = e.dir.path().join("policy.bin");
    fs::write(&bin, [0u8, 159, 146, 150, 255]).unwrap();
    let o = cmd(&e, "prune", &["--policy", bin.to_str().unwrap()], 2);
    assert!(o.stderr.contains("policy.bin"), "{}", o.stderr);
    let odd = e.dir.path().join("odd.yaml");
    fs::write(&odd, "retain: everything\n").unwrap();
    let o = cmd(&e, "prune", &["--policy", odd.to_str().unwrap()], 2);
    assert!(o.stderr.contains("--policy-format"), "{}", o.stderr);
    assert_eq!(
        e.content_snapshot(),
        before,
        "a refused policy changed the storage"
    );
}
