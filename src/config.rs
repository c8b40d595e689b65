//! Where the storage is: a directory, an object-store URL, or the reference
//! registry's own `config.yml` (its `storage:` section).

use crate::storage::fs::FsStorage;
use crate::storage::object::{ObjectStorage, S3Settings};
use crate::storage::Storage;
use crate::{Error, Result};
use serde_norway::Value;
use std::path::{Path, PathBuf};

/// A storage location, validated before any I/O.
#[derive(Debug, Clone)]
pub enum Location {
    /// A registry `rootdirectory` on a filesystem.
    Dir(PathBuf),
    /// `s3://`, `gs://` or `az://` URL; credentials from the environment,
    /// and for `gs://` and `az://` the `object_store` options read from a
    /// registry config (empty when the URL was given as STORAGE).
    Url(String, Vec<(String, String)>),
    /// S3 settings read from a registry config file.
    S3(S3Settings),
}

/// `scheme://bucket/root`, the root without its slashes.
fn url_of(scheme: &str, bucket: &str, root: Option<String>) -> String {
    let root = root.unwrap_or_default();
    let root = root.trim_matches('/');
    if root.is_empty() {
        format!("{scheme}://{bucket}")
    } else {
        format!("{scheme}://{bucket}/{root}")
    }
}

/// Keys of the registry's `storage:` section that are settings, not drivers.
const NOT_DRIVERS: [&str; 5] = ["delete", "maintenance", "cache", "redirect", "tag"];

impl Location {
    /// Interprets a STORAGE argument: a URL with a scheme, or a directory.
    pub fn parse(arg: &str) -> Result<Location> {
        if let Some((scheme, _)) = arg.split_once("://") {
            match scheme {
                "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" => Ok(Location::Url(arg.to_string(), Vec::new())),
                "file" => Ok(Location::Dir(PathBuf::from(&arg["file://".len()..]))),
                other => Err(Error::Invalid(format!("unsupported storage URL scheme {other:?}: use a directory, s3://, gs:// or az://"))),
            }
        } else {
            Ok(Location::Dir(PathBuf::from(arg)))
        }
    }

