//! Blobs: how a listing records them ([`BlobTable`]: interned first, so
//! that blob ids are dense `0..n`), the filesystem's listing of the
//! `blobs/sha256/xx/` shards ([`scan_blobs`]: shallow, from the digest
//! directories' names, or in full with sizes and, for an audit, content
//! hashes), and the sizes a shallow listing leaves to be stat'ed later
//! ([`fill_blob_stats`]).

use super::layout::{
    hex_dir, hex_dir_at, lower_hex, problem_for_entry, storage_problem, stray_or_unexpected,
};
use super::walk::in_batches;
use super::{Blob, BlobHashes, Inventory};
use crate::digest::Interner;
use crate::problem::{Kind, Problem, Severity};
use crate::storage::hash::ContentHash;
use crate::storage::{Entry, Fetch, Fetched, FsFastPaths, Storage, StorageError, StorageExt};
use std::cell::Cell;
use std::time::{Instant, SystemTime};

/// The blobs as a listing finds them, before any repository: their
/// digests are interned first, so that blob ids are dense `0..n`.
pub(super) struct BlobTable {
    /// Digest ↔ id, blobs first.
    pub(super) interner: Interner,
    /// Every blob found, indexed by id.
    pub(super) blobs: Vec<Blob>,
    /// The blobs hashed while listing.
    pub(super) hashes: BlobHashes,
    /// True when the listing is asked to hash blobs' content
    /// ([`ScanOptions::hash_blobs`](super::ScanOptions::hash_blobs) with
    /// `deep`).
    pub(super) hash: bool,
    /// An estimate of the blobs still to come, set by the listing once it
    /// can tell: room for them is made as the next blob is recorded.
    expected: Cell<usize>,
}

impl BlobTable {
    /// An empty table; `hash` as [`BlobTable::hash`].
    pub(super) fn new(hash: bool) -> BlobTable {
        BlobTable {
            interner: Interner::new(),
            blobs: Vec::new(),
            hashes: BlobHashes::default(),
            hash,
            expected: Cell::new(0),
        }
    }

    /// What a listing hands each blob to (its digest, size and modification
    /// time when listed with them, its content hash when it hashed it), and
    /// the estimate of blobs to come that the listing sets.
    // The closure's type is spelt out once, here.
    #[allow(clippy::type_complexity)]
    pub(super) fn recorder(
        &mut self,
    ) -> (
        &Cell<usize>,
        impl FnMut(
                [u8; 32],
                Option<u64>,
                Option<SystemTime>,
                Option<Result<ContentHash, StorageError>>,
            ) + '_,
    ) {
        let expected = &self.expected;
        let interner = &mut self.interner;
        let blob_vec = &mut self.blobs;
        let hashes = &mut self.hashes;
        let record = move |h: [u8; 32],
                           size: Option<u64>,
                           modified: Option<SystemTime>,
                           hashed: Option<Result<ContentHash, StorageError>>| {
            // Room for all blobs at once: no table grown and rehashed
            // again and again, no vector of digests copied as it doubles.
            let more = expected.take();
            if more > 0 {
                interner.reserve(more);
                blob_vec.reserve(more);
            }
            let id = interner.intern_sha256(&h);
            if id as usize == blob_vec.len() {
                blob_vec.push(Blob::new(id, size.unwrap_or(0), modified, size.is_some()));
                if let Some(res) = hashed {
                    hashes.done.insert(id);
                    hashes.bytes.resize(id as usize + 1, 0);
                    match res {
                        Ok(c) => {
                            hashes.bytes[id as usize] = c.size;
                            if c.sha256 != h {
                                hashes.mismatched.insert(id, c.sha256);
                            }
                        }
                        Err(e) => {
                            hashes.failed.insert(id, e.to_string());
                        }
                    }
                }
            }
        };
        (expected, record)
    }

    /// Ends the listing of blobs begun at `start`: the seconds it took when
    /// it hashed them, and the table shrunk to its size.
    pub(super) fn finish(&mut self, start: Instant) {
        if self.hash {
            self.hashes.seconds = start.elapsed().as_secs_f64();
        }
        self.blobs.shrink_to_fit();
    }
}

/// Blob shards listed per concurrent batch (each holds thousands of names).
const BLOB_SHARD_BATCH: usize = 16;

/// Blob shards listed in full per concurrent batch: as many as a filesystem
/// has I/O threads, so that a cold disk's queue stays full.
const DEEP_BLOB_SHARD_BATCH: usize = 64;

