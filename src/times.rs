//! When things were pushed: the modification times of a repository's links.
//!
//! The registry keeps no push log, but it rewrites links on every push
//! (`SPEC.md`, `RETENTION.md`): a manifest PUT rewrites
//! `_manifests/revisions/sha256/<hex>/link`; a PUT by tag also rewrites
//! `_manifests/tags/<t>/index/sha256/<hex>/link` and then
//! `_manifests/tags/<t>/current/link`. So a revision link's mtime is when
//! the manifest was last pushed, a tag's `current/link` mtime when the tag
//! was last assigned, and each history link's mtime when the tag last took
//! that digest. On object stores the same is each key's `LastModified`.
//!
//! On a filesystem the scan can keep the times of the links it stats
//! anyway (revision links, and tags' `current/link` when asked: see
//! [`crate::scan::ScanOptions::link_times`]); the other known keys are
//! stat'ed in parallel batches. On an object store each repository's `_manifests/` is listed once (a listing
//! page carries up to 1,000 keys' times, where a HEAD carries one).

use crate::problem::{Kind, Problem, Severity};
use crate::scan::Inventory;
use crate::storage::{Meta, Storage, StorageError, StorageExt};
use std::collections::HashMap;
use std::time::SystemTime;

/// Link times of one repository.
#[derive(Debug, Default, Clone)]
pub struct RepoTimes {
    /// Manifest id → mtime of its revision link.
    pub revisions: HashMap<u32, SystemTime>,
    /// Per tag (in the repository's tag order): mtime of `current/link`.
    pub tags: Vec<Option<SystemTime>>,
    /// Per tag (same order): (manifest id, mtime of its history link),
    /// sorted by time; only when history times were asked for.
    pub history: Vec<Vec<(u32, SystemTime)>>,
}

/// Link times of every repository (in the inventory's repository order).
#[derive(Debug, Default, Clone)]
pub struct LinkTimes {
    /// One entry per inventory repository.
    pub repos: Vec<RepoTimes>,
}

