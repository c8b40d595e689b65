//! Helpers for the sweep tests (`tests/sweep_fs.rs`, `tests/sweep_s3.rs`):
//! restarting the reference registry on swept storage, pulling every tag and
//! collecting the failures, running `regsweep sweep`/`restore` with their
//! exit codes, content snapshots of the storage (fs or bucket), the journal.
//!
//! Every check is written once here, for both backends.

use super::*;
use std::process::Child;

/// V2 prefix of every storage key.
pub const V2: &str = "docker/registry/v2/";

impl Env {
    /// Stops the registry and starts a fresh one on the same storage (its
    /// blob descriptor cache is in memory: after the storage changed under
    /// it, only a new process answers from the storage alone). It gets a
    /// new port; `self.config` is rewritten for it.
    pub fn restart_registry(&mut self) {
        self.restart_registry_with_log(QUIET_LOG);
    }

    /// `skopeo copy --all` of one tag into a fresh OCI layout.
    pub fn skopeo_copy(&self, repo: &str, tag: &str) -> Result<(), String> {
        let policy = self.dir.path().join("policy.json");
        if !policy.exists() {
            fs::write(
                &policy,
                r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
            )
            .unwrap();
        }
        let dest = tempfile::Builder::new()
            .prefix("pull-")
            .tempdir_in(self.dir.path())
            .unwrap();
        let o = run(
            Command::new("skopeo")
                .arg("--policy")
                .arg(&policy)
                .args(["copy", "-q", "--all", "--src-tls-verify=false"])
                .arg(format!("docker://127.0.0.1:{}/{repo}:{tag}", self.port))
                .arg(format!("oci:{}:{tag}", dest.path().join("l").display())),
            Duration::from_secs(600),
        );
        if o.status.success() {
            Ok(())
        } else {
            Err(o.stderr.trim().to_string())
        }
    }

    /// Pulls every tag of `tags` with skopeo; returns the failures
    /// ("repo:tag: error").
    pub fn pull_failures(&self, tags: &[(String, String, String)]) -> Vec<String> {
        tags.iter()
            .filter_map(|(r, t, _)| {
                self.skopeo_copy(r, t)
                    .err()
                    .map(|e| format!("{r}:{t}: {e}"))
            })
            .collect()
    }

    /// Asserts that every tag of `tags` pulls (after a registry restart).
    pub fn assert_all_pull(&mut self, tags: &[(String, String, String)], when: &str) {
        self.restart_registry();
        let f = self.pull_failures(tags);
        assert!(
            f.is_empty(),
            "{when}: {} of {} tags no longer pull with `skopeo copy --all`:\n  {}",
            f.len(),
            tags.len(),
            f.join("\n  ")
        );
    }

    /// Runs regsweep with this storage's environment; any exit status.
    pub fn regsweep_run(&self, args: &[&str]) -> Output {
        regsweep_run(args, &self.regsweep_env())
    }

    /// `regsweep sweep STORAGE args...`: returns the output, asserting the
    /// exit status.
    pub fn sweep(&self, args: &[&str], want_status: i32) -> Output {
        let storage = self.storage_arg();
        let mut all = vec!["sweep", "--quiet", storage.as_str()];
        all.extend_from_slice(args);
        let o = self.regsweep_run(&all);
        assert_eq!(
            o.status.code(),
            Some(want_status),
            "regsweep {all:?} -> {}\nstdout: {}\nstderr: {}",
            o.status,
            o.stdout,
            o.stderr
        );
        o
    }

