//! Followers at the level of ids: each tag of a repository with its
//! [`TagRole`] and the id of the subject it follows, and what removing a
//! manifest takes along ([`takes_along`]): its tags, the tags that follow
//! it, and — when that leaves one without any tag — the manifest such a
//! tag named, whose own followers go in turn.

use super::roles::TagRole;
use crate::digest::{Digest, Interner};
use crate::graph::Node;
use crate::scan::Repository;
use std::collections::{BTreeSet, HashMap, HashSet};

/// One tag as the traversal sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSeen {
    /// The manifest it names, when its link could be read.
    pub target: Option<u32>,
    /// Its role.
    pub role: TagRole,
    /// The id of the subject it follows, when it follows one whose digest
    /// the registry holds anywhere (an unknown subject keeps the tag: it is
    /// never taken along).
    pub subject: Option<u32>,
}

/// Every tag of `repo`, in the repository's tag order, with its role.
pub fn tags_seen(
    repo: &Repository,
    nodes: &HashMap<u32, Node>,
    interner: &Interner,
) -> Vec<TagSeen> {
    repo.tags
        .iter()
        .map(|t| {
            let node_subject = t
                .current
                .and_then(|c| nodes.get(&c))
                .and_then(|n| n.subject);
            let subject_text = node_subject.map(|s| interner.digest(s).to_string());
            let role = TagRole::of(&t.name, subject_text.as_deref());
            let subject = match &role {
                TagRole::Version => None,
                TagRole::Referrer { .. } => node_subject,
                TagRole::Cosign { subject, .. } | TagRole::ReferrersIndex { subject } => {
                    Digest::parse(subject).ok().and_then(|d| interner.get(&d))
                }
            };
            TagSeen {
                target: t.current,
                role,
                subject,
            }
        })
        .collect()
}

/// Closes a removal over followers, to a fixed point: every tag not yet in
/// `removed` whose subject is in `gone` is removed; a manifest left with no
/// tag that way joins `gone`, and its followers go in turn. `tags` is
/// [`tags_seen`] of the repository; `removed` holds tag indices, `gone`
/// manifest ids. Returns, for each tag it added, the subject it followed.
pub fn takes_along(
    tags: &[TagSeen],
    removed: &mut HashSet<usize>,
    gone: &mut BTreeSet<u32>,
) -> Vec<(usize, u32)> {
    let mut added = Vec::new();
    loop {
        let mut grew = false;
        for (ti, t) in tags.iter().enumerate() {
            if removed.contains(&ti) {
                continue;
            }
            let (Some(cur), Some(s)) = (t.target, t.subject) else {
                continue;
            };
            if !gone.contains(&s) {
                continue;
            }
            removed.insert(ti);
            added.push((ti, s));
            let untagged = tags
                .iter()
                .enumerate()
                .all(|(tj, u)| u.target != Some(cur) || removed.contains(&tj));
            if untagged {
                grew |= gone.insert(cur);
            }
        }
        if !grew {
            break;
        }
    }
    added
}

/// What `delete REPO@m` removes in one repository: every tag naming `m`,
/// then [`takes_along`]. Returns the removed tag indices and the manifests
/// gone (`m` first among them, with every follower's manifest left
/// untagged).
pub fn delete_one(tags: &[TagSeen], m: u32) -> (HashSet<usize>, BTreeSet<u32>) {
    let mut removed: HashSet<usize> = tags
        .iter()
        .enumerate()
        .filter(|(_, t)| t.target == Some(m))
        .map(|(ti, _)| ti)
        .collect();
    let mut gone = BTreeSet::from([m]);
    takes_along(tags, &mut removed, &mut gone);
    (removed, gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(target: u32, subject: Option<u32>) -> TagSeen {
        TagSeen {
            target: Some(target),
            role: match subject {
                Some(_) => TagRole::Referrer {
                    subject: String::new(),
                },
                None => TagRole::Version,
            },
            subject,
        }
    }

    #[test]
    fn followers_go_with_their_subject_in_chains() {
        // v1 -> 1; its signature tag -> 2 (subject 1); the signature's own
        // attestation -> 3 (subject 2); v2 -> 4; a follower of 4 -> 5.
        let tags = vec![
            seen(1, None),
            seen(2, Some(1)),
            seen(3, Some(2)),
            seen(4, None),
            seen(5, Some(4)),
        ];
        let (removed, gone) = delete_one(&tags, 1);
        assert_eq!(removed, HashSet::from([0, 1, 2]));
        assert_eq!(gone, BTreeSet::from([1, 2, 3]));
    }

    #[test]
    fn a_follower_target_that_keeps_another_tag_stays() {
        // 2 is both a signature (follows 1) and tagged v-sig by hand.
        let tags = vec![seen(1, None), seen(2, Some(1)), seen(2, None)];
        let (removed, gone) = delete_one(&tags, 1);
        assert_eq!(removed, HashSet::from([0, 1]));
        assert_eq!(gone, BTreeSet::from([1]));
    }
}
