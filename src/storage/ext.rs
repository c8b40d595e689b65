//! What sits beside the core [`Storage`] trait: the batched forms of its
//! calls ([`StorageBatch`], overridden by backends that run batches their
//! own way), the scan's hints ([`ScanHints`], for backends that list in
//! fewer requests than one per prefix or from memory), and [`StorageExt`],
//! implemented for every [`Storage`], through which callers reach both:
//! each of its methods asks the backend for its own form
//! ([`Storage::batch`], [`Storage::hints`]) and falls back to the generic
//! one.

use super::{hash, DirListing, Entry, Listing, Meta, RequestCounter, Storage, StorageError};
use rayon::prelude::*;
use std::sync::Arc;

/// Where [`ScanHints::list_split`] may cut the rest of a listing whose
/// first page ended at the key given (relative to `docker/registry/v2/`),
/// and with how many ranges listed at once in mind: the keys where ranges
/// listed in parallel begin, in any order (those not after the key, or not
/// under the listed prefix, are ignored). None: the rest is listed page
/// after page.
pub type Cuts<'a> = dyn Fn(&str, usize) -> Vec<String> + Sync + 'a;

/// Hands a whole listing to `each` as one run (what
/// [`ScanHints::list_split_each`] does for a backend that lists in one
/// piece); returns the ranges that could not be listed.
pub fn hand_over(listing: Listing, each: &mut dyn FnMut(Vec<Entry>, usize)) -> Vec<StorageError> {
    let n = listing.entries.len();
    each(listing.entries, n);
    listing.errors
}

/// The batched forms of [`Storage`]'s calls, each over many keys or
/// prefixes, concurrently, with results in input order. Every method has a
/// generic form (rayon's threads, one call each); a backend that runs
/// batches its own way (on its I/O threads, with a limit of requests in
/// flight, in batched requests) implements this trait, overrides what it
/// does better, and returns itself from [`Storage::batch`]. Callers use
/// [`StorageExt`], whatever the backend.
pub trait StorageBatch: Storage {
    /// `delete` over many keys.
    fn delete_many(&self, keys: &[String]) -> Vec<Result<(), StorageError>> {
        generic::delete_many(self, keys)
    }

    /// `list_dirs` over many prefixes.
    fn list_dirs_many(&self, prefixes: &[String]) -> Vec<Result<DirListing, StorageError>> {
        generic::list_dirs_many(self, prefixes)
    }

    /// `list` over many prefixes.
    fn list_many(
        &self,
        prefixes: &[String],
        want_meta: bool,
    ) -> Vec<Result<Listing, StorageError>> {
        generic::list_many(self, prefixes, want_meta)
    }

    /// `read` over many keys.
    fn read_many(&self, keys: &[String], limit: u64) -> Vec<Result<Vec<u8>, StorageError>> {
        generic::read_many(self, keys, limit)
    }

    /// `read` over many keys, handing each result with its index in `keys`
    /// to `then`, on the thread that read it: what is done with the bytes
    /// (parsing a manifest) runs while other reads are in flight, not after
    /// the last of them. Each index is handed over exactly once. This
    /// default reads with [`StorageBatch::read_many`] and then calls `then`
    /// in parallel.
    fn read_each(
        &self,
        keys: &[String],
        limit: u64,
        then: &(dyn Fn(usize, Result<Vec<u8>, StorageError>) + Sync),
    ) {
        StorageBatch::read_many(self, keys, limit)
            .into_par_iter()
            .enumerate()
            .for_each(|(i, r)| then(i, r));
    }

    /// `stat` over many keys.
    fn stat_many(&self, keys: &[String]) -> Vec<Result<Meta, StorageError>> {
        generic::stat_many(self, keys)
    }

    /// The sha256 of each object's whole content. `done(bytes)` is called
    /// as each object is finished. Backends stream or memory-map the
    /// content; this default reads each object whole.
    fn sha256_many(
        &self,
        keys: &[String],
        done: &(dyn Fn(u64) + Sync),
    ) -> Vec<Result<hash::ContentHash, StorageError>> {
        generic::sha256_many(self, keys, done)
    }
}

