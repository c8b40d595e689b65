//! `--listing`: an S3 Inventory of the reference registry's bucket on moto
//! (written here from a LIST of the bucket, as AWS would write it) as the
//! listing of `report` and `sweep`. Needs `bash scripts/setup.sh`.

mod common;

use common::sweep::*;
use common::*;
use regsweep::s3_inventory::{csv, parquet};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// (key, size, LastModified as RFC 3339, as milliseconds) of every object
/// in the bucket.
fn bucket_rows(e: &Env) -> Vec<(String, u64, String, i64)> {
    let field = |xml: &str, tag: &str| -> String {
        let open = format!("<{tag}>");
        let at = xml.find(&open).unwrap() + open.len();
        xml[at..at + xml[at..].find("</").unwrap()].to_string()
    };
    e.bucket_listing()
        .into_iter()
        .map(|(k, xml)| {
            let t = field(&xml, "LastModified");
            let ms = chrono::DateTime::parse_from_rfc3339(&t)
                .unwrap()
                .timestamp_millis();
            (k, field(&xml, "Size").parse().unwrap(), t, ms)
        })
        .collect()
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

fn manifest(format: &str, schema: &str, files: &[(String, usize)], created: u128) -> String {
    let files: Vec<String> = files
        .iter()
        .map(|(k, n)| format!(r#"{{"key":"{k}","size":{n},"MD5checksum":"0"}}"#))
        .collect();
    format!(
        r#"{{"sourceBucket":"{BUCKET}","destinationBucket":"arn:aws:s3:::{BUCKET}","version":"2016-11-30","creationTimestamp":"{created}","fileFormat":"{format}","fileSchema":"{schema}","files":[{}]}}"#,
        files.join(",")
    )
}

const SCHEMA: &str = "Bucket, Key, Size, LastModifiedDate, ETag";

/// Writes a local inventory of the bucket as `aws s3 cp --recursive` lays
/// it out (`manifest.json`, `data/<file>`), its rows in two data files.
fn write_local(dir: &Path, rows: &[(String, u64, String, i64)], parquet_format: bool) -> PathBuf {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let half = rows.len() / 2;
    let mut files = Vec::new();
    for (i, chunk) in [&rows[..half], &rows[half..]].iter().enumerate() {
        let (name, data) = if parquet_format {
            let r: Vec<(String, u64, i64)> = chunk
                .iter()
                .map(|(k, s, _, ms)| (k.clone(), *s, *ms))
                .collect();
            (
                format!("part-{i}.parquet"),
                parquet::write(BUCKET, &r, true),
            )
        } else {
            let r: Vec<(String, u64, String)> = chunk
                .iter()
                .map(|(k, s, t, _)| (k.clone(), *s, t.clone()))
                .collect();
            (format!("part-{i}.csv.gz"), csv::write_gz(BUCKET, &r))
        };
        std::fs::write(dir.join("data").join(&name), &data).unwrap();
        files.push((format!("inv/{BUCKET}/cfg/data/{name}"), data.len()));
    }
    let (format, schema) = if parquet_format {
        ("Parquet", "message s3.inventory { required binary bucket (STRING); required binary key (STRING); optional int64 size; optional int64 last_modified_date (TIMESTAMP(MILLIS,true)); optional binary e_tag (STRING); }")
    } else {
        ("CSV", SCHEMA)
    };
    let m = dir.join("manifest.json");
    std::fs::write(&m, manifest(format, schema, &files, now_ms())).unwrap();
    m
}

/// The report with what differs between runs (times, requests) removed.
fn comparable(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|k, _| {
                    !(k == "requests"
                        || k == "age_seconds"
                        || k.ends_with("_at")
                        || k.contains("time")
                        || k == "generated")
                });
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

fn put_object(e: &Env, key: &str, body: &[u8]) {
    let (st, _, resp) = http(
        e.s3_port.unwrap(),
        "PUT",
        &format!("/{BUCKET}/{key}"),
        &[],
        body,
    )
    .expect("PUT object");
    assert_eq!(st, 200, "PUT {key}: {}", String::from_utf8_lossy(&resp));
}

#[test]
fn s3_inventory_listing_reports_like_a_listing_and_sweeps_safely() {
    let mut e = Env::start(Backend::S3, 7);
    let dir = e.dir.path().to_path_buf();
    let rows = bucket_rows(&e);
    let csv_m = write_local(&dir.join("inv-csv"), &rows, false);
    let pq_m = write_local(&dir.join("inv-parquet"), &rows, true);
    // The same CSV inventory in the bucket, outside the registry's root.
    let data = std::fs::read(dir.join("inv-csv/data/part-0.csv.gz")).unwrap();
    let data1 = std::fs::read(dir.join("inv-csv/data/part-1.csv.gz")).unwrap();
    put_object(&e, "inventory/data/part-0.csv.gz", &data);
    put_object(&e, "inventory/data/part-1.csv.gz", &data1);
    let m = manifest(
        "CSV",
        SCHEMA,
        &[
            ("inventory/data/part-0.csv.gz".into(), data.len()),
            ("inventory/data/part-1.csv.gz".into(), data1.len()),
        ],
        now_ms(),
    );
    put_object(&e, "inventory/manifest.json", m.as_bytes());
    let s3_m = format!("s3-inventory://{BUCKET}/inventory/manifest.json");

    // Reports: the same as from a LIST of the bucket, with no LIST sent.
    for mode in [&[][..], &["--delete-untagged"][..]] {
        let listed = e.regsweep_report(mode);
        assert_eq!(
            listed.json["summary"]["requests"]["list"]
                .as_u64()
                .map(|n| n > 0),
            Some(true)
        );
        for inv in [
            csv_m.to_str().unwrap(),
            pq_m.to_str().unwrap(),
            s3_m.as_str(),
        ] {
            let mut args = mode.to_vec();
            args.extend(["--listing", inv]);
            let r = e.regsweep_report(&args);
            assert_eq!(
                comparable(r.json.clone()),
                comparable(listed.json.clone()),
                "report {args:?} differs from the listed one"
            );
            let req = &r.json["summary"]["requests"];
            assert_eq!(req["list"].as_u64(), Some(0), "{args:?}: {req}");
            assert_eq!(
                req["get"].as_u64(),
                listed.json["summary"]["requests"]["get"].as_u64(),
                "{args:?}: {req}"
            );
        }
    }

    // A push after the inventory: the unreferenced blob becomes a layer of
    // a new image in a new repository, with a new config.
    let tags = e.tags();
    let lonely = e.scenario["unreferenced_blobs"][0].clone();
    let (lonely_repo, lonely_d) = (s(&lonely["repository"]), s(&lonely["digest"]));
    let repo = "late/app";
    e.mount_blob(repo, &lonely_d, &lonely_repo);
    let cfg = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{lonely_d}"]}}}}"#
    );
    let cfg_d = e.push_blob(repo, cfg.as_bytes());
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{cfg_d}"}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","size":{},"digest":"{lonely_d}"}}]}}"#,
        cfg.len(),
        lonely["size"].as_u64().unwrap()
    );
    e.put_manifest(
        repo,
        "v1",
        body.as_bytes(),
        "application/vnd.oci.image.manifest.v1+json",
    );
    let manifest_d = sha256_hex_of(body.as_bytes());
    // And a never-referenced blob pushed after the inventory.
    let fresh_d = e.push_blob(repo, b"pushed after the inventory");

    let journal = dir.join("inv-journal.jsonl");
    let storage = e.storage_arg();
    let o = e.regsweep_run(&[
        "sweep",
        "--quiet",
        &storage,
        "--delete-untagged",
        "--grace",
        "0s",
        "--upload-age",
        "0s",
        "--apply",
        "--settle",
        "0s",
        "--journal",
        journal.to_str().unwrap(),
        "--listing",
        csv_m.to_str().unwrap(),
    ]);
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "sweep --listing: {}\n{}\n{}",
        o.status,
        o.stdout,
        o.stderr
    );
    assert!(
        o.stderr.contains("repositories/ listed in the bucket"),
        "{}",
        o.stderr
    );
    let after: BTreeMap<String, String> = e.bucket_listing();
    let root = format!("{}/{V2}", S3_ROOT.trim_start_matches('/'));
    for (what, d) in [
        ("re-referenced blob", &lonely_d),
        ("config", &cfg_d),
        ("manifest", &manifest_d),
        ("fresh blob", &fresh_d),
    ] {
        let k = format!("{root}{}data", blob_key(d));
        assert!(
            after.contains_key(&k),
            "the {what} pushed after the inventory was deleted: {k}\n{}",
            o.stderr
        );
    }
    // Something the inventory proved garbage was removed.
    let removed = rows
        .iter()
        .filter(|(k, ..)| k.starts_with(&root) && !after.contains_key(k))
        .count();
    assert!(removed > 0, "nothing was swept\n{}\n{}", o.stdout, o.stderr);
    e.restart_registry();
    let mut all = tags.clone();
    all.push((repo.into(), "v1".into(), String::new()));
    e.assert_all_pull(
        &all,
        "after a sweep listed by an inventory older than a push",
    );

    // Broken inventories: exit 2, a clear message, nothing touched.
    let before = e.bucket_listing();
    let bad = dir.join("inv-bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("manifest.json"),
        manifest(
            "CSV",
            SCHEMA,
            &[("inv/x/data/gone.csv.gz".into(), 10)],
            now_ms(),
        ),
    )
    .unwrap();
    let o = e.regsweep_run(&["report", &storage, "--listing", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", o.stderr);
    assert!(
        o.stderr.contains("gone.csv.gz") && o.stderr.contains("missing"),
        "{}",
        o.stderr
    );
    std::fs::write(
        bad.join("manifest.json"),
        manifest(
            "CSV",
            "Bucket, Key, ETag",
            &[("inv/x/data/gone.csv.gz".into(), 10)],
            now_ms(),
        ),
    )
    .unwrap();
    let o = e.regsweep_run(&[
        "sweep",
        &storage,
        "--apply",
        "--settle",
        "0s",
        "--grace",
        "0s",
        "--listing",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("no size column"), "{}", o.stderr);
    let pq_bad = dir.join("inv-parquet-bad");
    std::fs::create_dir_all(pq_bad.join("data")).unwrap();
    let data = parquet::write(BUCKET, &[("k".into(), 1, 1)], false);
    std::fs::write(pq_bad.join("data/x.parquet"), &data).unwrap();
    std::fs::write(
        pq_bad.join("manifest.json"),
        manifest(
            "Parquet",
            "",
            &[("inv/x/data/x.parquet".into(), data.len())],
            now_ms(),
        ),
    )
    .unwrap();
    let o = e.regsweep_run(&["report", &storage, "--listing", pq_bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", o.stderr);
    assert!(
        o.stderr.contains("x.parquet") && o.stderr.contains("no size column"),
        "{}",
        o.stderr
    );
    assert_eq!(
        before,
        e.bucket_listing(),
        "a failed run changed the bucket"
    );
}
