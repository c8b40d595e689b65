//! `regsweep images` on trees written by the real reference registry: every
//! row's tags, kind, size and `reclaimable_bytes` equal an independent
//! computation (for `reclaimable_bytes`: delete the manifest, its tags and
//! the tags that follow it in a copy of the tree, run `report --delete-untagged`, compare the
//! garbage bytes); filters and sort orders hold; CSV and JSON agree; fs and
//! S3 listings of the same scenario agree.

mod common;

use common::sweep::regsweep_run;
use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

static FS: Shared = Shared::new();

fn env() -> &'static Env {
    shared(&FS, Backend::Fs)
}

fn images(storage: &str, extra: &[&str], env: &[(String, String)]) -> Value {
    let mut args = vec![
        "images".to_string(),
        storage.to_string(),
        "--format".into(),
        "json".into(),
        "--quiet".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let o = regsweep_run(&args.iter().map(String::as_str).collect::<Vec<_>>(), env);
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "images {extra:?} exited {}: {}",
        o.status,
        o.stderr
    );
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("images JSON: {e}\n{}", o.stdout))
}

fn rows(v: &Value) -> Vec<Value> {
    v["images"].as_array().unwrap().clone()
}

fn v2(root: &Path) -> PathBuf {
    root.join("docker/registry/v2")
}

fn blob_path(root: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    v2(root).join(format!("blobs/sha256/{}/{hex}/data", &hex[..2]))
}

fn blob_size(root: &Path, digest: &str) -> u64 {
    fs::metadata(blob_path(root, digest))
        .map(|m| m.len())
        .unwrap_or(0)
}

fn body(root: &Path, digest: &str) -> Option<Value> {
    serde_json::from_slice(&fs::read(blob_path(root, digest)).ok()?).ok()
}

/// What a manifest needs, read from the tree: itself, config, layers,
/// index children's (recursively).
fn own_closure(root: &Path, digest: &str, out: &mut BTreeSet<String>) {
    if !out.insert(digest.to_string()) {
        return;
    }
    let Some(v) = body(root, digest) else { return };
    if let Some(ms) = v["manifests"].as_array() {
        for m in ms {
            own_closure(root, &s(&m["digest"]), out);
        }
    }
    if let Some(c) = v.get("config") {
        out.insert(s(&c["digest"]));
    }
    for l in v["layers"].as_array().cloned().unwrap_or_default() {
        out.insert(s(&l["digest"]));
    }
}

/// Calls `f` with every repository's name and `_manifests` directory.
fn each_repository(root: &Path, mut f: impl FnMut(&str, &Path)) {
    let repos = v2(root).join("repositories");
    let mut stack = vec![repos.clone()];
    while let Some(d) = stack.pop() {
        let manifests = d.join("_manifests");
        if manifests.is_dir() {
            f(
                &d.strip_prefix(&repos).unwrap().to_string_lossy(),
                &manifests,
            );
        }
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() && !e.file_name().to_string_lossy().starts_with('_')
            {
                stack.push(e.path());
            }
        }
    }
}

/// Tags of the tree, read from `current/link` files: (repo, digest) -> tags.
fn tags_on_disk(root: &Path) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    each_repository(root, |name, manifests| {
        let Ok(tags) = fs::read_dir(manifests.join("tags")) else {
            return;
        };
        for t in tags {
            let t = t.unwrap();
            if let Ok(link) = fs::read_to_string(t.path().join("current/link")) {
                out.entry((name.to_string(), link))
                    .or_default()
                    .insert(t.file_name().to_string_lossy().to_string());
            }
        }
    });
    out
}

/// (repo, digest) of every revision link in the tree.
fn revisions_on_disk(root: &Path) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    each_repository(root, |name, manifests| {
        let Ok(revs) = fs::read_dir(manifests.join("revisions/sha256")) else {
            return;
        };
        for h in revs {
            let h = h.unwrap();
            if h.path().join("link").is_file() {
                out.insert((
                    name.to_string(),
                    format!("sha256:{}", h.file_name().to_string_lossy()),
                ));
            }
        }
    });
    out
}

