//! Shared harness for the integration tests that compare regsweep with the
//! real reference registry (Debian's `docker-registry`, distribution 2.8.x).
//!
//! What it does:
//! * starts `docker-registry serve` over a filesystem directory or over a
//!   `moto_server` S3 bucket, on free 127.0.0.1 ports;
//! * pushes the scenario of `scripts/push_scenario.py` through the HTTP API;
//! * runs `docker-registry garbage-collect --dry-run [-m]` and parses it;
//! * runs the regsweep binary and parses its JSON report.
//!
//! Every daemon is started under a tiny `sh` wrapper that kills it when the
//! wrapper's stdin pipe closes, i.e. when the test process exits, even if
//! it panics or is killed; `Env` also kills them on drop. Nothing is
//! skipped: a missing component fails the test with a pointer to
//! `scripts/setup.sh`.

#![allow(dead_code)]

pub mod browser;
pub mod prune;
pub mod pushes;
pub mod sweep;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "regsweeptest";
pub const SECRET_KEY: &str = "regsweeptestsecret";
pub const BUCKET: &str = "registry";
pub const S3_ROOT: &str = "/regsweep/prefix";

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// Seed used by every scenario pushed by the integration tests.
pub const SEED: u64 = 7;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn script(name: &str) -> PathBuf {
    repo_root().join("scripts").join(name)
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

/// Fails (never skips) when a real component is missing.
pub fn require(bins: &[&str]) {
    let missing: Vec<&str> = bins.iter().copied().filter(|b| !on_path(b)).collect();
    assert!(
        missing.is_empty(),
        "missing {:?} on PATH: run `bash scripts/setup.sh` first (it installs \
         docker-registry, skopeo and moto[server]); `bash scripts/test.sh` does both",
        missing
    );
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// A daemon started under a wrapper that kills it when our end of its stdin
/// pipe closes (on drop, or when this test process dies).
pub struct Daemon {
    name: String,
    child: Child,
    pub log: PathBuf,
}

const WRAPPER: &str = r#"exec 3<&0
"$@" </dev/null &
pid=$!
( read _x <&3; kill -TERM "$pid" 2>/dev/null; sleep 2; kill -KILL "$pid" 2>/dev/null
  if [ -n "$CLEANUP_DIR" ] && [ -e "$CLEANUP_DIR/.cleanup-on-exit" ] && [ ! -e "$CLEANUP_DIR/.keep-$$" ]; then rm -rf "$CLEANUP_DIR"; fi ) &
wait "$pid"
"#;

impl Daemon {
    pub fn spawn(name: &str, argv: &[&str], log: &Path) -> Daemon {
        Self::spawn_with_cleanup(name, argv, log, None)
    }

    /// Like `spawn`; when the daemon is stopped, `cleanup_dir` is removed too
    /// if it holds a `.cleanup-on-exit` marker (so that environments kept in
    /// statics leave no temp dirs behind when the test process exits).
    pub fn spawn_with_cleanup(
        name: &str,
        argv: &[&str],
        log: &Path,
        cleanup_dir: Option<&Path>,
    ) -> Daemon {
        let out = fs::File::create(log).expect("create log");
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WRAPPER)
            .arg("regsweep-test-daemon")
            .args(argv);
        cmd.env_remove("AWS_CA_BUNDLE"); // the registry's S3 driver panics on it
        cmd.env(
            "CLEANUP_DIR",
            cleanup_dir
                .map(|p| p.as_os_str().to_owned())
                .unwrap_or_default(),
        );
        cmd.stdin(Stdio::piped()).stdout(out).stderr(err);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Daemon {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        }
    }

    /// Stopping this daemon will not remove its cleanup dir (another daemon
    /// takes over the same directory, e.g. a restarted registry).
    pub fn disarm_cleanup(&self, cleanup_dir: &Path) {
        fs::write(cleanup_dir.join(format!(".keep-{}", self.child.id())), b"").unwrap();
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn log_tail(&self) -> String {
        let s = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until GET http://127.0.0.1:port{path} answers 200.
    pub fn wait_ready(&mut self, port: u16, path: &str, timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(st) = self.exited() {
                return Err(format!(
                    "{} exited ({st}) before it was ready:\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            if let Ok((200, _, _)) = http(port, "GET", path, &[], b"") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "{} not ready on port {port} after {timeout:?}:\n{}",
            self.name,
            self.log_tail()
        ))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Closing stdin makes the wrapper kill the daemon; wait for it briefly.
        drop(self.child.stdin.take());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- HTTP ----

pub type Response = (u16, Vec<(String, String)>, Vec<u8>);

/// Minimal HTTP/1.1 client (Connection: close), enough for the registry and moto.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let hdrs: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    if hdrs
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("chunk"))?;
            let size_s = String::from_utf8_lossy(&rest[..nl]);
            let size = usize::from_str_radix(size_s.split(';').next().unwrap().trim(), 16)
                .map_err(|_| bad("chunk size"))?;
            rest = &rest[nl + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    Ok((status, hdrs, body))
}

pub fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k == &name.to_ascii_lowercase())
        .map(|(_, v)| v.as_str())
}

// ----------------------------------------------------------- the env ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Fs,
    S3,
}

pub struct Env {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub config: PathBuf,
    /// Filesystem: the registry's rootdirectory.
    pub root: Option<PathBuf>,
    pub s3_port: Option<u16>,
    pub scenario: Value,
    // Order matters: the registry is dropped before moto.
    registry: Option<Daemon>,
    moto: Option<Daemon>,
}

static STARTS: AtomicUsize = AtomicUsize::new(0);

/// The `log:` section of the tests' registry config: warnings only, no
/// access log.
pub const QUIET_LOG: &str = "log:\n  level: warn\n  accesslog:\n    disabled: true\n";

pub fn registry_config(
    port: u16,
    backend: Backend,
    root: Option<&Path>,
    s3_port: Option<u16>,
) -> String {
    registry_config_with_log(port, backend, root, s3_port, QUIET_LOG)
}

/// `registry_config` with another `log:` section (top-level YAML).
pub fn registry_config_with_log(
    port: u16,
    backend: Backend,
    root: Option<&Path>,
    s3_port: Option<u16>,
    log: &str,
) -> String {
    let opts = RegistryOptions {
        log,
        blob_cache: false,
        readonly: false,
    };
    registry_config_with(port, backend, root, s3_port, opts)
}

/// What a test registry's config changes from the defaults.
#[derive(Clone, Copy, Debug)]
pub struct RegistryOptions<'a> {
    /// The `log:` section (top-level YAML).
    pub log: &'a str,
    /// `storage.cache.blobdescriptor: inmemory`.
    pub blob_cache: bool,
    /// `storage.maintenance.readonly.enabled: true`.
    pub readonly: bool,
}

/// The test registry's config with `opts`.
pub fn registry_config_with(
    port: u16,
    backend: Backend,
    root: Option<&Path>,
    s3_port: Option<u16>,
    opts: RegistryOptions<'_>,
) -> String {
    let log = opts.log;
    let storage = match backend {
        Backend::Fs => format!("  filesystem:\n    rootdirectory: {}\n", root.unwrap().display()),
        Backend::S3 => format!(
            "  s3:\n    accesskey: {ACCESS_KEY}\n    secretkey: {SECRET_KEY}\n    region: us-east-1\n    \
             regionendpoint: http://127.0.0.1:{}\n    bucket: {BUCKET}\n    rootdirectory: {S3_ROOT}\n    \
             secure: false\n    v4auth: true\n",
            s3_port.unwrap()
        ),
    };
    let cache = if opts.blob_cache {
        "  cache:\n    blobdescriptor: inmemory\n"
    } else {
        ""
    };
    let readonly = if opts.readonly {
        "    readonly:\n      enabled: true\n"
    } else {
        ""
    };
    format!(
        "version: 0.1\n{log}storage:\n{storage}{cache}  \
         delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
         {readonly}http:\n  addr: 127.0.0.1:{port}\n  secret: regsweep-test-secret\n"
    )
}

impl Env {
    /// Starts the reference registry (and moto for S3), pushes the scenario
    /// with `seed`, and checks every tag with skopeo.
    pub fn start(backend: Backend, seed: u64) -> Env {
        require(&["docker-registry", "skopeo", "python3"]);
        if backend == Backend::S3 {
            require(&["moto_server"]);
        }
        let n = STARTS.fetch_add(1, Ordering::SeqCst);
        let dir = tempfile::Builder::new()
            .prefix("regsweep-it-")
            .tempdir()
            .unwrap();
        let mut last_err = String::new();
        for attempt in 0..3 {
            let mut moto = None;
            let mut s3_port = None;
            if backend == Backend::S3 {
                let p = free_port();
                let mut d = Daemon::spawn(
                    "moto_server",
                    &["moto_server", "-H", "127.0.0.1", "-p", &p.to_string()],
                    &dir.path().join(format!("moto-{n}-{attempt}.log")),
                );
                if let Err(e) = d.wait_ready(p, "/", Duration::from_secs(60)) {
                    last_err = e;
                    continue;
                }
                let (st, _, body) =
                    http(p, "PUT", &format!("/{BUCKET}"), &[], b"").expect("create bucket");
                assert_eq!(
                    st,
                    200,
                    "creating bucket: {}",
                    String::from_utf8_lossy(&body)
                );
                moto = Some(d);
                s3_port = Some(p);
            }
            let root = (backend == Backend::Fs).then(|| dir.path().join("root"));
            if let Some(r) = &root {
                fs::create_dir_all(r).unwrap();
            }
            let port = free_port();
            let config = dir.path().join("config.yml");
            fs::write(
                &config,
                registry_config(port, backend, root.as_deref(), s3_port),
            )
            .unwrap();
            let cfg = config.to_str().unwrap().to_string();
            let mut reg = Daemon::spawn_with_cleanup(
                "docker-registry",
                &["docker-registry", "serve", &cfg],
                &dir.path().join(format!("registry-{n}-{attempt}.log")),
                Some(dir.path()),
            );
            if let Err(e) = reg.wait_ready(port, "/v2/", Duration::from_secs(60)) {
                last_err = e;
                continue; // most likely a port race: try again with new ports
            }
            let mut env = Env {
                backend,
                dir,
                port,
                config,
                root,
                s3_port,
                scenario: Value::Null,
                registry: Some(reg),
                moto,
            };
            env.push(seed);
            env.skopeo_check_all_tags();
            fs::write(env.dir.path().join(".cleanup-on-exit"), b"").unwrap();
            return env;
        }
        panic!("could not start the reference registry ({backend:?}): {last_err}");
    }

    fn push(&mut self, seed: u64) {
        let out = self.dir.path().join("scenario.json");
        let o = run(
            Command::new("python3")
                .arg(script("push_scenario.py"))
                .arg("--registry")
                .arg(format!("127.0.0.1:{}", self.port))
                .arg("--seed")
                .arg(seed.to_string())
                .arg("--out")
                .arg(&out),
            Duration::from_secs(180),
        );
        assert!(
            o.status.success(),
            "push_scenario.py failed: {}\n{}",
            o.stderr,
            self.registry_log()
        );
        self.scenario = serde_json::from_slice(&fs::read(&out).unwrap()).unwrap();
    }

    pub fn registry_log(&self) -> String {
        self.registry
            .as_ref()
            .map(|d| d.log_tail())
            .unwrap_or_default()
    }

    /// `skopeo copy --all` of every tag into an OCI layout: proves the
    /// pushed scenario is real and complete before anything else looks at it.
    pub fn skopeo_check_all_tags(&self) {
        let policy = self.dir.path().join("policy.json");
        fs::write(
            &policy,
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .unwrap();
        for (i, t) in self.tags().iter().enumerate() {
            let dest = self.dir.path().join(format!("oci-{i}"));
            let o = run(
                Command::new("skopeo")
                    .arg("--policy")
                    .arg(&policy)
                    .args(["copy", "-q", "--all", "--src-tls-verify=false"])
                    .arg(format!("docker://127.0.0.1:{}/{}:{}", self.port, t.0, t.1))
                    .arg(format!("oci:{}:{}", dest.display(), t.1)),
                Duration::from_secs(600),
            );
            assert!(
                o.status.success(),
                "skopeo copy {}:{} failed: {}",
                t.0,
                t.1,
                o.stderr
            );
            let _ = fs::remove_dir_all(&dest);
        }
    }

    /// (repository, tag, digest) of every tag that exists at the end of the push.
    pub fn tags(&self) -> Vec<(String, String, String)> {
        self.scenario["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (s(&t["repository"]), s(&t["tag"]), s(&t["digest"])))
            .collect()
    }

    /// The storage URL regsweep is given: the rootdirectory, or s3://bucket/prefix.
    pub fn storage_arg(&self) -> String {
        match self.backend {
            Backend::Fs => self.root.as_ref().unwrap().to_str().unwrap().to_string(),
            Backend::S3 => format!("s3://{BUCKET}{S3_ROOT}"),
        }
    }

    /// Environment for regsweep (S3 credentials and endpoint).
    pub fn regsweep_env(&self) -> Vec<(String, String)> {
        match self.backend {
            Backend::Fs => vec![],
            Backend::S3 => vec![
                ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
                ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
                ("AWS_REGION".into(), "us-east-1".into()),
                ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
                (
                    "AWS_ENDPOINT_URL".into(),
                    format!("http://127.0.0.1:{}", self.s3_port.unwrap()),
                ),
                ("AWS_ALLOW_HTTP".into(), "true".into()),
            ],
        }
    }

    /// `docker-registry garbage-collect --dry-run [-m] CONFIG`: the blobs it
    /// says are eligible for deletion. Panics if it fails.
    pub fn reference_gc(&self, delete_untagged: bool) -> RefGc {
        reference_gc(&self.config, delete_untagged)
    }

    /// `regsweep report <storage> --format json [extra]`.
    pub fn regsweep_report(&self, extra: &[&str]) -> Report {
        let mut args: Vec<String> = vec![
            "report".into(),
            self.storage_arg(),
            "--format".into(),
            "json".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        regsweep(&args, &self.regsweep_env())
    }

    /// `regsweep report --registry-config CONFIG --format json [extra]`, with
    /// no AWS_* variables: everything must come from the registry's config.
    pub fn regsweep_report_from_config(&self, extra: &[&str]) -> Report {
        let mut args: Vec<String> = vec![
            "report".into(),
            "--registry-config".into(),
            self.config.to_str().unwrap().into(),
            "--format".into(),
            "json".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        regsweep(&args, &[])
    }

    /// GET a manifest through the registry API: (content type, body).
    pub fn get_manifest(&self, repo: &str, reference: &str) -> (String, Vec<u8>) {
        let (st, h, body) = http(
            self.port,
            "GET",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", ACCEPT)],
            b"",
        )
        .expect("GET manifest");
        assert_eq!(
            st,
            200,
            "GET /v2/{repo}/manifests/{reference}: {}",
            String::from_utf8_lossy(&body)
        );
        (header(&h, "content-type").unwrap_or("").to_string(), body)
    }

    /// A fingerprint of the whole storage: every file (path, content) on the
    /// filesystem, or every key (with size, ETag, mtime) in the bucket.
    pub fn storage_fingerprint(&self) -> BTreeMap<String, String> {
        match self.backend {
            Backend::Fs => tree_fingerprint(self.root.as_ref().unwrap()),
            Backend::S3 => self.bucket_listing(),
        }
    }

    /// Every key in the bucket with its size, ETag and LastModified (moto does
    /// not check signatures, so a plain GET lists the bucket).
    pub fn bucket_listing(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("/{BUCKET}?list-type=2&max-keys=1000");
            if let Some(t) = &token {
                path.push_str(&format!("&continuation-token={}", urlencode(t)));
            }
            let (st, _, body) =
                http(self.s3_port.unwrap(), "GET", &path, &[], b"").expect("list bucket");
            assert_eq!(st, 200, "list bucket: {}", String::from_utf8_lossy(&body));
            let xml = String::from_utf8_lossy(&body).to_string();
            for c in xml_elements(&xml, "Contents") {
                let key = xml_elements(&c, "Key").pop().unwrap_or_default();
                out.insert(key, c.clone());
            }
            if xml.contains("<IsTruncated>true</IsTruncated>") {
                token = xml_elements(&xml, "NextContinuationToken").pop();
                assert!(
                    token.is_some(),
                    "truncated listing without a continuation token"
                );
            } else {
                break;
            }
        }
        out
    }
}

impl Env {
    /// On an object store, waits until every link written so far is more
    /// than the online apply's margin old: LastModified is kept to the
    /// second, so an apply counts a link written within about two seconds
    /// before its scan as a concurrent push and leaves it (and what it
    /// names) alone. Tests that compare an apply with its preview call this
    /// first; on a filesystem (times to the nanosecond) it returns at once.
    pub fn let_pushes_age(&self) {
        if self.backend != Backend::Fs {
            std::thread::sleep(Duration::from_millis(2100));
        }
    }

    /// Stops the registry and starts a fresh one on the same storage (new
    /// port, `self.config` rewritten) whose config has `log` as its `log:`
    /// section. Its stdout and stderr go to a new file, returned.
    pub fn restart_registry_with_log(&mut self, log: &str) -> PathBuf {
        self.restart_registry_with(RegistryOptions {
            log,
            blob_cache: false,
            readonly: false,
        })
    }

    /// [`Env::restart_registry_with_log`] with every option of the config.
    pub fn restart_registry_with(&mut self, opts: RegistryOptions<'_>) -> PathBuf {
        self.stop_registry();
        let mut last = String::new();
        for attempt in 0..3 {
            let port = free_port();
            fs::write(
                &self.config,
                registry_config_with(port, self.backend, self.root.as_deref(), self.s3_port, opts),
            )
            .unwrap();
            let cfg = self.config.to_str().unwrap().to_string();
            let out = self
                .dir
                .path()
                .join(format!("registry-restart-{port}-{attempt}.log"));
            let mut reg = Daemon::spawn_with_cleanup(
                "docker-registry",
                &["docker-registry", "serve", &cfg],
                &out,
                Some(self.dir.path()),
            );
            match reg.wait_ready(port, "/v2/", Duration::from_secs(60)) {
                Ok(()) => {
                    self.port = port;
                    self.registry = Some(reg);
                    return out;
                }
                Err(e) => last = e,
            }
        }
        panic!("could not restart the reference registry: {last}");
    }

    /// Stops the registry (its output file is complete afterwards); the
    /// storage stays.
    pub fn stop_registry(&mut self) {
        if let Some(old) = self.registry.take() {
            // Its wrapper would remove the whole temp dir (storage included).
            old.disarm_cleanup(self.dir.path());
            drop(old);
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        drop(self.registry.take());
        drop(self.moto.take());
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn xml_elements(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(after[..j].to_string());
        rest = &after[j + close.len()..];
    }
    out
}

pub fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
        .to_string()
}

/// A count that may be given as a number or as a list.
pub fn count(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().unwrap(),
        Value::Array(a) => a.len() as u64,
        other => panic!("expected a count (number or list), got {other}"),
    }
}

// ------------------------------------------------------ processes ----

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command to completion with a deadline (killing it after that),
/// stdout/stderr captured through temp files (no pipe deadlocks).
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |mut f: fs::File| {
        use std::io::Seek;
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        let mut v = Vec::new();
        f.read_to_end(&mut v).unwrap();
        String::from_utf8_lossy(&v).to_string()
    };
    Output {
        status,
        stdout: read(out),
        stderr: read(err),
    }
}

pub struct RefGc {
    /// Blobs the reference would delete.
    pub blobs: BTreeSet<String>,
    /// Manifests it would delete (-m only; no repository in its output).
    pub manifests: BTreeSet<String>,
    pub output: String,
}

/// `docker-registry garbage-collect --dry-run [-m] CONFIG`.
pub fn reference_gc(config: &Path, delete_untagged: bool) -> RefGc {
    require(&["docker-registry"]);
    let mut cmd = Command::new("docker-registry");
    cmd.args(["garbage-collect", "--dry-run"]);
    if delete_untagged {
        cmd.arg("-m");
    }
    cmd.arg(config).env_remove("AWS_CA_BUNDLE");
    let o = run(&mut cmd, Duration::from_secs(300));
    let all = format!("{}\n{}", o.stdout, o.stderr);
    assert!(
        o.status.success(),
        "reference garbage-collect (-m: {delete_untagged}) failed with {}:\n{all}",
        o.status
    );
    let grab = |prefix: &str| -> BTreeSet<String> {
        all.lines()
            .filter_map(|l| l.trim().strip_prefix(prefix))
            .map(|d| d.trim().to_string())
            .collect()
    };
    let blobs = grab("blob eligible for deletion: ");
    let manifests = grab("manifest eligible for deletion: ");
    for d in blobs.iter().chain(manifests.iter()) {
        assert!(
            d.starts_with("sha256:") && d.len() == 71,
            "unexpected digest {d:?} in reference output"
        );
    }
    RefGc {
        blobs,
        manifests,
        output: all,
    }
}

pub struct Report {
    pub status: ExitStatus,
    pub json: Value,
    pub stdout: String,
    pub stderr: String,
    pub args: Vec<String>,
}

impl Report {
    pub fn garbage_blobs(&self) -> BTreeSet<String> {
        self.arr("garbage_blobs")
            .iter()
            .map(|b| s(&b["digest"]))
            .collect()
    }
    pub fn garbage_blob_sizes(&self) -> BTreeMap<String, u64> {
        self.arr("garbage_blobs")
            .iter()
            .map(|b| {
                (
                    s(&b["digest"]),
                    b["size"]
                        .as_u64()
                        .unwrap_or_else(|| panic!("garbage blob size: {b}")),
                )
            })
            .collect()
    }
    pub fn garbage_manifests(&self) -> BTreeSet<(String, String)> {
        self.arr("garbage_manifests")
            .iter()
            .map(|m| (s(&m["repository"]), s(&m["digest"])))
            .collect()
    }
    pub fn arr(&self, key: &str) -> Vec<Value> {
        self.json[key]
            .as_array()
            .unwrap_or_else(|| panic!("report has no array `{key}`; report: {}", self.brief()))
            .clone()
    }
    pub fn repos(&self) -> BTreeMap<String, Value> {
        self.arr("repositories")
            .into_iter()
            .map(|r| (s(&r["name"]), r))
            .collect()
    }
    pub fn brief(&self) -> String {
        let mut j = self.stdout.clone();
        j.truncate(3000);
        format!(
            "regsweep {:?} -> {}\nstdout: {j}\nstderr: {}",
            self.args, self.status, self.stderr
        )
    }
    /// Exit 0 and no problem above "info": the tree was written by the
    /// reference registry itself, so any warning or error is a false alarm.
    pub fn assert_clean(&self) {
        // Problems of severity "info" are only for the record (exit 0 allows them).
        let problems: Vec<Value> = self.json["problems"]
            .as_array()
            .unwrap_or_else(|| panic!("report has no `problems` list\n{}", self.brief()))
            .iter()
            .filter(|p| p["severity"] != "info")
            .cloned()
            .collect();
        assert!(
            self.status.code() == Some(0) && problems.is_empty(),
            "expected exit 0 and no problems on a tree the reference wrote; got {} with problems {}\n{}",
            self.status,
            serde_json::to_string_pretty(&problems).unwrap(),
            self.brief()
        );
    }
}

/// Runs the regsweep binary with `args`; the environment gets `env` added and
/// every AWS_* variable (and AWS_CA_BUNDLE) removed first.
pub fn regsweep(args: &[String], env: &[(String, String)]) -> Report {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regsweep"));
    cmd.args(args);
    for (k, _) in std::env::vars_os().filter_map(|(k, v)| k.into_string().ok().map(|k| (k, v))) {
        if k.starts_with("AWS_") {
            cmd.env_remove(&k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = run(&mut cmd, Duration::from_secs(180));
    let json = serde_json::from_str(&o.stdout).unwrap_or(Value::Null);
    let r = Report {
        status: o.status,
        json,
        stdout: o.stdout,
        stderr: o.stderr,
        args: args.to_vec(),
    };
    assert!(
        matches!(r.status.code(), Some(0) | Some(1)),
        "regsweep exited with {} (2 = fatal error)\n{}",
        r.status,
        r.brief()
    );
    assert!(
        r.json.is_object(),
        "regsweep did not print a JSON object on stdout\n{}",
        r.brief()
    );
    r
}

// ----------------------------------------------------- trees on disk ----

/// path -> "dir" | "file:<len>:<content hash>:<mtime>" for every entry under `root`.
pub fn tree_fingerprint(root: &Path) -> BTreeMap<String, String> {
    use std::hash::{Hash, Hasher};
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
            let md = fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                out.insert(rel, "dir".to_string());
                stack.push(p);
            } else {
                let data = fs::read(&p).unwrap();
                let mut h = std::collections::hash_map::DefaultHasher::new();
                data.hash(&mut h);
                let mtime = md
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
                out.insert(
                    rel,
                    format!("file:{}:{:x}:{:?}:{:o}", data.len(), h.finish(), mtime, {
                        use std::os::unix::fs::PermissionsExt;
                        md.permissions().mode()
                    }),
                );
            }
        }
    }
    out
}

/// A copy of `fixtures/registry` in a new temporary directory: the
/// directory, the registry root, and the root as the storage argument.
pub fn fixture_copy() -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("registry");
    copy_tree(&repo_root().join("fixtures/registry"), &root);
    let storage = root.to_str().unwrap().to_string();
    (dir, root, storage)
}

pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            fs::copy(e.path(), &dst).unwrap();
        }
    }
}

