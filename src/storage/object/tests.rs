//! Tests of the object-store backend, on `object_store`'s in-memory store:
//! keys under the root prefix, request counting, the flat split listing
//! against the filesystem scan, and reads handed over as they end under
//! one limit shared by threads.

use super::*;
use object_store::memory::InMemory;
use object_store::PutPayload;

#[test]
fn lists_reads_and_splits_keys_under_the_root_prefix() {
    let mem = Arc::new(InMemory::new());
    let s = ObjectStorage::new(mem.clone(), "/reg/root/", "mem://").unwrap();
    s.block(async {
        for (k, v) in [
            (
                "reg/root/docker/registry/v2/blobs/sha256/ab/abcd/data",
                "hello",
            ),
            (
                "reg/root/docker/registry/v2/repositories/a/_layers/sha256/ab/link",
                "x",
            ),
            ("other/docker/registry/v2/blobs/sha256/cd/cdef/data", "no"),
        ] {
            mem.put(&ObjPath::from(k), PutPayload::from(v.as_bytes().to_vec()))
                .await
                .unwrap();
        }
    });
    let l = s.list("blobs/", true).unwrap();
    assert_eq!(l.entries.len(), 1);
    assert_eq!(l.entries[0].key, "blobs/sha256/ab/abcd/data");
    assert_eq!(l.entries[0].size, Some(5));
    let d = s.list_dirs("repositories/a/").unwrap();
    assert_eq!(d.dirs, vec!["_layers".to_string()]);
    assert_eq!(s.read("blobs/sha256/ab/abcd/data", 10).unwrap(), b"hello");
    assert!(matches!(
        s.read("blobs/sha256/ab/abcd/data", 2),
        Err(StorageError::TooLarge { .. })
    ));
    assert!(s.read("blobs/nope", 10).unwrap_err().is_not_found());
    let many = s.read_many(&["blobs/sha256/ab/abcd/data".into(), "x".into()], 10);
    assert!(many[0].is_ok() && many[1].is_err());
}

/// A prefix with nothing under it (a typo in the bucket prefix) is not
/// a clean, empty registry: the scan fails, so `report` and `verify`
/// exit 2 instead of calling it whole.
#[test]
fn scan_of_a_prefix_with_nothing_under_it_fails() {
    let mem = Arc::new(InMemory::new());
    s_put(&mem, "reg/docker/registry/v2/blobs/sha256/ab/abcd/data");
    let progress = crate::progress::Progress::hidden();
    let opts = crate::scan::ScanOptions::fast();
    let wrong = ObjectStorage::new(mem.clone(), "/regg/", "mem://regg").unwrap();
    let err = crate::scan::scan(&wrong, &opts, &progress).unwrap_err();
    assert!(
        err.to_string().contains("not a registry root"),
        "unexpected error: {err}"
    );
    let right = ObjectStorage::new(mem, "/reg/", "mem://reg").unwrap();
    let inv = crate::scan::scan(&right, &opts, &progress).expect("a registry with a blob");
    assert_eq!(inv.blobs.len(), 0, "abcd is not a sha256 digest");
}

/// What a scan found, as sorted lines: the same on every backend.
fn described(inv: &crate::scan::Inventory) -> Vec<String> {
    let d = |id: u32| inv.interner.digest(id).to_string();
    let mut out: Vec<String> = inv
        .blobs
        .iter()
        .map(|b| format!("blob {}", d(b.id)))
        .collect();
    for r in &inv.repos {
        let ids = |v: &[u32]| {
            let mut s: Vec<String> = v.iter().map(|&i| d(i)).collect();
            s.sort();
            s.join(",")
        };
        out.push(format!(
            "repo {} visible={} revisions={} layers={} uploads={}",
            r.name,
            r.visible,
            ids(&r.revisions),
            ids(&r.layers),
            r.uploads.len()
        ));
        for t in &r.tags {
            out.push(format!(
                "tag {}:{} {:?} {}",
                r.name,
                t.name,
                t.current.map(d),
                ids(&t.history)
            ));
        }
    }
    for p in &inv.problems {
        out.push(format!("problem {:?} {:?} {}", p.kind, p.severity, p.path));
    }
    out.sort();
    out
}

