//! The reference graph: every manifest that a revision link or a tag names is
//! read and parsed (in parallel, in bounded batches) into a [`Node`] of dense
//! ids: the blobs it references, its child manifests, its subject.
//!
//! A manifest that is missing, unreadable or not understood becomes a
//! [`Problem`] of severity `Error`; an unparseable one still contributes every
//! `sha256:` digest found in its bytes as a possible child, so the mark keeps
//! all of them alive (fail closed).

use crate::digest::Interner;
use crate::manifest::{self, Kind, ParseError};
use crate::problem::{self, Problem, Severity};
use crate::progress::Progress;
use crate::scan::Inventory;
use crate::storage::{Storage, StorageError, StorageExt};
use roaring::RoaringBitmap;
use std::collections::HashMap;

/// One manifest, reduced to ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// Its shape; `None` when it could not be parsed (then `children` holds
    /// every digest found in its bytes).
    pub kind: Option<Kind>,
    /// Referenced blobs: config and layers, schema 1 layers, artifact blobs.
    pub blobs: Vec<u32>,
    /// Referenced child manifests (index entries).
    pub children: Vec<u32>,
    /// The manifest this one is a referrer of.
    pub subject: Option<u32>,
    /// Referenced blobs whose descriptors carry `urls` (foreign layers).
    pub foreign: Vec<u32>,
}

impl Node {
    /// Every digest this manifest references directly (blobs then children).
    pub fn references(&self) -> impl Iterator<Item = u32> + '_ {
        self.blobs.iter().chain(self.children.iter()).copied()
    }
}

/// Every manifest that was read, by id.
#[derive(Debug, Default)]
pub struct Graph {
    /// Parsed (or conservatively recovered) manifests.
    pub nodes: HashMap<u32, Node>,
    /// With [`GraphOptions::describe`]: what each parsed manifest says of
    /// itself (media types, platforms), by id.
    pub descriptions: Descriptions,
}

/// Manifests' descriptions by id: a vector sorted by id, which holds
/// 100,000s of them in half the memory of a hash map.
#[derive(Debug, Default)]
pub struct Descriptions {
    by_id: Vec<(u32, crate::describe::Description)>,
    sorted: bool,
}

impl Descriptions {
    /// Adds one; [`Descriptions::finish`] must follow before lookups.
    fn insert(&mut self, id: u32, d: crate::describe::Description) {
        self.sorted = false;
        self.by_id.push((id, d));
    }

    /// Sorts by id and frees the spare capacity.
    fn finish(&mut self) {
        self.by_id.sort_unstable_by_key(|(id, _)| *id);
        self.by_id.shrink_to_fit();
        self.sorted = true;
    }

