//! An AWS S3 Inventory report as the listing of a registry's bucket.
//!
//! `--listing s3-inventory://bucket/prefix/manifest.json` (or a local
//! `manifest.json`) reads the report's data files — gzip CSV or Parquet,
//! with the columns Key, Size and LastModifiedDate — into a compact sorted
//! [`index::Index`] of the objects under the registry's root, and
//! [`overlay::InventoryListing`] answers the scan's listings from it while
//! every read, stat and removal still goes to the bucket. Only manifests
//! and links are then fetched: the bucket is never listed, except
//! `repositories/` once before a removal is carried out
//! ([`overlay::InventoryListing::refresh`]).

pub mod csv;
pub mod index;
pub mod manifest;
pub mod overlay;
pub mod parquet;

use crate::{Error, Result};
use index::{Index, Part};
use manifest::{FileFormat, Manifest};
use object_store::ObjectStore;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// How the generators encode keys (`/` left alone, as AWS does).
pub const KEY_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'*');

/// The rows of data files being read: those under the registry root go
/// into a [`Part`], relative to it.
pub struct Rows<'a> {
    prefix: &'a str,
    part: &'a mut Part,
}

impl<'a> Rows<'a> {
    /// Rows whose keys start with `prefix` (`<rootdirectory>/docker/registry/v2/`).
    pub fn new(prefix: &'a str, part: &'a mut Part) -> Rows<'a> {
        Rows { prefix, part }
    }

    /// True for an object under the root (not a directory marker).
    pub fn wants(&self, key: &str) -> bool {
        key.len() > self.prefix.len() && key.starts_with(self.prefix) && !key.ends_with('/')
    }

    /// Adds an object that [`Rows::wants`].
    pub fn push(&mut self, key: &str, size: u64, modified_ms: Option<i64>) {
        self.part
            .push(&key.as_bytes()[self.prefix.len()..], size, modified_ms);
    }
}

/// Where the manifest is.
#[derive(Debug, Clone)]
pub enum Source {
    /// A `manifest.json` on the local filesystem; its data files are
    /// looked for beside it (see [`Source::local_data_file`]).
    Local(PathBuf),
    /// `s3-inventory://bucket/key`: the manifest in a bucket; its data
    /// files in the manifest's destination bucket.
    S3 {
        /// The bucket.
        bucket: String,
        /// The manifest's key.
        key: String,
    },
}

impl Source {
    /// Interprets a `--listing` argument.
    pub fn parse(arg: &str) -> Result<Source> {
        if let Some(rest) = arg
            .strip_prefix("s3-inventory://")
            .or_else(|| arg.strip_prefix("s3://"))
        {
            let no_key = || {
                Error::Invalid(format!(
                    "{arg}: give the manifest's key: s3-inventory://bucket/prefix/manifest.json"
                ))
            };
            let (bucket, key) = rest.split_once('/').ok_or_else(no_key)?;
            if bucket.is_empty() || key.is_empty() || key.ends_with('/') {
                return Err(no_key());
            }
            return Ok(Source::S3 {
                bucket: bucket.into(),
                key: key.into(),
            });
        }
        if let Some((scheme, _)) = arg.split_once("://") {
            return Err(Error::Invalid(format!("{arg}: unsupported listing scheme {scheme:?} (s3-inventory:// or a local manifest.json)")));
        }
        let p = PathBuf::from(arg);
        Ok(Source::Local(if p.is_dir() {
            p.join("manifest.json")
        } else {
            p
        }))
    }