    /// The plan a dry run with `args` writes (`sweep ... --plan FILE`).
    pub fn plan(&self, args: &[&str], file: &Path) -> Value {
        let f = file.to_str().unwrap();
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&["--plan", f]);
        self.sweep(&all, 0);
        serde_json::from_slice(&fs::read(file).unwrap()).expect("plan JSON")
    }

    /// Spawns `regsweep sweep STORAGE args...` in the background with extra
    /// environment variables (for the pause hook).
    pub fn spawn_sweep(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Child {
        self.spawn_regsweep("sweep", args, extra_env)
    }

    /// `regsweep COMMAND --quiet STORAGE args...` in the background; its
    /// output goes to `paused-sweep.log` in the test's directory.
    pub fn spawn_regsweep(
        &self,
        command: &str,
        args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_regsweep"));
        cmd.arg(command)
            .arg("--quiet")
            .arg(self.storage_arg())
            .args(args);
        clear_aws(&mut cmd);
        for (k, v) in self.regsweep_env() {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let log = fs::File::create(self.dir.path().join("paused-sweep.log")).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        cmd.spawn().expect("spawn regsweep sweep")
    }

    /// After a sweep: `report -m` finds nothing to reclaim (no garbage blobs,
    /// no garbage manifests, no uploads) and exits 0 with no problems.
    pub fn assert_nothing_reclaimable(&self, when: &str) {
        let r = self.regsweep_report(&["--delete-untagged"]);
        r.assert_clean();
        for k in ["garbage_blobs", "garbage_manifests", "abandoned_uploads"] {
            assert!(
                r.arr(k).is_empty(),
                "{when}: `report -m` still lists {k}: {:?}",
                r.arr(k)
            );
        }
    }

    /// What the storage holds, by content: for the filesystem every file
    /// (path relative to the root -> length and hash; a symlink -> its
    /// target); for S3 every key of the whole bucket (keys under the
    /// registry's rootdirectory made relative to it, others as `bucket:KEY`)
    /// -> size and ETag (moto's ETag is the MD5 of the content).
    pub fn content_snapshot(&self) -> BTreeMap<String, String> {
        match self.backend {
            Backend::Fs => content_snapshot(self.root.as_ref().unwrap()),
            Backend::S3 => {
                let root = format!("{}/", S3_ROOT.trim_start_matches('/'));
                self.bucket_listing()
                    .into_iter()
                    .map(|(k, xml)| {
                        let etag = xml_elements(&xml, "ETag").pop().unwrap_or_default();
                        let size = xml_elements(&xml, "Size").pop().unwrap_or_default();
                        let k = match k.strip_prefix(&root) {
                            Some(rel) => rel.to_string(),
                            None => format!("bucket:{k}"),
                        };
                        (k, format!("{size}:{etag}"))
                    })
                    .collect()
            }
        }
    }

    /// Deletes one object of the storage behind regsweep's back (`key` is
    /// relative to `docker/registry/v2/`), as a crash between a removal and
    /// its journal line would leave it.
    pub fn delete_object(&self, key: &str) {
        match self.backend {
            Backend::Fs => fs::remove_file(self.root.as_ref().unwrap().join(V2).join(key)).unwrap(),
            Backend::S3 => {
                // moto refuses unsigned deletes: use boto3 (moto's own dependency).
                let full = format!("{}/{V2}{key}", S3_ROOT.trim_start_matches('/'));
                let py = "import boto3,sys\n\
                    c=boto3.client('s3',endpoint_url=sys.argv[1],region_name='us-east-1',\
                    aws_access_key_id=sys.argv[2],aws_secret_access_key=sys.argv[3])\n\
                    c.head_object(Bucket=sys.argv[4],Key=sys.argv[5])\n\
                    c.delete_object(Bucket=sys.argv[4],Key=sys.argv[5])\n";
                let mut cmd = Command::new("python3");
                cmd.arg("-c")
                    .arg(py)
                    .arg(format!("http://127.0.0.1:{}", self.s3_port.unwrap()))
                    .args([ACCESS_KEY, SECRET_KEY, BUCKET, full.as_str()]);
                clear_aws(&mut cmd);
                cmd.env_remove("AWS_CA_BUNDLE");
                let o = run(&mut cmd, Duration::from_secs(300));
                assert!(o.status.success(), "deleting {full}: {}", o.stderr);
            }
        }
    }

    /// `docker-registry garbage-collect [-m] CONFIG` for real (not a dry run).
    pub fn reference_gc_apply(&self, delete_untagged: bool) -> String {
        let mut cmd = Command::new("docker-registry");
        cmd.arg("garbage-collect");
        if delete_untagged {
            cmd.arg("-m");
        }
        cmd.arg(&self.config).env_remove("AWS_CA_BUNDLE");
        let o = run(&mut cmd, Duration::from_secs(300));
        let all = format!("{}\n{}", o.stdout, o.stderr);
        assert!(
            o.status.success(),
            "reference garbage-collect failed: {}\n{all}",
            o.status
        );
        all
    }

    // -- pushing through the registry API (for the "written after the plan" test)

    /// Monolithic blob upload (POST, then PUT with the digest).
    pub fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        self.push_blob_as(repo, data, &sha256_hex_of(data))
    }

    /// [`Env::push_blob`] by the given digest (e.g. `sha512:…`: the registry
    /// stores the blob as its sha256 and writes an alias link).
    pub fn push_blob_as(&self, repo: &str, data: &[u8], digest: &str) -> String {
        let digest = digest.to_string();
        let (st, h, body) = http(
            self.port,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            b"",
        )
        .unwrap();
        assert_eq!(st, 202, "POST upload: {}", String::from_utf8_lossy(&body));
        let loc = header(&h, "location").expect("Location").to_string();
        let path = loc
            .split_once("://")
            .map(|(_, rest)| &rest[rest.find('/').unwrap()..])
            .unwrap_or(&loc)
            .to_string();
        let sep = if path.contains('?') { '&' } else { '?' };
        let (st, _, body) = http(
            self.port,
            "PUT",
            &format!("{path}{sep}digest={}", digest.replace(':', "%3A")),
            &[("Content-Type", "application/octet-stream")],
            data,
        )
        .unwrap();
        assert_eq!(st, 201, "PUT blob: {}", String::from_utf8_lossy(&body));
        digest
    }

    /// Cross-repository mount (`POST ?mount=&from=`); asserts it was done.
    pub fn mount_blob(&self, repo: &str, digest: &str, from: &str) {
        let (st, _, body) = http(
            self.port,
            "POST",
            &format!(
                "/v2/{repo}/blobs/uploads/?mount={}&from={from}",
                digest.replace(':', "%3A")
            ),
            &[],
            b"",
        )
        .unwrap();
        assert_eq!(
            st,
            201,
            "mount {digest} from {from} into {repo}: {st} {}",
            String::from_utf8_lossy(&body)
        );
    }

    pub fn put_manifest(&self, repo: &str, reference: &str, body: &[u8], media_type: &str) {
        let (st, _, resp) = http(
            self.port,
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Content-Type", media_type)],
            body,
        )
        .unwrap();
        assert_eq!(
            st,
            201,
            "PUT manifest {repo}:{reference}: {}",
            String::from_utf8_lossy(&resp)
        );
    }
}