/// What a scan may ask of a backend beyond [`Storage`]'s calls, reached
/// through [`Storage::hints`]: for object stores, which list a whole
/// prefix recursively with sizes in pages, and for listings answered from
/// memory (an inventory). A filesystem has none (its own fast paths are
/// [`super::FsFastPaths`]). Callers use [`StorageExt`], which answers for a
/// backend without hints as these defaults do.
pub trait ScanHints: Storage {
    /// The requests sent so far, by kind, for backends that send requests
    /// (object stores).
    fn requests(&self) -> Option<Arc<RequestCounter>> {
        None
    }

    /// Every object below `prefix`, recursively, as [`Storage::list`] with
    /// sizes, in as few requests as the backend can. An object store lists
    /// one page first; when that page holds everything (a small registry)
    /// it is the whole listing, else the rest is listed as ranges that
    /// begin at the keys `cuts` gives (called with the first page's last
    /// key), in parallel, each page after page until it reaches the next
    /// range: no key is listed twice. A range that cannot be listed is in
    /// [`Listing::errors`]; a first page that cannot be, an error.
    fn list_split(&self, prefix: &str, cuts: &Cuts<'_>) -> Result<Listing, StorageError> {
        let _ = cuts;
        self.list(prefix, true)
    }

    /// True when listings are answered from memory (an inventory report)
    /// rather than by requests: the scan then lists blobs before
    /// repositories, so that each layer link is looked up among the blobs
    /// as it is listed, instead of listing both at once.
    fn lists_from_memory(&self) -> bool {
        false
    }

    /// What [`ScanHints::list_split`] lists, handed to `each` in runs of
    /// entries in key order, with the number of entries in all when the
    /// backend knows it up front (else the run's): a listing of millions of
    /// objects that the backend already holds need never be copied whole.
    /// Returns the ranges that could not be listed.
    fn list_split_each(
        &self,
        prefix: &str,
        cuts: &Cuts<'_>,
        each: &mut dyn FnMut(Vec<Entry>, usize),
    ) -> Result<Vec<StorageError>, StorageError> {
        Ok(hand_over(ScanHints::list_split(self, prefix, cuts)?, each))
    }
}

/// The batched calls and the scan's hints of any [`Storage`]: the
/// backend's own ([`Storage::batch`], [`Storage::hints`]) where it has
/// them, the generic ones (as the defaults of [`StorageBatch`] and
/// [`ScanHints`]) where it has not. Each method is documented on those
/// traits.
pub trait StorageExt: Storage {
    /// [`StorageBatch::delete_many`].
    fn delete_many(&self, keys: &[String]) -> Vec<Result<(), StorageError>> {
        match self.batch() {
            Some(b) => b.delete_many(keys),
            None => generic::delete_many(self, keys),
        }
    }

    /// [`StorageBatch::list_dirs_many`].
    fn list_dirs_many(&self, prefixes: &[String]) -> Vec<Result<DirListing, StorageError>> {
        match self.batch() {
            Some(b) => b.list_dirs_many(prefixes),
            None => generic::list_dirs_many(self, prefixes),
        }
    }

    /// [`StorageBatch::list_many`].
    fn list_many(
        &self,
        prefixes: &[String],
        want_meta: bool,
    ) -> Vec<Result<Listing, StorageError>> {
        match self.batch() {
            Some(b) => b.list_many(prefixes, want_meta),
            None => generic::list_many(self, prefixes, want_meta),
        }
    }

    /// [`StorageBatch::read_many`].
    fn read_many(&self, keys: &[String], limit: u64) -> Vec<Result<Vec<u8>, StorageError>> {
        match self.batch() {
            Some(b) => b.read_many(keys, limit),
            None => generic::read_many(self, keys, limit),
        }
    }

