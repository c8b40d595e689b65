//! The storage layer: one small trait over a registry's backing store.
//!
//! Keys are `/`-separated paths relative to the registry's `docker/registry/v2/`
//! directory (or prefix). Two backends implement [`Storage`]: [`fs::FsStorage`]
//! walks a directory itself and never follows symlinks; [`object::ObjectStorage`]
//! wraps an `object_store` bucket and keeps many requests in flight.
//!
//! [`Storage`] holds what every backend means the same way: list (a prefix
//! recursively, or its immediate children), read, stat, delete, move into
//! and out of a quarantine. The rest is reached through it: the batched
//! forms of those calls ([`StorageBatch`], which a backend overrides to run
//! batches its own way), the scan's hints ([`ScanHints`]: request counts,
//! listings split into ranges or answered from memory), and what only a
//! filesystem does fast, looking inside each listed directory while it is
//! open ([`FsFastPaths`]). Callers use [`StorageExt`], implemented for every
//! backend, for the first two; `ext.rs` holds them.

mod ext;
mod fast_paths;
pub mod fs;
pub mod hash;
pub mod object;

pub use ext::{hand_over, Cuts, ScanHints, StorageBatch, StorageExt};
pub use fast_paths::{DigestListing, Fetch, Fetched, FsFastPaths, Probe, Probed};

pub use crate::digest::blob_data_key;
use std::time::SystemTime;

/// Where the registry's data starts inside a root directory or bucket prefix.
pub const V2_PREFIX: &str = "docker/registry/v2";

/// What kind of object a listing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file or an object.
    File,
    /// A symbolic link (filesystem only); never followed.
    Symlink {
        /// Where it points, as written in the link.
        target: String,
    },
    /// A socket, fifo, device: never read.
    Special,
}

/// One object found by a listing.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Key relative to `docker/registry/v2/`.
    pub key: String,
    /// What it is.
    pub kind: EntryKind,
    /// Size in bytes, when the listing knew it without extra work.
    pub size: Option<u64>,
    /// Modification time, when known.
    pub modified: Option<SystemTime>,
}

/// Immediate children of a prefix.
#[derive(Debug, Default)]
pub struct DirListing {
    /// Names (single path components) of child directories / common prefixes.
    pub dirs: Vec<String>,
    /// Objects directly under the prefix.
    pub files: Vec<Entry>,
    /// With [`FsFastPaths::list_dirs_probe_many`]: what each probe found in each
    /// of `dirs`: `probes[i * n + j]` is probe `j` of `dirs[i]` (of `n`
    /// probes). Empty otherwise.
    pub probes: Vec<Result<Probed, StorageError>>,
}

/// A recursive listing: what was found, and what could not be listed.
#[derive(Debug, Default)]
pub struct Listing {
    /// Every object below the prefix (directories themselves are not listed).
    pub entries: Vec<Entry>,
    /// Parts of the tree that could not be read; the listing is incomplete there.
    pub errors: Vec<StorageError>,
    /// With [`FsFastPaths::list_fetching_many`]: what the backend read or hashed
    /// while listing, as (index into `entries`, result), in entry order.
    /// Entries without a result here were not fetched.
    pub fetched: Vec<(usize, Result<Fetched, StorageError>)>,
}

/// Size and age of one object.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, when the backend records one.
    pub modified: Option<SystemTime>,
}

/// An error that names the object it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The object does not exist.
    #[error("{key}: not found")]
    NotFound {
        /// Key of the object.
        key: String,
    },
    /// The object is bigger than the caller allows.
    #[error("{key}: {size} bytes is larger than the limit of {limit} bytes")]
    TooLarge {
        /// Key of the object.
        key: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A symlink where a file or directory was expected; never followed.
    #[error("{key}: is a symlink (to {target}); symlinks are never followed")]
    Symlink {
        /// Key of the link.
        key: String,
        /// Its target.
        target: String,
    },
    /// Not a regular file.
    #[error("{key}: not a regular file")]
    NotAFile {
        /// Key of the object.
        key: String,
    },
    /// Moving an object back would overwrite one of the same key.
    #[error("{key}: already exists in the storage; not overwritten")]
    Exists {
        /// Key of the object.
        key: String,
    },
    /// An operating-system error (permission denied, I/O error…).
    #[error("{key}: {error}")]
    Io {
        /// Key of the object.
        key: String,
        /// The operating system's error. Not marked as the error's source:
        /// the message already holds it, and a chain printed with `{:#}`
        /// would repeat it.
        error: std::io::Error,
    },
    /// An object-store error (HTTP status, credentials, network…).
    #[error("{key}: {message}")]
    Backend {
        /// Key of the object.
        key: String,
        /// The backend's message.
        message: String,
    },
}

