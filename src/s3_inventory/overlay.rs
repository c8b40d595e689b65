//! A [`Storage`] whose listings come from an S3 Inventory and whose reads,
//! stats and removals go to the bucket.
//!
//! Safety, with an inventory older than the bucket's present state:
//! - listings hold only what the inventory holds, so nothing written after
//!   it is ever a candidate for removal;
//! - [`InventoryListing::created`] is the time that the grace period counts
//!   back from (the callers' "now");
//! - before removals are carried out, [`InventoryListing::refresh`] lists
//!   `repositories/` in the bucket itself: the mark then sees every tag,
//!   revision and layer link as it is now, and blobs that new links name
//!   but the inventory lacks are added (stat'ed: young, so kept);
//! - every object is stat'ed before it is deleted or quarantined, and left
//!   alone (named in [`InventoryListing::skipped`]) when it is gone, or its
//!   size or modification time differs from the listing's.

use super::index::{time_ms, Index};
use super::Loaded;
use crate::storage::{
    Cuts, DirListing, Entry, EntryKind, Listing, Meta, RequestCounter, Storage, StorageError,
    StorageExt,
};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The registry's storage, listed from an inventory.
pub struct InventoryListing {
    inner: Box<dyn Storage>,
    /// The inventory's objects; empty once released ([`InventoryListing::list_once`]).
    index: std::sync::RwLock<Arc<Index>>,
    /// With [`InventoryListing::list_once`]: the index is dropped once
    /// `blobs/` and `repositories/` have each been listed in full.
    once: bool,
    /// With `once`: what has been listed, and whether the index is released.
    listed_once: Mutex<Once>,
    created: SystemTime,
    name: String,
    /// After [`InventoryListing::refresh`]: `repositories/` as the bucket
    /// lists it now, sorted (the inventory's rows there are then unused).
    live_repositories: Option<Vec<Entry>>,
    /// Blobs that the inventory lacks but links listed by `refresh` name,
    /// sorted.
    extra: Vec<Entry>,
    skipped: Mutex<Vec<(String, String)>>,
}

impl std::fmt::Debug for InventoryListing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InventoryListing")
            .field("storage", &self.inner.describe())
            .field("inventory", &self.name)
            .field("objects", &self.objects())
            .finish()
    }
}

/// With [`InventoryListing::list_once`]: which of `blobs/` and
/// `repositories/` have been listed in full, whether they held anything (an
/// empty listing is followed by a look at the root), and whether the index
/// was released.
#[derive(Debug, Default)]
struct Once {
    blobs: bool,
    repositories: bool,
    found: bool,
    released: bool,
}

/// What [`InventoryListing::refresh`] found.
#[derive(Debug, Default)]
pub struct Refreshed {
    /// Keys under `repositories/` now, and in the inventory.
    pub listed: usize,
    /// Keys under `repositories/` new or changed since the inventory (the
    /// first few).
    pub changed: Vec<String>,
    /// How many there are.
    pub changed_count: usize,
    /// Blobs named by those links and missing from the inventory, found in
    /// the bucket.
    pub blobs_added: usize,
}

const REPOS: &str = "repositories/";

/// Entries handed over at a time by
/// [`ScanHints::list_split_each`](crate::storage::ScanHints::list_split_each).
const RUN: usize = 1 << 16;

fn dir_prefix(prefix: &str) -> String {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("{p}/")
    }
}

/// Same to the second (a HEAD's Last-Modified has no milliseconds).
fn same_time(a: Option<SystemTime>, b: Option<SystemTime>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => time_ms(a).div_euclid(1000) == time_ms(b).div_euclid(1000),
        (None, None) => true,
        _ => false,
    }
}

fn range_of(v: &[Entry], prefix: &str) -> std::ops::Range<usize> {
    let lo = v.partition_point(|e| e.key.as_str() < prefix);
    let hi = lo + v[lo..].partition_point(|e| e.key.starts_with(prefix));
    lo..hi
}

impl InventoryListing {
    /// Lists `inner` from `inv`.
    pub fn new(inner: Box<dyn Storage>, inv: Loaded) -> InventoryListing {
        InventoryListing {
            inner,
            created: inv.created(),
            name: inv.name,
            index: std::sync::RwLock::new(Arc::new(inv.index)),
            once: false,
            listed_once: Mutex::default(),
            live_repositories: None,
            extra: Vec::new(),
            skipped: Mutex::default(),
        }
    }