pub fn diff_fingerprints(
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => d.push(format!("removed: {k}")),
            Some(w) if w != v => d.push(format!("changed: {k}")),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        d.push(format!("added: {k}"));
    }
    d
}

// ------------------------------------------------- expected sets ----

/// References of a manifest body: (config + layers) for an image,
/// child manifests for an index.
pub struct Parsed {
    pub is_index: bool,
    pub refs: Vec<String>,
    pub subject: Option<String>,
}

pub fn parse_manifest(body: &[u8]) -> Parsed {
    let v: Value = serde_json::from_slice(body).expect("manifest JSON");
    let mut refs = Vec::new();
    let is_index = v.get("manifests").is_some();
    if is_index {
        for m in v["manifests"].as_array().unwrap() {
            refs.push(s(&m["digest"]));
        }
    } else {
        if let Some(c) = v.get("config") {
            refs.push(s(&c["digest"]));
        }
        for l in v["layers"].as_array().cloned().unwrap_or_default() {
            refs.push(s(&l["digest"]));
        }
    }
    let subject = v.get("subject").map(|x| s(&x["digest"]));
    Parsed {
        is_index,
        refs,
        subject,
    }
}

pub fn sha256_hex_of(body: &[u8]) -> String {
    // Only used to double-check digests returned by the API; done with the
    // system tool to stay within std (no sha2 dev-dependency).
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(body).unwrap();
    let o = run(
        Command::new("sha256sum").arg(f.path()),
        Duration::from_secs(30),
    );
    format!("sha256:{}", o.stdout.split_whitespace().next().unwrap())
}

