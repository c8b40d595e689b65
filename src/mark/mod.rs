//! The mark phase: which manifests stay in each repository, and which blobs
//! any live manifest needs. Sets are roaring bitmaps of interned ids.
//!
//! * [`Mode::KeepUntagged`] (the reference's default): every manifest with a
//!   revision link is live, with the digests it references directly. This
//!   matches `registry garbage-collect` exactly.
//! * [`Mode::DeleteUntagged`]: roots are the manifests tags currently point
//!   at; live is their closure over index children, configs and layers, plus
//!   referrers (manifests whose `subject` is live in the same repository). The
//!   children of a tagged index stay live — the reference's multi-arch defect
//!   is not reproduced.
//!
//! In both modes a tag's target is live even without a revision link, and an
//! unparseable manifest keeps every digest found in it alive.
//!
//! The rules themselves are [`crate::reach`]'s; the mark runs them over
//! every repository in parallel. The roots come from the inventory (`roots.rs`: [`roots`](fn@roots), and
//! [`check_roots`] for the problems found before the mark).

mod roots;

pub use roots::{check_roots, roots};

use crate::graph::Node;
use crate::reach;
use rayon::prelude::*;
use roaring::RoaringBitmap;
use std::collections::HashMap;

/// Which manifests are roots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Every revision-linked manifest is live (the reference's default).
    KeepUntagged,
    /// Only tagged manifests, their closure and their referrers are live.
    DeleteUntagged,
}

