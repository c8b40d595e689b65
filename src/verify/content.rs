//! Content checks: each manifest the graph reads, hashed and kept with its
//! descriptors' sizes; with `--rehash`, every other blob hashed.

use super::Checked;
use crate::digest::{Digest, Interner};
use crate::graph::Seen;
use crate::manifest::{self, ParseError};
use crate::problem::Kind;
use crate::progress::Progress;
use crate::scan::Inventory;
use crate::storage::{Storage, StorageError, StorageExt};
use std::collections::HashMap;
use std::time::Instant;

/// A manifest as the walk needs it: references with descriptor sizes.
#[derive(Debug, Default)]
pub(super) struct Refs {
    /// (id, declared size, foreign)
    pub(super) blobs: Vec<(u32, Option<i64>, bool)>,
    /// (id, declared size)
    pub(super) children: Vec<(u32, Option<i64>)>,
    pub(super) subject: Option<u32>,
}

/// What reading one manifest blob gave.
#[derive(Debug, Default)]
pub(super) struct ManifestRead {
    pub(super) refs: Option<Refs>,
    /// Why it cannot be used: (kind, message).
    pub(super) fault: Option<(Kind, String)>,
}

/// What verify keeps of a manifest the graph read: its references with
/// their declared sizes, or why it cannot be used (also when it could not
/// be read: too large, unreadable); and the bytes hashed, when it was read.
/// A content that does not hash to its digest goes into `corrupt`.
pub(super) fn check_manifest(
    interner: &mut Interner,
    id: u32,
    seen: Seen<'_>,
    corrupt: &mut HashMap<u32, [u8; 32]>,
) -> (ManifestRead, Option<u64>) {
    let (read, bytes) = match seen {
        Seen::Parsed { bytes, manifest } => (
            ManifestRead {
                refs: Some(to_refs(interner, manifest)),
                fault: None,
            },
            bytes,
        ),
        Seen::Unparsed { bytes, error } => {
            let kind = match error {
                ParseError::UnknownMediaType(_) => Kind::UnknownMediaType,
                _ => Kind::UnparseableManifest,
            };
            let read = ManifestRead {
                refs: None,
                fault: Some((kind, error.to_string())),
            };
            (read, bytes)
        }
        Seen::Failed(e) => {
            let kind = match e {
                StorageError::TooLarge { .. } => Kind::ManifestTooLarge,
                StorageError::Symlink { .. } => Kind::Symlink,
                _ => Kind::Unreadable,
            };
            let read = ManifestRead {
                refs: None,
                fault: Some((kind, format!("could not be read: {e}"))),
            };
            return (read, None);
        }
    };
    let h = crate::storage::hash::sha256_bytes(bytes);
    if let Digest::Sha256(want) = interner.digest(id) {
        if want != h.sha256 {
            corrupt.insert(id, h.sha256);
        }
    }
    (read, Some(h.size))
}

fn to_refs(interner: &mut Interner, m: &manifest::Manifest) -> Refs {
    Refs {
        blobs: m
            .blobs
            .iter()
            .map(|r| (interner.intern(&r.digest), r.size, r.foreign))
            .collect(),
        children: m
            .children
            .iter()
            .map(|r| (interner.intern(&r.digest), r.size))
            .collect(),
        subject: m.subject.as_ref().map(|r| interner.intern(&r.digest)),
    }
}

/// Hashes every stored blob that is not a manifest (those are hashed by
/// [`check_manifest`]); takes what the scan hashed while listing, hashes the
/// rest. Returns the unreadable ones.
pub(super) fn rehash(
    storage: &dyn Storage,
    inv: &mut Inventory,
    skip: &HashMap<u32, ManifestRead>,
    corrupt: &mut HashMap<u32, [u8; 32]>,
    checked: &mut Checked,
    progress: &Progress,
) -> HashMap<u32, String> {
    let listed = std::mem::take(&mut inv.hashes);
    let mut unreadable = HashMap::new();
    let mut todo: Vec<(u32, u64)> = Vec::new();
    for b in &inv.blobs {
        if skip.contains_key(&b.id) {
            continue;
        }
        if !listed.done.contains(b.id) {
            todo.push((b.id, b.size));
        } else if let Some(why) = listed.failed.get(&b.id) {
            unreadable.insert(b.id, why.clone());
        } else {
            checked.hashed_blobs += 1;
            checked.hashed_bytes += listed.bytes.get(b.id as usize).copied().unwrap_or(0);
            if let Some(actual) = listed.mismatched.get(&b.id) {
                corrupt.insert(b.id, *actual);
            }
        }
    }
    // Largest first, so that one huge blob does not finish last alone.
    todo.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    if !todo.is_empty() {
        progress.start_bytes("hashing blobs", todo.iter().map(|t| t.1).sum());
    }
    let start = Instant::now();
    for chunk in todo.chunks(HASH_CHUNK) {
        let keys: Vec<String> = chunk
            .iter()
            .map(|&(id, _)| inv.interner.data_key(id))
            .collect();
        let results = storage.sha256_many(&keys, &|n| progress.inc(n));
        for (&(id, _), res) in chunk.iter().zip(results) {
            match res {
                Ok(h) => {
                    checked.hashed_blobs += 1;
                    checked.hashed_bytes += h.size;
                    if let Digest::Sha256(want) = inv.interner.digest(id) {
                        if want != h.sha256 {
                            corrupt.insert(id, h.sha256);
                        }
                    }
                }
                Err(e) => {
                    unreadable.insert(id, e.to_string());
                }
            }
        }
    }
    checked.rehash_seconds = Some(listed.seconds + start.elapsed().as_secs_f64());
    progress.finish();
    unreadable
}

/// Blobs hashed per concurrent batch by [`rehash`] (bounds the keys held).
const HASH_CHUNK: usize = 8192;
