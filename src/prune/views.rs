//! What the policy engine sees of the storage, and its decision turned
//! back into a [`Request`]: [`repo_views`] builds a
//! [`RepoView`] per repository from the analysis (tags and what they name,
//! the mark), the link times (assigned, pushed) and the access logs
//! (pulled); [`request`] maps the engine's [`Decision`] onto inventory
//! positions.

use super::{Kept, Request};
use crate::images::pulls::Pulls;
use crate::policy::{Decision, ManifestView, RepoView, TagView};
use crate::times::LinkTimes;
use crate::Analysis;
use rayon::prelude::*;
use std::collections::HashMap;

/// One [`RepoView`] per visible repository, with its inventory index. `a`
/// must come from a delete-untagged mark. A tag whose link could not be
/// read is left out (the engine never sees it, so never removes it).
pub fn repo_views(
    a: &Analysis,
    times: &LinkTimes,
    pulls: Option<&Pulls>,
) -> Vec<(usize, RepoView)> {
    let inv = &a.inventory;
    let nodes = &a.graph.nodes;
    inv.repos
        .par_iter()
        .enumerate()
        .filter(|(_, r)| r.visible)
        .map(|(ri, r)| {
            let rt = times.repos.get(ri);
            let tags: Vec<TagView> = r
                .tags
                .iter()
                .enumerate()
                .filter_map(|(ti, t)| {
                    Some(TagView {
                        name: t.name.clone(),
                        digest: inv.interner.digest(t.current?).to_string(),
                        assigned_at: rt.and_then(|rt| rt.tags.get(ti).copied().flatten()),
                    })
                })
                .collect();
            let live = &a.marked.live_manifests[ri];
            // Children of live manifests: reached whatever their own tags.
            let reached = crate::reach::live::children_of(live, nodes);
            let mut ids: Vec<u32> = r.revisions.clone();
            ids.extend(r.tags.iter().filter_map(|t| t.current));
            ids.sort_unstable();
            ids.dedup();
            let manifests = ids
                .into_iter()
                .map(|m| {
                    let node = nodes.get(&m);
                    let pulled = pulls.map(|p| p.of(ri, m, node, nodes)).unwrap_or_default();
                    ManifestView {
                        digest: inv.interner.digest(m).to_string(),
                        pushed_at: rt.and_then(|rt| rt.revisions.get(&m).copied()),
                        last_pulled_at: pulled.any,
                        pulled_by_digest_at: pulled.by_digest,
                        subject: node
                            .and_then(|n| n.subject)
                            .map(|s| inv.interner.digest(s).to_string()),
                        reached: reached.contains(m),
                    }
                })
                .collect();
            (
                ri,
                RepoView {
                    name: r.name.clone(),
                    tags,
                    manifests,
                },
            )
        })
        .collect()
}

/// The engine's decision as a request: removed tags, removed untagged
/// manifests, and what it keeps in repositories some rule applies to
/// (`no rule applies` is counted, not listed).
pub fn request(a: &Analysis, d: &Decision) -> Request {
    let inv = &a.inventory;
    let repo_index: HashMap<&str, usize> = inv
        .repos
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), i))
        .collect();
    let mut req = Request::default();
    for t in &d.tags_removed {
        let Some(&ri) = repo_index.get(t.repository.as_str()) else {
            continue;
        };
        let r = &inv.repos[ri];
        if let Ok(ti) = r.tags.binary_search_by(|x| x.name.as_str().cmp(&t.tag)) {
            req.tags.insert((ri, ti), t.reason.to_string());
        }
    }
    for m in &d.untagged_removed {
        let Some(&ri) = repo_index.get(m.repository.as_str()) else {
            continue;
        };
        let Ok(digest) = crate::digest::Digest::parse(&m.digest) else {
            continue;
        };
        if let Some(id) = inv.interner.get(&digest) {
            req.manifests
                .insert((ri, id), format!("untagged; {}", m.reason));
        }
    }
    for m in &d.pinned {
        let Some(&ri) = repo_index.get(m.repository.as_str()) else {
            continue;
        };
        let Ok(digest) = crate::digest::Digest::parse(&m.digest) else {
            continue;
        };
        if let Some(id) = inv.interner.get(&digest) {
            req.pinned.insert((ri, id));
        }
    }
    req.untag_only = d.untag_only;
    let listed = |r: &crate::policy::Reason| !matches!(r, crate::policy::Reason::NoRuleApplies);
    for t in d.tags_kept.iter().filter(|t| listed(&t.reason)) {
        req.kept.push(Kept {
            repository: t.repository.clone(),
            tag: Some(t.tag.clone()),
            digest: t.digest.clone(),
            reason: t.reason.to_string(),
        });
    }
    for m in d.untagged_kept.iter().filter(|m| listed(&m.reason)) {
        req.kept.push(Kept {
            repository: m.repository.clone(),
            tag: None,
            digest: m.digest.clone(),
            reason: m.reason.to_string(),
        });
    }
    req
}