impl Mode {
    /// The mode in the same words as the JSON (`keep-untagged`,
    /// `delete-untagged`), for every text and page.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::KeepUntagged => "keep-untagged",
            Mode::DeleteUntagged => "delete-untagged",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the mark needs to know of one repository.
#[derive(Debug, Clone, Default)]
pub struct RepoRoots {
    /// Manifests with a revision link in the repository.
    pub revisions: Vec<u32>,
    /// Manifests that a tag currently points at.
    pub tag_targets: Vec<u32>,
}

/// The outcome of the mark.
#[derive(Debug, Default, Clone)]
pub struct Marked {
    /// Every digest that must be kept (manifests, configs, layers).
    pub blobs: RoaringBitmap,
    /// Per repository: the manifests that stay (revision links kept).
    pub live_manifests: Vec<RoaringBitmap>,
    /// Per repository: every digest its live manifests need.
    pub repo_refs: Vec<RoaringBitmap>,
}

impl Marked {
    /// Per repository: revision-linked manifests that are not live.
    pub fn garbage_manifests(&self, repos: &[RepoRoots]) -> Vec<RoaringBitmap> {
        repos
            .iter()
            .zip(&self.live_manifests)
            .map(|(r, live)| {
                let revs: RoaringBitmap = r.revisions.iter().copied().collect();
                revs - live
            })
            .collect()
    }
}

/// Runs the mark over every repository (in parallel).
pub fn mark(repos: &[RepoRoots], nodes: &HashMap<u32, Node>, mode: Mode) -> Marked {
    let per_repo: Vec<(RoaringBitmap, RoaringBitmap)> = repos
        .par_iter()
        .map(|r| match mode {
            Mode::KeepUntagged => reach::live::keep_untagged(&r.revisions, &r.tag_targets, nodes),
            Mode::DeleteUntagged => reach::live::from_roots(&r.revisions, &r.tag_targets, nodes),
        })
        .collect();
    let mut out = Marked::default();
    for (live, refs) in per_repo {
        out.blobs |= &refs;
        out.live_manifests.push(live);
        out.repo_refs.push(refs);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Kind;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn image(blobs: &[u32]) -> Node {
        Node {
            kind: Some(Kind::Image),
            blobs: blobs.to_vec(),
            ..Default::default()
        }
    }

    fn index(children: &[u32]) -> Node {
        Node {
            kind: Some(Kind::Index),
            children: children.to_vec(),
            ..Default::default()
        }
    }

    /// A tagged multi-arch index keeps its children and their layers.
    #[test]
    fn multi_arch_children_stay_live() {
        // 0: index -> 1, 2; 1 -> 10, 11; 2 -> 12, 13; 3: untagged image -> 14
        let mut nodes = HashMap::new();
        nodes.insert(0, index(&[1, 2]));
        nodes.insert(1, image(&[10, 11]));
        nodes.insert(2, image(&[12, 13]));
        nodes.insert(3, image(&[14, 10]));
        let repos = vec![RepoRoots {
            revisions: vec![0, 1, 2, 3],
            tag_targets: vec![0],
        }];
        let m = mark(&repos, &nodes, Mode::DeleteUntagged);
        let want: RoaringBitmap = [0, 1, 2, 10, 11, 12, 13].into_iter().collect();
        assert_eq!(m.blobs, want);
        let garbage = m.garbage_manifests(&repos);
        assert_eq!(garbage[0].iter().collect::<Vec<_>>(), vec![3]);
        let k = mark(&repos, &nodes, Mode::KeepUntagged);
        assert!(k.blobs.contains(14) && k.garbage_manifests(&repos)[0].is_empty());
    }

    #[test]
    fn referrers_follow_their_subject() {
        let mut nodes = HashMap::new();
        nodes.insert(0, image(&[10]));
        nodes.insert(
            1,
            Node {
                subject: Some(0),
                ..image(&[11])
            },
        );
        nodes.insert(
            2,
            Node {
                subject: Some(5),
                ..image(&[12])
            },
        ); // subject gone
        let repos = vec![RepoRoots {
            revisions: vec![0, 1, 2],
            tag_targets: vec![0],
        }];
        let m = mark(&repos, &nodes, Mode::DeleteUntagged);
        assert!(m.blobs.contains(1) && m.blobs.contains(11));
        assert!(!m.blobs.contains(2) && !m.blobs.contains(12));
    }

    /// The obviously-correct model: sets and a fixpoint loop.
    fn model(
        repos: &[RepoRoots],
        nodes: &HashMap<u32, Node>,
        mode: Mode,
    ) -> (HashSet<u32>, Vec<HashSet<u32>>) {
        let mut blobs = HashSet::new();
        let mut lives = Vec::new();
        for r in repos {
            let mut live: HashSet<u32> = r.tag_targets.iter().copied().collect();
            if mode == Mode::KeepUntagged {
                live.extend(r.revisions.iter().copied());
                for m in &live {
                    blobs.insert(*m);
                    if let Some(n) = nodes.get(m) {
                        blobs.extend(n.blobs.iter().chain(&n.children).copied());
                    }
                }
            } else {
                loop {
                    let before = live.len();
                    let snapshot: Vec<u32> = live.iter().copied().collect();
                    for m in snapshot {
                        if let Some(n) = nodes.get(&m) {
                            live.extend(n.children.iter().copied());
                        }
                    }
                    for rev in &r.revisions {
                        if let Some(s) = nodes.get(rev).and_then(|n| n.subject) {
                            if live.contains(&s) {
                                live.insert(*rev);
                            }
                        }
                    }
                    if live.len() == before {
                        break;
                    }
                }
                for m in &live {
                    blobs.insert(*m);
                    if let Some(n) = nodes.get(m) {
                        blobs.extend(n.blobs.iter().chain(&n.children).copied());
                    }
                }
            }
            lives.push(live);
        }
        (blobs, lives)
    }

    fn arb_graph() -> impl Strategy<Value = (Vec<RepoRoots>, HashMap<u32, Node>)> {
        // ids 0..30 are manifests, 30..60 plain blobs.
        let node = (
            prop::collection::vec(30u32..60, 0..4),
            prop::collection::vec(0u32..30, 0..3),
            prop::option::of(0u32..30),
            any::<bool>(),
        )
            .prop_map(|(blobs, children, subject, is_index)| {
                if is_index {
                    Node {
                        kind: Some(Kind::Index),
                        children,
                        subject,
                        ..Default::default()
                    }
                } else {
                    Node {
                        kind: Some(Kind::Image),
                        blobs,
                        subject,
                        ..Default::default()
                    }
                }
            });
        let nodes = prop::collection::hash_map(0u32..30, node, 0..30);
        let repo = (
            prop::collection::vec(0u32..30, 0..12),
            prop::collection::vec(0u32..30, 0..4),
        )
            .prop_map(|(mut revisions, tag_targets)| {
                revisions.sort_unstable();
                revisions.dedup();
                RepoRoots {
                    revisions,
                    tag_targets,
                }
            });
        (prop::collection::vec(repo, 1..5), nodes)
    }

    proptest! {
        #[test]
        fn mark_agrees_with_the_model((repos, nodes) in arb_graph(), delete_untagged in any::<bool>()) {
            let mode = if delete_untagged { Mode::DeleteUntagged } else { Mode::KeepUntagged };
            let got = mark(&repos, &nodes, mode);
            let (blobs, lives) = model(&repos, &nodes, mode);
            let got_blobs: HashSet<u32> = got.blobs.iter().collect();
            prop_assert_eq!(got_blobs, blobs);
            for (g, want) in got.live_manifests.iter().zip(&lives) {
                let g: HashSet<u32> = g.iter().collect();
                prop_assert_eq!(&g, want);
            }
            // Safety: every tag target, and everything a live manifest references, is kept.
            for (r, live) in repos.iter().zip(&got.live_manifests) {
                for t in &r.tag_targets { prop_assert!(got.blobs.contains(*t)); }
                for m in live {
                    if let Some(n) = nodes.get(&m) {
                        for x in n.references() { prop_assert!(got.blobs.contains(x)); }
                    }
                }
            }
        }
    }
}
