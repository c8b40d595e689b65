//! `delete`'s references — `repo:tag`, `repo@sha256:<hex>`, `repo` — parsed
//! and resolved against the inventory into a [`Request`], with the tags and
//! signatures that go along.
//!
//! * `repo:tag` removes the manifest the tag names together with every tag
//!   naming it (ACR's delete by tag), or with `untag_only` the tag alone;
//! * `repo@digest` removes the manifest and every tag naming it;
//! * `repo` removes every tag and manifest of the repository, and its
//!   directory when nothing is left.
//!
//! A removed manifest takes its followers along (the tags whose
//! [`reach::TagRole`] follows it: cosign's `sha256-<hex>.sig|.att|.sbom`,
//! the referrers tag schema's `sha256-<hex>`, tags of manifests whose
//! `subject` it is), to a fixed point (a signature of an SBOM of the image). Untagged
//! referrers, and an index's children that nothing else needs, are left to
//! the re-run mark.

use super::Request;
use crate::digest::Digest;
use crate::reach;
use crate::scan::Inventory;
use crate::Analysis;
use crate::{Error, Result};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

/// A parsed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    /// `repo:tag`.
    Tag {
        /// Repository name.
        repo: String,
        /// Tag name.
        tag: String,
    },
    /// `repo@sha256:<hex>`.
    Digest {
        /// Repository name.
        repo: String,
        /// The manifest's digest.
        digest: Digest,
    },
    /// `repo`: the whole repository.
    Repository(String),
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Tag { repo, tag } => write!(f, "{repo}:{tag}"),
            Ref::Digest { repo, digest } => write!(f, "{repo}@{digest}"),
            Ref::Repository(r) => write!(f, "{r}"),
        }
    }
}

fn valid_repo(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
                && c.as_bytes()[0].is_ascii_alphanumeric()
                && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
        })
}

fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Parses `repo:tag`, `repo@sha256:<hex>` or `repo`.
pub fn parse(s: &str) -> Result<Ref> {
    let bad = |why: &str| {
        Error::Invalid(format!(
            "{s:?} is not a reference (repo:tag, repo@sha256:<hex> or repo): {why}"
        ))
    };
    if let Some((repo, d)) = s.split_once('@') {
        if !valid_repo(repo) {
            return Err(bad("invalid repository name"));
        }
        let digest = Digest::parse(d).map_err(|e| bad(&format!("invalid digest: {e}")))?;
        if digest.sha256_hex().is_none() {
            return Err(bad("only sha256 manifest digests are stored"));
        }
        return Ok(Ref::Digest {
            repo: repo.to_string(),
            digest,
        });
    }
    // A tag follows the last ':' after the last '/' (a repository name has
    // no ':'; a registry host with a port is not part of a stored name).
    let last = s.rsplit('/').next().unwrap_or(s);
    if let Some((_, tag)) = last.rsplit_once(':') {
        let repo = &s[..s.len() - tag.len() - 1];
        if !valid_repo(repo) {
            return Err(bad("invalid repository name"));
        }
        if !valid_tag(tag) {
            return Err(bad("invalid tag"));
        }
        return Ok(Ref::Tag {
            repo: repo.to_string(),
            tag: tag.to_string(),
        });
    }
    if !valid_repo(s) {
        return Err(bad("invalid repository name"));
    }
    Ok(Ref::Repository(s.to_string()))
}

/// Finds a visible repository by exact name.
fn find_repo(inv: &Inventory, name: &str) -> Result<usize> {
    inv.repos
        .iter()
        .position(|r| r.visible && r.name == name)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "repository {name:?} does not exist in {}",
                inv.storage
            ))
        })
}

