//! What each manifest needs, and what deleting it would free.
//!
//! A manifest's *closure* in its repository is itself, its config and
//! layers, and for an index its children's closures (each id once). With
//! referrers it also holds the manifests whose `subject` is in it, and
//! theirs: what `delete REPO@DIGEST` takes along.
//!
//! What deleting a manifest M of repository R (its tags, and the follower
//! tags [`super::followers::delete_one`] takes along) frees, as a
//! `--delete-untagged` sweep would find it, is computed without re-marking
//! per manifest. The deletion removes a set G of roots: M, and each
//! manifest a removed follower tag left without any tag. Only ids of G's
//! closures can be freed. Such an id stays when another repository's live
//! manifests need it (one pass counts, per id, how many repositories' marks
//! hold it), or when a root of R outside G still reaches it. Each root's
//! closure is computed once per repository and indexed by id; a root whose
//! closure followed no referrer edge is unaffected by M's removal, and only
//! a root that did is walked again, without M as a referrer (M's revision
//! link is gone, so it is no referrer any more; as an index child it is
//! still reached).

use super::followers::{delete_one, TagSeen};
use crate::graph::Node;
use roaring::RoaringBitmap;
use std::collections::HashMap;

/// Referrers by subject, among a repository's revision-linked manifests.
pub type Referrers = HashMap<u32, Vec<u32>>;

/// The referrers of each manifest of a repository (manifests whose
/// `subject` names it), as the mark finds them.
pub fn referrers(revisions: &[u32], nodes: &HashMap<u32, Node>) -> Referrers {
    let mut out: Referrers = HashMap::new();
    for &m in revisions {
        if let Some(s) = nodes.get(&m).and_then(|n| n.subject) {
            out.entry(s).or_default().push(m);
        }
    }
    out
}

/// A manifest's closure: `own` without referrers (what pulling it needs),
/// `all` with them (what deleting it takes along). Both sorted, distinct.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Closure {
    /// The manifest, its blobs, its children's closures.
    pub own: Vec<u32>,
    /// `own` plus the closures of its referrers (recursively).
    pub all: Vec<u32>,
    /// Whether `all` took in a referrer.
    pub followed_referrers: bool,
}

/// The closure of `start` (see [`Closure`]), following the mark's rules:
/// a manifest contributes itself, its blobs and its children; referrers are
/// the revision-linked manifests of the same repository whose subject is in
/// the closure.
pub fn closure(start: u32, nodes: &HashMap<u32, Node>, refs: &Referrers) -> Closure {
    closure_without(start, nodes, refs, None)
}

/// [`closure`], where `skip` (a deleted manifest) is no referrer.
pub fn closure_without(
    start: u32,
    nodes: &HashMap<u32, Node>,
    refs: &Referrers,
    skip: Option<u32>,
) -> Closure {
    let mut seen_manifests: Vec<u32> = Vec::new();
    let mut ids: Vec<u32> = Vec::new();
    let mut stack = vec![start];
    let walk = |stack: &mut Vec<u32>, seen: &mut Vec<u32>, ids: &mut Vec<u32>| {
        while let Some(m) = stack.pop() {
            if seen.contains(&m) {
                continue;
            }
            seen.push(m);
            ids.push(m);
            if let Some(n) = nodes.get(&m) {
                ids.extend(n.blobs.iter().copied());
                for &c in &n.children {
                    ids.push(c);
                    stack.push(c);
                }
            }
        }
    };
    walk(&mut stack, &mut seen_manifests, &mut ids);
    let mut own = ids.clone();
    own.sort_unstable();
    own.dedup();
    if refs.is_empty() {
        return Closure {
            all: own.clone(),
            own,
            followed_referrers: false,
        };
    }
    let mut followed_referrers = false;
    // Referrers of anything in the closure, and theirs, until none is new.
    let mut i = 0;
    while i < seen_manifests.len() {
        if let Some(rs) = refs.get(&seen_manifests[i]) {
            let before = stack.len();
            stack.extend(
                rs.iter()
                    .copied()
                    .filter(|r| Some(*r) != skip && !seen_manifests.contains(r)),
            );
            followed_referrers |= stack.len() > before;
            walk(&mut stack, &mut seen_manifests, &mut ids);
        }
        i += 1;
    }
    ids.sort_unstable();
    ids.dedup();
    Closure {
        own,
        all: ids,
        followed_referrers,
    }
}

