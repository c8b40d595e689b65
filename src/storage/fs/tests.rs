//! Tests of the filesystem backend on small trees in temporary directories.

use super::listing::MAX_HELD_DIRS;
use super::pool::blocks_read;
use super::*;
use crate::storage::{
    DigestListing, EntryKind, Fetch, Fetched, FsFastPaths, Probe, Probed, Storage, StorageBatch,
    StorageError,
};
use std::os::unix::fs::symlink;

fn tree() -> (tempfile::TempDir, FsStorage) {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path().join(V2_PREFIX);
    fs::create_dir_all(v2.join("blobs/sha256/ab/abcd")).unwrap();
    fs::write(v2.join("blobs/sha256/ab/abcd/data"), b"hello").unwrap();
    let s = FsStorage::open(dir.path()).unwrap();
    (dir, s)
}

#[test]
fn batches_run_in_order_on_the_cold_and_the_warm_pool() {
    use std::sync::atomic::Ordering;
    let (dir, s) = tree();
    assert!(s.cold.load(Ordering::Relaxed), "a scan starts as if cold");
    let want: Vec<usize> = (0..5000).map(|i| i * 3).collect();
    for cold in [true, false, true] {
        s.cold.store(cold, Ordering::Relaxed);
        let threads = std::sync::Mutex::new(std::collections::HashSet::new());
        let got = s.each(want.len(), |i| {
            let name = std::thread::current().name().unwrap_or("").to_string();
            threads.lock().unwrap().insert(name);
            i * 3
        });
        assert_eq!(got, want);
        let names = threads.into_inner().unwrap();
        let prefix = if cold {
            "regsweep-io-"
        } else {
            "regsweep-iow-"
        };
        assert!(
            names.iter().all(|n| n.starts_with(prefix)),
            "cold={cold}: ran on {names:?}"
        );
    }
    assert!(blocks_read().is_some());
    // A thread count given by the user is used for every batch.
    let fixed = FsStorage::open_with_threads(dir.path(), Some(3)).unwrap();
    assert!(fixed.io_warm.is_none());
    assert_eq!(fixed.io.current_num_threads(), 3);
    fixed.cold.store(false, Ordering::Relaxed);
    assert_eq!(fixed.each(want.len(), |i| i * 3), want);
}