    /// Reads the `storage:` section of a reference registry `config.yml`
    /// (exactly one driver, as the registry requires).
    pub fn from_registry_config(path: &Path) -> Result<Location> {
        let bad = |message: String| Error::Config {
            file: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let doc: Value = serde_norway::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let storage = doc
            .get("storage")
            .ok_or_else(|| bad("no storage: section".into()))?;
        let str_of = |v: &Value, k: &str| -> Option<String> {
            v.get(k).and_then(|x| match x {
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        // The registry refuses a config that names several drivers; reading
        // the first one found could sweep another storage than it serves.
        let drivers: Vec<String> = storage
            .as_mapping()
            .map(|m| {
                m.keys()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .filter(|k| !NOT_DRIVERS.contains(&k.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        if drivers.len() > 1 {
            return Err(bad(format!(
                "more than one storage driver ({drivers:?}); the registry refuses such a \
                 config, so which storage it serves is unknown"
            )));
        }
        if let Some(fs) = storage.get("filesystem") {
            let root = str_of(fs, "rootdirectory").unwrap_or_else(|| "/var/lib/registry".into());
            return Ok(Location::Dir(PathBuf::from(root)));
        }
        if let Some(s3) = storage.get("s3") {
            let bucket =
                str_of(s3, "bucket").ok_or_else(|| bad("storage.s3.bucket is missing".into()))?;
            let secure = str_of(s3, "secure").is_none_or(|v| v != "false");
            return Ok(Location::S3(S3Settings {
                bucket,
                prefix: str_of(s3, "rootdirectory")
                    .unwrap_or_default()
                    .trim_matches('/')
                    .to_string(),
                region: str_of(s3, "region"),
                endpoint: str_of(s3, "regionendpoint").filter(|e| !e.is_empty()),
                access_key: str_of(s3, "accesskey").filter(|e| !e.is_empty()),
                secret_key: str_of(s3, "secretkey").filter(|e| !e.is_empty()),
                allow_http: !secure
                    || str_of(s3, "regionendpoint").is_some_and(|e| e.starts_with("http://")),
            }));
        }
        if let Some(gcs) = storage.get("gcs") {
            // distribution's gcs driver: bucket, rootdirectory, and a
            // service account as a key file or inline credentials.
            let bucket =
                str_of(gcs, "bucket").ok_or_else(|| bad("storage.gcs.bucket is missing".into()))?;
            let mut options = Vec::new();
            if let Some(f) = str_of(gcs, "keyfile").filter(|f| !f.is_empty()) {
                options.push(("google_service_account".to_string(), f));
            }
            if let Some(c) = gcs.get("credentials") {
                let json = serde_json::to_string(c)
                    .map_err(|e| bad(format!("storage.gcs.credentials: {e}")))?;
                options.push(("google_service_account_key".to_string(), json));
            }
            return Ok(Location::Url(
                url_of("gs", &bucket, str_of(gcs, "rootdirectory")),
                options,
            ));
        }
        if let Some(az) = storage.get("azure") {
            // distribution's azure driver: accountname, accountkey,
            // container, realm (the endpoint's suffix) or serviceurl,
            // rootdirectory.
            let container = str_of(az, "container")
                .ok_or_else(|| bad("storage.azure.container is missing".into()))?;
            let mut options = Vec::new();
            let account = str_of(az, "accountname").filter(|a| !a.is_empty());
            if let Some(a) = &account {
                options.push(("azure_storage_account_name".to_string(), a.clone()));
            }
            if let Some(k) = str_of(az, "accountkey").filter(|k| !k.is_empty()) {
                options.push(("azure_storage_account_key".to_string(), k));
            }
            let endpoint = match (str_of(az, "serviceurl").filter(|u| !u.is_empty()), &account) {
                (Some(u), _) => Some(u),
                (None, Some(a)) => str_of(az, "realm")
                    .filter(|r| !r.is_empty() && r != "core.windows.net")
                    .map(|r| format!("https://{a}.blob.{r}")),
                (None, None) => None,
            };
            if let Some(e) = endpoint {
                if e.starts_with("http://") {
                    options.push(("azure_allow_http".to_string(), "true".to_string()));
                }
                options.push(("azure_storage_endpoint".to_string(), e));
            }
            return Ok(Location::Url(
                url_of("az", &container, str_of(az, "rootdirectory")),
                options,
            ));
        }
        Err(bad(format!(
            "storage driver not supported (found {drivers:?}; supported: filesystem, s3, gcs, azure)"
        )))
    }

    /// Opens an object-store URL: from the environment alone, or with the
    /// options a registry config gave (which win over the environment's).
    fn open_url(url: &str, options: &[(String, String)]) -> Result<ObjectStorage> {
        if options.is_empty() {
            return ObjectStorage::from_url(url);
        }
        let mut all: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("GOOGLE_") || k.starts_with("AZURE_"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        all.extend(options.iter().cloned());
        ObjectStorage::from_url_with(url, all)
    }

    /// Opens the storage for reading.
    pub fn open(&self) -> Result<Box<dyn Storage>> {
        self.open_with_concurrency(None)
    }

    /// Opens the storage, keeping up to `concurrency` requests in flight
    /// (object stores: 64 by default; filesystems: I/O threads, see
    /// [`FsStorage::open_with_threads`]).
    pub fn open_with_concurrency(&self, concurrency: Option<usize>) -> Result<Box<dyn Storage>> {
        Ok(match self {
            Location::Dir(p) => Box::new(FsStorage::open_with_threads(p, concurrency).map_err(
                |error| Error::NotARegistry {
                    path: p.clone(),
                    error,
                },
            )?),
            Location::Url(u, options) => {
                let mut o = Self::open_url(u, options)?;
                o.set_concurrency(concurrency.unwrap_or(64));
                Box::new(o)
            }
            Location::S3(s) => {
                let display = format!("s3://{}/{}", s.bucket, s.prefix);
                let mut o = ObjectStorage::s3(s, &display)?;
                o.set_concurrency(concurrency.unwrap_or(64));
                Box::new(o)
            }
        })
    }
}

/// What the registry's `config.yml` says beyond where its storage is:
/// whether it is read-only now and whether it caches blob descriptors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrySettings {
    /// `storage.maintenance.readonly.enabled`.
    pub readonly: bool,
    /// `storage.cache.blobdescriptor` (`inmemory`, `redis`), when set.
    pub blob_descriptor_cache: Option<String>,
}

impl RegistrySettings {
    /// Reads them from a registry `config.yml`.
    pub fn read(path: &Path) -> Result<RegistrySettings> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let doc: Value = serde_norway::from_str(&text).map_err(|e| Error::Config {
            file: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let storage = doc.get("storage");
        let at =
            |keys: &[&str]| -> Option<&Value> { keys.iter().try_fold(storage?, |v, k| v.get(*k)) };
        let readonly = matches!(
            at(&["maintenance", "readonly", "enabled"]),
            Some(Value::Bool(true))
        ) || matches!(at(&["maintenance", "readonly", "enabled"]), Some(Value::String(s)) if s == "true");
        let blob_descriptor_cache = at(&["cache", "blobdescriptor"])
            .and_then(Value::as_str)
            .map(str::to_string)
            .filter(|c| !c.is_empty());
        Ok(RegistrySettings {
            readonly,
            blob_descriptor_cache,
        })
    }
}

/// The file a GitLab registry on its metadata database writes into its
/// storage, relative to the storage root: the database, not the storage,
/// is then the truth, and nothing may be collected offline.
pub const GITLAB_DATABASE_LOCK: &str = "docker/registry/lockfiles/database-in-use";

impl Location {
    /// The staging of a run on a registry that stays online: a directory
    /// (or prefix) beside `docker/` in the storage root, where moves are
    /// renames (or same-bucket copies). Returns the location to open it as
    /// a storage and the root the backend's `quarantine` takes.
    pub fn staging(&self) -> Result<(Location, String)> {
        let rel = crate::removal::online::STAGING.to_string();
        match self {
            Location::Dir(root) => {
                // Not created here: the first object moved creates it.
                let root = root.canonicalize().map_err(|e| Error::io(root, e))?;
                let d = root.join(&rel);
                let q = d
                    .to_str()
                    .ok_or_else(|| Error::Invalid(format!("{} is not UTF-8", d.display())))?
                    .to_string();
                Ok((Location::Dir(d), q))
            }
            Location::Url(u, _) => {
                let src = url::Url::parse(u).map_err(|e| Error::Invalid(format!("{u}: {e}")))?;
                let own = src.path().trim_matches('/');
                let q = if own.is_empty() {
                    rel
                } else {
                    format!("{own}/{rel}")
                };
                self.quarantine(&q)
            }
            Location::S3(s) => {
                let q = if s.prefix.is_empty() {
                    rel
                } else {
                    format!("{}/{rel}", s.prefix)
                };
                self.quarantine(&q)
            }
        }
    }

    /// Whether the storage holds [`GITLAB_DATABASE_LOCK`].
    pub fn gitlab_database_lock(&self) -> Result<bool> {
        match self {
            Location::Dir(root) => Ok(root.join(GITLAB_DATABASE_LOCK).exists()),
            Location::Url(u, options) => Ok(Self::open_url(u, options)?
                .exists_in_root(GITLAB_DATABASE_LOCK)
                .map_err(Error::from)?),
            Location::S3(s) => Ok(ObjectStorage::s3(s, "")?
                .exists_in_root(GITLAB_DATABASE_LOCK)
                .map_err(Error::from)?),
        }
    }
}

impl Location {
    /// Where a quarantine `dest` lives for this storage: the location to open
    /// it as a storage of its own, and the root argument the backend's
    /// `quarantine`/`unquarantine` take. A filesystem quarantine is a
    /// directory outside the registry tree; an object-store quarantine is
    /// another prefix of the same bucket (`s3://bucket/prefix` or `prefix`).
    pub fn quarantine(&self, dest: &str) -> Result<(Location, String)> {
        match self {
            Location::Dir(root) => {
                let d = PathBuf::from(dest);
                std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
                let d = d.canonicalize().map_err(|e| Error::io(&d, e))?;
                let v2 = root.join(crate::storage::V2_PREFIX);
                let v2 = v2.canonicalize().map_err(|e| Error::io(&v2, e))?;
                if d.starts_with(&v2) || v2.starts_with(&d) {
                    return Err(Error::Invalid(format!(
                        "quarantine {} must be outside the registry tree {}",
                        d.display(),
                        v2.display()
                    )));
                }
                let q = d
                    .to_str()
                    .ok_or_else(|| {
                        Error::Invalid(format!("quarantine {} is not UTF-8", d.display()))
                    })?
                    .to_string();
                Ok((Location::Dir(d), q))
            }
            Location::Url(u, options) => {
                let src = url::Url::parse(u).map_err(|e| Error::Invalid(format!("{u}: {e}")))?;
                let bucket = src.host_str().unwrap_or_default().to_string();
                let q = Self::dest_prefix(dest, &bucket)?;
                let own = src.path().trim_matches('/');
                Self::check_disjoint(own, &q)?;
                Ok((
                    Location::Url(format!("{}://{bucket}/{q}", src.scheme()), options.clone()),
                    q,
                ))
            }
            Location::S3(s) => {
                let q = Self::dest_prefix(dest, &s.bucket)?;
                Self::check_disjoint(&s.prefix, &q)?;
                let mut qs = s.clone();
                qs.prefix = q.clone();
                Ok((Location::S3(qs), q))
            }
        }
    }

    fn dest_prefix(dest: &str, bucket: &str) -> Result<String> {
        if let Some((_, rest)) = dest.split_once("://") {
            let (b, p) = rest.split_once('/').unwrap_or((rest, ""));
            if b != bucket {
                return Err(Error::Invalid(format!("quarantine {dest} must be in the same bucket ({bucket}): objects are moved by server-side copy")));
            }
            Ok(p.trim_matches('/').to_string())
        } else {
            Ok(dest.trim_matches('/').to_string())
        }
    }

    fn check_disjoint(own: &str, q: &str) -> Result<()> {
        let tree = |p: &str| {
            if p.is_empty() {
                format!("{}/", crate::storage::V2_PREFIX)
            } else {
                format!("{p}/{}/", crate::storage::V2_PREFIX)
            }
        };
        let (a, b) = (tree(own), tree(q));
        if q.is_empty() || a.starts_with(&b) || b.starts_with(&a) || own == q {
            return Err(Error::Invalid(format!(
                "quarantine prefix {q:?} overlaps the registry's prefix {own:?}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_filesystem_and_s3_sections() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.yml");
        std::fs::write(&p, "version: 0.1\nstorage:\n  delete:\n    enabled: true\n  filesystem:\n    rootdirectory: /srv/reg\n").unwrap();
        assert!(
            matches!(Location::from_registry_config(&p).unwrap(), Location::Dir(d) if d == Path::new("/srv/reg"))
        );
        std::fs::write(
            &p,
            "storage:\n  s3:\n    bucket: b\n    region: eu-west-1\n    regionendpoint: http://127.0.0.1:9000\n    rootdirectory: /reg\n    accesskey: a\n    secretkey: s\n    secure: false\n",
        )
        .unwrap();
        match Location::from_registry_config(&p).unwrap() {
            Location::S3(s) => {
                assert_eq!(s.bucket, "b");
                assert_eq!(s.prefix, "reg");
                assert!(s.allow_http);
                assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(&p, "storage:\n  inmemory: {}\n").unwrap();
        assert!(Location::from_registry_config(&p)
            .unwrap_err()
            .to_string()
            .contains("not supported"));
    }

    /// Two drivers: the registry refuses to start, and regsweep used to
    /// read the filesystem one without a word.
    #[test]
    fn refuses_two_storage_drivers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.yml");
        std::fs::write(
            &p,
            "storage:\n  delete:\n    enabled: true\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: /srv/reg\n  s3:\n    bucket: b\n",
        )
        .unwrap();
        let e = Location::from_registry_config(&p).unwrap_err().to_string();
        assert!(e.contains("more than one storage driver"), "{e}");
    }

    #[test]
    fn reads_gcs_and_azure_sections() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.yml");
        std::fs::write(&p, "storage:\n  gcs:\n    bucket: b\n    keyfile: /etc/key.json\n    rootdirectory: /reg/\n").unwrap();
        let Location::Url(u, o) = Location::from_registry_config(&p).unwrap() else {
            panic!("not a URL");
        };
        assert_eq!(u, "gs://b/reg");
        assert_eq!(
            o,
            vec![(
                "google_service_account".to_string(),
                "/etc/key.json".to_string()
            )]
        );
        std::fs::write(
            &p,
            "storage:\n  azure:\n    accountname: acct\n    accountkey: a2V5\n    container: c\n    realm: core.chinacloudapi.cn\n",
        )
        .unwrap();
        let Location::Url(u, o) = Location::from_registry_config(&p).unwrap() else {
            panic!("not a URL");
        };
        assert_eq!(u, "az://c");
        assert!(o.contains(&("azure_storage_account_name".into(), "acct".into())));
        assert!(o.contains(&("azure_storage_account_key".into(), "a2V5".into())));
        assert!(o.contains(&(
            "azure_storage_endpoint".into(),
            "https://acct.blob.core.chinacloudapi.cn".into()
        )));
        std::fs::write(&p, "storage:\n  azure:\n    accountname: acct\n").unwrap();
        let e = Location::from_registry_config(&p).unwrap_err().to_string();
        assert!(e.contains("storage.azure.container"), "{e}");
    }

    #[test]
    fn parses_arguments() {
        assert!(matches!(
            Location::parse("s3://b/p").unwrap(),
            Location::Url(..)
        ));
        assert!(matches!(Location::parse("/x").unwrap(), Location::Dir(_)));
        assert!(Location::parse("ftp://x").is_err());
    }
}