    /// When the inventory was taken.
    pub fn created(&self) -> SystemTime {
        self.created
    }

    /// For a command that lists once and never removes (a report): the
    /// index is dropped as soon as the scan has listed `blobs/` and
    /// `repositories/`, before the rest of the run needs its memory. A
    /// listing asked for after that is an error, and nothing can be
    /// confirmed for removal.
    pub fn list_once(mut self) -> InventoryListing {
        self.once = true;
        self
    }

    /// How many objects under the registry root the inventory lists (0 once
    /// released).
    pub fn objects(&self) -> usize {
        self.index.read().expect("not poisoned").len()
    }

    /// The index, unless it was released.
    fn index(&self, prefix: &str) -> Result<Arc<Index>, StorageError> {
        if self.listed_once.lock().expect("not poisoned").released {
            return Err(StorageError::Backend {
                key: prefix.to_string(),
                message: format!(
                    "the inventory {} was released once the scan had listed it; this command lists once",
                    self.name
                ),
            });
        }
        Ok(self.index.read().expect("not poisoned").clone())
    }

    /// Notes that `prefix` was listed in full (`n` objects); releases the
    /// index once both `blobs/` and `repositories/` were and either held
    /// something, with [`InventoryListing::list_once`].
    fn listed_in_full(&self, prefix: &str, n: usize) {
        if !self.once {
            return;
        }
        let mut l = self.listed_once.lock().expect("not poisoned");
        match prefix {
            "blobs/" => l.blobs = true,
            REPOS => l.repositories = true,
            _ => {}
        }
        l.found |= n > 0;
        if l.blobs && l.repositories && l.found && !l.released {
            l.released = true;
            *self.index.write().expect("not poisoned") = Arc::new(Index::default());
        }
    }

    /// Objects left alone by a removal: gone or changed since the listing.
    pub fn skipped(&self) -> Vec<(String, String)> {
        self.skipped.lock().expect("not poisoned").clone()
    }

