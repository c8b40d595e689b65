//! What stays live in one repository from its roots, in the mark's two
//! modes: every revision-linked manifest with what it references directly
//! (the reference's default), or the closure of the tag targets over index
//! children, configs and layers, and referrers (revision-linked manifests
//! whose `subject` is live in the same repository).

use crate::graph::Node;
use roaring::RoaringBitmap;
use std::collections::HashMap;

/// Every revision-linked manifest and tag target is live, with the digests
/// it references directly: `(live manifests, digests needed)`.
pub fn keep_untagged(
    revisions: &[u32],
    tag_targets: &[u32],
    nodes: &HashMap<u32, Node>,
) -> (RoaringBitmap, RoaringBitmap) {
    let mut live = RoaringBitmap::new();
    live.extend(revisions.iter().copied());
    live.extend(tag_targets.iter().copied());
    let mut refs = live.clone();
    for m in &live {
        if let Some(n) = nodes.get(&m) {
            refs.extend(n.references());
        }
    }
    (live, refs)
}

/// The closure of `roots` over index children, configs and layers, and the
/// referrers among `revisions`: `(live manifests, digests needed)`.
pub fn from_roots(
    revisions: &[u32],
    roots: &[u32],
    nodes: &HashMap<u32, Node>,
) -> (RoaringBitmap, RoaringBitmap) {
    let referrers = super::closure::referrers(revisions, nodes);
    let mut live = RoaringBitmap::new();
    let mut refs = RoaringBitmap::new();
    let mut stack: Vec<u32> = roots.to_vec();
    while let Some(m) = stack.pop() {
        if !live.insert(m) {
            continue;
        }
        refs.insert(m);
        if let Some(n) = nodes.get(&m) {
            refs.extend(n.blobs.iter().copied());
            for &c in &n.children {
                refs.insert(c);
                stack.push(c);
            }
        }
        if let Some(rs) = referrers.get(&m) {
            stack.extend(rs.iter().copied());
        }
    }
    (live, refs)
}

/// A live manifest of `live` other than `id` that lists `id` as a child:
/// what keeps a manifest someone asked to remove.
pub fn index_holding(live: &RoaringBitmap, nodes: &HashMap<u32, Node>, id: u32) -> Option<u32> {
    live.iter()
        .find(|&m| m != id && nodes.get(&m).is_some_and(|n| n.children.contains(&id)))
}

/// The children of `live` manifests (other than themselves): manifests
/// reached whatever their own tags.
pub fn children_of(live: &RoaringBitmap, nodes: &HashMap<u32, Node>) -> RoaringBitmap {
    let mut reached = RoaringBitmap::new();
    for m in live {
        if let Some(n) = nodes.get(&m) {
            reached.extend(n.children.iter().copied().filter(|&c| c != m));
        }
    }
    reached
}

/// Every digest that anything in the registry references: per repository,
/// the closure of all its revisions and tag targets ([`from_roots`]), over
/// every repository. What no revision, tag, index or referrer reaches is
/// unreferenced (what `verify` reports as an orphan).
pub fn referenced(repos: &[crate::scan::Repository], nodes: &HashMap<u32, Node>) -> RoaringBitmap {
    use rayon::prelude::*;
    repos
        .par_iter()
        .map(|r| {
            let mut roots = r.revisions.clone();
            roots.extend(r.tags.iter().filter_map(|t| t.current));
            from_roots(&r.revisions, &roots, nodes).1
        })
        .reduce(RoaringBitmap::new, |a, b| a | b)
}