/// Ids held by at least one owner, and by at least two.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// In at least one owner's set.
    pub once: RoaringBitmap,
    /// In at least two owners' sets.
    pub twice: RoaringBitmap,
}

impl Counts {
    /// Counts sets given one per owner (repository): one saturating
    /// counter per id over every set's ids, which costs far less than
    /// merging thousands of bitmaps pairwise.
    pub fn of<'s>(sets: impl IntoIterator<Item = &'s RoaringBitmap>) -> Counts {
        let mut held: Vec<u8> = Vec::new();
        for s in sets {
            let Some(max) = s.max() else { continue };
            if held.len() <= max as usize {
                held.resize(max as usize + 1, 0);
            }
            for id in s {
                let c = &mut held[id as usize];
                *c = (*c + 1).min(2);
            }
        }
        let at_least = |n: u8| {
            RoaringBitmap::from_sorted_iter(
                held.iter()
                    .enumerate()
                    .filter(move |&(_, &c)| c >= n)
                    .map(|(id, _)| id as u32),
            )
            .expect("ids in order")
        };
        Counts {
            once: at_least(1),
            twice: at_least(2),
        }
    }

    /// Whether an owner other than the one holding `mine` holds `id`.
    pub fn elsewhere(&self, id: u32, mine: &RoaringBitmap) -> bool {
        self.twice.contains(id) || (self.once.contains(id) && !mine.contains(id))
    }
}

/// One repository's roots (distinct tag targets) with their closures,
/// indexed by id: what answers "does another root still need this?".
pub struct RepoRootIndex<'a> {
    nodes: &'a HashMap<u32, Node>,
    refs: &'a Referrers,
    roots: Vec<u32>,
    closures: Vec<Closure>,
    by_id: HashMap<u32, Vec<u32>>,
}

impl<'a> RepoRootIndex<'a> {
    /// Indexes the closures of `roots` (sorted, distinct tag targets).
    pub fn new(roots: Vec<u32>, nodes: &'a HashMap<u32, Node>, refs: &'a Referrers) -> Self {
        let closures: Vec<Closure> = roots.iter().map(|&t| closure(t, nodes, refs)).collect();
        let mut by_id: HashMap<u32, Vec<u32>> = HashMap::new();
        for (i, c) in closures.iter().enumerate() {
            for &id in &c.all {
                by_id.entry(id).or_default().push(i as u32);
            }
        }
        RepoRootIndex {
            nodes,
            refs,
            roots,
            closures,
            by_id,
        }
    }

    /// Whether `m` is one of the roots.
    pub fn is_root(&self, m: u32) -> bool {
        self.roots.binary_search(&m).is_ok()
    }

    /// The ids that `delete REPO@m` frees: `m`'s tags go, with the
    /// follower tags [`delete_one`] takes along, and what they leave
    /// untagged; `c` is the closure of `m`, `tags` the repository's
    /// [`tags_seen`](super::followers::tags_seen).
    pub fn freed_by_delete(
        &self,
        m: u32,
        c: &Closure,
        tags: &[TagSeen],
        elsewhere: impl Fn(u32) -> bool,
    ) -> Vec<u32> {
        let (_, gone) = delete_one(tags, m);
        if gone.len() == 1 {
            return self.freed_with(m, &[m], &c.all, elsewhere);
        }
        let mut candidates = c.all.clone();
        for &g in gone.iter().filter(|&&g| g != m) {
            candidates.extend(closure(g, self.nodes, self.refs).all);
        }
        candidates.sort_unstable();
        candidates.dedup();
        let gone: Vec<u32> = gone.into_iter().collect();
        self.freed_with(m, &gone, &candidates, elsewhere)
    }

    /// The ids of `c` (the closure of `m`) that deleting `m` and its tags
    /// frees, given which ids other repositories need; no follower goes
    /// with it.
    pub fn freed(&self, m: u32, c: &Closure, elsewhere: impl Fn(u32) -> bool) -> Vec<u32> {
        self.freed_with(m, &[m], &c.all, elsewhere)
    }