fn clear_aws(cmd: &mut Command) {
    for (k, _) in std::env::vars_os().filter_map(|(k, v)| k.into_string().ok().map(|k| (k, v))) {
        if k.starts_with("AWS_") {
            cmd.env_remove(&k);
        }
    }
}

/// Runs the regsweep binary (AWS_* cleared, then `env` added); any exit status.
pub fn regsweep_run(args: &[&str], env: &[(String, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regsweep"));
    cmd.args(args);
    clear_aws(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd, Duration::from_secs(180))
}

/// path -> "file:<len>:<hash>" / "symlink:<target>" for every file and symlink
/// under `root` (never following a symlink); directories are implied.
pub fn content_snapshot(root: &Path) -> BTreeMap<String, String> {
    use std::hash::{Hash, Hasher};
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
            let md = fs::symlink_metadata(&p).unwrap();
            if md.file_type().is_symlink() {
                out.insert(
                    rel,
                    format!("symlink:{}", fs::read_link(&p).unwrap().display()),
                );
            } else if md.is_dir() {
                stack.push(p);
            } else {
                let data = fs::read(&p).unwrap();
                let mut h = std::collections::hash_map::DefaultHasher::new();
                data.hash(&mut h);
                out.insert(rel, format!("file:{}:{:016x}", data.len(), h.finish()));
            }
        }
    }
    out
}

/// Every directory under `root` (not following symlinks).
pub fn dirs_of(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                out.insert(p.strip_prefix(root).unwrap().to_string_lossy().to_string());
                stack.push(p);
            }
        }
    }
    out
}

/// Empty directories under `root` (not following symlinks).
pub fn empty_dirs(root: &Path) -> BTreeSet<String> {
    dirs_of(root)
        .into_iter()
        .filter(|d| fs::read_dir(root.join(d)).unwrap().next().is_none())
        .collect()
}