/// Tags of one repository: name -> digest.
fn tags_of_repo(root: &Path, repo: &str) -> BTreeMap<String, String> {
    tags_on_disk(root)
        .into_iter()
        .filter(|((r, _), _)| r == repo)
        .flat_map(|((_, d), ts)| ts.into_iter().map(move |t| (t, d.clone())))
        .collect()
}

/// Whether a tag's name alone makes it follow a digest: cosign's
/// `sha256-<hex>.sig|.att|.sbom`, the referrers tag schema's `sha256-<hex>`.
fn is_follower_name(t: &str) -> bool {
    let Some(rest) = t.strip_prefix("sha256-") else {
        return false;
    };
    let (hex, suffix) = rest
        .split_once('.')
        .map_or((rest, None), |(h, x)| (h, Some(x)));
    hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && matches!(suffix, None | Some("sig" | "att" | "sbom"))
}

fn garbage(report: &Report, root: &Path) -> (BTreeSet<String>, u64) {
    let g = report.garbage_blobs();
    let bytes = g.iter().map(|d| blob_size(root, d)).sum();
    (g, bytes)
}

fn report_m(root: &Path) -> Report {
    regsweep(
        &[
            "report".into(),
            root.to_str().unwrap().into(),
            "--delete-untagged".into(),
            "--format".into(),
            "json".into(),
            "--quiet".into(),
        ],
        &[],
    )
}

