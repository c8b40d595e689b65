//! Sorting a recursive listing of one part of a repository (`_manifests/`,
//! `_layers/`, `_uploads/`) into its [`RawRepo`]: what a deep walk of a
//! filesystem and the flat listing of an object store both produce.

use super::aliases::alias_digest;
use super::layout::{hex_dir, parse_link, problem_for_entry, storage_problem, stray_or_unexpected};
use super::links::note_link;
use super::raw::{Content, RawRepo};
use super::{LinkKind, Upload};
use crate::digest::{Digest, SHA256_DIGEST_LEN};
use crate::problem::{Kind, Problem, Severity};
use crate::storage::{Entry, Fetched};

/// Which part of a repository a prefix lists.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(super) enum Part {
    /// `_manifests/`.
    Manifests,
    /// `_layers/`.
    Layers,
    /// `_uploads/`.
    Uploads,
}

/// Sorts the recursive listing of one part of a repository (`prefix` is
/// `repositories/<name>/_manifests/`, `_layers/` or `_uploads/`) into `repo`.
pub(super) fn classify_listing(
    part: Part,
    prefix: &str,
    repo: &mut RawRepo,
    listing: crate::storage::Listing,
    check: bool,
    problems: &mut Vec<Problem>,
) {
    problems.extend(listing.errors.iter().map(storage_problem));
    let mut fetched = listing.fetched.into_iter().peekable();
    for (n, e) in listing.entries.iter().enumerate() {
        let content = match fetched.next_if(|(j, _)| *j == n) {
            Some((_, Ok(Fetched::Content(c)))) => Some(Ok(c)),
            Some((_, Ok(Fetched::Hash(_)))) | None => None,
            Some((_, Err(err))) => Some(Err(err)),
        };
        if let Some(p) = problem_for_entry(e) {
            problems.push(p);
            continue;
        }
        let rest = &e.key[prefix.len()..];
        match part {
            Part::Manifests => classify_manifests(repo, e, rest, content, check, problems),
            Part::Layers => classify_layers(repo, e, rest, content, check, problems),
            Part::Uploads => classify_uploads(repo, e, rest, problems),
        }
    }
}

/// Sorts one entry of `_manifests/` (`rest` is its key below it): a
/// revision link, a tag's current link or one of its history.
pub(super) fn classify_manifests(
    repo: &mut RawRepo,
    e: &Entry,
    rest: &str,
    content: Content,
    check: bool,
    problems: &mut Vec<Problem>,
) {
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["revisions", "sha256", hex, "link"] => {
            if let Some(h) = hex_dir(&e.key, hex, problems) {
                repo.revisions.push(h);
                match content {
                    // A link that vanished: `read_links` drops the revision.
                    Some(Err(err)) if err.is_not_found() => {
                        repo.revision_links_to_check.push((e.key.clone(), h));
                        repo.prefetched.insert(e.key.clone(), Err(err));
                    }
                    Some(res) => {
                        note_link(repo, check, &e.key, LinkKind::Revision, h, Some(&res));
                        let good = matches!(&res, Ok(b) if parse_link(b) == Ok(Digest::Sha256(h)));
                        if !good {
                            repo.revision_links_to_check.push((e.key.clone(), h));
                            repo.prefetched.insert(e.key.clone(), res);
                        }
                    }
                    None => {
                        note_link(repo, check, &e.key, LinkKind::Revision, h, None);
                        if e.size != Some(SHA256_DIGEST_LEN as u64) {
                            repo.revision_links_to_check.push((e.key.clone(), h));
                        }
                    }
                }
            }
        }
        ["revisions", alg, _, "link"] if *alg != "sha256" => problems.push(Problem::new(
            Kind::NonSha256Digest,
            Severity::Warning,
            &e.key,
            format!("revision under algorithm {alg:?}; the registry writes only sha256; ignored"),
        )),
        ["tags", tag, "current", "link"] => {
            let t = repo.tags.entry(tag.to_string()).or_default();
            t.current = Some(e.key.clone());
            t.content = content;
        }
        ["tags", tag, "index", "sha256", hex, "link"] => {
            let t = repo.tags.entry(tag.to_string()).or_default();
            if let Some(h) = hex_dir(&e.key, hex, problems) {
                t.history.push(h);
                let kind = LinkKind::History(tag.to_string());
                note_link(repo, check, &e.key, kind, h, content.as_ref());
            }
        }
        _ => problems.push(stray_or_unexpected(&e.key, "_manifests")),
    }
}

/// Sorts one entry of `_layers/` (`rest` is its key below it): a layer
/// link, or an alias link of another algorithm.
pub(super) fn classify_layers(
    repo: &mut RawRepo,
    e: &Entry,
    rest: &str,
    content: Content,
    check: bool,
    problems: &mut Vec<Problem>,
) {
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["sha256", hex, "link"] => {
            if let Some(h) = hex_dir(&e.key, hex, problems) {
                if let Some(size) = e.size.filter(|&s| s != SHA256_DIGEST_LEN as u64) {
                    problems.push(Problem::new(
                        Kind::BadLink,
                        Severity::Warning,
                        &e.key,
                        format!("layer link is {size} bytes, a valid link is {SHA256_DIGEST_LEN}"),
                    ));
                }
                repo.layers.push(h);
                note_link(repo, check, &e.key, LinkKind::Layer, h, content.as_ref());
            }
        }
        // sha384/sha512 aliases hold the canonical sha256 digest.
        [alg, hex, "link"] if *alg != "sha256" => {
            if let Some(d) = alias_digest(alg, hex, &e.key, problems) {
                repo.aliases.push((e.key.clone(), d, content));
            }
        }
        _ => problems.push(stray_or_unexpected(&e.key, "_layers")),
    }
}

/// Adds one file of `_uploads/` (`rest` is its key below it) to its
/// upload's size and age.
pub(super) fn classify_uploads(
    repo: &mut RawRepo,
    e: &Entry,
    rest: &str,
    problems: &mut Vec<Problem>,
) {
    let Some((id, _file)) = rest.split_once('/') else {
        problems.push(stray_or_unexpected(&e.key, "_uploads"));
        return;
    };
    let u = repo
        .uploads
        .entry(id.to_string())
        .or_insert_with(|| Upload {
            id: id.to_string(),
            size: 0,
            started_at: None,
            modified: None,
        });
    u.size += e.size.unwrap_or(0);
    u.modified = u.modified.max(e.modified);
}
