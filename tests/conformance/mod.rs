//! The storage conformance suite: what every backend of
//! `regsweep::storage::Storage` must mean the same way, as functions that
//! each backend's test calls (after [`seed`] wrote the suite's objects
//! through the backend's own client).
//!
//! [`check`] covers listings (recursive with and without metadata, nested
//! and missing prefixes, a prefix that is another key's beginning, the
//! immediate children of a prefix), reads (whole, over the limit, missing),
//! stats, idempotent deletes, the quarantine round trip, the batched forms
//! against the single ones, `read_each` handing each index over once, and
//! the scan's hints against a plain listing. [`comparable`] reduces a
//! `report` to what must be the same on every backend.

#![allow(dead_code)]

pub mod servers;

use regsweep::storage::hash::sha256_bytes;
use regsweep::storage::{Storage, StorageError, StorageExt};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Content of the suite's objects, by key relative to `docker/registry/v2/`.
pub fn objects() -> BTreeMap<&'static str, Vec<u8>> {
    let big: Vec<u8> = (0..2000u32).map(|i| (i * 7 % 251) as u8).collect();
    BTreeMap::from([
        ("a/one", b"one".to_vec()),
        ("a/two", b"two!!".to_vec()),
        ("a/b/three", big),
        ("a/b/c/four", b"4".to_vec()),
        ("ab/x", b"not under a/".to_vec()),
        ("z/five", b"five5".to_vec()),
        ("z/six", b"six".to_vec()),
    ])
}

/// Writes [`objects`] with the backend's own client.
pub fn seed(put: &dyn Fn(&str, &[u8])) {
    for (k, v) in objects() {
        put(k, &v);
    }
}

/// A backend under test.
pub struct Subject<'a> {
    /// The storage, over the objects [`seed`] wrote.
    pub storage: &'a dyn Storage,
    /// Writes an object with the backend's own client (not the trait).
    pub put: &'a dyn Fn(&str, &[u8]),
    /// The quarantine root given to `quarantine` / `unquarantine`.
    pub quarantine_root: String,
    /// False where the server cannot copy an object (then `quarantine`
    /// must fail and leave the object where it was).
    pub copies: bool,
    /// Whether the backend counts the requests it sends.
    pub counts_requests: bool,
}

