//! Object-store backend (S3, GCS, Azure) over the `object_store` crate.
//!
//! The registry's S3 driver stores the same keys as the filesystem layout
//! under its `rootdirectory` prefix. Requests run on a private tokio runtime;
//! the batches ([`StorageBatch`]) keep up to [`ObjectStorage::concurrency`] requests in
//! flight, which is what makes listing and fetching fast on a remote store.
//! That limit holds for the whole backend, not per call: reads and stats
//! sent from several threads at once (a listing's thread reading tag links
//! while another lists blobs) share it, so one part of a scan can start
//! as soon as what it needs is known without the requests in flight
//! exceeding it. How a listing is paged and split into ranges is in
//! `listing.rs`.

use super::{
    Cuts, DirListing, Entry, EntryKind, Listing, Meta, RequestCounter, RequestKind, ScanHints,
    Storage, StorageBatch, StorageError, V2_PREFIX,
};
use crate::{Error, Result};
use futures::StreamExt;
use object_store::list::PaginatedListStore;
use object_store::path::Path as ObjPath;
use object_store::{ObjectMeta, ObjectStore};
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

mod listing;

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
    /// `concurrency` permits, one held by each GET and HEAD in flight
    /// (whichever thread sent it).
    in_flight: Arc<tokio::sync::Semaphore>,
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

/// Parses a storage URL; an error quotes it.
fn parse_url(url: &str) -> Result<url::Url> {
    url::Url::parse(url).map_err(|e| Error::Invalid(format!("{url}: {e}")))
}

