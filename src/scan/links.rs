//! Link files: reading the ones whose content matters (tags' `current`
//! links, revision links of unexpected size, uploads' `startedat`) and, for
//! an audit ([`ScanOptions::check_links`]), checking that every revision,
//! `_layers` and tag history link holds exactly the digest of its path.

use super::layout::{parse_link, parse_rfc3339, storage_problem, valid_tag};
use super::raw::RawRepo;
use super::{Inventory, LinkCheck, LinkFault, LinkKind, ScanOptions};
use crate::digest::Digest;
use crate::problem::{Kind, Problem, Severity};
use crate::storage::{Storage, StorageError, StorageExt};
use std::collections::HashMap;

/// Why a link's content (or the attempt to read it) is not exactly
/// `sha256:<want>`; `None` when it is.
pub(super) fn link_fault(res: &Result<Vec<u8>, StorageError>, want: &[u8; 32]) -> Option<String> {
    let want = Digest::Sha256(*want);
    Some(match res {
        Ok(bytes) => match parse_link(bytes) {
            Ok(got) if got == want => return None,
            Ok(got) => format!("link holds {got}, which disagrees with its path ({want})"),
            Err(e) => e.to_string(),
        },
        Err(e) if e.is_not_found() => format!("link vanished during the run: {e}"),
        Err(e) => format!("link cannot be read: {e}"),
    })
}

/// What a deep listing says about one link of a repository: checked now
/// when its content came with the listing, else remembered to be read.
pub(super) fn note_link(
    repo: &mut RawRepo,
    check: bool,
    key: &str,
    kind: LinkKind,
    h: [u8; 32],
    content: Option<&Result<Vec<u8>, StorageError>>,
) {
    if !check {
        return;
    }
    match content {
        Some(res) => {
            repo.links_checked += 1;
            if let Some(msg) = link_fault(res, &h) {
                repo.link_faults.push((kind, h, key.to_string(), msg));
            }
        }
        None => repo.links_unread.push((key.to_string(), kind, h)),
    }
}

/// The contents of the links [`read_links`] needs, by key, as
/// [`read_link_contents`] read them.
pub(super) type LinkContents = HashMap<String, Result<Vec<u8>, StorageError>>;

/// The keys [`read_links`] reads: each tag's `current` link that the
/// listing did not read, each revision link to check, each upload's
/// `startedat`.
fn link_keys(repos: &[RawRepo]) -> Vec<String> {
    let mut keys = Vec::new();
    for r in repos.iter() {
        keys.extend(
            r.tags
                .values()
                .filter(|t| t.content.is_none())
                .filter_map(|t| t.current.clone()),
        );
        keys.extend(r.revision_links_to_check.iter().map(|(k, _)| k.clone()));
        keys.extend(
            r.uploads
                .keys()
                .map(|id| format!("repositories/{}/_uploads/{id}/startedat", r.name)),
        );
    }
    keys
}

/// Reads, all at once, the links [`read_links`] needs: as soon as the
/// repositories are listed, while other listings may still run.
pub(super) fn read_link_contents(
    storage: &dyn Storage,
    opts: &ScanOptions,
    repos: &[RawRepo],
) -> LinkContents {
    let keys = link_keys(repos);
    let contents = storage.read_many(&keys, opts.max_link_size);
    keys.into_iter().zip(contents).collect()
}