pub struct Expected {
    /// Config/layer blobs of the children of tagged multi-arch indexes that no
    /// other live manifest uses: what the reference's `-m` wrongly deletes.
    pub defect: BTreeSet<String>,
    /// (repository, digest) of every child of a tagged index.
    pub index_children: BTreeSet<(String, String)>,
    /// Blobs only used by referrers (subject set) of tagged manifests, which
    /// the reference's `-m` deletes and regsweep keeps by default.
    pub live_referrer_blobs: BTreeSet<String>,
    /// (repository, digest) of referrers whose subject is tagged.
    pub live_referrers: BTreeSet<(String, String)>,
}

/// Computes, independently of both tools, what `-m` loses, from the
/// registry API: tags -> manifests -> (index children -> their blobs).
pub fn expected_delete_untagged(env: &Env) -> Expected {
    let mut other_live: BTreeSet<String> = BTreeSet::new();
    let mut child_blobs: BTreeSet<String> = BTreeSet::new();
    let mut index_children = BTreeSet::new();
    let mut tagged: BTreeSet<(String, String)> = BTreeSet::new();
    for (repo, tag, digest) in env.tags() {
        let (_ct, body) = env.get_manifest(&repo, &tag);
        let d = sha256_hex_of(&body);
        assert_eq!(d, digest, "{repo}:{tag} moved since the push");
        tagged.insert((repo.clone(), d.clone()));
        other_live.insert(d.clone());
        let p = parse_manifest(&body);
        other_live.extend(p.refs.iter().cloned());
        if p.is_index {
            for c in &p.refs {
                index_children.insert((repo.clone(), c.clone()));
                let (_, cb) = env.get_manifest(&repo, c);
                let cp = parse_manifest(&cb);
                assert!(!cp.is_index, "nested indexes are not in the scenario");
                child_blobs.extend(cp.refs);
            }
        }
    }
    let mut live_referrers = BTreeSet::new();
    let mut referrer_blobs = BTreeSet::new();
    for r in env.scenario["referrers"].as_array().unwrap() {
        let (repo, digest) = (s(&r["repository"]), s(&r["digest"]));
        let (_, body) = env.get_manifest(&repo, &digest);
        let p = parse_manifest(&body);
        let subject = p.subject.expect("referrer without subject");
        if tagged.contains(&(repo.clone(), subject)) {
            live_referrers.insert((repo.clone(), digest.clone()));
            referrer_blobs.insert(digest);
            referrer_blobs.extend(p.refs);
        }
    }
    let defect: BTreeSet<String> = child_blobs.difference(&other_live).cloned().collect();
    let live_referrer_blobs = referrer_blobs
        .difference(&other_live)
        .filter(|d| !defect.contains(*d))
        .cloned()
        .collect();
    Expected {
        defect,
        index_children,
        live_referrer_blobs,
        live_referrers,
    }
}

