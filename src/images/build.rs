//! Building the `images` listing from an analysis: each visible
//! repository's manifests as entries (what each needs and would free, its
//! tags, times and status), the repository's totals, and the storage
//! summary; and, before that, reading the image configs the rows show.

use super::{
    pulls, Configs, Entry, Flag, Images, ImagesOptions, RepoRow, RowKind, Source, Status, Summary,
    ACTIVE_WITHIN,
};
use crate::describe::Description;
use crate::manifest::Kind as ManifestKind;
use crate::reach::{self, Closure, Counts, RepoRootIndex};
use crate::storage::StorageExt;
use crate::times::LinkTimes;
use crate::Analysis;
use rayon::prelude::*;
use roaring::RoaringBitmap;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

/// Reads the config blobs of image manifests (up to 64 KiB each) for their
/// platform and creation time. Unreadable or odd configs are skipped: they
/// only leave a row's platform empty.
///
/// With `record_sizes`, this runs before the blob sizes are stat'ed: a
/// config whose size was not read from storage yet is read whatever its
/// declared size (a larger one fails the read and is left alone), and the
/// length of each config read whole is recorded as its stored size, as the
/// graph does for manifests, so that [`crate::scan::fill_blob_stats`] need
/// not stat it again. Without it, the sizes known (stat'ed, or declared)
/// choose which configs are read.
pub fn read_configs(
    storage: &dyn crate::storage::Storage,
    a: &mut Analysis,
    record_sizes: bool,
) -> Configs {
    const LIMIT: u64 = 64 << 10;
    let inv = &a.inventory;
    let mut ids: Vec<u32> = a
        .graph
        .nodes
        .iter()
        .filter(|(id, n)| {
            n.kind == Some(ManifestKind::Image)
                && !a
                    .graph
                    .descriptions
                    .get(id)
                    .is_some_and(Description::is_artifact)
        })
        .filter_map(|(_, n)| n.blobs.first().copied())
        .filter(|&c| {
            inv.blob(c).is_some_and(|b| {
                (b.size <= LIMIT || (record_sizes && !b.stat && !b.read)) && !inv.absent.contains(c)
            })
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut out = Configs::with_capacity(ids.len());
    for chunk in ids.chunks(8192) {
        let keys: Vec<String> = chunk
            .par_iter()
            .map(|&id| a.inventory.interner.data_key(id))
            .collect();
        // Parsed on the thread that read it; each slot holds the length
        // read and what the config told.
        type Slot = (u64, Option<crate::describe::ImageConfig>);
        let slots: Vec<std::sync::OnceLock<Slot>> =
            std::iter::repeat_with(std::sync::OnceLock::new)
                .take(chunk.len())
                .collect();
        storage.read_each(&keys, LIMIT, &|i, res| {
            if let Ok(b) = res {
                let _ = slots[i].set((b.len() as u64, crate::describe::image_config(&b)));
            }
        });
        for (&id, slot) in chunk.iter().zip(slots) {
            let Some((len, config)) = slot.into_inner() else {
                continue;
            };
            if record_sizes {
                if let Some(b) = a.inventory.blobs.get_mut(id as usize) {
                    if !b.stat && !b.read {
                        b.size = len;
                        b.read = true;
                    }
                }
            }
            if let Some(c) = config {
                out.insert(id, c);
            }
        }
    }
    out
}

/// Bytes stored for an id (0 when it is not a stored blob).
fn stored_size(a: &Analysis, id: u32) -> u64 {
    match a.inventory.blob(id) {
        Some(b) if !a.inventory.absent.contains(id) => b.size,
        _ => 0,
    }
}

fn bytes_of(a: &Analysis, ids: impl IntoIterator<Item = u32>) -> u64 {
    crate::report::sum_bytes(ids.into_iter().map(|id| stored_size(a, id)))
}

/// Builds the listing. `a` must come from a `--delete-untagged` mark with a
/// graph that kept descriptions.
pub fn build<'a>(
    a: &'a Analysis,
    times: &'a LinkTimes,
    pulls: Option<&pulls::Pulls>,
    configs: &'a Configs,
    opts: &ImagesOptions,
) -> Images<'a> {
    let inv = &a.inventory;
    let nodes = &a.graph.nodes;
    let counts = Counts::of(&a.marked.repo_refs);
    // Problems of manifests, by the key of their data.
    let mut problems_by_key: HashMap<&str, Vec<&str>> = HashMap::new();
    for p in &inv.problems {
        if p.path.starts_with("blobs/") {
            problems_by_key
                .entry(p.path.as_str())
                .or_default()
                .push(p.message.as_str());
        }
    }
    let visible: Vec<(usize, &crate::scan::Repository)> = inv
        .repos
        .iter()
        .enumerate()
        .filter(|(_, r)| r.visible)
        .collect();
    // Each repository's rows: its revisions and its tags' targets.
    let rows_of: Vec<Vec<u32>> = visible
        .par_iter()
        .map(|(_, r)| {
            let mut ids: Vec<u32> = r.revisions.clone();
            ids.extend(r.tags.iter().filter_map(|t| t.current));
            ids.sort_unstable();
            ids.dedup();
            ids
        })
        .collect();
    // Every row written in place: the listing is never held twice.
    let mut entries: Vec<Entry> = Vec::new();
    entries.resize_with(rows_of.iter().map(Vec::len).sum(), Entry::default);
    let mut slots: Vec<&mut [Entry]> = Vec::with_capacity(rows_of.len());
    let mut rest = entries.as_mut_slice();
    for ids in &rows_of {
        let (mine, after) = rest.split_at_mut(ids.len());
        slots.push(mine);
        rest = after;
    }
    let per_repo: Vec<(RepoRow, RoaringBitmap)> = visible
        .into_par_iter()
        .zip(rows_of)
        .zip(slots)
        .map(|(((ri, r), ids), out)| {
            let refs = reach::referrers(&r.revisions, nodes);
            let mut roots: Vec<u32> = r.tags.iter().filter_map(|t| t.current).collect();
            roots.sort_unstable();
            roots.dedup();
            let index = RepoRootIndex::new(roots, nodes, &refs);
            let seen = reach::tags_seen(r, nodes, &inv.interner);
            let mine = &a.marked.repo_refs[ri];
            let live = &a.marked.live_manifests[ri];
            let rt = times.repos.get(ri);
            // Tags by the manifest they name, each list sorted by tag name.
            let mut tags_of: HashMap<u32, Vec<u32>> = HashMap::new();
            for (ti, t) in r.tags.iter().enumerate() {
                if let Some(c) = t.current {
                    tags_of.entry(c).or_default().push(ti as u32);
                }
            }
            for v in tags_of.values_mut() {
                v.sort_by(|&x, &y| r.tags[x as usize].name.cmp(&r.tags[y as usize].name));
            }
            // Every closure's ids, made sets once at the end.
            let (mut held, mut held_all) = (Vec::new(), Vec::new());
            for (slot, m) in out.iter_mut().zip(ids) {
                let c: Closure = reach::closure(m, nodes, &refs);
                held.extend_from_slice(&c.own);
                held_all.extend_from_slice(&c.all);
                let freed = index.freed_by_delete(m, &c, &seen, |id| counts.elsewhere(id, mine));
                let revision = r.revisions.binary_search(&m).is_ok();
                let mut e = Entry {
                    repo: ri as u32,
                    id: m,
                    kind: kind_of(a, m),
                    tags: tags_of.remove(&m).unwrap_or_default(),
                    size: bytes_of(a, c.own.iter().copied()),
                    reclaimable_bytes: bytes_of(a, freed.iter().copied()),
                    pushed_at: rt.and_then(|rt| rt.revisions.get(&m).copied()),
                    last_pulled_at: None,
                    pulled_by_digest_at: None,
                    flag_bits: 0,
                    revision,
                    problems: Vec::new(),
                };
                if !revision {
                    e.problems.push(format!(
                        "tagged but has no revision link in {}: the registry cannot serve it",
                        r.name
                    ));
                }
                if !problems_by_key.is_empty() {
                    if let Some(ps) = problems_by_key.get(inv.interner.data_key(m).as_str()) {
                        e.problems.extend(ps.iter().map(|s| s.to_string()));
                    }
                }
                if let Some(p) = pulls {
                    let t = p.of(ri, m, nodes.get(&m), nodes);
                    e.last_pulled_at = t.any;
                    e.pulled_by_digest_at = t.by_digest;
                }
                e.flag_bits = flags(&e, live.contains(m), opts);
                *slot = e;
            }
            let entries: &[Entry] = out;
            let set = |mut ids: Vec<u32>| {
                ids.sort_unstable();
                ids.dedup();
                RoaringBitmap::from_sorted_iter(ids).expect("sorted ids")
            };
            let (held, held_all) = (set(held), set(held_all));
            // The whole repository: what it holds that no other needs.
            let freed_repo = held_all
                .iter()
                .filter(|&id| !counts.elsewhere(id, mine))
                .map(|id| stored_size(a, id))
                .fold(0, crate::report::add_bytes);
            let repo = RepoRow {
                name: r.name.clone(),
                images: entries.len(),
                tags: r.tags.len(),
                size: bytes_of(a, held.iter()),
                reclaimable_bytes: freed_repo,
                last_pushed_at: entries.iter().filter_map(|e| e.pushed_at).max(),
                last_pulled_at: entries.iter().filter_map(|e| e.last_pulled_at).max(),
                ..Default::default()
            };
            (repo, held)
        })
        .collect();
    let held_counts = Counts::of(per_repo.iter().map(|(_, h)| h));
    let mut repos = Vec::with_capacity(per_repo.len());
    for (mut repo, h) in per_repo {
        let shared = &h & &held_counts.twice;
        repo.shared_bytes = bytes_of(a, shared.iter());
        repo.unique_bytes = repo.size.saturating_sub(repo.shared_bytes);
        repos.push(repo);
    }
    let summary = summarize(a, &entries, &repos, &held_counts.once);
    Images {
        generated_at: opts.now,
        storage: inv.storage.clone(),
        entries,
        repositories: repos,
        summary,
        access_logs: pulls.map(|p| p.summary.clone()),
        source: Source {
            analysis: a,
            times,
            configs,
        },
    }
}