    /// The ids of `candidates` (the closures of `gone`, sorted and
    /// distinct) that deleting `m` frees when the roots in `gone` (sorted:
    /// `m` and the manifests its followers left untagged) lose their tags,
    /// given which ids other repositories need.
    pub fn freed_with(
        &self,
        m: u32,
        gone: &[u32],
        candidates: &[u32],
        elsewhere: impl Fn(u32) -> bool,
    ) -> Vec<u32> {
        // Roots outside `gone` walked again without `m` as a referrer.
        let mut again: HashMap<u32, Vec<u32>> = HashMap::new();
        let mut out = Vec::new();
        for &id in candidates {
            if elsewhere(id) {
                continue;
            }
            let stays = self.by_id.get(&id).is_some_and(|rs| {
                rs.iter().any(|&ri| {
                    let t = self.roots[ri as usize];
                    if gone.binary_search(&t).is_ok() {
                        return false;
                    }
                    let rc = &self.closures[ri as usize];
                    if !rc.followed_referrers {
                        return true;
                    }
                    let all = again
                        .entry(ri)
                        .or_insert_with(|| closure_without(t, self.nodes, self.refs, Some(m)).all);
                    all.binary_search(&id).is_ok()
                })
            });
            if !stays {
                out.push(id);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Kind;
    use crate::mark::{mark, Mode, RepoRoots};
    use crate::reach::roles::TagRole;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn node(kind: Kind, blobs: Vec<u32>, children: Vec<u32>, subject: Option<u32>) -> Node {
        Node {
            kind: Some(kind),
            blobs,
            children,
            subject,
            ..Default::default()
        }
    }

    #[test]
    fn index_closure_and_referrers() {
        let mut nodes = HashMap::new();
        nodes.insert(0, node(Kind::Index, vec![], vec![1, 2], None));
        nodes.insert(1, node(Kind::Image, vec![10, 11], vec![], None));
        nodes.insert(2, node(Kind::Image, vec![12, 11], vec![], None));
        nodes.insert(3, node(Kind::Image, vec![13], vec![], Some(1)));
        let refs = referrers(&[0, 1, 2, 3], &nodes);
        let c = closure(0, &nodes, &refs);
        assert_eq!(c.own, vec![0, 1, 2, 10, 11, 12]);
        assert_eq!(c.all, vec![0, 1, 2, 3, 10, 11, 12, 13]);
        assert_eq!(closure(3, &nodes, &refs).own, vec![3, 13]);
    }

    /// The independent model of "what deleting M frees": re-mark with M's
    /// tags and revision link gone, and take M's closure minus what the new
    /// mark keeps.
    fn freed_by_remark(
        repos: &[RepoRoots],
        nodes: &HashMap<u32, Node>,
        r: usize,
        m: u32,
    ) -> HashSet<u32> {
        let mut after = repos.to_vec();
        after[r].tag_targets.retain(|&t| t != m);
        after[r].revisions.retain(|&x| x != m);
        let kept = mark(&after, nodes, Mode::DeleteUntagged).blobs;
        let refs = referrers(&repos[r].revisions, nodes);
        closure(m, nodes, &refs)
            .all
            .into_iter()
            .filter(|id| !kept.contains(*id))
            .collect()
    }

    fn arb() -> impl Strategy<Value = (Vec<RepoRoots>, HashMap<u32, Node>)> {
        // ids 0..20 manifests, 20..40 blobs.
        let n = (
            prop::collection::vec(20u32..40, 0..4),
            prop::collection::vec(0u32..20, 0..3),
            prop::option::of(0u32..20),
            any::<bool>(),
        )
            .prop_map(|(b, c, s, idx)| {
                if idx {
                    node(Kind::Index, vec![], c, s)
                } else {
                    node(Kind::Image, b, vec![], s)
                }
            });
        let nodes = prop::collection::hash_map(0u32..20, n, 0..20);
        let repo = (
            prop::collection::vec(0u32..20, 0..10),
            prop::collection::vec(0u32..20, 0..4),
        )
            .prop_map(|(mut revisions, tag_targets)| {
                revisions.sort_unstable();
                revisions.dedup();
                RepoRoots {
                    revisions,
                    tag_targets,
                }
            });
        (prop::collection::vec(repo, 1..4), nodes)
    }

    proptest! {
        #[test]
        fn freed_equals_a_re_mark((repos, nodes) in arb()) {
            let marked = mark(&repos, &nodes, Mode::DeleteUntagged);
            let counts = Counts::of(&marked.repo_refs);
            for (ri, r) in repos.iter().enumerate() {
                let refs = referrers(&r.revisions, &nodes);
                let mut t = r.tag_targets.clone();
                t.sort_unstable();
                t.dedup();
                let index = RepoRootIndex::new(t, &nodes, &refs);
                let mine = &marked.repo_refs[ri];
                for &m in r.revisions.iter().chain(&r.tag_targets) {
                    let c = closure(m, &nodes, &refs);
                    let got: HashSet<u32> =
                        index.freed(m, &c, |id| counts.elsewhere(id, mine)).into_iter().collect();
                    prop_assert_eq!(got, freed_by_remark(&repos, &nodes, ri, m), "repo {} manifest {}", ri, m);
                }
            }
        }
    }

    /// One repository: its revisions and its tags as (target, subject).
    type TaggedRepo = (Vec<u32>, Vec<(u32, Option<u32>)>);

    /// Repositories whose tags may follow a subject: (target, subject).
    fn arb_tagged() -> impl Strategy<Value = (Vec<TaggedRepo>, HashMap<u32, Node>)> {
        let n = (
            prop::collection::vec(20u32..40, 0..4),
            prop::collection::vec(0u32..20, 0..3),
            prop::option::of(0u32..20),
            any::<bool>(),
        )
            .prop_map(|(b, c, s, idx)| {
                if idx {
                    node(Kind::Index, vec![], c, s)
                } else {
                    node(Kind::Image, b, vec![], s)
                }
            });
        let nodes = prop::collection::hash_map(0u32..20, n, 0..20);
        let repo = (
            prop::collection::vec(0u32..20, 0..10),
            prop::collection::vec((0u32..20, prop::option::of(0u32..20)), 0..6),
        )
            .prop_map(|(mut revisions, tags)| {
                revisions.sort_unstable();
                revisions.dedup();
                (revisions, tags)
            });
        (prop::collection::vec(repo, 1..4), nodes)
    }

    fn seen_of(tags: &[(u32, Option<u32>)]) -> Vec<TagSeen> {
        tags.iter()
            .map(|&(target, subject)| TagSeen {
                target: Some(target),
                role: match subject {
                    Some(_) => TagRole::Referrer {
                        subject: String::new(),
                    },
                    None => TagRole::Version,
                },
                subject,
            })
            .collect()
    }

    proptest! {
        /// With followers: what `delete REPO@m` frees (its tags, the tags
        /// that follow anything it removes, transitively) equals the closures
        /// of what it removes minus a re-mark of the state after it.
        #[test]
        fn freed_by_delete_equals_a_re_mark((repos, nodes) in arb_tagged()) {
            let roots: Vec<RepoRoots> = repos
                .iter()
                .map(|(revisions, tags)| RepoRoots {
                    revisions: revisions.clone(),
                    tag_targets: tags.iter().map(|t| t.0).collect(),
                })
                .collect();
            let marked = mark(&roots, &nodes, Mode::DeleteUntagged);
            let counts = Counts::of(&marked.repo_refs);
            for (ri, (revisions, tags)) in repos.iter().enumerate() {
                let refs = referrers(revisions, &nodes);
                let mut t: Vec<u32> = tags.iter().map(|t| t.0).collect();
                t.sort_unstable();
                t.dedup();
                let index = RepoRootIndex::new(t, &nodes, &refs);
                let seen = seen_of(tags);
                let mine = &marked.repo_refs[ri];
                let mut ms: Vec<u32> = revisions.iter().copied().chain(tags.iter().map(|t| t.0)).collect();
                ms.sort_unstable();
                ms.dedup();
                for m in ms {
                    let c = closure(m, &nodes, &refs);
                    let got: HashSet<u32> = index
                        .freed_by_delete(m, &c, &seen, |id| counts.elsewhere(id, mine))
                        .into_iter()
                        .collect();
                    // The model: remove the tags, re-mark, subtract.
                    let (removed, gone) = delete_one(&seen, m);
                    let mut after = roots.clone();
                    after[ri].tag_targets = tags
                        .iter()
                        .enumerate()
                        .filter(|(ti, _)| !removed.contains(ti))
                        .map(|(_, t)| t.0)
                        .collect();
                    after[ri].revisions.retain(|&x| x != m);
                    let kept = mark(&after, &nodes, Mode::DeleteUntagged).blobs;
                    let want: HashSet<u32> = gone
                        .iter()
                        .flat_map(|&g| closure(g, &nodes, &refs).all)
                        .filter(|id| !kept.contains(*id))
                        .collect();
                    prop_assert_eq!(got, want, "repo {} manifest {}", ri, m);
                }
            }
        }
    }
}
