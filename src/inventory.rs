//! The inventory: a compact, deterministic record of what a storage holds
//! (every repository with its tags → digests and manifests, every blob digest
//! → size), written by `regsweep inventory` and compared by
//! `regsweep verify --against` — typically before a backup and after the
//! restore.
//!
//! The file is the JSON document [`InventoryDoc`] (format version
//! [`FORMAT_VERSION`]); maps are sorted, so two inventories of the same
//! storage differ only in `generated_at`.

use crate::scan::Inventory;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::SystemTime;

/// Version of the inventory format; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// The inventory file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryDoc {
    /// Version of this format.
    pub format_version: u32,
    /// regsweep's version that wrote it.
    pub tool_version: String,
    /// The storage it describes.
    pub storage: String,
    /// When it was taken (RFC 3339, UTC).
    pub generated_at: String,
    /// Every repository the registry can see (it has `_manifests`), sorted by name.
    pub repositories: Vec<RepositoryRecord>,
    /// Every blob in `blobs/sha256/`: digest → size in bytes.
    pub blobs: BTreeMap<String, u64>,
}

/// One repository in the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryRecord {
    /// Repository name.
    pub name: String,
    /// Tag → the manifest digest its `current/link` names. Tags whose link
    /// is missing or unreadable are left out (they are not pullable).
    pub tags: BTreeMap<String, String>,
    /// Digests of the manifests with a revision link, sorted.
    pub manifests: Vec<String>,
}

/// Records what a scanned storage holds.
pub fn record(inv: &Inventory, now: SystemTime) -> InventoryDoc {
    let digest = |id: u32| inv.interner.digest(id).to_string();
    let repositories = inv
        .repos
        .iter()
        .filter(|r| r.visible)
        .map(|r| {
            let mut manifests: Vec<String> = r.revisions.iter().map(|&id| digest(id)).collect();
            manifests.sort();
            RepositoryRecord {
                name: r.name.clone(),
                tags: r
                    .tags
                    .iter()
                    .filter_map(|t| t.current.map(|c| (t.name.clone(), digest(c))))
                    .collect(),
                manifests,
            }
        })
        .collect();
    InventoryDoc {
        format_version: FORMAT_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        storage: inv.storage.clone(),
        generated_at: chrono::DateTime::<chrono::Utc>::from(now)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        repositories,
        blobs: inv.blobs.iter().map(|b| (digest(b.id), b.size)).collect(),
    }
}

/// Reads an inventory file, refusing other format versions.
pub fn load(path: &Path) -> Result<InventoryDoc> {
    let name = path.display();
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let v: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| Error::parse(&name, format!("not a JSON document: {e}")))?;
    match v.get("format_version").and_then(|x| x.as_u64()) {
        Some(n) if n == u64::from(FORMAT_VERSION) => {}
        Some(n) => {
            return Err(Error::parse(
                &name,
                format!(
                    "inventory format version {n}; this regsweep reads version {FORMAT_VERSION}"
                ),
            ))
        }
        None => {
            return Err(Error::parse(
                &name,
                "not a regsweep inventory (no format_version)",
            ))
        }
    }
    serde_json::from_value(v).map_err(|e| Error::parse(&name, format!("bad inventory: {e}")))
}

/// One way in which the storage differs from an inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// A tag the inventory lists is gone (its repository may be gone too).
    TagMissing {
        /// Repository name.
        repository: String,
        /// Tag name.
        tag: String,
        /// The digest it pointed at.
        digest: String,
        /// True when the whole repository is gone.
        repository_missing: bool,
    },
    /// A tag now points at another manifest.
    TagChanged {
        /// Repository name.
        repository: String,
        /// Tag name.
        tag: String,
        /// The digest the inventory recorded.
        was: String,
        /// The digest it names now.
        now: String,
    },
    /// A manifest's revision link is gone from its repository.
    ManifestMissing {
        /// Repository name.
        repository: String,
        /// Manifest digest.
        digest: String,
    },
    /// A blob is gone.
    BlobMissing {
        /// Blob digest.
        digest: String,
        /// Its recorded size.
        size: u64,
    },
    /// A blob's stored size changed.
    BlobSizeChanged {
        /// Blob digest.
        digest: String,
        /// The recorded size.
        was: u64,
        /// The size now.
        now: u64,
    },
    /// Something the inventory does not list.
    Extra {
        /// Repository, when the extra item is a repository, tag or manifest.
        repository: Option<String>,
        /// Tag, when it is a tag.
        tag: Option<String>,
        /// Digest of the extra tag's target, manifest or blob.
        digest: Option<String>,
    },
}