/// A registry of `blobs` blobs and `repos` repositories (links, tags,
/// an upload, odd entries), as (key, content).
fn synthetic_registry(blobs: usize, repos: usize) -> Vec<(String, String)> {
    let hex = |i: usize| {
        crate::digest::hex(&crate::storage::hash::sha256_bytes(i.to_string().as_bytes()).sha256)
    };
    let mut keys = Vec::new();
    for i in 0..blobs {
        let h = hex(i);
        keys.push((
            format!("blobs/sha256/{}/{h}/data", &h[..2]),
            format!("blob {i}"),
        ));
    }
    for r in 0..repos {
        let name = format!("team-{}/svc-{r}", r % 4);
        for j in 0..12 {
            let h = hex((r * 31 + j) % (blobs + 5));
            let link = format!("sha256:{h}");
            keys.push((
                format!("repositories/{name}/_layers/sha256/{h}/link"),
                link.clone(),
            ));
            if j % 3 == 0 {
                keys.push((
                    format!("repositories/{name}/_manifests/revisions/sha256/{h}/link"),
                    link.clone(),
                ));
                let tag = format!("v{j}");
                keys.push((
                    format!("repositories/{name}/_manifests/tags/{tag}/current/link"),
                    link.clone(),
                ));
                keys.push((
                    format!("repositories/{name}/_manifests/tags/{tag}/index/sha256/{h}/link"),
                    link,
                ));
            }
        }
    }
    keys.push((
        "repositories/only-layers/_layers/sha256/ab/link".into(),
        "x".into(),
    ));
    keys.push(("repositories/team-0/_odd/x".into(), "x".into()));
    keys.push(("repositories/stray.txt".into(), "x".into()));
    keys.push((
        "repositories/team-1/svc-1/_uploads/u1/startedat".into(),
        "2026-01-01T00:00:00Z".into(),
    ));
    keys.push((
        "repositories/team-1/svc-1/_uploads/u1/data".into(),
        "abc".into(),
    ));
    keys.push(("blobs/sha512/ab/x/data".into(), "x".into()));
    keys.push(("blobs/sha256/zz/x/data".into(), "x".into()));
    keys.push(("blobs/sha256/stray".into(), "x".into()));
    keys
}

/// The object-store scan lists `blobs/` and `repositories/` flat,
/// split into ranges once a page is full; it must find exactly what the
/// filesystem scan finds in the same tree, in about one LIST per 1,000
/// keys, and count every request.
#[test]
fn flat_split_listing_finds_what_the_filesystem_scan_finds() {
    for (blobs, repos) in [(40, 3), (2600, 60)] {
        let keys = synthetic_registry(blobs, repos);
        let dir = tempfile::tempdir().unwrap();
        let mem = Arc::new(InMemory::new());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for (k, v) in &keys {
            let p = dir.path().join(V2_PREFIX).join(k);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, v).unwrap();
            rt.block_on(mem.put(
                &ObjPath::from(format!("reg/{V2_PREFIX}/{k}")),
                PutPayload::from(v.as_bytes().to_vec()),
            ))
            .unwrap();
        }
        let progress = crate::progress::Progress::hidden();
        let opts = crate::scan::ScanOptions::fast();
        let fs = crate::storage::fs::FsStorage::open(dir.path()).unwrap();
        let want = described(&crate::scan::scan(&fs, &opts, &progress).unwrap());
        let s = ObjectStorage::new(mem, "reg", "mem://reg").unwrap();
        let got = described(&crate::scan::scan(&s, &opts, &progress).unwrap());
        assert_eq!(got, want, "{blobs} blobs, {repos} repositories");
        let sent = s.requests().unwrap().snapshot();
        let tags = keys
            .iter()
            .filter(|(k, _)| k.ends_with("/current/link"))
            .count() as u64;
        let pages = (keys.len() as u64).div_ceil(1000);
        // Tags' current links and the upload's startedat are read;
        // listings: a page per 1,000 keys, plus the pages that end
        // ranges early and the listings of names to cut at.
        assert_eq!(sent.get, tags + 1, "{sent}");
        assert!(sent.list <= pages + 8, "{sent} for {} keys", keys.len());
        assert_eq!((sent.head, sent.delete, sent.copy), (0, 0, 0));
        assert_eq!(sent.total, sent.list + sent.get);
    }
}

