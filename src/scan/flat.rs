//! The flat listing, for any backend without the filesystem's fast paths
//! (an object store): `blobs/` and `repositories/` are each listed in one
//! recursive listing ([`ScanHints::list_split`]), at once, split into ranges
//! listed in parallel where the first page shows the rest will need more
//! pages ([`blob_cuts`], [`repository_cuts`]); what the filesystem's walk
//! learns directory by directory is then found in the keys.
//!
//! [`ScanHints::list_split`]: crate::storage::ScanHints::list_split

use super::blobs::{shard_entries, BlobTable};
use super::classify::{classify_listing, Part};
use super::layout::{
    lower_hex, problem_for_entry, repository_problems, storage_problem, stray_or_unexpected,
};
use super::links::{read_link_contents, LinkContents};
use super::raw::RawRepo;
use super::ScanOptions;
use crate::problem::{Kind, Problem, Severity};
use crate::progress::Progress;
use crate::storage::hash::ContentHash;
use crate::storage::{Entry, Storage, StorageError, StorageExt};
use std::time::SystemTime;

/// Lists the registry's `blobs/` into `table` and its `repositories/`, both
/// at once (the repositories on another thread, which then reads the
/// links [`read_links`](super::links::read_links) needs at once, without
/// waiting for the blobs' listing; one after the other when the storage
/// [lists from memory](crate::storage::ScanHints::lists_from_memory)); the root is looked at
/// only when both are empty, and then fails when it holds nothing at all.
/// Returns the repositories and the contents of those links.
pub(super) fn list(
    storage: &dyn Storage,
    opts: &ScanOptions,
    progress: &Progress,
    table: &mut BlobTable,
    problems: &mut Vec<Problem>,
) -> Result<(Vec<RawRepo>, LinkContents), StorageError> {
    progress.phase("listing blobs and repositories, reading links");
    let start = std::time::Instant::now();
    // The repositories, then at once the links `read_links` needs.
    let repositories = |blobs: Option<&crate::digest::Interner>| {
        let mut found = Vec::new();
        let r = list_repositories_flat(storage, opts, blobs, &mut found).map(|(repos, n)| {
            let links = read_link_contents(storage, opts, &repos);
            (repos, n, links)
        });
        (r, found)
    };
    let (blobs, repos) = if storage.lists_from_memory() {
        // Blobs first, then each repository's layer links looked up among
        // them as the listing goes: held as ids, not digests.
        let blobs = {
            let (expected, record) = table.recorder();
            scan_blobs_flat(storage, problems, expected, record)
        };
        (blobs, repositories(Some(&table.interner)))
    } else {
        let (expected, record) = table.recorder();
        std::thread::scope(|sc| {
            let repos = sc.spawn(|| repositories(None));
            let blobs = scan_blobs_flat(storage, problems, expected, record);
            (
                blobs,
                repos.join().expect("the repository listing does not panic"),
            )
        })
    };
    let listed = blobs?;
    let (repos, found) = repos;
    let (repos, entries, links) = repos?;
    problems.extend(found);
    if listed == 0 && entries == 0 {
        let top = storage.list_dirs("")?;
        if top.dirs.is_empty() && top.files.is_empty() {
            return Err(super::nothing_here(&storage.describe()));
        }
    }
    table.finish(start);
    Ok((repos, links))
}

/// Lists `blobs/` as [`scan_blobs`](super::blobs::scan_blobs) does, in one recursive listing split
/// where [`blob_cuts`] says ([`ScanHints::list_split`]): a bucket of a few
/// hundred blobs takes one request instead of one per shard.
///
/// [`ScanHints::list_split`]: crate::storage::ScanHints::list_split
fn scan_blobs_flat(
    storage: &dyn Storage,
    problems: &mut Vec<Problem>,
    expected: &std::cell::Cell<usize>,
    mut out: impl FnMut(
        [u8; 32],
        Option<u64>,
        Option<SystemTime>,
        Option<Result<ContentHash, StorageError>>,
    ),
) -> Result<usize, StorageError> {
    let mut listed = 0usize;
    let mut other_dirs = std::collections::BTreeSet::new();
    let mut bad_shards = std::collections::BTreeSet::new();
    let mut top_files = Vec::new();
    let mut shard_files = Vec::new();
    // The shard being listed; each is handed on whole as the next begins,
    // its problems kept for after the listing's own.
    let mut shard: Option<(String, Vec<Entry>)> = None;
    let mut shard_problems = Vec::new();
    let errors = storage.list_split_each("blobs/", &blob_cuts, &mut |run, total| {
        if listed == 0 {
            expected.set(total);
        }
        listed += run.len();
        for e in run {
            let rest = &e.key["blobs/".len()..];
            match rest.split_once('/') {
                None => top_files.push(e),
                Some((d, _)) if d != "sha256" => {
                    other_dirs.insert(d.to_string());
                }
                Some((_, r)) => match r.split_once('/') {
                    None => shard_files.push(e),
                    Some((d, _)) if !(d.len() == 2 && lower_hex(d)) => {
                        bad_shards.insert(d.to_string());
                    }
                    Some((d, _)) => match &mut shard {
                        Some((p, v)) if p[13..15] == *d => v.push(e),
                        _ => {
                            if let Some((p, v)) = shard.take() {
                                shard_entries(&p, v, Vec::new(), &mut shard_problems, &mut out);
                            }
                            shard = Some((format!("blobs/sha256/{d}/"), vec![e]));
                        }
                    },
                },
            }
        }
    })?;
    if let Some((p, v)) = shard.take() {
        shard_entries(&p, v, Vec::new(), &mut shard_problems, &mut out);
    }
    problems.extend(errors.iter().map(storage_problem));
    // The problems of scan_blobs, in its order.
    for f in &top_files {
        problems
            .push(problem_for_entry(f).unwrap_or_else(|| stray_or_unexpected(&f.key, "blobs/")));
    }
    for d in other_dirs {
        problems.push(Problem::new(
            Kind::NonSha256Digest,
            Severity::Warning,
            format!("blobs/{d}/"),
            "blobs are stored only under sha256; this directory is not examined",
        ));
    }
    for f in &shard_files {
        problems.push(
            problem_for_entry(f).unwrap_or_else(|| stray_or_unexpected(&f.key, "blobs/sha256/")),
        );
    }
    for d in bad_shards {
        problems.push(Problem::new(
            Kind::BadDigestDirectory,
            Severity::Warning,
            format!("blobs/sha256/{d}/"),
            "not a two-hex-digit shard directory; not examined",
        ));
    }
    problems.append(&mut shard_problems);
    Ok(listed)
}

