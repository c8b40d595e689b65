//! Object-store backend (S3, GCS, Azure) over the `object_store` crate.
//!
//! The registry's S3 driver stores the same keys as the filesystem layout
//! under its `rootdirectory` prefix. Requests run on a private tokio runtime;
//! the `*_many` methods keep up to [`ObjectStorage::concurrency`] requests in
//! flight, which is what makes listing and fetching fast on a remote store.

use super::{
    Cuts, DirListing, Entry, EntryKind, Listing, Meta, RequestCounter, RequestKind, Storage,
    StorageError, V2_PREFIX,
};
use futures::{StreamExt, TryStreamExt};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path as ObjPath;
use object_store::{ListResult, ObjectMeta, ObjectStore};
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

/// Connection settings for S3 (from a URL plus environment, or from a registry config).
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix of the registry's `rootdirectory` (no leading `/`).
    pub prefix: String,
    /// Region; `us-east-1` when unset.
    pub region: Option<String>,
    /// Endpoint URL for S3-compatible servers.
    pub endpoint: Option<String>,
    /// Access key id.
    pub access_key: Option<String>,
    /// Secret access key.
    pub secret_key: Option<String>,
    /// Allow plain HTTP endpoints.
    pub allow_http: bool,
}

/// Keys (or common prefixes) in one page of a listing: what S3, GCS and
/// Azure return at most, and what a store without paginated listing is
/// read in.
const PAGE: usize = 1000;

/// A registry stored in an object-store bucket.
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    /// The same store's page-by-page listing (S3), when it has one: pages
    /// are then counted as they are sent, and a listing can begin after
    /// any key. Without it, pages of [`PAGE`] keys are read from
    /// `store`'s listings.
    pager: Option<Arc<dyn PaginatedListStore>>,
    /// Requests sent, by kind.
    counter: Arc<RequestCounter>,
    /// `<rootdirectory>/docker/registry/v2` as an object-store prefix, no trailing `/`.
    base: String,
    url: String,
    rt: tokio::runtime::Runtime,
    concurrency: usize,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("url", &self.url)
            .finish()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn backend(key: &str, e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { .. } => StorageError::NotFound {
            key: key.to_string(),
        },
        other => StorageError::Backend {
            key: key.to_string(),
            message: other.to_string(),
        },
    }
}

impl ObjectStorage {
    /// Opens `s3://bucket[/prefix]`, `gs://bucket[/prefix]` or `az://container[/prefix]`,
    /// taking credentials, region and endpoint from the standard environment
    /// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL`/`AWS_ENDPOINT`, `AWS_ALLOW_HTTP`; `GOOGLE_*`; `AZURE_*`).
    pub fn from_url(url: &str) -> anyhow::Result<ObjectStorage> {
        let parsed = url::Url::parse(url)?;
        let bucket = parsed
            .host_str()
            .ok_or_else(|| anyhow::anyhow!("{url}: no bucket name"))?
            .to_string();
        let prefix = parsed.path().trim_matches('/').to_string();
        match parsed.scheme() {
            "s3" | "s3a" => {
                let settings = S3Settings {
                    bucket,
                    prefix,
                    region: env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")),
                    endpoint: env("AWS_ENDPOINT_URL").or_else(|| env("AWS_ENDPOINT")),
                    access_key: env("AWS_ACCESS_KEY_ID"),
                    secret_key: env("AWS_SECRET_ACCESS_KEY"),
                    allow_http: env("AWS_ALLOW_HTTP").is_some_and(|v| v == "true" || v == "1"),
                };
                Self::s3(&settings, url)
            }
            "gs" | "az" | "azure" | "abfs" | "abfss" => {
                let opts: Vec<(String, String)> = std::env::vars()
                    .filter(|(k, _)| k.starts_with("GOOGLE_") || k.starts_with("AZURE_"))
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect();
                let (store, path) = object_store::parse_url_opts(&parsed, opts)?;
                Self::new(Arc::from(store), path.as_ref(), url)
            }
            other => {
                anyhow::bail!("{url}: unsupported storage scheme {other:?} (s3://, gs://, az://)")
            }
        }
    }

    /// Opens an S3 (or S3-compatible) bucket with explicit settings.
    pub fn s3(s: &S3Settings, display: &str) -> anyhow::Result<ObjectStorage> {
        let mut b = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&s.bucket)
            .with_region(s.region.clone().unwrap_or_else(|| "us-east-1".into()))
            .with_allow_http(s.allow_http);
        if let Some(e) = &s.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(k) = &s.access_key {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &s.secret_key {
            b = b.with_secret_access_key(k);
        }
        let store = Arc::new(b.build()?);
        let mut o = Self::new(store.clone(), &s.prefix, display)?;
        o.pager = Some(store);
        Ok(o)
    }

