//! The scan's result: the [`Inventory`] of blobs, repositories, tags,
//! links and uploads, and the [`ScanOptions`] that say how much of it to
//! learn.

use crate::digest::Interner;
use crate::problem::Problem;
use std::collections::HashMap;
use std::time::SystemTime;

/// A blob found under `blobs/sha256/`.
#[derive(Debug, Clone)]
pub struct Blob {
    /// Interned digest.
    pub id: u32,
    /// Size of its `data`: read from storage when `stat` is true, else the
    /// size a manifest's descriptor declares (0 when none does).
    pub size: u64,
    /// Modification time of its `data`, when known, in nanoseconds since
    /// 1970 (`i64::MIN`: unknown): 8 bytes where `Option<SystemTime>`
    /// takes 16, in a table of every blob ([`Blob::modified`]).
    modified_ns: i64,
    /// True when `size` and `modified` were read from storage.
    pub stat: bool,
    /// True when `size` is the length of the whole `data` as read from
    /// storage (a manifest the graph read), though `modified` is unknown.
    pub read: bool,
}

impl Blob {
    /// A blob of `size` bytes modified at `modified`.
    pub fn new(id: u32, size: u64, modified: Option<SystemTime>, stat: bool) -> Blob {
        let mut b = Blob {
            id,
            size,
            modified_ns: i64::MIN,
            stat,
            read: false,
        };
        b.set_modified(modified);
        b
    }

    /// Modification time of its `data`, when known.
    pub fn modified(&self) -> Option<SystemTime> {
        use std::time::{Duration, UNIX_EPOCH};
        let ns = self.modified_ns;
        (ns != i64::MIN).then(|| {
            if ns >= 0 {
                UNIX_EPOCH + Duration::from_nanos(ns as u64)
            } else {
                UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
            }
        })
    }

    /// Sets its modification time. Times beyond 1678–2262 are held as the
    /// nearest of those years: no age a grace period compares changes side.
    pub fn set_modified(&mut self, t: Option<SystemTime>) {
        use std::time::UNIX_EPOCH;
        self.modified_ns = match t {
            None => i64::MIN,
            Some(t) => match t.duration_since(UNIX_EPOCH) {
                Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
                Err(e) => i64::try_from(e.duration().as_nanos())
                    .map_or(i64::MIN + 1, |n| (-n).max(i64::MIN + 1)),
            },
        };
    }
}

/// A tag of a repository.
#[derive(Debug, Clone, Default)]
pub struct Tag {
    /// Tag name.
    pub name: String,
    /// The manifest `current/link` points at; `None` when the link is missing or bad.
    pub current: Option<u32>,
    /// Every digest in the tag's `index/` history.
    pub history: Vec<u32>,
}

/// An upload under `_uploads/<id>/`.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The upload's id (a UUID).
    pub id: String,
    /// Total bytes of every file under it.
    pub size: u64,
    /// Its `startedat` time, when present and valid.
    pub started_at: Option<SystemTime>,
    /// Newest modification time of its files, when known.
    pub modified: Option<SystemTime>,
}

/// A repository (a directory with `_manifests`, or one holding only
/// `_layers`/`_uploads`, which the registry cannot see).
#[derive(Debug, Clone, Default)]
pub struct Repository {
    /// Name, e.g. `team-a/svc/api`.
    pub name: String,
    /// True when it has `_manifests` (the registry's catalog rule).
    pub visible: bool,
    /// Manifests with a revision link, sorted and deduplicated.
    pub revisions: Vec<u32>,
    /// Tags, sorted by name.
    pub tags: Vec<Tag>,
    /// Blobs with a `_layers/sha256/<hex>/link`, sorted.
    pub layers: Vec<u32>,
    /// Alias links `_layers/<alg>/<hex>/link` (`sha384`, `sha512`): the id
    /// of the alias digest (`alg:hex`) and of the sha256 blob its link
    /// names, sorted. The registry serves the blob by either digest.
    pub aliases: Vec<(u32, u32)>,
    /// Uploads in progress or abandoned.
    pub uploads: Vec<Upload>,
    /// With [`ScanOptions::link_times`], on a shallow scan: the modification
    /// times of the revision links the listing stat'ed, by manifest id,
    /// sorted (those it could not stat are missing).
    pub revision_times: Vec<(u32, SystemTime)>,
    /// With [`ScanOptions::tag_times`], on a shallow scan: per tag (in
    /// [`Repository::tags`] order), the modification time of its
    /// `current/link` when the listing stat'ed it; otherwise empty.
    pub tag_times: Vec<Option<SystemTime>>,
}

impl Repository {
    /// The sha256 blobs this repository's alias links name for `alias`
    /// (pairs of [`Repository::aliases`], which is sorted).
    pub fn alias_targets(&self, alias: u32) -> impl Iterator<Item = u32> + '_ {
        let start = self.aliases.partition_point(|&(a, _)| a < alias);
        self.aliases[start..]
            .iter()
            .take_while(move |&&(a, _)| a == alias)
            .map(|&(_, c)| c)
    }
}