impl Env {
    /// Filesystem only: the empty directories of the storage (else empty).
    pub fn empty_dirs(&self) -> BTreeSet<String> {
        match self.backend {
            Backend::Fs => empty_dirs(self.root.as_ref().unwrap()),
            Backend::S3 => BTreeSet::new(),
        }
    }

    /// Empty directories that were not there `before`.
    pub fn new_empty_dirs(&self, before: &BTreeSet<String>) -> BTreeSet<String> {
        self.empty_dirs().difference(before).cloned().collect()
    }
}

/// Keys of a snapshot under `prefix` (relative to the root).
pub fn under<'a>(snap: &'a BTreeMap<String, String>, prefix: &str) -> BTreeMap<&'a str, &'a str> {
    snap.range(prefix.to_string()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Does any file of the action with plan key `key` (relative to v2) exist?
pub fn key_exists(snap: &BTreeMap<String, String>, key: &str) -> bool {
    !under(snap, &format!("{V2}{key}")).is_empty()
}

/// The plan's actions: (kind, key).
pub fn plan_actions(plan: &Value) -> Vec<(String, String)> {
    plan["actions"]
        .as_array()
        .expect("plan.actions")
        .iter()
        .map(|a| (s(&a["kind"]), s(&a["key"])))
        .collect()
}

/// Journal lines that parse (a torn line, if any, is skipped and counted).
pub fn read_journal(path: &Path) -> (Vec<Value>, usize) {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut torn = 0;
    let mut out = Vec::new();
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(l) {
            Ok(v) if v.is_object() => out.push(v),
            _ => torn += 1,
        }
    }
    (out, torn)
}

/// Per key: the states of its journal lines, in order.
pub fn journal_by_key(lines: &[Value]) -> BTreeMap<String, Vec<Value>> {
    let mut m: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for l in lines {
        for f in ["time", "state", "kind", "key", "bytes", "op"] {
            assert!(!l[f].is_null(), "journal line without `{f}`: {l}");
        }
        m.entry(s(&l["key"])).or_default().push(l.clone());
    }
    m
}

/// The journal is the audit trail of a finished sweep: every key removed
/// from the storage (`removed`, relative to v2) has exactly one `done` line;
/// every key with a `done` line is gone; every `intent` is closed by a later
/// `done` line; no `failed` line.
pub fn check_journal(
    lines: &[Value],
    removed: &BTreeSet<String>,
    after: &BTreeMap<String, String>,
) {
    let by_key = journal_by_key(lines);
    let mut errs = Vec::new();
    for (key, ls) in &by_key {
        let states: Vec<String> = ls.iter().map(|l| s(&l["state"])).collect();
        let dones = states.iter().filter(|s| *s == "done").count();
        if states.iter().any(|s| s == "failed") {
            errs.push(format!("{key}: failed: {states:?}"));
        }
        if dones != 1 {
            errs.push(format!("{key}: {dones} done lines: {states:?}"));
        }
        // Every intent is closed by a later done.
        for (i, st) in states.iter().enumerate() {
            if st == "intent" && !states[i + 1..].iter().any(|s| s == "done") {
                errs.push(format!("{key}: intent #{i} never closed: {states:?}"));
            }
        }
        if dones > 0 && key_exists(after, key) {
            errs.push(format!("{key}: journaled done but still in the storage"));
        }
    }
    for key in removed {
        if !by_key.contains_key(key) {
            errs.push(format!(
                "{key}: removed from the storage but not in the journal"
            ));
        }
    }
    assert!(errs.is_empty(), "journal:\n  {}", errs.join("\n  "));
}

/// Action keys (relative to v2) of a plan whose files are all gone in `after`.
pub fn removed_keys(plan: &Value, after: &BTreeMap<String, String>) -> BTreeSet<String> {
    plan_actions(plan)
        .into_iter()
        .map(|(_, k)| k)
        .filter(|k| !key_exists(after, k))
        .collect()
}

/// Every file that disappeared between `before` and `after` lies under one of
/// `keys` (nothing was removed that the plan did not name).
pub fn assert_removed_only(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    keys: &BTreeSet<String>,
) {
    let mut stray = Vec::new();
    for (k, v) in before {
        match after.get(k) {
            Some(w) if w == v => {}
            Some(_) => stray.push(format!("changed: {k}")),
            None => {
                if !keys.iter().any(|p| k.starts_with(&format!("{V2}{p}"))) {
                    stray.push(format!("removed outside the plan: {k}"));
                }
            }
        }
    }
    for k in after.keys().filter(|k| !before.contains_key(*k)) {
        stray.push(format!("added: {k}"));
    }
    assert!(stray.is_empty(), "storage diff:\n  {}", stray.join("\n  "));
}

/// Starts two environments with the same seed at once.
pub fn start_two(backend: Backend) -> (Env, Env) {
    std::thread::scope(|sc| {
        let a = sc.spawn(move || Env::start(backend, SEED));
        let b = sc.spawn(move || Env::start(backend, SEED));
        (a.join().unwrap(), b.join().unwrap())
    })
}

// ------------------------------------------------------- the checks ----

/// Arguments that make everything unreachable removable at once.
pub const NOW: [&str; 5] = ["--delete-untagged", "--grace", "0s", "--upload-age", "0s"];

fn with<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<&'a str> {
    a.iter().chain(b.iter()).copied().collect()
}