    /// The description of manifest `id`.
    pub fn get(&self, id: &u32) -> Option<&crate::describe::Description> {
        assert!(
            self.sorted || self.by_id.is_empty(),
            "descriptions looked up before they were sorted"
        );
        let i = self.by_id.binary_search_by_key(id, |(k, _)| *k).ok()?;
        Some(&self.by_id[i].1)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// Settings of the parse phase.
#[derive(Debug, Clone)]
pub struct GraphOptions {
    /// Largest manifest read, in bytes (the registry refuses larger ones: 4 MiB).
    pub max_manifest_size: u64,
    /// How many manifests are held in memory at once.
    pub batch: usize,
    /// Also keep each manifest's [`crate::describe::Description`] (for
    /// `images`; the mark does not need it).
    pub describe: bool,
}

impl Default for GraphOptions {
    fn default() -> Self {
        GraphOptions {
            max_manifest_size: 4 << 20,
            batch: 2048,
            describe: false,
        }
    }
}

/// One manifest read: parsed (with its length), not understood (with every
/// digest in its bytes), or unreadable; with its bytes when a caller of
/// [`read_each`] wants them.
enum Parsed {
    Ok(
        manifest::Manifest,
        u64,
        Vec<u8>,
        Option<crate::describe::Description>,
    ),
    Bad(ParseError, Vec<crate::digest::Digest>, Vec<u8>),
    Failed(StorageError),
}

/// A manifest as [`read_each`] read it, for callers that check more than
/// the graph keeps (its bytes, the descriptors' sizes).
#[derive(Debug)]
pub enum Seen<'a> {
    /// Read and parsed.
    Parsed {
        /// Its content.
        bytes: &'a [u8],
        /// What it says.
        manifest: &'a manifest::Manifest,
    },
    /// Read, but not a manifest regsweep understands.
    Unparsed {
        /// Its content.
        bytes: &'a [u8],
        /// Why it is not understood.
        error: &'a ParseError,
    },
    /// Could not be read.
    Failed(&'a StorageError),
}

/// Reads and parses every manifest the inventory names (revision links and
/// tags), then any child manifests they reference that are stored as blobs.
pub fn build(
    storage: &dyn Storage,
    inv: &mut Inventory,
    opts: &GraphOptions,
    progress: &Progress,
) -> Graph {
    build_inner(storage, inv, opts, progress, None)
}

/// [`build`], also handing each manifest read to `seen` with its id (and
/// the interner, for digests the caller wants ids of) and its bytes: for
/// callers that check more than the graph keeps, without reading anything
/// twice. The graph returned is the one [`build`] returns, so that such a
/// caller follows references by the same rules ([`crate::reach`]).
pub fn read_each(
    storage: &dyn Storage,
    inv: &mut Inventory,
    opts: &GraphOptions,
    progress: &Progress,
    seen: &mut SeenFn<'_>,
) -> Graph {
    build_inner(storage, inv, opts, progress, Some(seen))
}

/// What [`read_each`] calls for each manifest read.
pub type SeenFn<'a> = dyn FnMut(&mut Interner, u32, Seen<'_>) + 'a;

/// [`build`], or with `seen` [`read_each`] (which also keeps the bytes read).
fn build_inner(
    storage: &dyn Storage,
    inv: &mut Inventory,
    opts: &GraphOptions,
    progress: &Progress,
    mut seen: Option<&mut SeenFn<'_>>,
) -> Graph {
    let hand_over = seen.is_some();
    let mut graph = Graph::default();
    let mut wanted = RoaringBitmap::new();
    for r in &inv.repos {
        wanted.extend(r.revisions.iter().copied());
        wanted.extend(r.tags.iter().filter_map(|t| t.current));
    }
    let mut done = RoaringBitmap::new();
    // Blobs whose declared sizes cannot be trusted (see `declare_size`).
    let mut doubted = RoaringBitmap::new();
    let mut round = 0;
    while !wanted.is_empty() {
        round += 1;
        let ids: Vec<u32> = wanted.iter().collect();
        done |= &wanted;
        wanted.clear();
        progress.start("parsing manifests", ids.len() as u64);
        // Manifests whose blob is missing are problems; the rest are read.
        let mut present: Vec<(u32, [u8; 32])> = Vec::with_capacity(ids.len());
        for &id in &ids {
            if let (Some(_), Some(b)) = (inv.blob(id), inv.interner.sha256(id)) {
                present.push((id, *b));
                continue;
            }
            inv.problems.push(Problem::new(
                problem::Kind::MissingManifestBlob,
                if round == 1 {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                inv.interner.data_key(id),
                format!(
                    "manifest {} is named by {} but its blob is missing",
                    inv.interner.digest(id),
                    if round == 1 {
                        "a revision link or tag"
                    } else {
                        "an index"
                    }
                ),
            ));
            progress.inc(1);
        }
        graph.nodes.reserve(present.len());
        let batch = opts.batch.max(1);
        let max_size = opts.max_manifest_size;
        // A reader thread reads and parses the next batch while this one
        // interns the last (one batch waits in the channel at most).
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let present = &present;
            scope.spawn(move || {
                for chunk in present.chunks(batch) {
                    let keys: Vec<String> = chunk
                        .iter()
                        .map(|(_, b)| crate::storage::blob_data_key(&crate::digest::hex(b)))
                        .collect();
                    let parsed = read_and_parse(storage, &keys, max_size, hand_over, opts.describe);
                    if tx.send((keys, parsed)).is_err() {
                        return;
                    }
                }
            });
            for (chunk, (keys, parsed)) in present.chunks(batch).zip(rx) {
                let ids = chunk.iter().map(|&(id, _)| id);
                for ((id, key), p) in ids.zip(keys).zip(parsed) {
                    let node = match p {
                        Parsed::Ok(m, len, bytes, description) => {
                            if let Some(d) = description {
                                graph.descriptions.insert(id, d);
                            }
                            let node = intern_node(&mut inv.interner, &m);
                            if let Some(f) = seen.as_mut() {
                                let manifest = &m;
                                f(
                                    &mut inv.interner,
                                    id,
                                    Seen::Parsed {
                                        bytes: &bytes,
                                        manifest,
                                    },
                                );
                            }
                            // Sizes known without asking the storage: the
                            // manifest's own, and what its descriptors declare.
                            read_size(&mut inv.blobs, id, len);
                            // `node` holds the ids of `m`'s blobs and children,
                            // in order: no second lookup of each digest.
                            let refs = m.blobs.iter().zip(&node.blobs);
                            for (r, &rid) in refs.chain(m.children.iter().zip(&node.children)) {
                                if let Some(size) = r.size {
                                    declare_size(inv, rid, size, &mut doubted);
                                }
                            }
                            let mut node = node;
                            add_alias_targets(inv, id, &key, &m, &mut node, &mut doubted);
                            node
                        }
                        Parsed::Bad(e, refs, bytes) => {
                            if let Some(f) = seen.as_mut() {
                                let error = &e;
                                f(
                                    &mut inv.interner,
                                    id,
                                    Seen::Unparsed {
                                        bytes: &bytes,
                                        error,
                                    },
                                );
                            }
                            let kind = match e {
                                ParseError::UnknownMediaType(_) => problem::Kind::UnknownMediaType,
                                _ => problem::Kind::UnparseableManifest,
                            };
                            inv.problems.push(Problem::new(
                                kind,
                                Severity::Error,
                                &key,
                                format!(
                                    "manifest {}: {e}; every digest in it ({}) is kept alive",
                                    inv.interner.digest(id),
                                    refs.len()
                                ),
                            ));
                            Node {
                                kind: None,
                                children: refs.iter().map(|d| inv.interner.intern(d)).collect(),
                                ..Default::default()
                            }
                        }
                        Parsed::Failed(e) => {
                            if let Some(f) = seen.as_mut() {
                                f(&mut inv.interner, id, Seen::Failed(&e));
                            }
                            let kind = match e {
                                StorageError::TooLarge { .. } => problem::Kind::ManifestTooLarge,
                                StorageError::Symlink { .. } => problem::Kind::Symlink,
                                _ => problem::Kind::Unreadable,
                            };
                            inv.problems.push(Problem::new(
                                kind,
                                Severity::Error,
                                &key,
                                format!(
                                    "manifest {} could not be read: {e}",
                                    inv.interner.digest(id)
                                ),
                            ));
                            continue;
                        }
                    };
                    if node.kind == Some(Kind::Index) {
                        for &c in &node.children {
                            if !done.contains(c) {
                                wanted.insert(c);
                            }
                        }
                    }
                    graph.nodes.insert(id, node);
                }
                progress.inc(chunk.len() as u64);
            }
        });
        progress.finish();
    }
    graph.descriptions.finish();
    if !doubted.is_empty() {
        settle_doubted_sizes(storage, inv, &graph, &doubted, opts.max_manifest_size);
    }
    graph
}