impl ObjectStorage {
    /// Opens `s3://bucket[/prefix]`, `gs://bucket[/prefix]` or `az://container[/prefix]`,
    /// taking credentials, region and endpoint from the standard environment
    /// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL`/`AWS_ENDPOINT`, `AWS_ALLOW_HTTP`; `GOOGLE_*`; `AZURE_*`).
    pub fn from_url(url: &str) -> Result<ObjectStorage> {
        let parsed = parse_url(url)?;
        let bucket = parsed
            .host_str()
            .ok_or_else(|| Error::Invalid(format!("{url}: no bucket name")))?
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
                Self::from_url_with(url, opts)
            }
            other => Err(Error::Invalid(format!(
                "{url}: unsupported storage scheme {other:?} (s3://, gs://, az://)"
            ))),
        }
    }

    /// Opens `gs://bucket[/prefix]` or `az://container[/prefix]` (also
    /// `azure://`, `abfs[s]://`) with `object_store` configuration keys
    /// (`google_service_account_key`, `google_allow_http`,
    /// `azure_storage_account_name`, `azure_storage_endpoint`,
    /// `azure_storage_use_emulator`…) instead of the environment. The
    /// registry root is the URL's whole path: `object_store` reads the path
    /// of an `az://` URL as `account/container/...` and would drop its first
    /// component, where the container is the host here.
    pub fn from_url_with(
        url: &str,
        options: impl IntoIterator<Item = (String, String)>,
    ) -> Result<ObjectStorage> {
        let parsed = parse_url(url)?;
        if !matches!(parsed.scheme(), "gs" | "az" | "azure" | "abfs" | "abfss") {
            return Err(Error::Invalid(format!("{url}: not a gs:// or az:// URL")));
        }
        if parsed.host_str().is_none() {
            return Err(Error::Invalid(format!(
                "{url}: no bucket or container name"
            )));
        }
        let prefix = parsed.path().trim_matches('/');
        let (store, _) = object_store::parse_url_opts(&parsed, options)
            .map_err(|e| Error::object_store(url, e))?;
        Self::new(Arc::from(store), prefix, url)
    }

    /// Opens an S3 (or S3-compatible) bucket with explicit settings.
    pub fn s3(s: &S3Settings, display: &str) -> Result<ObjectStorage> {
        if let Some(e) = s.endpoint.as_deref().filter(|e| e.starts_with("http://")) {
            if !s.allow_http {
                return Err(Error::Invalid(format!(
                    "{display}: the endpoint {e} is plain HTTP, which is refused unless \
                     allowed: set AWS_ALLOW_HTTP=true (or use an https:// endpoint)"
                )));
            }
        }
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
        let store = Arc::new(b.build().map_err(|e| Error::object_store(display, e))?);
        let mut o = Self::new(store.clone(), &s.prefix, display)?;
        o.pager = Some(store);
        Ok(o)
    }

    /// Wraps any `ObjectStore` whose registry root is at `prefix`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, display: &str) -> Result<Self> {
        let prefix = prefix.trim_matches('/');
        let base = if prefix.is_empty() {
            V2_PREFIX.to_string()
        } else {
            format!("{prefix}/{V2_PREFIX}")
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        Ok(ObjectStorage {
            store,
            pager: None,
            counter: Arc::default(),
            base,
            url: display.to_string(),
            rt,
            concurrency: 64,
            in_flight: Arc::new(tokio::sync::Semaphore::new(64)),
        })
    }

    /// How many requests the `*_many` methods keep in flight.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Sets how many requests the `*_many` methods keep in flight.
    pub fn set_concurrency(&mut self, n: usize) {
        self.concurrency = n.max(1);
        self.in_flight = Arc::new(tokio::sync::Semaphore::new(self.concurrency));
    }

    /// Waits for one of the [`ObjectStorage::concurrency`] requests that
    /// may be in flight at once, all threads together.
    async fn permit(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.in_flight
            .acquire()
            .await
            .expect("the semaphore is never closed")
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

    async fn read_async(&self, key: &str, limit: u64) -> Result<Vec<u8>, StorageError> {
        let _permit = self.permit().await;
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
        let _permit = self.permit().await;
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

    fn batch(&self) -> Option<&dyn StorageBatch> {
        Some(self)
    }

    fn hints(&self) -> Option<&dyn ScanHints> {
        Some(self)
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
        let path = self.full(key);
        match self.block(again(|| self.store.delete(&path))) {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend(key, e)),
        }
    }

    fn quarantine(&self, key: &str, q: &str) -> Result<(), StorageError> {
        let to = self.quarantine_path(q, key);
        self.counter.add(RequestKind::Copy, 1);
        self.counter.add(RequestKind::Delete, 1);
        let from = self.full(key);
        self.block(async {
            again(|| self.store.copy(&from, &to))
                .await
                .map_err(|e| backend(key, e))?;
            match again(|| self.store.delete(&from)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(backend(key, e)),
            }
        })
    }

    fn write_to_quarantine(&self, key: &str, q: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let to = self.quarantine_path(q, key);
        self.block(async {
            self.store
                .put(&to, object_store::PutPayload::from(bytes.to_vec()))
                .await
                .map(|_| ())
                .map_err(|e| backend(key, e))
        })
    }

    fn unquarantine(&self, key: &str, q: &str) -> Result<(), StorageError> {
        let from = self.quarantine_path(q, key);
        self.block(async {
            self.counter.add(RequestKind::Head, 1);
            match self.store.head(&self.full(key)).await {
                Ok(_) => {
                    return Err(StorageError::Exists {
                        key: key.to_string(),
                    })
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(backend(key, e)),
            }
            self.counter.add(RequestKind::Copy, 1);
            self.counter.add(RequestKind::Delete, 1);
            let to = self.full(key);
            again(|| self.store.copy(&from, &to))
                .await
                .map_err(|e| backend(key, e))?;
            match again(|| self.store.delete(&from)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(backend(key, e)),
            }
        })
    }
}

/// Runs `op` again, with backoff, up to [`DELETE_ATTEMPTS`] times in all,
/// while it fails other than with not-found. For requests whose repetition
/// does no harm (deleting a key, copying one key onto another) but that
/// object_store does not send again after a reset or an unknown transport
/// error: the outcome of such a request is unknown, not a failure.
async fn again<T, F, Fut>(mut op: F) -> object_store::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = object_store::Result<T>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e)
                if !matches!(e, object_store::Error::NotFound { .. })
                    && attempt + 1 < DELETE_ATTEMPTS =>
            {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
            r => return r,
        }
    }
}