#[test]
fn reads_only_regular_files_whole_and_bounded() {
    let (d, s) = tree();
    let v2 = d.path().join(V2_PREFIX);
    fs::write(v2.join("empty"), b"").unwrap();
    assert_eq!(s.read("empty", 10).unwrap(), b"");
    // Larger than one read into the scratch buffer.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(v2.join("big"), &big).unwrap();
    assert_eq!(s.read("big", 1 << 20).unwrap(), big);
    assert!(matches!(
        s.read("big", 100_000),
        Err(StorageError::TooLarge { size: 200_000, .. })
    ));
    // Between the limit and the scratch buffer's size.
    assert!(matches!(
        s.read("blobs/sha256/ab/abcd/data", 3),
        Err(StorageError::TooLarge { .. })
    ));
    assert!(matches!(
        s.read("blobs/sha256/ab", 10),
        Err(StorageError::NotAFile { .. })
    ));
    let fifo = CString::new(v2.join("fifo").as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    assert!(matches!(
        s.read("fifo", 10),
        Err(StorageError::NotAFile { .. })
    ));
    // Probes read and stat relative to the listed directory.
    let l = s
        .list_dirs_probe_many(
            &["blobs/sha256/ab/".to_string()],
            &[
                Probe::Read("data", 10),
                Probe::Stat("data"),
                Probe::Stat("nope"),
            ],
        )
        .pop()
        .unwrap()
        .unwrap();
    assert_eq!(l.dirs, ["abcd"]);
    assert!(matches!(&l.probes[0], Ok(Probed::Content(c)) if c == b"hello"));
    assert!(matches!(&l.probes[1], Ok(Probed::Meta(m)) if m.size == 5));
    assert!(matches!(&l.probes[2], Err(e) if e.is_not_found()));
}

/// The filesystem's own digest listing (names parsed from the kernel's
/// buffer) agrees with a plain probing listing, split ([`DigestListing::split`]).
#[test]
fn digest_listing_parses_names_and_keeps_the_rest() {
    let (_d, s) = tree();
    let dir = s
        .v2_path()
        .join("repositories/r/_manifests/revisions/sha256");
    let (a, b) = ("a".repeat(64), format!("0{}", "f".repeat(63)));
    for (name, link) in [(&a, Some(&b"sha256:x"[..])), (&b, None)] {
        fs::create_dir_all(dir.join(name)).unwrap();
        if let Some(l) = link {
            fs::write(dir.join(name).join("link"), l).unwrap();
        }
    }
    fs::create_dir_all(dir.join("A".repeat(64))).unwrap();
    fs::create_dir_all(dir.join("abc")).unwrap();
    fs::write(dir.join("stray"), b"").unwrap();
    // A file named like a digest is not a digest directory.
    fs::write(dir.join("1".repeat(64)), b"").unwrap();
    let prefix = "repositories/r/_manifests/revisions/sha256/".to_string();
    let probes = [Probe::Stat("link")];
    let own = s.list_digest_dirs_many(std::slice::from_ref(&prefix), &probes);
    let own = own[0].as_ref().unwrap();
    let h = |x: &str| crate::digest::parse_sha256_hex(x).unwrap();
    // Sorted by bytes, as the names sort.
    assert_eq!(own.digests, vec![h(&b), h(&a)]);
    assert!(own.probes[0].as_ref().is_err_and(|e| e.is_not_found()));
    assert!(matches!(&own.probes[1], Ok(Probed::Meta(m)) if m.size == 8));
    assert_eq!(own.rest.dirs, vec!["A".repeat(64), "abc".to_string()]);
    assert!(own.rest.probes.is_empty());
    let mut files: Vec<&str> = own.rest.files.iter().map(|f| f.key.as_str()).collect();
    files.sort_unstable();
    let digest_named = format!("{prefix}{}", "1".repeat(64));
    assert_eq!(
        files,
        vec![digest_named.as_str(), &format!("{prefix}stray")]
    );
    // A plain probing listing, split.
    let generic = DigestListing::split(s.list_dirs_probe(&prefix, &probes).unwrap(), 1);
    assert_eq!(generic.digests, own.digests);
    assert_eq!(generic.rest.dirs, own.rest.dirs);
    assert_eq!(generic.probes.len(), own.probes.len());
    assert!(matches!(&generic.probes[1], Ok(Probed::Meta(m)) if m.size == 8));
    // A missing directory is empty, as with list_dirs.
    let none = s.list_digest_dirs_many(&["repositories/none/".to_string()], &probes);
    assert!(none[0].as_ref().unwrap().digests.is_empty());
}

#[test]
fn lists_and_reads() {
    let (_d, s) = tree();
    let l = s.list("blobs/", true).unwrap();
    assert_eq!(l.entries.len(), 1);
    assert_eq!(l.entries[0].key, "blobs/sha256/ab/abcd/data");
    assert_eq!(l.entries[0].size, Some(5));
    assert_eq!(s.read("blobs/sha256/ab/abcd/data", 10).unwrap(), b"hello");
    assert!(matches!(
        s.read("blobs/sha256/ab/abcd/data", 4),
        Err(StorageError::TooLarge { .. })
    ));
    assert!(s.read("nope", 10).unwrap_err().is_not_found());
    assert!(s.list("missing/", false).unwrap().entries.is_empty());
}

#[test]
fn walks_through_descriptors_and_fetches_named_files() {
    let (d, s) = tree();
    let v2 = d.path().join(V2_PREFIX);
    let dir = v2.join("repositories/r/_layers/sha256/abcd");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("link"), b"sha256:abcd").unwrap();
    fs::write(dir.join("link.1.tmp"), b"x").unwrap();
    symlink(
        "/etc/hostname",
        v2.join("repositories/r/_layers/sha256/link"),
    )
    .unwrap();
    let big = v2.join("repositories/r/_layers/sha256/big");
    fs::create_dir_all(&big).unwrap();
    fs::write(big.join("link"), vec![b'a'; 100]).unwrap();
    let fetch = Fetch {
        read: Some(("link", 50)),
        hash: Some("data"),
    };
    let prefixes = ["repositories/r/".to_string(), "blobs/".to_string()];
    let got = s.list_fetching_many(&prefixes, true, fetch);
    let repo = got[0].as_ref().unwrap();
    let keys: Vec<&str> = repo.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "repositories/r/_layers/sha256/link",
            "repositories/r/_layers/sha256/abcd/link",
            "repositories/r/_layers/sha256/abcd/link.1.tmp",
            "repositories/r/_layers/sha256/big/link",
        ]
    );
    assert!(matches!(repo.entries[0].kind, EntryKind::Symlink { .. }));
    assert_eq!(repo.entries[1].size, Some(11));
    let fetched: Vec<(usize, String)> = repo
        .fetched
        .iter()
        .map(|(i, r)| (*i, format!("{r:?}")))
        .collect();
    assert_eq!(fetched.len(), 2, "{fetched:?}");
    assert!(matches!(&repo.fetched[0], (1, Ok(Fetched::Content(c))) if c == b"sha256:abcd"));
    assert!(matches!(
        &repo.fetched[1],
        (
            3,
            Err(StorageError::TooLarge {
                size: 100,
                limit: 50,
                ..
            })
        )
    ));
    let blobs = got[1].as_ref().unwrap();
    assert_eq!(blobs.entries.len(), 1);
    assert_eq!(blobs.entries[0].size, Some(5));
    let want = crate::storage::hash::sha256_bytes(b"hello");
    assert!(matches!(&blobs.fetched[..], [(0, Ok(Fetched::Hash(h)))] if *h == want));
    // A plain listing fetches nothing; a missing prefix is empty.
    let plain = s.list("repositories/", false).unwrap();
    assert_eq!(plain.entries.len(), 4);
    assert!(plain.fetched.is_empty() && plain.entries[1].size.is_none());
    assert!(s
        .list("repositories/nope/", true)
        .unwrap()
        .entries
        .is_empty());
}

