//! Every storage backend against one conformance suite
//! (`tests/conformance/mod.rs`): the filesystem, S3 on moto, the S3
//! Inventory overlay over moto, Azure Blob on azurite and GCS on
//! fake-gcs-server, each on 127.0.0.1. Each test also uploads the registry
//! of `fixtures/registry` and checks that `regsweep report` gives the same
//! report there as on the filesystem. Needs `bash scripts/setup.sh`.

mod common;
mod conformance;

use conformance::servers::{self, Server};
use conformance::Subject;
use regsweep::s3_inventory::{self, csv, overlay::InventoryListing, Source};
use regsweep::storage::fs::FsStorage;
use regsweep::storage::object::{ObjectStorage, S3Settings};
use regsweep::storage::V2_PREFIX;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

const BUCKET: &str = "conformance";

/// `report --format json` of `args`, reduced by [`conformance::comparable`].
fn report(location: &str, extra: &[&str], env: &[(String, String)]) -> Value {
    let mut args: Vec<String> = ["report", location, "--format", "json"]
        .map(String::from)
        .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    conformance::comparable(common::regsweep(&args, env).json)
}

/// `report --registry-config FILE --format json` with `config` as the
/// registry's `config.yml`, reduced as [`report`] does.
fn report_by_config(config: &str, env: &[(String, String)]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("config.yml");
    std::fs::write(&f, config).unwrap();
    let args: Vec<String> = [
        "report",
        "--registry-config",
        f.to_str().unwrap(),
        "--format",
        "json",
    ]
    .map(String::from)
    .to_vec();
    conformance::comparable(common::regsweep(&args, env).json)
}

fn fixture() -> PathBuf {
    common::repo_root().join("fixtures/registry")
}

/// The report of a copy of the fixture on the filesystem: what every other
/// backend must report.
fn fs_report() -> &'static Value {
    static R: OnceLock<(tempfile::TempDir, Value)> = OnceLock::new();
    &R.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        common::copy_tree(&fixture(), dir.path());
        let r = report(dir.path().to_str().unwrap(), &[], &[]);
        (dir, r)
    })
    .1
}

fn assert_same_report(backend: &str, got: Value) {
    let want = fs_report();
    assert!(
        want.get("summary").is_some(),
        "the filesystem's report has a summary: {want}"
    );
    assert_eq!(
        &got,
        want,
        "{backend}: the report differs from the filesystem's\n{backend}: {}\nfs: {}",
        serde_json::to_string_pretty(&got).unwrap(),
        serde_json::to_string_pretty(want).unwrap()
    );
}

/// Uploads the fixture's registry under `<prefix>/docker/registry/v2/`.
fn upload_fixture(prefix: &str, put: &dyn Fn(&str, &[u8])) {
    let v2 = fixture().join(V2_PREFIX);
    for (k, body) in servers::files(&v2) {
        put(&format!("{prefix}/{V2_PREFIX}/{k}"), &body);
    }
}

fn timed(backend: &str, f: impl FnOnce()) {
    let t = Instant::now();
    f();
    eprintln!("{backend}: conformance suite in {:.2?}", t.elapsed());
}

#[test]
fn filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("conf");
    let put = |k: &str, body: &[u8]| {
        let p = root.join(V2_PREFIX).join(k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    };
    conformance::seed(&put);
    let storage = FsStorage::open(&root).unwrap();
    timed("filesystem", || {
        conformance::check(&Subject {
            storage: &storage,
            put: &put,
            quarantine_root: dir.path().join("q").to_str().unwrap().into(),
            copies: true,
            counts_requests: false,
        })
    });
    // The report of the filesystem is the reference: it must at least
    // have found the fixture's repositories.
    let repos = fs_report()["repositories"].as_array().map_or(0, Vec::len);
    assert!(repos > 0, "{}", fs_report());
}

fn s3_env(port: u16) -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", "conformance".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "conformance".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("AWS_ALLOW_HTTP", "true".to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec()
}

fn s3_storage(moto: &Server, prefix: &str) -> ObjectStorage {
    let s = S3Settings {
        bucket: BUCKET.into(),
        prefix: prefix.into(),
        region: None,
        endpoint: Some(format!("http://127.0.0.1:{}", moto.port)),
        access_key: Some("conformance".into()),
        secret_key: Some("conformance".into()),
        allow_http: true,
    };
    ObjectStorage::s3(&s, &format!("s3://{BUCKET}/{prefix}")).unwrap()
}

/// moto with the suite's objects under `conf/` and the fixture under `reg/`.
fn seeded_moto() -> (Server, impl Fn(&str, &[u8])) {
    let moto = servers::moto(BUCKET);
    let store = servers::s3_store(moto.port, BUCKET);
    let put = move |k: &str, body: &[u8]| servers::put(store.as_ref(), k, body);
    let conf = |k: &str, body: &[u8]| put(&format!("conf/{V2_PREFIX}/{k}"), body);
    conformance::seed(&conf);
    upload_fixture("reg", &put);
    (moto, put)
}

#[test]
fn s3_on_moto() {
    let (moto, put) = seeded_moto();
    let storage = s3_storage(&moto, "conf");
    let conf = |k: &str, body: &[u8]| put(&format!("conf/{V2_PREFIX}/{k}"), body);
    timed("s3", || {
        conformance::check(&Subject {
            storage: &storage,
            put: &conf,
            quarantine_root: "quarantine".into(),
            copies: true,
            counts_requests: true,
        })
    });
    let got = report(&format!("s3://{BUCKET}/reg"), &[], &s3_env(moto.port));
    assert_same_report("s3", got);
}