/// Declared sizes above this are not believed without asking the storage.
const PLAUSIBLE_BLOB_SIZE: u64 = 1 << 44;

/// Reads the manifests at `keys` and parses them, each on the thread that
/// read it; with `keep_bytes` each result keeps the bytes read.
fn read_and_parse(
    storage: &dyn Storage,
    keys: &[String],
    max_size: u64,
    keep_bytes: bool,
    describe: bool,
) -> Vec<Parsed> {
    let slots: Vec<std::sync::OnceLock<Parsed>> = std::iter::repeat_with(std::sync::OnceLock::new)
        .take(keys.len())
        .collect();
    storage.read_each(keys, max_size, &|i, res| {
        let parsed = match res {
            Ok(bytes) => {
                let len = bytes.len() as u64;
                let (parsed, description) = if describe {
                    crate::describe::parse_and_describe(&bytes)
                } else {
                    (manifest::parse(&bytes), None)
                };
                // An unparseable manifest keeps alive what its bytes name.
                let refs = match parsed {
                    Ok(_) => Vec::new(),
                    Err(_) => manifest::conservative_refs(&bytes),
                };
                let bytes = if keep_bytes { bytes } else { Vec::new() };
                match parsed {
                    Ok(m) => Parsed::Ok(m, len, bytes, description),
                    Err(e) => Parsed::Bad(e, refs, bytes),
                }
            }
            Err(e) => Parsed::Failed(e),
        };
        // Each index is handed over once: the slot is empty.
        let _ = slots[i].set(parsed);
    });
    slots
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            s.into_inner().unwrap_or_else(|| {
                Parsed::Failed(StorageError::Backend {
                    key: keys[i].clone(),
                    message: "the storage returned no result for this read".into(),
                })
            })
        })
        .collect()
}