#[test]
fn walks_deeper_than_the_descriptors_it_holds() {
    let (d, s) = tree();
    let mut dir = d.path().join(V2_PREFIX).join("deep");
    let mut key = "deep".to_string();
    for i in 0..MAX_HELD_DIRS + 5 {
        dir.push(format!("d{i}"));
        key.push_str(&format!("/d{i}"));
    }
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("f"), b"x").unwrap();
    let l = s.list("deep/", true).unwrap();
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    assert_eq!(l.entries.len(), 1);
    assert_eq!(l.entries[0].key, format!("{key}/f"));
    assert_eq!(l.entries[0].size, Some(1));
}

#[test]
fn never_follows_symlinks_out_of_the_root() {
    let (d, s) = tree();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"outside").unwrap();
    let v2 = d.path().join(V2_PREFIX);
    symlink(outside.path(), v2.join("blobs/sha256/cd")).unwrap();
    symlink(
        outside.path().join("secret"),
        v2.join("blobs/sha256/ab/link"),
    )
    .unwrap();
    let l = s.list("blobs/", false).unwrap();
    let kinds: Vec<_> = l.entries.iter().map(|e| (&e.key, &e.kind)).collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(l.entries.iter().all(|e| !e.key.contains("secret")));
    assert!(matches!(
        s.read("blobs/sha256/ab/link", 100),
        Err(StorageError::Symlink { .. })
    ));
    assert!(matches!(
        s.read("blobs/sha256/cd/secret", 100),
        Err(StorageError::Symlink { .. })
    ));
    assert!(s.read("../../../../etc/passwd", 100).is_err());
}

/// Keys stat'ed in runs under one directory give what one stat each
/// gives: times of files, not-found for missing ones, an error for a
/// symlink, and the same for a directory that does not exist.
#[test]
fn stat_many_in_runs_equals_one_stat_each() {
    let (dir, s) = tree();
    let v2 = dir.path().join(V2_PREFIX);
    let layers = v2.join("repositories/a/_layers/sha256");
    let mut keys = Vec::new();
    for i in 0..40 {
        let hex = format!("{i:02x}").repeat(32);
        if i % 5 != 0 {
            fs::create_dir_all(layers.join(&hex)).unwrap();
            fs::write(layers.join(&hex).join("link"), format!("sha256:{hex}")).unwrap();
        }
        keys.push(format!("repositories/a/_layers/sha256/{hex}/link"));
    }
    fs::create_dir_all(layers.join("ee")).unwrap();
    symlink("/etc/passwd", layers.join("ee/link")).unwrap();
    keys.push("repositories/a/_layers/sha256/ee/link".into());
    keys.push("blobs/sha256/ab/abcd/data".into());
    for i in 0..8 {
        keys.push(format!("repositories/gone/_layers/sha256/{i}/link"));
    }
    let each: Vec<String> = keys.iter().map(|k| format!("{:?}", s.stat(k))).collect();
    let many: Vec<String> = s
        .stat_many(&keys)
        .iter()
        .map(|r| format!("{r:?}"))
        .collect();
    assert_eq!(many, each);
    assert!(many[1].starts_with("Ok("), "{}", many[1]);
    assert!(many[0].contains("NotFound"), "{}", many[0]);
    assert!(many[40].starts_with("Err("), "{}", many[40]);
}