pub fn path_str(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// The keys of a plan, and a check that the scenario gives the sweep every
/// kind of work (tag history, revisions, layer links, the upload, blobs).
pub fn plan_keys(plan: &Value, env: &Env) -> BTreeSet<String> {
    let acts = plan_actions(plan);
    let kinds: BTreeSet<&str> = acts.iter().map(|(k, _)| k.as_str()).collect();
    for k in ["revision", "blob", "upload", "layer_link"] {
        assert!(kinds.contains(k), "the plan has no `{k}` action: {kinds:?}");
    }
    let keys: BTreeSet<String> = acts.into_iter().map(|(_, k)| k).collect();
    for b in env.scenario["unreferenced_blobs"].as_array().unwrap() {
        let k = blob_key(&s(&b["digest"]));
        assert!(
            keys.contains(&k),
            "plan does not remove the unreferenced blob {k}"
        );
    }
    keys
}

pub fn blob_key(digest: &str) -> String {
    let h = digest.strip_prefix("sha256:").unwrap();
    format!("blobs/sha256/{}/{h}/", &h[..2])
}

/// After an applied sweep: every planned key is gone, nothing else changed,
/// the journal has `torn` unreadable lines and otherwise accounts for each
/// removal once. Returns the journal's lines.
fn assert_swept(
    e: &Env,
    plan: &Value,
    keys: &BTreeSet<String>,
    before: &BTreeMap<String, String>,
    journal: &Path,
    torn: usize,
    stdout: &str,
) -> Vec<Value> {
    let after = e.content_snapshot();
    let removed = removed_keys(plan, &after);
    let left: Vec<_> = keys.difference(&removed).collect();
    assert!(
        left.is_empty(),
        "planned but still there: {left:?}\n{stdout}"
    );
    assert_removed_only(before, &after, keys);
    let (lines, got_torn) = read_journal(journal);
    assert_eq!(got_torn, torn, "torn journal lines");
    check_journal(&lines, &removed, &after);
    lines
}

/// (1) `sweep -m --apply --grace 0s --upload-age 0s`: exactly the plan is
/// removed, the journal says so, the reference registry (restarted on the
/// swept storage) serves every tag, and nothing is left to reclaim.
/// Returns the empty directories the sweep left behind (filesystem).
pub fn check_sweep_keeps_every_tag(e: &mut Env) -> BTreeSet<String> {
    let tags = e.tags();
    let dir = e.dir.path().to_path_buf();
    let journal = dir.join("sweep-journal.jsonl");
    let before = e.content_snapshot();
    let empty_before = e.empty_dirs();
    let plan = e.plan(&NOW, &dir.join("plan.json"));
    let keys = plan_keys(&plan, e);
    e.let_pushes_age();
    let o = e.sweep(
        &with(
            &NOW,
            &[
                "--apply",
                "--settle",
                "0s",
                "--journal",
                &path_str(&journal),
            ],
        ),
        0,
    );
    let new_empty = e.new_empty_dirs(&empty_before);
    assert_swept(e, &plan, &keys, &before, &journal, 0, &o.stdout);
    e.assert_all_pull(&tags, "after `regsweep sweep -m --apply`");
    e.assert_nothing_reclaimable("after `regsweep sweep -m --apply`");
    new_empty
}

/// (2) The reference `garbage-collect -m` on the same scenario: at least one
/// multi-arch tag no longer pulls. Returns the failures.
pub fn check_reference_gc_m_breaks_multiarch(e: &mut Env) -> Vec<String> {
    let tags = e.tags();
    assert!(
        e.pull_failures(&tags).is_empty(),
        "the scenario pulls before the reference GC"
    );
    e.reference_gc_apply(true);
    e.restart_registry();
    let failures = e.pull_failures(&tags);
    let multi: Vec<String> = e.scenario["multiarch_tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    let broken: Vec<&String> = failures
        .iter()
        .filter(|f| multi.iter().any(|m| f.starts_with(&format!("{m}:"))))
        .collect();
    assert!(
        !broken.is_empty(),
        "expected the reference `garbage-collect -m` (distribution 2.8) to break a multi-arch tag \
         of {multi:?}; failures: {failures:?}"
    );
    failures
}

/// Waits until the journal has `n` lines in state `done`.
pub fn wait_done_lines(journal: &Path, n: usize, child: &mut Child, log: &Path) {
    let start = Instant::now();
    loop {
        let (lines, _) = read_journal(journal);
        let done = lines.iter().filter(|l| l["state"] == "done").count();
        if done >= n {
            assert_eq!(done, n, "the pause hook let more batches through");
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "the paused sweep exited ({st}) after {done} done lines (waiting for {n}):\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        if start.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            panic!(
                "the sweep did not reach {n} done lines: {done}\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (3) A sweep SIGKILLed part-way (links done, one blob done), with the
/// crash made worse by hand (the next blob removed but its `done` line never
/// written; the one after only intended; a torn last line), run again with
/// the same journal: every tag pulls, nothing is reclaimable, every removed
/// key has exactly one `done` line.
/// Returns the empty directories left behind at the end (filesystem).
pub fn check_killed_sweep_then_rerun(e: &mut Env) -> BTreeSet<String> {
    let tags = e.tags();
    let dir = e.dir.path().to_path_buf();
    let journal = dir.join("killed-journal.jsonl");
    let jarg = path_str(&journal);
    let before = e.content_snapshot();
    let empty_before = e.empty_dirs();
    let plan = e.plan(&NOW, &dir.join("plan.json"));
    let keys = plan_keys(&plan, e);
    e.let_pushes_age();
    let acts = plan_actions(&plan);
    let first_blob = acts.iter().position(|(k, _)| k == "blob").unwrap();
    assert!(
        acts.len() - first_blob >= 3,
        "need 3 blobs in the plan: {acts:?}"
    );
    // Batches of one: pause (then SIGKILL) after every link and upload and
    // the first blob.
    let k = first_blob + 1;
    let mut child = e.spawn_sweep(
        &with(
            &NOW,
            &[
                "--apply",
                "--settle",
                "0s",
                "--batch",
                "1",
                "--journal",
                &jarg,
            ],
        ),
        &[("REGSWEEP_PAUSE_AFTER_BATCHES", &k.to_string())],
    );
    wait_done_lines(&journal, k, &mut child, &dir.join("paused-sweep.log"));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let mid = e.content_snapshot();
    let done_mid = removed_keys(&plan, &mid);
    let want: BTreeSet<String> = acts[..k].iter().map(|(_, k)| k.clone()).collect();
    assert_eq!(
        done_mid, want,
        "after the kill: removed keys vs the first {k} actions"
    );
    // Links go before blobs: the half-swept store serves every tag.
    e.assert_all_pull(&tags, "after the sweep was killed part-way");

    // Make the crash land inside the next batches: X's file is gone but its
    // `done` was never written; Y is only intended; the last line is torn.
    let (lines, _) = read_journal(&journal);
    let template = lines
        .iter()
        .find(|l| l["state"] == "intent")
        .unwrap()
        .clone();
    let bytes_of = |key: &str| {
        plan["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == key)
            .unwrap()["bytes"]
            .clone()
    };
    let (x, y) = (&acts[k].1, &acts[k + 1].1);
    let mut extra = String::new();
    for key in [x, y] {
        let mut l = template.clone();
        l["kind"] = "blob".into();
        l["key"] = key.as_str().into();
        l["bytes"] = bytes_of(key);
        extra.push_str(&format!("{l}\n"));
    }
    extra.push_str(
        r#"{"time":"2020-01-01T00:00:00.000Z","state":"intent","kind":"blob","key":"blobs/sha"#,
    );
    let mut f = fs::OpenOptions::new().append(true).open(&journal).unwrap();
    f.write_all(extra.as_bytes()).unwrap();
    drop(f);
    e.delete_object(&format!("{x}data"));

    // Run again: it finishes the job.
    let o = e.sweep(
        &with(&NOW, &["--apply", "--settle", "0s", "--journal", &jarg]),
        0,
    );
    let new_empty = e.new_empty_dirs(&empty_before);
    // Only the torn line written by the test is unreadable.
    let lines = assert_swept(e, &plan, &keys, &before, &journal, 1, &o.stdout);
    let xs: Vec<&Value> = lines.iter().filter(|l| l["key"] == x.as_str()).collect();
    assert!(
        xs.iter()
            .any(|l| l["state"] == "done" && l["recovered"] == true),
        "the action whose file was removed before the kill is closed as recovered: {xs:?}"
    );
    e.assert_all_pull(&tags, "after the killed sweep was run again");
    e.assert_nothing_reclaimable("after the killed sweep was run again");
    new_empty
}

/// (4) Grace: right after the push, `sweep -m --apply` with the default 1 h
/// grace removes nothing. Then a plan saved with `--grace 0s`, a push that
/// makes a blob of that plan referenced again, and `--plan FILE --apply`:
/// the blob survives (skipped, never journaled) and the new tag pulls.
pub fn check_grace_and_late_push(e: &mut Env) {
    let tags = e.tags();
    let dir = e.dir.path().to_path_buf();
    let j1 = dir.join("grace-journal.jsonl");
    let before = e.content_snapshot();
    e.sweep(
        &[
            "--delete-untagged",
            "--apply",
            "--settle",
            "0s",
            "--journal",
            &path_str(&j1),
        ],
        0,
    );
    let after = e.content_snapshot();
    let blobs = format!("{V2}blobs/");
    assert_eq!(
        under(&before, &blobs),
        under(&after, &blobs),
        "a default-grace sweep right after the push changed blobs"
    );
    let d = diff_fingerprints(&before, &after);
    assert!(
        d.is_empty(),
        "a default-grace sweep right after the push changed the storage:\n{}",
        d.join("\n")
    );
    // No journaled removal of anything that existed (a `done` for a key
    // with no file at all — e.g. the empty revision directory the registry
    // leaves after an API delete — removed nothing).
    let (lines, _) = read_journal(&j1);
    let real: Vec<&Value> = lines
        .iter()
        .filter(|l| l["state"] == "done" && key_exists(&before, &s(&l["key"])))
        .collect();
    assert!(
        real.is_empty(),
        "a default-grace sweep right after the push journaled removals: {real:?}"
    );

    // A plan made with grace 0s removes the never-referenced blob...
    let plan_file = dir.join("late-plan.json");
    let plan = e.plan(&["--delete-untagged", "--grace", "0s"], &plan_file);
    let keys = plan_keys_any(&plan);
    let lonely = &e.scenario["unreferenced_blobs"][0];
    let (lonely_repo, lonely_d) = (s(&lonely["repository"]), s(&lonely["digest"]));
    let lonely_key = blob_key(&lonely_d);
    assert!(keys.contains(&lonely_key), "plan lacks {lonely_key}");
    // ...then a push uses it as a layer, in a new repository (mounted: a
    // `_layers` link is written), with a new config.
    let repo = "late/app";
    e.mount_blob(repo, &lonely_d, &lonely_repo);
    let lonely_size = lonely["size"].as_u64().unwrap();
    let cfg = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{lonely_d}"]}}}}"#
    );
    let cfg_d = e.push_blob(repo, cfg.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{cfg_d}"}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","size":{lonely_size},"digest":"{lonely_d}"}}]}}"#,
        cfg.len()
    );
    e.put_manifest(
        repo,
        "v1",
        manifest.as_bytes(),
        "application/vnd.oci.image.manifest.v1+json",
    );
    e.skopeo_copy(repo, "v1")
        .expect("the late push pulls before the sweep");

    let j2 = dir.join("late-journal.jsonl");
    let o = e.sweep(
        &[
            "--plan",
            &path_str(&plan_file),
            "--apply",
            "--settle",
            "0s",
            "--journal",
            &path_str(&j2),
        ],
        // A removal of the saved plan was not made: the operator looks.
        1,
    );
    let after = e.content_snapshot();
    assert!(
        after.contains_key(&format!("{V2}{lonely_key}data")),
        "the blob that a push made referenced after the plan was deleted\n{}\n{}",
        o.stdout,
        o.stderr
    );
    let (lines, _) = read_journal(&j2);
    assert!(
        lines.iter().all(|l| l["key"] != lonely_key.as_str()),
        "the re-referenced blob was journaled: {lines:?}"
    );
    // The rest of the plan was carried out.
    let removed = removed_keys(&plan, &after);
    let not_done: Vec<&String> = keys
        .iter()
        .filter(|k| {
            **k != lonely_key && !k.starts_with(&format!("repositories/{lonely_repo}/_layers/"))
        })
        .filter(|k| !removed.contains(*k))
        .collect();
    assert!(
        not_done.is_empty(),
        "saved plan not carried out: {not_done:?}\n{}",
        o.stderr
    );
    let mut all = tags.clone();
    all.push((repo.into(), "v1".into(), String::new()));
    e.assert_all_pull(
        &all,
        "after applying a saved plan that a later push overtook",
    );
}

