//! The mark's roots, from the inventory: what each repository holds
//! ([`RepoRoots`]), and the problems only the whole inventory shows, found
//! before the mark.

use super::RepoRoots;
use crate::problem::{Kind as ProblemKind, Problem, Severity};
use crate::scan::Inventory;

/// The mark's inputs, one per repository, from the inventory.
pub fn roots(inv: &Inventory) -> Vec<RepoRoots> {
    inv.repos
        .iter()
        .map(|r| RepoRoots {
            revisions: r.revisions.clone(),
            tag_targets: r.tags.iter().filter_map(|t| t.current).collect(),
        })
        .collect()
}

/// Problems that only the whole inventory shows, added before the mark:
/// stored blobs with no repository at all (every blob would be garbage:
/// an error), and tags whose manifest has no revision link in their
/// repository (the registry cannot serve them; the mark keeps the manifest).
pub fn check_roots(inv: &mut Inventory) {
    let stored = inv.stored_blobs().len();
    if inv.repos.is_empty() && stored > 0 {
        inv.problems.push(Problem::new(
            ProblemKind::NoRepositories,
            Severity::Error,
            "repositories/",
            format!(
                "no repositories, but {stored} blobs: every blob would be garbage; the storage \
                 root may be wrong or repositories/ lost"
            ),
        ));
    }
    let mut dangling = Vec::new();
    for r in &inv.repos {
        for t in &r.tags {
            let Some(m) = t.current else { continue };
            if r.revisions.binary_search(&m).is_err() {
                dangling.push(Problem::new(
                    ProblemKind::DanglingTag,
                    Severity::Warning,
                    format!(
                        "repositories/{}/_manifests/tags/{}/current/link",
                        r.name, t.name
                    ),
                    format!(
                        "tag {:?} names manifest {}, which has no revision link in {}: pulling \
                         it fails with \"manifest unknown\"; the manifest and what it references \
                         are kept",
                        t.name,
                        inv.interner.digest(m),
                        r.name
                    ),
                ));
            }
        }
    }
    inv.problems.extend(dangling);
}