    /// [`StorageBatch::read_each`].
    fn read_each(
        &self,
        keys: &[String],
        limit: u64,
        then: &(dyn Fn(usize, Result<Vec<u8>, StorageError>) + Sync),
    ) {
        match self.batch() {
            Some(b) => b.read_each(keys, limit, then),
            None => generic::read_many(self, keys, limit)
                .into_par_iter()
                .enumerate()
                .for_each(|(i, r)| then(i, r)),
        }
    }

    /// [`StorageBatch::stat_many`].
    fn stat_many(&self, keys: &[String]) -> Vec<Result<Meta, StorageError>> {
        match self.batch() {
            Some(b) => b.stat_many(keys),
            None => generic::stat_many(self, keys),
        }
    }

    /// [`StorageBatch::sha256_many`].
    fn sha256_many(
        &self,
        keys: &[String],
        done: &(dyn Fn(u64) + Sync),
    ) -> Vec<Result<hash::ContentHash, StorageError>> {
        match self.batch() {
            Some(b) => b.sha256_many(keys, done),
            None => generic::sha256_many(self, keys, done),
        }
    }

    /// [`ScanHints::requests`].
    fn requests(&self) -> Option<Arc<RequestCounter>> {
        self.hints().and_then(|h| h.requests())
    }

    /// [`ScanHints::list_split`].
    fn list_split(&self, prefix: &str, cuts: &Cuts<'_>) -> Result<Listing, StorageError> {
        match self.hints() {
            Some(h) => h.list_split(prefix, cuts),
            None => self.list(prefix, true),
        }
    }

    /// [`ScanHints::lists_from_memory`].
    fn lists_from_memory(&self) -> bool {
        self.hints().is_some_and(|h| h.lists_from_memory())
    }

    /// [`ScanHints::list_split_each`].
    fn list_split_each(
        &self,
        prefix: &str,
        cuts: &Cuts<'_>,
        each: &mut dyn FnMut(Vec<Entry>, usize),
    ) -> Result<Vec<StorageError>, StorageError> {
        match self.hints() {
            Some(h) => h.list_split_each(prefix, cuts, each),
            None => Ok(hand_over(self.list(prefix, true)?, each)),
        }
    }
}

impl<T: Storage + ?Sized> StorageExt for T {}

/// The generic batches: one call per key on rayon's threads.
mod generic {
    use super::*;

    pub(super) fn delete_many<S: Storage + ?Sized>(
        s: &S,
        keys: &[String],
    ) -> Vec<Result<(), StorageError>> {
        keys.par_iter().map(|k| s.delete(k)).collect()
    }

    pub(super) fn list_dirs_many<S: Storage + ?Sized>(
        s: &S,
        prefixes: &[String],
    ) -> Vec<Result<DirListing, StorageError>> {
        prefixes.par_iter().map(|p| s.list_dirs(p)).collect()
    }

    pub(super) fn list_many<S: Storage + ?Sized>(
        s: &S,
        prefixes: &[String],
        want_meta: bool,
    ) -> Vec<Result<Listing, StorageError>> {
        prefixes.par_iter().map(|p| s.list(p, want_meta)).collect()
    }

    pub(super) fn read_many<S: Storage + ?Sized>(
        s: &S,
        keys: &[String],
        limit: u64,
    ) -> Vec<Result<Vec<u8>, StorageError>> {
        keys.par_iter().map(|k| s.read(k, limit)).collect()
    }

    pub(super) fn stat_many<S: Storage + ?Sized>(
        s: &S,
        keys: &[String],
    ) -> Vec<Result<Meta, StorageError>> {
        keys.par_iter().map(|k| s.stat(k)).collect()
    }

    pub(super) fn sha256_many<S: Storage + ?Sized>(
        s: &S,
        keys: &[String],
        done: &(dyn Fn(u64) + Sync),
    ) -> Vec<Result<hash::ContentHash, StorageError>> {
        keys.par_iter()
            .map(|k| {
                let h = hash::sha256_bytes(&s.read(k, u64::MAX)?);
                done(h.size);
                Ok(h)
            })
            .collect()
    }
}