/// Everything the scan learnt about the storage.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Where it came from.
    pub storage: String,
    /// Digest ↔ id. Blob ids come first: `0..blobs.len()`.
    pub interner: Interner,
    /// Every blob in `blobs/sha256/`, indexed by id.
    pub blobs: Vec<Blob>,
    /// Every repository, sorted by name.
    pub repos: Vec<Repository>,
    /// Problems found while scanning.
    pub problems: Vec<Problem>,
    /// Blob directories found to have no `data` (not blobs after all).
    pub absent: roaring::RoaringBitmap,
    /// With [`ScanOptions::check_links`]: every link read and checked.
    pub links: LinkCheck,
    /// With [`ScanOptions::hash_blobs`]: the blobs hashed while listing.
    pub hashes: BlobHashes,
    /// Every alias digest any repository links (see
    /// [`Repository::aliases`]) and the sha256 blobs it names there: a
    /// manifest that references the alias keeps those blobs alive.
    pub aliases: HashMap<u32, Vec<u32>>,
}

/// The links a scan with [`ScanOptions::check_links`] read: how many, and
/// those that do not hold exactly the digest of their path.
#[derive(Debug, Default)]
pub struct LinkCheck {
    /// Links read and checked (revisions, `_layers`, tag history).
    pub checked: usize,
    /// The links that failed the check, by repository, then key.
    pub faults: Vec<LinkFault>,
}

/// Which link of a repository a [`LinkFault`] is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LinkKind {
    /// `_manifests/revisions/sha256/<hex>/link`.
    Revision,
    /// `_layers/sha256/<hex>/link`.
    Layer,
    /// `_manifests/tags/<tag>/index/sha256/<hex>/link` of this tag.
    History(String),
}

/// A link that does not hold exactly the digest of its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkFault {
    /// Index of its repository in [`Inventory::repos`].
    pub repo: usize,
    /// Which link it is.
    pub kind: LinkKind,
    /// The digest of its path.
    pub id: u32,
    /// Its key.
    pub key: String,
    /// What it holds instead, or why it cannot be read.
    pub message: String,
}

/// Blob contents hashed while listing, by a scan with
/// [`ScanOptions::hash_blobs`] on a backend that reads while it lists.
#[derive(Debug, Default)]
pub struct BlobHashes {
    /// Blobs with a result (hashed or failed), by id.
    pub done: roaring::RoaringBitmap,
    /// Bytes hashed, indexed by blob id (0 where not hashed).
    pub bytes: Vec<u64>,
    /// Blobs whose content has another sha256 than their digest: id → it.
    pub mismatched: HashMap<u32, [u8; 32]>,
    /// Blobs that could not be read: id → why.
    pub failed: HashMap<u32, String>,
    /// Seconds spent listing the blobs and hashing them.
    pub seconds: f64,
}

impl Inventory {
    /// The blob with this id, if it is stored.
    pub fn blob(&self, id: u32) -> Option<&Blob> {
        self.blobs.get(id as usize)
    }

    /// Ids of every stored blob.
    pub fn stored_blobs(&self) -> roaring::RoaringBitmap {
        let mut all: roaring::RoaringBitmap = (0..self.blobs.len() as u32).collect();
        all -= &self.absent;
        all
    }
}

/// Settings of the scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Largest link file read (bytes).
    pub max_link_size: u64,
    /// List every file (a full audit: stray temp files, link files inside
    /// every digest directory). Without it, backends that prefer shallow
    /// listings (a filesystem) read only the directories whose names are
    /// digests, not the one-file directories below them.
    pub deep: bool,
    /// Stat every blob's `data` for its size and age. Without it, a shallow
    /// scan leaves blob sizes to [`fill_blob_stats`](super::fill_blob_stats) (called for the blobs
    /// that matter: the garbage ones).
    pub stat_blobs: bool,
    /// With `deep`: read every revision, `_layers` and tag history link and
    /// check that it holds exactly the digest of its path
    /// ([`Inventory::links`]). A filesystem reads each one while its
    /// directory is open; other backends read them after listing.
    pub check_links: bool,
    /// With `deep`: hash blobs' content where the backend can while it
    /// lists them ([`Inventory::hashes`]; a filesystem hashes all but large
    /// ones). The rest is left to the caller.
    pub hash_blobs: bool,
    /// Read every tag's history (`index/`), which only a sweep plan needs.
    /// Without it, a shallow scan leaves [`Tag::history`] empty.
    pub tag_history: bool,
    /// Learn the modification time of every garbage blob, which only a
    /// sweep plan (its grace period) needs. Without it, garbage manifests'
    /// sizes come from reading them and they are not stat'ed again.
    pub blob_ages: bool,
    /// Keep the modification times of revision links, which a shallow scan
    /// stats anyway ([`Repository::revision_times`]): what
    /// [`crate::times`] and the sweep plan would otherwise stat again.
    pub link_times: bool,
    /// With `link_times`: also stat tags' `current/link` while their
    /// directory is open ([`Repository::tag_times`]).
    pub tag_times: bool,
    /// Tags kept outside the storage (`--tags-from`), added to the
    /// repositories the scan found.
    pub tags_from: Option<std::sync::Arc<super::external_tags::ExternalTags>>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            max_link_size: 4096,
            deep: true,
            stat_blobs: true,
            check_links: false,
            hash_blobs: false,
            tag_history: true,
            blob_ages: true,
            link_times: false,
            tag_times: false,
            tags_from: None,
        }
    }
}

impl ScanOptions {
    /// The fast settings of `report` and `sweep`: shallow listings where the
    /// backend prefers them, blob sizes only where needed.
    pub fn fast() -> Self {
        ScanOptions {
            deep: false,
            stat_blobs: false,
            ..Default::default()
        }
    }
}