/// Lists `blobs/` of a filesystem, shard by shard: hands (digest, size,
/// mtime, hash) of every blob's `data` to `out`; a shallow listing knows
/// neither size nor mtime, and only a deep one with `hash` hashes. Once the
/// first batch of shards is listed, `expected` is set to an estimate of the
/// blobs still to come (digests spread evenly over the shards).
pub(super) fn scan_blobs(
    storage: &dyn FsFastPaths,
    shallow: bool,
    hash: bool,
    problems: &mut Vec<Problem>,
    expected: &Cell<usize>,
    out: impl FnMut(
        [u8; 32],
        Option<u64>,
        Option<SystemTime>,
        Option<Result<ContentHash, StorageError>>,
    ),
) -> Result<(), StorageError> {
    let prefixes = shard_prefixes(storage, problems)?;
    if shallow {
        list_shards_shallow(storage, &prefixes, problems, expected, out);
    } else {
        list_shards_deep(storage, &prefixes, hash, problems, out);
    }
    Ok(())
}

/// The shards to list (`blobs/sha256/xx/`); anything else in `blobs/` and
/// `blobs/sha256/` is a problem.
fn shard_prefixes(
    storage: &dyn FsFastPaths,
    problems: &mut Vec<Problem>,
) -> Result<Vec<String>, StorageError> {
    let top = storage.list_dirs("blobs/")?;
    for f in &top.files {
        problems
            .push(problem_for_entry(f).unwrap_or_else(|| stray_or_unexpected(&f.key, "blobs/")));
    }
    for d in top.dirs.iter().filter(|d| *d != "sha256") {
        problems.push(Problem::new(
            Kind::NonSha256Digest,
            Severity::Warning,
            format!("blobs/{d}/"),
            "blobs are stored only under sha256; this directory is not examined",
        ));
    }
    let shards = storage.list_dirs("blobs/sha256/")?;
    for f in &shards.files {
        problems.push(
            problem_for_entry(f).unwrap_or_else(|| stray_or_unexpected(&f.key, "blobs/sha256/")),
        );
    }
    let prefixes: Vec<String> = shards
        .dirs
        .iter()
        .filter(|d| {
            let ok = d.len() == 2 && lower_hex(d);
            if !ok {
                problems.push(Problem::new(
                    Kind::BadDigestDirectory,
                    Severity::Warning,
                    format!("blobs/sha256/{d}/"),
                    "not a two-hex-digit shard directory; not examined",
                ));
            }
            ok
        })
        .map(|d| format!("blobs/sha256/{d}/"))
        .collect();
    Ok(prefixes)
}

/// Lists the shards without entering the blob directories: their names
/// are the digests.
fn list_shards_shallow(
    storage: &dyn FsFastPaths,
    prefixes: &[String],
    problems: &mut Vec<Problem>,
    expected: &Cell<usize>,
    mut out: impl FnMut(
        [u8; 32],
        Option<u64>,
        Option<SystemTime>,
        Option<Result<ContentHash, StorageError>>,
    ),
) {
    let list = |chunk: &[String]| storage.list_digest_dirs_many(chunk, &[]);
    let mut listed = 0usize;
    let sample = BLOB_SHARD_BATCH.min(prefixes.len());
    in_batches(prefixes, BLOB_SHARD_BATCH, list, |i, res| {
        let prefix = &prefixes[i];
        let listing = match res {
            Ok(l) => l,
            Err(e) => {
                problems.push(storage_problem(&e));
                return;
            }
        };
        let shard = &prefix["blobs/sha256/".len()..prefix.len() - 1];
        let shard_byte = u8::from_str_radix(shard, 16).ok();
        listed += listing.digests.len();
        if i + 1 == sample {
            // The first batch of shards, scaled up, with 5 % to spare:
            // at most 16 times too many for a tree whose digests all
            // share their first hex digit.
            let all = listed.saturating_mul(prefixes.len()) / sample;
            expected.set((all.saturating_mul(21) / 20).saturating_sub(listed));
        }
        for f in &listing.rest.files {
            problems.push(
                problem_for_entry(f)
                    .unwrap_or_else(|| stray_or_unexpected(&f.key, "blobs/sha256/")),
            );
        }
        for hex in &listing.rest.dirs {
            hex_dir_at(hex, || format!("{prefix}{hex}/"), problems);
        }
        for h in listing.digests {
            if Some(h[0]) == shard_byte {
                out(h, None, None, None);
            } else {
                let hex = crate::digest::hex(&h);
                problems.push(Problem::new(
                    Kind::BadDigestDirectory,
                    Severity::Warning,
                    format!("{prefix}{hex}/"),
                    format!("blob {hex} is in shard {shard}; the registry cannot find it there"),
                ));
            }
        }
    });
}

