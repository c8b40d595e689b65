//! The filesystem's shallow listing of repositories: the directories whose
//! names are digests (revisions, layer links, tag history) are listed
//! without being entered, and the files that matter inside them are probed
//! relative to the directory the storage has open. Step by step: plan the
//! prefixes ([`Prefixes::of`]), then layers ([`list_layers`]), revisions
//! ([`list_revisions`]), tags ([`list_tags`]) and uploads
//! ([`list_uploads`]), in that order (the order of the problems found).

use super::aliases::alias_digest;
use super::classify::classify_uploads;
use super::layout::{hex_dir_at, problem_for_entry, storage_problem, stray_or_unexpected};
use super::raw::RawRepo;
use super::walk::{in_batches, LIST_BATCH};
use super::ScanOptions;
use crate::digest::SHA256_DIGEST_LEN;
use crate::problem::Problem;
use crate::storage::{
    DigestListing, DirListing, FsFastPaths, Meta, Probe, Probed, StorageError, StorageExt,
};
use std::collections::HashMap;

/// What [`each`] does with one listing of a repository's
/// prefix.
type ListingHandler<'a> = dyn FnMut(&str, &mut RawRepo, DirListing, &mut Vec<Problem>) + 'a;

/// What [`each_digest`] does with each digest listing.
type DigestHandler<'a> = dyn FnMut(&str, &mut RawRepo, DigestListing, &mut Vec<Problem>) + 'a;

/// Lists the prefixes of `list` (each with the index of its repository) in
/// batches with `lister`, and hands each listing to `f` with its prefix and
/// repository; a prefix that cannot be listed is a problem.
fn each_listing<T: Send>(
    repos: &mut [RawRepo],
    problems: &mut Vec<Problem>,
    list: &[(String, usize)],
    lister: impl Fn(&[String]) -> Vec<Result<T, StorageError>> + Sync,
    mut f: impl FnMut(&str, &mut RawRepo, T, &mut Vec<Problem>),
) {
    let prefixes: Vec<String> = list.iter().map(|(p, _)| p.clone()).collect();
    in_batches(&prefixes, LIST_BATCH, lister, |n, res| {
        let (prefix, i) = (&list[n].0, list[n].1);
        match res {
            Ok(listing) => f(prefix, &mut repos[i], listing, problems),
            Err(e) => problems.push(storage_problem(&e)),
        }
    });
}

/// Lists the directories whose names are digests (revisions, layer links,
/// tag history) without entering them. The storage probes inside each one
/// relative to the open directory: a revision's `link` is stat'ed (an API
/// delete removes the link and leaves the directory), a tag's
/// `current/link` is read. Uploads are listed in full.
pub(super) fn list_repositories_shallow(
    storage: &dyn FsFastPaths,
    names: Vec<(String, bool, bool, bool)>,
    opts: &ScanOptions,
    problems: &mut Vec<Problem>,
) -> Vec<RawRepo> {
    let (mut repos, prefixes) = Prefixes::of(names);
    list_layers(storage, &mut repos, &prefixes.layers, opts, problems);
    list_revisions(storage, &mut repos, &prefixes.revisions, opts, problems);
    list_tags(storage, &mut repos, &prefixes.tags, opts, problems);
    list_uploads(storage, &mut repos, &prefixes, problems);
    repos
}

/// What a shallow listing lists of each repository, each prefix with the
/// index of its repository.
#[derive(Default)]
struct Prefixes {
    /// `_manifests/revisions/sha256/`.
    revisions: Vec<(String, usize)>,
    /// `_manifests/tags/`.
    tags: Vec<(String, usize)>,
    /// `_layers/`.
    layers: Vec<(String, usize)>,
    /// `_uploads/`.
    uploads: Vec<String>,
    /// The repository of each of `uploads`.
    upload_owner: Vec<usize>,
}

impl Prefixes {
    /// The repositories of `names` (as
    /// [`discover_repositories`](super::walk::discover_repositories) found
    /// them), still empty, and the prefixes to list of each.
    fn of(names: Vec<(String, bool, bool, bool)>) -> (Vec<RawRepo>, Prefixes) {
        let mut repos: Vec<RawRepo> = Vec::with_capacity(names.len());
        let mut p = Prefixes::default();
        for (i, (name, m, l, u)) in names.into_iter().enumerate() {
            if m {
                p.revisions.push((
                    format!("repositories/{name}/_manifests/revisions/sha256/"),
                    i,
                ));
                p.tags
                    .push((format!("repositories/{name}/_manifests/tags/"), i));
            }
            if l {
                p.layers.push((format!("repositories/{name}/_layers/"), i));
            }
            if u {
                p.uploads.push(format!("repositories/{name}/_uploads/"));
                p.upload_owner.push(i);
            }
            repos.push(RawRepo {
                name,
                visible: m,
                ..Default::default()
            });
        }
        (repos, p)
    }
}