pub fn show(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        return "{}".into();
    }
    set.iter().map(|d| format!("\n    {d}")).collect()
}

// ---------------------------------------------------- shared checks ----

fn set_diff_msg(what: &str, got: &BTreeSet<String>, want: &BTreeSet<String>) -> String {
    let missing: BTreeSet<String> = want.difference(got).cloned().collect();
    let extra: BTreeSet<String> = got.difference(want).cloned().collect();
    format!(
        "{what}: missing {}\n  unexpected {}",
        show(&missing),
        show(&extra)
    )
}

/// (a)/(c): default mode (every manifest with a revision link is live):
/// regsweep's garbage blobs are exactly the reference's dry-run set.
pub fn check_default_mode(env: &Env) {
    let reference = env.reference_gc(false);
    let report = env.regsweep_report(&[]);
    report.assert_clean();
    // The scenario is built so that the reference has something to collect:
    // the manifest deleted through the API (and its blobs), the lonely blob.
    for d in env.scenario["deleted_manifests"].as_array().unwrap() {
        assert!(
            reference.blobs.contains(&s(&d["digest"])),
            "scenario: reference keeps deleted manifest {d}"
        );
    }
    for b in env.scenario["unreferenced_blobs"].as_array().unwrap() {
        assert!(
            reference.blobs.contains(&s(&b["digest"])),
            "scenario: reference keeps unreferenced blob {b}"
        );
    }
    let got = report.garbage_blobs();
    assert!(
        got == reference.blobs,
        "default mode must agree with `docker-registry garbage-collect --dry-run` exactly\n{}\n{}",
        set_diff_msg(
            "regsweep garbage_blobs vs reference",
            &got,
            &reference.blobs
        ),
        report.brief()
    );
    // Nothing that still has a revision link is garbage in default mode.
    let deleted: BTreeSet<(String, String)> = env.scenario["deleted_manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (s(&d["repository"]), s(&d["digest"])))
        .collect();
    let gm = report.garbage_manifests();
    assert!(
        gm.is_subset(&deleted),
        "default mode: garbage_manifests must only name manifests without a revision link; got {gm:?}"
    );
    check_sizes(env, &report);
    check_repositories(env, &report);
}

/// Sizes in garbage_blobs are the blobs' real sizes, and reclaimable bytes
/// add up (each blob once, plus abandoned uploads).
pub fn check_sizes(env: &Env, report: &Report) {
    let sizes = report.garbage_blob_sizes();
    assert_eq!(
        sizes.len(),
        report.arr("garbage_blobs").len(),
        "a blob is listed twice in garbage_blobs"
    );
    for b in env.scenario["unreferenced_blobs"].as_array().unwrap() {
        assert_eq!(
            sizes.get(&s(&b["digest"])).copied(),
            b["size"].as_u64(),
            "size of unreferenced blob {b}"
        );
    }
    if let Some(root) = &env.root {
        for (d, size) in &sizes {
            let hex = d.strip_prefix("sha256:").unwrap();
            let p = root.join(format!(
                "docker/registry/v2/blobs/sha256/{}/{hex}/data",
                &hex[..2]
            ));
            assert_eq!(
                fs::metadata(&p).map(|m| m.len()).ok(),
                Some(*size),
                "size of {d}"
            );
        }
    }
    let uploads: u64 = report
        .arr("abandoned_uploads")
        .iter()
        .map(|u| u["size"].as_u64().unwrap_or(0))
        .sum();
    let blobs: u64 = sizes.values().sum();
    let reclaimable = report.json["summary"]["reclaimable_bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("summary.reclaimable_bytes missing\n{}", report.brief()));
    assert_eq!(
        reclaimable,
        blobs + uploads,
        "reclaimable_bytes = garbage blob sizes ({blobs}) + uploads ({uploads})"
    );
}

/// Every repository of the scenario is listed, with its tag count.
pub fn check_repositories(env: &Env, report: &Report) {
    let repos = report.repos();
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for r in env.scenario["repositories"].as_array().unwrap() {
        want.insert(s(r), 0);
    }
    for (repo, _, _) in env.tags() {
        *want.get_mut(&repo).unwrap() += 1;
    }
    let names: BTreeSet<&String> = repos.keys().collect();
    let want_names: BTreeSet<&String> = want.keys().collect();
    assert_eq!(
        names, want_names,
        "repositories in the report (nested and prefix names included)"
    );
    for (name, n) in &want {
        assert_eq!(count(&repos[name]["tags"]), *n, "tag count of {name}");
        for k in [
            "manifests_tagged",
            "manifests_untagged",
            "unique_bytes",
            "shared_bytes",
        ] {
            assert!(
                !repos[name][k].is_null(),
                "repository {name} has no `{k}`: {}",
                repos[name]
            );
        }
    }
}

/// (b)/(c): `--delete-untagged`. The reference's `-m` set R contains
/// regsweep's set U; R \ U is exactly what the reference wrongly loses (the
/// configs and layers of the children of tagged multi-arch indexes) plus
/// what regsweep keeps on purpose (referrers of tagged manifests).
pub fn check_delete_untagged(env: &Env) {
    let reference = env.reference_gc(true);
    let report = env.regsweep_report(&["--delete-untagged"]);
    report.assert_clean();
    let exp = expected_delete_untagged(env);
    let r = &reference.blobs;
    let u = report.garbage_blobs();
    assert!(
        !exp.defect.is_empty(),
        "scenario has no multi-arch children blobs"
    );
    let extra_in_u: BTreeSet<String> = u.difference(r).cloned().collect();
    assert!(
        extra_in_u.is_empty(),
        "regsweep --delete-untagged collects blobs that even the reference -m keeps:{}\n{}",
        show(&extra_in_u),
        report.brief()
    );
    let lost: BTreeSet<String> = exp.defect.intersection(&u).cloned().collect();
    assert!(
        lost.is_empty(),
        "regsweep --delete-untagged collects blobs of children of tagged multi-arch indexes (the reference's defect):{}",
        show(&lost)
    );
    let missing_defect: BTreeSet<String> = exp.defect.difference(r).cloned().collect();
    assert!(
        missing_defect.is_empty(),
        "the reference's -m defect did not show: it keeps these children blobs:{}\n{}",
        show(&missing_defect),
        reference.output
    );
    let r_minus_u: BTreeSet<String> = r.difference(&u).cloned().collect();
    let want: BTreeSet<String> = exp
        .defect
        .union(&exp.live_referrer_blobs)
        .cloned()
        .collect();
    assert!(
        r_minus_u == want,
        "R \\ U must be exactly the multi-arch defect set plus the blobs of live referrers\n{}\n{}",
        set_diff_msg("R \\ U", &r_minus_u, &want),
        report.brief()
    );
    // Manifests: never a child of a tagged index; never a live referrer;
    // always the manifest an overwritten tag left behind.
    let gm = report.garbage_manifests();
    let bad: Vec<_> = gm.intersection(&exp.index_children).collect();
    assert!(
        bad.is_empty(),
        "garbage_manifests names children of tagged indexes: {bad:?}"
    );
    let bad: Vec<_> = gm.intersection(&exp.live_referrers).collect();
    assert!(
        bad.is_empty(),
        "garbage_manifests names referrers of tagged manifests: {bad:?}"
    );
    let mut overwritten = 0;
    for m in env.scenario["untagged_manifests"].as_array().unwrap() {
        if s(&m["reason"]).contains("overwritten") {
            overwritten += 1;
            let key = (s(&m["repository"]), s(&m["digest"]));
            assert!(
                gm.contains(&key),
                "garbage_manifests lacks the overwritten tag's old manifest {key:?}: {gm:?}"
            );
        }
    }
    assert!(overwritten > 0, "scenario has no overwritten tag");
    // The reference's manifest list (no repositories) covers regsweep's.
    let gm_digests: BTreeSet<String> = gm.iter().map(|(_, d)| d.clone()).collect();
    let extra: BTreeSet<String> = gm_digests
        .difference(&reference.manifests)
        .cloned()
        .collect();
    let deleted: BTreeSet<String> = env.scenario["deleted_manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| s(&d["digest"]))
        .collect();
    let extra: BTreeSet<String> = extra.difference(&deleted).cloned().collect();
    assert!(
        extra.is_empty(),
        "garbage_manifests that the reference -m keeps:{}",
        show(&extra)
    );
    check_sizes(env, &report);
}

/// (e): the abandoned upload and the never-referenced blob.
pub fn check_uploads_and_unreferenced(env: &Env) {
    let report = env.regsweep_report(&[]);
    report.assert_clean();
    let ups = report.arr("abandoned_uploads");
    for a in env.scenario["abandoned_uploads"].as_array().unwrap() {
        let (repo, id) = (s(&a["repository"]), s(&a["uuid"]));
        let found = ups
            .iter()
            .find(|u| u["repository"] == repo.as_str() && u["id"] == id.as_str());
        let u = found
            .unwrap_or_else(|| panic!("abandoned upload {repo} {id} not reported; got {ups:?}"));
        let size = u["size"]
            .as_u64()
            .unwrap_or_else(|| panic!("upload size: {u}"));
        if env.backend == Backend::Fs {
            // (The S3 driver keeps upload bytes in an unfinished multipart
            // upload, not in an object, so the size there may be unknown.)
            assert!(
                size >= a["size"].as_u64().unwrap(),
                "upload size {size} < bytes sent {}",
                a["size"]
            );
        }
        // startedat was written by the registry: the age is known and small.
        let age = u["age_seconds"]
            .as_u64()
            .unwrap_or_else(|| panic!("upload age_seconds should be known: {u}"));
        assert!(
            age < 24 * 3600,
            "upload age {age}s for an upload made during this test"
        );
    }
    assert_eq!(
        ups.len(),
        env.scenario["abandoned_uploads"].as_array().unwrap().len(),
        "abandoned_uploads: {ups:?}"
    );
    let g = report.garbage_blobs();
    for b in env.scenario["unreferenced_blobs"].as_array().unwrap() {
        assert!(
            g.contains(&s(&b["digest"])),
            "unreferenced blob {b} not in garbage_blobs"
        );
    }
}

/// (f): a report changes nothing in the storage.
pub fn check_report_is_read_only(env: &Env) {
    let before = env.storage_fingerprint();
    assert!(
        before.len() > 50,
        "storage looks empty: {} entries",
        before.len()
    );
    env.regsweep_report(&[]);
    env.regsweep_report(&["--delete-untagged"]);
    let after = env.storage_fingerprint();
    let d = diff_fingerprints(&before, &after);
    assert!(
        d.is_empty(),
        "regsweep report changed the storage:\n{}",
        d.join("\n")
    );
}

/// `--registry-config CONFIG` finds the same storage and gives the same answer.
pub fn check_registry_config(env: &Env) {
    let a = env.regsweep_report(&[]);
    let b = env.regsweep_report_from_config(&[]);
    b.assert_clean();
    assert_eq!(
        a.garbage_blobs(),
        b.garbage_blobs(),
        "garbage_blobs: storage URL vs --registry-config"
    );
    let names = |r: &Report| r.repos().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&a),
        names(&b),
        "repositories: storage URL vs --registry-config"
    );
}

/// Per-repository counts that do not depend on the backend.
pub fn repo_counts(r: &Report) -> BTreeMap<String, (u64, u64, u64)> {
    r.repos()
        .into_iter()
        .map(|(n, v)| {
            (
                n,
                (
                    count(&v["tags"]),
                    count(&v["manifests_tagged"]),
                    count(&v["manifests_untagged"]),
                ),
            )
        })
        .collect()
}

/// An environment shared by all tests of one test binary, started once. If
/// starting it fails, every test using it fails with the same message
/// (without trying again).
pub type Shared = std::sync::OnceLock<Result<Env, String>>;

pub fn shared(cell: &'static Shared, backend: Backend) -> &'static Env {
    let r = cell.get_or_init(|| {
        std::panic::catch_unwind(|| Env::start(backend, SEED)).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into())
        })
    });
    match r {
        Ok(env) => env,
        Err(msg) => panic!("starting the shared {backend:?} environment failed: {msg}"),
    }
}

/// `promtool check metrics < FILE`: exit 0 and no lint output.
pub fn promtool_check(file: &Path) {
    require(&["promtool"]);
    let o = run(
        Command::new("sh")
            .arg("-c")
            .arg("promtool check metrics < \"$1\"")
            .arg("sh")
            .arg(file),
        Duration::from_secs(60),
    );
    assert!(
        o.status.success() && o.stdout.trim().is_empty() && o.stderr.trim().is_empty(),
        "promtool check metrics {}: {}\n{}\n{}",
        file.display(),
        o.status,
        o.stdout,
        o.stderr
    );
}

/// Samples of a metrics file: `name{labels}` -> value.
pub fn samples(file: &Path) -> BTreeMap<String, f64> {
    fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}