/// What a manifest is, from its node and description.
fn kind_of(a: &Analysis, m: u32) -> RowKind {
    let desc = a.graph.descriptions.get(&m);
    match a.graph.nodes.get(&m) {
        None => RowKind::Unknown,
        Some(n) if n.kind.is_none() => RowKind::Unknown,
        Some(n) if n.subject.is_some() => RowKind::Referrer,
        Some(n) => match n.kind {
            Some(ManifestKind::Index) => RowKind::Index,
            Some(ManifestKind::Artifact) => RowKind::Artifact,
            _ if desc.is_some_and(Description::is_artifact) => RowKind::Artifact,
            _ => RowKind::Image,
        },
    }
}

/// The flags of an entry (`live`: the `--delete-untagged` mark keeps it).
fn flags(e: &Entry, live: bool, opts: &ImagesOptions) -> u8 {
    let mut out = 0u8;
    let within = |t: Option<SystemTime>, d: Duration| {
        t.is_some_and(|t| opts.now.duration_since(t).map_or(true, |age| age <= d))
    };
    if within(e.pushed_at, ACTIVE_WITHIN) || within(e.last_pulled_at, ACTIVE_WITHIN) {
        out |= 1 << Flag::Active as u8;
    }
    let last_use = e.last_pulled_at.or(e.pushed_at);
    if last_use.is_some() && !within(last_use, opts.stale_after) {
        out |= 1 << Flag::Stale as u8;
    }
    if !live {
        out |= 1 << Flag::Untagged as u8 | 1 << Flag::Garbage as u8;
    }
    out
}