#[test]
fn rows_equal_an_independent_computation() {
    let e = env();
    let root = e.root.as_ref().unwrap();
    let listing = images(&e.storage_arg(), &[], &[]);
    let rows = rows(&listing);
    let tags = tags_on_disk(root);
    // Every revision-linked manifest is a row, once.
    let want = revisions_on_disk(root);
    assert!(want.len() >= 10, "scenario too small");
    let got: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (s(&r["repository"]), s(&r["digest"])))
        .collect();
    assert_eq!(got.len(), rows.len(), "a manifest listed twice");
    assert_eq!(got, want, "rows are not the revision-linked manifests");

    let before = report_m(root);
    let (g, g_bytes) = garbage(&before, root);
    let work = tempfile::tempdir().unwrap();
    let mut checked_reclaim = 0;
    for r in &rows {
        let (repo, digest) = (s(&r["repository"]), s(&r["digest"]));
        let what = format!("{repo}@{digest}");
        // Tags.
        let want_tags: Vec<String> = tags
            .get(&(repo.clone(), digest.clone()))
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        let got_tags: Vec<String> = r["tags"].as_array().unwrap().iter().map(s).collect();
        assert_eq!(got_tags, want_tags, "tags of {what}");
        // Kind.
        let b = body(root, &digest).expect("manifest blob");
        let config_mt = b["config"]["mediaType"].as_str().unwrap_or_default();
        let want_kind = if b.get("subject").is_some() {
            "referrer"
        } else if b.get("manifests").is_some() {
            "index"
        } else if b.get("artifactType").is_some()
            || (b.get("config").is_some()
                && config_mt != "application/vnd.oci.image.config.v1+json"
                && config_mt != "application/vnd.docker.container.image.v1+json")
        {
            "artifact"
        } else {
            "image"
        };
        assert_eq!(s(&r["kind"]), want_kind, "kind of {what}");
        // Size.
        let mut own = BTreeSet::new();
        own_closure(root, &digest, &mut own);
        let want_size: u64 = own.iter().map(|d| blob_size(root, d)).sum();
        assert_eq!(count(&r["size"]), want_size, "size of {what}");
        // Reclaimable: delete it and its tags in a copy, re-run the report.
        let copy = work.path().join("copy");
        let _ = fs::remove_dir_all(&copy);
        copy_tree(root, &copy);
        let repo_dir = v2(&copy)
            .join("repositories")
            .join(&repo)
            .join("_manifests");
        let hex = digest.strip_prefix("sha256:").unwrap();
        fs::remove_dir_all(repo_dir.join("revisions/sha256").join(hex)).unwrap();
        for t in &want_tags {
            fs::remove_dir_all(repo_dir.join("tags").join(t)).unwrap();
        }
        // Its followers go with it: cosign and referrers-schema tags named
        // for a removed digest, tags naming a manifest whose `subject` is
        // one — and, when that leaves their manifest untagged, its own.
        let mut gone = BTreeSet::from([digest.clone()]);
        loop {
            let mut grew = false;
            let left = tags_of_repo(&copy, &repo);
            for (t, target) in &left {
                let by_name = t
                    .strip_prefix("sha256-")
                    .map(|rest| rest.split_once('.').map_or(rest, |(h, _)| h))
                    .filter(|h| h.len() == 64)
                    .map(|h| format!("sha256:{h}"));
                let by_body = body(root, target)
                    .and_then(|b| b["subject"]["digest"].as_str().map(str::to_string));
                let follows = by_name.filter(|_| is_follower_name(t)).or(by_body);
                if follows.is_some_and(|s| gone.contains(&s)) {
                    fs::remove_dir_all(repo_dir.join("tags").join(t)).unwrap();
                    let still_tagged = tags_of_repo(&copy, &repo).values().any(|d| d == target);
                    grew |= !still_tagged && gone.insert(target.clone());
                }
            }
            if !grew {
                break;
            }
        }
        let after = report_m(&copy);
        let (g2, g2_bytes) = garbage(&after, &copy);
        let want_reclaim = if s(&r["status"]) == "garbage" {
            // Already garbage: what of its own blobs the sweep frees.
            assert_eq!(g2, g, "deleting garbage {what} changed the garbage");
            own.iter()
                .filter(|d| g.contains(*d))
                .map(|d| blob_size(root, d))
                .sum()
        } else {
            assert!(g2.is_superset(&g), "deleting {what} revived garbage");
            g2_bytes - g_bytes
        };
        assert_eq!(
            count(&r["reclaimable_bytes"]),
            want_reclaim,
            "reclaimable_bytes of {what}"
        );
        checked_reclaim += 1;
    }
    assert!(
        checked_reclaim >= 10,
        "scenario too small: {checked_reclaim} rows"
    );
    // Some row frees something and some frees nothing (a shared child).
    assert!(rows.iter().any(|r| count(&r["reclaimable_bytes"]) > 0));
    assert!(rows
        .iter()
        .any(|r| count(&r["reclaimable_bytes"]) == 0 && count(&r["size"]) > 0));
    // Statuses agree with the report's garbage manifests.
    let gm = before.garbage_manifests();
    for r in &rows {
        let key = (s(&r["repository"]), s(&r["digest"]));
        let flags: Vec<String> = r["flags"].as_array().unwrap().iter().map(s).collect();
        assert_eq!(
            gm.contains(&key),
            flags.contains(&"garbage".to_string()),
            "garbage flag of {key:?}"
        );
        // One word, by precedence: problem, garbage, stale, active, idle.
        let word = s(&r["status"]);
        let want = if !r["problems"].as_array().unwrap().is_empty() {
            "problem"
        } else if let Some(f) = ["garbage", "stale", "active"]
            .into_iter()
            .find(|f| flags.iter().any(|x| x == f))
        {
            f
        } else if r["pushed_at"].is_null() && r["last_pulled_at"].is_null() {
            "unknown"
        } else {
            "idle"
        };
        assert_eq!(word, want, "status of {key:?} with flags {flags:?}");
    }
    // Summary: stored bytes are every blob's.
    let stored: u64 = walk_blobs(root).iter().map(|d| blob_size(root, d)).sum();
    assert_eq!(count(&listing["summary"]["stored_bytes"]), stored);
    assert_eq!(count(&listing["summary"]["garbage_bytes"]), g_bytes);
}

fn walk_blobs(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let b = v2(root).join("blobs/sha256");
    for shard in fs::read_dir(b).unwrap() {
        for d in fs::read_dir(shard.unwrap().path()).unwrap() {
            let d = d.unwrap();
            if d.path().join("data").is_file() {
                out.push(format!("sha256:{}", d.file_name().to_string_lossy()));
            }
        }
    }
    out
}