/// Files directly in a digest-directory level are unexpected.
fn strays(listing: &DirListing, prefix: &str, problems: &mut Vec<Problem>) {
    for f in &listing.files {
        problems.push(problem_for_entry(f).unwrap_or_else(|| stray_or_unexpected(&f.key, prefix)));
    }
}

/// Lists the prefixes of `list` with `probes` applied in each child
/// directory; files directly in them are problems, the listings go to `f`.
fn each(
    storage: &dyn FsFastPaths,
    repos: &mut [RawRepo],
    problems: &mut Vec<Problem>,
    list: &[(String, usize)],
    probes: &[Probe<'_>],
    f: &mut ListingHandler<'_>,
) {
    let lister = |chunk: &[String]| storage.list_dirs_probe_many(chunk, probes);
    each_listing(
        repos,
        problems,
        list,
        lister,
        |prefix, repo, l, problems| {
            strays(&l, prefix, problems);
            f(prefix, repo, l, problems);
        },
    );
}

/// Lists directories of digest directories: names other than digests are
/// problems (keyed `<prefix><name>/link`), the digests go to `f`.
fn each_digest(
    storage: &dyn FsFastPaths,
    repos: &mut [RawRepo],
    problems: &mut Vec<Problem>,
    list: &[(String, usize)],
    probes: &[Probe<'_>],
    f: &mut DigestHandler<'_>,
) {
    let lister = |chunk: &[String]| storage.list_digest_dirs_many(chunk, probes);
    each_listing(
        repos,
        problems,
        list,
        lister,
        |prefix, repo, l, problems| {
            strays(&l.rest, prefix, problems);
            for d in &l.rest.dirs {
                hex_dir_at(d, || format!("{prefix}{d}/link"), problems);
            }
            f(prefix, repo, l, problems);
        },
    );
}

/// Lists `_layers/`: it holds `sha256/` and, for blobs pushed by a sha384
/// or sha512 digest, alias directories whose links name the sha256 blob
/// (read while listing).
fn list_layers(
    storage: &dyn FsFastPaths,
    repos: &mut [RawRepo],
    layers: &[(String, usize)],
    opts: &ScanOptions,
    problems: &mut Vec<Problem>,
) {
    let max_link_size = opts.max_link_size;
    let owner: HashMap<&str, usize> = layers.iter().map(|(p, i)| (p.as_str(), *i)).collect();
    let (mut sha256_layers, mut alias_layers) = (Vec::new(), Vec::new());
    each(
        storage,
        repos,
        problems,
        layers,
        &[],
        &mut |prefix, _, listing, _| {
            let i = owner[prefix];
            for alg in listing.dirs {
                let dirs = if alg == "sha256" {
                    &mut sha256_layers
                } else {
                    &mut alias_layers
                };
                dirs.push((format!("{prefix}{alg}/"), i));
            }
        },
    );
    each_digest(
        storage,
        repos,
        problems,
        &sha256_layers,
        &[],
        &mut |_, repo, listing, _| {
            if repo.layers.is_empty() {
                repo.layers = listing.digests;
            } else {
                repo.layers.extend(listing.digests);
            }
        },
    );
    each(
        storage,
        repos,
        problems,
        &alias_layers,
        &[Probe::Read("link", max_link_size)],
        &mut |prefix, repo, listing, problems| {
            let alg = prefix
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default();
            for (d, probed) in listing.dirs.iter().zip(listing.probes) {
                let key = format!("{prefix}{d}/link");
                let Some(alias) = alias_digest(alg, d, &key, problems) else {
                    continue;
                };
                let content = match probed {
                    Ok(Probed::Content(c)) => Ok(c),
                    Ok(_) => Err(StorageError::NotAFile { key: key.clone() }),
                    Err(e) => Err(e),
                };
                repo.aliases.push((key, alias, Some(content)));
            }
        },
    );
}

/// Lists `_manifests/revisions/sha256/`: each revision's `link` is stat'ed
/// (an API delete removes the link and leaves the directory); one of an
/// unexpected size is read later.
fn list_revisions(
    storage: &dyn FsFastPaths,
    repos: &mut [RawRepo],
    revs: &[(String, usize)],
    opts: &ScanOptions,
    problems: &mut Vec<Problem>,
) {
    let link_times = opts.link_times;
    each_digest(
        storage,
        repos,
        problems,
        revs,
        &[Probe::Stat("link")],
        &mut |prefix, repo, listing, problems| {
            repo.revisions.reserve_exact(listing.digests.len());
            if link_times {
                repo.revision_times.reserve_exact(listing.digests.len());
            }
            for (h, probed) in listing.digests.into_iter().zip(listing.probes) {
                let key = || format!("{prefix}{}/link", crate::digest::hex(&h));
                if let (
                    true,
                    Ok(Probed::Meta(Meta {
                        modified: Some(t), ..
                    })),
                ) = (link_times, &probed)
                {
                    repo.revision_times.push((h, *t));
                }
                match probed {
                    Ok(Probed::Meta(m)) if m.size == SHA256_DIGEST_LEN as u64 => {
                        repo.revisions.push(h)
                    }
                    Ok(_) => {
                        repo.revisions.push(h);
                        repo.revision_links_to_check.push((key(), h));
                    }
                    // The directory of a deleted manifest: not a revision.
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        problems.push(storage_problem(&e));
                        repo.revisions.push(h);
                    }
                }
            }
        },
    );
}

/// Lists `_manifests/tags/`: each tag's `current/link` is read, and with
/// [`ScanOptions::tag_history`] its `index/sha256/` listed, with
/// [`ScanOptions::tag_times`] its `current/link` stat'ed.
fn list_tags(
    storage: &dyn FsFastPaths,
    repos: &mut [RawRepo],
    tags: &[(String, usize)],
    opts: &ScanOptions,
    problems: &mut Vec<Problem>,
) {
    let (max_link_size, link_times) = (opts.max_link_size, opts.link_times && opts.tag_times);
    let history = opts.tag_history;
    let mut tag_probes = vec![Probe::Read("current/link", max_link_size)];
    if history {
        tag_probes.push(Probe::List("index/sha256"));
    }
    if link_times {
        tag_probes.push(Probe::Stat("current/link"));
    }
    each(
        storage,
        repos,
        problems,
        tags,
        &tag_probes,
        &mut |prefix, repo, listing, problems| {
            let mut probes = listing.probes.into_iter();
            for d in &listing.dirs {
                let current = probes.next();
                let index = if history {
                    probes.next().expect("a probe of index/ per tag")
                } else {
                    Ok(Probed::Listing(DirListing::default()))
                };
                // A link that cannot be stat'ed here is left to `times`.
                let modified = if link_times {
                    match probes.next().expect("a stat of current/link per tag") {
                        Ok(Probed::Meta(m)) => m.modified,
                        _ => None,
                    }
                } else {
                    None
                };
                let key = format!("{prefix}{d}/current/link");
                let content = match current.expect("a probe of current/link per tag") {
                    Ok(Probed::Content(c)) => Ok(c),
                    Ok(_) => Err(StorageError::NotAFile { key: key.clone() }),
                    Err(e) => Err(e),
                };
                let t = repo.tags.entry(d.clone()).or_default();
                t.current = Some(key);
                t.content = Some(content);
                t.modified = modified;
                let index_prefix = format!("{prefix}{d}/index/sha256/");
                match index {
                    Ok(Probed::Listing(history)) => {
                        strays(&history, &index_prefix, problems);
                        for h in &history.dirs {
                            let key = || format!("{index_prefix}{h}/link");
                            if let Some(h) = hex_dir_at(h, key, problems) {
                                t.history.push(h);
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => problems.push(storage_problem(&e)),
                }
            }
        },
    );
}

/// Lists `_uploads/` in full, with sizes.
fn list_uploads(
    storage: &dyn FsFastPaths,
    repos: &mut [RawRepo],
    prefixes: &Prefixes,
    problems: &mut Vec<Problem>,
) {
    for ((prefix, &i), res) in prefixes
        .uploads
        .iter()
        .zip(&prefixes.upload_owner)
        .zip(storage.list_many(&prefixes.uploads, true))
    {
        match res {
            Ok(listing) => {
                problems.extend(listing.errors.iter().map(storage_problem));
                for e in &listing.entries {
                    if let Some(p) = problem_for_entry(e) {
                        problems.push(p);
                        continue;
                    }
                    classify_uploads(&mut repos[i], e, &e.key[prefix.len()..], problems);
                }
            }
            Err(e) => problems.push(storage_problem(&e)),
        }
    }
}