fn summarize(a: &Analysis, rows: &[Entry], repos: &[RepoRow], held: &RoaringBitmap) -> Summary {
    let inv = &a.inventory;
    let stored = inv.stored_blobs();
    let referenced = bytes_of(a, held.iter());
    let sum = crate::report::sum_bytes(rows.iter().map(|r| r.size));
    let garbage = &stored - &a.marked.blobs;
    let mut by_kind = BTreeMap::new();
    let mut by_status = BTreeMap::new();
    // Names as the rows' JSON spells them.
    let name = |v: serde_json::Result<serde_json::Value>| {
        v.ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let mut kinds = [0usize; 5];
    let mut statuses = [0usize; Status::ALL.len()];
    for r in rows {
        kinds[r.kind as usize] += 1;
        statuses[r.status() as usize] += 1;
    }
    let all_kinds = [
        RowKind::Image,
        RowKind::Index,
        RowKind::Artifact,
        RowKind::Referrer,
        RowKind::Unknown,
    ];
    for k in all_kinds {
        if kinds[k as usize] > 0 {
            by_kind.insert(name(serde_json::to_value(k)), kinds[k as usize]);
        }
    }
    for s in Status::ALL {
        if statuses[s as usize] > 0 {
            by_status.insert(s.as_str().to_string(), statuses[s as usize]);
        }
    }
    Summary {
        repositories: repos.len(),
        images: rows.len(),
        by_kind,
        tags: repos.iter().map(|r| r.tags).sum(),
        stored_blobs: stored.len() as usize,
        stored_bytes: bytes_of(a, stored.iter()),
        referenced_bytes: referenced,
        sum_of_image_sizes: sum,
        deduplication_ratio: if referenced == 0 {
            0.0
        } else {
            sum as f64 / referenced as f64
        },
        garbage_bytes: bytes_of(a, garbage.iter()),
        by_status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One word per row, by precedence, for every age: an image between
    /// 30 days and `--stale-after` is `idle`, not blank.
    #[test]
    fn every_row_has_one_status_word() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let opts = ImagesOptions {
            stale_after: Duration::from_secs(180 * 86_400),
            now,
        };
        let days = |d: u64| Some(now - Duration::from_secs(d * 86_400));
        let word = |pushed, pulled, live, problem: bool| {
            let mut e = Entry {
                pushed_at: pushed,
                last_pulled_at: pulled,
                problems: if problem {
                    vec!["unreadable".into()]
                } else {
                    vec![]
                },
                ..Entry::default()
            };
            e.flag_bits = flags(&e, live, &opts);
            e.status()
        };
        assert_eq!(word(days(1), None, true, false), Status::Active);
        assert_eq!(word(days(100), days(2), true, false), Status::Active);
        assert_eq!(word(days(100), None, true, false), Status::Idle);
        assert_eq!(word(days(400), days(60), true, false), Status::Idle);
        assert_eq!(word(days(400), None, true, false), Status::Stale);
        assert_eq!(word(days(400), days(200), true, false), Status::Stale);
        assert_eq!(word(None, None, true, false), Status::Unknown);
        assert_eq!(word(days(1), None, false, false), Status::Garbage);
        assert_eq!(word(days(400), None, false, false), Status::Garbage);
        assert_eq!(word(days(1), None, false, true), Status::Problem);
        // Stale is the operator's own threshold: it wins over active.
        let short = ImagesOptions {
            stale_after: Duration::from_secs(7 * 86_400),
            now,
        };
        let mut e = Entry {
            pushed_at: days(10),
            ..Entry::default()
        };
        e.flag_bits = flags(&e, true, &short);
        assert!(e.has(Flag::Active) && e.has(Flag::Stale));
        assert_eq!(e.status(), Status::Stale);
    }
}