    /// Wraps any `ObjectStore` whose registry root is at `prefix`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, display: &str) -> anyhow::Result<Self> {
        let prefix = prefix.trim_matches('/');
        let base = if prefix.is_empty() {
            V2_PREFIX.to_string()
        } else {
            format!("{prefix}/{V2_PREFIX}")
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(ObjectStorage {
            store,
            pager: None,
            counter: Arc::default(),
            base,
            url: display.to_string(),
            rt,
            concurrency: 64,
        })
    }

    /// How many requests the `*_many` methods keep in flight.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Sets how many requests the `*_many` methods keep in flight.
    pub fn set_concurrency(&mut self, n: usize) {
        self.concurrency = n.max(1);
    }

    fn full(&self, key: &str) -> ObjPath {
        let key = key.trim_end_matches('/');
        if key.is_empty() {
            ObjPath::from(self.base.as_str())
        } else {
            ObjPath::from(format!("{}/{}", self.base, key))
        }
    }

    /// Where `key` goes under the quarantine prefix `q` of the same store.
    fn quarantine_path(&self, q: &str, key: &str) -> ObjPath {
        let q = q.trim_matches('/');
        ObjPath::from(format!("{q}/{V2_PREFIX}/{key}"))
    }

    fn rel(&self, loc: &ObjPath) -> String {
        let s = loc.as_ref();
        s.strip_prefix(self.base.as_str())
            .map(|r| r.trim_start_matches('/'))
            .unwrap_or(s)
            .to_string()
    }

    fn entry(&self, m: &ObjectMeta) -> Entry {
        Entry {
            key: self.rel(&m.location),
            kind: EntryKind::File,
            size: Some(m.size),
            modified: Some(SystemTime::from(m.last_modified)),
        }
    }

    fn block<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// `base/prefix` as a listing prefix: ending with `/`.
    fn dir(&self, prefix: &str) -> String {
        let p = prefix.trim_matches('/');
        if p.is_empty() {
            format!("{}/", self.base)
        } else {
            format!("{}/{p}/", self.base)
        }
    }

    /// One page of the listing of `dir` (a full prefix ending with `/`),
    /// recursive or by `/`, of keys after `offset`, continuing after
    /// `token`: what it found, and the token of the next page when there is
    /// one.
    async fn page(
        &self,
        dir: &str,
        delimiter: bool,
        offset: Option<&str>,
        token: Option<String>,
    ) -> object_store::Result<(ListResult, Option<String>)> {
        self.counter.add(RequestKind::List, 1);
        if let Some(p) = &self.pager {
            let r = p
                .list_paginated(
                    Some(dir),
                    PaginatedListOptions {
                        offset: offset.map(str::to_string),
                        delimiter: delimiter.then_some("/".into()),
                        page_token: token,
                        ..Default::default()
                    },
                )
                .await?;
            return Ok((r.result, r.page_token));
        }
        // A store without paginated listing: pages of PAGE keys, the next
        // one beginning after the last key of this one.
        let path = ObjPath::from(dir);
        if delimiter {
            let r = self.store.list_with_delimiter(Some(&path)).await?;
            let n = r.objects.len() + r.common_prefixes.len();
            self.counter
                .add(RequestKind::List, (n.saturating_sub(1) / PAGE) as u64);
            return Ok((r, None));
        }
        let stream = match token.as_deref().or(offset) {
            Some(after) => self
                .store
                .list_with_offset(Some(&path), &ObjPath::from(after)),
            None => self.store.list(Some(&path)),
        };
        let objects: Vec<ObjectMeta> = stream.take(PAGE).try_collect().await?;
        let next = (objects.len() == PAGE)
            .then(|| objects.last().map(|m| m.location.to_string()))
            .flatten();
        Ok((
            ListResult {
                common_prefixes: Vec::new(),
                objects,
            },
            next,
        ))
    }