/// Writes an S3 Inventory (CSV) of the whole bucket into `dir`, as AWS
/// would, and returns its manifest.
fn write_inventory(moto: &Server, dir: &Path) -> PathBuf {
    use futures::TryStreamExt;
    let store = servers::s3_store(moto.port, BUCKET);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let metas: Vec<object_store::ObjectMeta> = rt.block_on(store.list(None).try_collect()).unwrap();
    let rows: Vec<(String, u64, String)> = metas
        .iter()
        .map(|m| {
            let t = m.last_modified.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            (m.location.to_string(), m.size, t)
        })
        .collect();
    assert!(rows.len() > 100, "the bucket holds the fixture");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let data = csv::write_gz(BUCKET, &rows);
    std::fs::write(dir.join("data/part-0.csv.gz"), &data).unwrap();
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let manifest = format!(
        r#"{{"sourceBucket":"{BUCKET}","destinationBucket":"arn:aws:s3:::{BUCKET}","version":"2016-11-30","creationTimestamp":"{created}","fileFormat":"CSV","fileSchema":"Bucket, Key, Size, LastModifiedDate","files":[{{"key":"inv/{BUCKET}/cfg/data/part-0.csv.gz","size":{},"MD5checksum":"0"}}]}}"#,
        data.len()
    );
    let m = dir.join("manifest.json");
    std::fs::write(&m, manifest).unwrap();
    m
}

#[test]
fn s3_inventory_overlay() {
    let (moto, put) = seeded_moto();
    let inv = tempfile::tempdir().unwrap();
    let manifest = write_inventory(&moto, inv.path());
    let loaded = s3_inventory::load(
        &Source::Local(manifest.clone()),
        "conformance inventory",
        &format!("conf/{V2_PREFIX}/"),
        Some(BUCKET),
        None,
    )
    .unwrap();
    assert_eq!(loaded.index.len(), conformance::objects().len());
    let storage = InventoryListing::new(Box::new(s3_storage(&moto, "conf")), loaded);
    let conf = |k: &str, body: &[u8]| put(&format!("conf/{V2_PREFIX}/{k}"), body);
    timed("s3 inventory overlay", || {
        conformance::check(&Subject {
            storage: &storage,
            put: &conf,
            quarantine_root: "quarantine".into(),
            copies: true,
            counts_requests: true,
        })
    });
    let got = report(
        &format!("s3://{BUCKET}/reg"),
        &["--listing", manifest.to_str().unwrap()],
        &s3_env(moto.port),
    );
    assert_same_report("s3 inventory overlay", got);
}

#[test]
fn azure_on_azurite() {
    let Some(az) = servers::azurite(BUCKET) else {
        return;
    };
    let store = servers::azure_store(az.port, BUCKET);
    let put = |k: &str, body: &[u8]| servers::put(store.as_ref(), k, body);
    let conf = |k: &str, body: &[u8]| put(&format!("conf/{V2_PREFIX}/{k}"), body);
    conformance::seed(&conf);
    upload_fixture("reg", &put);
    let storage = ObjectStorage::from_url_with(
        &format!("az://{BUCKET}/conf"),
        servers::azure_options(az.port),
    )
    .unwrap();
    timed("azure", || {
        conformance::check(&Subject {
            storage: &storage,
            put: &conf,
            quarantine_root: "quarantine".into(),
            copies: true,
            counts_requests: true,
        })
    });
    let got = report(
        &format!("az://{BUCKET}/reg"),
        &[],
        &servers::azure_env(az.port),
    );
    assert_same_report("azure", got);
    // The registry's own config.yml (its azure driver's keys) says where.
    let config = format!(
        "version: 0.1\nstorage:\n  azure:\n    accountname: {}\n    accountkey: {}\n    \
         container: {BUCKET}\n    serviceurl: http://127.0.0.1:{}/{}\n    rootdirectory: /reg\n",
        servers::AZ_ACCOUNT,
        servers::AZ_KEY,
        az.port,
        servers::AZ_ACCOUNT
    );
    assert_same_report("azure by --registry-config", report_by_config(&config, &[]));
}

#[test]
fn gcs_on_fake_gcs_server() {
    let Some(gcs) = servers::fake_gcs(BUCKET) else {
        return;
    };
    let port = gcs.port;
    let put = |k: &str, body: &[u8]| servers::gcs_put(port, BUCKET, k, body);
    let conf = |k: &str, body: &[u8]| put(&format!("conf/{V2_PREFIX}/{k}"), body);
    conformance::seed(&conf);
    upload_fixture("reg", &put);
    let storage =
        ObjectStorage::from_url_with(&format!("gs://{BUCKET}/conf"), servers::gcs_options(port))
            .unwrap();
    timed("gcs", || {
        conformance::check(&Subject {
            storage: &storage,
            put: &conf,
            quarantine_root: "quarantine".into(),
            // fake-gcs-server answers the XML API's copy (a PUT with
            // x-goog-copy-source) with 400 "invalid uploadType".
            copies: false,
            counts_requests: true,
        })
    });
    let got = report(&format!("gs://{BUCKET}/reg"), &[], &servers::gcs_env(port));
    assert_same_report("gcs", got);
    // The registry's own config.yml: its gcs driver's bucket, rootdirectory
    // and inline credentials (here the emulator's; plain HTTP allowed by
    // the environment, as for gs://).
    let config = format!(
        "storage:\n  gcs:\n    bucket: {BUCKET}\n    rootdirectory: /reg/\n    credentials:\n      \
         private_key: \"\"\n      private_key_id: \"\"\n      client_email: \"\"\n      \
         gcs_base_url: http://127.0.0.1:{port}\n      disable_oauth: true\n"
    );
    let env = vec![("GOOGLE_ALLOW_HTTP".to_string(), "true".to_string())];
    assert_same_report("gcs by --registry-config", report_by_config(&config, &env));
}