    /// Lists `repositories/` in the bucket (one LIST per 1,000 keys) and
    /// serves it from then on; blobs named by links that are new or changed
    /// since the inventory, and that the inventory lacks, are stat'ed and
    /// added to the blob listing. Run before carrying out removals.
    pub fn refresh(&mut self) -> Result<Refreshed, StorageError> {
        let index = self.index(REPOS)?;
        let mut live = self.inner.list_split(REPOS, &|_, _| Vec::new())?;
        if let Some(e) = live.errors.pop() {
            return Err(e);
        }
        live.entries.sort_by(|a, b| a.key.cmp(&b.key));
        let mut out = Refreshed {
            listed: live.entries.len(),
            ..Default::default()
        };
        let mut want: Vec<String> = Vec::new();
        for e in &live.entries {
            let same = index
                .get(&e.key)
                .is_some_and(|m| Some(m.size) == e.size && same_time(m.modified, e.modified));
            if same {
                continue;
            }
            out.changed_count += 1;
            if out.changed.len() < 20 {
                out.changed.push(e.key.clone());
            }
            // `.../sha256/<hex>/link` names blob <hex>.
            let mut parts = e.key.rsplit('/');
            if let (Some("link"), Some(hex), Some("sha256")) =
                (parts.next(), parts.next(), parts.next())
            {
                if crate::digest::parse_sha256_hex(hex).is_some() {
                    let k = crate::storage::blob_data_key(hex);
                    if index.get(&k).is_none() {
                        want.push(k);
                    }
                }
            }
        }
        want.sort();
        want.dedup();
        let mut extra = Vec::new();
        for (k, r) in want.iter().zip(self.inner.stat_many(&want)) {
            match r {
                Ok(m) => extra.push(Entry {
                    key: k.clone(),
                    kind: EntryKind::File,
                    size: Some(m.size),
                    modified: m.modified,
                }),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        out.blobs_added = extra.len();
        self.extra = extra;
        self.live_repositories = Some(live.entries);
        Ok(out)
    }

    /// What the listing says about `key`.
    fn listed(&self, key: &str) -> Option<Meta> {
        let from = |v: &[Entry]| {
            let r = range_of(v, key);
            v[r].iter().find(|e| e.key == key).map(|e| Meta {
                size: e.size.unwrap_or(0),
                modified: e.modified,
            })
        };
        match &self.live_repositories {
            Some(live) if key.starts_with(REPOS) => from(live),
            _ => self.index(key).ok()?.get(key).or_else(|| from(&self.extra)),
        }
    }

    /// Why `key` must not be removed, from what a stat found now: `None`
    /// when it is as listed.
    fn changed(&self, key: &str, now: &Result<Meta, StorageError>) -> Option<String> {
        let Some(was) = self.listed(key) else {
            return Some("not in the listing; left alone".into());
        };
        match now {
            Err(e) if e.is_not_found() => Some("gone since the listing".into()),
            Err(e) => Some(format!("cannot be stat'ed ({e}); left alone")),
            Ok(m) if m.size != was.size || !same_time(m.modified, was.modified) => Some(format!(
                "changed since the listing ({} bytes modified {} there, {} bytes modified {} now); left alone",
                was.size,
                was.modified.map_or("-".into(), crate::report::rfc3339),
                m.size,
                m.modified.map_or("-".into(), crate::report::rfc3339),
            )),
            Ok(_) => None,
        }
    }

    /// Checks `key` against the listing with a stat: Ok(true) to remove it,
    /// Ok(false) when it is gone (nothing to do), an error naming why it is
    /// left alone otherwise.
    fn confirm(&self, key: &str, now: Result<Meta, StorageError>) -> Result<bool, StorageError> {
        match self.changed(key, &now) {
            None => Ok(true),
            Some(why) => {
                self.skipped
                    .lock()
                    .expect("not poisoned")
                    .push((key.to_string(), why.clone()));
                match now {
                    Err(e) if e.is_not_found() => Ok(false),
                    _ => Err(StorageError::Backend {
                        key: key.to_string(),
                        message: why,
                    }),
                }
            }
        }
    }
}

impl Storage for InventoryListing {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn batch(&self) -> Option<&dyn crate::storage::StorageBatch> {
        Some(self)
    }

    fn hints(&self) -> Option<&dyn crate::storage::ScanHints> {
        Some(self)
    }

    fn list(&self, prefix: &str, _want_meta: bool) -> Result<Listing, StorageError> {
        let p = dir_prefix(prefix);
        let mut entries: Vec<Entry> = Vec::new();
        let live = self.live_repositories.as_deref();
        let mut sources = 0;
        let index = self.index(&p)?;
        if index.count(&p) > 0 {
            sources += 1;
            entries.extend(
                index
                    .entries(&p)
                    .filter(|e| live.is_none() || !e.key.starts_with(REPOS)),
            );
        }
        if let Some(live) = live {
            // `p` under repositories/, or repositories/ under `p`.
            let q = if p.starts_with(REPOS) {
                p.as_str()
            } else if REPOS.starts_with(&p) {
                REPOS
            } else {
                "\u{10ffff}"
            };
            let r = range_of(live, q);
            if !r.is_empty() {
                sources += 1;
                entries.extend(live[r].iter().cloned());
            }
        }
        let r = range_of(&self.extra, &p);
        if !r.is_empty() {
            sources += 1;
            entries.extend(self.extra[r].iter().cloned());
        }
        if sources > 1 {
            entries.sort_by(|a, b| a.key.cmp(&b.key));
        }
        Ok(Listing {
            entries,
            ..Default::default()
        })
    }

    fn list_dirs(&self, prefix: &str) -> Result<DirListing, StorageError> {
        let p = dir_prefix(prefix);
        let mut out = DirListing::default();
        for e in self.list(&p, true)?.entries {
            let rest = &e.key[p.len()..];
            match rest.split_once('/') {
                Some((d, _)) => {
                    if out.dirs.last().map(String::as_str) != Some(d) {
                        out.dirs.push(d.to_string());
                    }
                }
                None => out.files.push(e),
            }
        }
        out.dirs.dedup();
        Ok(out)
    }

    fn read(&self, key: &str, limit: u64) -> Result<Vec<u8>, StorageError> {
        self.inner.read(key, limit)
    }

    fn stat(&self, key: &str) -> Result<Meta, StorageError> {
        self.inner.stat(key)
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        if self.confirm(key, self.inner.stat(key))? {
            self.inner.delete(key)
        } else {
            Ok(())
        }
    }

    fn quarantine(&self, key: &str, q: &str) -> Result<(), StorageError> {
        if self.confirm(key, self.inner.stat(key))? {
            self.inner.quarantine(key, q)
        } else {
            Ok(())
        }
    }

    fn unquarantine(&self, key: &str, q: &str) -> Result<(), StorageError> {
        self.inner.unquarantine(key, q)
    }

    fn write_to_quarantine(&self, key: &str, q: &str, bytes: &[u8]) -> Result<(), StorageError> {
        self.inner.write_to_quarantine(key, q, bytes)
    }

    fn remove_empty_dirs(&self, dirs: &[String], keep: &(dyn Fn(&str) -> bool + Sync)) {
        self.inner.remove_empty_dirs(dirs, keep)
    }
}

/// Reads and stats as the bucket's; removals confirmed against the
/// listing first, with one batch of stats.
impl crate::storage::StorageBatch for InventoryListing {
    fn read_many(&self, keys: &[String], limit: u64) -> Vec<Result<Vec<u8>, StorageError>> {
        self.inner.read_many(keys, limit)
    }

    fn read_each(
        &self,
        keys: &[String],
        limit: u64,
        then: &(dyn Fn(usize, Result<Vec<u8>, StorageError>) + Sync),
    ) {
        self.inner.read_each(keys, limit, then)
    }

    fn stat_many(&self, keys: &[String]) -> Vec<Result<Meta, StorageError>> {
        self.inner.stat_many(keys)
    }

    fn sha256_many(
        &self,
        keys: &[String],
        done: &(dyn Fn(u64) + Sync),
    ) -> Vec<Result<crate::storage::hash::ContentHash, StorageError>> {
        self.inner.sha256_many(keys, done)
    }

    fn delete_many(&self, keys: &[String]) -> Vec<Result<(), StorageError>> {
        let stats = self.inner.stat_many(keys);
        let mut out: Vec<Option<Result<(), StorageError>>> = Vec::with_capacity(keys.len());
        let mut go = Vec::new();
        let mut at = Vec::new();
        for (i, (k, s)) in keys.iter().zip(stats).enumerate() {
            match self.confirm(k, s) {
                Ok(true) => {
                    go.push(k.clone());
                    at.push(i);
                    out.push(None);
                }
                Ok(false) => out.push(Some(Ok(()))),
                Err(e) => out.push(Some(Err(e))),
            }
        }
        for (i, r) in at.into_iter().zip(self.inner.delete_many(&go)) {
            out[i] = Some(r);
        }
        out.into_iter()
            .map(|r| r.expect("a result for every key"))
            .collect()
    }
}

/// Listings from memory, handed over in runs; requests as the bucket's.
impl crate::storage::ScanHints for InventoryListing {
    fn requests(&self) -> Option<Arc<RequestCounter>> {
        self.inner.requests()
    }

    fn lists_from_memory(&self) -> bool {
        true
    }

    fn list_split(&self, prefix: &str, _cuts: &Cuts<'_>) -> Result<Listing, StorageError> {
        self.list(prefix, true)
    }

    fn list_split_each(
        &self,
        prefix: &str,
        _cuts: &Cuts<'_>,
        each: &mut dyn FnMut(Vec<Entry>, usize),
    ) -> Result<Vec<StorageError>, StorageError> {
        if self.live_repositories.is_some() || !self.extra.is_empty() {
            // After a refresh: small, merged from three sources.
            return Ok(crate::storage::hand_over(self.list(prefix, true)?, each));
        }
        let p = dir_prefix(prefix);
        let total = {
            let index = self.index(&p)?;
            let total = index.count(&p);
            let mut it = index.entries(&p);
            loop {
                let run: Vec<Entry> = it.by_ref().take(RUN).collect();
                if run.is_empty() {
                    break;
                }
                each(run, total);
            }
            total
        };
        self.listed_in_full(&p, total);
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3_inventory::index::Part;
    use crate::s3_inventory::manifest::{FileFormat, Manifest};

    /// Removals go only to what is as the listing says: an object changed
    /// since (size or time) or not listed is refused and stays, one gone is
    /// skipped, and each is named.
    #[test]
    fn removals_are_confirmed_against_the_listing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("docker/registry/v2");
        let key = |c: char| crate::storage::blob_data_key(&c.to_string().repeat(64));
        let (same, grown, gone, unlisted) = (key('a'), key('b'), key('c'), key('d'));
        for k in [&same, &grown, &unlisted] {
            let p = root.join(k);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"12345").unwrap();
        }
        let inner = crate::storage::fs::FsStorage::open(dir.path()).unwrap();
        let mtime = |k: &str| time_ms(inner.stat(k).unwrap().modified.unwrap());
        let mut part = Part::default();
        part.push(same.as_bytes(), 5, Some(mtime(&same)));
        part.push(grown.as_bytes(), 4, Some(mtime(&grown)));
        part.push(gone.as_bytes(), 5, Some(mtime(&same)));
        let s = InventoryListing::new(Box::new(inner), loaded(part));
        let keys = vec![same.clone(), grown.clone(), gone.clone(), unlisted.clone()];
        let res = s.delete_many(&keys);
        assert!(res[0].is_ok(), "{:?}", res[0]);
        assert!(res[1]
            .as_ref()
            .is_err_and(|e| e.to_string().contains("changed")));
        assert!(res[2].is_ok(), "gone: nothing to do");
        assert!(res[3]
            .as_ref()
            .is_err_and(|e| e.to_string().contains("not in the listing")));
        assert!(!root.join(&same).exists());
        assert!(root.join(&grown).exists());
        assert!(root.join(&unlisted).exists());
        let skipped: Vec<String> = s.skipped().into_iter().map(|(k, _)| k).collect();
        assert_eq!(skipped, vec![grown.clone(), gone, unlisted.clone()]);
        // One at a time, too.
        assert!(s.delete(&grown).is_err());
        assert!(root.join(&grown).exists());
    }

    fn loaded(part: Part) -> Loaded {
        Loaded {
            manifest: Manifest {
                source_bucket: None,
                destination_bucket: None,
                created: SystemTime::now(),
                format: FileFormat::Csv,
                schema: Vec::new(),
                files: Vec::new(),
            },
            index: part.finish(),
            name: "test".into(),
            bytes_read: 0,
        }
    }

    /// A report's listing: handed over in runs, in key order; released
    /// once blobs/ and repositories/ were listed, after which listing is an
    /// error and nothing can be confirmed for removal.
    #[test]
    fn a_listing_once_is_released_after_the_scan_and_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("docker/registry/v2");
        std::fs::create_dir_all(&root).unwrap();
        let inner = || Box::new(crate::storage::fs::FsStorage::open(dir.path()).unwrap());
        let mut part = Part::default();
        let mut want = Vec::new();
        for i in 0..(RUN + 10) as u32 {
            let h = crate::digest::hex(&{
                use sha2::Digest;
                let d: [u8; 32] = sha2::Sha256::digest(i.to_le_bytes()).into();
                d
            });
            let k = crate::storage::blob_data_key(&h);
            part.push(k.as_bytes(), 5, Some(1_000));
            want.push(k);
        }
        part.push(
            b"repositories/a/_manifests/tags/t/current/link",
            71,
            Some(1),
        );
        want.sort();
        let s = InventoryListing::new(inner(), loaded(part)).list_once();
        let mut runs = Vec::new();
        let mut got = Vec::new();
        s.list_split_each("blobs/", &|_, _| Vec::new(), &mut |run, total| {
            runs.push((run.len(), total));
            got.extend(run.into_iter().map(|e| e.key));
        })
        .unwrap();
        assert_eq!(got, want);
        assert_eq!(runs, vec![(RUN, RUN + 10), (10, RUN + 10)]);
        assert_eq!(s.objects(), RUN + 11, "not yet released");
        s.list_split_each("repositories/", &|_, _| Vec::new(), &mut |_, _| {})
            .unwrap();
        assert_eq!(s.objects(), 0, "released");
        let e = s.list("blobs/", true).unwrap_err();
        assert!(e.to_string().contains("released"), "{e}");
        let p = root.join(&want[0]);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"12345").unwrap();
        assert!(
            s.delete(&want[0]).is_err(),
            "nothing confirmed once released"
        );
        assert!(p.exists());
        // Without list_once the index stays.
        let mut part = Part::default();
        part.push(want[0].as_bytes(), 5, Some(1_000));
        let s = InventoryListing::new(inner(), loaded(part));
        s.list_split_each("blobs/", &|_, _| Vec::new(), &mut |_, _| {})
            .unwrap();
        s.list_split_each("repositories/", &|_, _| Vec::new(), &mut |_, _| {})
            .unwrap();
        assert_eq!(s.objects(), 1);
        assert!(s.list("blobs/", true).is_ok());
    }
}