/// How many ranges to list the rest of a listing in, when it is estimated
/// at `pages` more pages: one (page after page) for a page or two; else as
/// many as are listed at once, up to one per page; and for a bucket of
/// more than 25 pages per request in flight, one range per 25 pages, so
/// that the pages that end ranges early stay within 4 % of all of them.
fn ranges_for(pages: f64, parallel: usize) -> usize {
    // (NaN too.)
    if pages.is_nan() || pages < 1.5 {
        return 1;
    }
    let pages = pages.min(1e7);
    (pages.ceil() as usize)
        .min(parallel.max(1))
        .max((pages / 25.0) as usize)
}

/// [`Cuts`](crate::storage::Cuts) for `blobs/`: digests are uniform, so
/// the share of the sha256 space that the first page covered (up to
/// `last`) tells how many pages are left; the rest of the space is cut
/// into [`ranges_for`] equal parts.
fn blob_cuts(last: &str, parallel: usize) -> Vec<String> {
    const SPACE: f64 = (1u64 << 32) as f64;
    let covered = match last.strip_prefix("blobs/sha256/") {
        // Before the sha256 space (other directories first): no estimate.
        None if last < "blobs/sha256/" => 0.0,
        None => return Vec::new(),
        Some(r) => {
            let hex: String = r
                .split('/')
                .nth(1)
                .unwrap_or(r)
                .chars()
                .take_while(|c| c.is_ascii_hexdigit())
                .take(8)
                .collect();
            if hex.is_empty() {
                return Vec::new();
            }
            let v = u64::from_str_radix(&hex, 16).unwrap_or(0) << (4 * (8 - hex.len()));
            (v as f64 + 1.0) / SPACE
        }
    };
    let pages = if covered > 0.0 {
        (1.0 - covered) / covered
    } else {
        f64::INFINITY
    };
    let n = if pages.is_finite() {
        ranges_for(pages, parallel)
    } else {
        parallel.max(1)
    };
    (1..n)
        .map(|i| {
            let x = covered + (1.0 - covered) * i as f64 / n as f64;
            let h = format!("{:08x}", ((x * SPACE) as u64).min(u32::MAX as u64));
            format!("blobs/sha256/{}/{h}", &h[..2])
        })
        .collect()
}