/// Resolves `refs` into a request. Errors name the first reference that
/// does not exist or does not fit.
pub fn resolve(a: &Analysis, refs: &[Ref], untag_only: bool) -> Result<Request> {
    let inv = &a.inventory;
    let mut req = Request {
        untag_only,
        ..Request::default()
    };
    // Per repository: manifests removed (for the followers).
    let mut gone: HashMap<usize, BTreeSet<u32>> = HashMap::new();
    let tags_naming = |ri: usize, id: u32| -> Vec<usize> {
        inv.repos[ri]
            .tags
            .iter()
            .enumerate()
            .filter(|(_, t)| t.current == Some(id))
            .map(|(ti, _)| ti)
            .collect()
    };
    for r in refs {
        match r {
            Ref::Tag { repo, tag } => {
                let ri = find_repo(inv, repo)?;
                let rp = &inv.repos[ri];
                let ti = rp
                    .tags
                    .binary_search_by(|t| t.name.as_str().cmp(tag))
                    .map_err(|_| {
                        Error::Invalid(format!("tag {r} does not exist in {}", inv.storage))
                    })?;
                let Some(id) = rp.tags[ti].current else {
                    return Err(Error::Invalid(format!(
                        "tag {r}: its current link cannot be read; fix or inspect it with `regsweep verify`"
                    )));
                };
                req.tags.insert((ri, ti), format!("named: {r}"));
                if untag_only {
                    continue;
                }
                for other in tags_naming(ri, id) {
                    req.tags
                        .entry((ri, other))
                        .or_insert_with(|| format!("names the same manifest as {r}"));
                }
                if rp.revisions.binary_search(&id).is_ok() {
                    req.manifests
                        .entry((ri, id))
                        .or_insert_with(|| format!("named by {r}"));
                }
                gone.entry(ri).or_default().insert(id);
            }
            Ref::Digest { repo, digest } => {
                if untag_only {
                    return Err(Error::Invalid(format!(
                        "{r}: --untag-only takes repo:tag references"
                    )));
                }
                let ri = find_repo(inv, repo)?;
                let rp = &inv.repos[ri];
                let id = inv
                    .interner
                    .get(digest)
                    .filter(|&id| {
                        rp.revisions.binary_search(&id).is_ok()
                            || rp.tags.iter().any(|t| t.current == Some(id))
                    })
                    .ok_or_else(|| {
                        Error::Invalid(format!("manifest {r} does not exist in {}", inv.storage))
                    })?;
                for ti in tags_naming(ri, id) {
                    req.tags
                        .entry((ri, ti))
                        .or_insert_with(|| format!("names {r}"));
                }
                if rp.revisions.binary_search(&id).is_ok() {
                    req.manifests.insert((ri, id), format!("named: {r}"));
                }
                gone.entry(ri).or_default().insert(id);
            }
            Ref::Repository(repo) => {
                if untag_only {
                    return Err(Error::Invalid(format!(
                        "{r}: --untag-only takes repo:tag references"
                    )));
                }
                let ri = find_repo(inv, repo)?;
                let rp = &inv.repos[ri];
                for ti in 0..rp.tags.len() {
                    req.tags
                        .insert((ri, ti), format!("repository {repo} deleted"));
                }
                for &id in &rp.revisions {
                    req.manifests
                        .insert((ri, id), format!("repository {repo} deleted"));
                }
                gone.entry(ri)
                    .or_default()
                    .extend(rp.revisions.iter().copied());
                if !req.repositories.contains(&ri) {
                    req.repositories.push(ri);
                }
            }
        }
    }
    // Followers, to a fixed point (`reach::takes_along`): a tag whose
    // subject goes goes too; a manifest that loses every tag that way is
    // gone in turn.
    for (&ri, ids) in gone.iter_mut() {
        let rp = &inv.repos[ri];
        let seen = reach::tags_seen(rp, &a.graph.nodes, &inv.interner);
        let mut removed: HashSet<usize> = req
            .tags
            .keys()
            .filter(|(r, _)| *r == ri)
            .map(|&(_, ti)| ti)
            .collect();
        for (ti, s) in reach::takes_along(&seen, &mut removed, ids) {
            req.tags.insert(
                (ri, ti),
                format!(
                    "follows its subject {} ({})",
                    inv.interner.digest(s),
                    seen[ti].role.name()
                ),
            );
        }
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_bad_ones_are_named() {
        assert_eq!(
            parse("team-a/svc/api:1.0").unwrap(),
            Ref::Tag {
                repo: "team-a/svc/api".into(),
                tag: "1.0".into()
            }
        );
        let hex = "a".repeat(64);
        assert_eq!(
            parse(&format!("a/b@sha256:{hex}")).unwrap(),
            Ref::Digest {
                repo: "a/b".into(),
                digest: Digest::parse(&format!("sha256:{hex}")).unwrap()
            }
        );
        assert_eq!(parse("a/b").unwrap(), Ref::Repository("a/b".into()));
        for bad in [
            "",
            "A/b",
            "a//b",
            "a:",
            "a:b:c",
            "a@sha256:12",
            "a@md5:00",
            "a:-x",
            "a/:t",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}