impl LinkTimes {
    /// The digests tag `tag` of repository `repo` may have named at `at`:
    /// one when its history says so with certainty — the entry whose link
    /// was last written at or before `at`, with no other entry written
    /// within a second of it or within the second after `at` (link times
    /// and log times are cut to the second on some stores, and a copy that
    /// did not keep times gives many links one time) — and every candidate
    /// otherwise: entries that tie, every entry when `at` is before all of
    /// them (the tag took its digest again since) or when the tag has no
    /// history times. History entries without a time (`history`: the tag's
    /// history from the scan) and a `current` target without one are
    /// always candidates. Attributing a pull to every candidate keeps what
    /// may have been pulled: the safe side for retention.
    pub fn tag_at(
        &self,
        repo: usize,
        tag: usize,
        at: SystemTime,
        history: &[u32],
        current: Option<u32>,
    ) -> Vec<u32> {
        let h: &[(u32, SystemTime)] = self
            .repos
            .get(repo)
            .and_then(|r| r.history.get(tag))
            .map_or(&[], Vec::as_slice);
        let timed = |id: u32| h.iter().any(|&(x, _)| x == id);
        let mut out: Vec<u32> = Vec::new();
        let i = h.partition_point(|&(_, t)| t <= at);
        if i == 0 {
            out.extend(h.iter().map(|&(id, _)| id));
        } else {
            let chosen = h[i - 1].1;
            let second = std::time::Duration::from_secs(1);
            let from = chosen.checked_sub(second);
            let to = at.checked_add(second);
            out.extend(
                h.iter()
                    .filter(|&&(_, t)| from.is_none_or(|f| t > f) && to.is_none_or(|e| t <= e))
                    .map(|&(id, _)| id),
            );
        }
        out.extend(history.iter().copied().filter(|&id| !timed(id)));
        out.extend(current.filter(|&id| !timed(id)));
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Keys stat'ed per batch on a filesystem (bounds the memory of the keys).
const CHUNK: usize = 8192;

/// Where each stat result goes.
#[derive(Clone, Copy)]
enum Slot {
    Revision(usize, u32),
    Tag(usize, usize),
    History(usize, usize, u32),
}

/// Reads the link times of every visible repository: revision links and
/// tags' `current/link` always, tag history links when `history` is set
/// (only the attribution of pulls by tag needs them). Links that cannot be
/// stat'ed are left without a time and, unless they vanished, reported as
/// problems in the inventory.
pub fn read(storage: &dyn Storage, inv: &mut Inventory, history: bool) -> LinkTimes {
    let mut out = LinkTimes {
        repos: inv
            .repos
            .iter()
            .map(|r| RepoTimes {
                revisions: HashMap::with_capacity(r.revisions.len()),
                tags: vec![None; r.tags.len()],
                history: vec![Vec::new(); if history { r.tags.len() } else { 0 }],
            })
            .collect(),
    };
    if storage.fast_paths().is_some() {
        stat_known(storage, inv, history, &mut out);
    } else {
        list_manifests(storage, inv, history, &mut out);
    }
    for r in &mut out.repos {
        for h in &mut r.history {
            h.sort_by_key(|&(id, t)| (t, id));
        }
    }
    out
}

fn put(out: &mut LinkTimes, slot: Slot, t: SystemTime) {
    match slot {
        Slot::Revision(r, id) => {
            out.repos[r].revisions.insert(id, t);
        }
        Slot::Tag(r, i) => out.repos[r].tags[i] = Some(t),
        Slot::History(r, i, id) => out.repos[r].history[i].push((id, t)),
    }
}

/// Filesystem: stat every link whose key the inventory implies.
fn stat_known(storage: &dyn Storage, inv: &mut Inventory, history: bool, out: &mut LinkTimes) {
    // Keys and where each result goes, side by side (the keys are handed
    // to the storage as one slice).
    let (mut keys, mut slots): (Vec<String>, Vec<Slot>) = (Vec::new(), Vec::new());
    let mut problems = Vec::new();
    let mut flush = |keys: &mut Vec<String>, slots: &mut Vec<Slot>, out: &mut LinkTimes| {
        for ((key, slot), res) in keys
            .iter()
            .zip(slots.drain(..))
            .zip(storage.stat_many(keys))
        {
            record(out, slot, key, res, &mut problems);
        }
        keys.clear();
    };
    for (ri, r) in inv.repos.iter_mut().enumerate() {
        // What the scan stat'ed already (see `ScanOptions::link_times`).
        let known_revisions = std::mem::take(&mut r.revision_times);
        let known_tags = std::mem::take(&mut r.tag_times);
        if !r.visible {
            continue;
        }
        let base = format!("repositories/{}/_manifests/", r.name);
        for &id in &r.revisions {
            if let Ok(i) = known_revisions.binary_search_by_key(&id, |&(id, _)| id) {
                put(out, Slot::Revision(ri, id), known_revisions[i].1);
            } else if let Some(hex) = inv.interner.sha256(id) {
                keys.push(format!(
                    "{base}revisions/sha256/{}/link",
                    crate::digest::hex(hex)
                ));
                slots.push(Slot::Revision(ri, id));
            }
        }
        for (ti, t) in r.tags.iter().enumerate() {
            if let Some(&Some(at)) = known_tags.get(ti) {
                put(out, Slot::Tag(ri, ti), at);
            } else {
                keys.push(format!("{base}tags/{}/current/link", t.name));
                slots.push(Slot::Tag(ri, ti));
            }
            if history {
                for &id in &t.history {
                    if let Some(hex) = inv.interner.sha256(id) {
                        keys.push(format!(
                            "{base}tags/{}/index/sha256/{}/link",
                            t.name,
                            crate::digest::hex(hex)
                        ));
                        slots.push(Slot::History(ri, ti, id));
                    }
                }
            }
        }
        if keys.len() >= CHUNK {
            flush(&mut keys, &mut slots, out);
        }
    }
    flush(&mut keys, &mut slots, out);
    inv.problems.extend(problems);
}

fn record(
    out: &mut LinkTimes,
    slot: Slot,
    key: &str,
    res: Result<Meta, StorageError>,
    problems: &mut Vec<Problem>,
) {
    match res {
        Ok(Meta {
            modified: Some(t), ..
        }) => put(out, slot, t),
        Ok(_) => {}
        // Removed since the scan (a concurrent delete): no time, no problem.
        Err(e) if e.is_not_found() => {}
        Err(e) => problems.push(Problem::new(
            Kind::Unreadable,
            Severity::Warning,
            key,
            format!("link time unknown: {e}"),
        )),
    }
}

/// Object store: one listing of each repository's `_manifests/`.
fn list_manifests(storage: &dyn Storage, inv: &mut Inventory, history: bool, out: &mut LinkTimes) {
    let visible: Vec<usize> = (0..inv.repos.len())
        .filter(|&i| inv.repos[i].visible)
        .collect();
    let prefixes: Vec<String> = visible
        .iter()
        .map(|&i| format!("repositories/{}/_manifests/", inv.repos[i].name))
        .collect();
    let mut problems = Vec::new();
    for ((&ri, prefix), res) in visible
        .iter()
        .zip(&prefixes)
        .zip(storage.list_many(&prefixes, true))
    {
        let listing = match res {
            Ok(l) => l,
            Err(e) => {
                problems.push(Problem::new(
                    Kind::Unreadable,
                    Severity::Warning,
                    prefix,
                    format!("link times unknown: {e}"),
                ));
                continue;
            }
        };
        let repo = &inv.repos[ri];
        let tag_index: HashMap<&str, usize> = repo
            .tags
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        for e in &listing.entries {
            let Some(t) = e.modified else { continue };
            let rest = &e.key[prefix.len()..];
            let parts: Vec<&str> = rest.split('/').collect();
            let id = |hex: &str| {
                crate::digest::parse_sha256_hex(hex).and_then(|h| inv.interner.get_sha256(&h))
            };
            let slot = match parts.as_slice() {
                ["revisions", "sha256", hex, "link"] => id(hex).map(|id| Slot::Revision(ri, id)),
                ["tags", tag, "current", "link"] => tag_index.get(tag).map(|&ti| Slot::Tag(ri, ti)),
                ["tags", tag, "index", "sha256", hex, "link"] if history => tag_index
                    .get(tag)
                    .and_then(|&ti| id(hex).map(|id| Slot::History(ri, ti, id))),
                _ => None,
            };
            if let Some(slot) = slot {
                put(out, slot, t);
            }
        }
        problems.extend(listing.errors.iter().map(|e| {
            Problem::new(
                Kind::Unreadable,
                Severity::Warning,
                e.key(),
                format!("link time unknown: {e}"),
            )
        }));
    }
    inv.problems.extend(problems);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(lt: &LinkTimes, tag: usize, secs: u64) -> Vec<u32> {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        lt.tag_at(0, tag, t, &[7, 8, 9], Some(9))
    }

    fn times(h: Vec<(u32, u64)>) -> LinkTimes {
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        LinkTimes {
            repos: vec![RepoTimes {
                history: vec![h.into_iter().map(|(id, s)| (id, t(s))).collect()],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn tag_at_picks_the_assignment_in_force() {
        let lt = times(vec![(7, 100), (8, 200), (9, 300)]);
        assert_eq!(at(&lt, 0, 50), vec![7, 8, 9], "before all: any of them");
        assert_eq!(at(&lt, 0, 100), vec![7]);
        assert_eq!(at(&lt, 0, 250), vec![8]);
        assert_eq!(at(&lt, 0, 1000), vec![9]);
        assert_eq!(at(&lt, 1, 1000), vec![7, 8, 9], "no history times");
    }

    #[test]
    fn tag_at_counts_every_candidate_when_times_tie() {
        // A copy that did not keep times: every link has one mtime.
        let lt = times(vec![(7, 100), (8, 100), (9, 100)]);
        assert_eq!(at(&lt, 0, 500), vec![7, 8, 9]);
        // Two pushes in one second, and a pull in the second after a push.
        let lt = times(vec![(7, 100), (8, 200), (9, 200)]);
        assert_eq!(at(&lt, 0, 500), vec![8, 9]);
        let lt = times(vec![(7, 100), (8, 200), (9, 301)]);
        assert_eq!(at(&lt, 0, 300), vec![8, 9]);
        // A history entry without a time is always a candidate.
        let lt = times(vec![(7, 100), (9, 300)]);
        assert_eq!(at(&lt, 0, 1000), vec![8, 9]);
    }
}
