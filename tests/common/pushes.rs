//! Removals applied while `scripts/push_during.py` pushes to the reference
//! registry, optionally through `scripts/latency_proxy.py` injecting S3
//! faults; and the proxy itself.

use super::sweep::*;
use super::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// (repository, tag, kind or digest).
type Tag = (String, String, String);

/// `scripts/latency_proxy.py` running in front of an S3 server; killed
/// when dropped.
pub struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `scripts/latency_proxy.py` in front of `e`'s S3 server with no
/// latency and then `args` (its faults, a log, another `--latency-ms`);
/// returns it and the environment for regsweep to go through it.
pub fn start_proxy(e: &Env, args: &[&str]) -> (Proxy, Vec<(String, String)>) {
    let mut proxy = Command::new("python3")
        .arg(script("latency_proxy.py"))
        .args([
            "--upstream",
            &format!("http://127.0.0.1:{}", e.s3_port.expect("an S3 environment")),
        ])
        .args(["--latency-ms", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start latency_proxy.py");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(proxy.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port: u16 = line.trim().parse().expect("the proxy prints its port");
    let env = e
        .regsweep_env()
        .into_iter()
        .map(|(k, v)| {
            if k == "AWS_ENDPOINT_URL" {
                (k, format!("http://127.0.0.1:{port}"))
            } else {
                (k, v)
            }
        })
        .collect();
    (Proxy(proxy), env)
}

/// What a dry run of `sweep -m --grace 0s` would still remove (the line
/// that starts with "reclaim").
pub fn left_to_sweep(e: &Env) -> String {
    let o = e.regsweep_run(&["sweep", &e.storage_arg(), "-m", "--grace", "0s"]);
    assert_eq!(o.status.code(), Some(0), "{}", o.stderr);
    o.stdout
        .lines()
        .find(|l| l.trim_start().starts_with("reclaim"))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// One run: a fresh registry with the scenario of `seed`, the removal
/// `args` (after the storage) applied while pushes run. With `faults`
/// (arguments of `scripts/latency_proxy.py`, S3 only) regsweep goes to the
/// store through the proxy: it may then exit 1, and what it left must be
/// intact (every tag and acknowledged push pulls) before a rerun without
/// faults finishes. Returns the acknowledged pushes and the broken tags.
pub fn run_with_pushes(
    backend: Backend,
    command: &str,
    args: &[&str],
    seed: u64,
    faults: &[&str],
) -> (usize, usize) {
    let mut e = Env::start(backend, seed);
    let storage = e.storage_arg();
    let dir = e.dir.path().to_path_buf();
    let plan = dir.join("plan.json");
    let stop = dir.join("stop");
    let pushes = dir.join("pushes.json");

    // The preview the pusher reuses from: the same request, planned once.
    let mut preview = vec![command, storage.as_str(), "--quiet"];
    preview.extend_from_slice(args);
    let plan_arg = path_str(&plan);
    preview.extend(["--plan", plan_arg.as_str()]);
    let o = e.regsweep_run(&preview);
    assert_eq!(o.status.code(), Some(0), "{preview:?}: {}", o.stderr);
    let planned: Value = serde_json::from_slice(&fs::read(&plan).unwrap()).unwrap();
    let actions = planned
        .get("actions")
        .or_else(|| planned["plan"].get("actions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap();
    let garbage: BTreeSet<String> = actions
        .iter()
        .filter(|a| a["kind"] == "blob")
        .map(|a| s(&a["digest"]))
        .collect();
    assert!(
        !garbage.is_empty(),
        "the plan of {command} {args:?} removes no blob"
    );
    let mut pusher = Command::new("python3");
    pusher
        .arg(script("push_during.py"))
        .args(["--registry", &format!("127.0.0.1:{}", e.port)]);
    if let Some(root) = &e.root {
        pusher.args(["--root", &path_str(root)]);
    }
    let pusher = pusher
        .args(["--plan", &plan_arg])
        .args(["--seed", &seed.to_string()])
        .args(["--until", &path_str(&stop)])
        .args(["--out", &path_str(&pushes)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Pushes start before the removal's scan, run through it, and go on
    // a little after it ends.
    std::thread::sleep(Duration::from_millis(300 + seed % 5 * 100));
    let journal = dir.join("journal.jsonl");
    let mut apply = vec![command, storage.as_str(), "--quiet"];
    apply.extend_from_slice(args);
    let journal_arg = path_str(&journal);
    apply.extend([
        "--apply",
        "--settle",
        "2s",
        "--journal",
        journal_arg.as_str(),
    ]);
    let proxy = (!faults.is_empty()).then(|| start_proxy(&e, faults));
    let env = match &proxy {
        Some((_, env)) => env.clone(),
        None => e.regsweep_env(),
    };
    let o = regsweep_run(&apply, &env);
    drop(proxy);
    std::thread::sleep(Duration::from_millis(500));
    fs::write(&stop, "").unwrap();
    let out = pusher.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "push_during.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let allowed: &[i32] = if faults.is_empty() { &[0] } else { &[0, 1] };
    assert!(
        o.status.code().is_some_and(|c| allowed.contains(&c)),
        "{apply:?} -> {}\nstdout: {}\nstderr: {}",
        o.status,
        o.stdout,
        o.stderr
    );
    let log: Value = serde_json::from_slice(&fs::read(&pushes).unwrap()).unwrap();
    let acked: Vec<(String, String, String)> = log["acked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (s(&p["repository"]), s(&p["tag"]), s(&p["kind"])))
        .collect();
    let reused: BTreeSet<String> = log["reused"].as_array().unwrap().iter().map(s).collect();
    assert!(!acked.is_empty(), "no push was acknowledged: {log}");

    // Every tag and every acknowledged push pulls, but for the tags the run
    // removed (its journal's `done` tag removals): a retention policy
    // re-derived on the storage as the run found it may remove a tag that
    // a push displaced, and only those.
    let tags_before = e.tags();
    let stay_now = || -> (Vec<Tag>, BTreeSet<(String, String)>) {
        let removed_tags: BTreeSet<(String, String)> = fs::read_to_string(&journal)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["kind"] == "tag" && l["state"] == "done")
            .filter_map(|l| {
                let key = s(&l["key"]);
                let (repo, tag) = key
                    .strip_prefix("repositories/")?
                    .trim_end_matches('/')
                    .split_once("/_manifests/tags/")?;
                Some((repo.to_string(), tag.to_string()))
            })
            .collect();
        let mut stay = tags_before.clone();
        stay.extend(acked.iter().cloned());
        stay.retain(|(r, t, _)| !removed_tags.contains(&(r.clone(), t.clone())));
        (stay, removed_tags)
    };
    let mut reran = false;
    if o.status.code() == Some(1) {
        // A fault stopped the run part-way: what it left is whole, and a
        // rerun without faults (and without pushes) finishes.
        let (stay, _) = stay_now();
        e.restart_registry();
        let failures = e.pull_failures(&stay);
        assert!(
            failures.is_empty(),
            "{command} {args:?} seed {seed}: after a run stopped by faults, {} of {} tags no \
             longer pull:\n  {}\nregsweep stderr:\n{}",
            failures.len(),
            stay.len(),
            failures.join("\n  "),
            o.stderr
        );
        let again = e.regsweep_run(&apply);
        assert_eq!(again.status.code(), Some(0), "the rerun: {}", again.stderr);
        reran = true;
    }
    let (stay, removed_tags) = stay_now();
    if command == "sweep" {
        assert!(
            removed_tags.is_empty(),
            "sweep removed tags: {removed_tags:?}"
        );
    }
    e.restart_registry();
    let failures = e.pull_failures(&stay);
    let kinds = |k: &str| acked.iter().filter(|p| p.2 == k).count();
    eprintln!(
        "{command} {args:?} seed {seed}: {} pushes acknowledged (mount {}, reupload {}, \
         headskip {}, retag {}, new {}), {} failed; {} tags pulled{}",
        acked.len(),
        kinds("mount"),
        kinds("reupload"),
        kinds("headskip"),
        kinds("retag"),
        kinds("new"),
        log["failed"].as_array().unwrap().len(),
        stay.len(),
        if reran {
            "; stopped by a fault, finished by a rerun"
        } else {
            ""
        }
    );
    assert!(
        failures.is_empty(),
        "{command} {args:?} seed {seed}: {} of {} tags no longer pull:\n  {}\nregsweep stderr:\n{}",
        failures.len(),
        stay.len(),
        failures.join("\n  "),
        o.stderr
    );
    // The garbage that no push reused is gone, and nothing is left staged.
    let stored: BTreeSet<String> = match &e.root {
        Some(root) => tree_fingerprint(root).into_keys().collect(),
        None => e.bucket_listing().into_keys().collect(),
    };
    let still: Vec<&String> = garbage
        .iter()
        .filter(|d| !reused.contains(*d))
        .filter(|d| {
            let hex = d.trim_start_matches("sha256:");
            let data = format!("blobs/sha256/{}/{hex}/data", &hex[..2]);
            stored.iter().any(|k| k.ends_with(&data))
        })
        .collect();
    assert!(
        still.is_empty(),
        "{command} {args:?} seed {seed}: garbage no push reused is still there: {still:?}\nstderr:\n{}",
        o.stderr
    );
    let staged: Vec<&String> = stored
        .iter()
        .filter(|k| k.contains("regsweep-staging"))
        .collect();
    assert!(
        staged.is_empty(),
        "the run's staging was left behind: {staged:?}"
    );
    (acked.len(), failures.len())
}