/// Records the length of a manifest's `data` as read whole from storage.
fn read_size(blobs: &mut [crate::scan::Blob], id: u32, len: u64) {
    if let Some(b) = blobs.get_mut(id as usize) {
        if !b.stat {
            b.size = len;
            b.read = true;
        }
    }
}

/// Records a size a manifest declares for blob `id`: the blob's size while
/// the scan did not stat it. A declaration that disagrees with the stored
/// size (stat'ed, or read whole), with an earlier declaration, or that is
/// negative or implausibly large puts the blob in `doubted`: its stored size
/// is then read, and every declaration that disagrees with it becomes a
/// problem ([`settle_doubted_sizes`]). Totals count stored sizes where known.
fn declare_size(inv: &mut Inventory, id: u32, size: i64, doubted: &mut RoaringBitmap) {
    let Some(b) = inv.blobs.get_mut(id as usize) else {
        return;
    };
    let declared = u64::try_from(size)
        .ok()
        .filter(|&d| d <= PLAUSIBLE_BLOB_SIZE);
    match declared {
        Some(d) if b.stat || b.read || b.size != 0 => {
            if b.size != d {
                doubted.insert(id);
            }
        }
        Some(d) if !doubted.contains(id) => b.size = d,
        _ => {
            doubted.insert(id);
        }
    }
}