impl ObjectStorage {
    /// Whether `rel`, a key relative to the storage root (beside
    /// `docker/registry/v2`, not below it), exists.
    pub fn exists_in_root(&self, rel: &str) -> Result<bool, StorageError> {
        let root = self
            .base
            .strip_suffix(V2_PREFIX)
            .unwrap_or(&self.base)
            .trim_end_matches('/');
        let path = if root.is_empty() {
            ObjPath::from(rel)
        } else {
            ObjPath::from(format!("{root}/{rel}"))
        };
        self.counter.add(RequestKind::Head, 1);
        match self.block(self.store.head(&path)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(backend(rel, e)),
        }
    }
}

/// How many times a delete (batched or not) or a copy is sent before it
/// counts as failed.
const DELETE_ATTEMPTS: u32 = 5;

impl ObjectStorage {
    /// One batched delete of `keys`: per key, deleted (or already gone) or
    /// the error.
    fn delete_batch(&self, keys: &[String]) -> Vec<Result<(), StorageError>> {
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
}

/// Batches with up to [`ObjectStorage::concurrency`] requests in flight;
/// deletes in batched requests.
impl StorageBatch for ObjectStorage {
    fn delete_many(&self, keys: &[String]) -> Vec<Result<(), StorageError>> {
        // Batched deletes (S3 DeleteObjects: up to 1000 keys a request).
        // object_store does not retry that POST (it is not idempotent in
        // general), but deleting a key twice is deleting it once: keys
        // whose outcome is unknown (a reset, a 5xx, a per-key error) are
        // sent again, with backoff, before they count as failed.
        let mut results: Vec<Result<(), StorageError>> = keys.iter().map(|_| Ok(())).collect();
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        for attempt in 0..DELETE_ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_millis(200 << attempt));
            }
            let batch: Vec<String> = pending.iter().map(|&i| keys[i].clone()).collect();
            let outcome = self.delete_batch(&batch);
            let mut still = Vec::new();
            for (&i, r) in pending.iter().zip(outcome) {
                match r {
                    Ok(()) => results[i] = Ok(()),
                    Err(e) => {
                        results[i] = Err(e);
                        still.push(i);
                    }
                }
            }
            pending = still;
        }
        results
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

    fn read_each(
        &self,
        keys: &[String],
        limit: u64,
        then: &(dyn Fn(usize, Result<Vec<u8>, StorageError>) + Sync),
    ) {
        // Each result is handed over as it arrives, in whatever order:
        // parsing one manifest overlaps the reads still in flight, and a
        // slow read holds back no other. `then` runs on this thread inside
        // the runtime (its callers only parse; a call back into the
        // storage from it would block the runtime).
        self.block(
            futures::stream::iter(
                keys.iter()
                    .enumerate()
                    .map(|(i, k)| async move { (i, self.read_async(k, limit).await) }),
            )
            .buffer_unordered(self.concurrency)
            .for_each(|(i, r)| {
                then(i, r);
                futures::future::ready(())
            }),
        );
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
                let _permit = self.permit().await;
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

/// Request counts, and recursive listings split into ranges listed at once.
impl ScanHints for ObjectStorage {
    fn requests(&self) -> Option<Arc<RequestCounter>> {
        Some(self.counter.clone())
    }

    fn list_split(&self, prefix: &str, cuts: &Cuts<'_>) -> Result<Listing, StorageError> {
        self.list_split_ranges(prefix, cuts)
    }
}

#[cfg(test)]
mod tests;
