//! The filesystem's fast paths ([`FsFastPaths`]): batched listings that
//! look inside each listed directory while it is open (probing, reading or
//! hashing the files that matter) and hand digest-named directories over
//! parsed. A filesystem pays for every directory it enters and for every
//! full path it resolves; an object store lists whole prefixes at the same
//! cost whatever their depth, so it has no such paths (see
//! [`Storage::fast_paths`] and the scan's listing strategies in
//! [`crate::scan`]).

use super::{hash, DirListing, Listing, Meta, Storage, StorageError};

/// Listings that only a filesystem offers, reached through
/// [`Storage::fast_paths`]: a caller asks once and walks the directories
/// with these, or lists prefixes recursively with
/// [`ScanHints::list_split`] when the backend has none. Each method runs
/// its requests concurrently and returns results in input order.
///
/// [`ScanHints::list_split`]: super::ScanHints::list_split
pub trait FsFastPaths: Storage {
    /// [`Storage::list_dirs`] over many prefixes, and each of `probes`
    /// applied to `<prefix><dir>/<file>` for every child directory found
    /// (in [`DirListing::probes`]), relative to the directory the storage
    /// has open.
    fn list_dirs_probe_many(
        &self,
        prefixes: &[String],
        probes: &[Probe<'_>],
    ) -> Vec<Result<DirListing, StorageError>>;

    /// [`FsFastPaths::list_dirs_probe_many`] of directories whose children
    /// are named by sha256 digests, with those names parsed (see
    /// [`DigestListing`]); probes are applied to the digest directories only.
    fn list_digest_dirs_many(
        &self,
        prefixes: &[String],
        probes: &[Probe<'_>],
    ) -> Vec<Result<DigestListing, StorageError>>;

    /// [`StorageBatch::list_many`], and the files that `fetch` names read
    /// or hashed on the way ([`Listing::fetched`]), while their directory
    /// is open. Callers read and hash what was not fetched with
    /// [`StorageExt::read_many`] and [`StorageExt::sha256_many`].
    ///
    /// [`StorageBatch::list_many`]: super::StorageBatch::list_many
    /// [`StorageExt::read_many`]: super::StorageExt::read_many
    /// [`StorageExt::sha256_many`]: super::StorageExt::sha256_many
    fn list_fetching_many(
        &self,
        prefixes: &[String],
        want_meta: bool,
        fetch: Fetch<'_>,
    ) -> Vec<Result<Listing, StorageError>>;
}

/// The listing of a directory whose children are named by sha256 digests
/// (`blobs/sha256/xx/`, `_layers/sha256/`, `_manifests/revisions/sha256/`),
/// from [`FsFastPaths::list_digest_dirs_many`]: the digests come parsed, so that
/// a filesystem hands over 32 bytes per child and no string.
#[derive(Debug, Default)]
pub struct DigestListing {
    /// Child directories named by 64 lowercase hex digits, as the digests'
    /// bytes, in ascending order (the order of their names).
    pub digests: Vec<[u8; 32]>,
    /// What each probe found in each of `digests`: `probes[i * n + j]` is
    /// probe `j` of `digests[i]` (of `n` probes).
    pub probes: Vec<Result<Probed, StorageError>>,
    /// Everything else: child directories with any other name (not probed:
    /// `rest.probes` is empty) and the files directly in the directory.
    pub rest: DirListing,
}

impl DigestListing {
    /// Splits a [`DirListing`] made with `n` probes per child directory.
    pub fn split(listing: DirListing, n: usize) -> DigestListing {
        let mut out = DigestListing {
            rest: DirListing {
                files: listing.files,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut probes = listing.probes.into_iter();
        for d in listing.dirs {
            let found: Vec<_> = probes.by_ref().take(n).collect();
            match crate::digest::parse_sha256_hex(&d) {
                Some(h) => {
                    out.digests.push(h);
                    out.probes.extend(found);
                }
                None => out.rest.dirs.push(d),
            }
        }
        out
    }
}

/// A file to look at inside every child directory of a listing (its path
/// relative to the child, e.g. `link` or `current/link`).
#[derive(Debug, Clone, Copy)]
pub enum Probe<'a> {
    /// Learn its size and modification time.
    Stat(&'a str),
    /// Read it, refusing files larger than the limit in bytes.
    Read(&'a str, u64),
    /// List it, as [`Storage::list_dirs`] does (a directory; missing is empty).
    List(&'a str),
}

impl Probe<'_> {
    /// The probed file's path relative to the child directory.
    pub fn file(&self) -> &str {
        match self {
            Probe::Stat(f) | Probe::Read(f, _) | Probe::List(f) => f,
        }
    }
}

/// What a [`Probe`] found (a missing file is a `NotFound` error).
#[derive(Debug)]
pub enum Probed {
    /// The answer to [`Probe::Stat`].
    Meta(Meta),
    /// The answer to [`Probe::Read`].
    Content(Vec<u8>),
    /// The answer to [`Probe::List`].
    Listing(DirListing),
}

/// Files that a recursive listing ([`FsFastPaths::list_fetching_many`]) reads
/// or hashes as it lists them, chosen by file name (the last component of
/// the key). Only regular files are fetched, never symlinks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fetch<'a> {
    /// Read files of this name whole, refusing any larger than the limit
    /// in bytes (a [`StorageError::TooLarge`] result).
    pub read: Option<(&'a str, u64)>,
    /// Hash files of this name ([`hash::ContentHash`]). A backend may leave
    /// any of them unhashed (a filesystem leaves large files to
    /// [`StorageBatch::sha256_many`], which spreads one file's work
    /// better).
    ///
    /// [`StorageBatch::sha256_many`]: super::StorageBatch::sha256_many
    pub hash: Option<&'a str>,
}

impl Fetch<'_> {
    /// True when nothing is to be fetched.
    pub fn is_empty(&self) -> bool {
        self.read.is_none() && self.hash.is_none()
    }
}

/// What a [`Fetch`] gave for one listed file.
#[derive(Debug)]
pub enum Fetched {
    /// The content of a file named by [`Fetch::read`].
    Content(Vec<u8>),
    /// The hash of a file named by [`Fetch::hash`].
    Hash(hash::ContentHash),
}
