//! Object-store backend (S3, GCS, Azure) over the `object_store` crate.
//!
//! The registry's S3 driver stores the same keys as the filesystem layout
//! under its `rootdirectory` prefix. Requests run on a private tokio runtime;
//! the `*_many` methods keep up to [`ObjectStorage::concurrency`] requests in
//! flight, which is what makes listing and fetching fast on a remote store.

use super::{DirListing, Entry, EntryKind, Listing, Meta, Storage, StorageError, V2_PREFIX};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjPath;
use object_store::{ObjectMeta, ObjectStore};
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

/// A registry stored in an object-store bucket.
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
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
        let store = b.build()?;
        Self::new(Arc::new(store), &s.prefix, display)
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

    async fn list_dirs_async(&self, prefix: &str) -> Result<DirListing, StorageError> {
        let res = self
            .store
            .list_with_delimiter(Some(&self.full(prefix)))
            .await
            .map_err(|e| backend(prefix, e));
        let res = match res {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(DirListing::default()),
            Err(e) => return Err(e),
        };
        let mut dirs: Vec<String> = res
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        dirs.sort();
        Ok(DirListing {
            dirs,
            files: res.objects.iter().map(|m| self.entry(m)).collect(),
            probes: Vec::new(),
        })
    }

    async fn list_async(&self, prefix: &str) -> Result<Listing, StorageError> {
        let full = self.full(prefix);
        let metas: Vec<ObjectMeta> = self
            .store
            .list(Some(&full))
            .try_collect()
            .await
            .map_err(|e| backend(prefix, e))?;
        Ok(Listing {
            entries: metas.iter().map(|m| self.entry(m)).collect(),
            ..Default::default()
        })
    }

    async fn read_async(&self, key: &str, limit: u64) -> Result<Vec<u8>, StorageError> {
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
        match self.block(self.store.delete(&self.full(key))) {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend(key, e)),
        }
    }

    fn delete_many(&self, keys: &[String]) -> Vec<Result<(), StorageError>> {
        // Batched deletes (S3 DeleteObjects: up to 1000 keys a request).
        let paths: Vec<ObjPath> = keys.iter().map(|k| self.full(k)).collect();
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

    fn s_put(mem: &Arc<InMemory>, key: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(mem.put(&ObjPath::from(key), PutPayload::from(b"x".to_vec())))
            .unwrap();
    }
}