/// Reads tags' `current` links, suspicious revision links and `startedat`
/// files (or takes them from `read`, what [`read_link_contents`] read of
/// the same `repos`). Returns each repository's tags' current digests, in
/// tag order.
pub(super) fn read_links(
    storage: &dyn Storage,
    opts: &ScanOptions,
    repos: &mut [RawRepo],
    problems: &mut Vec<Problem>,
    read: Option<LinkContents>,
) -> Vec<Vec<Option<[u8; 32]>>> {
    let mut contents = read.unwrap_or_else(|| read_link_contents(storage, opts, repos));
    for r in repos.iter_mut() {
        contents.extend(std::mem::take(&mut r.prefetched));
    }
    let mut out = Vec::with_capacity(repos.len());
    for r in repos.iter_mut() {
        let mut currents = Vec::with_capacity(r.tags.len());
        for (tag, t) in &mut r.tags {
            let tag_key = || format!("repositories/{}/_manifests/tags/{tag}/", r.name);
            if !valid_tag(tag) {
                problems.push(Problem::new(
                    Kind::InvalidName,
                    Severity::Warning,
                    tag_key(),
                    format!("{tag:?} is not a valid tag name"),
                ));
            }
            // A tag directory without `current/link` (a deep listing sees
            // the tag only through its history): the registry lists the tag
            // but cannot resolve it, and what it pointed at is unknown.
            let no_current = |key: String| {
                Problem::new(
                    Kind::DanglingTag,
                    Severity::Error,
                    key,
                    format!(
                        "tag {tag:?} has no current link: the registry lists it but cannot \
                         resolve it, and what it pointed at is unknown (its index/ history \
                         names what it held)"
                    ),
                )
            };
            let Some(key) = &t.current else {
                problems.push(no_current(format!("{}current/link", tag_key())));
                currents.push(None);
                continue;
            };
            // Read while listing, or just now.
            let content = t.content.take().or_else(|| contents.remove(key));
            currents.push(match content {
                Some(Ok(bytes)) => match parse_link(&bytes) {
                    Ok(Digest::Sha256(h)) => Some(h),
                    Ok(_) => None,
                    Err(msg) => {
                        problems.push(Problem::new(
                            Kind::BadLink,
                            Severity::Error,
                            key,
                            format!("tag {tag:?}: {msg}; the tag's manifest is unknown"),
                        ));
                        None
                    }
                },
                Some(Err(e)) if e.is_not_found() => {
                    problems.push(no_current(key.clone()));
                    None
                }
                Some(Err(e)) => {
                    problems.push(storage_problem(&e));
                    None
                }
                None => None,
            });
        }
        out.push(currents);
        let mut gone = Vec::new();
        for (key, h) in std::mem::take(&mut r.revision_links_to_check) {
            match contents.remove(&key) {
                Some(Ok(bytes)) => match parse_link(&bytes) {
                    Ok(Digest::Sha256(got)) if got == h => {}
                    Ok(other) => problems.push(Problem::new(
                        Kind::BadLink,
                        Severity::Error,
                        &key,
                        format!("revision link holds {other}, which disagrees with its path"),
                    )),
                    Err(msg) => problems.push(Problem::new(
                        Kind::BadLink,
                        Severity::Error,
                        &key,
                        format!("{msg}; the registry cannot serve this manifest (kept as live)"),
                    )),
                },
                // A digest directory without its link: not a revision (the
                // registry and its garbage collector see only link files).
                Some(Err(e)) if e.is_not_found() => gone.push(h),
                Some(Err(e)) => problems.push(storage_problem(&e)),
                None => {}
            }
        }
        if !gone.is_empty() {
            r.revisions.retain(|h| !gone.contains(h));
        }
        for (id, u) in r.uploads.iter_mut() {
            let key = format!("repositories/{}/_uploads/{id}/startedat", r.name);
            match contents.remove(&key) {
                Some(Ok(bytes)) => {
                    u.started_at = std::str::from_utf8(&bytes).ok().and_then(parse_rfc3339);
                    if u.started_at.is_none() {
                        problems.push(Problem::new(
                            Kind::UploadWithoutStartedAt,
                            Severity::Warning,
                            &key,
                            format!("startedat is not an RFC 3339 time: {:?}", String::from_utf8_lossy(&bytes)),
                        ));
                    }
                }
                Some(Err(e)) if e.is_not_found() => problems.push(Problem::new(
                    Kind::UploadWithoutStartedAt,
                    Severity::Warning,
                    format!("repositories/{}/_uploads/{id}/", r.name),
                    "upload has no startedat: its age is unknown (the reference purger never removes it)",
                )),
                Some(Err(e)) => problems.push(storage_problem(&e)),
                None => {}
            }
        }
    }
    out
}

/// With [`ScanOptions::check_links`]: reads the links that the listing did
/// not (in chunks, concurrently), checks them, and gathers every repository's
/// faults into `inv.links`. Revisions dropped since (their link vanished)
/// are not checked.
pub(super) fn check_unread_links(
    storage: &dyn Storage,
    opts: &ScanOptions,
    inv: &mut Inventory,
    raw: Vec<(usize, LinkCounts)>,
) {
    let mut faults = Vec::new();
    let mut checked = 0;
    let mut unread = Vec::new();
    for (ri, (n, found, not_read)) in raw {
        checked += n;
        for (kind, h, key, message) in found {
            let id = inv.interner.intern_sha256(&h);
            faults.push(LinkFault {
                repo: ri,
                kind,
                id,
                key,
                message,
            });
        }
        let revisions = &inv.repos[ri].revisions;
        for (key, kind, h) in not_read {
            let id = inv.interner.intern_sha256(&h);
            if kind == LinkKind::Revision && revisions.binary_search(&id).is_err() {
                continue;
            }
            unread.push((ri, kind, id, h, key));
        }
    }
    for chunk in unread.chunks(LINK_READ_CHUNK) {
        let keys: Vec<String> = chunk.iter().map(|u| u.4.clone()).collect();
        for ((ri, kind, id, h, key), res) in chunk
            .iter()
            .zip(storage.read_many(&keys, opts.max_link_size))
        {
            checked += 1;
            if let Some(message) = link_fault(&res, h) {
                faults.push(LinkFault {
                    repo: *ri,
                    kind: kind.clone(),
                    id: *id,
                    key: key.clone(),
                    message,
                });
            }
        }
    }
    faults.sort_by(|a, b| (a.repo, &a.kind, a.id).cmp(&(b.repo, &b.kind, b.id)));
    inv.links = LinkCheck { checked, faults };
}

/// Takes from each repository what its listing learnt of its links (see
/// [`LinkCounts`]), with the repository's index, for [`check_unread_links`].
pub(super) fn take_counts(raw: &mut [RawRepo]) -> Vec<(usize, LinkCounts)> {
    raw.iter_mut()
        .enumerate()
        .map(|(i, r)| {
            let counts = (
                r.links_checked,
                std::mem::take(&mut r.link_faults),
                std::mem::take(&mut r.links_unread),
            );
            (i, counts)
        })
        .collect()
}

/// A repository's links as the listing left them: how many were checked,
/// their faults (kind, digest, key, message), and those still to read
/// (key, kind, digest).
pub(super) type LinkCounts = (
    usize,
    Vec<(LinkKind, [u8; 32], String, String)>,
    Vec<(String, LinkKind, [u8; 32])>,
);

/// Links read per concurrent batch by [`check_unread_links`].
const LINK_READ_CHUNK: usize = 8192;