/// Compares the `expected` inventory with the `actual` one (of the storage
/// now). Differences come in a stable order: repositories by name (tags,
/// then manifests), then blobs by digest, then extra items.
pub fn compare(expected: &InventoryDoc, actual: &InventoryDoc) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut extra = Vec::new();
    let now: BTreeMap<&str, &RepositoryRecord> = actual
        .repositories
        .iter()
        .map(|r| (r.name.as_str(), r))
        .collect();
    let was: BTreeSet<&str> = expected
        .repositories
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    for r in &expected.repositories {
        let cur = now.get(r.name.as_str()).copied();
        for (tag, digest) in &r.tags {
            match cur.and_then(|c| c.tags.get(tag)) {
                None => out.push(Difference::TagMissing {
                    repository: r.name.clone(),
                    tag: tag.clone(),
                    digest: digest.clone(),
                    repository_missing: cur.is_none(),
                }),
                Some(d) if d != digest => out.push(Difference::TagChanged {
                    repository: r.name.clone(),
                    tag: tag.clone(),
                    was: digest.clone(),
                    now: d.clone(),
                }),
                Some(_) => {}
            }
        }
        let have: BTreeSet<&str> = cur
            .map(|c| c.manifests.iter().map(String::as_str).collect())
            .unwrap_or_default();
        for m in &r.manifests {
            if !have.contains(m.as_str()) {
                out.push(Difference::ManifestMissing {
                    repository: r.name.clone(),
                    digest: m.clone(),
                });
            }
        }
        if let Some(c) = cur {
            for (tag, digest) in &c.tags {
                if !r.tags.contains_key(tag) {
                    extra.push(Difference::Extra {
                        repository: Some(r.name.clone()),
                        tag: Some(tag.clone()),
                        digest: Some(digest.clone()),
                    });
                }
            }
            let listed: BTreeSet<&str> = r.manifests.iter().map(String::as_str).collect();
            for m in &c.manifests {
                if !listed.contains(m.as_str()) {
                    extra.push(Difference::Extra {
                        repository: Some(r.name.clone()),
                        tag: None,
                        digest: Some(m.clone()),
                    });
                }
            }
        }
    }
    for r in &actual.repositories {
        if !was.contains(r.name.as_str()) {
            extra.push(Difference::Extra {
                repository: Some(r.name.clone()),
                tag: None,
                digest: None,
            });
        }
    }
    for (digest, &size) in &expected.blobs {
        match actual.blobs.get(digest) {
            None => out.push(Difference::BlobMissing {
                digest: digest.clone(),
                size,
            }),
            Some(&now) if now != size => out.push(Difference::BlobSizeChanged {
                digest: digest.clone(),
                was: size,
                now,
            }),
            Some(_) => {}
        }
    }
    for digest in actual.blobs.keys() {
        if !expected.blobs.contains_key(digest) {
            extra.push(Difference::Extra {
                repository: None,
                tag: None,
                digest: Some(digest.clone()),
            });
        }
    }
    out.extend(extra);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(tags: &[(&str, &str)], manifests: &[&str], blobs: &[(&str, u64)]) -> InventoryDoc {
        InventoryDoc {
            format_version: FORMAT_VERSION,
            tool_version: "t".into(),
            storage: "s".into(),
            generated_at: "g".into(),
            repositories: vec![RepositoryRecord {
                name: "a".into(),
                tags: tags
                    .iter()
                    .map(|(t, d)| (t.to_string(), d.to_string()))
                    .collect(),
                manifests: manifests.iter().map(|m| m.to_string()).collect(),
            }],
            blobs: blobs.iter().map(|(d, s)| (d.to_string(), *s)).collect(),
        }
    }

    #[test]
    fn same_inventory_has_no_differences() {
        let d = doc(&[("v1", "m1")], &["m1"], &[("b1", 3)]);
        assert!(compare(&d, &d.clone()).is_empty());
    }

    #[test]
    fn reports_missing_changed_and_extra() {
        let before = doc(
            &[("v1", "m1"), ("v2", "m2")],
            &["m1", "m2"],
            &[("b1", 3), ("b2", 4)],
        );
        let after = doc(
            &[("v1", "m3"), ("v3", "m1")],
            &["m1"],
            &[("b1", 5), ("b9", 1)],
        );
        let diff = compare(&before, &after);
        assert!(diff.contains(&Difference::TagChanged {
            repository: "a".into(),
            tag: "v1".into(),
            was: "m1".into(),
            now: "m3".into()
        }));
        assert!(diff.contains(&Difference::TagMissing {
            repository: "a".into(),
            tag: "v2".into(),
            digest: "m2".into(),
            repository_missing: false
        }));
        assert!(diff.contains(&Difference::ManifestMissing {
            repository: "a".into(),
            digest: "m2".into()
        }));
        assert!(diff.contains(&Difference::BlobMissing {
            digest: "b2".into(),
            size: 4
        }));
        assert!(diff.contains(&Difference::BlobSizeChanged {
            digest: "b1".into(),
            was: 3,
            now: 5
        }));
        let extras = diff
            .iter()
            .filter(|d| matches!(d, Difference::Extra { .. }))
            .count();
        assert_eq!(extras, 2, "{diff:#?}"); // tag v3 and blob b9
        let mut gone = after.clone();
        gone.repositories.clear();
        let diff = compare(&before, &gone);
        assert!(diff.iter().any(|d| matches!(
            d,
            Difference::TagMissing {
                repository_missing: true,
                ..
            }
        )));
    }

    #[test]
    fn load_refuses_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("inv.json");
        let mut d = doc(&[], &[], &[]);
        std::fs::write(&p, serde_json::to_vec(&d).unwrap()).unwrap();
        assert_eq!(load(&p).unwrap(), d);
        d.format_version = 99;
        std::fs::write(&p, serde_json::to_vec(&d).unwrap()).unwrap();
        assert!(load(&p).unwrap_err().to_string().contains("99"));
        std::fs::write(&p, b"{}").unwrap();
        assert!(load(&p).is_err());
    }
}