#[test]
fn filters_and_sort_orders_hold() {
    let e = env();
    let all = rows(&images(&e.storage_arg(), &[], &[]));
    let has = |r: &Value, st: &str| r["flags"].as_array().unwrap().iter().any(|x| s(x) == st);
    for (filter, pred) in [
        (
            "index",
            &(|r: &Value| s(&r["kind"]) == "index") as &dyn Fn(&Value) -> bool,
        ),
        ("image", &|r: &Value| s(&r["kind"]) == "image"),
        ("referrer", &|r: &Value| s(&r["kind"]) == "referrer"),
        ("tagged", &|r: &Value| {
            !r["tags"].as_array().unwrap().is_empty()
        }),
        ("untagged", &|r: &Value| has(r, "untagged")),
        ("garbage", &|r: &Value| has(r, "garbage")),
        ("active", &|r: &Value| has(r, "active")),
    ] {
        let got = rows(&images(&e.storage_arg(), &["--filter", filter], &[]));
        let want: Vec<&Value> = all.iter().filter(|r| pred(r)).collect();
        assert!(!want.is_empty(), "scenario has no {filter} row");
        assert_eq!(got.len(), want.len(), "--filter {filter}");
        assert!(got.iter().all(pred), "--filter {filter} let a row through");
    }
    // Filters combine with AND.
    let both = rows(&images(
        &e.storage_arg(),
        &["--filter", "image", "--filter", "untagged"],
        &[],
    ));
    assert!(both
        .iter()
        .all(|r| s(&r["kind"]) == "image" && has(r, "untagged")));
    // Sort orders.
    for (key, field) in [("size", "size"), ("reclaimable", "reclaimable_bytes")] {
        let got = rows(&images(&e.storage_arg(), &["--sort", key], &[]));
        let v: Vec<u64> = got.iter().map(|r| count(&r[field])).collect();
        assert!(v.windows(2).all(|w| w[0] >= w[1]), "--sort {key}: {v:?}");
        let rev = rows(&images(
            &e.storage_arg(),
            &["--sort", key, "--reverse"],
            &[],
        ));
        let v: Vec<u64> = rev.iter().map(|r| count(&r[field])).collect();
        assert!(
            v.windows(2).all(|w| w[0] <= w[1]),
            "--sort {key} --reverse: {v:?}"
        );
    }
    let got = rows(&images(&e.storage_arg(), &["--sort", "pushed"], &[]));
    let v: Vec<String> = got.iter().map(|r| s(&r["pushed_at"])).collect();
    assert!(v.windows(2).all(|w| w[0] >= w[1]), "--sort pushed: {v:?}");
    let got = rows(&images(&e.storage_arg(), &["--sort", "tags"], &[]));
    let v: Vec<usize> = got
        .iter()
        .map(|r| r["tags"].as_array().unwrap().len())
        .collect();
    assert!(v.windows(2).all(|w| w[0] >= w[1]), "--sort tags: {v:?}");
    // --repo regex, whole name: `[^/]*` stays in one component.
    let got = rows(&images(&e.storage_arg(), &["--repo", "team-a/[^/]*"], &[]));
    assert!(got
        .iter()
        .all(|r| s(&r["repository"]).starts_with("team-a/")
            && s(&r["repository"]).matches('/').count() == 1));
    let deep = rows(&images(&e.storage_arg(), &["--repo", "team-a/.*"], &[]));
    assert!(deep.len() >= got.len());
    assert!(deep
        .iter()
        .all(|r| s(&r["repository"]).starts_with("team-a/")));
    // --tag regex: some tag matches whole.
    let got = rows(&images(&e.storage_arg(), &["--tag", r".*\.sig"], &[]));
    assert!(!got.is_empty());
    assert!(got.iter().all(|r| r["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| s(t).ends_with(".sig"))));
    // Anchored: the same pattern without `.*` matches no tag.
    assert!(rows(&images(&e.storage_arg(), &["--tag", r"\.sig"], &[])).is_empty());
    // A bad regex is a clear error, exit 2.
    let o = regsweep_run(&["images", &e.storage_arg(), "--tag", "("], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("--tag"), "{}", o.stderr);
    let o = regsweep_run(&["images", &e.storage_arg(), "--repo", "a/[b"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("--repo"), "{}", o.stderr);
}

#[test]
fn csv_and_json_agree() {
    let e = env();
    let json = rows(&images(&e.storage_arg(), &["--sort", "size"], &[]));
    let o = regsweep_run(
        &[
            "images",
            &e.storage_arg(),
            "--format",
            "csv",
            "--sort",
            "size",
            "-q",
        ],
        &[],
    );
    assert!(
        o.status.success() || o.status.code() == Some(1),
        "{}",
        o.stderr
    );
    let mut rd = csv::Reader::from_reader(o.stdout.as_bytes());
    let header: Vec<String> = rd.headers().unwrap().iter().map(str::to_string).collect();
    let recs: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(recs.len(), json.len());
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    for (rec, j) in recs.iter().zip(&json) {
        assert_eq!(&rec[col("repository")], s(&j["repository"]));
        assert_eq!(&rec[col("digest")], s(&j["digest"]));
        assert_eq!(&rec[col("kind")], s(&j["kind"]));
        let tags: Vec<String> = j["tags"].as_array().unwrap().iter().map(s).collect();
        assert_eq!(&rec[col("tags")], tags.join(" "));
        assert_eq!(rec[col("size")].parse::<u64>().unwrap(), count(&j["size"]));
        assert_eq!(
            rec[col("reclaimable_bytes")].parse::<u64>().unwrap(),
            count(&j["reclaimable_bytes"])
        );
        assert_eq!(&rec[col("pushed_at")], s(&j["pushed_at"]));
        assert_eq!(&rec[col("status")], s(&j["status"]));
        let flags: Vec<String> = j["flags"].as_array().unwrap().iter().map(s).collect();
        for f in ["active", "stale", "untagged", "garbage"] {
            let want = flags.iter().any(|x| x == f).to_string();
            assert_eq!(rec[col(f)], want, "{f} column");
        }
    }
}

#[test]
fn table_shows_every_repository_and_a_summary() {
    let e = env();
    let o = regsweep_run(&["images", &e.storage_arg(), "--tree", "-q"], &[]);
    assert!(
        o.status.code() == Some(0) || o.status.code() == Some(1),
        "{}",
        o.stderr
    );
    for (repo, _, _) in e.tags() {
        assert!(o.stdout.contains(&repo), "table lacks {repo}");
    }
    assert!(o.stdout.contains("REPOSITORY") && o.stdout.contains("RECLAIMABLE"));
    assert!(o.stdout.contains("deduplication"));
    // Index children are drawn under their index.
    assert!(o.stdout.contains("└ "), "{}", o.stdout);
}

static S3: Shared = Shared::new();

/// The same scenario pushed to the registry's S3 driver (over moto) lists
/// the same rows, sizes and reclaimable bytes as on a filesystem; push
/// times come from the objects' LastModified.
#[test]
fn s3_listing_equals_fs_listing() {
    let fs_env = env();
    let s3_env = shared(&S3, Backend::S3);
    let key = |v: &Value| -> Vec<(String, String, String, u64, u64, String, String)> {
        let mut out: Vec<_> = rows(v)
            .iter()
            .map(|r| {
                (
                    s(&r["repository"]),
                    s(&r["digest"]),
                    s(&r["kind"]),
                    count(&r["size"]),
                    count(&r["reclaimable_bytes"]),
                    r["tags"].to_string(),
                    r["platforms"].to_string(),
                )
            })
            .collect();
        out.sort();
        out
    };
    let on_fs = images(&fs_env.storage_arg(), &[], &[]);
    let on_s3 = images(&s3_env.storage_arg(), &[], &s3_env.regsweep_env());
    assert_eq!(key(&on_s3), key(&on_fs));
    for r in rows(&on_s3) {
        assert!(!r["pushed_at"].is_null(), "no push time on S3: {r}");
        for (t, at) in r["tag_assigned_at"].as_object().unwrap() {
            assert!(!at.is_null(), "no time for tag {t} on S3");
        }
    }
    for k in [
        "stored_bytes",
        "garbage_bytes",
        "sum_of_image_sizes",
        "referenced_bytes",
    ] {
        assert_eq!(on_s3["summary"][k], on_fs["summary"][k], "summary {k}");
    }
}

fn skopeo_inspect(port: u16, image: &str) {
    let o = run(
        std::process::Command::new("skopeo").args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://127.0.0.1:{port}/{image}"),
        ]),
        std::time::Duration::from_secs(120),
    );
    assert!(o.status.success(), "skopeo inspect {image}: {}", o.stderr);
}

/// The registry at log level info: pull an image by tag, an index by tag
/// and an index child by digest with skopeo; `images --access-log` gives
/// exactly those manifests (and the child's index) a `last_pulled_at`, the
/// digest pull a `pulled_by_digest_at`, everything else `null`; plain and
/// gzip logs agree; a garbled line is reported, not fatal.
#[test]
fn last_pulled_at_from_the_registry_log() {
    let mut e = Env::start(Backend::Fs, SEED);
    let root = e.root.clone().unwrap();
    let log = e.restart_registry_with_log("log:\n  level: info\n  formatter: text\n");
    let listing = images(&e.storage_arg(), &[], &[]);
    let all = rows(&listing);
    let find = |pred: &dyn Fn(&Value) -> bool| all.iter().find(|r| pred(r)).cloned().unwrap();
    let image = find(&|r| s(&r["kind"]) == "image" && !r["tags"].as_array().unwrap().is_empty());
    let index = find(&|r| s(&r["kind"]) == "index" && !r["tags"].as_array().unwrap().is_empty());
    let other_index = find(&|r| {
        s(&r["kind"]) == "index"
            && !r["children"].as_array().unwrap().is_empty()
            && (s(&r["repository"]), s(&r["digest"]))
                != (s(&index["repository"]), s(&index["digest"]))
    });
    let child = s(&other_index["children"][0]);
    let start = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    skopeo_inspect(
        e.port,
        &format!("{}:{}", s(&image["repository"]), s(&image["tags"][0])),
    );
    skopeo_inspect(
        e.port,
        &format!("{}:{}", s(&index["repository"]), s(&index["tags"][0])),
    );
    skopeo_inspect(
        e.port,
        &format!("{}@{child}", s(&other_index["repository"])),
    );
    let end = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
    e.stop_registry();
    let text = fs::read_to_string(&log).unwrap();
    if let Some(kept) = text.strip_suffix("Terminated\n") {
        fs::write(&log, kept).unwrap();
    }
    let key = |r: &Value| (s(&r["repository"]), s(&r["digest"]));
    let want_pulled: BTreeSet<(String, String)> = [
        key(&image),
        key(&index),
        key(&other_index),
        (s(&other_index["repository"]), child.clone()),
    ]
    .into_iter()
    .collect();
    let want_by_digest: BTreeSet<(String, String)> =
        [(s(&other_index["repository"]), child.clone())]
            .into_iter()
            .collect();
    let check = |v: &Value, what: &str| {
        let mut pulled = BTreeSet::new();
        let mut by_digest = BTreeSet::new();
        for r in rows(v) {
            if let Some(t) = r["last_pulled_at"].as_str() {
                let t = chrono::DateTime::parse_from_rfc3339(t).unwrap();
                let t = std::time::SystemTime::from(t);
                assert!(
                    t + std::time::Duration::from_secs(1) >= start && t <= end,
                    "{what}: {r}"
                );
                pulled.insert(key(&r));
            }
            if !r["pulled_by_digest_at"].is_null() {
                by_digest.insert(key(&r));
            }
        }
        assert_eq!(pulled, want_pulled, "{what}: last_pulled_at");
        assert_eq!(by_digest, want_by_digest, "{what}: pulled_by_digest_at");
        assert!(
            count(&v["access_logs"]["pulls"]) >= 3,
            "{what}: {}",
            v["access_logs"]
        );
        assert_eq!(count(&v["access_logs"]["unattributed"]), 0, "{what}");
    };
    let plain = images(
        &root.to_string_lossy(),
        &["--access-log", log.to_str().unwrap()],
        &[],
    );
    check(&plain, "plain log");
    assert_eq!(count(&plain["access_logs"]["unparsed_lines"]), 0);
    // The same log gzip-compressed, given with a garbled line in another file.
    let gz = log.with_extension("log.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, &fs::read(&log).unwrap()).unwrap();
    fs::write(&gz, enc.finish().unwrap()).unwrap();
    let bad = log.with_extension("bad.log");
    fs::write(&bad, "\u{1}garbled {line\n").unwrap();
    let both = images(
        &root.to_string_lossy(),
        &[
            "--access-log",
            gz.to_str().unwrap(),
            "--access-log",
            bad.to_str().unwrap(),
        ],
        &[],
    );
    check(&both, "gzip log and a garbled one");
    assert_eq!(count(&both["access_logs"]["unparsed_lines"]), 1);
    assert!(s(&both["access_logs"]["first_unparsed"]).contains("garbled"));
    // A scanner's pulls are dropped by user agent: nothing is pulled then.
    let none = images(
        &root.to_string_lossy(),
        &[
            "--access-log",
            log.to_str().unwrap(),
            "--ignore-user-agent",
            "^skopeo",
        ],
        &[],
    );
    assert!(rows(&none).iter().all(|r| r["last_pulled_at"].is_null()));
    assert!(count(&none["access_logs"]["ignored_user_agent"]) >= 3);
    // A log that does not exist is an error naming it, exit 2.
    let o = regsweep_run(
        &[
            "images",
            &root.to_string_lossy(),
            "--access-log",
            "/nonexistent/registry.log",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", o.stderr);
    assert!(
        o.stderr.contains("/nonexistent/registry.log"),
        "{}",
        o.stderr
    );
}

/// `images --format html` of the scenario renders in headless Chromium with
/// no console errors; the DOM has the charts, every repository and one
/// table row per manifest; a screenshot is kept in target/test-artifacts/.
#[test]
fn html_renders_in_chromium() {
    let e = env();
    require(&["chromium"]);
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("images.html");
    let o = regsweep_run(
        &[
            "images",
            &e.storage_arg(),
            "--format",
            "html",
            "-o",
            page.to_str().unwrap(),
            "-q",
        ],
        &[],
    );
    assert!(matches!(o.status.code(), Some(0) | Some(1)), "{}", o.stderr);
    let html = fs::read_to_string(&page).unwrap();
    // Self-contained: no scripts, nothing loaded from elsewhere (the SVG
    // namespace is a name, not a request).
    assert!(!html.contains("<script"));
    let outside = html.replace("http://www.w3.org/2000/svg", "");
    assert!(!outside.contains("http://") && !outside.contains("https://"));
    let listing = images(&e.storage_arg(), &[], &[]);
    let r = common::browser::render(&page, "images-scenario");
    assert!(r.console.is_empty(), "console errors: {:?}", r.console);
    common::browser::assert_readable(&r, "images-scenario", 4.0);
    let dom = r.dom;
    assert!(dom.matches("<svg").count() >= 3, "charts missing");
    for r in listing["repositories"].as_array().unwrap() {
        assert!(
            dom.contains(&s(&r["name"])),
            "repository {} not on the page",
            r["name"]
        );
        // The treemap tile's area is the repository's stored bytes (its
        // `size`), not size plus what deleting it frees.
        let tile = format!(
            "<title>{}: {} (",
            s(&r["name"]),
            regsweep::report::human_bytes(count(&r["size"]))
        );
        assert!(dom.contains(&tile), "no treemap tile {tile}");
    }
    let n = rows(&listing).len();
    assert_eq!(
        dom.matches("<tr class=\"image\">").count(),
        n,
        "one table row per manifest"
    );
    let top = rows(&listing)
        .into_iter()
        .max_by_key(|r| count(&r["reclaimable_bytes"]))
        .unwrap();
    assert!(dom.contains(&s(&top["digest"])[7..19]), "top row missing");
}