impl StorageError {
    /// The key the error concerns.
    pub fn key(&self) -> &str {
        match self {
            StorageError::NotFound { key }
            | StorageError::TooLarge { key, .. }
            | StorageError::Symlink { key, .. }
            | StorageError::NotAFile { key }
            | StorageError::Exists { key }
            | StorageError::Io { key, .. }
            | StorageError::Backend { key, .. } => key,
        }
    }

    /// True when the object simply does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound { .. })
    }

    /// True when the write failed for want of room (ENOSPC, a quota): every
    /// later write to the same place would fail alike.
    pub fn is_out_of_space(&self) -> bool {
        match self {
            StorageError::Io { error, .. } => {
                error.kind() == std::io::ErrorKind::StorageFull
                    || error.kind() == std::io::ErrorKind::QuotaExceeded
                    || matches!(
                        error.raw_os_error(),
                        Some(libc::ENOSPC) | Some(libc::EDQUOT)
                    )
            }
            _ => false,
        }
    }
}

/// Requests a backend sent to its object store, by kind. A `list` is one
/// page of a listing (up to 1,000 keys or common prefixes); a batched
/// delete of up to 1,000 keys is one `delete`; a `copy` is a server-side
/// copy (S3 `CopyObject`, sent to move objects into and out of a quarantine).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RequestCounts {
    /// LIST requests (pages).
    pub list: u64,
    /// GET requests (whole objects read).
    pub get: u64,
    /// HEAD requests (stats).
    pub head: u64,
    /// DELETE requests.
    pub delete: u64,
    /// COPY requests.
    pub copy: u64,
    /// All of them.
    pub total: u64,
}

impl RequestCounts {
    /// The requests of `self` that `before` had not counted yet.
    pub fn since(&self, before: &RequestCounts) -> RequestCounts {
        RequestCounts {
            list: self.list - before.list,
            get: self.get - before.get,
            head: self.head - before.head,
            delete: self.delete - before.delete,
            copy: self.copy - before.copy,
            total: self.total - before.total,
        }
    }
}

impl std::fmt::Display for RequestCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests ({} LIST, {} GET, {} HEAD, {} DELETE, {} COPY)",
            self.total, self.list, self.get, self.head, self.delete, self.copy
        )
    }
}

/// Counts the requests of a backend as they are sent; shared with whatever
/// reports them (the `REGSWEEP_TIMINGS` lines of [`crate::progress::Progress`]).
#[derive(Debug, Default)]
pub struct RequestCounter {
    list: std::sync::atomic::AtomicU64,
    get: std::sync::atomic::AtomicU64,
    head: std::sync::atomic::AtomicU64,
    delete: std::sync::atomic::AtomicU64,
    copy: std::sync::atomic::AtomicU64,
}

/// A kind of request, for [`RequestCounter::add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// A page of a listing.
    List,
    /// A GET.
    Get,
    /// A HEAD.
    Head,
    /// A DELETE (single or batched).
    Delete,
    /// A server-side COPY.
    Copy,
}