    /// Where a data file of a local inventory is: `<dir>/data/<name>` (as
    /// `aws s3 cp --recursive` of the report's folder lays it out, beside
    /// `manifest.json`), else `<dir>/<name>`, else `<dir>/<key>`.
    pub fn local_data_file(manifest: &Path, key: &str) -> Result<PathBuf> {
        let dir = manifest.parent().unwrap_or(Path::new("."));
        let name = key.rsplit('/').next().unwrap_or(key);
        let tries = [dir.join("data").join(name), dir.join(name), dir.join(key)];
        for t in &tries {
            if t.is_file() {
                return Ok(t.clone());
            }
        }
        Err(Error::parse(
            manifest.display(),
            format!(
                "data file {key} is missing (looked for {})",
                tries
                    .iter()
                    .map(|t| t.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }
}

/// S3 connection settings for the inventory's bucket: those of the
/// registry's storage when it is on S3, else the `AWS_*` environment.
pub fn s3_store(
    bucket: &str,
    like: Option<&crate::storage::object::S3Settings>,
) -> Result<Arc<dyn ObjectStore>> {
    let env = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
    let (region, endpoint, allow_http, key, secret) = match like {
        Some(s) => (
            s.region.clone(),
            s.endpoint.clone(),
            s.allow_http,
            s.access_key.clone(),
            s.secret_key.clone(),
        ),
        None => (
            env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")),
            env("AWS_ENDPOINT_URL").or_else(|| env("AWS_ENDPOINT")),
            env("AWS_ALLOW_HTTP").is_some_and(|v| v == "true" || v == "1"),
            env("AWS_ACCESS_KEY_ID"),
            env("AWS_SECRET_ACCESS_KEY"),
        ),
    };
    b = b
        .with_region(region.unwrap_or_else(|| "us-east-1".into()))
        .with_allow_http(allow_http);
    if let Some(e) = endpoint {
        b = b.with_endpoint(e);
    }
    if let Some(k) = key {
        b = b.with_access_key_id(k);
    }
    if let Some(k) = secret {
        b = b.with_secret_access_key(k);
    }
    Ok(Arc::new(b.build().map_err(|e| {
        Error::object_store(format!("s3://{bucket}"), e)
    })?))
}

/// A loaded inventory: its manifest and the objects under the registry root.
#[derive(Debug)]
pub struct Loaded {
    /// The manifest.
    pub manifest: Manifest,
    /// The objects under the root, sorted.
    pub index: Index,
    /// The `--listing` argument, for messages.
    pub name: String,
    /// Bytes of data files read.
    pub bytes_read: u64,
}

impl Loaded {
    /// When the inventory was taken.
    pub fn created(&self) -> SystemTime {
        self.manifest.created
    }
}

/// Reads the inventory at `source`: its manifest, then every data file (in
/// parallel), keeping the objects whose keys start with `root`
/// (`<rootdirectory>/docker/registry/v2/`). `bucket` is the registry's
/// bucket: an inventory of another bucket is refused. `s3` are the
/// connection settings to reach an inventory in a bucket.
pub fn load(
    source: &Source,
    name: &str,
    root: &str,
    bucket: Option<&str>,
    s3: Option<&crate::storage::object::S3Settings>,
) -> Result<Loaded> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    // What errors call the manifest.
    let manifest_name = match source {
        Source::Local(p) => p.display().to_string(),
        Source::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
    };
    let (manifest, store) = match source {
        Source::Local(p) => {
            let bytes = std::fs::read(p).map_err(|e| Error::io(p, e))?;
            (Manifest::parse(&bytes, &manifest_name)?, None)
        }
        Source::S3 { bucket, key } => {
            let store = s3_store(bucket, s3)?;
            let bytes = rt
                .block_on(async {
                    store
                        .get(&object_store::path::Path::from(key.as_str()))
                        .await?
                        .bytes()
                        .await
                })
                .map_err(|e| Error::object_store(&manifest_name, e))?;
            let m = Manifest::parse(&bytes, &manifest_name)?;
            let data_bucket = m
                .destination_bucket
                .clone()
                .unwrap_or_else(|| bucket.clone());
            let store = if data_bucket == *bucket {
                store
            } else {
                s3_store(&data_bucket, s3)?
            };
            (m, Some((store, data_bucket)))
        }
    };
    if let (Some(src), Some(b)) = (&manifest.source_bucket, bucket) {
        if src != b {
            return Err(Error::Invalid(format!(
                "{name}: an inventory of bucket {src}, not of the storage's bucket {b}"
            )));
        }
    }
    let columns = match manifest.format {
        FileFormat::Csv => Some(csv::Columns::find(&manifest.schema, &manifest_name)?),
        FileFormat::Parquet => None,
    };
    let bytes_read = std::sync::atomic::AtomicU64::new(0);
    // Each file's rows join the whole as soon as it is read: no more than
    // the files in flight are held twice.
    let seed = Part::default();
    let all: std::sync::Mutex<Vec<Part>> = std::sync::Mutex::new(Vec::new());
    let failed: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
    manifest.files.par_iter().for_each(|f| {
        if failed.lock().expect("not poisoned").is_some() {
            return;
        }
        let mut part = Part::sharing(&seed);
        let mut rows = Rows::new(root, &mut part);
        let res = (|| -> Result<()> {
            match (&store, source) {
                (Some((store, b)), _) => {
                    let what = format!("s3://{b}/{}", f.key);
                    let data = rt
                        .block_on(async {
                            store
                                .get(&object_store::path::Path::from(f.key.as_str()))
                                .await?
                                .bytes()
                                .await
                        })
                        .map_err(|e| match e {
                            object_store::Error::NotFound { .. } => {
                                Error::parse(&manifest_name, format!("data file {what} is missing"))
                            }
                            e => Error::object_store(&what, e),
                        })?;
                    check_size(f, data.len() as u64, &what)?;
                    bytes_read.fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    match columns {
                        Some(c) => csv::read(&data[..], c, &mut rows, &what),
                        None => parquet::read(data, &mut rows, &what),
                    }
                }
                (None, Source::Local(m)) => {
                    let path = Source::local_data_file(m, &f.key)?;
                    let what = path.display().to_string();
                    let len = std::fs::metadata(&path)
                        .map_err(|e| Error::io(&path, e))?
                        .len();
                    check_size(f, len, &what)?;
                    bytes_read.fetch_add(len, std::sync::atomic::Ordering::Relaxed);
                    let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
                    match columns {
                        Some(c) => csv::read(
                            std::io::BufReader::with_capacity(1 << 20, file),
                            c,
                            &mut rows,
                            &what,
                        ),
                        None => parquet::read(file, &mut rows, &what),
                    }
                }
                (None, Source::S3 { .. }) => unreachable!("an S3 inventory has a store"),
            }
        })();
        match res {
            Ok(()) => all.lock().expect("not poisoned").push(part),
            Err(e) => {
                failed.lock().expect("not poisoned").get_or_insert(e);
            }
        }
    });
    if let Some(e) = failed.into_inner().expect("not poisoned") {
        return Err(e);
    }
    let mut parts = all.into_inner().expect("not poisoned");
    parts.push(seed);
    Ok(Loaded {
        manifest,
        index: Index::build(parts),
        name: name.to_string(),
        bytes_read: bytes_read.into_inner(),
    })
}

/// A data file of `got` bytes is the size its manifest entry `f` gives;
/// `what` is what errors call it.
fn check_size(f: &manifest::DataFile, got: u64, what: &str) -> Result<()> {
    match f.size {
        Some(want) if want != got => Err(Error::parse(
            what,
            format!("{got} bytes, but the manifest says {want}: truncated or replaced"),
        )),
        _ => Ok(()),
    }
}