/// Reads the stored sizes of the `doubted` blobs, and names every manifest
/// of the graph whose descriptor of one of them declares another size
/// (those manifests are read again: they are few).
fn settle_doubted_sizes(
    storage: &dyn Storage,
    inv: &mut Inventory,
    graph: &Graph,
    doubted: &RoaringBitmap,
    max_manifest_size: u64,
) {
    for id in doubted {
        if let Some(b) = inv.blobs.get_mut(id as usize) {
            if !b.stat && !b.read {
                b.size = 0;
            }
        }
    }
    crate::scan::fill_blob_stats(storage, inv, doubted, false);
    let mut holders: Vec<u32> = graph
        .nodes
        .iter()
        .filter(|(_, n)| {
            n.blobs
                .iter()
                .chain(&n.children)
                .any(|&c| doubted.contains(c))
        })
        .map(|(&m, _)| m)
        .collect();
    holders.sort_unstable();
    for m in holders {
        let key = inv.interner.data_key(m);
        let Ok(bytes) = storage.read(&key, max_manifest_size) else {
            continue; // it was read a moment ago; a problem of its own now
        };
        let Ok(parsed) = manifest::parse(&bytes) else {
            continue;
        };
        for r in parsed.blobs.iter().chain(&parsed.children) {
            let (Some(size), Some(id)) = (r.size, inv.interner.get(&r.digest)) else {
                continue;
            };
            if !doubted.contains(id) {
                continue;
            }
            let stored = inv
                .blob(id)
                .filter(|b| (b.stat || b.read) && !inv.absent.contains(id))
                .map(|b| b.size);
            if stored.is_some_and(|s| i64::try_from(s).ok() == Some(size)) {
                continue;
            }
            let message = format!(
                "manifest {} declares size {size} for {}, but the stored blob has {}",
                inv.interner.digest(m),
                r.digest,
                stored.map_or_else(|| "an unknown size".to_string(), |s| format!("{s} bytes")),
            );
            inv.problems.push(Problem::new(
                problem::Kind::DeclaredSizeMismatch,
                Severity::Warning,
                &key,
                message,
            ));
        }
    }
}

/// References by another algorithm than sha256 (`sha512:…`): a blob
/// pushed by such a digest is stored as its sha256 and found through the
/// repository's alias link, so the sha256 blobs that alias links name are
/// added to the node's blobs. A reference that no alias link resolves
/// names a blob that cannot be identified: an error (fail closed).
fn add_alias_targets(
    inv: &mut Inventory,
    id: u32,
    key: &str,
    m: &manifest::Manifest,
    node: &mut Node,
    doubted: &mut RoaringBitmap,
) {
    // `node.blobs[i]` is the id of `m.blobs[i]`; targets are appended after.
    for (i, r) in m.blobs.iter().enumerate() {
        let rid = node.blobs[i];
        if inv.interner.sha256(rid).is_some() {
            continue;
        }
        match inv.aliases.get(&rid).cloned() {
            Some(targets) => {
                for t in targets {
                    node.blobs.push(t);
                    if r.foreign {
                        node.foreign.push(t);
                    }
                    if let Some(size) = r.size {
                        declare_size(inv, t, size, doubted);
                    }
                }
            }
            None if r.foreign => {}
            None => inv.problems.push(unresolved(inv, id, key, rid, "blob")),
        }
    }
    for &c in &node.children {
        if inv.interner.sha256(c).is_none() {
            inv.problems
                .push(unresolved(inv, id, key, c, "child manifest"));
        }
    }
    if let Some(sub) = node.subject {
        if inv.interner.sha256(sub).is_none() {
            inv.problems.push(unresolved(inv, id, key, sub, "subject"));
        }
    }
}

/// The problem for a reference by an algorithm no link resolves.
fn unresolved(inv: &Inventory, id: u32, key: &str, rid: u32, what: &str) -> Problem {
    let d = inv.interner.digest(rid);
    Problem::new(
        problem::Kind::UnresolvedDigest,
        Severity::Error,
        key,
        format!(
            "manifest {} references {what} {d}, and no alias link in any repository names the sha256 blob it is stored as: that blob cannot be identified, so none can be proven garbage",
            inv.interner.digest(id)
        ),
    )
}

fn intern_node(interner: &mut Interner, m: &manifest::Manifest) -> Node {
    let mut n = Node {
        kind: Some(m.kind),
        ..Default::default()
    };
    for r in &m.blobs {
        let id = interner.intern(&r.digest);
        n.blobs.push(id);
        if r.foreign {
            n.foreign.push(id);
        }
    }
    n.children = m
        .children
        .iter()
        .map(|r| interner.intern(&r.digest))
        .collect();
    n.subject = m.subject.as_ref().map(|r| interner.intern(&r.digest));
    n
}
