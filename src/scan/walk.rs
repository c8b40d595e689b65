//! The filesystem's walk: directory by directory, with the batched
//! listings of its fast paths. Blobs first ([`scan_blobs`]), then the
//! repositories, found breadth first ([`discover_repositories`]), and
//! their parts: shallow ([`list_repositories_shallow`]) unless the scan is
//! deep, in full ([`list_repositories_deep`]) otherwise.

use super::blobs::{scan_blobs, BlobTable};
use super::classify::{classify_listing, Part};
use super::layout::{problem_for_entry, repository_problems, storage_problem, stray_or_unexpected};
use super::raw::RawRepo;
use super::shallow::list_repositories_shallow;
use super::ScanOptions;
use crate::problem::{Kind, Problem, Severity};
use crate::progress::Progress;
use crate::storage::{Fetch, FsFastPaths, StorageError, StorageExt};

/// Lists a filesystem's registry, with its fast paths: `blobs/` into `table`, then every
/// repository. Fails when the root holds nothing at all, or when
/// `blobs/` or `repositories/` cannot be listed.
pub(super) fn list(
    storage: &dyn FsFastPaths,
    opts: &ScanOptions,
    progress: &Progress,
    table: &mut BlobTable,
    problems: &mut Vec<Problem>,
) -> Result<Vec<RawRepo>, StorageError> {
    let top = storage.list_dirs("")?;
    if top.dirs.is_empty() && top.files.is_empty() {
        return Err(super::nothing_here(&storage.describe()));
    }
    let shallow = !opts.deep;
    let hash = table.hash;
    if hash {
        // Hashed while listed: bytes and rate (the total is known only at
        // the end of the listing).
        progress.phase_bytes("listing and hashing blobs");
    } else {
        progress.phase("listing blobs");
    }
    let start = std::time::Instant::now();
    let (expected, mut record) = table.recorder();
    let record =
        move |h: [u8; 32],
              size: Option<u64>,
              modified: Option<std::time::SystemTime>,
              hashed: Option<Result<crate::storage::hash::ContentHash, StorageError>>| {
            if let Some(Ok(c)) = &hashed {
                progress.inc(c.size);
            }
            record(h, size, modified, hashed)
        };
    scan_blobs(storage, shallow, hash, problems, expected, record)?;
    table.finish(start);
    progress.phase("listing repositories");
    let names = discover_repositories(storage, problems)?;
    progress.phase("listing repository links");
    Ok(if shallow {
        list_repositories_shallow(storage, names, opts, problems)
    } else {
        list_repositories_deep(storage, names, opts, problems)
    })
}

/// Prefixes listed per concurrent batch: bounds the memory that listings
/// hold at once.
pub(super) const LIST_BATCH: usize = 128;

/// `list` over `prefixes` in concurrent batches of `batch`, on another
/// thread, one batch ahead of `f`, which gets each result with its index in
/// `prefixes`: the caller's own work (parsing names, interning digests)
/// overlaps the listing.
pub(super) fn in_batches<T: Send>(
    prefixes: &[String],
    batch: usize,
    list: impl Fn(&[String]) -> Vec<T> + Sync,
    mut f: impl FnMut(usize, T),
) {
    let mut hand_over = |b: usize, results: Vec<T>| {
        for (i, res) in results.into_iter().enumerate() {
            f(b * batch + i, res);
        }
    };
    if prefixes.len() <= batch {
        hand_over(0, list(prefixes));
        return;
    }
    std::thread::scope(|s| {
        // One batch waits in the channel at most: memory stays bounded.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let list = &list;
        s.spawn(move || {
            for (b, chunk) in prefixes.chunks(batch).enumerate() {
                if tx.send((b, list(chunk))).is_err() {
                    return;
                }
            }
        });
        for (b, results) in rx {
            hand_over(b, results);
        }
    });
}