    /// Every key below `dir` (a full prefix ending with `/`) after `after`
    /// and up to `until` (full keys), page after page; the page that passes
    /// `until` is the last one asked for.
    async fn list_range(
        &self,
        dir: &str,
        after: Option<&str>,
        until: Option<&str>,
    ) -> object_store::Result<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let (r, next) = self.page(dir, false, after, token).await?;
            for m in r.objects {
                if until.is_some_and(|u| m.location.as_ref() > u) {
                    return Ok(out);
                }
                out.push(m);
            }
            match next {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    async fn list_dirs_async(&self, prefix: &str) -> Result<DirListing, StorageError> {
        let dir = self.dir(prefix);
        let mut dirs = Vec::new();
        let mut files = Vec::new();
        let mut token = None;
        loop {
            let (r, next) = match self.page(&dir, true, None, token).await {
                Ok(r) => r,
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(backend(prefix, e)),
            };
            dirs.extend(
                r.common_prefixes
                    .iter()
                    .filter_map(|p| p.filename().map(str::to_string)),
            );
            files.extend(r.objects.iter().map(|m| self.entry(m)));
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        dirs.sort();
        dirs.dedup();
        Ok(DirListing {
            dirs,
            files,
            probes: Vec::new(),
        })
    }

    async fn list_async(&self, prefix: &str) -> Result<Listing, StorageError> {
        let metas = match self.list_range(&self.dir(prefix), None, None).await {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(backend(prefix, e)),
        };
        Ok(Listing {
            entries: metas.iter().map(|m| self.entry(m)).collect(),
            ..Default::default()
        })
    }

    async fn read_async(&self, key: &str, limit: u64) -> Result<Vec<u8>, StorageError> {
        self.counter.add(RequestKind::Get, 1);
        let got = self
            .store
            .get(&self.full(key))
            .await
            .map_err(|e| backend(key, e))?;
        let size = got.meta.size;
        if size > limit {
            return Err(StorageError::TooLarge {
                key: key.to_string(),
                size,
                limit,
            });
        }
        let bytes = got.bytes().await.map_err(|e| backend(key, e))?;
        Ok(bytes.to_vec())
    }

    async fn stat_async(&self, key: &str) -> Result<Meta, StorageError> {
        self.counter.add(RequestKind::Head, 1);
        let m = self
            .store
            .head(&self.full(key))
            .await
            .map_err(|e| backend(key, e))?;
        Ok(Meta {
            size: m.size,
            modified: Some(SystemTime::from(m.last_modified)),
        })
    }

    fn many<'a, T, F, Fut>(&'a self, items: &'a [String], f: F) -> Vec<T>
    where
        F: Fn(&'a str) -> Fut,
        Fut: Future<Output = T> + 'a,
    {
        self.block(
            futures::stream::iter(items.iter().map(|k| f(k.as_str())))
                .buffered(self.concurrency)
                .collect(),
        )
    }
}

impl Storage for ObjectStorage {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn requests(&self) -> Option<Arc<RequestCounter>> {
        Some(self.counter.clone())
    }

    fn list_split(&self, prefix: &str, cuts: &Cuts<'_>) -> Result<Listing, StorageError> {
        let dir = self.dir(prefix);
        let first = self.block(self.page(&dir, false, None, None));
        let (first, token) = match first {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(Listing::default()),
            Err(e) => return Err(backend(prefix, e)),
        };
        let mut entries: Vec<Entry> = first.objects.iter().map(|m| self.entry(m)).collect();
        let (Some(_), Some(last)) = (token, first.objects.last()) else {
            return Ok(Listing {
                entries,
                ..Default::default()
            });
        };
        // The rest, from the key after the first page's last: ranges that
        // begin where `cuts` says, each listed page after page.
        let last_key = self.entry(last).key;
        let mut starts: Vec<String> = cuts(&last_key, self.concurrency)
            .into_iter()
            .filter(|c| *c > last_key && c.starts_with(prefix))
            .collect();
        starts.sort();
        starts.dedup();
        let full = |k: &str| format!("{}/{k}", self.base);
        let mut bounds = vec![last.location.to_string()];
        bounds.extend(starts.iter().map(|c| full(c)));
        let ranges: Vec<(&str, Option<&str>)> = bounds
            .iter()
            .enumerate()
            .map(|(i, b)| (b.as_str(), bounds.get(i + 1).map(String::as_str)))
            .collect();
        let dir = &dir;
        let results: Vec<_> = self.block(
            futures::stream::iter(
                ranges
                    .iter()
                    .map(|&(after, until)| self.list_range(dir, Some(after), until)),
            )
            .buffered(self.concurrency)
            .collect(),
        );
        let mut errors = Vec::new();
        for (r, (after, _)) in results.into_iter().zip(&ranges) {
            match r {
                Ok(metas) => entries.extend(metas.iter().map(|m| self.entry(m))),
                Err(e) => errors.push(backend(&format!("{prefix} (keys after {after})"), e)),
            }
        }
        Ok(Listing {
            entries,
            errors,
            fetched: Vec::new(),
        })
    }

    fn list_dirs(&self, prefix: &str) -> Result<DirListing, StorageError> {
        self.block(self.list_dirs_async(prefix))
    }

    fn list(&self, prefix: &str, _want_meta: bool) -> Result<Listing, StorageError> {
        self.block(self.list_async(prefix))
    }

    fn read(&self, key: &str, limit: u64) -> Result<Vec<u8>, StorageError> {
        self.block(self.read_async(key, limit))
    }

    fn stat(&self, key: &str) -> Result<Meta, StorageError> {
        self.block(self.stat_async(key))
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.counter.add(RequestKind::Delete, 1);
        match self.block(self.store.delete(&self.full(key))) {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend(key, e)),
        }
    }

    fn delete_many(&self, keys: &[String]) -> Vec<Result<(), StorageError>> {
        // Batched deletes (S3 DeleteObjects: up to 1000 keys a request).
        let paths: Vec<ObjPath> = keys.iter().map(|k| self.full(k)).collect();
        self.counter
            .add(RequestKind::Delete, keys.len().div_ceil(PAGE) as u64);
        let input = futures::stream::iter(paths.clone().into_iter().map(Ok)).boxed();
        let results: Vec<object_store::Result<ObjPath>> =
            self.block(self.store.delete_stream(input).collect());
        let mut done = std::collections::HashSet::new();
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(p) => {
                    done.insert(p);
                }
                Err(object_store::Error::NotFound { path, .. }) => {
                    done.insert(ObjPath::from(path));
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        keys.iter()
            .zip(paths)
            .map(|(k, p)| {
                if done.contains(&p) {
                    Ok(())
                } else {
                    Err(StorageError::Backend {
                        key: k.clone(),
                        message: format!("delete failed: {}", errors.join("; ")),
                    })
                }
            })
            .collect()
    }

    fn quarantine(&self, key: &str, q: &str) -> Result<(), StorageError> {
        let to = self.quarantine_path(q, key);
        self.counter.add(RequestKind::Copy, 1);
        self.counter.add(RequestKind::Delete, 1);
        self.block(async {
            self.store
                .copy(&self.full(key), &to)
                .await
                .map_err(|e| backend(key, e))?;
            self.store
                .delete(&self.full(key))
                .await
                .map_err(|e| backend(key, e))
        })
    }

    fn unquarantine(&self, key: &str, q: &str) -> Result<(), StorageError> {
        let from = self.quarantine_path(q, key);
        self.block(async {
            self.counter.add(RequestKind::Head, 1);
            match self.store.head(&self.full(key)).await {
                Ok(_) => {
                    return Err(StorageError::Backend {
                        key: key.to_string(),
                        message: "already exists in the storage; not overwritten".into(),
                    })
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(backend(key, e)),
            }
            self.counter.add(RequestKind::Copy, 1);
            self.counter.add(RequestKind::Delete, 1);
            self.store
                .copy(&from, &self.full(key))
                .await
                .map_err(|e| backend(key, e))?;
            self.store.delete(&from).await.map_err(|e| backend(key, e))
        })
    }

    fn list_dirs_many(&self, prefixes: &[String]) -> Vec<Result<DirListing, StorageError>> {
        self.many(prefixes, |p| self.list_dirs_async(p))
    }

    fn list_many(
        &self,
        prefixes: &[String],
        _want_meta: bool,
    ) -> Vec<Result<Listing, StorageError>> {
        self.many(prefixes, |p| self.list_async(p))
    }

    fn read_many(&self, keys: &[String], limit: u64) -> Vec<Result<Vec<u8>, StorageError>> {
        self.many(keys, |k| self.read_async(k, limit))
    }

    fn stat_many(&self, keys: &[String]) -> Vec<Result<Meta, StorageError>> {
        self.many(keys, |k| self.stat_async(k))
    }

    fn sha256_many(
        &self,
        keys: &[String],
        done: &(dyn Fn(u64) + Sync),
    ) -> Vec<Result<super::hash::ContentHash, StorageError>> {
        // Each object is streamed through the hasher, never held whole.
        let one = |key: &str| {
            let key = key.to_string();
            async move {
                self.counter.add(RequestKind::Get, 1);
                let got = self
                    .store
                    .get(&self.full(&key))
                    .await
                    .map_err(|e| backend(&key, e))?;
                let mut stream = got.into_stream();
                let mut h = super::hash::Hasher::new();
                while let Some(chunk) = stream.next().await {
                    h.update(&chunk.map_err(|e| backend(&key, e))?);
                }
                let h = h.finish();
                done(h.size);
                Ok(h)
            }
        };
        self.block(
            futures::stream::iter(keys.iter().map(|k| one(k)))
                .buffered(self.concurrency)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
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
}
