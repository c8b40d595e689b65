//! References by digests of other algorithms (`sha512:…`, `sha384:…`).
//!
//! The registry stores every blob under its sha256 digest. A blob pushed or
//! referenced by another algorithm gets an alias link in the repository it is
//! linked into — `_layers/<alg>/<hex>/link` (`_manifests/revisions/<alg>/…`
//! for a manifest) — that holds the canonical `sha256:` digest, and a
//! manifest may then reference the blob by the alias. [`resolve`] reads those
//! links and adds the canonical digest wherever a manifest names the alias,
//! so that the mark keeps the blob alive. A reference that no alias link
//! resolves is an error: which stored blob it needs is unknown.

use crate::graph::Graph;
use crate::problem::{Kind, Problem, Severity};
use crate::scan::{parse_link, Inventory};
use crate::storage::{Storage, StorageError};
use std::collections::{BTreeMap, BTreeSet};

/// Alias links read per concurrent batch.
const CHUNK: usize = 4096;

/// Where a manifest names a digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Blob { foreign: bool },
    Child,
    Subject,
}

/// True for an algorithm or hex part that is safe as one path component.
fn path_safe(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric())
}

/// Resolves every non-sha256 digest that a parsed manifest references
/// through the alias links of every repository, adding the canonical
/// digests to the graph's nodes; unresolved ones (except foreign layers)
/// and unreadable alias links become problems of severity `Error`.
pub fn resolve(storage: &dyn Storage, inv: &mut Inventory, graph: &mut Graph, max_link_size: u64) {
    // Alias id → (manifest id, where it names it).
    let mut named: BTreeMap<u32, BTreeSet<(u32, Field)>> = BTreeMap::new();
    for (&m, n) in &graph.nodes {
        let mut note = |id: u32, f: Field| {
            if inv.interner.sha256(id).is_none() {
                named.entry(id).or_default().insert((m, f));
            }
        };
        for &b in &n.blobs {
            note(
                b,
                Field::Blob {
                    foreign: n.foreign.contains(&b),
                },
            );
        }
        n.children.iter().for_each(|&c| note(c, Field::Child));
        n.subject.into_iter().for_each(|s| note(s, Field::Subject));
    }
    if named.is_empty() {
        return;
    }
    let mut keys = Vec::new();
    let mut owners = Vec::new();
    for &a in named.keys() {
        let text = inv.interner.digest(a).to_string();
        let Some((alg, hex)) = text.split_once(':') else {
            continue;
        };
        if !path_safe(alg) || !path_safe(hex) {
            continue;
        }
        for r in &inv.repos {
            for sub in ["_layers", "_manifests/revisions"] {
                keys.push(format!("repositories/{}/{sub}/{alg}/{hex}/link", r.name));
                owners.push(a);
            }
        }
    }
    let mut canonical: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for (kc, oc) in keys.chunks(CHUNK).zip(owners.chunks(CHUNK)) {
        for ((key, &a), res) in kc.iter().zip(oc).zip(storage.read_many(kc, max_link_size)) {
            let alias = inv.interner.digest(a);
            match res {
                Ok(bytes) => match parse_link(&bytes) {
                    Ok(d) => {
                        let id = inv.interner.intern(&d);
                        canonical.entry(a).or_default().insert(id);
                    }
                    Err(msg) => inv.problems.push(Problem::new(
                        Kind::BadLink,
                        Severity::Error,
                        key,
                        format!("alias link of {alias}: {msg}; the blob it stands for is unknown"),
                    )),
                },
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    let kind = match e {
                        StorageError::Symlink { .. } => Kind::Symlink,
                        _ => Kind::Unreadable,
                    };
                    inv.problems.push(Problem::new(
                        kind,
                        Severity::Error,
                        key,
                        format!("alias link of {alias} cannot be read: {e}"),
                    ));
                }
            }
        }
    }
    for (a, uses) in named {
        let alias = inv.interner.digest(a);
        let Some(ids) = canonical.get(&a) else {
            for (m, f) in uses {
                if f == (Field::Blob { foreign: true }) {
                    continue;
                }
                inv.problems.push(Problem::new(
                    Kind::NonSha256Digest,
                    Severity::Error,
                    inv.interner.data_key(m),
                    format!(
                        "manifest {} references {alias}, which no alias link (_layers or \
                         _manifests/revisions under its algorithm) in any repository maps to a \
                         sha256 blob: which stored blob it needs is unknown",
                        inv.interner.digest(m)
                    ),
                ));
            }
            continue;
        };
        let as_child = uses.iter().any(|&(_, f)| f == Field::Child);
        for (m, f) in uses {
            let Some(n) = graph.nodes.get_mut(&m) else {
                continue;
            };
            match f {
                Field::Blob { foreign } => {
                    n.blobs.extend(ids);
                    if foreign {
                        n.foreign.extend(ids);
                    }
                }
                Field::Child => n.children.extend(ids),
                Field::Subject => n.subject = ids.first().copied(),
            }
        }
        // A child named by alias was not read as an index child: if no
        // revision link made the graph read it, what it references is unknown.
        for &c in ids {
            let child_unread = as_child && !graph.nodes.contains_key(&c) && inv.blob(c).is_some();
            if child_unread {
                inv.problems.push(Problem::new(
                    Kind::NonSha256Digest,
                    Severity::Error,
                    inv.interner.data_key(c),
                    format!(
                        "{alias} (an alias of manifest {}) is referenced, but that manifest \
                         was not read: what it references is unknown",
                        inv.interner.digest(c)
                    ),
                ));
            }
        }
    }
}
