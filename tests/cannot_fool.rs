//! Destructive commands that bad plans, bad logs and bad directories cannot
//! fool, on trees the reference registry wrote: an edited saved plan removes
//! nothing a fresh derivation does not justify (and says so with exit 1);
//! a key that is not one of the registry layout is refused before anything
//! runs; `--grace` at apply time is the stricter of it and the plan's; a
//! binary file given as an access log is refused where pulls decide; a pull
//! by tag whose history times tie counts for every candidate; `restore`
//! moves nothing out of a directory that is not a quarantine. Every tag that
//! should stay is pulled with skopeo afterwards.

mod common;

use common::sweep::*;
use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap()
}

/// True when `text` holds a control character other than a line end or tab.
fn has_control(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
}

/// A prune plan edited to name a live tag in `tags_removed` and to remove
/// its manifest's blob (without a tag action): applying it removes nothing
/// live, names the skipped entry and exits 1; `verify` finds the registry
/// whole and every tag pulls.
#[test]
fn tampered_prune_plan_removes_nothing_live() {
    let mut e = Env::start(Backend::Fs, SEED);
    let tags = e.tags();
    let storage = e.storage_arg();
    let dir = e.dir.path().to_path_buf();
    let plan = dir.join("p.json");
    let o = e.regsweep_run(&[
        "prune",
        &storage,
        "--untagged",
        "--grace",
        "0s",
        "--quiet",
        "--plan",
        &path_str(&plan),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", o.stderr);
    let mut p = read_json(&plan);
    let (repo, tag, digest) = tags[0].clone();
    let blob = format!("{V2}{}", blob_key(&digest));
    let blob_file = e.root.as_ref().unwrap().join(&blob).join("data");
    assert!(blob_file.exists(), "{blob_file:?}");
    p["tags_removed"].as_array_mut().unwrap().push(json!({
        "repository": repo, "tag": tag, "digest": digest, "reason": "edited"}));
    p["plan"]["actions"].as_array_mut().unwrap().push(json!({
        "kind": "blob", "key": blob_key(&digest), "digest": digest, "bytes": 1}));
    fs::write(&plan, serde_json::to_vec_pretty(&p).unwrap()).unwrap();
    let o = e.regsweep_run(&[
        "prune",
        &storage,
        "--apply",
        "--settle",
        "0s",
        "--quiet",
        "--plan",
        &path_str(&plan),
        "--journal",
        &path_str(&dir.join("j.jsonl")),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "an edited plan must end with exit 1: {}",
        o.stderr
    );
    assert!(
        o.stderr.contains(&blob_key(&digest)) && o.stderr.contains("skipped"),
        "the skipped entry is named: {}",
        o.stderr
    );
    assert!(blob_file.exists(), "the live blob was removed");
    let v = e.regsweep_run(&["verify", &storage, "--quiet"]);
    assert_eq!(v.status.code(), Some(0), "verify: {}{}", v.stdout, v.stderr);
    e.assert_all_pull(&tags, "after applying an edited prune plan");
}

/// A saved plan whose action's key is not the one its kind and digest name
/// is an error before anything runs: exit 2, the action named, the storage
/// as it was.
#[test]
fn saved_plan_with_a_forged_key_is_refused_before_anything_runs() {
    let (dir, root, storage) = fixture_copy();
    let plan = dir.path().join("p.json");
    let j = path_str(&dir.path().join("j.jsonl"));
    for command in ["sweep", "prune"] {
        let mut args = vec![command, storage.as_str(), "--grace", "0s", "--quiet"];
        args.push(if command == "sweep" {
            "-m"
        } else {
            "--untagged"
        });
        let ps = path_str(&plan);
        args.extend_from_slice(&["--plan", &ps]);
        let o = regsweep_run(&args, &[]);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", o.stderr);
        let mut p = read_json(&plan);
        let actions = if command == "sweep" {
            &mut p["actions"]
        } else {
            &mut p["plan"]["actions"]
        };
        let hex = "ab".repeat(32);
        actions.as_array_mut().unwrap().push(json!({
            "kind": "blob", "key": "repositories/a/", "digest": format!("sha256:{hex}"), "bytes": 0}));
        fs::write(&plan, serde_json::to_vec_pretty(&p).unwrap()).unwrap();
        let before = tree_fingerprint(&root);
        let mut apply = vec![
            command,
            storage.as_str(),
            "--apply",
            "--settle",
            "0s",
            "--quiet",
        ];
        if command == "sweep" {
            apply.push("-m");
        }
        apply.extend_from_slice(&["--plan", &ps, "--journal", &j]);
        let o = regsweep_run(&apply, &[]);
        assert_eq!(o.status.code(), Some(2), "{apply:?}: {}", o.stderr);
        assert!(
            o.stderr.contains("action") && o.stderr.contains("repositories/a/"),
            "{}",
            o.stderr
        );
        assert_eq!(tree_fingerprint(&root), before, "{command} touched storage");
    }
}

/// `sweep --apply --plan FILE --grace 5h` on a plan made with `--grace 0s`
/// takes the stricter 5h: nothing pushed minutes ago is removed, the
/// skipped removals are named and the run exits 1; `--help` says so.
#[test]
fn grace_at_apply_is_the_stricter_of_flag_and_plan() {
    let mut e = Env::start(Backend::Fs, SEED);
    let tags = e.tags();
    let dir = e.dir.path().to_path_buf();
    let plan = e.plan(&NOW, &dir.join("plan.json"));
    let n = plan["actions"].as_array().unwrap().len();
    assert!(n > 0, "the scenario leaves something to sweep");
    let before = e.content_snapshot();
    let j = path_str(&dir.join("j.jsonl"));
    let ps = path_str(&dir.join("plan.json"));
    let o = e.sweep(
        &[
            "-m",
            "--apply",
            "--settle",
            "0s",
            "--plan",
            &ps,
            "--grace",
            "5h",
            "--journal",
            &j,
        ],
        1,
    );
    assert_eq!(
        e.content_snapshot(),
        before,
        "removed objects younger than the 5h given at apply time"
    );
    assert!(o.stderr.contains("skipped"), "{}", o.stderr);
    assert!(o.stderr.contains(&format!("{n} skipped")), "{}", o.stderr);
    for command in ["sweep", "prune", "delete"] {
        let h = regsweep_run(&[command, "--help"], &[]);
        assert!(
            h.stdout
                .contains("the longer of this and the plan's own grace"),
            "{command} --help: {}",
            h.stdout
        );
    }
    e.assert_all_pull(&tags, "after an apply with a stricter grace");
}

/// A binary file given as an access log: `prune --not-pulled-for` refuses it
/// (exit 2, the file and its first line named with control bytes escaped,
/// storage untouched); `images` lists with a warning and prints no control
/// bytes; `images --filter stale` refuses it.
#[test]
fn binary_access_log_is_refused_by_prune() {
    let (dir, root, storage) = fixture_copy();
    let binary = env!("CARGO_BIN_EXE_regsweep");
    let before = tree_fingerprint(&root);
    let j = path_str(&dir.path().join("j.jsonl"));
    let o = regsweep_run(
        &[
            "prune",
            &storage,
            "--not-pulled-for",
            "30d",
            "--access-log",
            binary,
            "--no-keep-latest",
            "--grace",
            "0s",
            "--apply",
            "--settle",
            "0s",
            "--quiet",
            "--journal",
            &j,
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}{}", o.stdout, o.stderr);
    assert!(
        o.stderr.contains(binary) && o.stderr.contains("not a registry log"),
        "{}",
        o.stderr
    );
    assert!(!has_control(&o.stderr), "raw control bytes: {:?}", o.stderr);
    assert_eq!(tree_fingerprint(&root), before, "prune touched the storage");

    let o = regsweep_run(&["images", &storage, "--access-log", binary], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", o.stderr);
    assert!(
        o.stderr.contains("does not look like a registry log"),
        "{}",
        o.stderr
    );
    assert!(!has_control(&o.stdout) && !has_control(&o.stderr));
    let o = regsweep_run(
        &[
            "images",
            &storage,
            "--access-log",
            binary,
            "--filter",
            "stale",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("not a registry log"), "{}", o.stderr);
}

/// Sets the modification time of every link under `dir` to `t`.
fn touch_links(dir: &Path, t: SystemTime) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            touch_links(&entry.path(), t);
        } else if kind.is_file() && entry.file_name() == "link" {
            let f = fs::File::options().write(true).open(entry.path()).unwrap();
            f.set_modified(t).unwrap();
        }
    }
}

/// A tag pushed twice whose history links carry one time (a copy that did
/// not keep times): a pull by tag after that time cannot tell which digest
/// it got, so it counts for both, and `prune --not-pulled-for 30d` keeps the
/// pulled tag.
#[test]
fn tied_history_pull_keeps_the_pulled_tag() {
    let e = Env::start(Backend::Fs, SEED);
    let repo = "tied/app";
    let base = e.push_blob(repo, b"tied base layer");
    for n in ["one", "two"] {
        let cfg = json!({"architecture": "amd64", "os": "linux", "config": {"Env": [n]},
            "rootfs": {"type": "layers", "diff_ids": [base]}})
        .to_string();
        let cd = e.push_blob(repo, cfg.as_bytes());
        let body = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": cfg.len(), "digest": cd},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": 15, "digest": base}]})
        .to_string();
        e.put_manifest(
            repo,
            "v1",
            body.as_bytes(),
            "application/vnd.oci.image.manifest.v1+json",
        );
    }
    let old = SystemTime::now() - Duration::from_secs(60 * 86400);
    touch_links(
        &e.root
            .as_ref()
            .unwrap()
            .join(V2)
            .join("repositories/tied/app"),
        old,
    );
    let storage = e.storage_arg();
    let log = e.dir.path().join("access.log");
    // The tags `prune --not-pulled-for 30d` removes after one pull of
    // `repo:v1` `days` ago, in the registry's access-log format.
    let removed_after_a_pull = |days: u64| -> Vec<String> {
        let when: chrono::DateTime<chrono::Utc> =
            (SystemTime::now() - Duration::from_secs(days * 86400)).into();
        let when = when.format("%d/%b/%Y:%H:%M:%S +0000");
        fs::write(
            &log,
            format!(
                "127.0.0.1 - - [{when}] \"GET /v2/{repo}/manifests/v1 HTTP/1.1\" 200 500 \"\" \"skopeo/1.9.3\"\n"
            ),
        )
        .unwrap();
        let o = e.regsweep_run(&[
            "prune",
            &storage,
            "--repo",
            "^tied/app$",
            "--not-pulled-for",
            "30d",
            "--access-log",
            &path_str(&log),
            "--no-keep-latest",
            "--grace",
            "0s",
            "--format",
            "json",
            "--quiet",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", o.stderr);
        let plan: Value = serde_json::from_str(&o.stdout).unwrap();
        plan["tags_removed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| format!("{}:{}", s(&t["repository"]), s(&t["tag"])))
            .collect()
    };
    let v1 = format!("{repo}:v1");
    let removed = removed_after_a_pull(1);
    assert!(
        !removed.contains(&v1),
        "the tag pulled yesterday is planned for removal: {removed:?}"
    );
    // A pull two months ago: the tag goes (the test can fail).
    let removed = removed_after_a_pull(59);
    assert!(
        removed.contains(&v1),
        "a tag last pulled 59 days ago stays: {removed:?}"
    );
}

/// `restore STORAGE --from DIR` where DIR is another registry's root, not a
/// quarantine: exit 2, and neither tree changes.
#[test]
fn restore_from_a_non_quarantine_changes_neither_tree() {
    let (_dir, root, storage) = fixture_copy();
    let (_other_dir, other, other_storage) = fixture_copy();
    let (a, b) = (tree_fingerprint(&root), tree_fingerprint(&other));
    for from in [
        other_storage.clone(),
        format!("{other_storage}/docker/registry/v2"),
    ] {
        let o = regsweep_run(&["restore", &storage, "--from", &from, "--quiet"], &[]);
        assert_eq!(o.status.code(), Some(2), "{}{}", o.stdout, o.stderr);
        assert!(
            o.stderr.contains("not a regsweep quarantine")
                || o.stderr.contains("not a registry root"),
            "{}",
            o.stderr
        );
        assert_eq!(tree_fingerprint(&root), a, "restore changed the storage");
        assert_eq!(
            tree_fingerprint(&other),
            b,
            "restore moved files out of {from}"
        );
    }
}

/// Stores `body` as a manifest of repository `repo` tagged `tag` in the
/// registry tree at `root` (blob, revision link, tag history and current).
fn store_manifest(root: &Path, repo: &str, tag: &str, body: &[u8]) -> String {
    let hex = sha256_hex_of(body)
        .trim_start_matches("sha256:")
        .to_string();
    let v2 = root.join(V2);
    let blob = v2.join(format!("blobs/sha256/{}/{hex}", &hex[..2]));
    fs::create_dir_all(&blob).unwrap();
    fs::write(blob.join("data"), body).unwrap();
    let m = v2.join(format!("repositories/{repo}/_manifests"));
    for d in [
        m.join(format!("revisions/sha256/{hex}")),
        m.join(format!("tags/{tag}/index/sha256/{hex}")),
        m.join(format!("tags/{tag}/current")),
    ] {
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("link"), format!("sha256:{hex}")).unwrap();
    }
    format!("sha256:{hex}")
}

/// A manifest declaring `i64::MAX` bytes for blobs that are stored: the
/// totals stay exact (the stored sizes, the same as without it but for the
/// manifest's own bytes), other repositories' shared bytes do not change,
/// and the disagreement is a `declared_size_mismatch` problem naming it.
#[test]
fn overflowing_declared_sizes_give_exact_totals_and_a_problem() {
    let (_dir, root, storage) = fixture_copy();
    let report = |storage: &str| -> Value {
        let o = regsweep_run(&["report", storage, "--format", "json"], &[]);
        assert!(o.status.code().is_some_and(|c| c <= 1), "{}", o.stderr);
        serde_json::from_str(&o.stdout).unwrap()
    };
    let before = report(&storage);
    let v1 = fs::read_to_string(
        root.join(V2)
            .join("repositories/a/_manifests/tags/v1/current/link"),
    )
    .unwrap();
    let hex = v1.trim().trim_start_matches("sha256:");
    let mut m: Value = serde_json::from_slice(
        &fs::read(
            root.join(V2)
                .join(format!("blobs/sha256/{}/{hex}/data", &hex[..2])),
        )
        .unwrap(),
    )
    .unwrap();
    m["config"]["size"] = json!(i64::MAX);
    for l in m["layers"].as_array_mut().unwrap() {
        l["size"] = json!(i64::MAX);
    }
    let body = serde_json::to_vec(&m).unwrap();
    let digest = store_manifest(&root, "a", "huge", &body);
    let after = report(&storage);
    let total = |r: &Value| r["summary"]["blob_bytes"].as_u64().unwrap();
    assert_eq!(
        total(&after),
        total(&before) + body.len() as u64,
        "blob bytes are the stored sizes"
    );
    let repos = |r: &Value| -> Vec<(String, u64, u64)> {
        r["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["name"] != "a")
            .map(|x| {
                (
                    s(&x["name"]),
                    x["shared_bytes"].as_u64().unwrap(),
                    x["unique_bytes"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(repos(&after), repos(&before), "other repositories changed");
    let problems: Vec<&Value> = after["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "declared_size_mismatch")
        .collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems.iter().all(|p| s(&p["message"]).contains(&digest)));
    let o = regsweep_run(&["images", &storage], &[]);
    assert!(
        !o.stdout.contains("PiB") && !o.stdout.contains("EiB"),
        "{}",
        o.stdout
    );
}

/// Every damaged Parquet file kept as a fuzzing reproducer, given as an S3
/// Inventory data file: `report --listing` exits 2 with an error naming the
/// file, and no panic message reaches the operator.
#[test]
fn damaged_parquet_inventory_files_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    for entry in fs::read_dir(repo_root().join("fuzz/regressions/parquet")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = fs::read(&path).unwrap();
        let inv = dir.path().join(format!("inv-{n}"));
        fs::create_dir_all(inv.join("data")).unwrap();
        fs::write(inv.join("data/part-0.parquet"), &bytes).unwrap();
        let manifest = format!(
            r#"{{"sourceBucket":"registry","destinationBucket":"arn:aws:s3:::registry","version":"2016-11-30","creationTimestamp":"1700000000000","fileFormat":"Parquet","fileSchema":"message s3.inventory {{ required binary bucket (STRING); required binary key (STRING); optional int64 size; optional int64 last_modified_date (TIMESTAMP(MILLIS,true)); }}","files":[{{"key":"inv/registry/cfg/data/part-0.parquet","size":{},"MD5checksum":"0"}}]}}"#,
            bytes.len()
        );
        let m = inv.join("manifest.json");
        fs::write(&m, manifest).unwrap();
        let unreachable = [
            ("AWS_ACCESS_KEY_ID".to_string(), "x".to_string()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), "x".to_string()),
            (
                "AWS_ENDPOINT_URL".to_string(),
                "http://127.0.0.1:9".to_string(),
            ),
        ];
        let o = regsweep_run(
            &[
                "report",
                "s3://registry/",
                "--listing",
                &path_str(&m),
                "--quiet",
            ],
            &unreachable,
        );
        assert_eq!(o.status.code(), Some(2), "{path:?}: {}", o.stderr);
        assert!(
            o.stderr.contains("data/part-0.parquet") && !o.stderr.contains("panicked"),
            "{path:?}: {}",
            o.stderr
        );
        n += 1;
    }
    assert!(n >= 4, "the Parquet reproducers are kept: {n}");
}