/// Lists `repositories/` in one recursive listing split where
/// [`repository_cuts`] says ([`ScanHints::list_split`]), and finds in it what
/// the filesystem's [`walk`](super::walk) finds by listing directory after
/// directory: the repositories (a directory with a `_manifests`, `_layers`
/// or `_uploads` child), the same problems, and each repository's parts.
/// A bucket of a few hundred links takes one request instead of four per
/// repository.
///
/// [`ScanHints::list_split`]: crate::storage::ScanHints::list_split
fn list_repositories_flat(
    storage: &dyn Storage,
    opts: &ScanOptions,
    blobs: Option<&crate::digest::Interner>,
    problems: &mut Vec<Problem>,
) -> Result<(Vec<RawRepo>, usize), StorageError> {
    // Each repository's parts, by name: a repository's keys all begin
    // `repositories/<name>/_`, so they come one after another in a listing,
    // and each is sorted as soon as the next begins. Directories that hold
    // something unexpected; files where directories were expected.
    let check = opts.check_links;
    let mut repos: Vec<(RawRepo, Vec<Problem>)> = Vec::new();
    let mut at: std::collections::HashMap<String, usize> = Default::default();
    let mut current: Option<(String, [Vec<Entry>; 3])> = None;
    let mut unexpected = std::collections::BTreeSet::new();
    let mut stray = Vec::new();
    let mut listed = 0usize;
    let mut flush =
        |name: String, parts: [Vec<Entry>; 3], repos: &mut Vec<(RawRepo, Vec<Problem>)>| {
            let i = *at.entry(name.clone()).or_insert_with(|| {
                repos.push((
                    RawRepo {
                        name,
                        ..Default::default()
                    },
                    Vec::new(),
                ));
                repos.len() - 1
            });
            let (repo, found) = &mut repos[i];
            repo.visible |= !parts[0].is_empty();
            for (entries, (sub, part)) in parts.into_iter().zip([
                ("_manifests", Part::Manifests),
                ("_layers", Part::Layers),
                ("_uploads", Part::Uploads),
            ]) {
                if entries.is_empty() {
                    continue;
                }
                let prefix = format!("repositories/{}/{sub}/", repo.name);
                let listing = crate::storage::Listing {
                    entries,
                    ..Default::default()
                };
                classify_listing(part, &prefix, repo, listing, check, found);
            }
            if let Some(interner) = blobs {
                repo.look_up_layers(interner);
            }
        };
    let errors = storage.list_split_each(
        "repositories/",
        &|last, parallel| repository_cuts(storage, last, parallel),
        &mut |run, _| {
            listed += run.len();
            for e in run {
                let rest = &e.key["repositories/".len()..];
                let comps: Vec<&str> = rest.split('/').collect();
                let dirs = &comps[..comps.len() - 1];
                // The first directory named `_…` ends the walk: its parent is a
                // repository when it is `_manifests`, `_layers` or `_uploads`.
                match dirs.iter().position(|d| d.starts_with('_')) {
                    None => stray.push(e),
                    Some(i) => {
                        let part = match dirs[i] {
                            "_manifests" => 0,
                            "_layers" => 1,
                            "_uploads" => 2,
                            _ => usize::MAX,
                        };
                        let name = dirs[..i].join("/");
                        if part == usize::MAX || name.is_empty() {
                            let parent = if name.is_empty() {
                                "repositories/".to_string()
                            } else {
                                format!("repositories/{name}/")
                            };
                            unexpected.insert(format!("{parent}{}/", dirs[i]));
                        } else {
                            match &mut current {
                                Some((n, parts)) if *n == name => parts[part].push(e),
                                _ => {
                                    if let Some((n, parts)) = current.take() {
                                        flush(n, parts, &mut repos);
                                    }
                                    let mut parts: [Vec<Entry>; 3] = Default::default();
                                    parts[part].push(e);
                                    current = Some((name, parts));
                                }
                            }
                        }
                    }
                }
            }
        },
    )?;
    if let Some((n, parts)) = current.take() {
        flush(n, parts, &mut repos);
    }
    // In the order of names, as the filesystem's walk finds them.
    repos.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    problems.extend(errors.iter().map(storage_problem));
    for (repo, _) in &repos {
        repository_problems(&repo.name, repo.visible, problems);
    }
    for f in &stray {
        problems.push(
            problem_for_entry(f).unwrap_or_else(|| stray_or_unexpected(&f.key, "repositories/")),
        );
    }
    for d in unexpected {
        problems.push(Problem::new(
            Kind::UnexpectedEntry,
            Severity::Warning,
            d,
            "unexpected directory; not examined",
        ));
    }
    let mut out = Vec::with_capacity(repos.len());
    for (repo, mut found) in repos {
        problems.append(&mut found);
        out.push(repo);
    }
    Ok((out, listed))
}

/// [`Cuts`](crate::storage::Cuts) for `repositories/`: the names of the
/// directories at the level where the rest of the listing spreads over
/// several of them (one `/`-delimited listing per level: the top, or one
/// level down where a single namespace holds the rest), the share of them
/// the first page covered telling how many pages are left ([`ranges_for`]).
/// Ranges begin at names spread evenly over those not listed yet.
fn repository_cuts(storage: &dyn Storage, last: &str, parallel: usize) -> Vec<String> {
    let mut dir = "repositories/".to_string();
    for _ in 0..4 {
        let Some((cur, _)) = last
            .strip_prefix(dir.as_str())
            .and_then(|r| r.split_once('/'))
        else {
            return Vec::new();
        };
        if cur.starts_with('_') {
            return Vec::new();
        }
        let Ok(listing) = storage.list_dirs(&dir) else {
            return Vec::new();
        };
        let names: Vec<&String> = listing
            .dirs
            .iter()
            .filter(|d| !d.starts_with('_'))
            .collect();
        let done = names.partition_point(|n| n.as_str() <= cur);
        let later = &names[done..];
        if later.is_empty() {
            // Everything left is inside `cur`.
            dir = format!("{dir}{cur}/");
            continue;
        }
        let pages = later.len() as f64 / (done as f64 - 0.5).max(0.5);
        let n = ranges_for(pages, parallel).min(later.len() + 1);
        return (1..n)
            .map(|i| format!("{dir}{}", later[(i - 1) * later.len() / (n - 1)]))
            .collect();
    }
    Vec::new()
}