fn keys(l: &regsweep::storage::Listing) -> Vec<String> {
    let mut k: Vec<String> = l.entries.iter().map(|e| e.key.clone()).collect();
    k.sort();
    k
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Runs every check of the suite on `s`.
pub fn check(s: &Subject<'_>) {
    listings(s);
    reads_and_stats(s);
    batches_agree_with_single_calls(s);
    hints(s);
    deletes(s);
    quarantine_round_trip(s);
}

/// Recursive listings and immediate children.
pub fn listings(s: &Subject<'_>) {
    let st = s.storage;
    let want = strings(&["a/b/c/four", "a/b/three", "a/one", "a/two"]);
    let plain = st.list("a/", false).unwrap();
    assert_eq!(keys(&plain), want, "list a/ (no metadata)");
    assert!(plain.errors.is_empty(), "{:?}", plain.errors);
    let with_meta = st.list("a", true).unwrap();
    assert_eq!(keys(&with_meta), want, "list a (no slash): the same keys");
    let objects = objects();
    for e in &with_meta.entries {
        assert_eq!(
            e.size,
            Some(objects[e.key.as_str()].len() as u64),
            "size of {}",
            e.key
        );
        assert!(e.modified.is_some(), "modification time of {}", e.key);
    }
    assert_eq!(
        keys(&st.list("a/b/", false).unwrap()),
        strings(&["a/b/c/four", "a/b/three"]),
        "nested prefix"
    );
    let none = st.list("nothing/here/", true).unwrap();
    assert!(none.entries.is_empty() && none.errors.is_empty());

    let d = st.list_dirs("a/").unwrap();
    assert_eq!(d.dirs, strings(&["b"]), "child directories of a/");
    let mut files: Vec<&str> = d.files.iter().map(|e| e.key.as_str()).collect();
    files.sort();
    assert_eq!(files, ["a/one", "a/two"], "files directly in a/");
    let mut top = st.list_dirs("").unwrap().dirs;
    top.sort();
    assert_eq!(top, strings(&["a", "ab", "z"]), "top level");
    // A second look at the root sees what the first saw (an online apply
    // scans the same storage several times).
    let mut again = st.list_dirs("").unwrap().dirs;
    again.sort();
    assert_eq!(again, top, "top level, listed a second time");
    let whole = keys(&st.list("", false).unwrap());
    assert!(!whole.is_empty(), "list of the whole root");
    assert_eq!(
        keys(&st.list("", false).unwrap()),
        whole,
        "list of the whole root, a second time"
    );
    let missing = st.list_dirs("nothing/").unwrap();
    assert!(missing.dirs.is_empty() && missing.files.is_empty());
}

/// Reads (whole, over the limit, missing) and stats.
pub fn reads_and_stats(s: &Subject<'_>) {
    let st = s.storage;
    let objects = objects();
    assert_eq!(st.read("a/two", 100).unwrap(), objects["a/two"]);
    assert_eq!(
        st.read("a/b/three", 2000).unwrap(),
        objects["a/b/three"],
        "a limit equal to the size is not exceeded"
    );
    match st.read("a/b/three", 10) {
        Err(StorageError::TooLarge { key, size, limit }) => {
            assert_eq!((key.as_str(), size, limit), ("a/b/three", 2000, 10));
        }
        other => panic!("over the limit: {other:?}"),
    }
    let e = st.read("a/missing", 100).unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert_eq!(e.key(), "a/missing");

    let m = st.stat("a/b/three").unwrap();
    assert_eq!(m.size, 2000);
    assert!(m.modified.is_some());
    assert!(st.stat("a/missing").unwrap_err().is_not_found());
}

/// Each `*_many` gives what the single call gives, in input order;
/// `read_each` hands each index over once.
pub fn batches_agree_with_single_calls(s: &Subject<'_>) {
    let st = s.storage;
    let ks = strings(&["a/one", "a/missing", "a/b/three", "z/five"]);
    let many = st.read_many(&ks, 100);
    assert_eq!(many.len(), ks.len());
    for (k, r) in ks.iter().zip(&many) {
        match (r, st.read(k, 100)) {
            (Ok(a), Ok(b)) => assert_eq!(a, &b, "{k}"),
            (Err(a), Err(b)) => assert_eq!(
                std::mem::discriminant(a),
                std::mem::discriminant(&b),
                "{k}: {a} / {b}"
            ),
            (a, b) => panic!("{k}: read_many {a:?}, read {b:?}"),
        }
    }
    assert!(matches!(many[2], Err(StorageError::TooLarge { .. })));

    type Seen = Vec<(usize, Result<Vec<u8>, String>)>;
    let seen: Mutex<Seen> = Mutex::default();
    st.read_each(&ks, 100, &|i, r| {
        seen.lock().unwrap().push((i, r.map_err(|e| e.to_string())))
    });
    let mut seen = seen.into_inner().unwrap();
    seen.sort_by_key(|(i, _)| *i);
    assert_eq!(
        seen.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (0..ks.len()).collect::<Vec<_>>(),
        "each index once"
    );
    for ((_, r), m) in seen.iter().zip(&many) {
        assert_eq!(r.as_ref().ok(), m.as_ref().ok());
    }

    let stats = st.stat_many(&ks);
    for (k, r) in ks.iter().zip(&stats) {
        match (r, st.stat(k)) {
            (Ok(a), Ok(b)) => assert_eq!(a.size, b.size, "{k}"),
            (Err(a), Err(b)) => assert_eq!(a.is_not_found(), b.is_not_found(), "{k}"),
            (a, b) => panic!("{k}: stat_many {a:?}, stat {b:?}"),
        }
    }

    let present = strings(&["a/one", "a/b/three", "z/five"]);
    let hashes = st.sha256_many(&present, &|_| {});
    for (k, h) in present.iter().zip(hashes) {
        assert_eq!(
            h.unwrap(),
            sha256_bytes(&st.read(k, u64::MAX).unwrap()),
            "{k}"
        );
    }
    assert!(st.sha256_many(&strings(&["a/missing"]), &|_| {})[0]
        .as_ref()
        .is_err_and(|e| e.is_not_found()));

    let prefixes = strings(&["a/", "a/b/", "nothing/"]);
    for (p, l) in prefixes.iter().zip(st.list_many(&prefixes, true)) {
        assert_eq!(keys(&l.unwrap()), keys(&st.list(p, true).unwrap()), "{p}");
    }
    for (p, l) in prefixes.iter().zip(st.list_dirs_many(&prefixes)) {
        let (l, one) = (l.unwrap(), st.list_dirs(p).unwrap());
        assert_eq!(l.dirs, one.dirs, "{p}");
        assert_eq!(l.files.len(), one.files.len(), "{p}");
    }
}

/// The scan's hints give what a plain listing gives.
pub fn hints(s: &Subject<'_>) {
    let st = s.storage;
    let plain = keys(&st.list("a/", true).unwrap());
    let split = st
        .list_split("a/", &|_, _| vec!["a/b/three".to_string()])
        .unwrap();
    assert_eq!(keys(&split), plain, "list_split");
    let mut runs = Vec::new();
    let errors = st
        .list_split_each("a/", &|_, _| Vec::new(), &mut |run, _| {
            runs.extend(run.into_iter().map(|e| e.key))
        })
        .unwrap();
    assert!(errors.is_empty());
    runs.sort();
    assert_eq!(runs, plain, "list_split_each");
    assert_eq!(st.requests().is_some(), s.counts_requests, "requests()");
    if let Some(c) = st.requests() {
        let before = c.snapshot();
        st.stat("a/one").unwrap();
        assert_eq!(c.snapshot().since(&before).head, 1, "one HEAD counted");
    }
}

/// Deleting is idempotent: twice, or a missing key, is not an error.
pub fn deletes(s: &Subject<'_>) {
    let st = s.storage;
    st.delete("z/five").unwrap();
    assert!(st.stat("z/five").unwrap_err().is_not_found());
    st.delete("z/five")
        .expect("deleting twice is deleting once");
    st.delete("z/never").expect("a missing key is not an error");
    let res = st.delete_many(&strings(&["z/six", "z/never"]));
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
    assert!(st.read("z/six", 100).unwrap_err().is_not_found());
}

/// An object moved into the quarantine and back is the same object; moving
/// back never overwrites; moving a key in again replaces its older copy.
pub fn quarantine_round_trip(s: &Subject<'_>) {
    let st = s.storage;
    let q = s.quarantine_root.as_str();
    if !s.copies {
        let e = st.quarantine("a/one", q).unwrap_err();
        eprintln!("quarantine refused, as this server cannot copy: {e}");
        assert_eq!(st.read("a/one", 100).unwrap(), b"one", "left in place");
        return;
    }
    // The quarantine's record: written there (twice: replaced), never into
    // the storage itself. (An emulator that cannot copy may not take the
    // PUT either; a quarantine run stops at its record then.)
    let record = "regsweep-quarantine/run.json";
    st.write_to_quarantine(record, q, b"{}").unwrap();
    st.write_to_quarantine(record, q, b"{\"n\": 2}").unwrap();
    assert!(
        st.stat(record).unwrap_err().is_not_found(),
        "a record is written into the quarantine, not the storage"
    );
    st.quarantine("a/one", q).unwrap();
    assert!(st.stat("a/one").unwrap_err().is_not_found(), "moved away");
    st.unquarantine("a/one", q).unwrap();
    assert_eq!(st.read("a/one", 100).unwrap(), b"one", "moved back");

    st.quarantine("a/two", q).unwrap();
    (s.put)("a/two", b"newer");
    assert!(
        st.unquarantine("a/two", q).is_err(),
        "an object in the storage is not overwritten"
    );
    assert_eq!(st.read("a/two", 100).unwrap(), b"newer");
    // The same key staged again (written since, removed again): the newer
    // copy takes the older's place in the quarantine. (Not on an inventory
    // overlay: it lists from a snapshot, and what was written since is not
    // its to move.)
    if st.lists_from_memory() {
        return;
    }
    st.quarantine("a/two", q).unwrap();
    assert!(
        st.stat("a/two").unwrap_err().is_not_found(),
        "moved away again"
    );
    (s.put)("a/two", b"other");
    st.unquarantine("a/two", q).unwrap_err();
    st.delete("a/two").unwrap();
    st.unquarantine("a/two", q).unwrap();
    assert_eq!(
        st.read("a/two", 100).unwrap(),
        b"newer",
        "the quarantine holds the newer copy"
    );
}

/// A `report --format json` reduced to what must be the same on every
/// backend: no times, request counts or storage location.
pub fn comparable(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|k, _| {
                    !(k == "requests"
                        || k == "storage"
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