/// Lists the shards in full: every blob's `data` with its size and age,
/// and, with `hash`, its content hash where the storage hashes while it
/// lists.
fn list_shards_deep(
    storage: &dyn FsFastPaths,
    prefixes: &[String],
    hash: bool,
    problems: &mut Vec<Problem>,
    mut out: impl FnMut(
        [u8; 32],
        Option<u64>,
        Option<SystemTime>,
        Option<Result<ContentHash, StorageError>>,
    ),
) {
    let fetch = Fetch {
        read: None,
        hash: hash.then_some("data"),
    };
    for chunk in prefixes.chunks(DEEP_BLOB_SHARD_BATCH) {
        for (prefix, res) in chunk
            .iter()
            .zip(storage.list_fetching_many(chunk, true, fetch))
        {
            let listing = match res {
                Ok(l) => l,
                Err(e) => {
                    problems.push(storage_problem(&e));
                    continue;
                }
            };
            problems.extend(listing.errors.iter().map(storage_problem));
            shard_entries(prefix, listing.entries, listing.fetched, problems, &mut out);
        }
    }
}

/// Hands the blobs among `entries`, a recursive listing of the shard
/// `prefix` (`blobs/sha256/xx/`), to `out`; anything else is a problem.
pub(super) fn shard_entries(
    prefix: &str,
    entries: Vec<Entry>,
    fetched: Vec<(usize, Result<Fetched, StorageError>)>,
    problems: &mut Vec<Problem>,
    out: &mut impl FnMut(
        [u8; 32],
        Option<u64>,
        Option<SystemTime>,
        Option<Result<ContentHash, StorageError>>,
    ),
) {
    let shard = &prefix["blobs/sha256/".len()..prefix.len() - 1];
    let mut fetched = fetched.into_iter().peekable();
    for (n, e) in entries.into_iter().enumerate() {
        let hashed = match fetched.next_if(|(j, _)| *j == n) {
            Some((_, Ok(Fetched::Hash(c)))) => Some(Ok(c)),
            Some((_, Ok(Fetched::Content(_)))) | None => None,
            Some((_, Err(err))) => Some(Err(err)),
        };
        if let Some(p) = problem_for_entry(&e) {
            problems.push(p);
            continue;
        }
        let rest = &e.key[prefix.len()..];
        match rest.split('/').collect::<Vec<_>>().as_slice() {
            [hex, "data"] => {
                if let Some(h) = hex_dir(&e.key, hex, problems) {
                    if !hex.starts_with(shard) {
                        problems.push(Problem::new(
                            Kind::BadDigestDirectory,
                            Severity::Warning,
                            &e.key,
                            format!(
                                "blob {hex} is in shard {shard}; the registry cannot find it there"
                            ),
                        ));
                        continue;
                    }
                    match e.size {
                        Some(size) => out(h, Some(size), e.modified, hashed),
                        None => problems.push(Problem::new(
                            Kind::Unreadable,
                            Severity::Error,
                            &e.key,
                            "size of blob unknown",
                        )),
                    }
                }
            }
            _ => problems.push(stray_or_unexpected(&e.key, "blobs/sha256/")),
        }
    }
}

/// Reads size and modification time of the blobs in `ids` that a shallow
/// scan left without them. A blob directory without `data` is recorded in
/// `absent`; one that cannot be read becomes a problem and is treated as absent.
/// With `ages` false, blobs whose size is already known from a whole read
/// (manifests) are not stat'ed again: only their modification time would
/// be learnt, and only a sweep plan's grace period needs that.
pub fn fill_blob_stats(
    storage: &dyn Storage,
    inv: &mut Inventory,
    ids: &roaring::RoaringBitmap,
    ages: bool,
) {
    let todo: Vec<u32> = ids
        .iter()
        .filter(|&id| inv.blob(id).is_some_and(|b| !b.stat && (ages || !b.read)))
        .collect();
    // In chunks: the keys of every garbage blob at once would cost more
    // memory than the whole inventory.
    for chunk in todo.chunks(STAT_CHUNK) {
        let keys: Vec<String> = {
            use rayon::prelude::*;
            let interner = &inv.interner;
            chunk.par_iter().map(|&id| interner.data_key(id)).collect()
        };
        for (&id, res) in chunk.iter().zip(storage.stat_many(&keys)) {
            let b = &mut inv.blobs[id as usize];
            match res {
                Ok(m) => {
                    b.size = m.size;
                    b.set_modified(m.modified);
                    b.stat = true;
                }
                Err(e) if e.is_not_found() => {
                    inv.absent.insert(id);
                }
                Err(e) => {
                    inv.absent.insert(id);
                    inv.problems.push(storage_problem(&e));
                }
            }
        }
    }
}

/// Blobs stat'ed per concurrent batch by [`fill_blob_stats`].
const STAT_CHUNK: usize = 8192;