#[test]
fn requests_are_counted_by_kind() {
    let mem = Arc::new(InMemory::new());
    for i in 0..2500 {
        s_put(&mem, &format!("r/{V2_PREFIX}/blobs/k{i:04}"));
    }
    let s = ObjectStorage::new(mem, "r", "mem://r").unwrap();
    let c = s.requests().unwrap();
    assert_eq!(s.list("blobs/", true).unwrap().entries.len(), 2500);
    assert_eq!(c.snapshot().list, 3, "three pages of 1,000 keys at most");
    let d = s.list_dirs("").unwrap();
    assert_eq!(d.dirs, vec!["blobs".to_string()]);
    assert_eq!(c.snapshot().list, 4);
    let keys: Vec<String> = (0..10).map(|i| format!("blobs/k{i:04}")).collect();
    assert!(s.read_many(&keys, 10).iter().all(|r| r.is_ok()));
    assert!(s.stat("blobs/k0001").is_ok());
    assert!(s.stat("blobs/nope").is_err());
    s.delete("blobs/k0001").unwrap();
    assert!(s.delete_many(&keys[2..]).iter().all(|r| r.is_ok()));
    s.quarantine("blobs/k0000", "q").unwrap();
    let got = c.snapshot();
    assert_eq!(
        (got.list, got.get, got.head, got.delete, got.copy),
        (4, 10, 2, 3, 1),
        "{got}"
    );
    assert_eq!(got.total, 20);
    assert_eq!(
        got.to_string(),
        "20 requests (4 LIST, 10 GET, 2 HEAD, 3 DELETE, 1 COPY)"
    );
    // A listing split into ranges lists every key once.
    let split = s
        .list_split("blobs/", &|_, _| {
            vec!["blobs/k1500".into(), "blobs/k2000".into(), "other".into()]
        })
        .unwrap();
    let keys: Vec<&str> = split.entries.iter().map(|e| e.key.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys.len(), 2490);
    assert_eq!(sorted.len(), keys.len());
    // First page (to k1009), then (k1009, k1500], (k1500, k2000], (k2000, ..): a
    // page each.
    assert_eq!(c.snapshot().list - got.list, 4);
}

fn s_put(mem: &Arc<InMemory>, key: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(mem.put(&ObjPath::from(key), PutPayload::from(b"x".to_vec())))
        .unwrap();
}

/// `read_each` hands over every key once, with its own content, whatever
/// order the reads end in; reads sent from several threads at once share
/// the backend's one limit on requests in flight and give every permit
/// back.
#[test]
fn read_each_hands_over_each_read_once_and_threads_share_the_limit() {
    let mem = Arc::new(InMemory::new());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for i in 0..300 {
        let key = format!("r/{V2_PREFIX}/blobs/k{i:03}");
        rt.block_on(mem.put(
            &ObjPath::from(key),
            PutPayload::from(format!("v{i}").into_bytes()),
        ))
        .unwrap();
    }
    let mut s = ObjectStorage::new(mem, "r", "mem://r").unwrap();
    s.set_concurrency(4);
    let mut keys: Vec<String> = (0..300).map(|i| format!("blobs/k{i:03}")).collect();
    keys.push("blobs/nope".into());
    type Got = std::sync::Mutex<Vec<Result<Vec<u8>, StorageError>>>;
    let seen: Vec<Got> = keys.iter().map(|_| Default::default()).collect();
    s.read_each(&keys, 100, &|i, r| seen[i].lock().unwrap().push(r));
    for (i, got) in seen.into_iter().enumerate() {
        let got = got.into_inner().unwrap();
        assert_eq!(got.len(), 1, "key {i} handed over once");
        match (&got[0], i) {
            (Err(e), 300) => assert!(e.is_not_found()),
            (Ok(b), _) => assert_eq!(b, format!("v{i}").as_bytes()),
            (other, _) => panic!("key {i}: {other:?}"),
        }
    }
    let (a, b) = std::thread::scope(|sc| {
        let a = sc.spawn(|| s.read_many(&keys[..150], 100));
        let b = sc.spawn(|| s.read_many(&keys[150..300], 100));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a.iter().chain(&b).all(|r| r.is_ok()));
    assert_eq!(s.in_flight.available_permits(), 4);
    assert_eq!(s.requests().unwrap().snapshot().get, 301 + 300);
}

/// The registry root of a `gs://` or `az://` URL is its whole path (for
/// `az://`, `object_store` alone would drop the path's first component).
#[test]
fn gs_and_az_urls_keep_their_whole_path_as_the_root() {
    // The storage emulator's published account key.
    const KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    let az = |u: &str| {
        let opts = [
            ("azure_storage_account_name", "devstoreaccount1"),
            ("azure_storage_account_key", KEY),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        ObjectStorage::from_url_with(u, opts).unwrap().base
    };
    assert_eq!(az("az://container/reg/root"), "reg/root/docker/registry/v2");
    assert_eq!(az("az://container/reg/"), "reg/docker/registry/v2");
    assert_eq!(az("az://container"), "docker/registry/v2");
    let key = r#"{"private_key":"","private_key_id":"","client_email":"","disable_oauth":true}"#;
    let gs = ObjectStorage::from_url_with(
        "gs://bucket/reg/root",
        [("google_service_account_key".to_string(), key.to_string())],
    )
    .unwrap();
    assert_eq!(gs.base, "reg/root/docker/registry/v2");
    assert_eq!(gs.describe(), "gs://bucket/reg/root");
    assert!(ObjectStorage::from_url_with("s3://bucket/x", Vec::new()).is_err());
}