/// Finds every repository below `repositories/`, breadth first, one
/// concurrent batch of directory listings per level. Returns, sorted, each
/// repository's name and whether it has `_manifests`, `_layers`, `_uploads`.
pub(super) fn discover_repositories(
    storage: &dyn FsFastPaths,
    problems: &mut Vec<Problem>,
) -> Result<Vec<(String, bool, bool, bool)>, StorageError> {
    // Fail the run when the top cannot be listed at all.
    let root = storage.list_dirs("repositories/")?;
    let mut found = Vec::new();
    let mut level: Vec<String> = Vec::new();
    let mut pending = vec![("repositories/".to_string(), Ok(root))];
    loop {
        for (prefix, res) in pending.drain(..) {
            let listing = match res {
                Ok(l) => l,
                Err(e) => {
                    problems.push(storage_problem(&e));
                    continue;
                }
            };
            let name = prefix["repositories/".len()..]
                .trim_end_matches('/')
                .to_string();
            let has = |d: &str| listing.dirs.iter().any(|x| x == d);
            let (m, l, u) = (has("_manifests"), has("_layers"), has("_uploads"));
            if !name.is_empty() && (m || l || u) {
                repository_problems(&name, m, problems);
                found.push((name.clone(), m, l, u));
            }
            for f in &listing.files {
                problems.push(
                    problem_for_entry(f)
                        .unwrap_or_else(|| stray_or_unexpected(&f.key, "repositories/")),
                );
            }
            for d in &listing.dirs {
                if d.starts_with('_') {
                    if !matches!(d.as_str(), "_manifests" | "_layers" | "_uploads")
                        || name.is_empty()
                    {
                        problems.push(Problem::new(
                            Kind::UnexpectedEntry,
                            Severity::Warning,
                            format!("{prefix}{d}/"),
                            "unexpected directory; not examined",
                        ));
                    }
                } else {
                    level.push(format!("{prefix}{d}/"));
                }
            }
        }
        if level.is_empty() {
            break;
        }
        let results = storage.list_dirs_many(&level);
        pending.extend(level.drain(..).zip(results));
    }
    found.sort();
    Ok(found)
}

/// Lists every part of each repository of `names` (as
/// [`discover_repositories`] found them) in full, reading the link files
/// whose content matters as the walk passes them.
fn list_repositories_deep(
    storage: &dyn FsFastPaths,
    names: Vec<(String, bool, bool, bool)>,
    opts: &ScanOptions,
    problems: &mut Vec<Problem>,
) -> Vec<RawRepo> {
    let mut parts: [(Part, Vec<(String, usize)>); 3] = [
        (Part::Manifests, Vec::new()),
        (Part::Layers, Vec::new()),
        (Part::Uploads, Vec::new()),
    ];
    for (i, (name, m, l, u)) in names.iter().enumerate() {
        for (present, sub, part) in [(m, "_manifests", 0), (l, "_layers", 1), (u, "_uploads", 2)] {
            if *present {
                parts[part]
                    .1
                    .push((format!("repositories/{name}/{sub}/"), i));
            }
        }
    }
    let mut repos: Vec<RawRepo> = names
        .into_iter()
        .map(|(name, visible, _, _)| RawRepo {
            name,
            visible,
            ..Default::default()
        })
        .collect();
    let check = opts.check_links;
    let link = Fetch {
        read: Some(("link", opts.max_link_size)),
        hash: None,
    };
    for (part, list) in &parts {
        // Uploads need sizes; links do not (a filesystem would stat each
        // one). Links are read while listing where the backend can: tags'
        // current links and revision links always, layer links to check them.
        let (want_meta, fetch) = match part {
            Part::Manifests => (false, link),
            Part::Layers if check => (false, link),
            Part::Layers => (false, Fetch::default()),
            Part::Uploads => (true, Fetch::default()),
        };
        for chunk in list.chunks(LIST_BATCH) {
            let prefixes: Vec<String> = chunk.iter().map(|(p, _)| p.clone()).collect();
            let results = if fetch.is_empty() {
                storage.list_many(&prefixes, want_meta)
            } else {
                storage.list_fetching_many(&prefixes, want_meta, fetch)
            };
            for ((prefix, i), res) in chunk.iter().zip(results) {
                match res {
                    Ok(l) => classify_listing(*part, prefix, &mut repos[*i], l, check, problems),
                    Err(e) => problems.push(storage_problem(&e)),
                }
            }
        }
    }
    repos
}