fn plan_keys_any(plan: &Value) -> BTreeSet<String> {
    plan_actions(plan).into_iter().map(|(_, k)| k).collect()
}

/// (5) `--quarantine DEST` moves exactly what the plan removes (same bytes)
/// and `restore --from DEST` gives back a store identical to the original,
/// leaving the quarantine empty. `quarantined` reads the quarantine as
/// (key relative to the registry root -> content).
pub fn check_quarantine_restore(
    e: &mut Env,
    dest: &str,
    quarantined: &dyn Fn(&Env) -> BTreeMap<String, String>,
) {
    let tags = e.tags();
    let dir = e.dir.path().to_path_buf();
    let journal = dir.join("q-journal.jsonl");
    let before = e.content_snapshot();
    let plan = e.plan(&NOW, &dir.join("plan.json"));
    let keys = plan_keys(&plan, e);
    e.sweep(
        &with(
            &NOW,
            &[
                "--apply",
                "--settle",
                "0s",
                "--quarantine",
                dest,
                "--journal",
                &path_str(&journal),
            ],
        ),
        0,
    );
    let mid: BTreeMap<String, String> = e
        .content_snapshot()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("bucket:"))
        .collect();
    let removed = removed_keys(&plan, &mid);
    assert_eq!(removed, keys, "quarantine sweep: removed keys vs plan");
    assert_removed_only(&before, &mid, &keys);
    let moved: BTreeMap<String, String> = before
        .iter()
        .filter(|(k, _)| !mid.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert!(!moved.is_empty());
    let (records, q): (BTreeMap<String, String>, BTreeMap<String, String>) = quarantined(e)
        .into_iter()
        .partition(|(k, _)| k.contains("regsweep-quarantine/"));
    assert_eq!(
        records.len(),
        1,
        "one record of the run in the quarantine: {records:?}"
    );
    assert_eq!(
        q.keys().collect::<Vec<_>>(),
        moved.keys().collect::<Vec<_>>(),
        "the quarantine holds exactly what left the storage"
    );
    assert!(q == moved, "the quarantine holds the same bytes");
    let (lines, _) = read_journal(&journal);
    assert!(lines.iter().all(|l| l["op"] == "quarantine"), "journal op");
    check_journal(&lines, &removed, &mid);
    e.assert_all_pull(&tags, "after the quarantine sweep");

    let storage = e.storage_arg();
    let o = e.regsweep_run(&["restore", "--quiet", &storage, "--from", dest]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "restore: {}\n{}",
        o.stdout,
        o.stderr
    );
    let after = e.content_snapshot();
    let d = diff_fingerprints(&before, &after);
    assert!(
        d.is_empty(),
        "the restored store differs from the original:\n{}",
        d.join("\n")
    );
    assert!(
        quarantined(e).is_empty(),
        "the quarantine is not empty after restore"
    );
    e.assert_all_pull(&tags, "after restore");
}