impl RequestCounter {
    /// Counts `n` requests of `kind`.
    pub fn add(&self, kind: RequestKind, n: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = match kind {
            RequestKind::List => &self.list,
            RequestKind::Get => &self.get,
            RequestKind::Head => &self.head,
            RequestKind::Delete => &self.delete,
            RequestKind::Copy => &self.copy,
        };
        c.fetch_add(n, Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> RequestCounts {
        use std::sync::atomic::Ordering::Relaxed;
        let mut r = RequestCounts {
            list: self.list.load(Relaxed),
            get: self.get.load(Relaxed),
            head: self.head.load(Relaxed),
            delete: self.delete.load(Relaxed),
            copy: self.copy.load(Relaxed),
            total: 0,
        };
        r.total = r.list + r.get + r.head + r.delete + r.copy;
        r
    }
}

/// A registry's backing store, read through keys relative to `docker/registry/v2/`.
///
/// What every backend means the same way: listing (a prefix recursively, or
/// its immediate children), reading, stat'ing, deleting, moving into and
/// out of a quarantine. Implementations never follow symlinks and never
/// touch anything outside their root. Three extensions are reached from
/// here: a backend's own batches ([`Storage::batch`]), the scan's hints
/// ([`Storage::hints`]) and the filesystem's fast paths
/// ([`Storage::fast_paths`]); callers reach the first two through
/// [`StorageExt`], which falls back to generic forms.
pub trait Storage: Send + Sync {
    /// Human-readable location (a path or a URL) for reports.
    fn describe(&self) -> String;

    /// Immediate children of `prefix` (which ends with `/` or is empty).
    /// A prefix that does not exist gives an empty listing.
    fn list_dirs(&self, prefix: &str) -> Result<DirListing, StorageError>;

    /// Every object below `prefix`, recursively. `want_meta` asks for sizes
    /// and modification times where that costs extra work (a `stat` per
    /// file). A prefix that does not exist gives an empty listing.
    fn list(&self, prefix: &str, want_meta: bool) -> Result<Listing, StorageError>;

    /// Reads a whole object, refusing objects larger than `limit` bytes
    /// ([`StorageError::TooLarge`]); a missing one is
    /// [`StorageError::NotFound`].
    fn read(&self, key: &str, limit: u64) -> Result<Vec<u8>, StorageError>;

    /// Size and modification time of one object; a missing one is
    /// [`StorageError::NotFound`].
    fn stat(&self, key: &str) -> Result<Meta, StorageError>;

    /// Deletes one object. A missing object is not an error (deleting twice
    /// is deleting once). Never follows a symlink and never deletes one.
    fn delete(&self, key: &str) -> Result<(), StorageError>;

    /// Moves one object to the same key under the quarantine root `q` (a
    /// directory for a filesystem, a key prefix of the same store for an
    /// object store), where it is laid out as a registry root of its own.
    fn quarantine(&self, key: &str, q: &str) -> Result<(), StorageError>;

    /// Moves one object back from the quarantine root `q`. Refuses to
    /// overwrite an object that exists in the storage.
    fn unquarantine(&self, key: &str, q: &str) -> Result<(), StorageError>;

    /// Writes `bytes` as `key` under the quarantine root `q` (where
    /// [`Storage::quarantine`] would move `key`), replacing what is there:
    /// the quarantine's own records of what was moved into it. Never
    /// writes into the storage itself.
    fn write_to_quarantine(&self, key: &str, q: &str, bytes: &[u8]) -> Result<(), StorageError>;

    /// Removes directories left empty after deletions: each of `dirs`, then
    /// its parents, stopping at the first one that is not empty or for which
    /// `keep` is true. A no-op on object stores, which have no directories.
    fn remove_empty_dirs(&self, dirs: &[String], keep: &(dyn Fn(&str) -> bool + Sync)) {
        let _ = (dirs, keep);
    }

    /// The backend's own batches, when it runs them otherwise than one
    /// call per key on rayon's threads (its I/O threads, a limit of
    /// requests in flight, batched requests). `None`: the generic ones.
    /// Callers use [`StorageExt`]'s `*_many` methods, which ask this.
    fn batch(&self) -> Option<&dyn StorageBatch> {
        None
    }

    /// The scan's hints, for a backend that counts its requests, lists a
    /// prefix in ranges at once ([`ScanHints::list_split`]), or answers
    /// listings from memory. `None`: a backend that lists as
    /// [`Storage::list`] does. Callers use [`StorageExt`], which asks this.
    fn hints(&self) -> Option<&dyn ScanHints> {
        None
    }

    /// The filesystem's fast paths, for a backend where listing a
    /// directory's immediate children is much cheaper than listing
    /// everything below it (every digest directory is a separate directory
    /// to read) and where a file is cheapest to reach while its directory is
    /// open. `None` for object stores, which list recursively at the same
    /// cost, with sizes ([`ScanHints::list_split`]).
    fn fast_paths(&self) -> Option<&dyn FsFastPaths> {
        None
    }
}
